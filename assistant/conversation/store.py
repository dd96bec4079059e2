"""Conversations and messages in SQLite (WAL): the queries. The file itself (opening,
migrations, transactions, recovery) in `database`, schema in `schema`, rows in `records`,
export/import in `transfer`, who is writing a reply in `writers`."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from assistant.conversation.database import (
    BEAT_WAIT,
    FINAL_SAVE_WAIT,
    PAUSE,
    WRITE_WAIT,
    StoreBusyError,
)
from assistant.conversation.records import (
    Conversation,
    StoredMessage,
    conversation_from_row,
    message_from_row,
    now,
)
from assistant.conversation.schema import MIGRATIONS
from assistant.conversation.versions import VersionInfo, Versions
from assistant.errors import NotFoundError, StoreError

# Re-exported for callers that type against the store's rows.
__all__ = ["Conversation", "MIGRATIONS", "Store", "StoreBusyError", "StoredMessage", "VersionInfo"]

# LIKE's wildcards and its escape character, matched literally in search text.
_LIKE_SPECIAL = str.maketrans({"\\": "\\\\", "%": "\\%", "_": "\\_"})

IMPORT_BATCH_SECONDS = 0.05  # an import holds the write lock at most about this long at once
IMPORT_BATCH_BYTES = 4 << 20

_INSERT_MESSAGE = (
    "INSERT INTO messages (conversation_id, role, content, created_at, status, tokens, stats,"
    " writer, saved_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


class Store(Versions):
    """The conversations, messages and documents of one database file. A conversation's
    messages are the shown path of its versions (see `versions`)."""

    # -- conversations ---------------------------------------------------------------------
    def create_conversation(
        self,
        *,
        title: str = "New chat",
        system_prompt: str = "",
        model: str = "",
        sampling: dict | None = None,
        policy: str = "drop",
    ) -> Conversation:
        stamp = now()
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO conversations (title, system_prompt, model, sampling, policy,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (title, system_prompt, model, json.dumps(sampling or {}), policy, stamp, stamp),
            )
        return self.get_conversation(cur.lastrowid)

    def get_conversation(self, conversation_id: int) -> Conversation:
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM conversations WHERE id = ? AND importer IS NULL", (conversation_id,)
            ).fetchone()
        if row is None:
            raise NotFoundError(f"No conversation with id {conversation_id}.")
        return conversation_from_row(row)

    def list_conversations(self, search: str | None = None) -> list[Conversation]:
        """Newest activity first; `search` matches titles and message text. A conversation
        still being imported is not listed."""
        sql = "SELECT * FROM conversations WHERE importer IS NULL"
        args: tuple = ()
        if search:
            like = f"%{search.translate(_LIKE_SPECIAL)}%"
            sql += (
                " AND (title LIKE ? ESCAPE '\\' OR id IN (SELECT conversation_id FROM messages"
                " WHERE active = 1 AND content LIKE ? ESCAPE '\\'))"
            )
            args = (like, like)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY updated_at DESC, id DESC", args).fetchall()
        return [conversation_from_row(r) for r in rows]

    def update_conversation(self, conversation_id: int, **fields: Any) -> Conversation:
        allowed = {
            "title",
            "system_prompt",
            "model",
            "sampling",
            "policy",
            "window_start_id",
            "summary",
            "summary_upto_id",
        }
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"unknown conversation fields: {sorted(unknown)}")
        if "sampling" in fields:
            fields["sampling"] = json.dumps(fields["sampling"] or {})
        fields["updated_at"] = now()
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self._tx() as db:
            cur = db.execute(
                f"UPDATE conversations SET {sets} WHERE id = ?", (*fields.values(), conversation_id)
            )
        if cur.rowcount == 0:
            raise NotFoundError(f"No conversation with id {conversation_id}.")
        return self.get_conversation(conversation_id)

    def delete_conversation(self, conversation_id: int) -> None:
        with self._tx() as db:
            cur = db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))
        if cur.rowcount == 0:
            raise NotFoundError(f"No conversation with id {conversation_id}.")

    # -- messages --------------------------------------------------------------------------
    def add_message(
        self,
        conversation_id: int,
        role: str,
        content: str,
        *,
        status: str = "complete",
        tokens: int | None = None,
        stats: dict | None = None,
    ) -> StoredMessage:
        stamp = now()
        writer, saved_at = self._lease(status)
        with self._tx() as db:
            cur = db.execute(
                _INSERT_MESSAGE,
                (
                    conversation_id,
                    role,
                    content,
                    stamp,
                    status,
                    tokens,
                    json.dumps(stats or {}),
                    writer,
                    saved_at,
                ),
            )
            db.execute(
                "UPDATE conversations SET updated_at = ? WHERE id = ?", (stamp, conversation_id)
            )
        return self.get_message(cur.lastrowid)

    def get_message(self, message_id: int) -> StoredMessage:
        with self._lock:
            row = self._db.execute("SELECT * FROM messages WHERE id = ?", (message_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"No message with id {message_id}.")
        return message_from_row(row)

    def update_message(
        self,
        message_id: int,
        *,
        content: str | None = None,
        status: str | None = None,
        tokens: int | None = None,
        stats: dict | None = None,
        wait: float = WRITE_WAIT,
    ) -> None:
        """Change a message; a status records who writes it ('streaming') or ends that."""
        fields: dict[str, Any] = {}
        if content is not None:
            fields["content"] = content
        if status is not None:
            fields["status"] = status
            fields["writer"], fields["saved_at"] = self._lease(status)
        if tokens is not None:
            fields["tokens"] = tokens
        if stats is not None:
            fields["stats"] = json.dumps(stats)
        if not fields:
            return
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self._tx(wait) as db:
            db.execute(f"UPDATE messages SET {sets} WHERE id = ?", (*fields.values(), message_id))

    def _lease(self, status: str) -> tuple[str | None, float | None]:
        """(writer, saved_at) for a row given this status: this store, now, while streaming."""
        if status != "streaming":
            return None, None
        self._streamed = True
        return self._writer, time.time()

    def save_partial(self, message_id: int, content: str) -> bool:
        """A periodic save of a growing reply (renewing its lease). False when another writer
        held the file for BEAT_WAIT: the save is skipped, the next one carries all the text."""
        try:
            with self._tx(BEAT_WAIT) as db:
                db.execute(
                    "UPDATE messages SET content = ?, saved_at = ? WHERE id = ?",
                    (content, time.time(), message_id),
                )
        except StoreBusyError:
            return False
        return True

    def finish_message(
        self, message_id: int, *, content: str, status: str, tokens: int | None, stats: dict
    ) -> None:
        """The final save of a reply: waits up to FINAL_SAVE_WAIT for a busy file. If it still
        fails, the text of the last periodic save stays in the row (marked interrupted once
        this writer is gone) and StoreBusyError says so."""
        try:
            self.update_message(
                message_id,
                content=content,
                status=status,
                tokens=tokens,
                stats=stats,
                wait=FINAL_SAVE_WAIT,
            )
        except StoreBusyError:
            raise StoreBusyError(
                f"The reply could not be saved to {self.path}: another program kept the"
                f" database locked for {FINAL_SAVE_WAIT:g} s. The text saved up to the last"
                " second before the end is kept."
            ) from None

    def messages(self, conversation_id: int) -> list[StoredMessage]:
        """The shown messages (the selected version of each), oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM messages WHERE conversation_id = ? AND active = 1 ORDER BY id",
                (conversation_id,),
            ).fetchall()
        return [message_from_row(r) for r in rows]

    def delete_messages_from(self, conversation_id: int, message_id: int) -> int:
        """Delete this message and every later one (edit and regenerate replace the tail)."""
        with self._tx() as db:
            cur = db.execute(
                "DELETE FROM messages WHERE conversation_id = ? AND id >= ?",
                (conversation_id, message_id),
            )
        return cur.rowcount

    def message_counts(self, conversation_id: int | None = None) -> dict[int, int]:
        """Number of shown messages of every conversation (or of one), in one query."""
        one = conversation_id is not None
        where, args = ("AND conversation_id = ?", (conversation_id,)) if one else ("", ())
        with self._lock:
            rows = self._db.execute(
                f"SELECT conversation_id, COUNT(*) FROM messages WHERE active = 1 {where}"
                " GROUP BY conversation_id",
                args,
            ).fetchall()
        return {row[0]: row[1] for row in rows}

    def insert_conversation(
        self, conversation: dict[str, Any], messages: list[dict[str, Any]]
    ) -> Conversation:
        """Import a whole conversation: all of it or nothing, without holding other writers up.

        The conversation row is written first, hidden (its `importer` set); the messages go in
        short transactions (about IMPORT_BATCH_SECONDS each, with a pause between them so that
        a reply's save gets in); the last step unhides it. If anything fails, what was written
        is removed; if the process dies, the next open removes it (the importer is gone)."""
        stamp = now()
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO conversations (title, system_prompt, model, sampling, policy,"
                " created_at, updated_at, summary, importer) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    conversation["title"],
                    conversation["system_prompt"],
                    conversation["model"],
                    json.dumps(conversation["sampling"]),
                    conversation["policy"],
                    conversation["created_at"] or stamp,
                    stamp,
                    conversation["summary"],
                    self._writer,
                ),
            )
        conversation_id = cur.lastrowid
        try:
            rows = _ImportRows(conversation_id, iter(messages), stamp)
            while rows.more:
                with self._tx() as db:
                    db.executemany(_INSERT_MESSAGE, rows.batch())
                    db.execute(  # the importer's lease, where liveness cannot be checked
                        "UPDATE conversations SET updated_at = ? WHERE id = ?",
                        (now(), conversation_id),
                    )
                time.sleep(PAUSE)
            with self._tx() as db:
                db.execute(
                    "UPDATE conversations SET importer = NULL, updated_at = ? WHERE id = ?",
                    (now(), conversation_id),
                )
        except BaseException:
            try:
                self._discard_import(conversation_id)
            except StoreError:
                pass  # the next open removes it: this store's token is gone by then
            raise
        return self.get_conversation(conversation_id)

    # -- documents (the sources behind summaries) -------------------------------------------
    def get_document(self, document_id: int) -> tuple[str, str]:
        """(name, text) of a summarized document."""
        with self._lock:
            row = self._db.execute(
                "SELECT name, text FROM documents WHERE id = ?", (document_id,)
            ).fetchone()
        if row is None:
            raise NotFoundError(f"No document with id {document_id}.")
        if row["text"]:
            return row["name"], row["text"]
        with self._lock:  # stored in pieces (see passage_index)
            pieces = self._db.execute(
                "SELECT text FROM document_chunks WHERE document_id = ? ORDER BY seq",
                (document_id,),
            ).fetchall()
        return row["name"], "".join(piece[0] for piece in pieces)


class _ImportRows:
    """The imported messages as rows, handed out in batches of about IMPORT_BATCH_SECONDS."""

    def __init__(self, conversation_id: int, messages: Iterator[dict[str, Any]], stamp: str):
        self.conversation_id, self.messages, self.stamp = conversation_id, messages, stamp
        self.next = next(messages, None)

    @property
    def more(self) -> bool:
        return self.next is not None

    def batch(self) -> Iterator[tuple]:
        deadline, size = time.monotonic() + IMPORT_BATCH_SECONDS, 0
        while self.next is not None:
            m = self.next
            yield (
                self.conversation_id,
                m["role"],
                m["content"],
                m["created_at"] or self.stamp,
                m["status"],
                m["tokens"],
                json.dumps(m["stats"]),
                None,
                None,
            )
            self.next = next(self.messages, None)
            size += len(m["content"]) + 1
            if size >= IMPORT_BATCH_BYTES or time.monotonic() >= deadline:
                return
