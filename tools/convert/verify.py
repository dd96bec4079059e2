"""Does the GGUF compute what the checkpoint computes, and tokenize as its tokenizer does?

Logits: the PyTorch reference forward and llama.cpp run on the same token ids; the figures and
the thresholds by type are in `verify_metrics`.
Tokens: llama.cpp's tokenizer (vocab only) and the source tokenizer on varied test strings.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from assistant.errors import ConversionError

from .verify_metrics import THRESHOLDS, LogitsCheck, compare_logits

if TYPE_CHECKING:
    from .checkpoints import Checkpoint
    from .mappers.base import Mapper
    from .vocab import Vocab

PROMPTS = (
    "The quick brown fox jumps over the lazy dog, and the dog does not seem to mind.",
    "Once upon a time, in a small village by the sea, there lived an old fisherman.",
    "Question: what is the capital of France?\nAnswer: the capital of France is Paris.",
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1)",
)

TOKENIZER_TEXTS = (
    "Hello world! This is a plain ASCII sentence, with punctuation; and numbers: 42, 3.14.",
    "Café déjà vu: naïve façade, Ærøskøbing, São Paulo, Zürich.",
    "日本語のテキストと中文字符，还有한국어도 있습니다。",
    "Emoji: 🦙🚀 😶‍🌫️ ✅ 👍🏽",
    "def add(a, b):\n    return a + b  # sum\n\nprint(add(1, 2))\n",
    "Whitespace   runs \t\ttabs\n\n\nnewlines     and   trailing   ",
    "   leading spaces and 'quotes' I've, you're, he'll",
    "3333333 12345 3..3 ------======= !!!???",
)


@dataclass(frozen=True)
class TokenizationCheck:
    checked: int
    mismatches: list[tuple[str, list[int], list[int]]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    reason: str | None = None  # why nothing was compared

    @property
    def passed(self) -> bool:
        return not self.mismatches


@dataclass(frozen=True)
class VerifyReport:
    out_type: str
    logits: LogitsCheck
    tokens: TokenizationCheck
    versus: str = "PyTorch"

    @property
    def passed(self) -> bool:
        return self.logits.passed and self.tokens.passed

    def lines(self) -> list[str]:
        lg, tk = self.logits, self.tokens
        out = [lg.line(self.versus)]
        if tk.reason:
            out.append(f"tokenization: not checked ({tk.reason})")
        else:
            out.append(
                f"tokenization: {tk.checked - len(tk.mismatches)}/{tk.checked} test strings give "
                f"the same ids: {'ok' if tk.passed else 'FAILED'}"
            )
            out += [
                f"  differs on {text!r}: source {a[:12]}…, gguf {b[:12]}…"
                for text, a, b in tk.mismatches[:3]
            ]
        return out


def _load_llama(
    path: Path, n_ctx: int, threads: int | None, vocab_only: bool = False, lora: Path | None = None
):
    import llama_cpp

    from assistant.engine import llama_log

    marker = llama_log.mark()
    try:
        return llama_cpp.Llama(
            model_path=str(path),
            n_ctx=n_ctx,
            n_batch=n_ctx,
            n_ubatch=n_ctx,
            n_threads=threads or os.cpu_count() or 1,
            n_threads_batch=threads or os.cpu_count() or 1,
            n_gpu_layers=0,
            logits_all=not vocab_only,
            vocab_only=vocab_only,
            lora_path=str(lora) if lora is not None else None,
            verbose=False,
        )
    except (ValueError, RuntimeError, OSError) as exc:
        reason = llama_log.reason_since(marker) or str(exc)
        raise ConversionError(f"llama.cpp cannot load {path}: {reason}.") from None


def gguf_logits(
    path: Path,
    prompts: Sequence[Sequence[int]],
    n_vocab: int,
    threads: int | None = None,
    lora: Path | None = None,
) -> list[np.ndarray]:
    """llama.cpp's logits for each prompt (with the LoRA adapter `lora` applied, if given)."""
    n_ctx = max(len(p) for p in prompts) + 8
    llm = _load_llama(path, n_ctx, threads, lora=lora)
    try:
        out = []
        for ids in prompts:
            llm.reset()
            llm.eval(list(ids))
            out.append(np.array(llm.scores[: len(ids), :n_vocab], dtype=np.float32))
        return out
    finally:
        llm.close()


def encode_prompts(
    encoder: Callable[[str], list[int]], texts: Sequence[str], bos: int | None, max_len: int
) -> list[list[int]]:
    """Token ids of each text (characters the tokenizer cannot take are dropped)."""
    prompts = []
    for text in texts:
        try:
            ids = list(encoder(text))
        except (KeyError, ValueError):
            ids = [i for ch in text for i in _try_encode(encoder, ch)]
        ids = ([bos] if bos is not None else []) + ids
        if len(ids) > 1:
            prompts.append(ids[:max_len])
    if not prompts:
        raise ConversionError("None of the verification prompts can be tokenized.")
    return prompts


def _try_encode(encoder: Callable[[str], list[int]], text: str) -> list[int]:
    try:
        return list(encoder(text))
    except (KeyError, ValueError):
        return []


def check_tokenization(
    path: Path, encoder: Callable[[str], list[int]] | None, texts: Sequence[str] = TOKENIZER_TEXTS
) -> TokenizationCheck:
    if encoder is None:
        return TokenizationCheck(0, reason="the source tokenizer library is not installed")
    llm = _load_llama(path, 64, 1, vocab_only=True)
    try:
        checked, mismatches, skipped = 0, [], []
        for text in texts:
            try:
                expected = list(encoder(text))
            except (KeyError, ValueError):
                skipped.append(text)  # characters outside a character-level vocabulary
                continue
            got = llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)
            checked += 1
            if got != expected:
                mismatches.append((text, expected, got))
        reason = None if checked else "no test string fits this vocabulary"
        return TokenizationCheck(checked, mismatches, skipped, reason)
    finally:
        llm.close()


def verify_gguf(
    path: Path,
    out_type: str,
    mapper: Mapper,
    checkpoint: Checkpoint,
    vocab: Vocab,
    *,
    texts: Sequence[str] = PROMPTS,
    threads: int | None = None,
    lora: Path | None = None,
) -> VerifyReport:
    """Both checks on a written GGUF against the checkpoint it came from (with `lora`: the
    adapter applied by llama.cpp on `path`, against the merged checkpoint)."""
    prompts = _prompts(path, texts, vocab, mapper)
    # llama.cpp first (its mapping of the GGUF is gone when it closes), then PyTorch (imported
    # only now) layer by layer, all prompts together: the peak is the larger of the two
    got = gguf_logits(path, prompts, mapper.n_vocab, threads, lora=lora)
    from .reference import LazyWeights

    reference = [t.numpy() for t in mapper.reference_logits(LazyWeights(checkpoint), prompts)]
    tokens = check_tokenization(path, vocab.encoder, (*TOKENIZER_TEXTS, *texts))
    kind = "adapter" if lora is not None else out_type
    logits = compare_logits(reference, got, kind, prompts)
    versus = "the merged PyTorch model" if lora is not None else "PyTorch"
    return VerifyReport(out_type, logits, tokens, versus)


__all__ = ["THRESHOLDS", "LogitsCheck", "VerifyReport", "compare_logits", "verify_gguf"]


def _prompts(path: Path, texts: Sequence[str], vocab: Vocab, mapper: Mapper) -> list[list[int]]:
    bos = vocab.special.get("bos") if vocab.add_bos else None
    max_len = min(mapper.context_length, 128)
    if vocab.encoder is not None:
        return encode_prompts(vocab.encoder, texts, bos, max_len)
    # Without the source tokenizer library, llama.cpp's ids still feed both models.
    llm = _load_llama(path, 64, 1, vocab_only=True)
    try:

        def encode(text: str) -> list[int]:
            return llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)

        return encode_prompts(encode, texts, bos, max_len)
    finally:
        llm.close()
