"""Reply versions and edit branches: a conversation is a tree of messages, one path of it shown.

Every message has a parent (the message before it when it was written; see `_m005_versions`
in `schema`): regenerating a reply adds a sibling of the old reply, editing a message adds a
sibling of the old message, and the old one keeps its own later messages. Each message
remembers whether it is the `chosen` one among its siblings; the `active` path (what is shown
and what the model sees) follows the chosen children from the first message on, and is kept
in the `active` column so that reading a conversation stays one indexed query.

Hiding a message (regenerate and edit do this just before they add the new version) ends the
path at its parent; selecting a version makes it the chosen one and brings back the path below
it as it was left. A change above the conversation's window start or running summary resets
them: they described messages the path no longer holds, and the next reply fits it again.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from dataclasses import dataclass

from assistant.conversation.database import Database
from assistant.errors import NotFoundError


@dataclass(frozen=True)
class VersionInfo:
    """Where one shown message stands among its versions: `ids` in the order written."""

    ids: tuple[int, ...]
    index: int  # of the shown one, 0-based

    @property
    def count(self) -> int:
        return len(self.ids)


class Versions(Database):
    """The version queries and switches of the store (see the module docstring)."""

    def versions(self, conversation_id: int) -> dict[int, VersionInfo]:
        """For each shown message that has other versions, its siblings (one query)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, parent_id, active FROM messages WHERE conversation_id = ? ORDER BY id",
                (conversation_id,),
            ).fetchall()
        siblings: dict[int | None, list[int]] = defaultdict(list)
        for row in rows:
            siblings[row["parent_id"]].append(row["id"])
        found = {}
        for row in rows:
            ids = siblings[row["parent_id"]]
            if row["active"] and len(ids) > 1:
                found[row["id"]] = VersionInfo(tuple(ids), ids.index(row["id"]))
        return found

    def select_version(self, message_id: int) -> None:
        """Show this version of its message, and below it the messages it had."""
        with self._tx() as db:
            conversation_id, parent = _place(db, message_id)
            db.execute(
                "UPDATE messages SET chosen = (id = ?) WHERE conversation_id = ?"
                " AND parent_id IS ?",
                (message_id, conversation_id, parent),
            )
            _forget_window_after(db, conversation_id, parent)
            _refresh_active(db, conversation_id)

    def hide_version(self, message_id: int) -> None:
        """End the shown path before this message (its version stays stored, selectable)."""
        with self._tx() as db:
            conversation_id, parent = _place(db, message_id)
            db.execute("UPDATE messages SET chosen = 0 WHERE id = ?", (message_id,))
            _forget_window_after(db, conversation_id, parent)
            _refresh_active(db, conversation_id)

    def delete_version(self, message_id: int) -> int:
        """Delete this message and everything written after it in its branch; a sibling
        version (the one before it, else the next) is shown in its place. Returns how many
        messages were deleted."""
        with self._tx() as db:
            conversation_id, parent = _place(db, message_id)
            children: dict[int | None, list[int]] = defaultdict(list)
            for row in db.execute(
                "SELECT id, parent_id FROM messages WHERE conversation_id = ?", (conversation_id,)
            ):
                children[row["parent_id"]].append(row["id"])
            doomed, todo = [], [message_id]
            while todo:
                node = todo.pop()
                doomed.append(node)
                todo.extend(children.get(node, ()))
            db.executemany("DELETE FROM messages WHERE id = ?", [(i,) for i in doomed])
            others = [i for i in children[parent] if i != message_id]
            if others:
                earlier = [i for i in others if i < message_id]
                keep = earlier[-1] if earlier else others[0]
                db.execute(
                    "UPDATE messages SET chosen = (id = ?) WHERE conversation_id = ?"
                    " AND parent_id IS ?",
                    (keep, conversation_id, parent),
                )
            _forget_window_after(db, conversation_id, parent)
            _refresh_active(db, conversation_id)
        return len(doomed)


def _place(db: sqlite3.Connection, message_id: int) -> tuple[int, int | None]:
    row = db.execute(
        "SELECT conversation_id, parent_id FROM messages WHERE id = ?", (message_id,)
    ).fetchone()
    if row is None:
        raise NotFoundError(f"No message with id {message_id}.")
    return row["conversation_id"], row["parent_id"]


def active_path(rows: list[sqlite3.Row] | list[tuple[int, int | None, int]]) -> list[int]:
    """The ids on the shown path, from (id, parent_id, chosen) rows: from the first message
    on, the chosen child at each step (the newest if several); it ends where no child is."""
    children: dict[int | None, list[tuple[int, int]]] = defaultdict(list)
    for message_id, parent, chosen in rows:
        children[parent].append((message_id, chosen))
    path: list[int] = []
    node: int | None = None
    while True:
        chosen = [i for i, flag in children.get(node, ()) if flag]
        if not chosen:
            return path
        node = max(chosen)
        path.append(node)


def _refresh_active(db: sqlite3.Connection, conversation_id: int) -> None:
    rows = db.execute(
        "SELECT id, parent_id, chosen FROM messages WHERE conversation_id = ?", (conversation_id,)
    ).fetchall()
    path = active_path([(r["id"], r["parent_id"], r["chosen"]) for r in rows])
    db.execute(
        "UPDATE messages SET active = 0 WHERE conversation_id = ? AND active = 1",
        (conversation_id,),
    )
    db.executemany("UPDATE messages SET active = 1 WHERE id = ?", [(i,) for i in path])


def _forget_window_after(db: sqlite3.Connection, conversation_id: int, parent: int | None) -> None:
    """The window start and running summary name messages by id along the path: once the path
    changes below `parent` (None: from the first message), a start or summary reaching past
    it describes another branch."""
    row = db.execute(
        "SELECT window_start_id, summary_upto_id FROM conversations WHERE id = ?",
        (conversation_id,),
    ).fetchone()
    if row is None:
        return
    marks = [m for m in (row["window_start_id"], row["summary_upto_id"]) if m is not None]
    if any(parent is None or mark > parent for mark in marks):
        db.execute(
            "UPDATE conversations SET window_start_id = NULL, summary = '',"
            " summary_upto_id = NULL WHERE id = ?",
            (conversation_id,),
        )
