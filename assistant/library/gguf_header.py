"""The one GGUF header reader: what a model file holds, without loading its weights.

`read_gguf_info(path)` reads the header of a file (all shards of a split model) and returns a
`GGUFInfo`: shape, memory layout, quantization, metadata. The library lists and sizes models
with it, the fit estimates use it, and the runtime builds the `ModelInfo` of a loaded model
from it. `info_from_headers` does the same for headers fetched over HTTP (`hub`).

Errors: `read_gguf_info` raises `ModelLoadError` naming the file and the reason (missing, a
folder, unreadable, not GGUF, truncated, or a header with values that cannot be used, among
them any value llama.cpp would abort the process on: see `gguf_checks`); nothing else is
expected from it. `info_from_headers` raises `MalformedHeader` for unusable values.
`check_vocabulary` adds the one check too slow for listing (a token listed twice), for loading
and importing.
"""

from __future__ import annotations

import mmap
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gguf

from assistant.errors import ModelLoadError
from assistant.library.gguf_checks import check_hyperparameters, duplicate_token
from assistant.library.gguf_checks import count as _count
from assistant.library.gguf_checks import largest as _largest
from assistant.library.gguf_checks import per_layer as _per_layer
from assistant.library.gguf_checks import shown as _shown
from assistant.library.gguf_parse import (
    ArrayLength,
    GGUFHeader,
    HeaderTruncated,
    MalformedHeader,
    TensorInfo,
    parse_header,
)
from assistant.library.naming import clean_model_name

SHARD_RE = re.compile(r"^(?P<base>.+)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$", re.IGNORECASE)
_OUTPUT_TENSORS = ("output.", "output_norm.")
_BLOCK = re.compile(r"^blk\.(\d+)\.")
_CHECKPOINT_SUFFIXES = {".pt", ".pth", ".bin", ".safetensors"}


@dataclass(frozen=True)
class GGUFInfo:
    """A model's shape and memory layout, from the header of its GGUF file(s)."""

    path: str
    name: str
    architecture: str
    n_params: int
    file_size: int  # all shards together
    quantization: str
    n_ctx_train: int
    n_layers: int
    n_embd: int
    n_head: int
    n_head_kv: tuple[int, ...]  # per layer (some architectures vary it)
    head_dim_k: int
    head_dim_v: int
    n_ff: int
    n_vocab: int
    has_chat_template: bool
    layer_bytes: tuple[int, ...]  # tensor bytes of each repeating block `blk.N.*`
    input_bytes: int  # tensors outside the blocks that llama.cpp keeps on the CPU (embeddings)
    embedding_bytes: int  # token_embd alone
    output_bytes: int  # output head and final norm (offloaded with the last "layer")
    tied_output: bool  # no output head: llama.cpp reuses (and on a GPU copies) token_embd
    shards: tuple[str, ...] = ()
    license: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def weights_bytes(self) -> int:
        return sum(self.layer_bytes) + self.input_bytes + self.output_bytes

    @property
    def is_chat_model(self) -> bool:
        """False for vision projectors (mmproj) and other companion files."""
        return self.n_layers > 0 and self.architecture not in {"clip", "mmproj"}

    @property
    def chat_template(self) -> str | None:
        """The Jinja chat template stored in the file, if any."""
        value = self.metadata.get(gguf.Keys.Tokenizer.CHAT_TEMPLATE)
        return value if isinstance(value, str) and value else None

    def summary(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "name": self.name,
            "architecture": self.architecture,
            "parameters": self.n_params,
            "file_size": self.file_size,
            "quantization": self.quantization,
            "trained_context": self.n_ctx_train,
            "layers": self.n_layers,
            "embedding": self.n_embd,
            "heads": self.n_head,
            "kv_heads": max(self.n_head_kv, default=0),
            "head_dim": self.head_dim_k,
            "vocabulary": self.n_vocab,
            "chat_template": self.has_chat_template,
            "license": self.license,
            "shards": len(self.shards) or 1,
        }


@dataclass(frozen=True)
class ModelInfo:
    """A loaded model: its header, plus what loading decided (chat format, GPU layers)."""

    header: GGUFInfo
    template_name: str
    gpu_layers: int = 0
    gpu_supported: bool = False

    path = property(lambda self: self.header.path)
    name = property(lambda self: self.header.name)
    architecture = property(lambda self: self.header.architecture)
    n_params = property(lambda self: self.header.n_params)
    size_bytes = property(lambda self: self.header.file_size)
    quantization = property(lambda self: self.header.quantization)
    n_ctx_train = property(lambda self: self.header.n_ctx_train)
    n_layers = property(lambda self: self.header.n_layers)
    chat_template = property(lambda self: self.header.chat_template)
    metadata = property(lambda self: self.header.metadata)

    @property
    def runs_on(self) -> str:
        if self.gpu_layers <= 0:
            return "CPU"
        return f"GPU ({min(self.gpu_layers, self.n_layers)}/{self.n_layers} layers)"

    def summary(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "name": self.name,
            "architecture": self.architecture,
            "parameters": self.n_params,
            "size_bytes": self.size_bytes,
            "quantization": self.quantization,
            "trained_context": self.n_ctx_train,
            "layers": self.n_layers,
            "chat_template": self.template_name,
            "runs_on": self.runs_on,
        }


# -- files ----------------------------------------------------------------------------------
def read_header(path: Path, *, tokens: bool = False) -> GGUFHeader:
    """The header of one file, memory-mapped (no weight is read); ModelLoadError naming it.

    With `tokens`, the token list is also scanned for a token listed twice (see
    `check_vocabulary`)."""
    problem = None
    try:
        with path.open("rb") as handle:
            size = path.stat().st_size
            if size == 0:
                raise ModelLoadError(f"{path} is empty; it is not a GGUF model file.")
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                magic = bytes(buf[:4])
                header = parse_header(buf)
                if tokens:
                    problem = duplicate_token(buf, header.fields, header.endian)
    except FileNotFoundError:
        raise ModelLoadError(f"Model file not found: {path}") from None
    except IsADirectoryError:
        raise ModelLoadError(f"{path} is a folder; choose a .gguf model file.") from None
    except OSError as exc:
        raise ModelLoadError(f"Cannot read the model file {path}: {exc.strerror}.") from None
    except HeaderTruncated:
        raise ModelLoadError(
            f"{path} is truncated: it ends inside its GGUF header; the file is corrupted or "
            f"incomplete (an interrupted download or copy?)."
        ) from None
    except MalformedHeader as exc:
        raise _not_usable(path, magic, exc) from None
    if header.data_end > size:
        raise ModelLoadError(
            f"{path} is truncated: its header promises {header.data_end:,} bytes but the file "
            f"has {size:,}; it is corrupted or incomplete (an interrupted download or copy?)."
        )
    if problem:
        raise ModelLoadError(f"{path} is not a usable GGUF model file: {problem}.")
    return header


_vocabularies_checked: set[tuple[str, int, int]] = set()


def check_vocabulary(path: str | Path) -> None:
    """Refuse (ModelLoadError naming the file and the entries) a model whose token list names a
    token twice: llama.cpp asserts it does not and aborts the whole process. Runs where a model
    is loaded or imported (listing skips it: about 0.1 s per 50k tokens); once per file version."""
    first = shard_paths(Path(path).expanduser())[0]
    try:
        stat = first.stat()
    except OSError:
        return  # read_gguf_info has named a missing or unreadable file already
    key = (str(first.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _vocabularies_checked:
        read_header(first, tokens=True)
        _vocabularies_checked.add(key)


def _not_usable(path: Path, magic: bytes, exc: MalformedHeader) -> ModelLoadError:
    hint = ""
    if magic[:2] == b"PK" or path.suffix.lower() in _CHECKPOINT_SUFFIXES:
        hint = " It looks like a PyTorch checkpoint: convert it with `assistant convert`."
    if magic != b"GGUF":
        return ModelLoadError(
            f"{path} is not a GGUF model file: a GGUF file begins with the letters GGUF, and "
            f"this one begins with {_first_bytes(magic)}.{hint}"
        )
    return ModelLoadError(f"{path} is not a usable GGUF model file: {exc}.")


def _first_bytes(magic: bytes) -> str:
    """“this” for readable text, else the bytes in hexadecimal (for an error message)."""
    if magic and all(32 <= b < 127 for b in magic):
        return f"“{magic.decode('ascii')}”"
    return "the bytes " + (" ".join(f"{b:02x}" for b in magic) or "(none)")


def shard_paths(path: Path) -> list[Path]:
    """All files of a split model, given any of them (a single-file model: just itself)."""
    match = SHARD_RE.match(path.name)
    if not match:
        return [path]
    count = int(match["count"])
    width = len(match["no"])
    names = [f"{match['base']}-{i:0{width}d}-of-{match['count']}.gguf" for i in range(1, count + 1)]
    return [path.with_name(n) for n in names]


def read_gguf_info(path: str | Path) -> GGUFInfo:
    """Metadata of a GGUF model (all shards of a split model), without loading the weights.

    Raises ModelLoadError, naming the file and the reason, for any file that cannot be used.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise ModelLoadError(f"Model file not found: {path}")
    files = shard_paths(path)
    missing = [p.name for p in files if not p.exists()]
    if missing:
        raise ModelLoadError(
            f"{path.name} is part of a model split in {len(files)} files, but "
            f"{', '.join(missing)} is missing from {path.parent}."
        )
    headers = [read_header(p) for p in files]
    size = sum(p.stat().st_size for p in files)
    try:
        return info_from_headers(str(files[0]), headers, size, [str(p) for p in files])
    except MalformedHeader as exc:
        raise ModelLoadError(f"{path} is not a usable GGUF model file: {exc}.") from None


# -- from header fields to a GGUFInfo -------------------------------------------------------
def info_from_headers(
    path: str, headers: list[GGUFHeader], file_size: int, shards: list[str] | None = None
) -> GGUFInfo:
    """Combine the headers of a model's shards (metadata lives in the first) into a GGUFInfo.

    Raises MalformedHeader, naming the field, when a value has the wrong type or is absurd.
    """
    md = headers[0].fields
    tensors = [t for h in headers for t in h.tensors]
    arch = md.get(gguf.Keys.General.ARCHITECTURE, "unknown")
    if not isinstance(arch, str):
        raise MalformedHeader(f"{gguf.Keys.General.ARCHITECTURE} is {_shown(arch)}, not a name")

    def key(name: str) -> str:
        return name.format(arch=arch)

    # llama.cpp's limits and plausibility, before anything is sized by these numbers
    check_hyperparameters(md, arch, tensors)
    n_layers = _count(md, key(gguf.Keys.LLM.BLOCK_COUNT))
    n_embd = _count(md, key(gguf.Keys.LLM.EMBEDDING_LENGTH))
    n_head = _largest(md, key(gguf.Keys.Attention.HEAD_COUNT))
    n_head_kv = _per_layer(md, key(gguf.Keys.Attention.HEAD_COUNT_KV), n_layers, n_head)
    head_k = _count(md, key(gguf.Keys.Attention.KEY_LENGTH)) or (n_embd // n_head if n_head else 0)
    head_v = _count(md, key(gguf.Keys.Attention.VALUE_LENGTH)) or head_k
    layer_bytes = [0] * n_layers
    input_bytes = output_bytes = embedding_bytes = 0
    names = set()
    for t in tensors:
        names.add(t.name)
        block = _BLOCK.match(t.name)
        if block and int(block[1]) < n_layers:
            layer_bytes[int(block[1])] += t.n_bytes
        elif t.name.startswith(_OUTPUT_TENSORS):
            output_bytes += t.n_bytes
        else:
            input_bytes += t.n_bytes
            if t.name.startswith("token_embd."):
                embedding_bytes += t.n_bytes
    return GGUFInfo(
        path=path,
        name=clean_model_name(_text(md, gguf.Keys.General.NAME), path),
        architecture=arch,
        n_params=sum(t.n_elements for t in tensors),
        file_size=file_size,
        quantization=_quantization(md, tensors),
        n_ctx_train=_count(md, key(gguf.Keys.LLM.CONTEXT_LENGTH)),
        n_layers=n_layers,
        n_embd=n_embd,
        n_head=n_head,
        n_head_kv=n_head_kv,
        head_dim_k=head_k,
        head_dim_v=head_v,
        n_ff=_largest(md, key(gguf.Keys.LLM.FEED_FORWARD_LENGTH)),
        n_vocab=_vocab_size(md, arch, tensors),
        has_chat_template=bool(_text(md, gguf.Keys.Tokenizer.CHAT_TEMPLATE)),
        layer_bytes=tuple(layer_bytes),
        input_bytes=input_bytes,
        embedding_bytes=embedding_bytes,
        output_bytes=output_bytes,
        tied_output="output.weight" not in names,
        shards=tuple(shards or ()) if len(shards or ()) > 1 else (),
        license=_text(md, gguf.Keys.General.LICENSE),
        metadata={k: v for k, v in md.items() if not isinstance(v, (tuple, ArrayLength))},
    )


def _text(md: Mapping[str, Any], name: str) -> str:
    """A text field ('' when absent; a value of another type is ignored, as llama.cpp does)."""
    value = md.get(name)
    return value if isinstance(value, str) else ""


def _vocab_size(md: Mapping[str, Any], arch: str, tensors: list[TensorInfo]) -> int:
    tokens = md.get(gguf.Keys.Tokenizer.LIST)  # what llama.cpp uses: the token list
    if isinstance(tokens, ArrayLength):
        return tokens.length
    if isinstance(tokens, tuple):
        return len(tokens)
    if md.get(f"{arch}.vocab_size"):
        return _count(md, f"{arch}.vocab_size")
    embd = next((t for t in tensors if t.name == "token_embd.weight"), None)
    return int(embd.shape[-1]) if embd and len(embd.shape) > 1 else 0


def _quantization(md: Mapping[str, Any], tensors: list[TensorInfo]) -> str:
    if md.get(gguf.Keys.General.FILE_TYPE) is not None:
        value = _count(md, gguf.Keys.General.FILE_TYPE)
        try:
            return gguf.LlamaFileType(value).name.removeprefix("MOSTLY_")
        except ValueError:
            pass  # a file type newer than this gguf package: fall back to the tensor types
    by_type: dict[str, int] = {}
    for t in tensors:  # no file type recorded: name it after the type holding most bytes
        by_type[t.type_name] = by_type.get(t.type_name, 0) + t.n_bytes
    return max(by_type, key=by_type.__getitem__) if by_type else "unknown"
