"""The vocabulary as the GGUF file stores it, and how it is written."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import gguf

from assistant.errors import ConversionError

Encoder = Callable[[str], list[int]]

NORMAL = int(gguf.TokenType.NORMAL)
UNKNOWN = int(gguf.TokenType.UNKNOWN)
CONTROL = int(gguf.TokenType.CONTROL)
USER_DEFINED = int(gguf.TokenType.USER_DEFINED)
UNUSED = int(gguf.TokenType.UNUSED)
BYTE = int(gguf.TokenType.BYTE)


@dataclass
class Vocab:
    """`model` is llama.cpp's tokenizer kind: 'llama' (SentencePiece) or 'gpt2' (BPE)."""

    model: str
    tokens: list[str]
    types: list[int]
    source: str  # the file it came from, for messages
    scores: list[float] | None = None
    merges: list[str] = field(default_factory=list)
    pre: str | None = None
    special: dict[str, int] = field(default_factory=dict)
    add_bos: bool | None = None
    add_eos: bool | None = None
    add_space_prefix: bool | None = None
    chat_template: str | None = None
    extra_rows: int = 0  # tokens added past the model's embedding (a char-level EOS)
    encoder: Encoder | None = None  # the source tokenizer, for the agreement check
    notes: list[str] = field(default_factory=list)

    def fitted(self, n_vocab: int) -> Vocab:
        """Padded with unused tokens to the model's embedding rows (never truncated)."""
        n = len(self.tokens) - self.extra_rows
        if n > n_vocab:
            raise ConversionError(
                f"The tokenizer ({self.source}) has {n} tokens but the model's embedding has "
                f"{n_vocab} rows: is this the tokenizer the model was trained with?"
            )
        if n == n_vocab:
            return self
        if self.extra_rows:
            raise ConversionError(
                f"The tokenizer ({self.source}) has {n} tokens; the model expects {n_vocab}."
            )
        pad = n_vocab - n
        return replace(
            self,
            tokens=self.tokens + [f"[PAD{n + i}]" for i in range(pad)],
            types=self.types + [UNUSED] * pad,
            scores=None if self.scores is None else self.scores + [-1000.0] * pad,
        )


def write_vocab(writer: gguf.GGUFWriter, vocab: Vocab) -> None:
    writer.add_tokenizer_model(vocab.model)
    if vocab.pre:
        writer.add_tokenizer_pre(vocab.pre)
    writer.add_token_list(vocab.tokens)
    if vocab.scores is not None:
        writer.add_token_scores(vocab.scores)
    writer.add_token_types(vocab.types)
    if vocab.merges:
        writer.add_token_merges(vocab.merges)
    adders = {
        "bos": writer.add_bos_token_id,
        "eos": writer.add_eos_token_id,
        "unk": writer.add_unk_token_id,
        "pad": writer.add_pad_token_id,
        "sep": writer.add_sep_token_id,
        "eot": writer.add_eot_token_id,
    }
    for kind, token_id in vocab.special.items():
        if kind in adders and 0 <= token_id < len(vocab.tokens):
            adders[kind](token_id)
    if vocab.add_bos is not None:
        writer.add_add_bos_token(vocab.add_bos)
    if vocab.add_eos is not None:
        writer.add_add_eos_token(vocab.add_eos)
    if vocab.add_space_prefix is not None:
        writer.add_add_space_prefix(vocab.add_space_prefix)
    if vocab.chat_template:
        writer.add_chat_template(vocab.chat_template)
