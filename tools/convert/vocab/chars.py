"""nanoGPT's character-level `meta.pkl` (stoi/itos) → a byte-level BPE vocabulary.

Each character becomes the token spelling its UTF-8 bytes in GPT-2's byte alphabet, with merges
that join the bytes of a multi-byte character, so llama.cpp's BPE yields exactly one token per
character. nanoGPT has no end-of-text token; one control token is appended (its embedding row
is zero) so llama.cpp's default end token is not one of the characters.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

from assistant.errors import ConversionError

from ..config_check import show_value
from ..safe_pickle import load_plain_pickle
from .model import CONTROL, NORMAL, Vocab

END_TOKEN = "<|endoftext|>"


@lru_cache(maxsize=1)
def byte_alphabet() -> list[str]:
    """GPT-2's printable stand-in for each byte value."""
    keep = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return [table[b] for b in range(256)]


def byte_level(text: str) -> str:
    alphabet = byte_alphabet()
    return "".join(alphabet[b] for b in text.encode("utf-8"))


def load_meta_pkl(path: Path) -> Vocab:
    meta = load_plain_pickle(path)
    stoi = meta.get("stoi") if isinstance(meta, Mapping) else None
    if not isinstance(stoi, Mapping) or not stoi:
        raise ConversionError(f"{path} has no 'stoi' character table.")
    # n characters take the ids 0 to n - 1: any other id is refused before the table (as long
    # as the largest id) is allocated.
    for ch, i in stoi.items():
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < len(stoi):
            raise ConversionError(
                f"{path}: 'stoi' gives {ch!r} the id {show_value(i)}; the ids of its "
                f"{len(stoi)} characters must be the whole numbers 0 to {len(stoi) - 1}."
            )
    chars: list[str | None] = [None] * len(stoi)
    for ch, i in stoi.items():
        if not isinstance(ch, str) or len(ch) != 1 or chars[i] is not None:
            raise ConversionError(f"{path}: 'stoi' is not a one-to-one character table.")
        chars[i] = ch
    if any(c is None for c in chars):
        raise ConversionError(f"{path}: 'stoi' leaves ids without a character.")
    tokens = [byte_level(c) for c in chars]  # type: ignore[arg-type]
    merges: list[str] = []
    seen: set[str] = set()
    alphabet = byte_alphabet()
    for c in chars:
        parts = [alphabet[b] for b in c.encode("utf-8")]  # type: ignore[union-attr]
        joined = parts[0]
        for part in parts[1:]:
            merge = f"{joined} {part}"
            if merge not in seen:
                seen.add(merge)
                merges.append(merge)
            joined += part
    end = len(tokens)
    table = dict(stoi)
    return Vocab(
        model="gpt2",
        pre="gpt-2",
        tokens=[*tokens, END_TOKEN],
        types=[NORMAL] * len(tokens) + [CONTROL],
        merges=merges,
        source=str(path),
        special={"bos": end, "eos": end},
        add_bos=False,
        add_eos=False,
        extra_rows=1,
        encoder=lambda text: [int(table[ch]) for ch in text],
    )
