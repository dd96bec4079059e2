"""The checkpoint's hyperparameters checked before they size anything.

A config states numbers that are cheap to write and expensive to believe: 10**6 layers make
the tensor name map and plan gigabytes before a single weight is read, 0 heads divide by zero,
a vocabulary of 10**12 pads a token list of that length. Every number the mappers read is
checked here for its type and a plausible range, with the file and field named; the checkpoint's
tensors are then compared with the shapes these numbers imply (`build_plan`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from assistant.errors import ConversionError

MAX_LAYERS = 512  # llama.cpp's LLAMA_MAX_LAYERS
MAX_HEADS = 4096
MAX_EMBEDDING = 1 << 17  # the largest models have 16,384-wide embeddings
MAX_FEED_FORWARD = 1 << 20
MAX_VOCAB = 1 << 20  # the largest vocabularies have about 262,000 tokens
MAX_CONTEXT = 1 << 24
MAX_HEAD_DIM = 4096

# Integer fields (the Hugging Face name and the GPT-2/nanoGPT one) and their ranges.
INT_FIELDS: dict[str, tuple[int, int]] = {
    "num_hidden_layers": (1, MAX_LAYERS),
    "n_layer": (1, MAX_LAYERS),
    "num_attention_heads": (1, MAX_HEADS),
    "n_head": (1, MAX_HEADS),
    "num_key_value_heads": (1, MAX_HEADS),
    "hidden_size": (1, MAX_EMBEDDING),
    "n_embd": (1, MAX_EMBEDDING),
    "intermediate_size": (1, MAX_FEED_FORWARD),
    "n_inner": (1, MAX_FEED_FORWARD),
    "vocab_size": (1, MAX_VOCAB),
    "max_position_embeddings": (1, MAX_CONTEXT),
    "n_positions": (1, MAX_CONTEXT),
    "n_ctx": (1, MAX_CONTEXT),
    "head_dim": (1, MAX_HEAD_DIM),
}
FLOAT_FIELDS = ("rms_norm_eps", "layer_norm_epsilon", "rope_theta")
ROPE_FIELDS = ("rope_scaling", "rope_parameters")
ROPE_NUMBERS = ("factor", "low_freq_factor", "high_freq_factor", "rope_theta")


def check_config(config: Mapping[str, Any], where: str) -> None:
    """Raise ConversionError naming `where` and the field for the first implausible value."""
    for key, (lo, hi) in INT_FIELDS.items():
        _check_int(config.get(key), lo, hi, f"{where}: {key}")
    for key in FLOAT_FIELDS:
        _check_positive(config.get(key), f"{where}: {key}")
    for key in ROPE_FIELDS:
        rope = config.get(key)
        if rope is None:
            continue
        if not isinstance(rope, Mapping):
            raise ConversionError(f"{where}: {key} is {show_value(rope)}; it must be an object.")
        for field in ROPE_NUMBERS:
            _check_positive(rope.get(field), f"{where}: {key}.{field}")
        _check_int(
            rope.get("original_max_position_embeddings"),
            1,
            MAX_CONTEXT,
            f"{where}: {key}.original_max_position_embeddings",
        )
    _check_heads(config, where)


def _check_heads(config: Mapping[str, Any], where: str) -> None:
    heads_key = _first_set(config, "num_attention_heads", "n_head")
    embd_key = _first_set(config, "hidden_size", "n_embd")
    if heads_key is None or embd_key is None:
        return
    heads, embd = config[heads_key], config[embd_key]
    if config.get("head_dim") is None and embd % heads:
        raise ConversionError(
            f"{where}: {embd_key} {embd} is not a multiple of {heads_key} {heads}, so the "
            "heads cannot share the embedding."
        )
    kv = config.get("num_key_value_heads")
    if kv is not None and (kv > heads or heads % kv):
        raise ConversionError(
            f"{where}: num_key_value_heads {kv} does not divide {heads_key} {heads}."
        )


def _check_int(value: Any, lo: int, hi: int, what: str) -> None:
    if value is None:
        return  # absent: the mapper asks for it by name if it needs it
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConversionError(f"{what} is {show_value(value)}; it must be a whole number.")
    if not lo <= value <= hi:
        raise ConversionError(f"{what} is {show_value(value)}; it must be from {lo} to {hi:,}.")


def _check_positive(value: Any, what: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConversionError(f"{what} is {show_value(value)}; it must be a number.")
    if not (math.isfinite(value) and value > 0):
        raise ConversionError(f"{what} is {show_value(value)}; it must be a positive number.")


def _first_set(config: Mapping[str, Any], *keys: str) -> str | None:
    return next((k for k in keys if config.get(k) is not None), None)


def show_value(value: Any) -> str:
    """A value for a message, short whatever it is (an int of a million digits included)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"{'-' if value < 0 else ''}a {value.bit_length()}-bit number"
    text = repr(value)
    return text if len(text) <= 40 else text[:40] + "…"
