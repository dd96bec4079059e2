"""Fast unit tests of the server's logic: request checking, conversation windows across stateless
requests (word tokenizer, fake summarizer), the gate's queue, grammars and the Host rules."""

from __future__ import annotations

import threading

import pytest

from assistant.engine.grammar import MAX_REPEAT, schema_grammar
from assistant.errors import ContextFullError, InvalidInputError, MessageTooLongError
from assistant.server.gate import Gate, GateClosed, QueueFull
from assistant.server.requests import ApiError, parse_body, parse_chat, parse_completion
from assistant.server.security import HostGuard
from assistant.server.windows import ConversationWindows, split_system
from assistant.types import ASSISTANT, SYSTEM, USER, Message, Policy, SamplingOptions

DEFAULTS = SamplingOptions(temperature=0.3, max_tokens=100)


class WordRuntime:
    """A model stand-in for fitting: one token per word, four per message for the template."""

    n_ctx = 600

    def prompt_tokens(self, messages):
        return list(range(sum(4 + len(m.content.split()) for m in messages) + 2))

    def tokenize(self, text):
        return list(range(len(text.split())))

    def detokenize(self, tokens):
        return " ".join("w" for _ in tokens)


def conversation(turns: int, words: int = 10) -> list[Message]:
    out = [Message(SYSTEM, "Be brief.")]
    for i in range(turns):
        out += [Message(USER, f"q{i} " + "x " * words), Message(ASSISTANT, f"a{i} " + "y " * words)]
    return out


def ask(messages, turn):
    return [*messages, Message(USER, f"q{turn} " + "x " * 10)]


# -- windows across requests ---------------------------------------------------------------------
def test_split_system_joins_the_leading_system_messages():
    system, rest = split_system(
        [Message(SYSTEM, "a"), Message(SYSTEM, "b"), Message(USER, "c"), Message(SYSTEM, "d")]
    )
    assert system == "a\n\nb" and [m.content for m in rest] == ["c", "d"]


def test_a_resent_history_keeps_its_window_start_until_it_must_slide():
    windows, rt = ConversationWindows(Policy.DROP), WordRuntime()
    messages = conversation(0)
    starts = []
    for turn in range(30):
        messages = ask(messages, turn)
        fitted = windows.fit(rt, messages, max_tokens=20)
        starts.append(fitted.window.start)
        assert fitted.report.used <= rt.n_ctx - 20
        assert fitted.tokens == rt.prompt_tokens(fitted.window.messages)  # what is sent
        assert fitted.window.messages[0].content == "Be brief."  # the system prompt is kept
        messages.append(Message(ASSISTANT, f"a{turn} " + "y " * 10))
    assert starts[0] == 0 and starts[-1] > 0
    assert starts == sorted(starts)
    moves = sum(1 for a, b in zip(starts, starts[1:], strict=False) if a != b)
    assert moves <= len(starts) // 4, starts  # a generous block at a time, not every turn
    assert len(windows) == 1  # one entry per conversation


def test_without_remembered_state_every_request_would_slide_by_one_turn():
    """The comparison that shows what the LRU is for: a fresh object per request."""
    rt, messages, starts = WordRuntime(), conversation(0), []
    for turn in range(30):
        messages = ask(messages, turn)
        starts.append(ConversationWindows(Policy.DROP).fit(rt, messages, 20).window.start)
        messages.append(Message(ASSISTANT, f"a{turn} " + "y " * 10))
    moves = sum(1 for a, b in zip(starts, starts[1:], strict=False) if a != b)
    assert moves > len(starts) // 4


def test_two_conversations_keep_their_own_starts():
    windows, rt = ConversationWindows(Policy.DROP), WordRuntime()
    first = ask(conversation(25), 25)
    a = windows.fit(rt, first, 20).window.start
    windows.fit(rt, [Message(SYSTEM, "Other."), *first[1:]], 20)  # another conversation
    follow_up = ask([*first, Message(ASSISTANT, "ok")], 26)
    assert a > 0 and windows.fit(rt, follow_up, 20).window.start == a
    assert ConversationWindows(Policy.DROP).fit(rt, follow_up, 20).window.start != a
    assert len(windows) == 2


def test_an_edited_early_message_is_a_new_conversation():
    windows, rt = ConversationWindows(Policy.DROP), WordRuntime()
    messages = ask(conversation(12), 12)
    windows.fit(rt, messages, 20)
    edited = [messages[0], Message(USER, "changed"), *messages[2:]]
    key_count = len(windows)
    windows.fit(rt, edited, 20)
    assert len(windows) == key_count + 1


def test_the_lru_forgets_the_least_recent_conversation():
    windows, rt = ConversationWindows(Policy.DROP, capacity=2), WordRuntime()
    for name in ("a", "b", "c"):
        windows.fit(rt, [Message(SYSTEM, name), Message(USER, "hi")], 20)
    assert len(windows) == 2


def test_summarize_folds_departed_turns_once_and_carries_the_summary():
    calls = []

    def summarize(runtime, previous, leaving, cancel):
        calls.append(len(leaving))
        return (previous + " s").strip()

    windows, rt = ConversationWindows(Policy.SUMMARIZE, summarize=summarize), WordRuntime()
    messages = conversation(0)
    for turn in range(30):
        messages = ask(messages, turn)
        fitted = windows.fit(rt, messages, 20)
        messages.append(Message(ASSISTANT, "ok " * 10))
    assert calls and len(calls) <= 8  # only when the window slides, not every turn
    assert fitted.report.summarized_messages > 0 and fitted.report.dropped_messages == 0
    assert "s" in fitted.window.messages[0].content.split()[-1]


def test_summarizing_stopped_by_a_hang_up_keeps_nothing():
    windows = ConversationWindows(Policy.SUMMARIZE, summarize=lambda *a: None)
    assert windows.fit(WordRuntime(), ask(conversation(20), 20), 20) is None
    assert len(windows) == 0


def test_stop_policy_and_a_single_huge_message_are_refused():
    rt = WordRuntime()
    with pytest.raises(ContextFullError):
        ConversationWindows(Policy.STOP).fit(rt, ask(conversation(20), 20), 20)
    huge = [Message(USER, "x " * 700)]
    with pytest.raises(MessageTooLongError) as caught:
        ConversationWindows(Policy.DROP).fit(rt, huge, 20)
    assert caught.value.limit == rt.n_ctx and caught.value.needed > rt.n_ctx


# -- requests ----------------------------------------------------------------------------------
def test_a_chat_request_becomes_plain_data():
    body = parse_body(
        b'{"model": "x", "messages": [{"role": "developer", "content": "Be kind."},'
        b'{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text",'
        b' "text": "b"}]}], "max_completion_tokens": 7, "temperature": 0, "seed": 4,'
        b' "stop": "END", "stream": true, "stream_options": {"include_usage": true}}'
    )
    req = parse_chat(body, DEFAULTS)
    assert req.messages == (Message(SYSTEM, "Be kind."), Message(USER, "a\nb"))
    s = req.sampling
    assert (s.max_tokens, s.temperature, s.seed, s.stop) == (7, 0, 4, ("END",))
    assert s.top_p == DEFAULTS.top_p  # not given: the server's default
    assert req.stream and req.include_usage


def test_include_usage_only_counts_when_streaming():
    req = parse_chat(
        {"messages": [{"role": "user", "content": "a"}], "stream_options": {"include_usage": True}},
        DEFAULTS,
    )
    assert not req.include_usage


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [{"role": "user", "content": "a"}], "seed": -1}, "seed"),
        ({"messages": [{"role": "user", "content": "a"}], "top_p": 0}, "top_p"),
        ({"messages": [{"role": "tool", "content": "a"}]}, "messages[0]"),
        (
            {"messages": [{"role": "user", "content": "a"}], "presence_penalty": 1},
            "presence_penalty",
        ),
        ({"messages": [{"role": "user", "content": "a"}], "logprobs": True}, "logprobs"),
        ({"messages": [{"role": "user", "content": "a"}], "stop": ["a"] * 17}, "stop"),
    ],
)
def test_bad_chat_fields_are_named(body, param):
    with pytest.raises(ApiError) as caught:
        parse_chat(body, DEFAULTS)
    assert caught.value.status == 400 and caught.value.param == param


def test_completion_prompts():
    assert parse_completion({"prompt": ["once"]}, DEFAULTS).prompt == "once"
    for bad in ({"prompt": [1, 2]}, {"prompt": ["a", "b"]}, {"prompt": "a", "echo": True}):
        with pytest.raises(ApiError):
            parse_completion(bad, DEFAULTS)


def test_hostile_json_bodies_are_one_clear_error():
    for raw in (b"[" * 100_000, b"\xff\xfe\x00", b"", b"null"):
        with pytest.raises(ApiError) as caught:
            parse_body(raw)
        assert caught.value.param == "body"


# -- the gate --------------------------------------------------------------------------------------
def test_the_gate_runs_jobs_one_at_a_time_in_arrival_order():
    gate = Gate(runtime=None, max_waiting=10)
    order, running = [], []

    def job(i):
        def work(_rt, _cancel, emit):
            running.append(i)
            assert len(running) == 1
            order.append(i)
            running.pop()

        return work

    jobs = [gate.submit(job(i), lambda *_: None) for i in range(6)]
    gate.start()
    for j in jobs:
        assert j.done.wait(10)
    gate.close()
    assert order == list(range(6))


def test_a_full_queue_refuses_and_a_cancelled_waiting_job_is_skipped():
    gate = Gate(runtime=None, max_waiting=2)
    release, events = threading.Event(), []
    gate.submit(lambda *_: release.wait(10), events.append)
    gate.start()
    waiting = [
        gate.submit(lambda *_: events.append("ran"), lambda *e: events.append(e)) for _ in range(2)
    ]
    with pytest.raises(QueueFull) as caught:
        gate.submit(lambda *_: None, lambda *_: None)
    assert caught.value.retry_after >= 1
    waiting[0].cancel.set()  # its client hung up while it waited: a free place
    gate.submit(lambda *_: None, lambda *_: None)
    release.set()
    assert waiting[1].done.wait(10) and waiting[0].done.wait(10)
    assert ("end", None) in events and events.count("ran") == 1
    gate.close()
    with pytest.raises(GateClosed):
        gate.submit(lambda *_: None, lambda *_: None)


def test_an_outside_owner_runs_the_jobs_on_its_own_thread():
    """The desktop app's worker can be the owner: `on_ready` tells it, it calls run_next."""
    ready, ran_on = threading.Event(), []
    gate = Gate(runtime="rt", on_ready=ready.set)
    gate.submit(
        lambda rt, *_: ran_on.append((rt, threading.current_thread().name)), lambda *_: None
    )
    assert ready.is_set() and not ran_on  # nothing runs until the owner asks
    assert gate.run_next() and ran_on == [("rt", threading.current_thread().name)]
    assert not gate.run_next(timeout=0)


def test_a_failing_job_reports_and_the_gate_goes_on():
    gate, events = Gate(runtime=None), []
    gate.submit(lambda *_: 1 / 0, lambda *e: events.append(e))
    gate.submit(lambda *_: "fine", lambda *_: None)
    gate.run_next()
    gate.run_next()
    assert events[0][0] == "fail" and isinstance(events[0][1], ZeroDivisionError)
    assert gate.finished[-1].result == "fine"


# -- grammars and hosts ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "schema",
    [
        {"type": "string", "maxLength": MAX_REPEAT + 1},
        {"type": "string", "pattern": "^a{1000000}$"},
        {"type": "string", "pattern": "^a{,1000000000}$"},  # no lower bound
        {"type": "string", "pattern": "^a{0,1_000_000}$"},  # int() reads underscores
        {"type": "array", "minItems": "3"},
        {"type": "strange"},
        {"$ref": "https://example.com/schema.json"},
        "not an object",
    ],
)
def test_schemas_beyond_the_bounds_are_refused_by_name(schema):
    with pytest.raises(InvalidInputError) as caught:
        schema_grammar(schema, "response_format.json_schema.schema")
    assert "response_format.json_schema.schema" in str(caught.value)


def test_a_deeply_nested_schema_is_refused():
    schema: dict = {"type": "integer"}
    for _ in range(100):
        schema = {"type": "array", "items": schema}
    with pytest.raises(InvalidInputError):
        schema_grammar(schema)


def test_host_rules():
    local = HostGuard(None, host="127.0.0.1", port=8080)
    assert local._host_ok("127.0.0.1:8080") and local._host_ok("localhost:8080")
    assert local._host_ok("[::1]:8080")
    assert not local._host_ok("127.0.0.1") and not local._host_ok("192.168.1.5:8080")
    wide = HostGuard(None, host="0.0.0.0", port=8080)
    assert wide._host_ok("192.168.1.5:8080") and wide._host_ok("[fe80::1]:8080")
    assert not wide._host_ok("evil.example:8080") and not wide._host_ok("192.168.1.5:9")


def test_an_owner_without_a_model_refuses_in_turn_and_a_closed_gate_ends_the_waiting():
    """The app's worker answers 'no model' for a request while its model loads, and stopping
    the server answers every request still waiting (nobody would run them any more)."""
    from assistant.server.gate import NoModel

    gate, events = Gate(runtime=None, on_ready=lambda: None), []
    first = gate.submit(lambda *_: events.append("ran"), lambda *e: events.append(e))
    second = gate.submit(lambda *_: events.append("ran"), lambda *e: events.append(e))
    assert gate.refuse_next(NoModel("No model is loaded yet."))
    assert first.done.is_set() and events[0][0] == "fail" and isinstance(events[0][1], NoModel)
    gate.close(timeout=0)
    assert second.done.wait(1) and events[1] == ("end", None) and "ran" not in events
    assert not gate.refuse_next(NoModel("none")) and not gate.run_next(timeout=0)


def test_pieces_that_queued_up_go_out_as_one_and_nothing_is_lost():
    import asyncio

    from assistant.server.calls import Call

    def work(_rt, _cancel, emit):
        emit("start", None)
        for piece in ("Hel", "lo", ", ", "world"):
            emit("piece", piece)
        emit("end", "done")

    async def scenario():
        gate = Gate(runtime=None, on_ready=lambda: None)
        call = Call(gate, work)
        gate.run_next()  # the whole reply is queued before the client reads any of it
        return [event async for event in call.events()]

    assert asyncio.run(scenario()) == [
        ("start", None),
        ("piece", "Hello, world"),
        ("end", "done"),
    ]


def test_a_waiting_job_whose_client_left_leaves_the_queue_at_once():
    gate, events = Gate(runtime=None, on_ready=lambda: None), []
    first = gate.submit(lambda *_: events.append("first"), lambda *e: events.append(e))
    second = gate.submit(lambda *_: events.append("second"), lambda *e: events.append(e))
    gate.withdraw(first)  # its client hung up before its turn
    assert first.done.is_set() and first.cancel.is_set() and events == [("end", None)]
    assert gate.waiting == 1
    assert gate.run_next() and events[-1] == "second" and second.done.is_set()
    gate.withdraw(second)  # already run: nothing happens
    assert not gate.run_next(timeout=0)
