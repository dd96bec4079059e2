"""Conversations and messages in SQLite (WAL): crash-safe, migrated by an ordered list of steps."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import paths
from .errors import InvalidInputError, NotFoundError, StoreError

EXPORT_FORMAT = "offline-assistant.conversation"
EXPORT_VERSION = 1
# Message status: a reply is 'streaming' while it grows, then 'complete', 'cancelled' or
# 'length'; one left 'streaming' by a killed process becomes 'interrupted' at the next open.
STATUSES = ("complete", "streaming", "cancelled", "length", "interrupted", "error")


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class Conversation:
    id: int
    title: str
    system_prompt: str
    model: str
    sampling: dict[str, Any]
    policy: str
    created_at: str
    updated_at: str
    window_start_id: int | None = None  # first message the model still sees (None: all)
    summary: str = ""
    summary_upto_id: int | None = None  # messages with a smaller id are in the summary


@dataclass(frozen=True)
class StoredMessage:
    id: int
    conversation_id: int
    role: str
    content: str
    created_at: str
    status: str = "complete"
    tokens: int | None = None
    stats: dict[str, Any] = field(default_factory=dict)


def _run_script(db: sqlite3.Connection, script: str) -> None:
    """Statement by statement: executescript() would commit the migration's transaction."""
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


def _m001_initial(db: sqlite3.Connection) -> None:
    _run_script(
        db,
        """
        CREATE TABLE conversations (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            title TEXT NOT NULL,
            system_prompt TEXT NOT NULL DEFAULT '',
            model TEXT NOT NULL DEFAULT '',
            sampling TEXT NOT NULL DEFAULT '{}',
            policy TEXT NOT NULL DEFAULT 'drop',
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE TABLE messages (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            role TEXT NOT NULL,
            content TEXT NOT NULL,
            created_at TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'complete',
            tokens INTEGER,
            stats TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX messages_by_conversation ON messages(conversation_id, id);
        """,
    )


def _m002_window_state(db: sqlite3.Connection) -> None:
    _run_script(
        db,
        """
        ALTER TABLE conversations ADD COLUMN window_start_id INTEGER;
        ALTER TABLE conversations ADD COLUMN summary TEXT NOT NULL DEFAULT '';
        ALTER TABLE conversations ADD COLUMN summary_upto_id INTEGER;
        """,
    )


def _m003_documents(db: sqlite3.Connection) -> None:
    _run_script(
        db,
        """
        CREATE TABLE documents (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            text TEXT NOT NULL,
            created_at TEXT NOT NULL
        )
        """,
    )


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [
    _m001_initial,
    _m002_window_state,
    _m003_documents,
]


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
        return _conversation(row)

    def list_conversations(self, search: str | None = None) -> list[Conversation]:
        """Newest activity first; `search` matches titles and message text."""
        sql = "SELECT * FROM conversations"
        args: tuple = ()
        if search:
            like = f"%{search}%"
            sql += (
                " WHERE title LIKE ? OR id IN (SELECT conversation_id FROM messages"
                " WHERE content LIKE ?)"
            )
            args = (like, like)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY updated_at DESC, id DESC", args).fetchall()
        return [_conversation(r) for r in rows]

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
        return _message(row)

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
        return [_message(r) for r in rows]

    def delete_messages_from(self, conversation_id: int, message_id: int) -> int:
        """Delete this message and every later one (edit and regenerate replace the tail)."""
        with self._tx() as db:
            cur = db.execute(
                "DELETE FROM messages WHERE conversation_id = ? AND id >= ?",
                (conversation_id, message_id),
            )
        return cur.rowcount

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

    # -- export / import -------------------------------------------------------------------
    def export_json(self, conversation_id: int) -> dict[str, Any]:
        conv = self.get_conversation(conversation_id)
        return {
            "format": EXPORT_FORMAT,
            "version": EXPORT_VERSION,
            "conversation": {
                k: v
                for k, v in asdict(conv).items()
                if k not in {"id", "window_start_id", "summary_upto_id"}
            },
            "messages": [
                {k: v for k, v in asdict(m).items() if k not in {"id", "conversation_id"}}
                for m in self.messages(conversation_id)
            ],
        }

    def export_markdown(self, conversation_id: int) -> str:
        conv = self.get_conversation(conversation_id)
        out = [
            f"# {conv.title}",
            "",
            f"_Model: {conv.model or 'default'} · created {conv.created_at}_",
            "",
        ]
        if conv.system_prompt:
            out += ["> **System:** " + conv.system_prompt.replace("\n", "\n> "), ""]
        for m in self.messages(conversation_id):
            note = "" if m.status == "complete" else f" _({m.status})_"
            out += [f"## {m.role.title()}{note}", "", m.content, ""]
        return "\n".join(out)

    def import_json(self, data: Any, source: str = "the file") -> Conversation:
        if not isinstance(data, dict) or data.get("format") != EXPORT_FORMAT:
            raise InvalidInputError(f"{source} is not a conversation exported by this app.")
        if data.get("version", 0) > EXPORT_VERSION:
            raise InvalidInputError(f"{source} comes from a newer version of the app.")
        conv, msgs = data.get("conversation") or {}, data.get("messages")
        if not isinstance(conv, dict) or not isinstance(msgs, list):
            raise InvalidInputError(f"{source} is missing its conversation or messages.")
        try:
            with self._tx() as db:
                stamp = now()
                cur = db.execute(
                    "INSERT INTO conversations (title, system_prompt, model, sampling, policy,"
                    " created_at, updated_at, summary) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        str(conv.get("title") or "Imported chat"),
                        str(conv.get("system_prompt", "")),
                        str(conv.get("model", "")),
                        json.dumps(conv.get("sampling") or {}),
                        str(conv.get("policy", "drop")),
                        str(conv.get("created_at") or stamp),
                        stamp,
                        str(conv.get("summary", "")),
                    ),
                )
                for m in msgs:
                    if m.get("role") not in {"user", "assistant", "system"}:
                        raise InvalidInputError(f"{source} has a message with an unknown role.")
                    db.execute(
                        "INSERT INTO messages (conversation_id, role, content, created_at, status,"
                        " tokens, stats) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (
                            cur.lastrowid,
                            m["role"],
                            str(m.get("content", "")),
                            str(m.get("created_at") or stamp),
                            str(m.get("status", "complete")),
                            m.get("tokens"),
                            json.dumps(m.get("stats") or {}),
                        ),
                    )
        except (AttributeError, KeyError, TypeError):
            raise InvalidInputError(f"{source} has malformed messages.") from None
        return self.get_conversation(cur.lastrowid)


def _conversation(row: sqlite3.Row) -> Conversation:
    return Conversation(
        id=row["id"],
        title=row["title"],
        system_prompt=row["system_prompt"],
        model=row["model"],
        sampling=json.loads(row["sampling"] or "{}"),
        policy=row["policy"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        window_start_id=row["window_start_id"],
        summary=row["summary"],
        summary_upto_id=row["summary_upto_id"],
    )


def _message(row: sqlite3.Row) -> StoredMessage:
    return StoredMessage(
        id=row["id"],
        conversation_id=row["conversation_id"],
        role=row["role"],
        content=row["content"],
        created_at=row["created_at"],
        status=row["status"],
        tokens=row["tokens"],
        stats=json.loads(row["stats"] or "{}"),
    )
