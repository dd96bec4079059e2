"""Header values that would make llama.cpp abort the process, refused before it sees the file.

llama.cpp checks some header values with GGML_ASSERT, which aborts the whole process (SIGABRT,
exit 134, no message) instead of failing the load: a block count of 0 or above 512, an expert
count above its cap or at odds with the experts used per token, an unknown RoPE scaling type,
more next-token-prediction layers than layers, a token that appears twice in the vocabulary.
Other values are merely absurd (a billion heads, an embedding wider than any tensor) and would
drive the memory estimates into nonsense. `check_hyperparameters` refuses both with
`MalformedHeader`, naming the field and the value. It runs inside
`gguf_header.info_from_headers`, so listing, importing, the Hub's fit estimate and loading all
refuse the same files; it only compares numbers already parsed, so a value that is absurd but
cheap to state costs nothing. The repeated-token scan (`duplicate_token`, about 0.1 s for a
50k-token vocabulary) runs only where a model is about to be loaded or imported
(`gguf_header.check_vocabulary`).

The field accessors (`count`, `largest`, `per_layer`) are shared with `gguf_header`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import gguf

from assistant.library.gguf_parse import (
    ArrayLength,
    MalformedHeader,
    TensorInfo,
    first_duplicate_string,
)

# llama.cpp's own limits (llama-cpp-python 0.3.36): above them it aborts the process
LLAMA_MAX_LAYERS = 512
LLAMA_MAX_EXPERTS = 1024  # probed: 1024 loads, 1025 aborts
ROPE_SCALING_TYPES = ("none", "linear", "yarn", "longrope")  # any other string aborts
# Plausibility: several times the largest published model's value, far below what would
# overflow llama.cpp's 32-bit arithmetic or make an estimate meaningless.
MAX_EMBD = 1 << 16  # Llama 3.1 405B: 16384
MAX_HEADS = 4096  # Llama 3.1 405B: 128; Falcon 180B: 232
MAX_HEAD_DIM = 1 << 13  # Gemma: 256; DeepSeek MLA: 576
MAX_FF = 1 << 20  # Llama 3.1 405B: 53248
MAX_VOCAB = 1 << 22  # Gemma 3: 262144
MAX_CONTEXT = 1 << 24  # Llama 4 Scout: 10M
COMPANION_ARCHS = ("clip", "mmproj")  # llama.cpp reads no hyperparameters for these
_ATTENTION = re.compile(r"^blk\.\d+\.attn_(q|k|v|qkv)\.weight$")


# -- field accessors ------------------------------------------------------------------------
def shown(value: Any) -> str:
    """A header value as an error message shows it (short)."""
    if isinstance(value, (tuple, ArrayLength)):
        length = value.length if isinstance(value, ArrayLength) else len(value)
        return f"an array of {length} values"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def count(md: Mapping[str, Any], name: str) -> int:
    """A whole-number field (0 when absent)."""
    value = md.get(name)
    if value is None:
        return 0
    if not is_count(value):
        raise MalformedHeader(f"{name} is {shown(value)}, not a whole number")
    return value


def largest(md: Mapping[str, Any], name: str) -> int:
    """A whole-number field, or the largest entry when it is given per layer."""
    value = md.get(name)
    if not isinstance(value, tuple):
        return count(md, name)
    if not all(is_count(v) for v in value):
        raise MalformedHeader(f"{name} is {shown(value)}, not whole numbers")
    return max(value, default=0)


def per_layer(md: Mapping[str, Any], name: str, n_layers: int, default: int = 0) -> tuple[int, ...]:
    """A field given once for all layers or as one value per layer (call after
    `check_hyperparameters`, which bounds `n_layers`)."""
    value = md.get(name)
    if value is None:
        return (default,) * n_layers
    if not isinstance(value, tuple):
        return (count(md, name),) * n_layers
    if len(value) < n_layers or not all(is_count(v) for v in value):
        raise MalformedHeader(
            f"{name} is {shown(value)}; it needs a whole number for each of {n_layers} layers"
        )
    return tuple(value[:n_layers])


# -- the checks -----------------------------------------------------------------------------
def check_hyperparameters(md: Mapping[str, Any], arch: str, tensors: Sequence[TensorInfo]) -> None:
    """Refuse (MalformedHeader naming the field and value) what llama.cpp would abort on, and
    what no real model has. A file without a block count (an adapter) is not checked: llama.cpp
    refuses to load it with a message of its own."""

    def key(name: str) -> str:
        return name.format(arch=arch)

    blocks = key(gguf.Keys.LLM.BLOCK_COUNT)
    if blocks not in md:
        return
    n_layers = count(md, blocks)
    if n_layers > len(tensors):  # every block has tensors: a larger count is not a real model
        raise MalformedHeader(
            f"{blocks} is {n_layers}, but the model has only {len(tensors)} tensors"
        )
    if arch in COMPANION_ARCHS:
        return
    _within(blocks, n_layers, 1, LLAMA_MAX_LAYERS, "llama.cpp loads 1 to 512 layers")
    nextn = count(md, key(gguf.Keys.LLM.NEXTN_PREDICT_LAYERS))
    _within(key(gguf.Keys.LLM.NEXTN_PREDICT_LAYERS), nextn, 0, n_layers, f"{blocks} is {n_layers}")
    widest = max((d for t in tensors for d in t.shape), default=0)
    _check_sizes(md, key, widest)
    _check_heads(md, key, n_layers, tensors)
    _check_experts(md, key)
    scaling = md.get(key(gguf.Keys.Rope.SCALING_TYPE))
    if isinstance(scaling, str) and scaling not in ROPE_SCALING_TYPES:
        raise MalformedHeader(
            f"{key(gguf.Keys.Rope.SCALING_TYPE)} is {shown(scaling)}; llama.cpp knows "
            f"{', '.join(ROPE_SCALING_TYPES)}"
        )


def _within(name: str, value: int, low: int, high: int, why: str) -> None:
    if not low <= value <= high:
        raise MalformedHeader(f"{name} is {value}; it must be {low} to {high} ({why})")


def _check_sizes(md: Mapping[str, Any], key, widest: int) -> None:
    """Widths no larger than the widest tensor (each is some tensor's dimension) nor than any
    real model's, and a positive context length."""
    tensors = f"the widest tensor dimension in the file is {widest}"
    embd = key(gguf.Keys.LLM.EMBEDDING_LENGTH)
    if embd in md:
        _within(embd, count(md, embd), 1, min(MAX_EMBD, widest), tensors)
    ff = key(gguf.Keys.LLM.FEED_FORWARD_LENGTH)
    _within(ff, largest(md, ff), 0, min(MAX_FF, max(widest, 1)), tensors)
    for name in (gguf.Keys.Attention.KEY_LENGTH, gguf.Keys.Attention.VALUE_LENGTH):
        if key(name) in md:
            _within(key(name), count(md, key(name)), 1, min(MAX_HEAD_DIM, widest), tensors)
    ctx = key(gguf.Keys.LLM.CONTEXT_LENGTH)
    if ctx in md:
        _within(ctx, count(md, ctx), 1, MAX_CONTEXT, "tokens")
    vocab = key(gguf.Keys.LLM.VOCAB_SIZE)
    if vocab in md:
        _within(vocab, count(md, vocab), 0, MAX_VOCAB, "tokens")
    tokens = md.get(gguf.Keys.Tokenizer.LIST)
    if isinstance(tokens, ArrayLength) and tokens.length > MAX_VOCAB:
        raise MalformedHeader(
            f"{gguf.Keys.Tokenizer.LIST} holds {tokens.length} tokens; at most {MAX_VOCAB}"
        )


def _check_heads(md: Mapping[str, Any], key, n_layers: int, tensors) -> None:
    """Heads: some when the model has attention tensors; key/value heads no more than heads
    and dividing them (grouped-query attention); the embedding split evenly among heads when
    no head size is given (llama.cpp divides it)."""
    name, name_kv = key(gguf.Keys.Attention.HEAD_COUNT), key(gguf.Keys.Attention.HEAD_COUNT_KV)
    heads = per_layer(md, name, n_layers)
    top = max(heads, default=0)
    if top == 0:
        attention = next((t.name for t in tensors if _ATTENTION.match(t.name)), None)
        if attention:
            raise MalformedHeader(f"{name} is 0, but the model has attention ({attention})")
        return
    _within(name, top, 1, MAX_HEADS, "no model has more")
    kv = per_layer(md, name_kv, n_layers, heads[0])
    for layer, (h, k) in enumerate(zip(heads, kv, strict=True)):
        if k > h or (k and h % k):
            where = f" in layer {layer}" if isinstance(md.get(name_kv), tuple) else ""
            raise MalformedHeader(
                f"{name_kv} is {k}{where} with {h} heads; key/value heads must divide the "
                "heads (at most as many)"
            )
    embd = count(md, key(gguf.Keys.LLM.EMBEDDING_LENGTH))
    if key(gguf.Keys.Attention.KEY_LENGTH) not in md and heads[0] and embd % heads[0]:
        raise MalformedHeader(
            f"{name} is {heads[0]}, which does not divide the embedding length {embd} (and "
            f"no {key(gguf.Keys.Attention.KEY_LENGTH)} is given)"
        )


def _check_experts(md: Mapping[str, Any], key) -> None:
    """llama.cpp's asserts on mixture-of-experts counts, as it makes them."""
    name = key(gguf.Keys.LLM.EXPERT_COUNT)
    used_name = key(gguf.Keys.LLM.EXPERT_USED_COUNT)
    groups_name = key(gguf.Keys.LLM.EXPERT_GROUP_COUNT)
    n_expert, used = count(md, name), largest(md, used_name)
    groups = count(md, groups_name)
    group_used = count(md, key(gguf.Keys.LLM.EXPERT_GROUP_USED_COUNT))
    _within(name, n_expert, 0, LLAMA_MAX_EXPERTS, "llama.cpp's limit")
    if n_expert == 0:
        if used or groups:
            what = used_name if used else groups_name
            raise MalformedHeader(f"{what} is {used or groups}, but the model has no experts")
        return
    _within(used_name, used, 1, n_expert, f"{name} is {n_expert}")
    _within(groups_name, groups, 0, n_expert - 1, f"{name} is {n_expert}")
    if groups > 1:
        if n_expert % groups:
            raise MalformedHeader(f"{groups_name} is {groups}, which does not divide {n_expert}")
        _within(
            key(gguf.Keys.LLM.EXPERT_GROUP_USED_COUNT),
            group_used,
            1,
            groups - 1,
            f"{groups_name} is {groups}",
        )


def duplicate_token(buf, fields: Mapping[str, Any], endian: str) -> str | None:
    """Why the token list cannot be loaded (a token listed twice: llama.cpp asserts every token
    is distinct), or None. `buf` is the header's buffer (the memory-mapped file)."""
    tokens = fields.get(gguf.Keys.Tokenizer.LIST)
    found = None
    if isinstance(tokens, ArrayLength):
        found = first_duplicate_string(buf, tokens, endian)
    elif isinstance(tokens, tuple):
        seen: dict[Any, int] = {}
        for i, token in enumerate(tokens):
            first = seen.setdefault(token or f"[EMPTY_{i}]", i)
            if first != i:
                found = (first, i)
                break
    if found is None:
        return None
    first, again = found
    return (
        f"{gguf.Keys.Tokenizer.LIST} lists the same token twice (entries {first} and {again}); "
        "llama.cpp cannot load such a vocabulary"
    )
