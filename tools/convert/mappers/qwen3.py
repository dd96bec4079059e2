"""Qwen3: the Qwen2 layout without q/k/v biases, plus a per-head RMSNorm on q and k (applied
before rope); llama.cpp's Qwen3 uses NeoX rope (no permutation) and stores the head size."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gguf

from assistant.errors import ConversionError

from . import register
from .llama import LlamaMapper


@register("Qwen3ForCausalLM")
class Qwen3Mapper(LlamaMapper):
    gguf_arch = gguf.MODEL_ARCH.QWEN3
    permute_qk = False
    qk_norm = True

    def __init__(self, config: Mapping[str, Any], architecture: str):
        super().__init__(config, architecture)
        if self.qkv_bias:
            raise ConversionError("Qwen3 with attention_bias=true is not supported.")
        if config.get("use_sliding_window"):
            raise ConversionError("Qwen3 with use_sliding_window=true is not supported.")
        if (self.rope or {}).get("rope_type") == "llama3":
            raise ConversionError("Qwen3 with llama3 rope scaling is not supported.")

    def write_hparams(self, w: gguf.GGUFWriter) -> None:
        super().write_hparams(w)
        if self.head_dim == self.n_embd // self.n_head:  # else written by the LLaMA mapper
            w.add_key_length(self.head_dim)
            w.add_value_length(self.head_dim)
