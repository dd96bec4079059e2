"""The database schema: an ordered list of small migration steps, tracked by `user_version`."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable


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


def _m004_writers(db: sqlite3.Connection) -> None:
    """Who is writing what, so that opening the store marks only a dead writer's reply
    interrupted: a 'streaming' reply names its writer (see `writers`) and when it last saved;
    a conversation being imported names its importer and stays hidden until complete."""
    _run_script(
        db,
        """
        ALTER TABLE messages ADD COLUMN writer TEXT;
        ALTER TABLE messages ADD COLUMN saved_at REAL;
        ALTER TABLE conversations ADD COLUMN importer TEXT;
        CREATE INDEX messages_streaming ON messages(status) WHERE status = 'streaming'
        """,
    )


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [
    _m001_initial,
    _m002_window_state,
    _m003_documents,
    _m004_writers,
]
