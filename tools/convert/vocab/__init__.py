"""Tokenizers → the GGUF vocabulary: find the tokenizer files, read them, add side files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from assistant.errors import ConversionError

from .added import add_spm_added_tokens
from .bpe import load_tokenizer_json, load_vocab_merges
from .chars import load_meta_pkl
from .model import Vocab, write_vocab
from .special import apply_side_files
from .spm import load_sentencepiece

__all__ = ["Vocab", "find_tokenizer", "load_vocab", "write_vocab"]

WHAT_TO_GIVE = (
    "a SentencePiece tokenizer.model, a Hugging Face tokenizer.json, GPT-2's vocab.json with "
    "merges.txt, or nanoGPT's meta.pkl"
)


def find_tokenizer(folder: Path) -> Path | None:
    """The tokenizer file in a folder, in the order llama.cpp's converter prefers."""
    for name in ("tokenizer.model", "tokenizer.json", "vocab.json", "meta.pkl"):
        if (folder / name).is_file():
            return folder / name
    return None


def read_tokenizer(path: Path) -> Vocab:
    name = path.name
    if path.suffix == ".model":
        return load_sentencepiece(path)
    if name == "vocab.json" or (
        path.suffix == ".json"
        and (path.parent / "merges.txt").is_file()
        and name != "tokenizer.json"
    ):
        merges = path.parent / "merges.txt"
        if not merges.is_file():
            raise ConversionError(f"{path} needs merges.txt beside it.")
        return load_vocab_merges(path, merges)
    if name == "merges.txt":
        return load_vocab_merges(path.parent / "vocab.json", path)
    if path.suffix == ".json":
        return load_tokenizer_json(path)
    if path.suffix == ".pkl":
        return load_meta_pkl(path)
    raise ConversionError(
        f"{path} is not a tokenizer file this converter reads; give {WHAT_TO_GIVE}."
    )


def load_vocab(
    folder: Path,
    tokenizer: Path | None,
    config: dict[str, Any],
    n_vocab: int,
    chat_template: Path | None = None,
) -> Vocab:
    """The vocabulary for a model whose embedding has `n_vocab` rows."""
    if tokenizer is not None:
        tokenizer = tokenizer.expanduser()
        if tokenizer.is_dir():
            found = find_tokenizer(tokenizer)
            if found is None:
                raise ConversionError(f"No tokenizer in {tokenizer}: give {WHAT_TO_GIVE}.")
            tokenizer = found
        elif not tokenizer.is_file():
            raise ConversionError(f"Tokenizer {tokenizer} does not exist.")
        path = tokenizer
    else:
        found = find_tokenizer(folder)
        if found is None:
            raise ConversionError(
                f"No tokenizer found beside the checkpoint in {folder}: pass --tokenizer with "
                f"{WHAT_TO_GIVE}."
            )
        path = found
    vocab = read_tokenizer(path)
    folders = [path.parent] + ([folder] if folder != path.parent else [])
    vocab = add_spm_added_tokens(vocab, folders)
    vocab = apply_side_files(vocab, folders, config, chat_template)
    return vocab.fitted(n_vocab)
