"""Reply versions and edit branches in the store (real SQLite; no model needed)."""

from __future__ import annotations

import sqlite3

from assistant.conversation import schema
from assistant.conversation.store import Store
from assistant.conversation.versions import active_path


def chat(store: Store, *texts: str) -> list[int]:
    conv = store.create_conversation()
    ids = []
    for i, text in enumerate(texts):
        ids.append(store.add_message(conv.id, "user" if i % 2 == 0 else "assistant", text).id)
    return ids


def shown(store: Store, conversation_id: int) -> list[str]:
    return [m.content for m in store.messages(conversation_id)]


def test_a_new_version_keeps_the_old_one_and_its_later_messages(tmp_path):
    store = Store(tmp_path / "c.db")
    q1, a1, q2, a2 = chat(store, "q1", "a1", "q2", "a2")
    cid = store.get_message(q1).conversation_id
    store.hide_version(q1)  # an edit of the first message
    assert shown(store, cid) == []
    q1b = store.add_message(cid, "user", "q1 edited").id
    a1b = store.add_message(cid, "assistant", "a1 for the edit").id
    assert shown(store, cid) == ["q1 edited", "a1 for the edit"]
    info = store.versions(cid)
    assert info[q1b].ids == (q1, q1b) and info[q1b].index == 1 and info[q1b].count == 2
    assert a1b not in info, "a message with one version has no switcher"
    store.select_version(q1)
    assert shown(store, cid) == ["q1", "a1", "q2", "a2"], "the old branch as it was left"
    store.close()
    again = Store(tmp_path / "c.db")  # survives a restart
    assert shown(again, cid) == ["q1", "a1", "q2", "a2"]
    again.hide_version(a2)  # a regenerate of the last reply
    a2b = again.add_message(cid, "assistant", "a2 again").id
    assert shown(again, cid) == ["q1", "a1", "q2", "a2 again"]
    assert again.versions(cid)[a2b].ids == (a2, a2b)
    again.select_version(a2)
    assert shown(again, cid)[-1] == "a2"
    again.select_version(q1b)
    assert shown(again, cid) == ["q1 edited", "a1 for the edit"]


def test_deleting_a_version_shows_its_sibling(tmp_path):
    store = Store(tmp_path / "c.db")
    q1, a1 = chat(store, "q1", "a1")
    cid = store.get_message(q1).conversation_id
    store.hide_version(a1)
    a1b = store.add_message(cid, "assistant", "a1b").id
    store.add_message(cid, "user", "q2")
    assert store.delete_version(a1b) == 2, "the version and the message after it"
    assert shown(store, cid) == ["q1", "a1"] and store.versions(cid) == {}
    assert store.delete_version(q1) == 2
    assert shown(store, cid) == []


def test_a_branch_change_above_the_window_start_resets_the_window(tmp_path):
    store = Store(tmp_path / "c.db")
    ids = chat(store, "q1", "a1", "q2", "a2", "q3", "a3")
    cid = store.get_message(ids[0]).conversation_id
    store.update_conversation(cid, window_start_id=ids[4], summary="s", summary_upto_id=ids[4])
    store.hide_version(ids[5])  # regenerate: below the window start, nothing changes
    conv = store.get_conversation(cid)
    assert (conv.window_start_id, conv.summary) == (ids[4], "s")
    store.select_version(ids[5])
    store.hide_version(ids[2])  # an edit above it: the start and summary named the old branch
    conv = store.get_conversation(cid)
    assert (conv.window_start_id, conv.summary, conv.summary_upto_id) == (None, "", None)


def test_an_old_database_gets_its_messages_chained(tmp_path):
    path = tmp_path / "old.db"
    db = sqlite3.connect(path, isolation_level=None)
    for step in schema.MIGRATIONS[:4]:
        step(db)
    db.execute(f"PRAGMA user_version = {4}")
    db.execute("INSERT INTO conversations (title, created_at, updated_at) VALUES ('t', 'x', 'x')")
    for text in ("q1", "a1", "q2"):
        db.execute(
            "INSERT INTO messages (conversation_id, role, content, created_at)"
            " VALUES (1, 'user', ?, 'x')",
            (text,),
        )
    db.close()
    store = Store(path)
    assert shown(store, 1) == ["q1", "a1", "q2"]
    store.hide_version(3)
    assert shown(store, 1) == ["q1", "a1"]


def test_imported_messages_are_chained_too(tmp_path):
    store = Store(tmp_path / "c.db")
    conv = store.insert_conversation(
        {
            "title": "t",
            "system_prompt": "",
            "model": "",
            "sampling": {},
            "policy": "drop",
            "created_at": None,
            "summary": "",
        },
        [
            {
                "role": r,
                "content": c,
                "created_at": None,
                "status": "complete",
                "tokens": None,
                "stats": {},
            }
            for r, c in (("user", "q1"), ("assistant", "a1"))
        ],
    )
    last = store.messages(conv.id)[-1].id
    store.hide_version(last)
    store.add_message(conv.id, "assistant", "a1b")
    assert shown(store, conv.id) == ["q1", "a1b"]


def test_the_path_follows_the_chosen_children():
    rows = [(1, None, 1), (2, 1, 0), (3, 1, 1), (4, 2, 1), (5, 3, 1), (6, None, 0)]
    assert active_path(rows) == [1, 3, 5]
    assert active_path([(1, None, 0)]) == []
