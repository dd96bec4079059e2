"""Window fitting with a trivial word tokenizer: every policy and the edge cases."""

from __future__ import annotations

import pytest

from assistant.conversation.window import SUMMARY_HEADER, TRUNCATION_MARKER, fit_window
from assistant.errors import ContextFullError, ContextOverflowError, MessageTooLongError
from assistant.types import ASSISTANT, SYSTEM, USER, Message, Policy

PER_MESSAGE = 3  # role markers around each message
GENERATION_PROMPT = 2


class WordCounter:
    """Tokens are words; each message costs 3 extra, the generation prompt 2."""

    def count_prompt(self, messages):
        return sum(len(m.content.split()) + PER_MESSAGE for m in messages) + GENERATION_PROMPT

    def tokenize(self, text):
        return text.split()

    def detokenize(self, tokens):
        return " ".join(tokens)


COUNTER = WordCounter()


def turns(n: int, words: int = 10) -> list[Message]:
    """n user/assistant turns, each message `words` words long, numbered for identification."""
    out = []
    for i in range(n):
        out.append(Message(USER, f"u{i} " + "w " * (words - 1)))
        out.append(Message(ASSISTANT, f"a{i} " + "w " * (words - 1)))
    return out


def ask(history, **kw):
    kw.setdefault("system", "be brief")
    kw.setdefault("counter", COUNTER)
    kw.setdefault("n_ctx", 200)
    kw.setdefault("reserve", 50)
    return fit_window(history, **kw)


def test_empty_history_sends_only_the_system_prompt():
    w = ask([])
    assert w.messages == (Message(SYSTEM, "be brief"),)
    assert w.used == 2 + PER_MESSAGE + GENERATION_PROMPT
    assert (w.start, w.dropped, w.summarized) == (0, 0, 0)


def test_everything_fits_nothing_dropped():
    history = turns(3) + [Message(USER, "last question")]
    w = ask(history)
    assert w.start == 0 and w.dropped == 0
    assert w.messages[0].role == SYSTEM and w.messages[1:] == tuple(history)
    assert w.used == COUNTER.count_prompt(w.messages)


def test_exact_fit_is_accepted_and_one_more_token_slides():
    history = turns(2) + [Message(USER, "q")]
    used = COUNTER.count_prompt([Message(SYSTEM, "be brief"), *history])
    w = ask(history, n_ctx=used + 50)
    assert w.used == used and w.start == 0
    w = ask(history, n_ctx=used + 49)
    assert w.start > 0 and w.used <= used + 49 - 50


def test_drop_oldest_whole_turns_keeps_system_and_newest_message():
    history = turns(12) + [Message(USER, "newest")]
    w = ask(history)
    assert w.messages[0] == Message(SYSTEM, "be brief")
    assert w.messages[-1] == Message(USER, "newest")
    assert history[w.start].role == USER, "turns leave whole: the window starts at a user message"
    assert w.dropped == w.start > 0
    assert w.used <= 200 - 50
    assert w.system_kept


def test_slide_frees_a_generous_block_then_stays_put():
    history = turns(12) + [Message(USER, "q0")]
    first = ask(history, slide=0.33)
    budget = 150
    assert first.used <= budget - int(0.33 * budget), "the slide frees a third of the budget"
    # The next turns append after the same start while they fit: the prefix (KV cache) stays valid.
    history += [Message(ASSISTANT, "short answer"), Message(USER, "q1")]
    second = ask(history, start=first.start)
    assert second.start == first.start
    assert second.messages[: len(first.messages) - 1] == first.messages[:-1]


def test_sticky_start_snaps_to_a_turn_boundary():
    history = turns(3) + [Message(USER, "q")]
    w = ask(history, start=1)  # pointing at an assistant message: snap forward to the next turn
    assert w.start == 2 and history[w.start].role == USER


def test_stop_policy_refuses_with_numbers():
    history = turns(12) + [Message(USER, "q")]
    with pytest.raises(ContextFullError) as info:
        ask(history, policy=Policy.STOP)
    assert "200-token" in str(info.value) and "new chat" in str(info.value)
    assert info.value.limit == 200 and info.value.needed > 200


def test_stop_policy_allows_what_fits():
    w = ask(turns(2) + [Message(USER, "q")], policy=Policy.STOP)
    assert w.start == 0


def test_summarize_policy_reports_what_must_be_summarized():
    history = turns(12) + [Message(USER, "q")]
    w = ask(history, policy=Policy.SUMMARIZE)
    assert w.pending_summary == (0, w.start) and w.start > 0
    assert w.dropped == w.start and w.summarized == 0
    # Once the summary covers what left, it is carried right after the system prompt.
    w2 = ask(
        history,
        policy=Policy.SUMMARIZE,
        start=w.start,
        summary="they said hi",
        summary_upto=w.start,
    )
    assert w2.pending_summary is None
    assert w2.summarized == w.start and w2.dropped == 0
    assert w2.messages[0].role == SYSTEM
    assert (
        w2.messages[0].content.startswith("be brief") and SUMMARY_HEADER in w2.messages[0].content
    )
    assert "they said hi" in w2.messages[0].content


def test_summary_is_ignored_under_drop_policy():
    history = turns(2) + [Message(USER, "q")]
    w = ask(history, policy=Policy.DROP, summary="old", summary_upto=2)
    assert SUMMARY_HEADER not in w.messages[0].content and w.summarized == 0


def test_summary_without_system_prompt_becomes_the_system_message():
    history = turns(12) + [Message(USER, "q")]
    w = ask(history, system="", policy=Policy.SUMMARIZE, start=10, summary="s", summary_upto=10)
    assert w.messages[0].role == SYSTEM and SUMMARY_HEADER in w.messages[0].content


def test_huge_system_prompt_is_a_clear_error():
    with pytest.raises(ContextOverflowError) as info:
        ask(turns(1), system="word " * 300)
    assert "system prompt is 305 tokens" in str(info.value)


def test_single_oversize_message_error_names_the_counts():
    history = turns(2) + [Message(USER, "x " * 400)]
    with pytest.raises(MessageTooLongError) as info:
        ask(history)
    text = str(info.value)
    assert "400 tokens" in text and "200-token window" in text and "room for" in text


def test_single_oversize_message_shortened_in_the_middle_when_allowed():
    words = [f"t{i}" for i in range(400)]
    history = turns(2) + [Message(USER, " ".join(words))]
    w = ask(history, n_ctx=300, truncate_oversize=True)
    assert w.truncated and w.used <= 250
    sent = w.messages[-1].content
    assert sent.startswith("t0 t1") and sent.endswith("t398 t399")
    assert TRUNCATION_MARKER.split("{n}")[0].strip() in sent
    assert "tokens removed from the middle" in sent
    assert w.start == 4, "older turns leave before the newest message is cut"


def test_history_starting_with_an_assistant_message():
    history = [Message(ASSISTANT, "welcome " * 140)] + turns(1) + [Message(USER, "q")]
    w = ask(history)
    assert w.start == 1 and w.messages[1].role == USER


def test_continuation_keeps_the_partial_reply_in_the_last_turn():
    history = turns(12) + [Message(USER, "q"), Message(ASSISTANT, "partial answer")]
    w = ask(history)
    assert w.messages[-2:] == (Message(USER, "q"), Message(ASSISTANT, "partial answer"))
