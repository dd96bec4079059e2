"""Which of llama.cpp's built-in pre-tokenizers matches a tokenizer.json's `pre_tokenizer`.

llama.cpp does not run the regex stored in the file; it picks one of its own by the name in
`tokenizer.ggml.pre`. The name is chosen here from the pre-tokenizer's structure and regex,
so an unknown one is refused instead of silently splitting text differently.
"""

from __future__ import annotations

from typing import Any

_CONTRACTIONS = "(?i:'s|'t|'re|'ve|'m|'ll|'d)"
_TAIL = r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"

# The split regexes of well-known byte-level BPE tokenizers, as tokenizer.json spells them.
SPLIT_REGEXES = {
    _CONTRACTIONS + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|" + _TAIL: "qwen2",
    _CONTRACTIONS + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|" + _TAIL: "llama-bpe",
    _CONTRACTIONS
    + r"|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*"
    + r"|\s*[\r\n]+|\s+(?!\S)|\s+": "qwen35",
}

KNOWN = "GPT-2 ByteLevel, SmolLM (digits + ByteLevel), Qwen2, Llama 3, Qwen3.5"


def _is_byte_level(p: Any, *, use_regex: bool) -> bool:
    return (
        isinstance(p, dict)
        and p.get("type") == "ByteLevel"
        and bool(p.get("use_regex", True)) == use_regex
    )


def pre_tokenizer_name(pre: Any) -> str | None:
    """llama.cpp's name for this pre-tokenizer, or None when it has no equivalent."""
    if not pre or not isinstance(pre, dict):
        return None
    if _is_byte_level(pre, use_regex=True):
        return "gpt-2"
    if pre.get("type") != "Sequence":
        return None
    steps = pre.get("pretokenizers") or []
    if not isinstance(steps, list) or not all(isinstance(step, dict) for step in steps):
        return None
    if (
        len(steps) == 2
        and steps[0].get("type") == "Digits"
        and steps[0].get("individual_digits")
        and _is_byte_level(steps[1], use_regex=True)
    ):
        return "smollm"
    if (
        len(steps) == 2
        and steps[0].get("type") == "Split"
        and _is_byte_level(steps[1], use_regex=False)
    ):
        pattern = steps[0].get("pattern") or {}
        regex = pattern.get("Regex") if isinstance(pattern, dict) else None
        return SPLIT_REGEXES.get(regex) if isinstance(regex, str) else None
    if len(steps) == 1 and _is_byte_level(steps[0], use_regex=True):
        return "gpt-2"
    return None
