"""The chat manager on the real embedded model: long chats, policies, cancel, edit, continue."""

from __future__ import annotations

import threading

import pytest

from assistant.conversation.session import ChatSession
from assistant.conversation.store import Store
from assistant.conversation.window import SUMMARY_HEADER
from assistant.errors import MessageTooLongError
from assistant.types import SamplingOptions

GREEDY = SamplingOptions(temperature=0, max_tokens=48, repeat_penalty=1.1)
SYSTEM = "You are Captain Nemo. Always answer as Captain Nemo."
TOPICS = [
    "the sea",
    "submarines",
    "whales",
    "coral reefs",
    "storms",
    "navigation",
    "pearls",
    "octopuses",
    "lighthouses",
    "tides",
]


@pytest.fixture
def store(assistant_home):
    s = Store()
    yield s
    s.close()


def test_forty_turn_chat_overflows_several_times_and_never_errors(runtime_factory, store):
    rt = runtime_factory(1024)
    session = ChatSession(rt, store, system_prompt=SYSTEM, sampling=GREEDY)
    results, slides = [], 0
    for turn in range(40):
        reply = session.send(f"Tell me one fact about {TOPICS[turn % 10]} (question {turn}).")
        result = reply.join()
        results.append(result)
        ctx = result.context
        assert ctx.n_ctx == 1024 and ctx.used + ctx.reserve <= 1024
        assert ctx.system_kept and session.prompt_text().startswith(f"<|im_start|>system\n{SYSTEM}")
        assert f"(question {turn})" in session.prompt_text(), "the newest message is always sent"
        slides += "left the context window" in result.notice
    dropped = [r.context.dropped_messages for r in results]
    assert dropped[-1] > 0 and dropped == sorted(dropped), "drops are reported and only grow"
    assert slides >= 2, "the window slid several times"
    assert slides <= 40 // 4, "each slide frees a block, so the cache stays valid for many turns"
    cached = [r.stats.cached_tokens for r in results[1:]]
    assert sum(c > 100 for c in cached) >= 30, "most follow-ups reuse the KV cache prefix"
    stored = store.messages(session.conversation_id)
    assert len(stored) == 80 and all(m.status in {"complete", "length"} for m in stored)
    first_visible = results[-1].context.first_visible_message_id
    assert first_visible == stored[dropped[-1]].id and stored[dropped[-1]].role == "user"


def test_summarize_policy_keeps_a_running_summary(runtime_factory, store):
    rt = runtime_factory(512)
    session = ChatSession(rt, store, system_prompt=SYSTEM, policy="summarize", sampling=GREEDY)
    session.send("My name is Ishmael and my ship is called the Pequod.").join()
    result = None
    for turn in range(12):
        result = session.send(f"Describe {TOPICS[turn % 10]} in two sentences.").join()
        if result.context.summarized_messages:
            break
    assert result.context.summarized_messages > 0 and result.context.dropped_messages == 0
    assert "summarized" in result.notice
    conv = session.conversation
    assert conv.summary.strip()
    prompt = session.prompt_text()
    assert prompt.startswith(f"<|im_start|>system\n{SYSTEM}") and SUMMARY_HEADER in prompt
    assert conv.summary.strip() in prompt


def test_oversize_message_error_or_middle_truncation(runtime_factory, store):
    rt = runtime_factory(512)
    huge = "The quick brown fox jumps over the lazy dog. " * 120
    session = ChatSession(rt, store, sampling=GREEDY)
    with pytest.raises(MessageTooLongError, match=r"This message is \d+ tokens.*512-token window"):
        session.send(huge)
    session = ChatSession(rt, store, sampling=GREEDY, truncate_oversize=True)
    result = session.send(huge).join()
    assert result.context.truncated_message and "shortened in the middle" in result.notice
    assert "tokens removed from the middle of this message" in session.prompt_text()
    assert store.messages(session.conversation_id)[0].content == huge, "the stored text is whole"


def test_cancel_mid_reply_is_saved_and_marked(runtime, store):
    session = ChatSession(runtime, store, sampling=SamplingOptions(temperature=0, max_tokens=300))
    cancel = threading.Event()
    reply = session.send("Write a long poem about the ocean.", cancel)
    pieces = []
    for piece in reply:
        pieces.append(piece)
        if len(pieces) == 5:
            cancel.set()
    assert reply.result.stats.finish_reason == "cancelled"
    saved = store.messages(session.conversation_id)[-1]
    assert saved.status == "cancelled" and saved.content == "".join(pieces)


def test_closing_a_reply_early_saves_it_as_cancelled(runtime, store):
    session = ChatSession(runtime, store, sampling=SamplingOptions(temperature=0, max_tokens=300))
    reply = session.send("Write a long poem about the ocean.")
    first = next(reply)
    reply.close()
    saved = store.messages(session.conversation_id)[-1]
    assert saved.status == "cancelled" and saved.content == first


def test_length_then_continue_extends_the_same_message(runtime, store):
    session = ChatSession(runtime, store, sampling=SamplingOptions(temperature=0, max_tokens=8))
    first = session.send("Write a long poem about the ocean.").join()
    assert first.stats.finish_reason == "length" and "continue it" in first.notice
    more = session.continue_reply().join()
    assert more.message_id == first.message_id and more.text.startswith(first.text)
    assert len(more.text) > len(first.text)
    assert store.get_message(first.message_id).content == more.text


def test_regenerate_and_edit_replace_the_tail_and_keep_the_old_versions(runtime, store):
    session = ChatSession(runtime, store, sampling=SamplingOptions(temperature=0.8, max_tokens=20))
    session.send("Say hello.").join()
    session.send("Say goodbye.").join()
    before = store.messages(session.conversation_id)
    session.regenerate().join()
    after = store.messages(session.conversation_id)
    assert len(after) == 4 and after[3].id != before[3].id and after[:3] == before[:3]
    assert store.versions(session.conversation_id)[after[3].id].ids == (before[3].id, after[3].id)
    session.edit(before[0].id, "Say good morning.").join()
    edited = store.messages(session.conversation_id)
    assert [m.role for m in edited] == ["user", "assistant"]
    assert edited[0].id != before[0].id and edited[0].content == "Say good morning."
    assert store.versions(session.conversation_id)[edited[0].id].ids == (before[0].id, edited[0].id)
    store.select_version(before[0].id)  # the old branch, as it was left
    assert store.messages(session.conversation_id) == after


def test_reply_is_saved_while_it_streams(runtime, store):
    session = ChatSession(
        runtime, store, sampling=SamplingOptions(temperature=0, max_tokens=120), save_interval=0.0
    )
    reply = session.send("Write a long poem about the ocean.")
    next(reply)
    next(reply)
    row = store.messages(session.conversation_id)[-1]
    assert row.status == "streaming" and row.content
    reply.join()
    assert store.messages(session.conversation_id)[-1].status in {"complete", "length"}


def test_title_comes_from_the_first_message(runtime, store):
    session = ChatSession(runtime, store, sampling=GREEDY)
    session.send("How do tides work?\nPlease explain.").join()
    assert session.conversation.title == "How do tides work?"
