"""The weight types a conversion can write: one list for the converter, its CLI and the app.

Importing it is cheap (no numpy, no gguf), so building the `assistant` parser or the convert
dialog does not load the converter.
"""

from __future__ import annotations

DIRECT_TYPES = ("f32", "f16", "bf16", "q8_0")  # written by the gguf package
# llama_ftype values (llama.h) of the types llama.cpp's own quantizer writes
QUANTIZED_TYPES: dict[str, int] = {"q4_0": 2, "q4_k_m": 15, "q5_k_m": 17, "q6_k": 18}
OUT_TYPES = (*DIRECT_TYPES, *QUANTIZED_TYPES)
