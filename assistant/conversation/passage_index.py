"""The documents of a conversation and their passages, searchable with SQLite's FTS5.

A document's text is stored in pieces of CHUNK_CHARS (`document_chunks`: SQLite holds a value
being written twice in memory, so a 10 MB text in one row would cost 20 MB more) and cut into
passages (`assistant.documents.passages`, character ranges of the text), each indexed in
`passage_text` with two columns:
`body`, the passage itself (Latin-script words, Porter-stemmed, ranked by BM25), and `grams`,
the overlapping character pairs of its CJK runs (Chinese and Japanese have no spaces, so a
word index sees a whole sentence as one word; pairs make any two-character word searchable).

Indexing walks the text once, in short write transactions (other writers get in between), with
progress and a cancel flag checked between batches; the document stays hidden (its `indexer`
set) until its last passage is written, and a cancelled or failed run removes what it wrote.
Removing a document removes its passages (a foreign key) and their index rows (a trigger).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from assistant.conversation import writers
from assistant.conversation.records import now
from assistant.conversation.schema import insert_passage
from assistant.conversation.store import Store
from assistant.documents.passages import estimate_tokens, iter_passages
from assistant.errors import AssistantError, NotFoundError

BATCH_SECONDS = 0.05  # one write transaction holds the database about this long at most
CHUNK_CHARS = 1 << 16  # a document's text is stored in pieces this long
CHUNKS_PER_BATCH = 16
EXACT_COUNT_CHARS = 1_000_000  # longer documents get a token count estimated from a sample
SAMPLE_CHARS = 200_000


class IndexingCancelledError(AssistantError):
    """Indexing a document was stopped; nothing of it was kept."""


@dataclass(frozen=True)
class DocumentInfo:
    id: int
    conversation_id: int
    name: str
    chars: int
    tokens: int  # the model's count, or an estimate for a very long document
    passages: int
    summary: str
    created_at: str


@dataclass(frozen=True)
class IndexProgress:
    done_chars: int
    total_chars: int
    passages: int
    elapsed_s: float

    @property
    def fraction(self) -> float:
        return self.done_chars / self.total_chars if self.total_chars else 1.0


@dataclass(frozen=True)
class PassageHit:
    id: int
    document_id: int
    document: str  # the document's name
    start: int
    end: int
    tokens: int  # estimated
    text: str
    score: float  # BM25, higher is better (0 when not ranked)


# -- writing -------------------------------------------------------------------------------
def add_document(
    store: Store,
    conversation_id: int,
    name: str,
    text: str,
    *,
    count: Callable[[str], int] | None = None,
    progress: Callable[[IndexProgress], None] | None = None,
    cancel: threading.Event | None = None,
) -> DocumentInfo:
    """Store a document in a conversation and index its passages; raises
    IndexingCancelledError (having removed what it wrote) when `cancel` is set meanwhile.

    `count` is the model's token counter: the document's size is counted with it when the text
    is short enough (EXACT_COUNT_CHARS), else estimated from a sample counted with it."""
    store.get_conversation(conversation_id)  # raises NotFoundError
    _discard_abandoned(store)
    started = time.perf_counter()
    with store._tx() as db:
        cur = db.execute(
            "INSERT INTO documents (conversation_id, name, text, chars, created_at, indexer)"
            " VALUES (?, ?, '', ?, ?, ?)",
            (conversation_id, name, len(text), now(), store._writer),
        )
    document_id = cur.lastrowid
    try:
        _write_text(store, document_id, text, cancel)
        passages = _write_passages(store, document_id, text, progress, cancel, started)
        tokens = _count_tokens(text, count)
        if cancel is not None and cancel.is_set():
            raise IndexingCancelledError(f"Indexing {name} was cancelled.")
        with store._tx() as db:
            db.execute(
                "UPDATE documents SET indexer = NULL, passages = ?, tokens = ? WHERE id = ?",
                (passages, tokens, document_id),
            )
    except BaseException:
        _delete(store, document_id)
        raise
    return document_info(store, document_id)


def _write_text(store: Store, document_id: int, text: str, cancel: threading.Event | None) -> None:
    """The text in pieces of CHUNK_CHARS, a few pieces per transaction: SQLite copies a value
    twice while writing it, so a whole 10 MB text in one row would take 20 MB more memory."""
    pieces = range(0, len(text), CHUNK_CHARS)
    for first in range(0, len(pieces), CHUNKS_PER_BATCH):
        if cancel is not None and cancel.is_set():
            raise IndexingCancelledError("Indexing was cancelled.")
        with store._tx() as db:
            for seq in range(first, min(first + CHUNKS_PER_BATCH, len(pieces))):
                db.execute(
                    "INSERT INTO document_chunks (document_id, seq, text) VALUES (?, ?, ?)",
                    (document_id, seq, text[pieces[seq] : pieces[seq] + CHUNK_CHARS]),
                )


def _write_passages(
    store: Store,
    document_id: int,
    text: str,
    progress: Callable[[IndexProgress], None] | None,
    cancel: threading.Event | None,
    started: float,
) -> int:
    """Insert the passages of `text` in short transactions; returns how many."""
    total = 0
    batches = _batches(iter_passages(text))
    for batch in batches:
        if cancel is not None and cancel.is_set():
            raise IndexingCancelledError("Indexing was cancelled.")
        with store._tx() as db:
            deadline = time.monotonic() + BATCH_SECONDS
            for passage in batch.take(deadline):
                insert_passage(db, document_id, text, passage)
                total += 1
                done = passage.end
        if progress is not None:
            progress(IndexProgress(done, len(text), total, time.perf_counter() - started))
    return total


class _Batch:
    """Passages handed out until a deadline (one write transaction's worth)."""

    def __init__(self, passages: Iterator):
        self._passages = passages
        self._next = next(passages, None)

    def take(self, deadline: float) -> Iterator:
        while self._next is not None:
            yield self._next
            self._next = next(self._passages, None)
            if time.monotonic() >= deadline:
                return

    @property
    def more(self) -> bool:
        return self._next is not None


def _batches(passages: Iterator) -> Iterator[_Batch]:
    batch = _Batch(passages)
    while batch.more:
        yield batch


def _count_tokens(text: str, count: Callable[[str], int] | None) -> int:
    """The model's count of the text; a sample's count scaled up for a very long text, or the
    model-free estimate without a model."""
    if count is None:
        return estimate_tokens(text)
    if len(text) <= EXACT_COUNT_CHARS:
        return count(text)
    step = len(text) // 4
    sample = [text[i : i + SAMPLE_CHARS // 4] for i in range(0, len(text), step)][:4]
    counted = sum(count(s) for s in sample)
    return round(counted * len(text) / sum(len(s) for s in sample))


def set_summary(store: Store, document_id: int, summary: str) -> None:
    with store._tx() as db:
        db.execute("UPDATE documents SET summary = ? WHERE id = ?", (summary, document_id))


def remove_document(store: Store, document_id: int) -> None:
    """Remove a document, its passages and their index rows."""
    if not _delete(store, document_id):
        raise NotFoundError(f"No document with id {document_id}.")


def _delete(store: Store, document_id: int) -> bool:
    with store._tx() as db:
        cur = db.execute("DELETE FROM documents WHERE id = ?", (document_id,))
    return cur.rowcount > 0


def _discard_abandoned(store: Store) -> None:
    """Remove documents whose indexing process is gone (killed midway)."""
    with store._lock:
        rows = store._db.execute(
            "SELECT id, indexer FROM documents WHERE indexer IS NOT NULL"
        ).fetchall()
    for document_id, indexer in rows:
        if indexer != store._writer and writers.is_gone(indexer, time.time()):
            _delete(store, document_id)


# -- reading -------------------------------------------------------------------------------
_INFO = (
    "SELECT id, conversation_id, name, coalesce(chars, length(text)) AS chars, tokens, passages,"
    " summary,"
    " created_at FROM documents"
)


def _info(row) -> DocumentInfo:
    return DocumentInfo(
        row["id"],
        row["conversation_id"],
        row["name"],
        row["chars"],
        row["tokens"] or 0,
        row["passages"] or 0,
        row["summary"],
        row["created_at"],
    )


def document_info(store: Store, document_id: int) -> DocumentInfo:
    with store._lock:
        row = store._db.execute(f"{_INFO} WHERE id = ?", (document_id,)).fetchone()
    if row is None or row["passages"] is None:
        raise NotFoundError(f"No document with id {document_id}.")
    return _info(row)


def list_documents(store: Store, conversation_id: int) -> list[DocumentInfo]:
    """The conversation's documents, oldest first (those still being indexed left out)."""
    sql = f"{_INFO} WHERE conversation_id = ? AND indexer IS NULL AND passages IS NOT NULL"
    with store._lock:
        rows = store._db.execute(sql + " ORDER BY id", (conversation_id,)).fetchall()
    return [_info(r) for r in rows]


def find_document(store: Store, conversation_id: int, name: str, text: str) -> DocumentInfo | None:
    """The conversation's document of this name with exactly this text (None: not attached)."""
    for info in list_documents(store, conversation_id):
        if info.name == name and info.chars == len(text) and store.get_document(info.id)[1] == text:
            return info
    return None


def count_passages(store: Store, document_id: int | None = None) -> tuple[int, int]:
    """(passage rows, index rows) of one document, or of the whole database."""
    with store._lock:
        if document_id is None:
            rows = store._db.execute("SELECT COUNT(*) FROM passages").fetchone()[0]
        else:
            rows = store._db.execute(
                "SELECT COUNT(*) FROM passages WHERE document_id = ?", (document_id,)
            ).fetchone()[0]
        indexed = store._db.execute("SELECT COUNT(*) FROM passage_text").fetchone()[0]
    return rows, indexed


def search(store: Store, conversation_id: int, match: str, limit: int = 40) -> list[PassageHit]:
    """Passages of the conversation's documents matching an FTS5 expression, best first."""
    if not match:
        return []
    sql = (
        "SELECT p.id, p.document_id, d.name, p.start_char, p.end_char, p.tokens,"
        " passage_text.body, -bm25(passage_text) AS score"
        " FROM passage_text JOIN passages AS p ON p.id = passage_text.rowid"
        " JOIN documents AS d ON d.id = p.document_id"
        " WHERE passage_text MATCH ? AND d.conversation_id = ? AND d.indexer IS NULL"
        " ORDER BY score DESC, p.id LIMIT ?"
    )
    with store._lock:
        rows = store._db.execute(sql, (match, conversation_id, limit)).fetchall()
    return [PassageHit(*row) for row in rows]


def match_expression(terms: Iterable[str]) -> str:
    """An FTS5 query matching any of the terms (each quoted: no operator can slip in)."""
    quoted = ['"' + t.replace('"', '""') + '"' for t in dict.fromkeys(terms) if t]
    return " OR ".join(quoted)
