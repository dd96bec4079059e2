"""llama.cpp's own quantizer (`llama_model_quantize`) for q4_0 and the K-quants."""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

from assistant.errors import ConversionError

from .out_types import QUANTIZED_TYPES

# Rough size of each against an f16 file: K-quant mixes keep some tensors at more bits.
SIZE_VS_F16: dict[str, float] = {"q4_0": 0.32, "q4_k_m": 0.36, "q5_k_m": 0.42, "q6_k": 0.47}


def quantize_file(src: Path, dst: Path, kind: str, threads: int | None = None) -> None:
    """Quantize the GGUF `src` into `dst` (written by llama.cpp, no atomicity of its own)."""
    import llama_cpp

    from assistant.engine import llama_log

    if kind not in QUANTIZED_TYPES:
        raise ConversionError(f"{kind} is not a llama.cpp quantization type.")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = QUANTIZED_TYPES[kind]
    params.nthread = threads or os.cpu_count() or 1
    marker = llama_log.mark()
    rc = llama_cpp.llama_model_quantize(os.fsencode(src), os.fsencode(dst), ctypes.byref(params))
    if rc != 0:
        reason = llama_log.reason_since(marker) or f"error code {rc}"
        raise ConversionError(f"llama.cpp could not quantize to {kind}: {reason}.")
