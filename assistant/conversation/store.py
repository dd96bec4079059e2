"""Conversations and messages in SQLite (WAL): the queries. Schema in `schema`, rows in
`records`, export/import in `transfer`."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from assistant import paths
from assistant.conversation.records import (
    Conversation,
    StoredMessage,
    conversation_from_row,
    message_from_row,
    now,
)
from assistant.conversation.schema import MIGRATIONS
from assistant.errors import NotFoundError, StoreError

# Re-exported for callers that type against the store's rows.
__all__ = ["Conversation", "MIGRATIONS", "Store", "StoredMessage"]

# LIKE's wildcards and its escape character, matched literally in search text.
_LIKE_SPECIAL = str.maketrans({"\\": "\\\\", "%": "\\%", "_": "\\_"})


class Store:
    """Thread-safe access to one database file (the UI reads while the worker writes)."""

    def __init__(self, path: str | Path | None = None):
        """`path` ':memory:' gives a throw-away store (for one-shot `assistant ask`)."""
        self.path = Path(path) if path else paths.database_path()
        self._lock = threading.RLock()
        try:
            if str(path) != ":memory:":
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                str(self.path), check_same_thread=False, isolation_level=None
            )
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._migrate()
            self._recover_interrupted()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"Cannot open the conversation database {self.path}: {exc}.") from None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                yield self._db
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise StoreError(f"Could not save to {self.path}: {exc}.") from None
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        for number, step in enumerate(MIGRATIONS[version:], start=version + 1):
            with self._tx() as db:
                step(db)
                db.execute(f"PRAGMA user_version = {number}")

    @property
    def schema_version(self) -> int:
        return self._db.execute("PRAGMA user_version").fetchone()[0]

    def _recover_interrupted(self) -> None:
        with self._tx() as db:
            db.execute("UPDATE messages SET status='interrupted' WHERE status='streaming'")

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
                "SELECT * FROM conversations WHERE id = ?", (conversation_id,)
            ).fetchone()
        if row is None:
            raise NotFoundError(f"No conversation with id {conversation_id}.")
        return conversation_from_row(row)

    def list_conversations(self, search: str | None = None) -> list[Conversation]:
        """Newest activity first; `search` matches titles and message text."""
        sql = "SELECT * FROM conversations"
        args: tuple = ()
        if search:
            like = f"%{search.translate(_LIKE_SPECIAL)}%"
            sql += (
                " WHERE title LIKE ? ESCAPE '\\' OR id IN (SELECT conversation_id FROM messages"
                " WHERE content LIKE ? ESCAPE '\\')"
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
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO messages (conversation_id, role, content, created_at, status,"
                " tokens, stats) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (conversation_id, role, content, stamp, status, tokens, json.dumps(stats or {})),
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
    ) -> None:
        fields: dict[str, Any] = {}
        if content is not None:
            fields["content"] = content
        if status is not None:
            fields["status"] = status
        if tokens is not None:
            fields["tokens"] = tokens
        if stats is not None:
            fields["stats"] = json.dumps(stats)
        if not fields:
            return
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self._tx() as db:
            db.execute(f"UPDATE messages SET {sets} WHERE id = ?", (*fields.values(), message_id))

    def messages(self, conversation_id: int) -> list[StoredMessage]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM messages WHERE conversation_id = ? ORDER BY id", (conversation_id,)
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

    def message_counts(self) -> dict[int, int]:
        """Number of messages of every conversation, in one query."""
        with self._lock:
            rows = self._db.execute(
                "SELECT conversation_id, COUNT(*) FROM messages GROUP BY conversation_id"
            ).fetchall()
        return {row[0]: row[1] for row in rows}

    def insert_conversation(
        self, conversation: dict[str, Any], messages: list[dict[str, Any]]
    ) -> Conversation:
        """Write a whole conversation in one transaction (import): all of it or nothing."""
        stamp = now()
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO conversations (title, system_prompt, model, sampling, policy,"
                " created_at, updated_at, summary) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    conversation["title"],
                    conversation["system_prompt"],
                    conversation["model"],
                    json.dumps(conversation["sampling"]),
                    conversation["policy"],
                    conversation["created_at"] or stamp,
                    stamp,
                    conversation["summary"],
                ),
            )
            db.executemany(
                "INSERT INTO messages (conversation_id, role, content, created_at, status,"
                " tokens, stats) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        cur.lastrowid,
                        m["role"],
                        m["content"],
                        m["created_at"] or stamp,
                        m["status"],
                        m["tokens"],
                        json.dumps(m["stats"]),
                    )
                    for m in messages
                ],
            )
        return self.get_conversation(cur.lastrowid)

    # -- documents (the sources behind summaries) -------------------------------------------
    def add_document(self, conversation_id: int, name: str, text: str) -> int:
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO documents (conversation_id, name, text, created_at)"
                " VALUES (?, ?, ?, ?)",
                (conversation_id, name, text, now()),
            )
        return cur.lastrowid

    def get_document(self, document_id: int) -> tuple[str, str]:
        """(name, text) of a summarized document."""
        with self._lock:
            row = self._db.execute(
                "SELECT name, text FROM documents WHERE id = ?", (document_id,)
            ).fetchone()
        if row is None:
            raise NotFoundError(f"No document with id {document_id}.")
        return row["name"], row["text"]
