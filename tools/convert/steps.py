"""The steps of converting one checkpoint: vocabulary, plan, GGUF, quantize, verify.

Everything that can be refused (architecture, tokenizer, shapes, disk space) is checked
before the first byte is written. Progress goes to a callback (a terminal bar, a dialog).
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import gguf

from assistant.errors import ConversionError

from .mappers.base import Mapper, PlannedTensor, build_plan
from .options import ConvertOptions, ConvertResult, Progress, ProgressFn
from .quantize import SIZE_VS_F16, quantize_file
from .source import Source
from .verify import VerifyReport, verify_gguf
from .vocab import Vocab, load_vocab, write_vocab
from .writer import DIRECT_TYPES, GGUFFile, atomic_output, check_free_space, partial_path


def convert_source(
    options: ConvertOptions,
    out: Path,
    source: Source,
    mapper: Mapper,
    report: ProgressFn,
    cancel: threading.Event | None,
    start: float,
    base: Path | None = None,
) -> ConvertResult:
    """Write (and quantize, and verify) the model `source` holds into `out`."""
    vocab = load_vocab(
        source.folder, options.tokenizer, source.config, mapper.n_vocab, options.chat_template
    )
    plan = build_plan(mapper, source.checkpoint, len(vocab.tokens))
    metadata = model_metadata(options, source, mapper, vocab)
    if options.out_type in DIRECT_TYPES:
        gguf_file = GGUFFile(plan, options.out_type)
        check_free_space(out.parent, gguf_file.estimated_size(len(vocab.tokens)))
        with atomic_output(out) as tmp:
            write_gguf(gguf_file, tmp, mapper, metadata, report, cancel)
    else:
        _write_quantized(options, out, plan, mapper, metadata, vocab, report, cancel)
    verification = _verify(options, out, mapper, source, vocab, report)
    return ConvertResult(
        path=out,
        out_type=options.out_type,
        architecture=source.architecture,
        gguf_architecture=mapper.arch_name,
        n_tensors=len(plan),
        size_bytes=out.stat().st_size,
        seconds=time.perf_counter() - start,
        notes=[*mapper.notes, *vocab.notes],
        verification=verification,
        base=base,
    )


def model_metadata(options: ConvertOptions, source: Source, mapper: Mapper, vocab: Vocab):
    name = options.name or source.name

    def write(writer: gguf.GGUFWriter) -> None:
        writer.add_name(name)
        mapper.write_hparams(writer)
        write_vocab(writer, vocab)

    return write


def write_gguf(
    gguf_file: GGUFFile,
    path: Path,
    mapper: Mapper,
    metadata: Callable[[gguf.GGUFWriter], None],
    report: ProgressFn,
    cancel: threading.Event | None,
) -> None:
    total = gguf_file.tensor_bytes
    done = 0

    def on_tensor(name: str, nbytes: int) -> None:
        nonlocal done
        done += nbytes
        report(Progress("writing", done, total, name))

    gguf_file.write(path, mapper.arch_name, metadata, on_tensor, cancel)


def intermediate_type(plan: list[PlannedTensor]) -> str:
    """The lossless type for the file handed to llama.cpp's quantizer: the weights' own."""
    counts = Counter(t.source_dtype for t in plan if len(t.shape) >= 2 and t.source)
    dtype = counts.most_common(1)[0][0] if counts else "F32"
    return {"F16": "f16", "BF16": "bf16"}.get(dtype, "f32")


def _write_quantized(
    options: ConvertOptions,
    out: Path,
    plan: list[PlannedTensor],
    mapper: Mapper,
    metadata: Callable[[gguf.GGUFWriter], None],
    vocab: Vocab,
    report: ProgressFn,
    cancel: threading.Event | None,
) -> None:
    """A lossless temporary GGUF, then llama.cpp's quantizer into the target, atomically."""
    base = GGUFFile(plan, intermediate_type(plan))
    f16_bytes = sum(2 * math.prod(t.shape) for t in plan)
    quantized = int(f16_bytes * SIZE_VS_F16[options.out_type] * 1.3)
    check_free_space(out.parent, base.estimated_size(len(vocab.tokens)) + quantized)
    src = partial_path(out, f"{base.target}.tmp")
    try:
        write_gguf(base, src, mapper, metadata, report, cancel)
        if cancel is not None and cancel.is_set():
            raise ConversionError("Conversion cancelled.")
        report(Progress("quantizing", 0, 1, options.out_type))
        with atomic_output(out) as tmp:
            quantize_file(src, tmp, options.out_type, options.threads)
        report(Progress("quantizing", 1, 1, options.out_type))
    finally:
        src.unlink(missing_ok=True)


def _verify(
    options: ConvertOptions,
    out: Path,
    mapper: Mapper,
    source: Source,
    vocab: Vocab,
    report: ProgressFn,
) -> VerifyReport | None:
    if not options.verify:
        return None
    report(Progress("verifying", 0, 1, "PyTorch vs llama.cpp"))
    result = verify_gguf(
        out,
        options.out_type,
        mapper,
        source.checkpoint,
        vocab,
        texts=options.verify_texts,
        threads=options.threads,
    )
    report(Progress("verifying", 1, 1))
    return result
