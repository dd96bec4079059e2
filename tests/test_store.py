"""The conversation store on a real SQLite file."""

from __future__ import annotations

import json
import sqlite3

import pytest

from assistant import paths
from assistant.conversation import transfer
from assistant.conversation.store import MIGRATIONS, Store
from assistant.errors import InvalidInputError, NotFoundError


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
