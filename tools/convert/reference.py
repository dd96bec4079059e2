"""PyTorch forwards written from the papers' definitions, on the checkpoint's own tensors.

`--verify` compares llama.cpp's logits on the GGUF with these. They read the source names
and layouts (no permutation, Conv1D as stored, Gemma's norms without their +1), so an error in
the mapping shows up as a difference. The tests check them against the `transformers`
implementations.

Every forward takes all prompts at once and walks the layers in order, reading one layer's
tensors at a time (`LazyWeights`): verifying a 7B checkpoint needs about one layer in float32,
not the 28 GB of the whole model.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

Weights = Mapping[str, torch.Tensor]
Prompts = Sequence[Sequence[int]]


class LazyWeights(Mapping[str, torch.Tensor]):
    """A checkpoint's tensors as float32 torch tensors, each read when asked for, never kept."""

    def __init__(self, checkpoint: Any):
        self._checkpoint = checkpoint

    def __getitem__(self, name: str) -> torch.Tensor:
        if name not in self._checkpoint.tensors:
            raise KeyError(name)
        return torch.from_numpy(np.array(self._checkpoint.load(name), dtype=np.float32))

    def __iter__(self) -> Iterator[str]:
        return iter(self._checkpoint.tensors)

    def __len__(self) -> int:
        return len(self._checkpoint.tensors)


def load_weights(checkpoint: Any) -> dict[str, torch.Tensor]:
    """Every tensor of a checkpoint as float32 torch tensors (the whole model in memory)."""
    return dict(LazyWeights(checkpoint).items())


def layer(weights: Weights, prefix: str) -> dict[str, torch.Tensor]:
    """The tensors under `prefix` (one block), read now, keyed without the prefix."""
    return {name[len(prefix) :]: weights[name] for name in weights if name.startswith(prefix)}


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


def rotary(T: int, inv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin [T, 2·len(inv)] in the rotate-half layout."""
    angles = torch.outer(torch.arange(T, dtype=torch.float32), inv)
    both = torch.cat((angles, angles), -1)
    return both.cos(), both.sin()


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary embedding on the first cos.shape[-1] features of each head (all of them unless
    the rotation is partial, as in Phi-3 with partial_rotary_factor < 1)."""
    n = cos.shape[-1]
    x_rot, x_pass = x[..., :n], x[..., n:]
    half = n // 2
    rotated = torch.cat((-x_rot[..., half:], x_rot[..., :half]), dim=-1)
    return torch.cat((x_rot * cos + rotated * sin, x_pass), dim=-1)


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float, offset: float = 0.0):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * (weight + offset)


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    scale: float | None = None,
    window: int | None = None,
    softcap: float | None = None,
) -> torch.Tensor:
    """q [h, T, d], k/v [h_kv, T, d]; causal; kv heads shared by groups of query heads; an
    optional sliding window (a query sees the `window` latest keys) and score soft-capping."""
    groups = q.shape[0] // k.shape[0]
    k = k.repeat_interleave(groups, dim=0)
    v = v.repeat_interleave(groups, dim=0)
    if window is None and softcap is None:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale)
    scores = (q @ k.transpose(-1, -2)) * (scale if scale is not None else q.shape[-1] ** -0.5)
    if softcap is not None:
        scores = torch.tanh(scores / softcap) * softcap
    T = q.shape[1]
    i = torch.arange(T)[:, None]
    j = torch.arange(T)[None, :]
    allowed = j <= i
    if window is not None:
        allowed &= (i - j) < window
    scores = scores.masked_fill(~allowed, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def heads(x: torch.Tensor, n: int, d: int) -> torch.Tensor:
    """[T, n·d] → [n, T, d]."""
    return x.view(x.shape[0], n, d).transpose(0, 1)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """[n, T, d] → [T, n·d]."""
    return x.transpose(0, 1).reshape(x.shape[1], -1)


def embed(weights: Weights, name: str, prompts: Prompts, scale: float = 1.0) -> list[torch.Tensor]:
    table = weights[name]
    return [table[torch.as_tensor(list(ids))] * scale for ids in prompts]


@torch.no_grad()
def llama_logits(
    weights: Weights,
    prompts: Prompts,
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
    qk_norm: bool = False,
) -> list[torch.Tensor]:
    """LLaMA / Mistral / Qwen2 / Qwen3 (`qk_norm`: per-head RMSNorm of q and k before rope):
    RMSNorm, rotary (rotate-half layout), SwiGLU, GQA."""
    xs = embed(weights, "model.embed_tokens.weight", prompts)
    inv = rope_inv_freq(head_dim, rope_theta, rope)
    for i in range(n_layer):
        w = layer(weights, f"model.layers.{i}.")

        def block(x: torch.Tensor, w=w) -> torch.Tensor:
            cos, sin = rotary(x.shape[0], inv)
            h = rms_norm(x, w["input_layernorm.weight"], eps)

            def proj(name: str, n: int) -> torch.Tensor:
                out = h @ w[f"self_attn.{name}.weight"].T
                if qkv_bias:
                    out = out + w[f"self_attn.{name}.bias"]
                return heads(out, n, head_dim)

            q, k = proj("q_proj", n_head), proj("k_proj", n_head_kv)
            if qk_norm:
                q = rms_norm(q, w["self_attn.q_norm.weight"], eps)
                k = rms_norm(k, w["self_attn.k_norm.weight"], eps)
            q, k = rotate(q, cos, sin), rotate(k, cos, sin)
            att = merge_heads(attention(q, k, proj("v_proj", n_head_kv)))
            x = x + att @ w["self_attn.o_proj.weight"].T
            if out_bias:
                x = x + w["self_attn.o_proj.bias"]
            h = rms_norm(x, w["post_attention_layernorm.weight"], eps)
            gate = F.silu(h @ w["mlp.gate_proj.weight"].T)
            return x + (gate * (h @ w["mlp.up_proj.weight"].T)) @ w["mlp.down_proj.weight"].T

        xs = [block(x) for x in xs]
        del w, block  # the closure holds the layer too: free it before the next one
    norm = weights["model.norm.weight"]
    head = weights["model.embed_tokens.weight" if tied else "lm_head.weight"]
    return [rms_norm(x, norm, eps) @ head.T for x in xs]


@torch.no_grad()
def gpt2_logits(
    weights: Weights,
    prompts: Prompts,
    *,
    n_layer: int,
    n_head: int,
    eps: float,
    conv1d: bool,
    exact_gelu: bool,
) -> list[torch.Tensor]:
    """GPT-2 / nanoGPT: learned positions, LayerNorm, fused QKV, GELU MLP, tied head.

    Biases the checkpoint does not have (bias-free nanoGPT) count as absent, not zero.
    """
    wpe = weights["transformer.wpe.weight"]
    xs = [x + wpe[: x.shape[0]] for x in embed(weights, "transformer.wte.weight", prompts)]
    del wpe

    def linear(h: torch.Tensor, w: Mapping[str, torch.Tensor], name: str) -> torch.Tensor:
        weight = w[name + ".weight"]
        out = h @ weight if conv1d else h @ weight.T
        bias = w.get(name + ".bias")
        return out if bias is None else out + bias

    def norm(h: torch.Tensor, w: Mapping[str, torch.Tensor], name: str) -> torch.Tensor:
        return F.layer_norm(h, h.shape[-1:], w[name + ".weight"], w.get(name + ".bias"), eps)

    for i in range(n_layer):
        w = layer(weights, f"transformer.h.{i}.")

        def block(x: torch.Tensor, w=w) -> torch.Tensor:
            C = x.shape[1]
            d = C // n_head
            qkv = linear(norm(x, w, "ln_1"), w, "attn.c_attn")
            q, k, v = (heads(t, n_head, d) for t in qkv.split(C, dim=-1))
            x = x + linear(merge_heads(attention(q, k, v)), w, "attn.c_proj")
            h = linear(norm(x, w, "ln_2"), w, "mlp.c_fc")
            h = F.gelu(h) if exact_gelu else F.gelu(h, approximate="tanh")
            return x + linear(h, w, "mlp.c_proj")

        xs = [block(x) for x in xs]
        del w, block  # the closure holds the layer too: free it before the next one
    final = layer(weights, "transformer.ln_f")  # keys ".weight", ".bias"
    name = "lm_head.weight" if "lm_head.weight" in weights else "transformer.wte.weight"
    head = weights[name]
    return [norm(x, final, "") @ head.T for x in xs]
