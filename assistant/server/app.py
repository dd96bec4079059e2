"""The routes of the OpenAI-compatible API, and the ASGI app with its guards around them.

`GET /v1/models`, `POST /v1/chat/completions`, `POST /v1/completions` (streaming as
server-sent events, or one JSON object) and `GET /health`; the same without `/v1` for clients
whose base URL leaves it out. Every error is OpenAI's `{"error": {...}}` shape.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from sse_starlette import EventSourceResponse
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from assistant.engine.grammar import any_json_grammar, schema_grammar
from assistant.errors import InvalidInputError
from assistant.server import responses as shapes
from assistant.server.access_log import LOG_KEY, AccessLog
from assistant.server.calls import Call, api_error, cancel_on_hangup
from assistant.server.gate import Gate
from assistant.server.replies import Ending, chat_work, completion_work
from assistant.server.requests import (
    ApiError,
    ResponseFormat,
    parse_body,
    parse_chat,
    parse_completion,
)
from assistant.server.security import DEFAULT_MAX_BODY, HostGuard, KeyAndBodyGuard
from assistant.server.windows import ConversationWindows
from assistant.types import ReplyStats, SamplingOptions

PING_S = 15  # an SSE comment line this often keeps idle proxies from closing a slow stream
# On shutdown the gate cancels the reply in flight; its stream gets this long to send its last
# chunk (finish_reason "cancelled") and [DONE] before the connection is cut.
SHUTDOWN_GRACE_S = 3.0
LARGE_BODY = 64 * 1024


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    api_key: str = ""
    cors_origins: tuple[str, ...] = ()
    max_body: int = DEFAULT_MAX_BODY
    model_id: str = ""  # the name /v1/models gives; "": the served model's file name
    model_created: int = 0
    sampling: SamplingOptions = field(default_factory=SamplingOptions)  # request defaults


def create_app(gate: Gate, windows: ConversationWindows, config: ServerConfig):
    """The ASGI app: access log → Host/Origin guard → CORS → API key and body limit → routes."""
    api = _Api(gate, windows, config)
    routes = []
    for prefix in ("/v1", ""):
        routes += [
            Route(f"{prefix}/models", api.models, methods=["GET"]),
            Route(f"{prefix}/chat/completions", api.chat, methods=["POST"]),
            Route(f"{prefix}/completions", api.completions, methods=["POST"]),
        ]
    routes.append(Route("/health", api.health, methods=["GET"]))
    app = Starlette(
        routes=routes,
        exception_handlers={
            ApiError: _api_error_response,
            HTTPException: _http_error_response,
            Exception: _api_error_response,  # a bug: a 500 in OpenAI's shape, logged by uvicorn
        },
    )
    inner = KeyAndBodyGuard(app, api_key=config.api_key, max_body=config.max_body)
    if config.cors_origins:
        inner = CORSMiddleware(
            inner,
            allow_origins=list(config.cors_origins),
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type"],
            expose_headers=["X-Context-Dropped", "X-Context-Summarized", "Retry-After"],
        )
    return AccessLog(
        HostGuard(inner, host=config.host, port=config.port, cors_origins=config.cors_origins)
    )


async def _api_error_response(_request: Request, exc: Exception) -> JSONResponse:
    error = exc if isinstance(exc, ApiError) else api_error(exc)
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


async def _http_error_response(request: Request, exc: Exception) -> JSONResponse:
    status = getattr(exc, "status_code", 500)
    text = {404: f"No route {request.url.path}.", 405: f"{request.method} is not allowed here."}
    message = text.get(status, getattr(exc, "detail", "Error."))
    return JSONResponse(ApiError(status, message).body(), status_code=status)


class _Api:
    def __init__(self, gate: Gate, windows: ConversationWindows, config: ServerConfig):
        self.gate = gate
        self.windows = windows
        self.config = config

    def _model_name(self) -> str:
        path = self.gate.model_file
        return self.config.model_id or (path.name if path is not None else "local-model")

    def _model(self) -> tuple[str, int]:
        """(id, created) of the model serving now: the desktop app may switch models."""
        path = self.gate.model_file
        if self.config.model_id or path is None:
            return self.config.model_id or "local-model", self.config.model_created
        try:
            return path.name, int(path.stat().st_mtime)
        except OSError:
            return path.name, self.config.model_created

    async def health(self, _request: Request) -> JSONResponse:
        loaded = self.gate.model_file is not None
        body = {"status": "ok" if loaded else "loading", "busy": self.gate.busy}
        status = 200 if loaded else 503  # as llama-server answers while its model loads
        return JSONResponse({**body, "waiting": self.gate.waiting}, status_code=status)

    async def models(self, _request: Request) -> JSONResponse:
        return JSONResponse(shapes.model_list(*self._model()))

    async def chat(self, request: Request):
        req = await _parsed(request, parse_chat, self.config.sampling)
        grammar = _grammar(req.response_format)
        work = chat_work(self.windows, req.messages, req.sampling, grammar)
        call, report = await self._start(request, work, "chat")
        env = shapes.envelope("chat.completion", self._model_name())  # the model that runs it
        counts = request.scope.get(LOG_KEY, {})
        if report is not None:
            counts.update(dropped=report.dropped_messages, summarized=report.summarized_messages)
        headers = shapes.context_headers(report)
        if req.stream:
            events = _chat_events(call, env, report, req.include_usage, counts)
            return _sse(events, headers)
        async with cancel_on_hangup(request.receive, call):
            text, ending = await _collect(call)
        _count(counts, ending)
        body = shapes.chat_completion(env, text, ending.stats, report, ending.context_full)
        return JSONResponse(body, headers=headers)

    async def completions(self, request: Request):
        req = await _parsed(request, parse_completion, self.config.sampling)
        work = completion_work(req.prompt, req.sampling, _grammar(req.response_format))
        call, _ = await self._start(request, work, "text")
        env = shapes.envelope("text_completion", self._model_name())
        counts = request.scope.get(LOG_KEY, {})
        if req.stream:
            events = _completion_events(call, env, req.include_usage, counts)
            return _sse(events, {})
        async with cancel_on_hangup(request.receive, call):
            text, ending = await _collect(call)
        _count(counts, ending)
        return JSONResponse(shapes.completion(env, text, ending.stats, ending.context_full))

    async def _start(self, request: Request, work, label: str):
        """Queue the work and wait for its start: until then, a refusal is still an HTTP error
        and a client that hangs up while it waits leaves the queue."""
        call = Call(self.gate, work, label)
        async with cancel_on_hangup(request.receive, call):
            kind, payload = await call.next()
        if kind == "fail":
            raise api_error(payload)
        if kind == "end":  # cancelled while it waited: the client left or the server is stopping
            raise ApiError(503, "The request was cancelled.", type="server_error", code="cancelled")
        return call, payload


async def _parsed(request: Request, parse, defaults: SamplingOptions):
    """The checked request; a large body is checked on a worker thread (a few MB of messages
    take a second or more) so the event loop keeps serving the other connections."""
    raw = await request.body()
    if len(raw) < LARGE_BODY:
        return parse(parse_body(raw), defaults)
    return await run_in_threadpool(lambda: parse(parse_body(raw), defaults))


def _sse(events: AsyncIterator[str], headers: dict[str, str]) -> EventSourceResponse:
    return EventSourceResponse(
        events, headers=headers, ping=PING_S, sep="\n", shutdown_grace_period=SHUTDOWN_GRACE_S
    )


def _grammar(response_format: ResponseFormat | None) -> str | None:
    if response_format is None:
        return None
    if response_format.kind == "json_object":
        return any_json_grammar()
    where = "response_format.json_schema.schema"
    try:
        return schema_grammar(response_format.schema, where)
    except InvalidInputError as exc:
        raise ApiError(400, str(exc), param=where) from None


async def _collect(call: Call) -> tuple[str, Ending]:
    parts: list[str] = []
    async for kind, payload in call.events():
        if kind == "piece":
            parts.append(payload)
        elif kind == "fail":
            raise api_error(payload)
        elif kind == "end":
            return "".join(parts), _ending(payload)
    raise AssertionError("a call always ends")  # pragma: no cover


def _ending(payload: Ending | None) -> Ending:
    return payload if payload is not None else Ending(ReplyStats(finish_reason="cancelled"))


def _count(counts: dict[str, Any], ending: Ending) -> None:
    s = ending.stats
    counts.update(
        prompt=s.prompt_tokens,
        cached=s.cached_tokens,
        completion=s.completion_tokens,
        finish=s.finish_reason,
    )


async def _chat_events(call, env, report, include_usage, counts) -> AsyncIterator[str]:
    try:
        first = {"role": "assistant", "content": ""}
        yield json.dumps(shapes.chat_chunk(env, first, report=report))
        async for kind, payload in call.events():
            if kind == "piece":
                yield json.dumps(shapes.chat_chunk(env, {"content": payload}))
            elif kind == "fail":
                yield json.dumps(api_error(payload).body())
                return
            else:
                ending = _ending(payload)
                _count(counts, ending)
                reason = shapes.finish_reason(ending.stats, ending.context_full)
                yield json.dumps(shapes.chat_chunk(env, {}, reason))
                if include_usage:
                    yield json.dumps(shapes.usage_chunk(env, ending.stats))
        yield "[DONE]"
    finally:
        call.cancel()  # a client that hung up stops its generation within one token


async def _completion_events(call, env, include_usage, counts) -> AsyncIterator[str]:
    try:
        async for kind, payload in call.events():
            if kind == "piece":
                yield json.dumps(shapes.completion_chunk(env, payload))
            elif kind == "fail":
                yield json.dumps(api_error(payload).body())
                return
            else:
                ending = _ending(payload)
                _count(counts, ending)
                reason = shapes.finish_reason(ending.stats, ending.context_full)
                yield json.dumps(shapes.completion_chunk(env, "", reason))
                if include_usage:
                    yield json.dumps(shapes.usage_chunk(env, ending.stats))
        yield "[DONE]"
    finally:
        call.cancel()
