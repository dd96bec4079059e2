"""What of a conversation's documents goes with a question: the whole documents when they fit
beside the conversation, else the passages most relevant to the question and the last exchange,
as many as the window's document budget holds, as numbered excerpts with their source.

Ranking is BM25 (SQLite FTS5, see `passage_index`): the question's words (and the character
pairs of its CJK text) against every passage, plus, for follow-ups such as "and the second
time?", the words of the last exchange at PREVIOUS_WEIGHT. The scores are added as they are,
not scaled to each ranking's best: a follow-up made of common words ("what happened next?")
scores low everywhere, so the last exchange's rare words decide, while a new question's own
rare words outweigh the last exchange's.

The excerpts are written in the order of their documents (by document, then position), not by
score, so the block stays the same from one question to the next while the same passages are
retrieved, and the model's cache of the conversation after it stays valid.

The block is counted with the model's tokenizer as it is packed, and fitted into the window
with everything else by `window.fit_window` (which counts it exactly); if the window still
cannot hold it, it is packed again smaller, down to nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from assistant.conversation import passage_index as index
from assistant.conversation.window import Window, compose, turn_starts
from assistant.documents.language import STOPWORDS
from assistant.documents.passages import cjk_grams, latin_words
from assistant.errors import ContextOverflowError
from assistant.types import ASSISTANT, USER, Message

if TYPE_CHECKING:
    from assistant.conversation.store import Conversation, Store

DOC_SHARE = 0.5  # excerpts take at most this share of the window (what the reply leaves)
MARGIN = 24  # tokens kept free for the joins between the block and the system prompt
CANDIDATES = 40  # passages ranked per question
PREVIOUS_WEIGHT = 0.3  # the last exchange's BM25 scores count this much (bench_retrieval)
PREVIOUS_CHARS = 2000  # of the last reply: its start says what it was about
MIN_EXCERPT_TOKENS = 48  # a passage shortened to fit keeps at least this much
RETRIEVER = "keywords (BM25)"  # what ranks passages; no embedding model is used

EXCERPTS_HEADER = (
    "Excerpts from the documents attached to this conversation, numbered. Answer from them "
    "when they are relevant and cite them like [1]; if they do not hold the answer, say so."
)
WHOLE_HEADER = (
    "The documents attached to this conversation. Answer from them when they are relevant; "
    "if they do not hold the answer, say so."
)


@dataclass(frozen=True)
class Source:
    """A passage sent with a question (or a whole document), as the prompt numbers it."""

    number: int
    document_id: int
    document: str
    start: int
    end: int
    text: str
    score: float

    def to_json(self, text: bool = True) -> dict:
        out = {
            "n": self.number,
            "document": self.document,
            "document_id": self.document_id,
            "start": self.start,
            "end": self.end,
            "score": round(self.score, 4),
        }
        if text:
            out["text"] = self.text
        return out


@dataclass(frozen=True)
class Grounding:
    block: str = ""
    sources: tuple[Source, ...] = ()  # most relevant first
    mode: str = "none"  # none | whole | passages


# -- the question ---------------------------------------------------------------------------
def exchange_of(history: Sequence[Message]) -> tuple[str, str]:
    """The question (the last user message) and the exchange before it (that user message and
    the start of the reply to it), from a history ending with a user message or its reply."""
    users = [i for i, m in enumerate(history) if m.role == USER]
    if not users:
        return "", ""
    last = users[-1]
    question = history[last].content
    if len(users) < 2:
        return question, ""
    before = history[users[-2] : last]
    previous = " ".join(
        m.content[:PREVIOUS_CHARS] if m.role == ASSISTANT else m.content
        for m in before
        if m.role in (USER, ASSISTANT)
    )
    return question, previous


def query_terms(text: str) -> list[str]:
    """The words of a question worth searching for: Latin-script words that are not stop
    words, and the character pairs of its CJK text."""
    words = [w for w in latin_words(text) if w not in STOPWORDS and len(w) > 1]
    return words + cjk_grams(text).split()


def rank(
    store: Store, conversation_id: int, question: str, previous: str = ""
) -> list[tuple[index.PassageHit, float]]:
    """Passages by relevance to the question, and PREVIOUS_WEIGHT as much to the last
    exchange."""
    scores: dict[int, float] = {}
    hits: dict[int, index.PassageHit] = {}
    for text, weight in ((question, 1.0), (previous, PREVIOUS_WEIGHT)):
        found = index.search(
            store, conversation_id, index.match_expression(query_terms(text)), CANDIDATES
        )
        if not found:
            continue
        for hit in found:
            hits[hit.id] = hit
            scores[hit.id] = scores.get(hit.id, 0.0) + weight * hit.score
    ranked = sorted(hits, key=lambda i: (-scores[i], i))
    return [(hits[i], scores[i]) for i in ranked]


# -- the block -----------------------------------------------------------------------------
def _entry(number: int, name: str, start: int, end: int, text: str, whole: bool) -> str:
    where = "the whole document" if whole else f"characters {start}–{end}"
    return f"[{number}] {name} ({where}):\n{text.strip()}"


def _summaries(docs: Sequence[index.DocumentInfo]) -> list[str]:
    return [f"Summary of {d.name}:\n{d.summary.strip()}" for d in docs if d.summary.strip()]


def render(header: str, summaries: Sequence[str], entries: Sequence[str]) -> str:
    return "\n\n".join([header, *summaries, *entries])


def whole_documents(
    store: Store, docs: Sequence[index.DocumentInfo], ranked: Sequence, room: int, count
) -> Grounding | None:
    """Every document whole, if they fit `room` tokens; None otherwise."""
    if sum(d.tokens for d in docs) > room * 1.2:  # not worth rendering and counting
        return None
    best = {}
    for hit, score in ranked:
        best[hit.document_id] = max(best.get(hit.document_id, 0.0), score)
    sources, entries = [], []
    for number, doc in enumerate(docs, 1):
        name, text = store.get_document(doc.id)
        entries.append(_entry(number, name, 0, len(text), text, whole=True))
        sources.append(Source(number, doc.id, name, 0, len(text), text, best.get(doc.id, 0.0)))
    block = render(WHOLE_HEADER, _summaries(docs), entries)
    if count(block) > room:
        return None
    sources.sort(key=lambda s: (-s.score, s.number))
    return Grounding(block, tuple(sources), "whole")


def excerpts(docs: Sequence[index.DocumentInfo], ranked: Sequence, budget: int, count) -> Grounding:
    """The best passages that fit `budget` tokens (with the header and the summaries), in
    document order; the best one shortened if even it alone does not fit."""
    summaries = _summaries(docs)
    used = count(render(EXCERPTS_HEADER, summaries, []))
    if used > budget:  # the summaries are too long for this window: leave them out
        summaries = []
        used = count(EXCERPTS_HEADER)
    if used > budget:
        return Grounding()
    chosen: list[tuple[index.PassageHit, float, str]] = []  # hit, score, text sent
    for hit, score in ranked:
        size = count(_entry(99, hit.document, hit.start, hit.end, hit.text, False)) + 2
        if used + size <= budget:
            chosen.append((hit, score, hit.text))
            used += size
        elif not chosen:
            text = _shorten(hit, budget - used, count)
            if text:
                chosen.append((hit, score, text))
                used += count(_entry(99, hit.document, hit.start, hit.end, text, False)) + 2
    if not chosen and not summaries:
        return Grounding()
    chosen.sort(key=lambda c: (c[0].document_id, c[0].start))
    sources, entries = [], []
    for number, (hit, score, text) in enumerate(chosen, 1):
        end = hit.start + len(text.rstrip())
        entries.append(_entry(number, hit.document, hit.start, end, text, False))
        sources.append(Source(number, hit.document_id, hit.document, hit.start, end, text, score))
    sources.sort(key=lambda s: (-s.score, s.number))
    return Grounding(render(EXCERPTS_HEADER, summaries, entries), tuple(sources), "passages")


def _shorten(hit: index.PassageHit, room: int, count) -> str:
    """The passage's head, cut at a space, counting at most `room` tokens as an entry."""
    if room < MIN_EXCERPT_TOKENS:
        return ""
    text = hit.text
    for _ in range(8):
        size = count(_entry(99, hit.document, hit.start, hit.end, text, False)) + 2
        if size <= room:
            return text
        keep = max(1, int(len(text) * room / size * 0.95))
        cut = text.rfind(" ", 0, keep)
        text = text[: cut if cut > keep // 2 else keep]
    return ""


# -- fitting the window ----------------------------------------------------------------------
def fit_with_documents(
    fit: Callable[[str], Window],
    store: Store,
    conversation: Conversation,
    history: Sequence[Message],
    counter,
    reserve: int,
    summary: str,
) -> Window:
    """The window for the next reply with the conversation's documents in it.

    `fit(block)` fits the conversation with a context block (see `window.fit_window`);
    `counter` is the model (its tokenizer, templated counts and window size). The window
    returned carries the sources sent. Without documents, or without a question yet, this is
    `fit("")`."""
    conversation_id, system, n_ctx = conversation.id, conversation.system_prompt, counter.n_ctx
    docs = index.list_documents(store, conversation_id)
    question, previous = exchange_of(history)
    if not docs or not question:
        return fit("")
    plain = fit("")  # raises as it would without documents: they are never the cause

    counted: dict[str, int] = {}

    def count(text: str) -> int:  # a block or an excerpt is often counted twice: once each
        n = counted.get(text)
        if n is None:
            n = counted[text] = len(counter.tokenize(text))
        return n

    ranked = rank(store, conversation_id, question, previous)
    grounding = whole_documents(store, docs, ranked, n_ctx - reserve - plain.used - MARGIN, count)
    if grounding is None:
        newest = list(history[turn_starts(history)[-1] :])
        fixed = counter.count_prompt(compose(system, summary, newest))
        budget = min(int(DOC_SHARE * (n_ctx - reserve)), n_ctx - reserve - fixed - MARGIN)
        grounding = excerpts(docs, ranked, budget, count)
    else:
        budget = count(grounding.block)
    for _ in range(6):
        if not grounding.block:
            return plain
        try:
            window = fit(grounding.block)
        except ContextOverflowError:
            budget //= 2  # the summary of the conversation grew, say: pack again, smaller
            grounding = excerpts(docs, ranked, budget, count)
            continue
        return replace(window, sources=grounding.sources)
    return plain
