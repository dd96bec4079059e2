"""PyTorch forwards written from the papers' definitions, on the checkpoint's own tensors.

`--verify` compares llama.cpp's logits on the GGUF with these. They read the source names
and layouts (no permutation, Conv1D as stored), so an error in the mapping shows up as a
difference. The tests check them against the `transformers` implementations.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

Weights = Mapping[str, torch.Tensor]


def load_weights(checkpoint: Any) -> dict[str, torch.Tensor]:
    """Every tensor of a checkpoint as float32 torch tensors (the whole model in memory)."""
    return {
        name: torch.from_numpy(np.array(checkpoint.load(name), dtype=np.float32))
        for name in checkpoint.tensors
    }


def rope_inv_freq(dim: int, theta: float, rope: Mapping[str, Any] | None) -> torch.Tensor:
    inv = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
    kind = (rope or {}).get("rope_type") or (rope or {}).get("type") or "default"
    if kind == "llama3":
        factor = float(rope["factor"])
        low, high = (
            float(rope.get("low_freq_factor", 1.0)),
            float(rope.get("high_freq_factor", 4.0)),
        )
        old = float(rope.get("original_max_position_embeddings", 8192))
        wavelen = 2 * math.pi / inv
        smooth = (old / wavelen - low) / (high - low)
        scaled = torch.where(wavelen > old / low, inv / factor, inv)
        middle = (wavelen <= old / low) & (wavelen >= old / high)
        inv = torch.where(middle, (1 - smooth) * inv / factor + smooth * inv, scaled)
    elif kind == "linear":
        inv = inv / float(rope["factor"])
    return inv.to(torch.float32)


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def _attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """q [h, T, d], k/v [h_kv, T, d]; causal; kv heads shared by groups of query heads."""
    groups = q.shape[0] // k.shape[0]
    k = k.repeat_interleave(groups, dim=0)
    v = v.repeat_interleave(groups, dim=0)
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


@torch.no_grad()
def llama_logits(
    weights: Weights,
    ids: Sequence[int],
    *,
    n_layer: int,
    n_head: int,
    n_head_kv: int,
    head_dim: int,
    eps: float,
    rope_theta: float,
    rope: Mapping[str, Any] | None,
    tied: bool,
    qkv_bias: bool,
    out_bias: bool = False,
) -> torch.Tensor:
    """LLaMA / Mistral / Qwen2: RMSNorm, rotary (rotate-half layout), SwiGLU, GQA."""
    w = weights.__getitem__
    x = w("model.embed_tokens.weight")[torch.as_tensor(list(ids))]
    T = x.shape[0]
    inv = rope_inv_freq(head_dim, rope_theta, rope)
    angles = torch.outer(torch.arange(T, dtype=torch.float32), inv)
    cos = torch.cat((angles, angles), -1).cos()
    sin = torch.cat((angles, angles), -1).sin()
    for i in range(n_layer):
        p = f"model.layers.{i}."
        h = _rms_norm(x, w(p + "input_layernorm.weight"), eps)

        def proj(name: str, heads: int, h=h, p=p) -> torch.Tensor:
            out = h @ w(f"{p}self_attn.{name}.weight").T
            if qkv_bias:
                out = out + w(f"{p}self_attn.{name}.bias")
            return out.view(T, heads, head_dim).transpose(0, 1)

        q = _rotate(proj("q_proj", n_head), cos, sin)
        k = _rotate(proj("k_proj", n_head_kv), cos, sin)
        v = proj("v_proj", n_head_kv)
        att = _attention(q, k, v).transpose(0, 1).reshape(T, n_head * head_dim)
        x = x + att @ w(p + "self_attn.o_proj.weight").T
        if out_bias:
            x = x + w(p + "self_attn.o_proj.bias")
        h = _rms_norm(x, w(p + "post_attention_layernorm.weight"), eps)
        gate = F.silu(h @ w(p + "mlp.gate_proj.weight").T)
        x = x + (gate * (h @ w(p + "mlp.up_proj.weight").T)) @ w(p + "mlp.down_proj.weight").T
    x = _rms_norm(x, w("model.norm.weight"), eps)
    head = w("model.embed_tokens.weight") if tied else w("lm_head.weight")
    return x @ head.T


@torch.no_grad()
def gpt2_logits(
    weights: Weights,
    ids: Sequence[int],
    *,
    n_layer: int,
    n_head: int,
    eps: float,
    conv1d: bool,
    exact_gelu: bool,
) -> torch.Tensor:
    """GPT-2 / nanoGPT: learned positions, LayerNorm, fused QKV, GELU MLP, tied head.

    Biases the checkpoint does not have (bias-free nanoGPT) count as absent, not zero.
    """
    w = weights.get
    ids_t = torch.as_tensor(list(ids))
    T = ids_t.shape[0]
    x = w("transformer.wte.weight")[ids_t] + w("transformer.wpe.weight")[:T]

    def linear(h: torch.Tensor, name: str) -> torch.Tensor:
        weight = w(name + ".weight")
        out = h @ weight if conv1d else h @ weight.T
        bias = w(name + ".bias")
        return out if bias is None else out + bias

    def norm(h: torch.Tensor, name: str) -> torch.Tensor:
        return F.layer_norm(h, h.shape[-1:], w(name + ".weight"), w(name + ".bias"), eps)

    C = x.shape[1]
    d = C // n_head
    for i in range(n_layer):
        p = f"transformer.h.{i}."
        qkv = linear(norm(x, p + "ln_1"), p + "attn.c_attn")
        q, k, v = (t.view(T, n_head, d).transpose(0, 1) for t in qkv.split(C, dim=-1))
        att = _attention(q, k, v).transpose(0, 1).reshape(T, C)
        x = x + linear(att, p + "attn.c_proj")
        h = linear(norm(x, p + "ln_2"), p + "mlp.c_fc")
        h = F.gelu(h) if exact_gelu else F.gelu(h, approximate="tanh")
        x = x + linear(h, p + "mlp.c_proj")
    x = norm(x, "transformer.ln_f")
    head = w("lm_head.weight")
    return x @ (head if head is not None else w("transformer.wte.weight")).T
