"""The database file shared by several processes (the app, a terminal chat, `assistant
history`): opening, migrations, write transactions and recovery. The queries are in `store`.

Every write is a short transaction that waits for another writer by polling with this
process's lock released; opening writes nothing unless there is something to migrate or a
gone writer's reply to mark `interrupted` (see `writers`); a database from a newer version of
the app is refused before anything is written to it; an empty file is started afresh, with a
notice.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from assistant import paths
from assistant.conversation import writers
from assistant.conversation.schema import MIGRATIONS
from assistant.errors import StoreError

WRITE_WAIT = 5.0  # seconds an ordinary write waits for another writer
FINAL_SAVE_WAIT = 30.0  # a reply's final save: its text must not be lost to a busy database
BEAT_WAIT = 0.2  # a periodic save while a reply streams: skipped (not lost) when busy
RECOVER_WAIT = 1.0  # opening recovers a gone writer's rows if the file is free that soon
READ_BUSY_MS = 5000  # reads wait inside SQLite (WAL readers are blocked only by recovery)
PAUSE = 0.01  # between the batches of a long write (import, cleanup): waiting writers get in
DELETE_BATCH = 5000


class StoreBusyError(StoreError):
    """Another connection kept the database locked for longer than this write could wait."""


def _is_busy(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
    if code is not None:
        return code & 0xFF in {5, 6}  # SQLITE_BUSY, SQLITE_LOCKED and their extended codes
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _timestamp(stamp: str | None) -> float | None:
    try:
        return datetime.fromisoformat(stamp).timestamp() if stamp else None
    except ValueError:
        return None


class Database:
    """One database file, thread-safe (the UI reads while the worker writes).

    `notice` is a line for the user about the file itself (an empty file started afresh), or
    "" when there is nothing to say."""

    def __init__(self, path: str | Path | None = None):
        """`path` ':memory:' gives a throw-away store (for one-shot `assistant ask`)."""
        self.path = Path(path) if path else paths.database_path()
        self.notice = ""
        self._lock = threading.RLock()
        self._closed = False
        self._streamed = False  # this store has marked a reply 'streaming' (close ends it)
        memory = str(path) == ":memory:"
        if not memory:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = None
        try:
            was_empty = False if memory else self._check_file()
            self._db = sqlite3.connect(
                str(self.path), check_same_thread=False, isolation_level=None
            )
            self._db.row_factory = sqlite3.Row
            self._db.execute(f"PRAGMA busy_timeout={READ_BUSY_MS}")
            self._refuse_newer(self.schema_version)  # again: the probe may not have run
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            created = self._migrate()
        except (sqlite3.DatabaseError, StoreError) as exc:
            if self._db is not None:
                self._db.close()
            if isinstance(exc, StoreError):
                raise
            raise StoreError(f"Cannot open the conversation database {self.path}: {exc}.") from None
        if was_empty and created:
            self.notice = (
                f"The conversation database {self.path} was an empty file (0 bytes), so it held"
                " no conversations; a new database was started in it. If it should hold your"
                " conversations, quit and restore it from a backup."
            )
        self._token = writers.register(self)
        self._writer = writers.writer_id(self._token)
        self._recover()

    def _check_file(self) -> bool:
        """Before anything writes: refuse a database from a newer version of the app (read
        through a read-only connection); True when the file is there but empty."""
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise StoreError(
                f"Cannot open the conversation database {self.path}: {exc.strerror}."
            ) from None
        wal = self.path.with_name(self.path.name + "-wal")
        if size == 0 and not (wal.exists() and wal.stat().st_size > 0):
            return True
        try:  # read-only: even closing cannot checkpoint a newer app's WAL into the file
            probe = sqlite3.connect(self.path.absolute().as_uri() + "?mode=ro", uri=True)
            try:
                version = probe.execute("PRAGMA user_version").fetchone()[0]
            finally:
                probe.close()
        except sqlite3.OperationalError:
            return False  # cannot be read read-only (e.g. a hot journal): checked before writing
        self._refuse_newer(version)
        return False

    def _refuse_newer(self, version: int) -> None:
        if version > len(MIGRATIONS):
            raise StoreError(
                f"The conversation database {self.path} was written by a newer version of the app"
                f" (schema {version}, this version knows {len(MIGRATIONS)}); it was left"
                " unchanged. Update the app, or set ASSISTANT_HOME to another folder."
            )

    def close(self) -> None:
        """Close the file; a reply this store left 'streaming' is marked interrupted now
        (its writer is going away), or by the next open if the file is busy."""
        with self._lock:
            if self._closed:
                return
            if self._streamed:
                try:
                    with self._tx(BEAT_WAIT) as db:
                        db.execute(
                            "UPDATE messages SET status = 'interrupted', writer = NULL"
                            " WHERE status = 'streaming' AND writer = ?",
                            (self._writer,),
                        )
                except StoreError:
                    pass  # busy or unwritable: this store's token dies below, so the next
                    # open finds the writer gone and recovers the row
            self._closed = True
            writers.unregister(self._token)
            self._db.close()

    def _begin(self, wait: float) -> None:
        """BEGIN IMMEDIATE, polling for up to `wait` s while another connection writes; returns
        holding self._lock. Between tries the lock is released so this process's readers go on
        (SQLite's own busy wait would hold it, and polls only every 100 ms)."""
        deadline = time.monotonic() + wait
        pause = 0.001
        while True:
            self._lock.acquire()
            try:
                self._db.execute("PRAGMA busy_timeout=0")
                try:
                    self._db.execute("BEGIN IMMEDIATE")
                finally:
                    self._db.execute(f"PRAGMA busy_timeout={READ_BUSY_MS}")
                return
            except sqlite3.Error as exc:
                self._lock.release()
                if not (isinstance(exc, sqlite3.OperationalError) and _is_busy(exc)):
                    raise StoreError(f"Could not save to {self.path}: {exc}.") from None
            left = deadline - time.monotonic()
            if left <= 0:
                raise StoreBusyError(
                    f"Could not save to {self.path}: another program kept it locked for"
                    f" more than {wait:g} s."
                )
            time.sleep(min(pause, left))
            pause = min(pause * 2, 0.005)

    @contextmanager
    def _tx(self, wait: float = WRITE_WAIT) -> Iterator[sqlite3.Connection]:
        """One write transaction, waiting up to `wait` s for another writer to finish."""
        self._begin(wait)
        try:
            yield self._db
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise StoreError(f"Could not save to {self.path}: {exc}.") from None
        except BaseException:
            self._rollback()
            raise
        finally:
            self._lock.release()

    def _rollback(self) -> None:
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")

    def _migrate(self) -> bool:
        """Bring the schema up to date in one transaction; True when it created the schema.
        A database already up to date is not written to."""
        if self.schema_version == len(MIGRATIONS):
            return False
        self._refuse_newer(self.schema_version)
        with self._tx() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]  # another process may
            self._refuse_newer(version)  # have migrated (or upgraded) it meanwhile
            for step in MIGRATIONS[version:]:
                step(db)
            db.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")
        return version == 0

    @property
    def schema_version(self) -> int:
        with self._lock:
            return self._db.execute("PRAGMA user_version").fetchone()[0]

    def _recover(self) -> None:
        """Mark the replies of writers that are gone `interrupted`, and remove imports whose
        importer is gone. Only reads, unless there is something to recover; a busy file is
        left for the next open."""
        with self._lock:
            streaming = self._db.execute(
                "SELECT writer, MAX(saved_at) FROM messages WHERE status = 'streaming'"
                " GROUP BY writer"
            ).fetchall()
            imports = self._db.execute(
                "SELECT id, importer, updated_at FROM conversations WHERE importer IS NOT NULL"
            ).fetchall()
        gone = [row[0] for row in streaming if writers.is_gone(row[0], row[1])]
        abandoned = [r[0] for r in imports if writers.is_gone(r[1], _timestamp(r[2]))]
        try:
            if gone:
                with self._tx(RECOVER_WAIT) as db:
                    db.executemany(
                        "UPDATE messages SET status = 'interrupted', writer = NULL"
                        " WHERE status = 'streaming' AND writer IS ?",
                        [(w,) for w in gone],
                    )
            for conversation_id in abandoned:
                self._discard_import(conversation_id, RECOVER_WAIT)
        except StoreBusyError:
            pass  # another writer holds the file: whoever opens it next recovers these

    def _discard_import(self, conversation_id: int, wait: float = WRITE_WAIT) -> None:
        """Remove an unfinished import, in short transactions too."""
        while True:
            with self._tx(wait) as db:
                cur = db.execute(
                    "DELETE FROM messages WHERE id IN (SELECT id FROM messages"
                    " WHERE conversation_id = ? LIMIT ?)",
                    (conversation_id, DELETE_BATCH),
                )
            if cur.rowcount < DELETE_BATCH:
                break
            time.sleep(PAUSE)
        with self._tx(wait) as db:
            db.execute(
                "DELETE FROM conversations WHERE id = ? AND importer IS NOT NULL",
                (conversation_id,),
            )
