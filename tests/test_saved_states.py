"""Saved conversation caches: a conversation reopened after a switch or a restart restores its
KV state instead of reading its window again; a damaged or foreign state is never used."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from assistant.engine import state_cache as state_cache_module
from assistant.engine.runtime import ModelRuntime
from assistant.engine.state_cache import StateCache
from assistant.types import LoadOptions, Message, SamplingOptions

ROOT = Path(__file__).resolve().parent.parent
GREEDY = SamplingOptions(max_tokens=16, temperature=0.0, seed=1)


@pytest.fixture
def shared(runtime_factory, tmp_path):
    """The session's ctx-1024 runtime, saving its states under tmp_path for this test."""
    runtime = runtime_factory(1024)
    states = StateCache(tmp_path / "states")
    runtime.use_saved_states(states)
    runtime.cache.forget_live()
    yield runtime, states
    runtime.use_saved_states(None)
    runtime.cache.forget_live()


def _chat(runtime, label: str, turns: int, topic: str) -> list[Message]:
    history = [Message("system", "You are a helpful assistant.")]
    for i in range(turns):
        history.append(Message("user", f"Say one short thing about {topic} number {i}."))
        history.append(Message("assistant", runtime.stream(history, GREEDY, label=label).join()))
    return history


def test_a_restarted_model_restores_the_conversation_and_answers_the_same(shared, model_path):
    runtime, states = shared
    history = _chat(runtime, "conv-1", 4, "rivers") + [Message("user", "And one more?")]
    expected = runtime.stream(history, GREEDY, label="conv-1").join()  # live cache, no restore
    runtime.save_state()
    states.flush()
    assert len(states.entries()) == 1
    restarted = ModelRuntime(model_path, LoadOptions(n_ctx=1024, n_threads=2))
    try:
        restarted.use_saved_states(StateCache(states.folder))
        stream = restarted.stream(history, GREEDY, label="conv-1")
        assert stream.join() == expected
        prompt = stream.stats.prompt_tokens
        assert stream.stats.restored_tokens >= 0.8 * prompt
        assert stream.stats.cached_tokens == stream.stats.restored_tokens
    finally:
        restarted.use_saved_states(None)
        restarted.close()


def test_switching_a_b_a_restores_a(shared):
    runtime, states = shared
    a = _chat(runtime, "A", 3, "mountains")
    b = _chat(runtime, "B", 2, "oceans")
    assert b
    a.append(Message("user", "Anything else?"))
    stream = runtime.stream(a, GREEDY, label="A")
    stream.join()
    assert stream.stats.restored_tokens >= 0.8 * stream.stats.prompt_tokens


def _saved_file(runtime, states) -> Path:
    runtime.save_state()
    states.flush()
    (entry,) = states.entries()
    return Path(entry.path)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "flipped", "refused", "other-model"])
def test_a_damaged_or_foreign_state_is_ignored_and_removed(shared, damage, model_path, tmp_path):
    runtime, states = shared
    history = _chat(runtime, "conv-d", 3, "forests") + [Message("user", "More?")]
    path = _saved_file(runtime, states)
    data = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(os.urandom(len(data)))
    elif damage == "flipped":  # same size and header, one byte of the state changed
        flipped = bytearray(data)
        flipped[-100] ^= 0xFF
        path.write_bytes(bytes(flipped))
    elif damage == "refused":  # well-formed and checksummed, but not a state llama.cpp takes
        (entry,) = states.entries()
        tokens = np.array(history and runtime.prompt_tokens(history)[:40])
        states.put(entry.model_key, entry.label, tokens, os.urandom(4096))
        states.flush()
        states._memory.clear()
    else:  # a well-formed state of another model file: not used, and kept for that model
        copy = tmp_path / "other.gguf"
        copy.write_bytes(b"x")
        header = data.replace(
            runtime._state_key().encode(), state_cache_module.model_key(copy, 1024).encode()
        )
        path.write_bytes(header)
    runtime.cache.forget_live()
    runtime._llm.reset()
    runtime._llm._ctx.kv_cache_clear()
    # a fresh cache object, as after a restart: nothing in memory, only the file
    runtime.use_saved_states(StateCache(states.folder))
    stream = runtime.stream(history, GREEDY, label="conv-d")
    stream.join()
    assert stream.stats.restored_tokens == 0
    if damage != "other-model":
        assert not path.exists(), "a damaged state file is removed"
    else:
        assert path.exists()
    assert stream.stats.finish_reason in ("stop", "length")


def test_a_state_of_another_context_size_is_not_used(shared, runtime_factory):
    runtime, states = shared
    history = _chat(runtime, "conv-c", 3, "deserts") + [Message("user", "Next?")]
    runtime.save_state()
    states.flush()
    other = runtime_factory(2048)
    other.use_saved_states(StateCache(states.folder))
    try:
        stream = other.stream(history, GREEDY, label="conv-c")
        stream.join()
        assert stream.stats.restored_tokens == 0
    finally:
        other.use_saved_states(None)


def test_the_budget_evicts_the_least_recently_used(shared):
    runtime, states = shared
    _chat(runtime, "old", 2, "lakes")
    _saved_file(runtime, states)
    size = states.total_bytes()
    states.budget = int(size * 1.5)  # room for one state
    _chat(runtime, "new", 2, "islands")
    runtime.save_state()
    states.flush()
    assert [e.label for e in states.entries()] == ["new"]


def test_a_failed_save_is_logged_and_leaves_nothing(shared, monkeypatch, caplog):
    runtime, states = shared
    _chat(runtime, "full-disk", 2, "stars")

    def disk_full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(state_cache_module.os, "replace", disk_full)
    runtime.save_state()
    states.flush()
    assert "No space left" in caplog.text
    assert list(states.folder.glob("*")) == []


def _chat_cli(*args: str, lines: list[str], home: Path) -> list[dict]:
    env = {**os.environ, "ASSISTANT_HOME": str(home)}
    out = subprocess.run(
        [sys.executable, "-m", "assistant", "chat", "--ctx", "1024", "--json", *args],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def test_a_conversation_reopened_in_a_new_process_restores_its_cache(assistant_home):
    sampling = ["--max-tokens", "24", "--temperature", "0", "--seed", "1"]
    first = _chat_cli(
        *sampling, lines=[f"Name a colour, {i}." for i in range(6)], home=assistant_home
    )
    assert len(first) == 6
    listed = subprocess.run(
        [sys.executable, "-m", "assistant", "cache", "list", "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "ASSISTANT_HOME": str(assistant_home)},
        cwd=ROOT,
    )
    listing = json.loads(listed.stdout)
    assert len(listing["entries"]) == 1 and listing["total_bytes"] > 0
    (again,) = _chat_cli(
        "--conversation", "1", *sampling, lines=["And one more colour?"], home=assistant_home
    )
    assert again["restored_tokens"] >= 0.8 * again["prompt_tokens"]
    cleared = subprocess.run(
        [sys.executable, "-m", "assistant", "cache", "clear"],
        capture_output=True,
        text=True,
        env={**os.environ, "ASSISTANT_HOME": str(assistant_home)},
        cwd=ROOT,
    )
    assert cleared.returncode == 0 and "Removed" in cleared.stdout
    assert not list((assistant_home / "cache" / "kv-states").glob("*.kvstate"))
