"""Byte-level BPE (GPT-2 style) from tokenizer.json or vocab.json + merges.txt → 'gpt2' vocab."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from assistant.errors import ConversionError

from .model import CONTROL, NORMAL, UNUSED, USER_DEFINED, Encoder, Vocab
from .pretokenizers import KNOWN, pre_tokenizer_name

GPT2_EOS = "<|endoftext|>"


def looks_special(text: str) -> bool:
    return (text.startswith("<|") and text.endswith("|>")) or text in ("<s>", "</s>", "<pad>")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConversionError(f"Cannot read {path}: {exc.strerror}.") from None
    except ValueError as exc:
        raise ConversionError(f"{path} is not valid JSON ({exc}).") from None


def _table(vocab: dict[str, int], added: list[dict[str, Any]], source: Path):
    size = max([*vocab.values(), *(int(a["id"]) for a in added)], default=-1) + 1
    tokens: list[str | None] = [None] * size
    types = [UNUSED] * size
    for text, token_id in vocab.items():
        tokens[token_id] = text
        types[token_id] = NORMAL
    for a in added:
        token_id, text = int(a["id"]), str(a["content"])
        tokens[token_id] = text
        special = bool(a.get("special")) or looks_special(text)
        types[token_id] = CONTROL if special else USER_DEFINED
    filled = [t if t is not None else f"[PAD{i}]" for i, t in enumerate(tokens)]
    if len(set(filled)) != len(filled):
        raise ConversionError(f"{source} maps two ids to the same token.")
    return filled, types


def _merge_strings(merges: list[Any]) -> list[str]:
    return [m if isinstance(m, str) else " ".join(m) for m in merges]


def _adds_bos(post: dict[str, Any] | None) -> bool | None:
    """Whether the post-processor puts a special token before the text (Llama 3 does)."""
    if not post:
        return None
    if post.get("type") == "Sequence":
        results = [_adds_bos(p) for p in post.get("processors", [])]
        return any(r for r in results if r is not None) if results else None
    if post.get("type") == "TemplateProcessing":
        single = post.get("single") or []
        return bool(single) and "SpecialToken" in single[0]
    return None


def load_tokenizer_json(path: Path) -> Vocab:
    data = _read_json(path)
    model = data.get("model") or {}
    if model.get("type") != "BPE":
        raise ConversionError(
            f"{path} is a {model.get('type', 'unknown')} tokenizer; only byte-level BPE "
            "tokenizer.json files are supported (give tokenizer.model for SentencePiece)."
        )
    pre = pre_tokenizer_name(data.get("pre_tokenizer"))
    if pre is None:
        if model.get("byte_fallback"):
            raise ConversionError(
                f"{path} is a SentencePiece-style BPE; give the model's tokenizer.model."
            )
        raise ConversionError(
            f"{path} uses a pre-tokenizer llama.cpp has no equivalent for; supported: {KNOWN}."
        )
    tokens, types = _table(model.get("vocab") or {}, data.get("added_tokens") or [], path)
    special: dict[str, int] = {}
    if GPT2_EOS in tokens:
        special["eos"] = special["bos"] = tokens.index(GPT2_EOS)
    return Vocab(
        model="gpt2",
        pre=pre,
        tokens=tokens,
        types=types,
        merges=_merge_strings(model.get("merges") or []),
        source=str(path),
        special=special,
        add_bos=_adds_bos(data.get("post_processor")),
        encoder=_hf_encoder(path),
    )


def load_vocab_merges(vocab_path: Path, merges_path: Path) -> Vocab:
    """GPT-2's original files; added_tokens.json beside them is honoured."""
    vocab = _read_json(vocab_path)
    if not isinstance(vocab, dict):
        raise ConversionError(f"{vocab_path} is not a token → id mapping.")
    try:
        lines = merges_path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConversionError(f"Cannot read {merges_path}: {exc.strerror}.") from None
    merges = [line for line in lines if line.strip() and not line.startswith("#version")]
    added_file = vocab_path.parent / "added_tokens.json"
    added = []
    if added_file.is_file():
        added = [
            {"id": i, "content": t, "special": True} for t, i in _read_json(added_file).items()
        ]
    tokens, types = _table(vocab, added, vocab_path)
    special: dict[str, int] = {}
    if GPT2_EOS in tokens:
        special["eos"] = special["bos"] = tokens.index(GPT2_EOS)
    return Vocab(
        model="gpt2",
        pre="gpt-2",
        tokens=tokens,
        types=types,
        merges=merges,
        source=str(vocab_path),
        special=special,
        add_bos=False,
        encoder=_hf_encoder_from_files(vocab_path, merges_path),
    )


def _hf_encoder(path: Path) -> Encoder | None:
    try:
        from tokenizers import Tokenizer
    except ImportError:
        return None
    tokenizer = Tokenizer.from_file(str(path))
    return lambda text: tokenizer.encode(text, add_special_tokens=False).ids


def _hf_encoder_from_files(vocab_path: Path, merges_path: Path) -> Encoder | None:
    try:
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    except ImportError:
        return None
    tokenizer = Tokenizer(models.BPE.from_file(str(vocab_path), str(merges_path)))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    return lambda text: tokenizer.encode(text, add_special_tokens=False).ids
