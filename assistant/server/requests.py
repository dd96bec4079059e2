"""Request bodies checked field by field into plain dataclasses, and OpenAI's error shape.

Every problem is one `ApiError` naming the field (`messages[2].content`) and the reason; it
becomes `{"error": {"message", "type", "param", "code"}}` with its HTTP status. Options this
server cannot honour (several choices, tools, images, log-probabilities, penalties) are
refused with a 400 rather than ignored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from assistant.errors import OutOfRangeError
from assistant.types import ASSISTANT, SYSTEM, USER, Message, SamplingOptions, check_number

MAX_STOP_STRINGS = 16
ROLES = {SYSTEM: SYSTEM, "developer": SYSTEM, USER: USER, ASSISTANT: ASSISTANT}


class ApiError(Exception):
    """An answer in OpenAI's error shape: `status`, and the body's message, type, param, code."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.extra = extra or {}
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        error = {"message": self.message, "type": self.type, "param": self.param}
        return {"error": {**error, "code": self.code, **self.extra}}


def bad_field(param: str, message: str, code: str | None = None) -> ApiError:
    return ApiError(400, message, param=param, code=code)


def unsupported(param: str, message: str) -> ApiError:
    return ApiError(400, message, param=param, code="unsupported_parameter")


@dataclass(frozen=True)
class ResponseFormat:
    kind: str  # "text" | "json_object" | "json_schema"
    schema: dict[str, Any] | None = None


@dataclass(frozen=True)
class ChatRequest:
    messages: tuple[Message, ...]
    sampling: SamplingOptions
    stream: bool = False
    include_usage: bool = False
    response_format: ResponseFormat | None = None
    model: str = ""


@dataclass(frozen=True)
class CompletionRequest:
    prompt: str
    sampling: SamplingOptions
    stream: bool = False
    include_usage: bool = False
    response_format: ResponseFormat | None = None
    model: str = ""


def parse_body(raw: bytes) -> dict[str, Any]:
    """The JSON object of a request body (400 naming the position when it is not one)."""
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise bad_field(
            "body",
            f"The request body is not valid JSON: {exc.msg} at line {exc.lineno} "
            f"column {exc.colno}.",
        ) from None
    except (ValueError, RecursionError):  # not UTF-8 text, or nested beyond reason
        raise bad_field("body", "The request body is not valid JSON text.") from None
    if not isinstance(data, dict):
        raise bad_field("body", "The request body must be a JSON object.")
    return data


def parse_chat(body: dict[str, Any], defaults: SamplingOptions) -> ChatRequest:
    _refuse_unsupported(body, chat=True)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad_field("messages", "'messages' must be a non-empty list of messages.")
    stream = _flag(body, "stream")
    return ChatRequest(
        messages=tuple(_message(m, f"messages[{i}]") for i, m in enumerate(messages)),
        sampling=_sampling(body, defaults),
        stream=stream,
        include_usage=stream and _include_usage(body),
        response_format=_response_format(body.get("response_format")),
        model=_text(body, "model"),
    )


def parse_completion(body: dict[str, Any], defaults: SamplingOptions) -> CompletionRequest:
    _refuse_unsupported(body, chat=False)
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise bad_field(
            "prompt",
            "'prompt' must be a string (or a list holding one string); token lists "
            "and several prompts per request are not supported.",
        )
    stream = _flag(body, "stream")
    return CompletionRequest(
        prompt=prompt,
        sampling=_sampling(body, defaults),
        stream=stream,
        include_usage=stream and _include_usage(body),
        response_format=_response_format(body.get("response_format")),
        model=_text(body, "model"),
    )


# -- fields ------------------------------------------------------------------------------------
def _message(item: Any, where: str) -> Message:
    if not isinstance(item, dict):
        raise bad_field(where, f"{where} must be an object with 'role' and 'content'.")
    role = item.get("role")
    if role in ("tool", "function") or item.get("tool_calls") or item.get("function_call"):
        raise unsupported(where, f"{where}: tool and function calls are not supported.")
    if not isinstance(role, str) or role not in ROLES:
        raise bad_field(
            f"{where}.role", f"{where}.role must be one of system, developer, user, assistant."
        )
    return Message(ROLES[role], _content(item.get("content"), f"{where}.content", role))


def _content(content: Any, where: str, role: str) -> str:
    if isinstance(content, str):
        return content
    if content is None and role == ASSISTANT:
        return ""
    if not isinstance(content, list):
        raise bad_field(where, f"{where} must be a string or a list of text parts.")
    texts = []
    for i, part in enumerate(content):
        here = f"{where}[{i}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("text", "input_text") and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind in ("image_url", "input_image", "input_audio", "file", "image", "audio"):
            raise ApiError(
                400,
                f"{here}: {kind} parts are not supported: this model reads text only.",
                param=here,
                code="unsupported_content",
            )
        else:
            raise bad_field(here, f'{here} must be a text part: {{"type": "text", "text": ...}}.')
    return "\n".join(texts)


def _sampling(body: dict[str, Any], defaults: SamplingOptions) -> SamplingOptions:
    """The request's sampling options over the server's defaults, each checked by name."""
    given: dict[str, Any] = {}
    for name, field in (
        ("max_completion_tokens", "max_tokens"),
        ("max_tokens", "max_tokens"),
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("top_k", "top_k"),  # llama.cpp's own options, accepted as its server does
        ("min_p", "min_p"),
        ("repeat_penalty", "repeat_penalty"),
        ("seed", "seed"),
    ):
        value = body.get(name)
        if value is None or field in given:
            continue
        try:
            given[field] = check_number(field, value, name)
        except OutOfRangeError as exc:
            raise bad_field(name, str(exc)) from None
    stop = body.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    if stop is not None:
        if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop):
            raise bad_field("stop", "'stop' must be a string or a list of non-empty strings.")
        if len(stop) > MAX_STOP_STRINGS:
            raise bad_field(
                "stop", f"'stop' holds {len(stop)} strings; at most {MAX_STOP_STRINGS}."
            )
        given["stop"] = tuple(stop)
    if body.get("ignore_eos") is not None:
        given["ignore_eos"] = _flag(body, "ignore_eos")
    return replace(defaults, **given)


def _response_format(value: Any) -> ResponseFormat | None:
    if value is None:
        return None
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return ResponseFormat("json_object")
    if kind == "json_schema":
        spec = value.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise bad_field(
                "response_format.json_schema.schema",
                "response_format.json_schema.schema must be a JSON schema object.",
            )
        return ResponseFormat("json_schema", schema)
    raise bad_field(
        "response_format", "response_format.type must be one of text, json_object, json_schema."
    )


def _include_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    if options is None:
        return False
    if not isinstance(options, dict):
        raise bad_field("stream_options", "'stream_options' must be an object.")
    return _flag(options, "include_usage", "stream_options.include_usage")


def _flag(body: dict[str, Any], name: str, where: str | None = None) -> bool:
    value = body.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise bad_field(where or name, f"'{where or name}' must be true or false.")
    return value


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise bad_field(name, f"'{name}' must be a string.")
    return value


def _refuse_unsupported(body: dict[str, Any], *, chat: bool) -> None:
    """A clear 400 for each option the server would otherwise silently ignore."""
    n = body.get("n")
    if n is not None and (isinstance(n, bool) or n != 1):
        raise unsupported("n", "'n' must be 1: this server writes one choice per request.")
    for name in ("tools", "functions"):
        if body.get(name):
            raise unsupported(name, f"'{name}': tool and function calls are not supported.")
    choice = body.get("tool_choice", body.get("function_call"))
    if choice not in (None, "none"):
        raise unsupported("tool_choice", "'tool_choice': tool calls are not supported.")
    if body.get("logprobs") not in (None, False) or body.get("top_logprobs") is not None:
        raise unsupported("logprobs", "'logprobs': log-probabilities are not reported.")
    if body.get("logit_bias"):
        raise unsupported("logit_bias", "'logit_bias' is not supported.")
    for name in ("presence_penalty", "frequency_penalty"):
        value = body.get(name)
        if value not in (None, 0, 0.0) or isinstance(value, bool):
            raise unsupported(name, f"'{name}' is not supported (use repeat_penalty).")
    modalities = body.get("modalities")
    if modalities not in (None, ["text"]) or body.get("audio") is not None:
        raise unsupported("modalities", "Only text replies are supported.")
    if not chat:
        if body.get("echo"):
            raise unsupported("echo", "'echo' is not supported.")
        if body.get("suffix"):
            raise unsupported("suffix", "'suffix' (fill in the middle) is not supported.")
        best_of = body.get("best_of")
        if best_of is not None and (isinstance(best_of, bool) or best_of != 1):
            raise unsupported("best_of", "'best_of' must be 1.")
