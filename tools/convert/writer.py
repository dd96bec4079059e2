"""Write a GGUF file with the `gguf` package: metadata first, then one tensor at a time.

The file is written under a temporary name beside the target and renamed into place only
when complete, so an interrupted or failed conversion never leaves a half-written `.gguf`.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import gguf
import numpy as np

from assistant.errors import ConversionError
from assistant.library.sizes import format_bytes

from . import out_types
from .mappers.base import PlannedTensor

Q = gguf.GGMLQuantizationType
DIRECT_TYPES: dict[str, Q] = {name: Q[name.upper()] for name in out_types.DIRECT_TYPES}
FILE_TYPES: dict[str, gguf.LlamaFileType] = {
    "f32": gguf.LlamaFileType.ALL_F32,
    "f16": gguf.LlamaFileType.MOSTLY_F16,
    "bf16": gguf.LlamaFileType.MOSTLY_BF16,
    "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
}
_DISK_MARGIN = 32 * 1024 * 1024
_ENCODE_CHUNK = 256 * 1024  # bytes of float32 rows per quantization step

Metadata = Callable[[gguf.GGUFWriter], None]
OnTensor = Callable[[str, int], None]  # (tensor name, bytes written)


def tensor_type(shape: Sequence[int], target: Q) -> Q:
    """Norms, biases and other 1-D tensors stay F32; rows that Q8_0 cannot block go F16."""
    if len(shape) < 2:
        return Q.F32
    if target == Q.Q8_0 and shape[-1] % gguf.GGML_QUANT_SIZES[Q.Q8_0][0]:
        return Q.F16
    return target


def encoded_nbytes(shape: Sequence[int], qtype: Q) -> int:
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    n = int(np.prod(shape, dtype=np.int64))
    return n // block * size


def encode(data: np.ndarray, qtype: Q) -> np.ndarray:
    if qtype == Q.F32:
        return data.astype(np.float32, copy=False)
    if qtype == Q.F16:
        return data.astype(np.float16, copy=False)
    # Block types go a few MB of rows at a time: the quantizer's temporaries are several
    # times its input, which must not be the whole (say) embedding matrix.
    rows = data.reshape(-1, data.shape[-1])
    row_bytes = encoded_nbytes((rows.shape[1],), qtype)
    out = np.empty((rows.shape[0], row_bytes), dtype=np.uint8)
    step = max(1, _ENCODE_CHUNK // (rows.shape[1] * 4))
    for start in range(0, rows.shape[0], step):
        chunk = rows[start : start + step].astype(np.float32, copy=False)
        out[start : start + step] = gguf.quants.quantize(chunk, qtype)
    return out.reshape(*data.shape[:-1], row_bytes)


def check_free_space(folder: Path, needed: int) -> None:
    try:
        free = shutil.disk_usage(folder).free
    except OSError as exc:
        raise ConversionError(f"Cannot write to {folder}: {exc.strerror}.") from None
    if free < needed + _DISK_MARGIN:
        raise ConversionError(
            f"Not enough free disk space in {folder}: the conversion needs about "
            f"{format_bytes(needed)}, {format_bytes(free)} is free."
        )


def partial_path(target: Path, tag: str = "partial") -> Path:
    return target.with_name(f".{target.name}.{os.getpid()}.{tag}")


@contextmanager
def atomic_output(target: Path, tag: str = "partial") -> Iterator[Path]:
    """Yields a temporary path; it becomes `target` only if the block completes."""
    tmp = partial_path(target, tag)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class GGUFFile:
    """The tensors of a plan, typed for one output type, and their size."""

    def __init__(self, plan: Sequence[PlannedTensor], target: str):
        if target not in DIRECT_TYPES:
            raise ConversionError(f"{target} cannot be written directly.")
        self.plan = list(plan)
        self.target = target
        self.types = [tensor_type(t.shape, DIRECT_TYPES[target]) for t in self.plan]
        self.tensor_bytes = sum(
            encoded_nbytes(t.shape, q) for t, q in zip(self.plan, self.types, strict=True)
        )

    def estimated_size(self, vocab_size: int) -> int:
        return self.tensor_bytes + 64 * vocab_size + 1024 * 1024

    def write(
        self,
        path: Path,
        arch: str,
        metadata: Metadata,
        on_tensor: OnTensor | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        writer = gguf.GGUFWriter(path=None, arch=arch)
        try:
            metadata(writer)
            writer.add_file_type(int(FILE_TYPES[self.target]))
            writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
            for tensor, qtype in zip(self.plan, self.types, strict=True):
                if qtype in (Q.F32, Q.F16):
                    dtype = np.dtype(np.float32 if qtype == Q.F32 else np.float16)
                    writer.add_tensor_info(
                        tensor.name, tensor.shape, dtype, encoded_nbytes(tensor.shape, qtype)
                    )
                else:
                    byte_shape = gguf.quant_shape_to_byte_shape(tensor.shape, qtype)
                    writer.add_tensor_info(
                        tensor.name,
                        byte_shape,
                        np.dtype(np.uint8),
                        encoded_nbytes(tensor.shape, qtype),
                        raw_dtype=qtype,
                    )
            writer.write_header_to_file(path)
            writer.write_kv_data_to_file()
            writer.write_ti_data_to_file()
            for tensor, qtype in zip(self.plan, self.types, strict=True):
                if cancel is not None and cancel.is_set():
                    raise ConversionError("Conversion cancelled.")
                data = self._load(tensor)
                encoded = encode(data, qtype)
                del data
                writer.write_tensor_data(encoded)
                if on_tensor is not None:
                    on_tensor(tensor.name, encoded.nbytes)
                del encoded
            writer.flush()
            os.fsync(writer.fout[0].fileno())  # type: ignore[index]
        finally:
            writer.close()

    @staticmethod
    def _load(tensor: PlannedTensor) -> np.ndarray:
        data = tensor.load()
        if tuple(data.shape) != tuple(tensor.shape):
            raise ConversionError(
                f"Internal error: {tensor.name} came out as {list(data.shape)}, "
                f"expected {list(tensor.shape)}."
            )
        return data
