"""GPT-2: Hugging Face GPT2LMHeadModel (Conv1D weights, stored transposed) and nanoGPT.

nanoGPT uses nn.Linear (no transpose), may drop every bias (`bias=False`: llama.cpp's GPT-2
needs them all, so zeros are written), ties the head to the embedding, and may keep the
causal-mask buffer `attn.bias` in its state dict (skipped).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gguf
import numpy as np

from assistant.errors import ConversionError

from ..source import NANOGPT
from . import register
from .base import Mapper, TensorSpec, find_hparam

T = gguf.MODEL_TENSOR
_CONV1D = (".attn.c_attn.weight", ".attn.c_proj.weight", ".mlp.c_fc.weight", ".mlp.c_proj.weight")


@register("GPT2LMHeadModel", NANOGPT)
class GPT2Mapper(Mapper):
    gguf_arch = gguf.MODEL_ARCH.GPT2
    skip_suffixes = (".attn.bias", ".attn.masked_bias")

    def __init__(self, config: Mapping[str, Any], architecture: str):
        super().__init__(config, architecture)
        c = self.config
        self.nanogpt = architecture == NANOGPT
        self.n_embd = int(find_hparam(c, "n_embd", "hidden_size"))
        self.n_head = int(find_hparam(c, "n_head", "num_attention_heads"))
        self.n_ff = int(c.get("n_inner") or 4 * self.n_embd)
        self.n_ctx = int(find_hparam(c, "n_positions", "n_ctx", "max_position_embeddings"))
        self.eps = float(c.get("layer_norm_epsilon", 1e-5))
        self.has_bias = bool(c.get("bias", True))
        act = c.get("activation_function", "gelu_new")
        if act not in ("gelu_new", "gelu", "gelu_pytorch_tanh", "gelu_fast"):
            raise ConversionError(f"GPT-2 with activation_function={act!r} is not supported.")
        self.exact_gelu = act == "gelu"
        if c.get("scale_attn_by_inverse_layer_idx") or c.get("scale_attn_weights") is False:
            raise ConversionError("GPT-2 with non-standard attention scaling is not supported.")

    @property
    def tied_embeddings(self) -> bool:
        return self.nanogpt or bool(self.config.get("tie_word_embeddings", True))

    def write_hparams(self, w: gguf.GGUFWriter) -> None:
        w.add_context_length(self.n_ctx)
        w.add_embedding_length(self.n_embd)
        w.add_block_count(self.n_layer)
        w.add_feed_forward_length(self.n_ff)
        w.add_head_count(self.n_head)
        w.add_layer_norm_eps(self.eps)

    def specs(self, n_vocab_out: int) -> list[TensorSpec]:
        E, F, n = self.n_embd, self.n_ff, self.tensor_name

        def bias(kind: gguf.MODEL_TENSOR, i: int | None, size: int) -> TensorSpec:
            # Every bias is required by llama.cpp; a bias-free nanoGPT gets zeros.
            return TensorSpec(n(kind, i, ".bias"), (size,), zeros_if_missing=not self.has_bias)

        out = [
            TensorSpec(n(T.TOKEN_EMBD), (n_vocab_out, E)),
            TensorSpec(n(T.POS_EMBD), (self.n_ctx, E)),
        ]
        for i in range(self.n_layer):
            out += [
                TensorSpec(n(T.ATTN_NORM, i), (E,)),
                bias(T.ATTN_NORM, i, E),
                TensorSpec(n(T.ATTN_QKV, i), (3 * E, E)),
                bias(T.ATTN_QKV, i, 3 * E),
                TensorSpec(n(T.ATTN_OUT, i), (E, E)),
                bias(T.ATTN_OUT, i, E),
                TensorSpec(n(T.FFN_NORM, i), (E,)),
                bias(T.FFN_NORM, i, E),
                TensorSpec(n(T.FFN_UP, i), (F, E)),
                bias(T.FFN_UP, i, F),
                TensorSpec(n(T.FFN_DOWN, i), (E, F)),
                bias(T.FFN_DOWN, i, E),
            ]
        out += [TensorSpec(n(T.OUTPUT_NORM), (E,)), bias(T.OUTPUT_NORM, None, E)]
        if not self.tied_embeddings:
            out.append(TensorSpec(n(T.OUTPUT), (n_vocab_out, E)))
        return out

    def _conv1d(self, name: str) -> bool:
        return not self.nanogpt and name.endswith(_CONV1D)

    def source_shape(self, spec: TensorSpec) -> tuple[int, ...]:
        if not self.nanogpt and spec.name.endswith(
            ("attn_qkv.weight", "attn_output.weight", "ffn_up.weight", "ffn_down.weight")
        ):
            return spec.shape[::-1]
        return spec.shape

    def transform(self, source: str, target: str, data: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(data.T) if self._conv1d(source) else data

    def stored_transposed(self, source: str) -> bool:
        return self._conv1d(source)

    def lora_b(self, source: str, target: str, b: np.ndarray) -> np.ndarray:
        return b  # PEFT keeps A and B in nn.Linear order even for Conv1D (fan_in_fan_out)

    def reference_logits(self, weights: Mapping[str, Any], prompts: Sequence[Sequence[int]]) -> Any:
        from ..reference import gpt2_logits

        return gpt2_logits(
            weights,
            prompts,
            n_layer=self.n_layer,
            n_head=self.n_head,
            eps=self.eps,
            conv1d=not self.nanogpt,
            exact_gelu=self.exact_gelu,
        )
