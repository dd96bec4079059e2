"""Summarizing documents of any length: token-exact chunks, map, then reduce until one remains.

Every prompt is counted with the model's tokenizer and template before it is sent, so nothing
overflows whatever the window size. The instructions come first and the text last, so llama.cpp
reuses the shared prefix from its KV cache from one chunk to the next. Each point of the summary
carries the character ranges of the source passages it came from.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from assistant.documents.chunking import CHARS_PER_TOKEN, Chunk, iter_chunks, paragraph_spans
from assistant.documents.language import detect_language
from assistant.documents.options import (
    LENGTHS,
    NOTE_TOKENS,
    Progress,
    SummaryOptions,
    SummaryPoint,
    SummaryResult,
)
from assistant.documents.points import best_sources, clean_point, render_points, split_points
from assistant.types import SYSTEM, USER, Message, SamplingOptions

if TYPE_CHECKING:
    from assistant.engine.runtime import ModelRuntime

# Texts up to this long are counted whole first (about a second), to see whether one prompt can
# hold them; longer ones cannot fit any window and are counted chunk by chunk as they are read.
EXACT_COUNT_CHARS = 1_000_000
# A prompt this long takes a noticeable while to read (seconds on a laptop CPU for a 4k-token
# chunk): its reading is reported batch by batch, so the first chunk shows movement.
PROMPT_PROGRESS_TOKENS = 1024
SYSTEM_PROMPT = (
    "You summarize documents faithfully. Use only facts stated in the text; never invent any."
)


@dataclass
class _Note:
    """The summary of a stretch of the document: points with their sources."""

    points: list[SummaryPoint] = field(default_factory=list)

    def text(self) -> str:
        return render_points(self.points, bullets=True)


class Summarizer:
    """Map-reduce summaries on one runtime (any object with the runtime's counting and
    streaming methods), with progress, a cancel flag checked between tokens, and sources."""

    def __init__(
        self,
        runtime: ModelRuntime,
        options: SummaryOptions | None = None,
        progress: Callable[[Progress], None] | None = None,
        cancel: threading.Event | None = None,
    ):
        self.rt = runtime
        self.options = options or SummaryOptions()
        self.on_progress = progress or (lambda p: None)
        self.cancel = cancel or threading.Event()
        n_ctx = runtime.n_ctx
        self.note_tokens = max(48, min(NOTE_TOKENS[self.options.length], n_ctx // 6))
        self.final_tokens = max(48, min(LENGTHS[self.options.length][0], n_ctx // 3))
        self.language = self.options.language  # filled from the document by summarize()
        self.max_prompt = 0
        self._calls = 0
        self._total_calls = 1

    # -- public ----------------------------------------------------------------------------
    def summarize(self, text: str) -> SummaryResult:
        start = time.perf_counter()
        self._start, self._text = start, text
        self.language = self.options.language or detect_language(text)
        # A text that may fit one prompt is counted whole; a longer one only chunk by chunk,
        # as it is read, so the first model call comes after one chunk, not the whole text.
        exact = len(text) <= EXACT_COUNT_CHARS
        source_tokens = self._count(text) if exact else round(len(text) / CHARS_PER_TOKEN)
        self._source_tokens, self._read = source_tokens, 0
        final_budget = self._text_budget(self._final_prompt, self.final_tokens)
        if (
            exact
            and source_tokens <= final_budget
            and self._fits(self._final_prompt, text, self.final_tokens)
        ):
            self._total_calls = 1
            note = self._ask(
                self._final_prompt(text),
                self.final_tokens,
                "final",
                sources=self._paragraph_units(0, len(text)),
                read=source_tokens,
            )
            return self._result(note, 1, 1, source_tokens, start, partial=self.cancel.is_set())
        notes: list[_Note] = []
        n_chunks = 0
        chunks = _Lookahead(iter_chunks(text, self.chunk_budget(), self._count))
        for s, e, n in chunks:
            if not exact:  # the count so far, and the rest estimated from it
                rest = 0 if chunks.last else len(text) - chunks.end
                self._source_tokens = chunks.tokens + round(rest * chunks.tokens / chunks.end)
            n_chunks = chunks.seen + chunks.left(len(text))
            self._total_calls = n_chunks + max(1, math.ceil(n_chunks / 3))
            if self.cancel.is_set():
                return self._result(_merge(notes), n_chunks, 1, self._source_tokens, start, True)
            # chunk counts leave out the blank lines between chunks: the last one closes the gap
            read = n if not chunks.last else self._source_tokens - self._read
            notes.append(
                self._ask(
                    self._map_prompt(text[s:e]),
                    self.note_tokens,
                    "map",
                    sources=self._paragraph_units(s, e),
                    read=read,
                )
            )
        n_chunks, source_tokens = chunks.seen, self._source_tokens
        levels = 1
        while True:
            if self.cancel.is_set():
                return self._result(_merge(notes), n_chunks, levels, source_tokens, start, True)
            joined = "\n".join(n.text() for n in notes)
            if self._fits(self._final_prompt, joined, self.final_tokens, notes=True):
                levels += 1
                final = self._ask(
                    self._final_prompt(joined, notes=True),
                    self.final_tokens,
                    "final",
                    sources=_point_sources(notes),
                )
                return self._result(
                    final, n_chunks, levels, source_tokens, start, partial=self.cancel.is_set()
                )
            notes = self._reduce(notes)
            levels += 1

    # -- chunking --------------------------------------------------------------------------
    def chunk_budget(self) -> int:
        """Most source tokens in one map prompt: what the window leaves, at most chunk_tokens."""
        window = self._text_budget(self._map_prompt, self.note_tokens)
        return min(window, self.options.chunk_tokens)

    def chunk(self, text: str, budget: int) -> list[tuple[int, int, int]]:
        """Contiguous (start, end, tokens) slices of at most `budget` tokens of the model's."""
        return list(iter_chunks(text, budget, self._count))

    def _count(self, text: str) -> int:
        return len(self.rt.tokenize(text))

    # -- prompts ---------------------------------------------------------------------------
    def _lang(self) -> str:
        if self.language:
            return f"Write in {self.language}."
        return "Write in the same language as the text."

    def _focus(self) -> str:
        f = self.options.focus
        return f" Pay special attention to this question: {f.strip()}" if f and f.strip() else ""

    def _map_prompt(self, body: str) -> list[Message]:
        instructions = (
            f"List the key facts of the text below as short bullet points "
            f"(each line starting with '- '). {self._lang()}{self._focus()}"
        )
        return [Message(SYSTEM, SYSTEM_PROMPT), Message(USER, f"{instructions}\n\nText:\n{body}")]

    def _reduce_prompt(self, body: str) -> list[Message]:
        instructions = (
            f"These notes come from consecutive parts of one document. Merge them "
            f"into fewer short bullet points (each line starting with '- '), keeping "
            f"the most important facts. {self._lang()}{self._focus()}"
        )
        return [Message(SYSTEM, SYSTEM_PROMPT), Message(USER, f"{instructions}\n\nNotes:\n{body}")]

    def _final_prompt(self, body: str, notes: bool = False) -> list[Message]:
        _, count = LENGTHS[self.options.length]
        form = (
            f"as {count} bullet points (each line starting with '- ')"
            if self.options.bullets
            else f"as one paragraph of {count} sentences"
        )
        what = "these notes taken from a document" if notes else "the text below"
        label = "Notes" if notes else "Text"
        instructions = f"Summarize {what} {form}. {self._lang()}{self._focus()}"
        return [
            Message(SYSTEM, SYSTEM_PROMPT),
            Message(USER, f"{instructions}\n\n{label}:\n{body}"),
        ]

    def _text_budget(self, prompt, reply_tokens: int) -> int:
        return self.rt.n_ctx - reply_tokens - self.rt.count_prompt(prompt("")) - 8

    def _fits(self, prompt, body: str, reply_tokens: int, **kw) -> bool:
        return self.rt.count_prompt(prompt(body, **kw)) + reply_tokens <= self.rt.n_ctx

    # -- model calls -----------------------------------------------------------------------
    def _reduce(self, notes: list[_Note]) -> list[_Note]:
        window = self._text_budget(self._reduce_prompt, self.note_tokens)
        budget = min(window, self.options.chunk_tokens)
        groups: list[list[_Note]] = [[]]
        for note in notes:
            candidate = groups[-1] + [note]
            if groups[-1] and self._count("\n".join(n.text() for n in candidate)) > budget:
                groups.append([note])
            else:
                groups[-1] = candidate
        if len(groups) == len(notes):  # no two notes fit together: halve them, then pair them
            halves = [_Note(n.points[: max(1, len(n.points) // 2)]) for n in notes]
            groups = [halves[i : i + 2] for i in range(0, len(halves), 2)]
        self._total_calls = self._calls + len(groups) + max(1, math.ceil(len(groups) / 3))
        out = []
        for group in groups:
            if self.cancel.is_set():
                break
            body = "\n".join(n.text() for n in group)
            while self._count(body) > budget:  # a single over-long note: keep its head
                body = body[: int(len(body) * 0.8)]
            out.append(
                self._ask(
                    self._reduce_prompt(body),
                    self.note_tokens,
                    "reduce",
                    sources=_point_sources(group),
                )
            )
        return out if not self.cancel.is_set() else out + [n for g in groups[len(out) :] for n in g]

    def _ask(
        self,
        messages: list[Message],
        max_tokens: int,
        stage: str,
        sources: list[SummaryPoint],
        read: int = 0,
    ) -> _Note:
        tokens = self.rt.prompt_tokens(messages)
        if len(tokens) + max_tokens > self.rt.n_ctx:  # the budgets above make this unreachable
            raise AssertionError(f"summary prompt of {len(tokens)} tokens would overflow")
        self.max_prompt = max(self.max_prompt, len(tokens) + max_tokens)
        sampling = SamplingOptions(
            temperature=0.2, top_p=0.9, repeat_penalty=1.15, max_tokens=max_tokens, seed=0
        )
        stream = self.rt.stream(
            tokens,
            sampling,
            self.cancel,
            on_progress=lambda done, total: (
                self._report(stage, done, total) if total >= PROMPT_PROGRESS_TOKENS else None
            ),
        )
        reply = stream.join()
        self._calls += 1
        if stream.finish_reason != "cancelled":  # a chunk stopped midway was not read
            self._read += read
        self._report(stage)
        texts = split_points(reply)
        if stream.finish_reason in ("length", "cancelled") and len(texts) > 1:
            texts = texts[:-1]  # cut off mid-sentence by the token limit or by a cancel
        points = [SummaryPoint(t, best_sources(t, sources, self._text)) for t in texts]
        if not points and stream.finish_reason == "cancelled":
            return _Note([])  # stopped before it wrote anything: this part was not read
        if not points:  # the model said nothing useful: keep the head of the source instead
            points = [SummaryPoint(clean_point(p.text[:300]), p.sources) for p in sources[:2]]
        return _Note(points)

    def _report(self, stage: str, prompt_done: int = 0, prompt_total: int = 0) -> None:
        """After each model call, and while a call's prompt is read (batch by batch)."""
        elapsed = time.perf_counter() - self._start
        done, total = self._calls, max(self._total_calls, self._calls)
        eta = elapsed / done * (total - done) if done else None
        self.on_progress(
            Progress(
                stage,
                done,
                total,
                self._read,
                self._source_tokens,
                round(elapsed, 2),
                None if eta is None else round(eta, 1),
                prompt_done,
                prompt_total,
            )
        )

    def _paragraph_units(self, start: int, end: int) -> list[SummaryPoint]:
        text = self._text
        return [SummaryPoint(text[s:e], ((s, e),)) for s, e in paragraph_spans(text, start, end)]

    def _result(
        self, note: _Note, chunks: int, levels: int, source_tokens: int, start: float, partial: bool
    ) -> SummaryResult:
        points = tuple(note.points)
        return SummaryResult(
            render_points(points, bullets=self.options.bullets or partial),
            points,
            chunks,
            levels,
            source_tokens,
            time.perf_counter() - start,
            partial,
            self.max_prompt,
            self.options.length,
            self.options.bullets,
            self.language,
        )


def summarize(
    runtime: ModelRuntime,
    text: str,
    options: SummaryOptions | None = None,
    progress: Callable[[Progress], None] | None = None,
    cancel: threading.Event | None = None,
) -> SummaryResult:
    return Summarizer(runtime, options, progress, cancel).summarize(text)


class _Lookahead:
    """Chunks one ahead, so the last one is known as such, with what has been counted so far."""

    def __init__(self, chunks: Iterator[Chunk]):
        self._chunks = chunks
        self._next = next(chunks, None)
        self.seen = self.tokens = self.end = 0  # chunks, tokens and characters counted
        if self._next is not None:
            self._add(self._next)
        self.last = self._next is None

    def _add(self, chunk: Chunk) -> None:
        self.seen, self.tokens, self.end = self.seen + 1, self.tokens + chunk[2], chunk[1]

    def __iter__(self) -> Iterator[Chunk]:
        while self._next is not None:
            current, self._next = self._next, next(self._chunks, None)
            if self._next is not None:
                self._add(self._next)
            self.last = self._next is None
            yield current

    def left(self, length: int) -> int:
        """Chunks still to come after those counted (an estimate from their average length)."""
        if self._next is None:
            return 0
        return math.ceil((length - self.end) / max(self.end / self.seen, 1))


def _point_sources(notes: Sequence[_Note]) -> list[SummaryPoint]:
    return [p for n in notes for p in n.points]


def _merge(notes: Sequence[_Note]) -> _Note:
    return _Note([p for n in notes for p in n.points])
