"""Byte-level BPE (GPT-2 style) from tokenizer.json or vocab.json + merges.txt → 'gpt2' vocab."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from assistant.errors import ConversionError

from ..config_check import MAX_VOCAB, show_value
from ..json_files import read_json, read_json_object
from .model import CONTROL, NORMAL, UNUSED, USER_DEFINED, Encoder, Vocab
from .pretokenizers import KNOWN, pre_tokenizer_name

GPT2_EOS = "<|endoftext|>"


def looks_special(text: str) -> bool:
    return (text.startswith("<|") and text.endswith("|>")) or text in ("<s>", "</s>", "<pad>")


def _table(vocab: Any, added: Any, source: Path):
    """Token texts and types by id. Every id is checked before the table is allocated: its
    length is the largest id, which a hostile file could make anything."""
    if not isinstance(vocab, dict):
        raise ConversionError(f"{source}: the vocabulary is not a token → id mapping.")
    if not isinstance(added, list) or not all(isinstance(a, dict) for a in added):
        raise ConversionError(f"{source}: added_tokens is not a list of tokens.")
    for text, token_id in vocab.items():
        _check_id(token_id, f"the id of token {text!r}", source)
    for a in added:
        _check_id(a.get("id"), f"the id of added token {a.get('content')!r}", source)
        if not isinstance(a.get("content"), str):
            raise ConversionError(f"{source}: added token {a.get('id')} has no text (content).")
    if not vocab and not added:
        raise ConversionError(f"{source} holds no tokens.")
    size = max([*vocab.values(), *(a["id"] for a in added)]) + 1
    tokens: list[str | None] = [None] * size
    types = [UNUSED] * size
    for text, token_id in vocab.items():
        tokens[token_id] = text
        types[token_id] = NORMAL
    for a in added:
        token_id, text = a["id"], a["content"]
        tokens[token_id] = text
        special = bool(a.get("special")) or looks_special(text)
        types[token_id] = CONTROL if special else USER_DEFINED
    filled = [t if t is not None else f"[PAD{i}]" for i, t in enumerate(tokens)]
    if len(set(filled)) != len(filled):
        raise ConversionError(f"{source} maps two ids to the same token.")
    return filled, types


def _check_id(token_id: Any, what: str, source: Path) -> None:
    if isinstance(token_id, bool) or not isinstance(token_id, int):
        raise ConversionError(f"{source}: {what} is {show_value(token_id)}; ids are whole numbers.")
    if not 0 <= token_id < MAX_VOCAB:
        raise ConversionError(
            f"{source}: {what} is {show_value(token_id)}; ids run from 0 to {MAX_VOCAB - 1:,}."
        )


def _merges(merges: Any, source: Path) -> list[str]:
    if not isinstance(merges, list):
        raise ConversionError(f"{source}: merges is not a list.")
    out = []
    for m in merges:
        if isinstance(m, list) and len(m) == 2 and all(isinstance(p, str) for p in m):
            m = " ".join(m)
        if not isinstance(m, str):
            raise ConversionError(f"{source}: the merge {show_value(m)} is not a pair of tokens.")
        out.append(m)
    return out


def _adds_bos(post: Any, depth: int = 0) -> bool | None:
    """Whether the post-processor puts a special token before the text (Llama 3 does)."""
    if not post or not isinstance(post, dict) or depth > 8:
        return None
    if post.get("type") == "Sequence":
        processors = post.get("processors")
        results = [_adds_bos(p, depth + 1) for p in processors or [] if isinstance(p, dict)]
        return any(r for r in results if r is not None) if results else None
    if post.get("type") == "TemplateProcessing":
        single = post.get("single") or []
        first = single[0] if isinstance(single, list) and single else None
        return isinstance(first, dict | str) and "SpecialToken" in first
    return None


def load_tokenizer_json(path: Path) -> Vocab:
    data = read_json_object(path)
    model = data.get("model") or {}
    if not isinstance(model, dict):
        raise ConversionError(f"{path}: model is not an object.")
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
    merges = _merges(model.get("merges") or [], path)
    special: dict[str, int] = {}
    if GPT2_EOS in tokens:
        special["eos"] = special["bos"] = tokens.index(GPT2_EOS)
    return Vocab(
        model="gpt2",
        pre=pre,
        tokens=tokens,
        types=types,
        merges=merges,
        source=str(path),
        special=special,
        add_bos=_adds_bos(data.get("post_processor")),
        encoder=_hf_encoder(path),
    )


def load_vocab_merges(vocab_path: Path, merges_path: Path) -> Vocab:
    """GPT-2's original files; added_tokens.json beside them is honoured."""
    vocab = read_json(vocab_path)
    if not isinstance(vocab, dict):
        raise ConversionError(f"{vocab_path} is not a token → id mapping.")
    try:
        lines = merges_path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConversionError(f"Cannot read {merges_path}: {exc.strerror}.") from None
    except UnicodeDecodeError:
        raise ConversionError(f"{merges_path} is not UTF-8 text.") from None
    merges = [line for line in lines if line.strip() and not line.startswith("#version")]
    added_file = vocab_path.parent / "added_tokens.json"
    added = []
    if added_file.is_file():
        added = [
            {"id": i, "content": t, "special": True}
            for t, i in read_json_object(added_file).items()
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
