"""Tokens a Hugging Face folder adds to a SentencePiece model: Phi-3's <|user|>, <|end|> … are
not pieces of its tokenizer.model but entries of tokenizer_config.json's `added_tokens_decoder`
(or of added_tokens.json), with ids past the model's pieces."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from assistant.errors import ConversionError

from ..config_check import MAX_VOCAB, show_value
from ..json_files import read_json
from .bpe import looks_special
from .model import CONTROL, NORMAL, UNUSED, USER_DEFINED, Vocab


def _object(path: Path) -> dict[str, Any]:
    data = read_json(path) if path.is_file() else {}
    return data if isinstance(data, dict) else {}


def _added(folder: Path) -> dict[int, tuple[str, bool]]:
    """id → (text, special) from tokenizer_config.json, else added_tokens.json."""
    where = folder / "tokenizer_config.json"
    found: dict[int, tuple[str, bool]] = {}
    decoder = _object(where).get("added_tokens_decoder")
    if isinstance(decoder, dict):
        for key, entry in decoder.items():
            content = entry.get("content") if isinstance(entry, dict) else None
            if not (isinstance(key, str) and key.isdigit() and isinstance(content, str)):
                raise ConversionError(f"{where}: added token {show_value(key)} is not usable.")
            found[int(key)] = (content, bool(entry.get("special")) or looks_special(content))
        return found
    where = folder / "added_tokens.json"
    for text, token_id in _object(where).items():
        if isinstance(token_id, bool) or not isinstance(token_id, int):
            raise ConversionError(f"{where}: the id of {text!r} is {show_value(token_id)}.")
        found[token_id] = (text, looks_special(text))
    return found


def add_spm_added_tokens(vocab: Vocab, folders: list[Path]) -> Vocab:
    """The SentencePiece vocabulary with the folder's added tokens at their ids (as llama.cpp's
    converter places them: CONTROL when special, else USER_DEFINED)."""
    if vocab.model != "llama":
        return vocab
    added: dict[int, tuple[str, bool]] = {}
    for folder in folders:
        added = added or _added(folder)
    if not added:
        return vocab
    tokens, types = list(vocab.tokens), list(vocab.types)
    scores = list(vocab.scores) if vocab.scores is not None else [0.0] * len(tokens)
    for token_id, (text, special) in sorted(added.items()):
        if not 0 <= token_id < MAX_VOCAB:
            raise ConversionError(f"Added token {text!r} has the id {token_id}, out of range.")
        while len(tokens) <= token_id:
            tokens.append(f"[PAD{len(tokens)}]")
            types.append(UNUSED)
            scores.append(-1000.0)
        if tokens[token_id] == text and types[token_id] != NORMAL:
            continue  # <unk>, <s>, </s>: already what they are in the model
        tokens[token_id] = text
        types[token_id] = CONTROL if special else USER_DEFINED
        scores[token_id] = -1000.0
    seen: set[str] = set()
    for text in tokens:
        if text in seen:
            raise ConversionError(f"The added token {text!r} is also a piece of {vocab.source}.")
        seen.add(text)
    return replace(vocab, tokens=tokens, types=types, scores=scores)
