"""Phi-3, Phi-3.5-mini, Phi-4-mini: the LLaMA block with a fused qkv projection and a fused
gate/up projection, which llama.cpp reads as they are (attn_qkv, ffn_up of 2× rows, gate first).
NeoX rope (no permutation), possibly on part of each head (partial_rotary_factor).

Long-context variants ("longrope", older "su") divide each rope frequency by a per-frequency
factor, short ones within the original context and long ones past it, and scale cos/sin by an
attention factor: written as llama.cpp's rope_factors_short/long tensors and
rope.scaling.attn_factor. llama.cpp picks the long factors for a whole context longer than the
original one, transformers for the positions past it: the two agree within the original context.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import gguf
import numpy as np

from assistant.errors import ConversionError

from . import register
from .base import Mapper, TensorSpec, find_hparam
from .llama import rope_settings

T = gguf.MODEL_TENSOR


@register("Phi3ForCausalLM")
class Phi3Mapper(Mapper):
    gguf_arch = gguf.MODEL_ARCH.PHI3
    skip_suffixes = ("rotary_emb.inv_freq",)

    def __init__(self, config: Mapping[str, Any], architecture: str):
        super().__init__(config, architecture)
        c = self.config
        self.n_embd = int(find_hparam(c, "hidden_size"))
        self.n_ff = int(find_hparam(c, "intermediate_size"))
        self.n_head = int(find_hparam(c, "num_attention_heads"))
        self.n_head_kv = int(find_hparam(c, "num_key_value_heads", default=self.n_head))
        self.head_dim = self.n_embd // self.n_head
        self.eps = float(find_hparam(c, "rms_norm_eps", default=1e-5))
        self.rope_theta, self.rope = rope_settings(c)
        params = c.get("rope_parameters") or {}
        partial = float(params.get("partial_rotary_factor", c.get("partial_rotary_factor", 1.0)))
        self.rotary_dim = int(partial * self.n_embd) // self.n_head
        if c.get("head_dim") not in (None, self.head_dim):
            raise ConversionError(
                f"Phi-3 with head_dim={c['head_dim']} (not hidden_size / heads) is not supported."
            )
        self.long_rope = self._long_rope()
        if self.rotary_dim % 2 or not 0 < self.rotary_dim <= self.head_dim:
            raise ConversionError(f"config.json: partial_rotary_factor {partial} is not usable.")
        if c.get("hidden_act", "silu") not in ("silu", "swish"):
            raise ConversionError(f"Phi-3 with hidden_act={c['hidden_act']!r} is not supported.")
        window = c.get("sliding_window")
        if window and window < self.context_length:
            self.notes.append(
                f"The model uses a {window}-token sliding window, which llama.cpp's Phi-3 does "
                "not apply: past that many tokens its output differs from the original."
            )

    def write_hparams(self, w: gguf.GGUFWriter) -> None:
        c = self.config
        w.add_context_length(self.context_length)
        w.add_rope_scaling_orig_ctx_len(
            int(c.get("original_max_position_embeddings") or self.context_length)
        )
        w.add_embedding_length(self.n_embd)
        w.add_feed_forward_length(self.n_ff)
        w.add_block_count(self.n_layer)
        w.add_head_count(self.n_head)
        w.add_head_count_kv(self.n_head_kv)
        w.add_layer_norm_rms_eps(self.eps)
        w.add_rope_dimension_count(self.rotary_dim)
        w.add_rope_freq_base(self.rope_theta)
        if self.long_rope is not None:
            w.add_rope_scaling_attn_factors(self.long_rope[2])
        w.add_sliding_window(int(c.get("sliding_window") or 0))
        w.add_vocab_size(self.n_vocab)

    def specs(self, n_vocab_out: int) -> list[TensorSpec]:
        E, F, n = self.n_embd, self.n_ff, self.tensor_name
        qkv_rows = (self.n_head + 2 * self.n_head_kv) * self.head_dim
        out = [TensorSpec(n(T.TOKEN_EMBD), (n_vocab_out, E))]
        if self.long_rope is not None:
            short, long, _ = self.long_rope
            half = (self.rotary_dim // 2,)
            out += [
                TensorSpec(n(T.ROPE_FACTORS_LONG), half, make=lambda: long),
                TensorSpec(n(T.ROPE_FACTORS_SHORT), half, make=lambda: short),
            ]
        for i in range(self.n_layer):
            out += [
                TensorSpec(n(T.ATTN_NORM, i), (E,)),
                TensorSpec(n(T.ATTN_QKV, i), (qkv_rows, E)),
                TensorSpec(n(T.ATTN_OUT, i), (E, E)),
                TensorSpec(n(T.FFN_NORM, i), (E,)),
                TensorSpec(n(T.FFN_UP, i), (2 * F, E)),
                TensorSpec(n(T.FFN_DOWN, i), (E, F)),
            ]
        out.append(TensorSpec(n(T.OUTPUT_NORM), (E,)))
        if not self.tied_embeddings:
            out.append(TensorSpec(n(T.OUTPUT), (n_vocab_out, E)))
        return out

    def reference_logits(self, weights: Mapping[str, Any], prompts: Sequence[Sequence[int]]) -> Any:
        from ..reference_gemma import phi3_logits

        return phi3_logits(
            weights,
            prompts,
            n_layer=self.n_layer,
            n_head=self.n_head,
            n_head_kv=self.n_head_kv,
            head_dim=self.head_dim,
            rotary_dim=self.rotary_dim,
            eps=self.eps,
            rope_theta=self.rope_theta,
            tied=self.tied_embeddings,
            freq_factors=None if self.long_rope is None else self.long_rope[0],
            attn_factor=1.0 if self.long_rope is None else self.long_rope[2],
        )

    def _long_rope(self) -> tuple[np.ndarray, np.ndarray, float] | None:
        """(short factors, long factors, attention factor) of longrope scaling, or None."""
        rope = self.rope
        if rope is None:
            return None
        kind = str(rope.get("rope_type", "")).lower()
        if kind not in ("longrope", "su"):
            raise ConversionError(f"Phi-3 with rope scaling {kind!r} is not supported.")
        orig = rope.get("original_max_position_embeddings") or self.config.get(
            "original_max_position_embeddings"
        )
        factors = []
        for key in ("short_factor", "long_factor"):
            values = rope.get(key)
            ok = isinstance(values, list) and len(values) == self.rotary_dim // 2
            if not ok or not all(isinstance(v, int | float) and v > 0 for v in values):
                raise ConversionError(
                    f"config.json: rope scaling {key} must list {self.rotary_dim // 2} positive "
                    "numbers (one per rotary frequency)."
                )
            factors.append(np.asarray(values, dtype=np.float32))
        if not isinstance(orig, int) or orig <= 0:
            raise ConversionError("config.json: longrope needs original_max_position_embeddings.")
        attention = rope.get("attention_factor")
        if attention is None:  # transformers' default, from the context extension
            scale = rope.get("factor") or self.context_length / orig
            attention = math.sqrt(1 + math.log(scale) / math.log(orig)) if scale > 1 else 1.0
        self.notes.append(
            f"Long-context rope: past {orig} tokens of context llama.cpp uses the long factors "
            "for the whole context."
        )
        return factors[0], factors[1], float(attention)
