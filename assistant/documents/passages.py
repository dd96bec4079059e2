"""Cutting a document into passages for retrieval: paragraph-aligned, a few hundred tokens each.

A passage is a character range [start, end) of the document's text. Paragraphs (separated by
blank lines) are packed together up to `TARGET_TOKENS`; a paragraph over `MAX_TOKENS` is cut at
its sentences, a sentence over it at spaces, and a text with none of these at `MAX_TOKENS`'
worth of characters. The text is walked once, lazily: memory holds one paragraph's worth of
ranges at a time, whatever the document's length.

Sizes are estimates that need no model (the index must not depend on which model is loaded):
a CJK character counts as 1.5 tokens (about what Qwen and Llama 3 tokenizers give; SmolLM2
gives about 2), any other text four characters a token. Retrieval counts what it sends exactly.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

TARGET_TOKENS = 200  # passages grow by whole paragraphs up to about this size
MAX_TOKENS = 320  # a passage is never larger than this (estimated)
HEADING_CHARS = 80  # a paragraph of one line this short, without a full stop, is a heading
CJK_TOKENS_PER_CHAR = 1.5
CHARS_PER_TOKEN = 4.0

_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+|(?<=[。！？；：])|\n")
_SPACE = re.compile(r"\s+")
_SENTENCE_PUNCTUATION = re.compile(r"[.!?;:,。！？；：，”\"']")
_NON_SPACE = re.compile(r"\S")
_WINDOW = 1 << 16
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")
_CJK_RUN = re.compile(_CJK.pattern + "+")
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Passage:
    start: int
    end: int
    tokens: int  # estimated (see the module's note)


def estimate_tokens(text: str, start: int = 0, end: int | None = None) -> int:
    """Tokens of text[start:end] by the model-free estimate (CJK characters and other text
    apart), counted a window at a time: no copy of a long range is made."""
    end = len(text) if end is None else end
    cjk = sum(
        len(_CJK.findall(text, pos, min(end, pos + _WINDOW))) for pos in range(start, end, _WINDOW)
    )
    return max(1, round(cjk * CJK_TOKENS_PER_CHAR + (end - start - cjk) / CHARS_PER_TOKEN))


def iter_passages(
    text: str, target: int = TARGET_TOKENS, maximum: int = MAX_TOKENS
) -> Iterator[Passage]:
    """The passages of `text`, in order, lazily; only whitespace is left between them."""
    pack: list[tuple[int, int, int]] = []  # paragraphs (or pieces) waiting to be packed
    size = 0
    for start, end in _paragraphs(text):
        if pack and size >= target // 2 and _is_heading(text, start, end):
            yield Passage(pack[0][0], pack[-1][1], size)  # a heading starts its section's passage
            pack, size = [], 0
        for piece in _pieces(text, start, end, maximum):
            if pack and size + piece[2] > target:
                yield Passage(pack[0][0], pack[-1][1], size)
                pack, size = [], 0
            pack.append(piece)
            size += piece[2]
    if pack:
        yield Passage(pack[0][0], pack[-1][1], size)


def _is_heading(text: str, start: int, end: int) -> bool:
    """A short line standing alone, without the punctuation that ends a sentence."""
    return (
        end - start <= HEADING_CHARS
        and "\n" not in text[start:end]
        and not (_SENTENCE_PUNCTUATION.search(text, end - 1, end))
    )


def _paragraphs(text: str) -> Iterator[tuple[int, int]]:
    """Non-blank paragraphs, trimmed of surrounding whitespace."""
    pos = 0
    for match in _PARAGRAPH_BREAK.finditer(text):
        span = _trim(text, pos, match.start())
        if span:
            yield span
        pos = match.end()
    span = _trim(text, pos, len(text))
    if span:
        yield span


def _pieces(text: str, start: int, end: int, maximum: int) -> Iterator[tuple[int, int, int]]:
    """(start, end, tokens) of one paragraph, cut at sentences, spaces, or characters when it
    is over `maximum`."""
    tokens = estimate_tokens(text, start, end)
    if tokens <= maximum:
        yield start, end, tokens
        return
    for pattern in (_SENTENCE_END, _SPACE):
        if pattern.search(text, start, end):
            cuts = itertools.chain((m.end() for m in pattern.finditer(text, start, end)), [end])
            yield from _pack_cuts(text, start, end, cuts, maximum)
            return
    yield from _hard_cut(text, start, end, maximum)


def _pack_cuts(
    text: str, start: int, end: int, cuts: Iterable[int], maximum: int
) -> Iterator[tuple[int, int, int]]:
    """Consecutive pieces ending at the given cut points, each as large as `maximum` allows."""
    pos, last, size = start, start, 0
    for cut in cuts:
        n = estimate_tokens(text, last, cut)
        if size and size + n > maximum:
            span = _trim(text, pos, last)
            if span:
                yield (*span, size)
            pos, size = last, 0
        if n > maximum:  # one sentence or word over the limit on its own
            span = _trim(text, pos, cut)
            if span:
                yield from _hard_cut(text, span[0], span[1], maximum)
            pos, last, size = cut, cut, 0
            continue
        size += n
        last = cut
    span = _trim(text, pos, end)
    if span:
        yield (*span, estimate_tokens(text, *span))


def _hard_cut(text: str, start: int, end: int, maximum: int) -> Iterator[tuple[int, int, int]]:
    """Pieces of at most `maximum` estimated tokens, cut anywhere (no space to cut at)."""
    pos = start
    while pos < end:
        step = max(1, int(maximum / CJK_TOKENS_PER_CHAR))  # safe for any script
        cut = min(end, pos + step)
        yield pos, cut, estimate_tokens(text, pos, cut)
        pos = cut


def _trim(text: str, start: int, end: int) -> tuple[int, int] | None:
    """The range without leading and trailing whitespace; None when nothing is left."""
    first = _NON_SPACE.search(text, start, end)
    if first is None:
        return None
    last = end
    while last > first.start() and text[last - 1].isspace():
        last -= 1
    return first.start(), last


def cjk_grams(text: str) -> str:
    """The overlapping character pairs of the CJK runs of `text`, space-separated (a run of
    one character stands as itself): what a word index needs to search text without spaces."""
    grams: list[str] = []
    for run in _CJK_RUN.findall(text):
        if len(run) == 1:
            grams.append(run)
        else:
            grams.extend(run[i : i + 2] for i in range(len(run) - 1))
    return " ".join(grams)


def latin_words(text: str) -> list[str]:
    """The words of `text` outside its CJK runs, lower-cased."""
    return [w.lower() for w in _WORD.findall(_CJK_RUN.sub(" ", text))]
