"""Several processes on one conversation database: a chat streaming a reply, `assistant history`
reading and importing, a writer killed mid-reply (issue 11, item 5)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from assistant import paths
from assistant.conversation import store as store_module
from assistant.conversation import transfer
from assistant.conversation.store import Store

ROOT = Path(__file__).resolve().parent.parent
# One thread: on a loaded machine llama.cpp's spinning threads slow each other tenfold.
CHAT = [sys.executable, "-m", "assistant", "chat", "--json", "--ignore-eos", "--threads", "1"]
PROMPT = "Tell me a long story about a lighthouse keeper and a storm.\n"


def _assistant(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "assistant", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _reply_row(db: Path) -> tuple | None:
    """(id, status, content) of the newest assistant message, read-only, or None."""
    reader = sqlite3.connect(db.absolute().as_uri() + "?mode=ro", uri=True)
    try:
        return reader.execute(
            "SELECT id, status, content FROM messages WHERE role = 'assistant'"
            " ORDER BY id DESC LIMIT 1"
        ).fetchone()
    finally:
        reader.close()


def _start_chat(max_tokens: int, folder: Path) -> subprocess.Popen:
    Store().close()  # the schema exists before two processes race to create it
    prompt = folder / "prompt.txt"
    prompt.write_text(PROMPT)
    with prompt.open() as stdin:  # one message, then end of input: the chat exits
        return subprocess.Popen(
            [*CHAT, "--max-tokens", str(max_tokens)],
            cwd=ROOT,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


def _wait_for_reply(chat: subprocess.Popen, db: Path, with_text: bool, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert chat.poll() is None, chat.stderr.read()
        row = _reply_row(db)
        if row and row[1] == "streaming" and (row[2] or not with_text):
            return row
        time.sleep(0.05)
    chat.kill()
    pytest.fail("the chat did not start streaming a reply")


def test_history_list_while_a_reply_streams_never_interrupts_it(tmp_path):
    """Defect: every `history list` marked the live reply interrupted (31 times in one run)."""
    db = paths.database_path()
    chat = _start_chat(600, tmp_path)
    try:
        reply_id = _wait_for_reply(chat, db, with_text=False)[0]
        seen, lists = [], 0
        while lists < 20 and chat.poll() is None:
            listed = _assistant("history", "list")
            assert listed.returncode == 0, listed.stderr
            lists += 1
            seen.append(_reply_row(db)[1])
        out, err = chat.communicate(timeout=600)
    finally:
        chat.kill()
    assert chat.returncode == 0, err
    assert "interrupted" not in seen, seen
    assert seen.count("streaming") >= 2, f"the reply ended before the lists ran: {seen}"
    reply = json.loads(out.splitlines()[-1])
    row = _reply_row(db)
    assert row[0] == reply_id == reply["message_id"]
    assert row[1] in {"complete", "length"} and reply["completion_tokens"] == 600
    assert row[2] == reply["reply"] and len(row[2]) > 600


def test_a_killed_writers_reply_is_marked_interrupted_at_the_next_open(tmp_path):
    db = paths.database_path()
    chat = _start_chat(5000, tmp_path)
    try:
        _wait_for_reply(chat, db, with_text=True)  # a periodic save has happened
        assert Store().list_conversations(), "a reader"
        assert _reply_row(db)[1] == "streaming", "a reader's open left the live reply alone"
        os.kill(chat.pid, signal.SIGKILL)
        chat.wait(timeout=30)
    finally:
        chat.kill()
    saved = _reply_row(db)
    assert saved[1] == "streaming"  # killed: nobody ended it
    store = Store()
    got = store.get_message(saved[0])
    assert (got.status, got.content) == ("interrupted", saved[2]) and got.content


def _importing(store: Store) -> int:
    return store._db.execute(
        "SELECT COUNT(*) FROM conversations WHERE importer IS NOT NULL"
    ).fetchone()[0]


def test_a_large_import_does_not_hold_up_a_final_save(tmp_path, monkeypatch):
    """Defect: an import held one write transaction longer than the other writers' busy
    timeout; a chat's final save failed and its reply was lost. Here the import (50k messages)
    runs in another process while this one finishes a reply again and again, each save allowed
    to wait only 0.25 s (the import as one transaction took about 0.6 s)."""
    monkeypatch.setattr(store_module, "FINAL_SAVE_WAIT", 0.25)
    store = Store()
    conv = store.create_conversation(title="live chat")
    reply = store.add_message(conv.id, "assistant", "", status="streaming")
    n = 50_000
    exported = {
        "format": transfer.EXPORT_FORMAT,
        "version": 1,
        "conversation": {"title": "big"},
        "messages": [
            {"role": "user" if i % 2 == 0 else "assistant", "content": f"{i} " + "x" * 300}
            for i in range(n)
        ],
    }
    big = tmp_path / "big.json"
    big.write_text(json.dumps(exported))
    importer = subprocess.Popen(
        [sys.executable, "-m", "assistant", "history", "import", str(big)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    waits, during, hidden = [], 0, True
    try:
        while importer.poll() is None:
            importing = _importing(store)
            started = time.monotonic()
            store.finish_message(
                reply.id, content=f"reply {len(waits)}", status="complete", tokens=1, stats={}
            )
            waits.append(time.monotonic() - started)
            during += importing
            titles = [c.title for c in store.list_conversations()]
            if _importing(store):  # still importing after the list was read: not listed
                hidden = hidden and titles == ["live chat"]
            time.sleep(0.02)
        out, err = importer.communicate(timeout=120)
    finally:
        importer.kill()
    assert importer.returncode == 0, err
    assert during >= 3, "no save happened while the import was writing"
    assert hidden, "the import was visible before it was complete"
    assert store.get_message(reply.id).content == f"reply {len(waits) - 1}"
    imported = [c for c in store.list_conversations() if c.title == "big"]
    assert len(imported) == 1 and len(store.messages(imported[0].id)) == n
    print(f"saves {len(waits)}, {during} during the import, longest wait {max(waits):.3f} s")
