"""Long conversations over the API: a client resending the whole history every turn is answered
every turn, told what left the window, and its follow-ups reuse the KV cache (real model)."""

from __future__ import annotations

import openai
import pytest

from assistant.types import Policy
from tests.server_http import CTX, client

pytest_plugins = ["tests.server_running"]  # the serve and server_gate fixtures

SYSTEM = "You are a patient tutor. Answer in one short sentence."
TOPICS = ["gravity", "volcanoes", "tides", "rainbows", "magnets", "clouds", "bees", "sound"]


def question(turn: int) -> str:
    topic = TOPICS[turn % len(TOPICS)]
    return f"Question {turn}: tell me one short fact about {topic}, please."


def test_forty_turns_of_full_history_are_all_answered_with_the_drops_reported(serve):
    server = serve()
    api = client(server)
    messages = [{"role": "system", "content": SYSTEM}]
    seen = []
    for turn in range(1, 41):
        messages.append({"role": "user", "content": question(turn)})
        raw = api.chat.completions.with_raw_response.create(
            model="m", messages=messages, max_tokens=8
        )
        reply = raw.parse()
        context = reply.model_extra["context"]
        assert reply.choices[0].message.content is not None
        assert raw.headers["x-context-dropped"] == str(context["dropped_messages"])
        assert context["used"] + 8 <= CTX
        seen.append((context, reply.usage))
        messages.append({"role": "assistant", "content": reply.choices[0].message.content})
    dropped = [c["dropped_messages"] for c, _ in seen]
    assert dropped[0] == 0 and dropped[-1] > 0, dropped
    assert dropped == sorted(dropped)  # the window only moves forward
    assert all(c["summarized_messages"] == 0 for c, _ in seen)
    # The window start is sticky: it slid only a few times, and on every other turn the prompt
    # began with the previous one, so the KV cache held all of it but the new messages.
    slides = sum(1 for a, b in zip(dropped, dropped[1:], strict=False) if b > a)
    assert 1 <= slides <= 8, dropped
    steady = [
        (usage.prompt_tokens_details.cached_tokens, seen[i - 1][1].prompt_tokens)
        for i, (context, usage) in enumerate(seen[1:], 1)
        if context["dropped_messages"] == seen[i - 1][0]["dropped_messages"]
    ]
    assert len(steady) >= 30
    assert all(cached >= previous - 1 for cached, previous in steady), steady


def test_the_stop_policy_refuses_a_conversation_that_outgrew_the_window(serve):
    server = serve(policy=Policy.STOP)
    long_turns = []
    for i in range(12):
        long_turns += [
            {"role": "user", "content": f"Tell me about topic {i}. " + "Details please. " * 20},
            {"role": "assistant", "content": "Here are the details. " * 20},
        ]
    messages = [{"role": "system", "content": SYSTEM}, *long_turns]
    messages.append({"role": "user", "content": "And one more?"})
    with pytest.raises(openai.BadRequestError) as caught:
        client(server).chat.completions.create(model="m", messages=messages, max_tokens=8)
    error = caught.value.body
    assert error["code"] == "context_length_exceeded"
    assert error["n_ctx"] == CTX and error["needed_tokens"] > CTX
    assert "policy" in error["message"]


def test_the_summarize_policy_folds_older_turns_into_a_running_summary(serve):
    server = serve(policy=Policy.SUMMARIZE)
    messages = [{"role": "system", "content": SYSTEM}]
    for i in range(14):
        messages += [
            {"role": "user", "content": f"My pet number {i} is a cat named Tom{i}. " * 4},
            {"role": "assistant", "content": f"Noted: Tom{i} the cat. " * 4},
        ]
    messages.append({"role": "user", "content": "How many cats did I name?"})
    raw = client(server).chat.completions.with_raw_response.create(
        model="m", messages=messages, max_tokens=8
    )
    context = raw.parse().model_extra["context"]
    assert context["summarized_messages"] > 0 and context["dropped_messages"] == 0
    assert raw.headers["x-context-summarized"] == str(context["summarized_messages"])
    assert context["used"] + 8 <= CTX
