"""The bytes of a GGUF header: key/value fields and tensor descriptions, parsed with `struct`.

`gguf.GGUFReader` builds a numpy view for every vocabulary string (about 3 s for a 50k-token
vocabulary), too slow for listing a library, so the header is walked here on a buffer (a memory
map of the file, or its first bytes fetched over HTTP), using the `gguf` package's own type
tables. Nothing here knows about files: `gguf_header` reads them and names them in errors.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import gguf

GGUF_MAGIC = b"GGUF"
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
_MAX_NESTING = 8  # arrays of arrays: real files use one level; deeper is a hostile file
_MAX_DIMS = 4  # GGML_MAX_DIMS
# The fewest bytes one item can take in the file: a count that needs more bytes than the
# buffer holds is refused before anything is iterated (a header can state 10**12 items cheaply).
_MIN_KV_BYTES = 8 + 4 + 1  # key length, value type, a one-byte value
_MIN_TENSOR_BYTES = 8 + 4 + 4 + 8  # name length, dimensions, type, offset
_MIN_ITEM_BYTES = {_STRING: 8, _ARRAY: 12}  # arrays of strings, of arrays; scalars: their size


class HeaderTruncated(Exception):
    """The buffer ends before the header does; `needed` is a lower bound on the bytes required."""

    def __init__(self, needed: int):
        super().__init__(needed)
        self.needed = needed


class MalformedHeader(ValueError):
    """The bytes are not a GGUF header that can be used; the message says what is wrong."""


@dataclass(frozen=True)
class ArrayLength:
    """A long array whose contents were skipped: its length, element type and where its first
    element starts in the buffer (to scan it later without parsing the header again)."""

    length: int
    etype: int = -1
    offset: int = field(default=-1, compare=False)


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
    endian: str = "<"  # ">" for a big-endian file

    @property
    def data_end(self) -> int:
        """The file size this header promises."""
        return self.data_offset + max((t.offset + t.n_bytes for t in self.tensors), default=0)


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

    def need_items(self, count: int, item_bytes: int) -> None:
        """`count` items of at least `item_bytes` each must fit what is left of the buffer:
        checked before iterating, so a huge stated count costs nothing."""
        self._need(count * item_bytes)

    def skip(self, n: int) -> None:
        self._need(n)
        self.pos += n

    def string(self) -> str:
        n = self.scalar("Q")
        self._need(n)
        raw = bytes(self.buf[self.pos : self.pos + n])
        self.pos += n
        return raw.decode("utf-8", errors="replace")

    def value(self, vtype: int, depth: int = 0) -> Any:
        if vtype in _SCALARS:
            return self.scalar(_SCALARS[vtype])
        if vtype == _STRING:
            return self.string()
        if vtype != _ARRAY:
            raise MalformedHeader(f"unknown value type {vtype}")
        if depth >= _MAX_NESTING:
            raise MalformedHeader(f"arrays nested more than {_MAX_NESTING} deep")
        etype, count = self.scalar("I"), self.scalar("Q")
        if etype in _SCALARS:
            self.need_items(count, struct.calcsize(_SCALARS[etype]))
        elif etype in _MIN_ITEM_BYTES:
            self.need_items(count, _MIN_ITEM_BYTES[etype])
        else:
            raise MalformedHeader(f"unknown value type {etype}")
        if count > _KEEP_ARRAY:
            start = self.pos
            self._skip_array(etype, count, depth + 1)
            return ArrayLength(count, etype, start)
        return tuple(self.value(etype, depth + 1) for _ in range(count))

    def _skip_array(self, etype: int, count: int, depth: int) -> None:
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
                self.value(etype, depth)


def parse_header(buf) -> GGUFHeader:
    """Parse a GGUF header from a bytes-like buffer (the whole file or its first bytes).

    Raises `HeaderTruncated` when the buffer ends early and `MalformedHeader` (a ValueError)
    when it is not GGUF or its header cannot be used.
    """
    if len(buf) < 8:
        raise HeaderTruncated(24)
    if bytes(buf[:4]) != GGUF_MAGIC:
        raise MalformedHeader(f"it starts with {bytes(buf[:4])!r}, not b'GGUF'")
    (version,) = struct.unpack_from("<I", buf, 4)
    endian = "<"
    if version & 0xFFFF == 0:  # a big-endian file read as little-endian
        endian, version = ">", struct.unpack_from(">I", buf, 4)[0]
    if version < 2:
        raise MalformedHeader(f"GGUF version {version} is obsolete; convert the model again")
    cur = _Cursor(buf, endian)
    cur.pos = 8
    n_tensors, n_kv = cur.scalar("Q"), cur.scalar("Q")
    cur.need_items(n_kv, _MIN_KV_BYTES)
    cur.need_items(n_tensors, _MIN_TENSOR_BYTES)
    fields: dict[str, Any] = {}
    for _ in range(n_kv):
        key = cur.string()
        fields[key] = cur.value(cur.scalar("I"))
    tensors = []
    for _ in range(n_tensors):
        name = cur.string()
        n_dims = cur.scalar("I")
        if n_dims > _MAX_DIMS:
            raise MalformedHeader(f"tensor {name} has {n_dims} dimensions (at most {_MAX_DIMS})")
        shape = tuple(cur.scalar("Q") for _ in range(n_dims))
        ttype, offset = cur.scalar("I"), cur.scalar("Q")
        tensors.append(_tensor(name, shape, ttype, offset))
    align = _alignment(fields)
    return GGUFHeader(version, fields, tuple(tensors), -(-cur.pos // align) * align, endian)


def _alignment(fields: Mapping[str, Any]) -> int:
    value = fields.get(gguf.Keys.General.ALIGNMENT, gguf.GGUF_DEFAULT_ALIGNMENT)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0 or value & (value - 1):
        raise MalformedHeader(
            f"{gguf.Keys.General.ALIGNMENT} is {value!r}; it must be a power of two"
        )
    return value


def _tensor(name: str, shape: tuple[int, ...], ttype: int, offset: int) -> TensorInfo:
    try:
        qtype = gguf.GGMLQuantizationType(ttype)
        block, type_size = gguf.GGML_QUANT_SIZES[qtype]
    except (ValueError, KeyError):
        raise MalformedHeader(
            f"tensor {name} has type {ttype}, unknown to gguf {_gguf_version()}"
        ) from None
    n = 1
    for dim in shape:
        n *= dim
    return TensorInfo(name, qtype.name, shape, n, n // block * type_size, offset)


def _gguf_version() -> str:
    from importlib.metadata import version

    return version("gguf")


def first_duplicate_string(buf, array: ArrayLength, endian: str = "<") -> tuple[int, int] | None:
    """(first index, repeated index) of the first string that occurs twice in a skipped array
    of strings (a vocabulary), or None. llama.cpp turns an empty token into "[EMPTY_<i>]", so
    empty strings never repeat. About 1.5 µs per string (0.1 s for a 50k-token vocabulary)."""
    if array.etype != _STRING or array.offset < 0:
        return None
    unpack = struct.Struct(endian + "Q").unpack_from
    seen: dict[bytes, int] = {}
    pos = array.offset
    for i in range(array.length):
        (n,) = unpack(buf, pos)
        word = bytes(buf[pos + 8 : pos + 8 + n]) or b"[EMPTY_%d]" % i
        pos += 8 + n
        first = seen.setdefault(word, i)
        if first != i:
            return first, i
    return None
