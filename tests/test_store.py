"""The conversation store on a real SQLite file."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from assistant import paths
from assistant.cli import main
from assistant.conversation import database, transfer, writers
from assistant.conversation import store as store_module
from assistant.conversation.store import MIGRATIONS, Store
from assistant.errors import InvalidInputError, NotFoundError, StoreError


@pytest.fixture
def store(assistant_home):
    s = Store()
    yield s
    s.close()


def test_database_lives_in_assistant_home_with_wal(store, assistant_home):
    assert store.path == assistant_home / "conversations.sqlite3" == paths.database_path()
    mode = sqlite3.connect(store.path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    assert store.schema_version == len(MIGRATIONS)


def test_migrations_upgrade_an_older_database(tmp_path):
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path, isolation_level=None)
    MIGRATIONS[0](db)
    db.execute("PRAGMA user_version = 1")
    db.execute("INSERT INTO conversations (title, created_at, updated_at) VALUES ('old', 't', 't')")
    db.close()
    store = Store(path)
    assert store.schema_version == len(MIGRATIONS)
    conv = store.get_conversation(1)
    assert conv.title == "old" and conv.window_start_id is None and conv.summary == ""


def test_conversation_and_messages_round_trip(store):
    conv = store.create_conversation(
        title="Trip",
        system_prompt="sys",
        model="m",
        sampling={"temperature": 0.2},
        policy="summarize",
    )
    user = store.add_message(conv.id, "user", "hello", tokens=1)
    reply = store.add_message(conv.id, "assistant", "", status="streaming")
    store.update_message(
        reply.id, content="hi there", status="complete", tokens=2, stats={"tokens_per_s": 10.0}
    )
    got = store.get_conversation(conv.id)
    assert (got.system_prompt, got.policy, got.sampling) == (
        "sys",
        "summarize",
        {"temperature": 0.2},
    )
    msgs = store.messages(conv.id)
    assert [(m.role, m.content, m.status) for m in msgs] == [
        ("user", "hello", "complete"),
        ("assistant", "hi there", "complete"),
    ]
    assert msgs[1].stats == {"tokens_per_s": 10.0} and msgs[0].id == user.id


def test_list_is_newest_first_and_searchable(store):
    a = store.create_conversation(title="About cats")
    b = store.create_conversation(title="Other")
    store.add_message(b.id, "user", "tell me about the moon")
    store.add_message(a.id, "user", "meow")
    assert [c.id for c in store.list_conversations()] == [a.id, b.id]
    assert [c.id for c in store.list_conversations("moon")] == [b.id]
    assert [c.id for c in store.list_conversations("cats")] == [a.id]


def test_delete_cascades_and_unknown_ids_are_clear_errors(store):
    conv = store.create_conversation()
    store.add_message(conv.id, "user", "x")
    store.delete_conversation(conv.id)
    assert store.messages(conv.id) == []
    with pytest.raises(NotFoundError, match="No conversation with id"):
        store.get_conversation(conv.id)
    with pytest.raises(NotFoundError):
        store.delete_conversation(999)


def test_delete_messages_from_replaces_the_tail(store):
    conv = store.create_conversation()
    ids = [
        store.add_message(conv.id, r, t).id
        for r, t in [("user", "1"), ("assistant", "2"), ("user", "3"), ("assistant", "4")]
    ]
    assert store.delete_messages_from(conv.id, ids[2]) == 2
    assert [m.content for m in store.messages(conv.id)] == ["1", "2"]


def test_a_reply_left_streaming_by_a_killed_process_is_marked_interrupted(store):
    conv = store.create_conversation()
    msg = store.add_message(conv.id, "assistant", "partial text", status="streaming")
    store.close()
    reopened = Store()
    got = reopened.get_message(msg.id)
    assert (got.status, got.content) == ("interrupted", "partial text")


def test_export_json_import_round_trip(store):
    conv = store.create_conversation(title="Export me", system_prompt="s", policy="stop")
    store.add_message(conv.id, "user", "question ü 漢字")
    store.add_message(conv.id, "assistant", "answer", status="cancelled", stats={"x": 1})
    data = json.loads(json.dumps(transfer.export_json(store, conv.id)))
    imported = transfer.import_json(store, data)
    assert imported.id != conv.id
    assert (imported.title, imported.system_prompt, imported.policy) == ("Export me", "s", "stop")
    assert [(m.role, m.content, m.status, m.stats) for m in store.messages(imported.id)] == [
        (m.role, m.content, m.status, m.stats) for m in store.messages(conv.id)
    ]


def test_export_markdown_shows_roles_and_status(store):
    conv = store.create_conversation(title="MD", system_prompt="be kind")
    store.add_message(conv.id, "user", "hi")
    store.add_message(conv.id, "assistant", "yo", status="cancelled")
    md = transfer.export_markdown(store, conv.id)
    assert md.startswith("# MD") and "**System:** be kind" in md
    assert "## User\n\nhi" in md and "## Assistant _(cancelled)_\n\nyo" in md


@pytest.mark.parametrize(
    "data",
    [
        [],
        {"format": "other"},
        {
            "format": "offline-assistant.conversation",
            "conversation": {},
            "messages": [{"role": "robot"}],
        },
    ],
)
def test_import_rejects_foreign_or_malformed_data_and_writes_nothing(store, data):
    with pytest.raises(InvalidInputError):
        transfer.import_json(store, data, source="x.json")
    assert store.list_conversations() == []


def test_search_matches_percent_and_underscore_literally(store):
    """Defect: `%` and `_` in the search text were LIKE wildcards."""
    plain = store.create_conversation(title="Budget review")
    store.add_message(plain.id, "user", "we spent 50 dollars")
    percent = store.create_conversation(title="Growth")
    store.add_message(percent.id, "user", "growth was 50% this year")
    underscore = store.create_conversation(title="snake_case names")
    assert [c.id for c in store.list_conversations("50%")] == [percent.id]
    assert [c.id for c in store.list_conversations("e_c")] == [underscore.id]
    assert [c.id for c in store.list_conversations("%")] == [percent.id]
    assert {c.id for c in store.list_conversations("e")} == {plain.id, percent.id, underscore.id}


def test_message_counts_in_one_query(store):
    a = store.create_conversation()
    b = store.create_conversation()
    store.create_conversation()  # empty: absent from the counts
    for text in ("one", "two", "three"):
        store.add_message(a.id, "user", text)
    store.add_message(b.id, "user", "only")
    statements: list[str] = []
    store._db.set_trace_callback(statements.append)
    assert store.message_counts() == {a.id: 3, b.id: 1}
    store._db.set_trace_callback(None)
    assert len(statements) == 1


@pytest.mark.parametrize(
    "change",
    [
        {"version": "2"},
        {"version": None},
        {"conversation": {"policy": 5}},
        {"conversation": {"sampling": [1, 2]}},
        {"conversation": {"title": {"nested": True}}},
        {"messages": [{"role": "user", "content": "x", "tokens": 2**70}]},
        {"messages": [{"role": "user", "content": "x", "stats": "fast"}]},
        {"messages": [{"role": "user", "content": ["x"]}]},
        {"messages": [{"role": "user", "content": "x", "status": "finished"}]},
        {"messages": ["not an object"]},
    ],
)
def test_import_validates_every_field_before_writing(store, change):
    good = {
        "format": "offline-assistant.conversation",
        "version": 1,
        "conversation": {"title": "t", "policy": "drop", "sampling": {}},
        "messages": [{"role": "user", "content": "hello"}],
    }
    with pytest.raises(InvalidInputError) as error:
        transfer.import_json(store, {**good, **change}, source="x.json")
    assert str(error.value).startswith("x.json")
    assert store.list_conversations() == []


# -- a second process, busy files, newer and empty databases (issue 11) ----------------------
def _set_writer(path, message_id, writer, saved_at=None):
    db = sqlite3.connect(path, isolation_level=None)
    db.execute(
        "UPDATE messages SET writer = ?, saved_at = ? WHERE id = ?",
        (writer, saved_at, message_id),
    )
    db.close()


def _identity(**change):
    return json.dumps({**writers.process_identity(), "token": "t", **change})


def test_opening_leaves_a_live_writers_reply_alone_and_writes_nothing(store):
    """Defect: every open marked every 'streaming' reply interrupted, the live one too."""
    conv = store.create_conversation()
    msg = store.add_message(conv.id, "assistant", "so far", status="streaming")
    watcher = sqlite3.connect(store.path)
    version = watcher.execute("PRAGMA data_version").fetchone()[0]
    reader = Store()  # another connection, as `assistant history list` opens
    assert reader.get_message(msg.id).status == "streaming"
    reader.close()
    assert watcher.execute("PRAGMA data_version").fetchone()[0] == version, "opening wrote"
    watcher.close()


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="process start times: /proc")
def test_only_a_gone_writers_reply_is_marked_interrupted(store):
    conv = store.create_conversation()
    ids = [
        store.add_message(conv.id, "assistant", f"r{i}", status="streaming").id for i in range(5)
    ]
    exited = subprocess.Popen([sys.executable, "-c", "pass"])
    exited.wait()
    parent = os.getppid()
    parent_start = writers._proc_start(parent)[1]
    _set_writer(store.path, ids[0], _identity(pid=exited.pid))  # the process is gone
    _set_writer(store.path, ids[1], _identity(pid=parent, start="1"))  # the pid was reused
    _set_writer(store.path, ids[2], _identity(pid=parent, start=parent_start))  # alive
    _set_writer(store.path, ids[3], _identity(host="x", token="a"), time.time())  # lease held
    _set_writer(store.path, ids[4], _identity(host="other", token="b"), time.time() - 3600)
    reopened = Store()
    assert [reopened.get_message(i).status for i in ids] == [
        "interrupted",
        "interrupted",
        "streaming",
        "streaming",
        "interrupted",
    ]
    assert [reopened.get_message(i).content for i in ids] == [f"r{i}" for i in range(5)]


def test_a_final_save_waits_for_a_busy_database(store):
    """Defect: a final save gave up after 5 s of another writer and the reply was lost."""
    conv = store.create_conversation()
    msg = store.add_message(conv.id, "assistant", "", status="streaming")
    blocker = sqlite3.connect(store.path, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")
    release = threading.Timer(1.5, blocker.execute, ("COMMIT",))
    release.start()
    started = time.monotonic()
    assert store.save_partial(msg.id, "partial") is False  # a beat is skipped, not waited for
    assert time.monotonic() - started < 1.0
    store.finish_message(msg.id, content="the whole reply", status="complete", tokens=3, stats={})
    assert time.monotonic() - started >= 1.4
    got = store.get_message(msg.id)
    assert (got.status, got.content, got.tokens) == ("complete", "the whole reply", 3)
    release.join()
    blocker.close()


def test_a_final_save_that_cannot_wait_longer_raises_and_keeps_the_text(store, monkeypatch):
    monkeypatch.setattr(store_module, "FINAL_SAVE_WAIT", 0.3)
    conv = store.create_conversation()
    msg = store.add_message(conv.id, "assistant", "", status="streaming")
    assert store.save_partial(msg.id, "saved a second ago")
    blocker = sqlite3.connect(store.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    with pytest.raises(StoreError, match="reply could not be saved.*locked for 0.3 s"):
        store.finish_message(msg.id, content="whole", status="complete", tokens=3, stats={})
    store.close()  # the database is still locked: the row cannot be marked here
    blocker.execute("COMMIT")
    blocker.close()
    got = Store().get_message(msg.id)  # this store's writer is gone: recovered at open
    assert (got.status, got.content) == ("interrupted", "saved a second ago")


def test_an_import_is_hidden_until_complete_and_removed_if_it_fails(store, monkeypatch):
    monkeypatch.setattr(store_module, "IMPORT_BATCH_SECONDS", 0)  # one message a transaction
    monkeypatch.setattr(database, "PAUSE", 0)
    other = Store()
    seen = []

    def messages():
        for i in range(60):
            if i == 30:  # half written, in committed batches: not listed, not openable
                seen.append([c.title for c in other.list_conversations()])
            yield {
                "role": "user",
                "content": ["not text"] if i == 50 else f"m{i}",
                "created_at": "",
                "status": "complete",
                "tokens": None,
                "stats": {},
            }

    fields = {
        "title": "big",
        "system_prompt": "",
        "model": "",
        "sampling": {},
        "policy": "drop",
        "created_at": "",
        "summary": "",
    }
    with pytest.raises(StoreError):
        store.insert_conversation(fields, messages())
    assert seen == [[]]
    raw = sqlite3.connect(store.path)
    assert raw.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 0
    assert raw.execute("SELECT COUNT(*) FROM conversations").fetchone()[0] == 0
    raw.close()
    other.close()


def test_a_dead_importers_half_import_is_removed_at_the_next_open(store):
    exited = subprocess.Popen([sys.executable, "-c", "pass"])
    exited.wait()
    raw = sqlite3.connect(store.path, isolation_level=None)
    raw.execute(
        "INSERT INTO conversations (title, created_at, updated_at, importer)"
        " VALUES ('half', 't', 't', ?)",
        (_identity(pid=exited.pid),),
    )
    raw.executemany(
        "INSERT INTO messages (conversation_id, role, content, created_at)"
        " VALUES (1, 'user', ?, 't')",
        [(str(i),) for i in range(20)],
    )
    raw.close()
    reopened = Store()
    assert reopened.list_conversations() == [] and reopened.messages(1) == []


def test_a_database_from_a_newer_version_is_refused_and_left_unchanged(assistant_home, capsys):
    """Defect: a newer schema (user_version above the known migrations) was opened and written."""
    Store().close()
    path = paths.database_path()
    newer = len(MIGRATIONS) + 1
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {newer}")
    db.close()
    before = path.read_bytes()
    with pytest.raises(StoreError) as error:
        Store()
    assert str(error.value).startswith(f"The conversation database {path} was written by a newer")
    assert f"(schema {newer}, this version knows {len(MIGRATIONS)})" in str(error.value)
    assert path.read_bytes() == before
    assert main(["history", "list"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "newer version of the app" in err
    assert path.read_bytes() == before


def test_an_empty_database_file_is_started_afresh_with_a_notice(assistant_home, capsys):
    """Defect: a zero-length database file was treated as new without a word."""
    path = paths.database_path()
    path.write_bytes(b"")
    assert main(["history", "list"]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and "was an empty file (0 bytes)" in captured.err
    reopened = Store()
    assert reopened.notice == "" and reopened.schema_version == len(MIGRATIONS)
