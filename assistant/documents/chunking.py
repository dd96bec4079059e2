"""Cutting text into paragraphs, sentences and token-exact chunks.

Counting is the caller's (the model's tokenizer): `pack_chunks` only promises that every chunk
it returns counts at most `budget` tokens by that function, and that the chunks cover the text
in order, cut at paragraph, then sentence, boundaries.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from assistant.documents.options import Span
from assistant.errors import InvalidInputError

Counter = Callable[[str], int]  # the number of tokens of a text
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|(?<=[。！？；])|\n")


def paragraph_spans(text: str, start: int = 0, end: int | None = None) -> list[Span]:
    """The non-blank paragraphs of text[start:end], separated by blank lines."""
    end = len(text) if end is None else end
    spans, pos = [], start
    for match in _PARAGRAPH_BREAK.finditer(text[start:end]):
        cut = start + match.start()
        if text[pos:cut].strip():
            spans.append((pos, cut))
        pos = start + match.end()
    if text[pos:end].strip():
        spans.append((pos, end))
    return spans


def sentence_spans(text: str, start: int, end: int) -> list[Span]:
    """The sentences of text[start:end] (Latin and CJK punctuation, or line ends)."""
    spans, pos = [], start
    for match in _SENTENCE_END.finditer(text, start, end):
        if match.end() > pos and text[pos : match.end()].strip():
            spans.append((pos, match.end()))
            pos = match.end()
    if pos < end and text[pos:end].strip():
        spans.append((pos, end))
    return spans or [(start, end)]


def pack_chunks(text: str, budget: int, count: Counter) -> list[tuple[int, int, int]]:
    """Contiguous (start, end, tokens) slices of at most `budget` tokens, cut at paragraph,
    then sentence, boundaries (a sentence longer than a chunk is cut by length)."""
    units = _units(text, budget, count)
    # Pack units greedily: grow by the sum of the units' own counts, then count the chunk
    # exactly (a join can tokenize differently) and step back or forward one unit at a time.
    sizes = [count(text[s:e]) for s, e in units]
    chunks: list[tuple[int, int, int]] = []
    i = 0
    while i < len(units):
        start, j, guess = units[i][0], i + 1, sizes[i]
        while j < len(units) and guess + sizes[j] + 1 <= budget:
            guess, j = guess + sizes[j] + 1, j + 1
        n = count(text[start : units[j - 1][1]])
        while n > budget and j > i + 1:
            j -= 1
            n = count(text[start : units[j - 1][1]])
        while j < len(units):
            grown = count(text[start : units[j][1]])
            if grown > budget:
                break
            n, j = grown, j + 1
        if n > budget:  # cannot happen: every unit fits alone
            raise InvalidInputError("The document could not be split into chunks.")
        chunks.append((start, units[j - 1][1], n))
        i = j
    return chunks


def _units(text: str, budget: int, count: Counter) -> list[Span]:
    """Paragraphs that fit the budget; the sentences (or pieces) of those that do not."""
    units: list[Span] = []
    for s, e in paragraph_spans(text):
        if count(text[s:e]) <= budget:
            units.append((s, e))
            continue
        for ss, se in sentence_spans(text, s, e):
            if count(text[ss:se]) <= budget:
                units.append((ss, se))
            else:
                units.extend(_hard_split(text, ss, se, budget, count))
    return units


def _hard_split(text: str, start: int, end: int, budget: int, count: Counter) -> list[Span]:
    spans, pos = [], start
    while pos < end:
        size = max(1, min(end - pos, budget * 2))
        while size > 1 and count(text[pos : pos + size]) > budget:
            size = int(size * 0.8)
        spans.append((pos, pos + size))
        pos += size
    return spans
