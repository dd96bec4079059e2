"""Qwen2: the LLaMA layout plus q/k/v biases; llama.cpp's Qwen2 uses NeoX rope (no permute)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gguf

from assistant.errors import ConversionError

from . import register
from .llama import LlamaMapper


@register("Qwen2ForCausalLM")
class Qwen2Mapper(LlamaMapper):
    gguf_arch = gguf.MODEL_ARCH.QWEN2
    permute_qk = False
    qkv_bias = True

    def __init__(self, config: Mapping[str, Any], architecture: str):
        super().__init__(config, architecture)
        if config.get("use_sliding_window"):
            raise ConversionError("Qwen2 with use_sliding_window=true is not supported.")
        if (self.rope or {}).get("rope_type") == "llama3":
            raise ConversionError("Qwen2 with llama3 rope scaling is not supported.")
