"""PyTorch forwards for Gemma 2/3 and Phi-3, in the style of `reference` (all prompts at once,
one layer's tensors in memory at a time, the checkpoint's own names and layouts)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from .reference import (
    Prompts,
    Weights,
    attention,
    embed,
    heads,
    layer,
    merge_heads,
    rms_norm,
    rope_inv_freq,
    rotary,
    rotate,
)


def _softcap(x: torch.Tensor, cap: float | None) -> torch.Tensor:
    return x if cap is None else torch.tanh(x / cap) * cap


@torch.no_grad()
def gemma_logits(
    weights: Weights,
    prompts: Prompts,
    *,
    n_layer: int,
    n_head: int,
    n_head_kv: int,
    head_dim: int,
    eps: float,
    windows: Sequence[int | None],
    ropes: Sequence[Mapping[str, Any]],
    scale: float,
    attn_softcap: float | None,
    final_softcap: float | None,
    qk_norm: bool,
    tied: bool,
) -> list[torch.Tensor]:
    """Gemma 2 / 3: embeddings × √hidden, (1 + w) RMSNorms before and after attention and MLP,
    GeGLU (tanh GELU), per-layer sliding window and rope, optional soft-capping and q/k norms."""
    n_embd = weights["model.norm.weight"].shape[0]
    xs = embed(weights, "model.embed_tokens.weight", prompts, scale=n_embd**0.5)
    for i in range(n_layer):
        w = layer(weights, f"model.layers.{i}.")
        inv = rope_inv_freq(head_dim, float(ropes[i]["rope_theta"]), ropes[i])

        def norm(x: torch.Tensor, name: str, w=w) -> torch.Tensor:
            return rms_norm(x, w[name + ".weight"], eps, offset=1.0)

        def block(x: torch.Tensor, w=w, i=i, inv=inv, norm=norm) -> torch.Tensor:
            cos, sin = rotary(x.shape[0], inv)
            h = norm(x, "input_layernorm")
            q = heads(h @ w["self_attn.q_proj.weight"].T, n_head, head_dim)
            k = heads(h @ w["self_attn.k_proj.weight"].T, n_head_kv, head_dim)
            v = heads(h @ w["self_attn.v_proj.weight"].T, n_head_kv, head_dim)
            if qk_norm:
                q, k = norm(q, "self_attn.q_norm"), norm(k, "self_attn.k_norm")
            q, k = rotate(q, cos, sin), rotate(k, cos, sin)
            att = attention(q, k, v, scale=scale, window=windows[i], softcap=attn_softcap)
            h = merge_heads(att) @ w["self_attn.o_proj.weight"].T
            x = x + norm(h, "post_attention_layernorm")
            h = norm(x, "pre_feedforward_layernorm")
            gate = F.gelu(h @ w["mlp.gate_proj.weight"].T, approximate="tanh")
            h = (gate * (h @ w["mlp.up_proj.weight"].T)) @ w["mlp.down_proj.weight"].T
            return x + norm(h, "post_feedforward_layernorm")

        xs = [block(x) for x in xs]
        del w, block, norm  # the closures hold the layer too: free it before the next one
    final = weights["model.norm.weight"]
    head = weights["model.embed_tokens.weight" if tied else "lm_head.weight"]
    return [_softcap(rms_norm(x, final, eps, offset=1.0) @ head.T, final_softcap) for x in xs]


@torch.no_grad()
def phi3_logits(
    weights: Weights,
    prompts: Prompts,
    *,
    n_layer: int,
    n_head: int,
    n_head_kv: int,
    head_dim: int,
    rotary_dim: int,
    eps: float,
    rope_theta: float,
    tied: bool,
    freq_factors: Any = None,
    attn_factor: float = 1.0,
) -> list[torch.Tensor]:
    """Phi-3: the LLaMA block with fused qkv and gate/up projections (gate first) and rotary
    embeddings on the first `rotary_dim` features of each head; longrope divides each frequency
    by its factor (the short ones: the prompts are within the original context) and scales
    cos and sin by `attn_factor`."""
    xs = embed(weights, "model.embed_tokens.weight", prompts)
    inv = rope_inv_freq(rotary_dim, rope_theta, None)
    if freq_factors is not None:
        inv = inv / torch.as_tensor(freq_factors, dtype=torch.float32)
    q_rows, kv_rows = n_head * head_dim, n_head_kv * head_dim
    for i in range(n_layer):
        w = layer(weights, f"model.layers.{i}.")

        def block(x: torch.Tensor, w=w) -> torch.Tensor:
            cos, sin = rotary(x.shape[0], inv)
            cos, sin = cos * attn_factor, sin * attn_factor
            h = rms_norm(x, w["input_layernorm.weight"], eps)
            q, k, v = (h @ w["self_attn.qkv_proj.weight"].T).split((q_rows, kv_rows, kv_rows), -1)
            q = rotate(heads(q, n_head, head_dim), cos, sin)
            k = rotate(heads(k, n_head_kv, head_dim), cos, sin)
            att = merge_heads(attention(q, k, heads(v, n_head_kv, head_dim)))
            x = x + att @ w["self_attn.o_proj.weight"].T
            h = rms_norm(x, w["post_attention_layernorm.weight"], eps)
            gate, up = (h @ w["mlp.gate_up_proj.weight"].T).chunk(2, dim=-1)
            return x + (up * F.silu(gate)) @ w["mlp.down_proj.weight"].T

        xs = [block(x) for x in xs]
        del w, block  # the closure holds the layer too: free it before the next one
    final = weights["model.norm.weight"]
    head = weights["model.embed_tokens.weight" if tied else "lm_head.weight"]
    return [rms_norm(x, final, eps) @ head.T for x in xs]
