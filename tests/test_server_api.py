"""The OpenAI-compatible API on a real uvicorn server, driven by the official `openai` client."""

from __future__ import annotations

import json

import jsonschema
import openai
import pytest

from tests.server_http import CTX, client, raw

pytest_plugins = ["tests.server_running"]  # the serve and server_gate fixtures

HELLO = [{"role": "system", "content": "You are brief."}, {"role": "user", "content": "Say hi."}]


def test_models_and_health(serve):
    server = serve()
    models = client(server).models.list()
    assert [m.id for m in models.data] == ["embedded"]
    status, _, body = raw(server, "GET", "/health")
    assert status == 200 and body["status"] == "ok"


def test_chat_reply_with_usage_context_and_headers(serve):
    server = serve()
    response = client(server).chat.completions.with_raw_response.create(
        model="any", messages=HELLO, max_tokens=12
    )
    reply = response.parse()
    choice = reply.choices[0]
    assert reply.object == "chat.completion" and choice.message.role == "assistant"
    assert choice.message.content.strip()
    assert choice.finish_reason in ("stop", "length")
    usage = reply.usage
    assert usage.prompt_tokens > 5 and 0 < usage.completion_tokens <= 12
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    context = reply.model_extra["context"]
    assert context["n_ctx"] == CTX and context["used"] == usage.prompt_tokens
    assert context["dropped_messages"] == 0 and context["summarized_messages"] == 0
    assert response.headers["x-context-dropped"] == "0"


def test_streamed_chat_matches_the_plain_reply_and_reports_usage(serve):
    server = serve()
    api = client(server)
    plain = api.chat.completions.create(model="m", messages=HELLO, max_tokens=12, seed=3)
    chunks = list(
        api.chat.completions.create(
            model="m",
            messages=HELLO,
            max_tokens=12,
            seed=3,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == plain.choices[0].finish_reason and not any(finishes[:-1])
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == (
        plain.usage.completion_tokens
    )
    assert chunks[0].model_extra["context"]["n_ctx"] == CTX


def test_text_completion_plain_and_streamed(serve):
    server = serve()
    api = client(server)
    done = api.completions.create(model="m", prompt="The capital of France is", max_tokens=6)
    assert done.object == "text_completion" and done.choices[0].text
    assert done.usage.completion_tokens <= 6 and done.choices[0].finish_reason == "length"
    pieces = list(
        api.completions.create(
            model="m", prompt="The capital of France is", max_tokens=6, stream=True
        )
    )
    assert "".join(p.choices[0].text for p in pieces) == done.choices[0].text


def test_stop_strings_end_the_reply(serve):
    server = serve()
    reply = client(server).completions.create(
        model="m", prompt="1, 2, 3, 4, 5,", max_tokens=16, stop=["7"]
    )
    assert "7" not in reply.choices[0].text and reply.choices[0].finish_reason == "stop"


def test_json_schema_reply_parses_and_matches(serve):
    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string", "maxLength": 12},
            "sunny": {"type": "boolean"},
        },
        "required": ["city", "sunny"],
        "additionalProperties": False,
    }
    server = serve()
    reply = client(server).chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "Describe the weather in Paris as JSON."}],
        max_tokens=40,
        response_format={"type": "json_schema", "json_schema": {"name": "w", "schema": schema}},
    )
    data = json.loads(reply.choices[0].message.content)
    jsonschema.validate(data, schema)


def test_a_text_completion_can_be_held_to_a_schema_too(serve):
    server = serve()
    done = client(server).completions.create(
        model="m",
        prompt="Is the sky blue? Answer in JSON:",
        max_tokens=8,
        extra_body={
            "response_format": {
                "type": "json_schema",
                "json_schema": {"schema": {"type": "boolean"}},
            }
        },
    )
    assert json.loads(done.choices[0].text) in (True, False)


def test_a_schema_that_would_blow_up_the_grammar_is_refused(serve):
    server = serve()
    huge = {"type": "array", "items": {"type": "integer"}, "minItems": 10**9}
    status, _, body = raw(
        server,
        "POST",
        "/v1/chat/completions",
        {
            "messages": HELLO,
            "response_format": {"type": "json_schema", "json_schema": {"schema": huge}},
        },
    )
    assert status == 400
    assert body["error"]["param"] == "response_format.json_schema.schema"
    assert "minItems" in body["error"]["message"]


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        (b'{"messages": [', "body", "not valid JSON"),
        (b"[1, 2]", "body", "JSON object"),
        ({"messages": "hi"}, "messages", "non-empty list"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role", "one of"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content", "string"),
        ({"messages": HELLO, "temperature": "hot"}, "temperature", "not a number"),
        ({"messages": HELLO, "max_tokens": 0}, "max_tokens", "too small"),
        ({"messages": HELLO, "stream": "yes"}, "stream", "true or false"),
        ({"messages": HELLO, "stop": [1]}, "stop", "strings"),
        ({"messages": HELLO, "n": 2}, "n", "must be 1"),
        ({"messages": HELLO, "tools": [{"type": "function"}]}, "tools", "not supported"),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "x"}}],
                    }
                ]
            },
            "messages[0].content[0]",
            "text only",
        ),
        ({"messages": HELLO, "response_format": {"type": "xml"}}, "response_format", "one of"),
    ],
)
def test_bad_requests_get_a_400_naming_the_field_and_the_server_stays_up(serve, body, param, words):
    server = serve()
    status, _, answer = raw(server, "POST", "/v1/chat/completions", body)
    assert status == 400, answer
    error = answer["error"]
    assert error["param"] == param and words in error["message"]
    assert set(error) >= {"message", "type", "code"}
    assert raw(server, "GET", "/health")[0] == 200


def test_the_openai_client_sees_errors_as_its_own_exceptions(serve):
    server = serve()
    with pytest.raises(openai.BadRequestError) as caught:
        client(server).chat.completions.create(model="m", messages=HELLO, n=3)
    assert caught.value.code == "unsupported_parameter"
    status, _, body = raw(server, "GET", "/v1/nothing")
    assert status == 404 and "error" in body


def test_one_message_too_long_for_the_window_is_refused_with_the_counts(serve):
    server = serve()
    huge = "word " * 1500
    with pytest.raises(openai.BadRequestError) as caught:
        client(server).chat.completions.create(
            model="m", messages=[{"role": "user", "content": huge}]
        )
    error = caught.value.body
    assert error["code"] == "context_length_exceeded"
    assert error["n_ctx"] == CTX and error["needed_tokens"] > CTX
    assert str(CTX) in error["message"]
    with pytest.raises(openai.BadRequestError) as caught:
        client(server).completions.create(model="m", prompt=huge)
    assert caught.value.code == "context_length_exceeded"
