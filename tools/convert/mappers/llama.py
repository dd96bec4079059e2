"""The LLaMA family (Llama 2/3, Mistral, SmolLM, TinyLlama): RMSNorm, rotary, SwiGLU, GQA."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import gguf
import numpy as np

from assistant.errors import ConversionError

from . import register
from .base import Mapper, TensorSpec, find_hparam

T = gguf.MODEL_TENSOR


def rope_settings(config: Mapping[str, Any]) -> tuple[float, dict[str, Any] | None]:
    """(rope base, scaling dict or None) from either the transformers 4 or 5 config layout."""
    params = config.get("rope_parameters") or {}
    scaling = config.get("rope_scaling") or None
    theta = params.get("rope_theta", config.get("rope_theta", 10000.0))
    kind = (
        params.get("rope_type") or (scaling or {}).get("rope_type") or (scaling or {}).get("type")
    )
    if kind in (None, "default"):
        return float(theta), None
    return float(theta), {**(scaling or {}), **params, "rope_type": kind}


def permute_rotary(weights: np.ndarray, n_head: int) -> np.ndarray:
    """Hugging Face stores q/k rows as [first halves | second halves] per head (rotate-half);
    llama.cpp's LLaMA rope wants the two halves interleaved."""
    rows = weights.shape[0]
    return (
        weights.reshape(n_head, 2, rows // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


@register("LlamaForCausalLM", "MistralForCausalLM", "LLaMAForCausalLM")
class LlamaMapper(Mapper):
    gguf_arch = gguf.MODEL_ARCH.LLAMA
    skip_suffixes = ("rotary_emb.inv_freq",)
    permute_qk = True
    qkv_bias = False
    qk_norm = False  # Qwen3: a per-head RMSNorm on q and k before rope

    def __init__(self, config: Mapping[str, Any], architecture: str):
        super().__init__(config, architecture)
        c = self.config
        self.n_embd = int(find_hparam(c, "hidden_size"))
        self.n_ff = int(find_hparam(c, "intermediate_size"))
        self.n_head = int(find_hparam(c, "num_attention_heads"))
        self.n_head_kv = int(find_hparam(c, "num_key_value_heads", default=self.n_head))
        self.head_dim = int(c.get("head_dim") or self.n_embd // self.n_head)
        self.eps = float(find_hparam(c, "rms_norm_eps", default=1e-6))
        self.rope_theta, self.rope = rope_settings(c)
        # Llama's attention_bias puts a bias on q, k, v and o; Qwen2 always has q/k/v ones.
        self.out_bias = bool(c.get("attention_bias", False))
        self.qkv_bias = self.qkv_bias or self.out_bias
        act = c.get("hidden_act", "silu")
        if act not in ("silu", "swish"):
            raise ConversionError(f"{architecture} with hidden_act={act!r} is not supported.")
        kind = (self.rope or {}).get("rope_type")
        if kind not in (None, "linear", "llama3", "yarn"):
            raise ConversionError(f"Rope scaling {kind!r} is not supported for {architecture}.")
        needed = {"linear": ("factor",), "llama3": ("factor",)}.get(kind, ())
        if kind == "yarn":
            needed = ("factor", "original_max_position_embeddings")
        for key in needed:
            if (self.rope or {}).get(key) is None:
                raise ConversionError(f"config.json: rope scaling {kind!r} needs {key}.")
        if self.permute_qk and self.head_dim % 2:
            raise ConversionError(
                f"config.json: the head size {self.head_dim} is odd; rotary embeddings need "
                "an even one."
            )

    def write_hparams(self, w: gguf.GGUFWriter) -> None:
        w.add_context_length(int(find_hparam(self.config, "max_position_embeddings")))
        w.add_embedding_length(self.n_embd)
        w.add_block_count(self.n_layer)
        w.add_feed_forward_length(self.n_ff)
        w.add_head_count(self.n_head)
        w.add_head_count_kv(self.n_head_kv)
        w.add_layer_norm_rms_eps(self.eps)
        w.add_rope_freq_base(self.rope_theta)
        w.add_rope_dimension_count(self.head_dim)
        w.add_vocab_size(self.n_vocab)
        if self.head_dim != self.n_embd // self.n_head:
            w.add_key_length(self.head_dim)
            w.add_value_length(self.head_dim)
        rope = self.rope or {}
        if rope.get("rope_type") == "linear":
            w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
            w.add_rope_scaling_factor(float(rope["factor"]))
        elif rope.get("rope_type") == "yarn":
            w.add_rope_scaling_type(gguf.RopeScalingType.YARN)
            w.add_rope_scaling_factor(float(rope["factor"]))
            w.add_rope_scaling_orig_ctx_len(int(rope["original_max_position_embeddings"]))

    def specs(self, n_vocab_out: int) -> list[TensorSpec]:
        E, F, q_rows = self.n_embd, self.n_ff, self.n_head * self.head_dim
        kv_rows = self.n_head_kv * self.head_dim
        n = self.tensor_name
        out = [TensorSpec(n(T.TOKEN_EMBD), (n_vocab_out, E))]
        if (self.rope or {}).get("rope_type") == "llama3":
            out.append(
                TensorSpec(n(T.ROPE_FREQS), (self.head_dim // 2,), make=self._llama3_factors)
            )
        for i in range(self.n_layer):
            out += [
                TensorSpec(n(T.ATTN_NORM, i), (E,)),
                TensorSpec(n(T.ATTN_Q, i), (q_rows, E)),
                TensorSpec(n(T.ATTN_K, i), (kv_rows, E)),
                TensorSpec(n(T.ATTN_V, i), (kv_rows, E)),
                TensorSpec(n(T.ATTN_OUT, i), (E, q_rows)),
                TensorSpec(n(T.FFN_NORM, i), (E,)),
                TensorSpec(n(T.FFN_GATE, i), (F, E)),
                TensorSpec(n(T.FFN_UP, i), (F, E)),
                TensorSpec(n(T.FFN_DOWN, i), (E, F)),
            ]
            if self.out_bias:
                out.append(TensorSpec(n(T.ATTN_OUT, i, ".bias"), (E,)))
            if self.qk_norm:
                out += [
                    TensorSpec(n(T.ATTN_Q_NORM, i), (self.head_dim,)),
                    TensorSpec(n(T.ATTN_K_NORM, i), (self.head_dim,)),
                ]
            if self.qkv_bias:
                out += [
                    TensorSpec(n(T.ATTN_Q, i, ".bias"), (q_rows,)),
                    TensorSpec(n(T.ATTN_K, i, ".bias"), (kv_rows,)),
                    TensorSpec(n(T.ATTN_V, i, ".bias"), (kv_rows,)),
                ]
        out.append(TensorSpec(n(T.OUTPUT_NORM), (E,)))
        if not self.tied_embeddings:
            out.append(TensorSpec(n(T.OUTPUT), (n_vocab_out, E)))
        return out

    def transform(self, source: str, target: str, data: np.ndarray) -> np.ndarray:
        if self.permute_qk and ".attn_q." in target:
            return permute_rotary(data, self.n_head)
        if self.permute_qk and ".attn_k." in target:
            return permute_rotary(data, self.n_head_kv)
        return data

    def _llama3_factors(self) -> np.ndarray:
        """Per-frequency divisors llama.cpp applies for Llama 3.1-style rope scaling."""
        rope, dim = self.rope or {}, self.head_dim
        factor = float(rope["factor"])
        low, high = (
            float(rope.get("low_freq_factor", 1.0)),
            float(rope.get("high_freq_factor", 4.0)),
        )
        old = float(rope.get("original_max_position_embeddings", 8192))
        factors = []
        for i in range(0, dim, 2):
            wavelen = 2 * math.pi * self.rope_theta ** (i / dim)
            if wavelen < old / high:
                factors.append(1.0)
            elif wavelen > old / low:
                factors.append(factor)
            else:
                smooth = (old / wavelen - low) / (high - low)
                factors.append(1.0 / ((1 - smooth) / factor + smooth))
        return np.asarray(factors, dtype=np.float32)

    def reference_logits(self, weights: Mapping[str, Any], prompts: Sequence[Sequence[int]]) -> Any:
        from ..reference import llama_logits

        return llama_logits(
            weights,
            prompts,
            n_layer=self.n_layer,
            n_head=self.n_head,
            n_head_kv=self.n_head_kv,
            head_dim=self.head_dim,
            eps=self.eps,
            rope_theta=self.rope_theta,
            rope=self.rope,
            tied=self.tied_embeddings,
            qkv_bias=self.qkv_bias,
            out_bias=self.out_bias,
            qk_norm=self.qk_norm,
        )
