"""Cutting text into paragraphs, sentences and token-exact chunks.

Counting is the caller's (the model's tokenizer): `iter_chunks` only promises that every chunk
it yields counts at most `budget` tokens by that function, and that the chunks cover the text
in order with only whitespace between them, each cut at a paragraph break, else a sentence end,
else a word boundary, else anywhere (a line of 30 million characters with none of these).

The text is cut by characters first and counted after: a window of about `budget` tokens' worth
of characters (the characters per token of the text read so far, with a safety margin) is cut at
its last good boundary and only that piece is tokenized; a piece over the budget is cut shorter,
one well under it grown. Each stretch of the text is tokenized about once, a window at a time,
so time grows with the text's length and memory with one window, whatever the text holds.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator

from assistant.documents.options import Span
from assistant.errors import InvalidInputError

Counter = Callable[[str], int]  # the number of tokens of a text
Chunk = tuple[int, int, int]  # start, end, tokens
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|(?<=[。！？；])|\n")
# Boundaries by preference (paragraph, sentence, word): the last one of each kind in a window
# (the greedy `.*` backtracks from the window's end), and the next one after a position.
_LAST = (
    re.compile(r".*\n[ \t]*\n", re.S),
    re.compile(r".*(?:[.!?;](?=\s)|[。！？；\n])", re.S),
    re.compile(r".*\s", re.S),
)
_NEXT = (
    re.compile(r"\n[ \t]*\n"),
    re.compile(r"[.!?;]\s|[。！？；\n]"),
    re.compile(r"\s"),
)
_NON_SPACE = re.compile(r"\S")

CHARS_PER_TOKEN = 4.0  # the first window's guess; later windows use what the text showed
MARGIN = 0.92  # windows aim this far below the budget, so most fit at the first count
FULL = 0.85  # a piece counting at least this much of the budget is not grown
MAX_COUNTS = 6  # counts per chunk before taking the longest piece that fitted


def paragraph_spans(text: str, start: int = 0, end: int | None = None) -> list[Span]:
    """The non-blank paragraphs of text[start:end], separated by blank lines."""
    end = len(text) if end is None else end
    spans, pos = [], start
    for match in _PARAGRAPH_BREAK.finditer(text, start, end):
        cut = match.start()
        if text[pos:cut].strip():
            spans.append((pos, cut))
        pos = match.end()
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


def iter_chunks(
    text: str, budget: int, count: Counter, chars_per_token: float = CHARS_PER_TOKEN
) -> Iterator[Chunk]:
    """Contiguous (start, end, tokens) slices of at most `budget` tokens, in order, lazily."""
    if budget < 1:
        raise InvalidInputError("The context window leaves no room for the document's text.")
    ratio = chars_per_token
    pos = _skip_space(text, 0)
    while pos < len(text):
        end, n = _next_chunk(text, pos, budget, count, ratio)
        yield pos, end, n
        ratio = (end - pos) / max(n, 1)
        pos = _skip_space(text, end)


def pack_chunks(text: str, budget: int, count: Counter) -> list[Chunk]:
    """All of `iter_chunks` at once."""
    return list(iter_chunks(text, budget, count))


def _next_chunk(text: str, pos: int, budget: int, count: Counter, ratio: float) -> tuple[int, int]:
    """The end and token count of the chunk starting at `pos` (a non-blank character).

    The window is cut at its last boundary and counted; over the budget, it is cut shorter by
    the ratio just seen; well under it, grown by that ratio, or else by one more boundary of the
    same kind (the next paragraph, say) while that may fit, as a greedy packing would."""
    size = max(1, int(budget * ratio * MARGIN))
    fitted: tuple[int, int] | None = None  # the longest piece counted within the budget
    too_long = len(text) - pos + 1  # the shortest window known to count over the budget
    for attempt in itertools.count(1):
        end, kind = _cut(text, pos, size)
        n = count(text[pos:end])
        piece_ratio = (end - pos) / max(n, 1)
        if n > budget:
            too_long = min(too_long, size)
            if fitted is not None and attempt >= MAX_COUNTS:
                return fitted
            if end - pos <= 1:
                raise InvalidInputError(
                    f"A single character of the document counts {n} tokens, more than the "
                    f"{budget} a chunk can hold."
                )
            size = max(1, min(end - pos - 1, int(budget * piece_ratio * MARGIN)))
            continue
        if fitted is not None and end <= fitted[0]:
            return fitted
        fitted = (end, n)
        if n >= FULL * budget or pos + size >= len(text) or attempt >= MAX_COUNTS:
            return fitted
        grown = int(budget * piece_ratio * MARGIN)
        if 1.15 * size < grown < too_long:
            size = grown
            continue
        if kind is None:
            return fitted
        # One more boundary of the same kind, if the text up to it may still fit.
        limit = min(len(text), pos + too_long - 1, pos + int(budget * piece_ratio * 1.5))
        start = _NON_SPACE.search(text, end, limit)
        after = _NEXT[kind].search(text, start.end(), limit) if start else None
        if after is None:
            return fitted
        size = after.end() - pos
    raise AssertionError("unreachable: the window shrinks at every step")  # pragma: no cover


def _cut(text: str, pos: int, size: int) -> tuple[int, int | None]:
    """Where a chunk of at most `size` characters from `pos` ends, and the kind of boundary:
    the window's last paragraph break, else sentence end, else space in its second half, else
    the window's end (kind None, as for the text's end)."""
    hi = pos + size
    if hi >= len(text):
        return _rstrip(text, pos, len(text)), None
    lo = pos + size // 2
    for kind, boundary in enumerate(_LAST):
        match = boundary.match(text, pos, hi)
        if match and match.end() > lo:
            end = _rstrip(text, pos, match.end())
            if end > pos:
                return end, kind
    return hi, None


def _rstrip(text: str, pos: int, end: int) -> int:
    return pos + len(text[pos:end].rstrip())


def _skip_space(text: str, pos: int) -> int:
    match = _NON_SPACE.search(text, pos)
    return match.start() if match else len(text)
