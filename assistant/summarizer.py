"""Summarizing documents of any length: token-exact chunks, map, then reduce until one remains.

Every prompt is counted with the model's tokenizer and template before it is sent, so nothing
overflows whatever the window size. The instructions come first and the text last, so llama.cpp
reuses the shared prefix from its KV cache from one chunk to the next. Each point of the summary
carries the character ranges of the source passages it came from.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .errors import InvalidInputError
from .runtime import ModelRuntime
from .types import SYSTEM, USER, Message, SamplingOptions

LENGTHS = {"short": (128, "3 to 5"), "medium": (256, "5 to 8"), "detailed": (512, "8 to 14")}
# Most tokens a chunk's (or a merge's) notes may take, by summary length.
NOTE_TOKENS = {"short": 96, "medium": 128, "detailed": 192}
# Chunks of the source are at most this long (when the window is larger). On CPU without
# flash attention, prompt evaluation slows as the prompt grows (SmolLM2-135M, 2 threads: 187
# tokens/s at 4096, 127 at 7800) and decoding the notes at the end of a long prompt slows more
# (51 vs 27 tokens/s), so 4096-token chunks read a long document about 1.5x faster than
# window-sized ones; small models also keep more of a shorter text.
CHUNK_TOKENS = 4096
SYSTEM_PROMPT = (
    "You summarize documents faithfully. Use only facts stated in the text; never invent any."
)
Span = tuple[int, int]


@dataclass(frozen=True)
class SummaryOptions:
    length: str = "medium"  # short | medium | detailed
    bullets: bool = False
    focus: str | None = None
    language: str | None = None  # None: the document's own language
    chunk_tokens: int = CHUNK_TOKENS  # largest chunk of the source read in one model call

    def __post_init__(self):
        if self.length not in LENGTHS:
            raise InvalidInputError(
                f"Unknown summary length {self.length!r}; choose one of {', '.join(LENGTHS)}."
            )
        if self.chunk_tokens < 256:
            raise InvalidInputError(
                f"Chunks of {self.chunk_tokens} tokens are too small; use at least 256."
            )


@dataclass(frozen=True)
class Progress:
    stage: str  # map | reduce | final
    done: int  # model calls finished
    total: int  # model calls expected (an estimate while reducing)
    tokens_processed: int  # source tokens read so far
    source_tokens: int
    elapsed_s: float
    eta_s: float | None


@dataclass(frozen=True)
class SummaryPoint:
    text: str
    sources: tuple[Span, ...]  # character ranges of the source text


@dataclass(frozen=True)
class SummaryResult:
    summary: str
    points: tuple[SummaryPoint, ...]
    chunks: int
    levels: int
    source_tokens: int
    seconds: float
    partial: bool = False
    max_prompt_tokens: int = 0
    length: str = "medium"
    bullets: bool = False
    language: str | None = None  # what the summary was asked to be written in (None: as the text)

    def to_json(self) -> dict:
        return {
            "summary": self.summary,
            "length": self.length,
            "bullets": self.bullets,
            "language": self.language,
            "chunks": self.chunks,
            "levels": self.levels,
            "source_tokens": self.source_tokens,
            "seconds": round(self.seconds, 2),
            "partial": self.partial,
            "sources": [
                {"point": p.text, "ranges": [list(s) for s in p.sources]} for p in self.points
            ],
        }


@dataclass
class _Note:
    """The summary of a stretch of the document: points with their sources."""

    points: list[SummaryPoint] = field(default_factory=list)

    def text(self) -> str:
        return "\n".join(f"- {p.text}" for p in self.points)


class Summarizer:
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
        source_tokens = len(self.rt.tokenize(text))
        self._source_tokens, self._read = source_tokens, 0
        final_budget = self._text_budget(self._final_prompt, self.final_tokens)
        if source_tokens <= final_budget and self._fits(
            self._final_prompt, text, self.final_tokens
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
        chunks = self.chunk(text, self.chunk_budget())
        self._total_calls = len(chunks) + max(1, math.ceil(len(chunks) / 3))
        notes: list[_Note] = []
        for i, (s, e, n) in enumerate(chunks):
            if self.cancel.is_set():
                return self._result(_merge(notes), len(chunks), 1, source_tokens, start, True)
            # chunk counts leave out the blank lines between chunks: the last one closes the gap
            read = n if i < len(chunks) - 1 else source_tokens - self._read
            notes.append(
                self._ask(
                    self._map_prompt(text[s:e]),
                    self.note_tokens,
                    "map",
                    sources=self._paragraph_units(s, e),
                    read=read,
                )
            )
        levels = 1
        while True:
            if self.cancel.is_set():
                return self._result(_merge(notes), len(chunks), levels, source_tokens, start, True)
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
                    final, len(chunks), levels, source_tokens, start, partial=self.cancel.is_set()
                )
            notes = self._reduce(notes)
            levels += 1

    # -- chunking --------------------------------------------------------------------------
    def chunk_budget(self) -> int:
        """Most source tokens in one map prompt: what the window leaves, at most chunk_tokens."""
        window = self._text_budget(self._map_prompt, self.note_tokens)
        return min(window, self.options.chunk_tokens)

    def chunk(self, text: str, budget: int) -> list[tuple[int, int, int]]:
        """Contiguous (start, end, tokens) slices of at most `budget` tokens, cut at paragraph,
        then sentence, boundaries (a sentence longer than a chunk is cut by length)."""
        units: list[Span] = []
        for s, e in paragraph_spans(text):
            if self._count(text[s:e]) <= budget:
                units.append((s, e))
                continue
            for ss, se in sentence_spans(text, s, e):
                if self._count(text[ss:se]) <= budget:
                    units.append((ss, se))
                else:
                    units.extend(self._hard_split(text, ss, se, budget))
        # Pack units greedily: grow by the sum of the units' own counts, then count the chunk
        # exactly (a join can tokenize differently) and step back or forward one unit at a time.
        sizes = [self._count(text[s:e]) for s, e in units]
        chunks: list[tuple[int, int, int]] = []
        i = 0
        while i < len(units):
            start, j, guess = units[i][0], i + 1, sizes[i]
            while j < len(units) and guess + sizes[j] + 1 <= budget:
                guess, j = guess + sizes[j] + 1, j + 1
            n = self._count(text[start : units[j - 1][1]])
            while n > budget and j > i + 1:
                j -= 1
                n = self._count(text[start : units[j - 1][1]])
            while j < len(units):
                grown = self._count(text[start : units[j][1]])
                if grown > budget:
                    break
                n, j = grown, j + 1
            if n > budget:  # cannot happen: every unit fits alone
                raise InvalidInputError("The document could not be split into chunks.")
            chunks.append((start, units[j - 1][1], n))
            i = j
        return chunks

    def _hard_split(self, text: str, start: int, end: int, budget: int) -> list[Span]:
        spans, pos = [], start
        while pos < end:
            size = max(1, min(end - pos, budget * 2))
            while size > 1 and self._count(text[pos : pos + size]) > budget:
                size = int(size * 0.8)
            spans.append((pos, pos + size))
            pos += size
        return spans

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
        stream = self.rt.stream(tokens, sampling, self.cancel)
        reply = stream.join()
        self._calls += 1
        if stream.finish_reason != "cancelled":  # a chunk stopped midway was not read
            self._read += read
        self._report(stage)
        texts = split_points(reply)
        if stream.finish_reason in ("length", "cancelled") and len(texts) > 1:
            texts = texts[:-1]  # cut off mid-sentence by the token limit or by a cancel
        points = [SummaryPoint(t, _best_sources(t, sources, self._text)) for t in texts]
        if not points and stream.finish_reason == "cancelled":
            return _Note([])  # stopped before it wrote anything: this part was not read
        if not points:  # the model said nothing useful: keep the head of the source instead
            points = [SummaryPoint(p.text[:300], p.sources) for p in sources[:2]]
        return _Note(points)

    def _report(self, stage: str) -> None:
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
            )
        )

    def _paragraph_units(self, start: int, end: int) -> list[SummaryPoint]:
        text = self._text
        return [SummaryPoint(text[s:e], ((s, e),)) for s, e in paragraph_spans(text, start, end)]

    def _result(
        self, note: _Note, chunks: int, levels: int, source_tokens: int, start: float, partial: bool
    ) -> SummaryResult:
        points = tuple(note.points)
        if self.options.bullets or partial:
            summary = "\n".join(f"- {p.text}" for p in points)
        else:
            summary = " ".join(p.text for p in points)
        return SummaryResult(
            summary,
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


# -- text helpers ----------------------------------------------------------------------------
def paragraph_spans(text: str, start: int = 0, end: int | None = None) -> list[Span]:
    end = len(text) if end is None else end
    spans, pos = [], start
    for match in re.finditer(r"\n[ \t]*\n", text[start:end]):
        cut = start + match.start()
        if text[pos:cut].strip():
            spans.append((pos, cut))
        pos = start + match.end()
    if text[pos:end].strip():
        spans.append((pos, end))
    return spans


_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|(?<=[。！？；])|\n")


def sentence_spans(text: str, start: int, end: int) -> list[Span]:
    spans, pos = [], start
    for match in _SENTENCE_END.finditer(text, start, end):
        if match.end() > pos and text[pos : match.end()].strip():
            spans.append((pos, match.end()))
            pos = match.end()
    if pos < end and text[pos:end].strip():
        spans.append((pos, end))
    return spans or [(start, end)]


def split_points(reply: str) -> list[str]:
    """Bullet lines if there are any, else sentences; duplicates (a small model loops) dropped."""
    lines = [ln.strip() for ln in reply.strip().splitlines() if ln.strip()]
    bullets = [
        re.sub(r"^([-*•]|\d+[.)])\s*", "", ln)
        for ln in lines
        if re.match(r"^([-*•]|\d+[.)])\s*", ln)
    ]
    items = bullets or [reply[s:e].strip() for s, e in sentence_spans(reply, 0, len(reply))]
    seen, out = set(), []
    for item in items:
        key = item.lower()
        if len(item) > 2 and key not in seen:
            seen.add(key)
            out.append(item)
    return out


def _features(text: str) -> set[str]:
    words = re.findall(r"\w+", text.lower())
    feats = {w for w in words if len(w) >= 3 and not _is_cjk(w)}
    for w in words:
        if _is_cjk(w):
            feats.update(w[i : i + 2] for i in range(len(w) - 1))
    return feats


def _is_cjk(word: str) -> bool:
    return any("\u3040" <= ch <= "\u9fff" or "\uac00" <= ch <= "\ud7af" for ch in word)


def _best_sources(
    text: str,
    candidates: Sequence[SummaryPoint],
    source: str = "",
    keep: int = 3,
    max_spans: int = 4,
) -> tuple[Span, ...]:
    """The sources of the candidates that share the most words with this point; when they add
    up to many passages, the ones of the source text closest to the point."""
    if not candidates:
        return ()
    feats = _features(text)

    def score(other: str) -> float:
        return len(feats & _features(other)) / (len(feats) or 1)

    scored = sorted(((score(c.text), i) for i, c in enumerate(candidates)), reverse=True)
    best = scored[0][0]
    chosen = [candidates[i] for sc, i in scored[:keep] if sc > 0 and sc >= best * 0.6]
    chosen = chosen or [candidates[scored[0][1]]]
    spans = _merge_spans(s for c in chosen for s in c.sources)
    if len(spans) > max_spans and source:
        ranked = sorted(spans, key=lambda sp: score(source[sp[0] : sp[1]]), reverse=True)
        spans = tuple(sorted(ranked[:max_spans]))
    return spans


def _merge_spans(spans) -> tuple[Span, ...]:
    out: list[list[int]] = []
    for s, e in sorted(spans):
        if out and s <= out[-1][1] + 2:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return tuple((s, e) for s, e in out)


def _point_sources(notes: Sequence[_Note]) -> list[SummaryPoint]:
    return [p for n in notes for p in n.points]


def _merge(notes: Sequence[_Note]) -> _Note:
    return _Note([p for n in notes for p in n.points])


SCRIPTS = [
    ("Chinese", "\u4e00", "\u9fff"),
    ("Japanese", "\u3040", "\u30ff"),
    ("Korean", "\uac00", "\ud7af"),
    ("Russian", "\u0400", "\u04ff"),
    ("Arabic", "\u0600", "\u06ff"),
    ("Greek", "\u0370", "\u03ff"),
    ("Hebrew", "\u0590", "\u05ff"),
    ("Hindi", "\u0900", "\u097f"),
    ("Thai", "\u0e00", "\u0e7f"),
]


def detect_language(text: str) -> str | None:
    """A language name when the script tells it (Chinese, Japanese, ...); None for Latin script,
    where the prompt asks for 'the same language as the text'."""
    sample = text[:20000]
    letters = [ch for ch in sample if ch.isalpha()]
    if not letters:
        return None
    counts = {name: sum(lo <= ch <= hi for ch in letters) for name, lo, hi in SCRIPTS}
    if counts["Japanese"] > 0.05 * len(letters):
        return "Japanese"
    name, count = max(counts.items(), key=lambda kv: kv[1])
    return name if count > 0.3 * len(letters) else None
