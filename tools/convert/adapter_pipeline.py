"""A PEFT LoRA adapter folder into GGUF: merged into its base (an ordinary model file), or kept
as a GGUF adapter for llama.cpp to apply on the base's GGUF at load (`adapter_only`).

The base is a Hugging Face folder or a Hub id in the local cache (`--base`, else the adapter's
base_model_name_or_path). Every pair is checked against the base before anything is written.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from assistant.errors import ConversionError

from .lora import MergedCheckpoint, is_adapter_folder, open_adapter, resolve_base
from .lora.config import read_adapter_config
from .lora.export import write_adapter_gguf
from .mappers import mapper_for
from .mappers.base import Mapper, build_plan
from .options import ConvertOptions, ConvertResult, Progress, ProgressFn
from .source import Source, resolve_source
from .steps import convert_source, intermediate_type, model_metadata, write_gguf
from .verify import VerifyReport, verify_gguf
from .vocab import find_tokenizer, load_vocab
from .writer import DIRECT_TYPES, GGUFFile, atomic_output, check_free_space, partial_path


def convert_adapter(
    options: ConvertOptions,
    out: Path,
    report: ProgressFn,
    cancel: threading.Event | None,
    start: float,
) -> ConvertResult:
    folder = options.source.expanduser()
    if options.adapter_only and options.out_type not in DIRECT_TYPES:
        raise ConversionError(
            f"An adapter is written as {', '.join(DIRECT_TYPES)}; {options.out_type} is for "
            "models (merge the adapter to get a quantized model)."
        )
    base_path = resolve_base(options.base, read_adapter_config(folder))
    if is_adapter_folder(base_path):
        raise ConversionError(f"The base {base_path} is itself an adapter; give the base model.")
    source = resolve_source(base_path, options.config)
    try:
        mapper = mapper_for(source.architecture, source.config)
        adapter = open_adapter(folder, source.checkpoint, mapper, str(base_path))
        merged = Source(
            MergedCheckpoint(source.checkpoint, adapter),
            source.config,
            source.architecture,
            # a tokenizer saved with the adapter (often with its chat template) wins
            folder if find_tokenizer(folder) else source.folder,
            folder.name,
        )
        source = merged  # closing it closes the base and the adapter
        if not options.adapter_only:
            return convert_source(options, out, merged, mapper, report, cancel, start, base_path)
        return _adapter_only(options, out, merged, mapper, report, cancel, start, base_path)
    finally:
        source.close()


def _adapter_only(
    options: ConvertOptions,
    out: Path,
    merged: Source,
    mapper: Mapper,
    report: ProgressFn,
    cancel: threading.Event | None,
    start: float,
    base_path: Path,
) -> ConvertResult:
    checkpoint = merged.checkpoint
    assert isinstance(checkpoint, MergedCheckpoint)
    adapter = checkpoint.adapter
    name = options.name or merged.name
    total = 4 * adapter.n_parameters
    done = 0

    def on_tensor(tensor: str, nbytes: int) -> None:
        nonlocal done
        done += nbytes
        report(Progress("writing", done, total, tensor))

    check_free_space(out.parent, total + 1024 * 1024)
    with atomic_output(out) as tmp:
        written = write_adapter_gguf(
            adapter, mapper, tmp, options.out_type, name, base_path.name, on_tensor, cancel
        )
    verification = None
    if options.verify:
        verification = _verify_adapter(options, out, merged, mapper, report, cancel)
    notes = [
        f"Apply it on a GGUF of {base_path.name} (`--lora {out.name}`): converted from the "
        "same base, any type."
    ]
    return ConvertResult(
        path=out,
        out_type=options.out_type,
        architecture=merged.architecture,
        gguf_architecture=mapper.arch_name,
        n_tensors=len(written.plan),
        size_bytes=out.stat().st_size,
        seconds=time.perf_counter() - start,
        notes=[*mapper.notes, *notes],
        verification=verification,
        kind="adapter",
        base=base_path,
    )


def _verify_adapter(
    options: ConvertOptions,
    out: Path,
    merged: Source,
    mapper: Mapper,
    report: ProgressFn,
    cancel: threading.Event | None,
) -> VerifyReport:
    """llama.cpp applies the adapter on a lossless GGUF of the base (written beside the output
    for the check, then removed); compared with the merged model in PyTorch."""
    checkpoint = merged.checkpoint
    assert isinstance(checkpoint, MergedCheckpoint)
    base = Source(checkpoint.base, merged.config, merged.architecture, merged.folder, "base")
    vocab = load_vocab(
        merged.folder, options.tokenizer, merged.config, mapper.n_vocab, options.chat_template
    )
    plan = build_plan(mapper, checkpoint.base, len(vocab.tokens))
    base_file = GGUFFile(plan, intermediate_type(plan))
    check_free_space(out.parent, base_file.estimated_size(len(vocab.tokens)))
    base_gguf = partial_path(out, "base.gguf.tmp")
    try:
        report(Progress("verifying", 0, 1, "writing the base for llama.cpp"))
        metadata = model_metadata(options, base, mapper, vocab)
        write_gguf(base_file, base_gguf, mapper, metadata, lambda p: None, cancel)
        report(Progress("verifying", 0, 1, "the adapter in llama.cpp vs PyTorch"))
        result = verify_gguf(
            base_gguf,
            options.out_type,
            mapper,
            checkpoint,
            vocab,
            texts=options.verify_texts,
            threads=options.threads,
            lora=out,
        )
    finally:
        base_gguf.unlink(missing_ok=True)
    report(Progress("verifying", 1, 1))
    return result
