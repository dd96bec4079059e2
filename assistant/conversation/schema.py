"""The database schema: an ordered list of small migration steps, tracked by `user_version`."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from assistant.documents.passages import Passage, cjk_grams, estimate_tokens, iter_passages


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


def _m005_versions(db: sqlite3.Connection) -> None:
    """Reply versions and edit branches (see `versions`): each message names its parent and
    whether it is the chosen one among its siblings; `active` marks the shown path. A new row
    with no parent is appended to the shown path by the trigger (every writer, imports too),
    and becomes the chosen one among its siblings."""
    _run_script(
        db,
        """
        ALTER TABLE messages ADD COLUMN parent_id INTEGER;
        ALTER TABLE messages ADD COLUMN chosen INTEGER NOT NULL DEFAULT 1;
        ALTER TABLE messages ADD COLUMN active INTEGER NOT NULL DEFAULT 1;
        UPDATE messages SET parent_id = (SELECT MAX(p.id) FROM messages AS p
            WHERE p.conversation_id = messages.conversation_id AND p.id < messages.id);
        CREATE INDEX messages_shown ON messages(conversation_id, active, id);
        CREATE INDEX messages_by_parent ON messages(conversation_id, parent_id)
        """,
    )
    db.execute(  # one statement with semicolons inside: not for _run_script
        """
        CREATE TRIGGER messages_append AFTER INSERT ON messages WHEN NEW.parent_id IS NULL
        BEGIN
            UPDATE messages SET parent_id = (SELECT MAX(p.id) FROM messages AS p
                WHERE p.conversation_id = NEW.conversation_id AND p.active = 1 AND p.id < NEW.id)
            WHERE id = NEW.id;
            UPDATE messages SET chosen = 0 WHERE conversation_id = NEW.conversation_id
                AND id != NEW.id
                AND parent_id IS (SELECT parent_id FROM messages WHERE id = NEW.id);
        END
        """
    )


def insert_passage(db: sqlite3.Connection, document_id: int, text: str, passage: Passage) -> None:
    """One passage of a document: its range, and its words and CJK pairs in the index."""
    body = text[passage.start : passage.end]
    cur = db.execute(
        "INSERT INTO passages (document_id, start_char, end_char, tokens) VALUES (?, ?, ?, ?)",
        (document_id, passage.start, passage.end, passage.tokens),
    )
    db.execute(
        "INSERT INTO passage_text (rowid, body, grams) VALUES (?, ?, ?)",
        (cur.lastrowid, body, cjk_grams(body)),
    )


def _m006_passages(db: sqlite3.Connection) -> None:
    """Documents as passages searchable with FTS5 (see `passage_index`): a passage is a
    character range of its document; `passage_text` holds its words (BM25 over Latin-script
    words, stemmed) and the character pairs of its CJK runs, so Chinese and Japanese are
    searchable too. A document's text is stored in pieces (`document_chunks`; `text` stays
    empty), so storing a long one never holds it whole in SQLite's memory. A document being
    indexed names its indexer and stays hidden until done."""
    _run_script(
        db,
        """
        ALTER TABLE documents ADD COLUMN chars INTEGER;
        ALTER TABLE documents ADD COLUMN tokens INTEGER;
        ALTER TABLE documents ADD COLUMN passages INTEGER;
        ALTER TABLE documents ADD COLUMN summary TEXT NOT NULL DEFAULT '';
        ALTER TABLE documents ADD COLUMN indexer TEXT;
        CREATE INDEX documents_by_conversation ON documents(conversation_id, id);
        CREATE TABLE document_chunks (
            document_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
            seq INTEGER NOT NULL,
            text TEXT NOT NULL,
            PRIMARY KEY (document_id, seq)
        ) WITHOUT ROWID;
        CREATE TABLE passages (
            id INTEGER PRIMARY KEY,
            document_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
            start_char INTEGER NOT NULL,
            end_char INTEGER NOT NULL,
            tokens INTEGER NOT NULL
        );
        CREATE INDEX passages_by_document ON passages(document_id, start_char);
        CREATE VIRTUAL TABLE passage_text USING fts5(
            body, grams, tokenize = 'porter unicode61 remove_diacritics 2'
        )
        """,
    )
    db.execute(  # one statement with a semicolon inside: not for _run_script
        """
        CREATE TRIGGER passages_gone AFTER DELETE ON passages
        BEGIN
            DELETE FROM passage_text WHERE rowid = OLD.id;
        END
        """
    )
    # the documents summarized before: indexed now, so questions about them find their passages
    ids = [row[0] for row in db.execute("SELECT id FROM documents ORDER BY id")]
    for document_id in ids:
        text = db.execute("SELECT text FROM documents WHERE id = ?", (document_id,)).fetchone()[0]
        passages = 0
        for passage in iter_passages(text):
            insert_passage(db, document_id, text, passage)
            passages += 1
        db.execute(
            "UPDATE documents SET chars = ?, passages = ?, tokens = ? WHERE id = ?",
            (len(text), passages, estimate_tokens(text), document_id),
        )


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [
    _m001_initial,
    _m002_window_state,
    _m003_documents,
    _m004_writers,
    _m005_versions,
    _m006_passages,
]
