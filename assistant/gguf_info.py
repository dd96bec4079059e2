"""What a GGUF file holds, read from its header without loading the weights.

`gguf.GGUFReader` builds a numpy view for every vocabulary string (about 3 s for a 50k-token
vocabulary), too slow for listing a library, so the header is walked here with `struct` on a
memory map, using the `gguf` package's own type tables. The same parser reads a header fetched
over HTTP (`parse_header`), which is how a model is sized before it is downloaded.
"""

from __future__ import annotations

import mmap
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gguf

from .errors import InvalidInputError, ModelLoadError

GGUF_MAGIC = b"GGUF"
SHARD_RE = re.compile(r"^(?P<base>.+)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$", re.IGNORECASE)
_SCALARS = {
    0: "B",
    1: "b",
    2: "H",
    3: "h",
    4: "I",
    5: "i",
    6: "f",
    7: "?",
    10: "Q",
    11: "q",
    12: "d",
}
_STRING, _ARRAY = 8, 9
_KEEP_ARRAY = 4096  # longer arrays (vocabularies, merges) are skipped, only their length kept
_OUTPUT_TENSORS = ("output.", "output_norm.")


class HeaderTruncated(Exception):
    """The buffer ends before the header does; `needed` is a lower bound on the bytes required."""

    def __init__(self, needed: int):
        super().__init__(needed)
        self.needed = needed


@dataclass(frozen=True)
class ArrayLength:
    """A long array whose contents were skipped."""

    length: int


@dataclass(frozen=True)
class TensorInfo:
    name: str
    type_name: str
    shape: tuple[int, ...]
    n_elements: int
    n_bytes: int
    offset: int


@dataclass(frozen=True)
class GGUFHeader:
    """The raw header of one GGUF file (one shard)."""

    version: int
    fields: Mapping[str, Any]
    tensors: tuple[TensorInfo, ...]
    data_offset: int

    @property
    def data_end(self) -> int:
        """The file size this header promises."""
        return self.data_offset + max((t.offset + t.n_bytes for t in self.tensors), default=0)


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


# -- parsing ------------------------------------------------------------------------------------
class _Cursor:
    def __init__(self, buf, endian: str):
        self.buf = buf
        self.pos = 0
        self.endian = endian

    def _need(self, n: int) -> None:
        if self.pos + n > len(self.buf):
            raise HeaderTruncated(self.pos + n)

    def scalar(self, fmt: str) -> Any:
        size = struct.calcsize(fmt)
        self._need(size)
        (value,) = struct.unpack_from(self.endian + fmt, self.buf, self.pos)
        self.pos += size
        return value

    def skip(self, n: int) -> None:
        self._need(n)
        self.pos += n

    def string(self) -> str:
        n = self.scalar("Q")
        self._need(n)
        raw = bytes(self.buf[self.pos : self.pos + n])
        self.pos += n
        return raw.decode("utf-8", errors="replace")

    def value(self, vtype: int) -> Any:
        if vtype in _SCALARS:
            return self.scalar(_SCALARS[vtype])
        if vtype == _STRING:
            return self.string()
        if vtype != _ARRAY:
            raise ValueError(f"unknown value type {vtype}")
        etype, count = self.scalar("I"), self.scalar("Q")
        if count > _KEEP_ARRAY:
            self._skip_array(etype, count)
            return ArrayLength(count)
        return tuple(self.value(etype) for _ in range(count))

    def _skip_array(self, etype: int, count: int) -> None:
        if etype in _SCALARS:
            self.skip(count * struct.calcsize(_SCALARS[etype]))
        elif etype == _STRING:
            fmt = self.endian + "Q"
            for _ in range(count):
                self._need(8)
                (n,) = struct.unpack_from(fmt, self.buf, self.pos)
                self.skip(8 + n)
        else:
            for _ in range(count):
                self.value(etype)


def parse_header(buf) -> GGUFHeader:
    """Parse a GGUF header from a bytes-like buffer (the whole file or its first bytes).

    Raises `HeaderTruncated` when the buffer ends early and ValueError when it is not GGUF.
    """
    if len(buf) < 8:
        raise HeaderTruncated(24)
    if bytes(buf[:4]) != GGUF_MAGIC:
        raise ValueError(f"it starts with {bytes(buf[:4])!r}, not b'GGUF'")
    (version,) = struct.unpack_from("<I", buf, 4)
    endian = "<"
    if version & 0xFFFF == 0:  # a big-endian file read as little-endian
        endian, version = ">", struct.unpack_from(">I", buf, 4)[0]
    if version < 2:
        raise ValueError(f"GGUF version {version} is obsolete; convert the model again")
    cur = _Cursor(buf, endian)
    cur.pos = 8
    n_tensors, n_kv = cur.scalar("Q"), cur.scalar("Q")
    fields: dict[str, Any] = {}
    for _ in range(n_kv):
        key = cur.string()
        fields[key] = cur.value(cur.scalar("I"))
    tensors = []
    for _ in range(n_tensors):
        name = cur.string()
        shape = tuple(cur.scalar("Q") for _ in range(cur.scalar("I")))
        ttype, offset = cur.scalar("I"), cur.scalar("Q")
        tensors.append(_tensor(name, shape, ttype, offset))
    align = int(fields.get(gguf.Keys.General.ALIGNMENT, gguf.GGUF_DEFAULT_ALIGNMENT))
    data_offset = -(-cur.pos // align) * align
    return GGUFHeader(version, fields, tuple(tensors), data_offset)


def _tensor(name: str, shape: tuple[int, ...], ttype: int, offset: int) -> TensorInfo:
    try:
        qtype = gguf.GGMLQuantizationType(ttype)
        block, type_size = gguf.GGML_QUANT_SIZES[qtype]
    except (ValueError, KeyError):
        raise ValueError(
            f"tensor {name} has type {ttype}, unknown to gguf {_gguf_version()}"
        ) from None
    n = 1
    for dim in shape:
        n *= dim
    return TensorInfo(name, qtype.name, shape, n, n // block * type_size, offset)


def _gguf_version() -> str:
    from importlib.metadata import version

    return version("gguf")


def read_header(path: Path) -> GGUFHeader:
    """The header of one file, memory-mapped (no weight is read)."""
    try:
        with path.open("rb") as handle:
            size = path.stat().st_size
            if size == 0:
                raise ModelLoadError(f"{path} is empty; it is not a GGUF model file.")
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                header = parse_header(buf)
    except FileNotFoundError:
        raise ModelLoadError(f"Model file not found: {path}") from None
    except IsADirectoryError:
        raise InvalidInputError(f"{path} is a folder; choose a .gguf model file.") from None
    except OSError as exc:
        raise ModelLoadError(f"Cannot read the model file {path}: {exc.strerror}.") from None
    except HeaderTruncated:
        raise ModelLoadError(
            f"{path} is truncated: it ends inside its GGUF header "
            f"(an interrupted download or copy?)."
        ) from None
    except ValueError as exc:
        hint = ""
        if path.suffix in {".pt", ".pth", ".bin", ".safetensors"}:
            hint = " It looks like a PyTorch checkpoint: convert it with `assistant convert`."
        raise InvalidInputError(f"{path} is not a usable GGUF model file: {exc}.{hint}") from None
    if header.data_end > size:
        raise ModelLoadError(
            f"{path} is truncated: its header promises {header.data_end:,} "
            f"bytes but the file has {size:,} (an interrupted download or copy?)."
        )
    return header


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
    """Metadata of a GGUF model (all shards of a split model), without loading the weights."""
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
    return info_from_headers(str(files[0]), headers, size, [str(p) for p in files])


def info_from_headers(
    path: str, headers: list[GGUFHeader], file_size: int, shards: list[str] | None = None
) -> GGUFInfo:
    """Combine the headers of a model's shards (metadata lives in the first) into a GGUFInfo."""
    md = headers[0].fields
    tensors = [t for h in headers for t in h.tensors]
    arch = str(md.get(gguf.Keys.General.ARCHITECTURE, "unknown"))

    def key(name: str, default: Any = 0) -> Any:
        return md.get(name.format(arch=arch), default)

    n_layers = int(key(gguf.Keys.LLM.BLOCK_COUNT) or 0)
    n_embd = int(key(gguf.Keys.LLM.EMBEDDING_LENGTH) or 0)
    n_head = _first(key(gguf.Keys.Attention.HEAD_COUNT))
    kv = key(gguf.Keys.Attention.HEAD_COUNT_KV, None)
    if isinstance(kv, tuple):
        n_head_kv = tuple(int(x) for x in kv[:n_layers])
    else:
        n_head_kv = (int(kv if kv is not None else n_head),) * n_layers
    head_k = int(key(gguf.Keys.Attention.KEY_LENGTH) or (n_embd // n_head if n_head else 0))
    head_v = int(key(gguf.Keys.Attention.VALUE_LENGTH) or head_k)
    layer_bytes = [0] * n_layers
    input_bytes = output_bytes = embedding_bytes = 0
    names = set()
    for t in tensors:
        names.add(t.name)
        if t.name.startswith("blk."):
            index = int(t.name.split(".")[1])
            if index < n_layers:
                layer_bytes[index] += t.n_bytes
                continue
        if t.name.startswith(_OUTPUT_TENSORS):
            output_bytes += t.n_bytes
        else:
            input_bytes += t.n_bytes
            if t.name.startswith("token_embd."):
                embedding_bytes += t.n_bytes
    return GGUFInfo(
        path=path,
        name=str(md.get(gguf.Keys.General.NAME) or Path(path).stem),
        architecture=arch,
        n_params=sum(t.n_elements for t in tensors),
        file_size=file_size,
        quantization=_quantization(md, tensors),
        n_ctx_train=int(key(gguf.Keys.LLM.CONTEXT_LENGTH) or 0),
        n_layers=n_layers,
        n_embd=n_embd,
        n_head=n_head,
        n_head_kv=n_head_kv,
        head_dim_k=head_k,
        head_dim_v=head_v,
        n_ff=_first(key(gguf.Keys.LLM.FEED_FORWARD_LENGTH)),
        n_vocab=_vocab_size(md, arch, tensors),
        has_chat_template=bool(md.get(gguf.Keys.Tokenizer.CHAT_TEMPLATE)),
        layer_bytes=tuple(layer_bytes),
        input_bytes=input_bytes,
        embedding_bytes=embedding_bytes,
        output_bytes=output_bytes,
        tied_output="output.weight" not in names,
        shards=tuple(shards or ()) if len(shards or ()) > 1 else (),
        license=str(md.get(gguf.Keys.General.LICENSE, "") or ""),
        metadata={k: v for k, v in md.items() if not isinstance(v, (tuple, ArrayLength))},
    )


def _first(value: Any) -> int:
    """A scalar, or the largest entry of a per-layer array."""
    if isinstance(value, tuple):
        return int(max(value, default=0))
    return int(value or 0)


def _vocab_size(md: Mapping[str, Any], arch: str, tensors: list[TensorInfo]) -> int:
    if md.get(f"{arch}.vocab_size"):
        return int(md[f"{arch}.vocab_size"])
    tokens = md.get(gguf.Keys.Tokenizer.LIST)
    if isinstance(tokens, ArrayLength):
        return tokens.length
    if isinstance(tokens, tuple):
        return len(tokens)
    embd = next((t for t in tensors if t.name == "token_embd.weight"), None)
    return int(embd.shape[-1]) if embd and len(embd.shape) > 1 else 0


def _quantization(md: Mapping[str, Any], tensors: list[TensorInfo]) -> str:
    value = md.get(gguf.Keys.General.FILE_TYPE)
    if value is not None:
        try:
            return gguf.LlamaFileType(int(value)).name.removeprefix("MOSTLY_")
        except ValueError:
            pass
    by_type: dict[str, int] = {}
    for t in tensors:  # no file type recorded: name it after the type holding most bytes
        by_type[t.type_name] = by_type.get(t.type_name, 0) + t.n_bytes
    return max(by_type, key=by_type.__getitem__) if by_type else "unknown"
