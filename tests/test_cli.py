"""The `assistant` command in real subprocesses: JSON output, scripted chat, history, errors."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

ASSISTANT = [sys.executable, "-m", "assistant"]
FAST = ["--max-tokens", "24", "--temperature", "0", "--ctx", "1024"]
REPLY_KEYS = {
    "reply",
    "prompt_tokens",
    "cached_tokens",
    "completion_tokens",
    "ttft_s",
    "tokens_per_s",
    "finish_reason",
    "context",
}
CONTEXT_KEYS = {"n_ctx", "used", "dropped_messages", "summarized_messages", "system_kept"}


def run(*args, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [*ASSISTANT, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ.copy(),
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_ask_json(assistant_home):
    proc = run("ask", "--json", *FAST, "What is the capital of France?")
    reply = json.loads(proc.stdout)
    assert REPLY_KEYS <= reply.keys() and CONTEXT_KEYS <= reply["context"].keys()
    assert isinstance(reply["reply"], str) and reply["finish_reason"] in {"stop", "length"}
    assert reply["completion_tokens"] <= 24 and reply["prompt_tokens"] > 0
    assert reply["context"]["n_ctx"] == 1024
    assert (
        not (assistant_home / "conversations.sqlite3").exists()
        or run("history", "list").stdout == ""
    ), "ask is one-shot and stores nothing"


def test_ask_streams_plain_text(assistant_home):
    """Without --json, stdout is the reply itself (the same greedy reply), then a newline."""
    args = (*FAST, "--seed", "1", "--system", "Answer in one word.", "Say yes.")
    reply = json.loads(run("ask", "--json", *args).stdout)["reply"]
    assert run("ask", *args).stdout == reply + "\n"


def test_scripted_chat_with_slash_commands_and_history(assistant_home, tmp_path):
    script = (
        "\n".join(
            [
                "Hello there.",
                "/system You are a pirate.",
                "/policy summarize",
                "Tell me about ships.",
                "/stats",
                "/bogus",
                "/exit",
                "never sent",
            ]
        )
        + "\n"
    )
    proc = run("chat", "--json", *FAST, stdin=script)
    replies = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(replies) == 2 and all(REPLY_KEYS <= r.keys() for r in replies)
    assert replies[1]["context"]["system_kept"] is True
    assert "system prompt: You are a pirate." in proc.stderr
    assert "context policy: summarize" in proc.stderr
    assert "Unknown command /bogus" in proc.stderr and "Traceback" not in proc.stderr

    listing = run("history", "list").stdout
    assert listing.count("\n") == 1 and "Hello there." in listing
    conv_id = listing.split()[0]
    shown = run("history", "show", conv_id).stdout
    assert "You are a pirate." in shown and shown.count("## User") == 2

    out = tmp_path / "conv.json"
    run("history", "export", conv_id, "--format", "json", "--out", str(out))
    data = json.loads(out.read_text())
    assert [m["role"] for m in data["messages"]] == ["user", "assistant"] * 2
    assert data["conversation"]["policy"] == "summarize"
    assert "imported as conversation" in run("history", "import", str(out)).stdout
    assert run("history", "list").stdout.count("\n") == 2
    md = run("history", "export", conv_id, "--format", "md").stdout
    assert md.startswith("# Hello there.")

    # Continue the stored conversation: it remembers its system prompt and policy.
    proc = run("chat", "--json", *FAST, "--conversation", conv_id, stdin="And about the sea?\n")
    assert json.loads(proc.stdout)["prompt_tokens"] > replies[1]["prompt_tokens"]
    run("history", "delete", conv_id)
    assert run("history", "list").stdout.count("\n") == 1


@pytest.mark.parametrize(
    "args, expected",
    [
        (
            ["ask", "--model", "/nonexistent/model.gguf", "hi"],
            "Model file not found: /nonexistent/model.gguf",
        ),
        (["history", "show", "999"], "No conversation with id 999."),
        (["history", "import", "/nonexistent.json"], "Cannot read /nonexistent.json"),
    ],
)
def test_errors_are_one_line_without_traceback(args, expected):
    proc = run(*args, check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"error: {expected}" or proc.stderr.startswith(
        f"error: {expected}"
    )
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1


def test_errors_inside_chat_keep_it_running(assistant_home):
    huge = "lorem ipsum dolor " * 600
    proc = run("chat", "--json", *FAST, stdin=f"{huge}\nShort question?\n")
    assert "error: This message is" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stdout.splitlines()) == 1, "the next message is answered"


def test_killed_mid_reply_loses_no_earlier_message(assistant_home):
    """kill -9 while a reply streams: every earlier message is kept, and the reply keeps what
    was saved (at least every second) and is marked interrupted."""
    first = run("chat", "--json", "--max-tokens", "32", stdin="Say hello.\n")
    first_reply = json.loads(first.stdout.splitlines()[0])["reply"]
    # --ignore-eos with --max-tokens: a reply that is still streaming seconds later, whatever
    # the sampler would have said (2000 tokens at about 130 tokens/s)
    proc = subprocess.Popen(
        [*ASSISTANT, "chat", "--json", "--conversation", "1", "--max-tokens", "2000"]
        + ["--ignore-eos", "--temperature", "0"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        proc.stdin.write("Count from 1 to 500, separated by commas.\n")
        proc.stdin.flush()
        db = assistant_home / "conversations.sqlite3"
        deadline, partial = time.monotonic() + 60, ""
        while time.monotonic() < deadline and not partial and proc.poll() is None:
            with sqlite3.connect(db) as conn:  # poll for the first save (every second)
                row = conn.execute(
                    "SELECT content, status FROM messages ORDER BY id DESC LIMIT 1"
                ).fetchone()
            if row and row[1] == "streaming" and row[0]:
                partial = row[0]
            time.sleep(0.1)
        assert partial, "the reply is saved while it streams"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    from assistant.conversation.store import Store

    msgs = Store().messages(1)
    assert [m.role for m in msgs] == ["user", "assistant", "user", "assistant"]
    assert msgs[1].content == first_reply and msgs[1].status in {"complete", "length"}
    assert msgs[2].content.startswith("Count from 1 to 500")
    assert msgs[3].status == "interrupted" and msgs[3].content.startswith(partial)


def test_history_list_json_counts_messages_in_one_query(assistant_home, monkeypatch, capsys):
    """`history list --json` counts every conversation's messages without reading them."""
    from assistant.cli import main
    from assistant.conversation.store import Store

    store = Store()
    real_connect = sqlite3.connect
    statements: list[str] = []

    def traced_connect(*args, **kwargs):
        connection = real_connect(*args, **kwargs)
        connection.set_trace_callback(statements.append)
        return connection

    def listing() -> tuple[list[dict], int]:
        statements.clear()
        with monkeypatch.context() as patch:
            patch.setattr(sqlite3, "connect", traced_connect)
            assert main(["history", "list", "--json"]) == 0
        return json.loads(capsys.readouterr().out), len(statements)

    expected = {}
    for n_messages in (0, 1, 3):
        conv = store.create_conversation(title=f"{n_messages} messages")
        for i in range(n_messages):
            store.add_message(conv.id, "user" if i % 2 == 0 else "assistant", f"message {i}")
        expected[conv.id] = n_messages
    rows, few = listing()
    assert {r["id"]: r["messages"] for r in rows} == expected
    for _ in range(6):
        conv = store.create_conversation(title="more")
        store.add_message(conv.id, "user", "hello")
        expected[conv.id] = 1
    rows, many = listing()
    assert {r["id"]: r["messages"] for r in rows} == expected
    assert many == few, "the same statements for 3 conversations as for 9"


def test_importing_the_core_does_not_import_qt():
    code = (
        "import sys, assistant, assistant.cli, assistant.conversation.session, "
        "assistant.engine.runtime, assistant.conversation.store, assistant.conversation.window, "
        "assistant.settings; "
        "print('PySide6' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- summarize -----------------------------------------------------------------------------------
def _report(paragraphs: int) -> str:
    towns = ["Arles", "Bergen", "Cádiz", "Dublin", "Esbjerg", "Faro", "Genoa", "Hull"]
    return "\n\n".join(
        f"In {1800 + i} the port of {towns[i % 8]} built a new quay of {10 + i} metres. "
        f"Its merchants shipped {towns[(i + 3) % 8]} wool and salt fish to the north."
        for i in range(paragraphs)
    )


def test_summarize_a_file_in_chunks_as_json(assistant_home, tmp_path):
    path = tmp_path / "report.md"
    path.write_text(_report(40), encoding="utf-8")
    proc = run(
        "summarize", str(path), "--ctx", "1024", "--chunk-tokens", "300", "--bullets", "--json"
    )
    data = json.loads(proc.stdout)
    assert {"summary", "chunks", "levels", "source_tokens", "seconds", "sources"} <= data.keys()
    assert data["chunks"] >= 3 and data["levels"] >= 2 and not data["partial"]
    assert data["bullets"] and data["length"] == "medium" and data["sources"]
    assert data["summary"].splitlines() == [f"- {s['point']}" for s in data["sources"]]
    size = len(path.read_text(encoding="utf-8"))
    assert all(0 <= a < b <= size for s in data["sources"] for a, b in s["ranges"])
    assert "Traceback" not in proc.stderr


def test_summarize_stdin_prints_the_summary_and_a_status_line(assistant_home):
    proc = run("summarize", "-", "--ctx", "1024", "--length", "short", stdin=_report(6))
    assert proc.stdout.strip()
    assert "1 chunk(s), 1 level(s)" in proc.stderr and "PARTIAL" not in proc.stderr


def test_summarize_bad_input_is_one_line_and_exit_1(assistant_home, tmp_path):
    binary = tmp_path / "photo.txt"
    binary.write_bytes(bytes(range(256)) * 40)
    for args, stdin, reason in (
        ([str(binary)], None, "photo.txt"),
        (["-"], "  \n\n ", "no text to summarize"),
        ([str(tmp_path / "missing.pdf")], None, "missing.pdf"),
        (["-", "--chunk-tokens", "10"], _report(3), "too small"),
    ):
        proc = run("summarize", *args, stdin=stdin, check=False)
        assert proc.returncode == 1 and reason in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_summarize_ctrl_c_prints_the_partial_summary(assistant_home, tmp_path):
    path = tmp_path / "long.txt"
    path.write_text(_report(400), encoding="utf-8")  # about two minutes of work
    proc = subprocess.Popen(
        [*ASSISTANT, "summarize", str(path), "--ctx", "512", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    time.sleep(10)  # the model is loaded and the first chunks are being read
    assert proc.poll() is None, proc.stderr.read()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    data = json.loads(out)
    assert data["partial"] and data["chunks"] > 1
    assert "Traceback" not in err


def test_settings_and_summary_options_load_no_model_code():
    """The window imports these at start-up: they must not pull in llama.cpp or numpy."""
    code = (
        "import sys, assistant.settings, assistant.documents.options; "
        "print(sorted({'llama_cpp', 'numpy'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
