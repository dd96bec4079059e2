"""Lazy tensor readers: names and shapes up front, one tensor's data in memory at a time.

Safetensors are parsed here (an 8-byte header length, a JSON header, raw data) and each tensor
is memory-mapped on its own, so the mapping and its pages go away with the array. PyTorch files
go through `torch.load(mmap=True, weights_only=True)`: no code in them runs, and tensors that
are never asked for (an optimizer's state) are never read.
"""

from __future__ import annotations

import json
import math
import mmap
import os
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from assistant.errors import ConversionError

# Prefixes that wrappers add to every key: torch.compile's and DistributedDataParallel's.
WRAPPER_PREFIXES = ("_orig_mod.", "module.")
_MAX_HEADER = 100 * 1024 * 1024

_ST_DTYPES: dict[str, np.dtype] = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}


@dataclass(frozen=True)
class TensorInfo:
    """What is known about a tensor without reading it; dtype is 'F32', 'F16', 'BF16', …"""

    name: str
    shape: tuple[int, ...]
    dtype: str

    @property
    def n_elements(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1


def bf16_to_f32(bits: np.ndarray) -> np.ndarray:
    """bfloat16 bit patterns (uint16) → float32, exactly."""
    return (bits.astype(np.uint32) << 16).view(np.float32)


def strip_wrapper_prefix(name: str) -> str:
    for prefix in WRAPPER_PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


class Checkpoint(ABC):
    """A set of named tensors; `load` returns float32 or float16 numpy arrays."""

    @property
    @abstractmethod
    def tensors(self) -> Mapping[str, TensorInfo]: ...

    @abstractmethod
    def load(self, name: str) -> np.ndarray: ...

    @abstractmethod
    def close(self) -> None:
        """Release open files (tensors already loaded stay valid)."""

    def __enter__(self) -> Checkpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- safetensors ----------------------------------------------------------------------------
class SafetensorsFile(Checkpoint):
    """One .safetensors file; each `load` maps only that tensor's bytes."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self._file = path.open("rb")
        except OSError as exc:
            raise ConversionError(f"Cannot read {path}: {exc.strerror}.") from None
        self._size = os.fstat(self._file.fileno()).st_size
        self._data_start, self._entries = self._read_header()
        self._infos = {
            strip_wrapper_prefix(name): TensorInfo(
                strip_wrapper_prefix(name), tuple(e["shape"]), e["dtype"]
            )
            for name, e in self._entries.items()
        }
        self._keys = {strip_wrapper_prefix(name): name for name in self._entries}

    def _read_header(self) -> tuple[int, dict[str, Any]]:
        path, size = self.path, self._size
        raw = self._file.read(8)
        if len(raw) < 8:
            raise ConversionError(f"{path} is truncated: it has no safetensors header.")
        n = int.from_bytes(raw, "little")
        if n > _MAX_HEADER or 8 + n > size:
            raise ConversionError(
                f"{path} is truncated or not a safetensors file: its header claims {n} bytes "
                f"but the file has {size}."
            )
        try:
            header = json.loads(self._file.read(n))
        except (ValueError, RecursionError):  # RecursionError: JSON nested too deeply
            raise ConversionError(f"{path} has a corrupt safetensors header.") from None
        if not isinstance(header, dict):
            raise ConversionError(f"{path} has a corrupt safetensors header.")
        header.pop("__metadata__", None)
        start, available = 8 + n, size - 8 - n
        for name, entry in header.items():
            self._check_entry(name, entry, available)
        return start, header

    def _check_entry(self, name: str, entry: Any, available: int) -> None:
        try:
            dtype = _ST_DTYPES[entry["dtype"]]
            begin, end = (int(x) for x in entry["data_offsets"])
            shape = entry["shape"]
            if not isinstance(shape, list) or any(
                isinstance(d, bool) or not isinstance(d, int) or d < 0 for d in shape
            ):
                raise ValueError("shape")
            count = math.prod(shape)  # Python integers: a huge shape cannot wrap around
        except (KeyError, TypeError, ValueError):
            raise ConversionError(
                f"{self.path}: tensor {name!r} has an unsupported dtype or a corrupt entry."
            ) from None
        if end > available:
            raise ConversionError(
                f"{self.path} is truncated: tensor {name!r} ends at byte {end} of the data but "
                f"the file holds only {available} (was the download interrupted?)."
            )
        if end - begin != count * dtype.itemsize or begin < 0:
            raise ConversionError(f"{self.path}: tensor {name!r} has inconsistent offsets.")

    @property
    def tensors(self) -> Mapping[str, TensorInfo]:
        return self._infos

    def load(self, name: str) -> np.ndarray:
        entry = self._entries[self._keys[name]]
        dtype = _ST_DTYPES[entry["dtype"]]
        begin, end = entry["data_offsets"]
        shape = tuple(entry["shape"])
        if end == begin:
            return np.zeros(shape, dtype=np.float32)
        offset = self._data_start + begin
        aligned = offset - offset % mmap.ALLOCATIONGRANULARITY
        view = mmap.mmap(
            self._file.fileno(),
            offset + (end - begin) - aligned,
            offset=aligned,
            access=mmap.ACCESS_READ,
        )
        array = np.frombuffer(
            view, dtype=dtype, count=(end - begin) // dtype.itemsize, offset=offset - aligned
        ).reshape(shape)
        return _as_float(array, entry["dtype"])

    def close(self) -> None:
        self._file.close()


def _as_float(array: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "BF16":
        return bf16_to_f32(array)
    if dtype in ("F32", "F16"):
        return array
    return array.astype(np.float32)


class MultiFile(Checkpoint):
    """Several files seen as one (shards); a name found twice is an error."""

    def __init__(self, parts: Iterable[Checkpoint]):
        self._parts = list(parts)
        self._owner: dict[str, Checkpoint] = {}
        self._infos: dict[str, TensorInfo] = {}
        for part in self._parts:
            for name, info in part.tensors.items():
                if name in self._owner:
                    raise ConversionError(f"Tensor {name!r} appears in more than one shard.")
                self._owner[name] = part
                self._infos[name] = info

    @property
    def tensors(self) -> Mapping[str, TensorInfo]:
        return self._infos

    def load(self, name: str) -> np.ndarray:
        return self._owner[name].load(name)

    def close(self) -> None:
        for part in self._parts:
            part.close()


# -- PyTorch pickles ------------------------------------------------------------------------
_TORCH_DTYPES = {"float32": "F32", "float16": "F16", "bfloat16": "BF16", "float64": "F64"}


def torch_load(path: Path) -> Any:
    """`torch.load` that never runs code from the file; refusal is a ConversionError."""
    import pickle

    import torch

    try:
        try:
            return torch.load(path, map_location="cpu", mmap=True, weights_only=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc) and "zip" not in str(exc):
                raise
            # Files from torch < 1.6 (not a zip archive) cannot be memory-mapped.
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        detail = _unpickling_detail(str(exc))
        raise ConversionError(
            f"Refusing to load {path}: it contains pickled objects other than tensors and plain "
            f"data, and unpickling them could run arbitrary code ({detail}). Save the weights "
            "as a plain state dict or as safetensors."
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise ConversionError(f"Cannot read the PyTorch checkpoint {path}: {exc}") from None


def _unpickling_detail(message: str) -> str:
    """The line of torch's long refusal that names what the file asked for."""
    for line in message.splitlines():
        if "WeightsUnpickler error:" in line:
            detail = line.split("WeightsUnpickler error:", 1)[1].strip()
            return detail.split(" was not an allowed", 1)[0]
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return lines[0] if lines else "unsupported pickle content"


class TorchStateDict(Checkpoint):
    """A state dict of torch tensors (memory-mapped by `torch_load`)."""

    def __init__(self, state: Mapping[str, Any], origin: Path):
        import torch

        self.origin = origin
        self._tensors: dict[str, Any] = {}
        self._infos: dict[str, TensorInfo] = {}
        for key, value in state.items():
            if not isinstance(value, torch.Tensor):
                continue
            name = strip_wrapper_prefix(str(key))
            dtype = _TORCH_DTYPES.get(str(value.dtype).removeprefix("torch."), "OTHER")
            self._tensors[name] = value
            self._infos[name] = TensorInfo(name, tuple(value.shape), dtype)

    @property
    def tensors(self) -> Mapping[str, TensorInfo]:
        return self._infos

    def load(self, name: str) -> np.ndarray:
        import torch

        tensor = self._tensors[name].detach()
        if tensor.dtype not in (torch.float32, torch.float16):
            tensor = tensor.to(torch.float32)
        return tensor.contiguous().numpy()

    def close(self) -> None:
        self._tensors.clear()


def open_torch_state_dict(path: Path) -> TorchStateDict:
    """A .bin/.pt/.pth holding a state dict (or {'state_dict': …} / {'model': …})."""
    obj = torch_load(path)
    state = unwrap_state_dict(obj)
    if state is None:
        raise ConversionError(f"{path} does not contain a state dict of tensors.")
    return TorchStateDict(state, path)


def unwrap_state_dict(obj: Any) -> Mapping[str, Any] | None:
    import torch

    if not isinstance(obj, Mapping):
        return None
    if any(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj
    for key in ("model", "state_dict", "model_state_dict", "module"):
        inner = obj.get(key)
        if isinstance(inner, Mapping) and any(isinstance(v, torch.Tensor) for v in inner.values()):
            return inner
    return None


# -- folders ----------------------------------------------------------------------------------
def open_index(index_path: Path, opener) -> Checkpoint:
    """A sharded checkpoint described by `*.index.json` (its weight_map names the shards)."""
    try:
        weight_map = json.loads(index_path.read_text(encoding="utf-8"))["weight_map"]
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        raise ConversionError(f"{index_path} is not a valid shard index.") from None
    if not isinstance(weight_map, dict) or not all(isinstance(f, str) for f in weight_map.values()):
        raise ConversionError(f"{index_path} is not a valid shard index.")
    files = sorted(set(weight_map.values()))
    missing = [f for f in files if not (index_path.parent / f).is_file()]
    if missing:
        raise ConversionError(
            f"Shards named in {index_path.name} are missing: {', '.join(missing[:5])}."
        )
    parts = [opener(index_path.parent / f) for f in files]
    checkpoint = MultiFile(parts)
    absent = [n for n in weight_map if strip_wrapper_prefix(n) not in checkpoint.tensors]
    if absent:
        raise ConversionError(
            f"Tensors listed in {index_path.name} are missing from their shards: "
            f"{', '.join(absent[:5])}."
        )
    return checkpoint


def open_weights(path: Path) -> Checkpoint:
    """One weights file or shard index, by its name."""
    name = path.name
    if name.endswith(".index.json"):
        opener = SafetensorsFile if ".safetensors" in name else open_torch_state_dict
        return open_index(path, opener)
    if path.suffix == ".safetensors":
        return SafetensorsFile(path)
    return open_torch_state_dict(path)


def open_folder_weights(folder: Path) -> Checkpoint | None:
    """The weights of a Hugging Face folder, preferring safetensors, then PyTorch .bin."""
    for name in ("model.safetensors.index.json", "model.safetensors"):
        if (folder / name).is_file():
            return open_weights(folder / name)
    shards = sorted(folder.glob("*.safetensors"))
    if shards:
        return (
            MultiFile(SafetensorsFile(p) for p in shards)
            if len(shards) > 1
            else (SafetensorsFile(shards[0]))
        )
    if (folder / "pytorch_model.bin.index.json").is_file():
        return open_weights(folder / "pytorch_model.bin.index.json")
    bins = sorted(folder.glob("pytorch_model*.bin"))
    if bins:
        return MultiFile(open_torch_state_dict(p) for p in bins)
    return None
