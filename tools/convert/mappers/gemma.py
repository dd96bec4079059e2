"""Gemma 2 and Gemma 3 (text): GeGLU, four RMSNorms per block, embeddings scaled by √hidden.

Their RMSNorm multiplies by (1 + weight): llama.cpp's multiplies by the weight, so the +1 is
added here to every norm. llama.cpp's Gemma graphs scale the embeddings themselves, apply the
soft-capping stated in the header, use NeoX rope (no permutation) and mark each layer sliding or
global from `sliding_window_pattern` (written per layer from the config's layer types). Gemma 3
adds per-head q/k norms and a separate rope base (and scaling) for its global layers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gguf
import numpy as np

from assistant.errors import ConversionError

from . import register
from .base import Mapper, TensorSpec, find_hparam

T = gguf.MODEL_TENSOR
_GELU = ("gelu_pytorch_tanh", "gelu_tanh", "gelu_new", "gelu_fast")


def gemma_rope(config: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(global, local) rope settings, each with rope_theta and rope_type, from either the
    transformers 5 layout (`rope_parameters` per layer type) or the older flat one."""
    params = config.get("rope_parameters") or {}
    if "full_attention" in params or "sliding_attention" in params:
        full = dict(params.get("full_attention") or {})
        local = dict(params.get("sliding_attention") or full)
    else:
        full = {**(config.get("rope_scaling") or {}), **params}
        full.setdefault("rope_theta", config.get("rope_theta", 10000.0))
        local = {"rope_theta": config.get("rope_local_base_freq", full["rope_theta"])}
    for part in (full, local):
        part["rope_type"] = part.get("rope_type") or part.get("type") or "default"
        part.setdefault("rope_theta", 10000.0)
    return full, local


class GemmaMapper(Mapper):
    skip_suffixes = ("rotary_emb.inv_freq",)
    gemma3 = False

    def __init__(self, config: Mapping[str, Any], architecture: str):
        super().__init__(config, architecture)
        c = self.config
        self.n_embd = int(find_hparam(c, "hidden_size"))
        self.n_ff = int(find_hparam(c, "intermediate_size"))
        self.n_head = int(find_hparam(c, "num_attention_heads"))
        self.n_head_kv = int(find_hparam(c, "num_key_value_heads", default=self.n_head))
        self.head_dim = int(c.get("head_dim") or self.n_embd // self.n_head)
        self.eps = float(find_hparam(c, "rms_norm_eps", default=1e-6))
        self.window = int(c.get("sliding_window") or 0)
        self.sliding = self._layer_types()
        self.rope_global, self.rope_local = gemma_rope(c)
        self.attn_softcap = c.get("attn_logit_softcapping")
        self.final_softcap = c.get("final_logit_softcapping")
        self._check(architecture)

    def _layer_types(self) -> list[bool]:
        """Whether each layer attends through the sliding window."""
        types = self.config.get("layer_types")
        if isinstance(types, list) and len(types) == self.n_layer:
            unknown = sorted({t for t in types if t not in ("sliding_attention", "full_attention")})
            if unknown:
                raise ConversionError(f"config.json: layer_types has unknown kinds {unknown}.")
            return [t == "sliding_attention" for t in types]
        pattern = 2 if not self.gemma3 else int(self.config.get("sliding_window_pattern") or 6)
        return [(i + 1) % pattern != 0 for i in range(self.n_layer)]

    def _check(self, architecture: str) -> None:
        # llama.cpp takes the attention scale from the head size, except for the 27B models
        # (found by their layer count), where it is 1/√(hidden / heads)
        act = self.config.get("hidden_activation") or self.config.get("hidden_act")
        if act not in _GELU:
            raise ConversionError(f"{architecture} with activation {act!r} is not supported.")
        scalar = self.config.get("query_pre_attn_scalar", self.head_dim)
        wide = self.n_layer == (62 if self.gemma3 else 46)
        expected = self.n_embd // self.n_head if wide else self.head_dim
        if scalar != expected:
            raise ConversionError(
                f"{architecture} with query_pre_attn_scalar={scalar} is not supported: llama.cpp "
                f"scales attention by 1/√{expected} for this model size."
            )
        if any(self.sliding) and self.window <= 0:
            raise ConversionError(
                f"config.json: {architecture} has sliding layers but no sliding_window."
            )
        if self.gemma3 and self.attn_softcap is not None:
            raise ConversionError("Gemma 3 with attn_logit_softcapping is not supported.")
        if not self.gemma3 and (self.attn_softcap is None or self.final_softcap is None):
            raise ConversionError(
                "Gemma 2 without attn_logit_softcapping and final_logit_softcapping is not "
                "supported: llama.cpp always soft-caps Gemma 2."
            )
        if self.rope_local["rope_type"] != "default" or self.rope_global["rope_type"] not in (
            "default",
            "linear",
        ):
            raise ConversionError(
                f"{architecture} rope scaling {self.rope_global['rope_type']!r} / "
                f"{self.rope_local['rope_type']!r} is not supported (only linear, on global "
                "layers)."
            )
        if not self.gemma3 and self.rope_global != self.rope_local:
            raise ConversionError("Gemma 2 with rope scaling is not supported.")

    @property
    def tied_embeddings(self) -> bool:
        # llama.cpp's Gemma 2 always reuses the embedding (lm_head, if saved, is a copy of it)
        return not self.gemma3 or bool(self.config.get("tie_word_embeddings", True))

    def write_hparams(self, w: gguf.GGUFWriter) -> None:
        w.add_context_length(int(find_hparam(self.config, "max_position_embeddings")))
        w.add_embedding_length(self.n_embd)
        w.add_block_count(self.n_layer)
        w.add_feed_forward_length(self.n_ff)
        w.add_head_count(self.n_head)
        w.add_head_count_kv(self.n_head_kv)
        w.add_layer_norm_rms_eps(self.eps)
        w.add_key_length(self.head_dim)
        w.add_value_length(self.head_dim)
        w.add_vocab_size(self.n_vocab)
        w.add_rope_freq_base(float(self.rope_global["rope_theta"]))
        w.add_rope_freq_base_swa(float(self.rope_local["rope_theta"]))
        if self.rope_global["rope_type"] == "linear":
            w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
            w.add_rope_scaling_factor(float(self.rope_global["factor"]))
        if self.attn_softcap is not None:
            w.add_attn_logit_softcapping(float(self.attn_softcap))
        if self.final_softcap is not None:
            w.add_final_logit_softcapping(float(self.final_softcap))
        if any(self.sliding) or not self.gemma3:
            w.add_sliding_window(self.window)
            w.add_sliding_window_pattern(self.sliding)

    def specs(self, n_vocab_out: int) -> list[TensorSpec]:
        E, F, d, n = self.n_embd, self.n_ff, self.head_dim, self.tensor_name
        out = [TensorSpec(n(T.TOKEN_EMBD), (n_vocab_out, E))]
        for i in range(self.n_layer):
            out += [
                TensorSpec(n(T.ATTN_NORM, i), (E,)),
                TensorSpec(n(T.ATTN_Q, i), (self.n_head * d, E)),
                TensorSpec(n(T.ATTN_K, i), (self.n_head_kv * d, E)),
                TensorSpec(n(T.ATTN_V, i), (self.n_head_kv * d, E)),
                TensorSpec(n(T.ATTN_OUT, i), (E, self.n_head * d)),
                TensorSpec(n(T.ATTN_POST_NORM, i), (E,)),
                TensorSpec(n(T.FFN_NORM, i), (E,)),
                TensorSpec(n(T.FFN_GATE, i), (F, E)),
                TensorSpec(n(T.FFN_UP, i), (F, E)),
                TensorSpec(n(T.FFN_DOWN, i), (E, F)),
                TensorSpec(n(T.FFN_POST_NORM, i), (E,)),
            ]
            if self.gemma3:
                out += [
                    TensorSpec(n(T.ATTN_Q_NORM, i), (d,)),
                    TensorSpec(n(T.ATTN_K_NORM, i), (d,)),
                ]
        out.append(TensorSpec(n(T.OUTPUT_NORM), (E,)))
        if not self.tied_embeddings:
            out.append(TensorSpec(n(T.OUTPUT), (n_vocab_out, E)))
        return out

    def transform(self, source: str, target: str, data: np.ndarray) -> np.ndarray:
        if source.endswith("norm.weight"):
            return data.astype(np.float32) + 1.0
        return data

    def reference_logits(self, weights: Mapping[str, Any], prompts: Sequence[Sequence[int]]) -> Any:
        from ..reference_gemma import gemma_logits

        return gemma_logits(
            weights,
            prompts,
            n_layer=self.n_layer,
            n_head=self.n_head,
            n_head_kv=self.n_head_kv,
            head_dim=self.head_dim,
            eps=self.eps,
            windows=[self.window if s else None for s in self.sliding],
            ropes=[self.rope_local if s else self.rope_global for s in self.sliding],
            scale=float(self.config.get("query_pre_attn_scalar", self.head_dim)) ** -0.5,
            attn_softcap=self.attn_softcap,
            final_softcap=self.final_softcap,
            qk_norm=self.gemma3,
            tied=self.tied_embeddings,
        )


@register("Gemma2ForCausalLM")
class Gemma2Mapper(GemmaMapper):
    gguf_arch = gguf.MODEL_ARCH.GEMMA2


@register("Gemma3ForCausalLM")
class Gemma3Mapper(GemmaMapper):
    gguf_arch = gguf.MODEL_ARCH.GEMMA3
    gemma3 = True
