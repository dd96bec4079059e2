"""One path for a reply: pure planning, explicit commits, the recorder, and how replies end."""

from __future__ import annotations

import threading

import pytest

from assistant.conversation.outcome import STATUS_BY_FINISH, outcome
from assistant.conversation.rolling_summary import SUMMARY_INSTRUCTIONS
from assistant.conversation.session import ChatSession
from assistant.conversation.store import Store
from assistant.errors import ContextFullError, MessageTooLongError
from assistant.types import USER, Message, SamplingOptions

GREEDY = SamplingOptions(temperature=0, max_tokens=48, repeat_penalty=1.1)
LONG = "Describe the sea, its storms, its tides and its creatures in detail, please."


@pytest.fixture
def store(assistant_home):
    s = Store()
    yield s
    s.close()


def fill_until_a_summary_is_due(session: ChatSession) -> None:
    """Send turns until the next message would push older turns out of the window."""
    for turn in range(30):
        session.send(f"{LONG} ({turn})").join()
        probe = session.preview(session._history() + [(None, Message(USER, LONG))])
        if probe.window.pending_summary:
            return
    raise AssertionError("the window never filled")


def test_outcome_maps_every_finish_reason_once():
    assert {f: outcome(f).status for f in STATUS_BY_FINISH} == {
        "stop": "complete",
        "length": "length",
        "cancelled": "cancelled",
        "error": "error",
    }
    assert outcome(None).status == "error", "a stream that raised is an error"
    full = outcome("length", context_full=True, notice="2 older messages left.")
    assert full.notice.startswith("2 older messages left.") and "end of the context" in full.notice
    assert "the 64-token reply limit" in outcome("length", max_tokens=64).notice
    assert outcome("stop", notice="n").notice == "n"


def test_reply_carries_the_stored_ids_title_and_status(runtime, store):
    session = ChatSession(runtime, store, sampling=GREEDY)
    reply = session.send("What is a tide?\nExplain briefly.")
    result = reply.join()
    stored = store.messages(session.conversation_id)
    assert [m.id for m in stored] == [reply.user_message_id, reply.message_id]
    assert reply.title == "What is a tide?" == session.conversation.title
    assert result.status == stored[1].status and result.status in {"complete", "length"}
    again = session.regenerate()
    again.join()
    assert again.user_message_id is None and again.message_id != reply.message_id


def test_a_refused_message_is_not_stored(runtime_factory, store):
    rt = runtime_factory(512)
    session = ChatSession(rt, store, sampling=GREEDY)
    session.send("Say hello.").join()
    before = store.messages(session.conversation_id)
    with pytest.raises(MessageTooLongError):
        session.send("The quick brown fox jumps over the lazy dog. " * 120)
    assert store.messages(session.conversation_id) == before


def test_a_refused_edit_changes_nothing(runtime_factory, store):
    rt = runtime_factory(512)
    session = ChatSession(rt, store, sampling=GREEDY)
    session.send("Say hello.").join()
    session.send("Say goodbye.").join()
    before = store.messages(session.conversation_id)
    with pytest.raises(MessageTooLongError):
        session.edit(before[0].id, "The quick brown fox jumps over the lazy dog. " * 120)
    assert store.messages(session.conversation_id) == before


def test_stop_policy_refuses_and_keeps_the_conversation(runtime_factory, store):
    rt = runtime_factory(512)
    session = ChatSession(rt, store, policy="stop", sampling=GREEDY)
    with pytest.raises(ContextFullError, match="new chat"):
        for turn in range(30):
            session.send(f"{LONG} ({turn})").join()
    stored = store.messages(session.conversation_id)
    assert stored and stored[-1].role == "assistant", "the refused message was not stored"
    assert all(m.status in {"complete", "length"} for m in stored)


def test_what_the_model_sees_is_a_pure_preview(runtime_factory, store, monkeypatch):
    """'What the model sees' never writes, summarizes or runs the model, even when a running
    summary is due."""
    rt = runtime_factory(512)
    session = ChatSession(rt, store, policy="summarize", sampling=GREEDY)
    fill_until_a_summary_is_due(session)
    session.store.add_message(session.conversation_id, "user", LONG)  # the due turn, unsent
    before = (session.conversation, store.messages(session.conversation_id))

    def no_model(*args, **kwargs):
        raise AssertionError("the preview ran the model")

    monkeypatch.setattr(rt, "stream", no_model)
    assert session.preview().window.pending_summary, "a summary is due"
    text = session.prompt_text()
    assert "<|im_start|>" in text and LONG in text
    assert (session.conversation, store.messages(session.conversation_id)) == before


def test_stop_reaches_the_running_summary(runtime_factory, store, monkeypatch):
    """Defect: plan() ran the summary without the cancel event, so Stop, switching chats and
    closing waited for a summary of up to a whole window."""
    rt = runtime_factory(512)
    session = ChatSession(rt, store, policy="summarize", sampling=GREEDY)
    fill_until_a_summary_is_due(session)
    summary_before = session.conversation.summary
    real_stream = rt.stream
    summary_tokens: list[int] = []

    def stream(prompt, sampling=None, cancel=None, **engine_options):
        inner = real_stream(prompt, sampling, cancel, **engine_options)
        if not (prompt and getattr(prompt[0], "content", "").startswith(SUMMARY_INSTRUCTIONS[:40])):
            return inner

        original = inner._iter

        def pieces():  # the user presses Stop once the summary has begun
            for piece in original:
                assert cancel is not None, "the summary got no cancel event"
                cancel.set()
                yield piece
            summary_tokens.append(inner.stats.completion_tokens)

        inner._iter = pieces()
        return inner

    monkeypatch.setattr(rt, "stream", stream)
    cancel = threading.Event()
    reply = session.send(f"{LONG} (last)", cancel)
    result = reply.join()
    assert summary_tokens and summary_tokens[0] <= 2, "the summary stopped within a token"
    assert result.status == "cancelled" and result.stats.completion_tokens == 0
    assert session.conversation.summary == summary_before, "no half-written summary is kept"
    stored = store.messages(session.conversation_id)
    assert stored[-2].content == f"{LONG} (last)" and stored[-1].status == "cancelled"
