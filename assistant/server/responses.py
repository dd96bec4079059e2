"""OpenAI's response shapes, built from plain data only here, at the HTTP boundary."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from assistant.types import ContextReport, ReplyStats

# The engine's endings as OpenAI names them; a reply stopped by the server shutting down (its
# client already gone or about to be) keeps the engine's word, "cancelled".
FINISH = {"stop": "stop", "length": "length", "cancelled": "cancelled", "error": "error"}


@dataclass(frozen=True)
class Envelope:
    """What every object of one response shares: its id, creation time and model name."""

    kind: str  # "chat.completion" | "text_completion"
    model: str
    id: str = field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex[:24]}")
    created: int = field(default_factory=lambda: int(time.time()))

    def head(self, chunk: bool = False) -> dict[str, Any]:
        kind = self.kind + (".chunk" if chunk and self.kind == "chat.completion" else "")
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model}


def envelope(kind: str, model: str) -> Envelope:
    prefix = "chatcmpl" if kind == "chat.completion" else "cmpl"
    return Envelope(kind, model, id=f"{prefix}-{uuid.uuid4().hex[:24]}")


def usage(stats: ReplyStats) -> dict[str, Any]:
    return {
        "prompt_tokens": stats.prompt_tokens,
        "completion_tokens": stats.completion_tokens,
        "total_tokens": stats.prompt_tokens + stats.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": stats.cached_tokens},
    }


def context(report: ContextReport) -> dict[str, Any]:
    """The extra `context` object: what the window held for this reply."""
    return {
        "n_ctx": report.n_ctx,
        "used": report.used,
        "dropped_messages": report.dropped_messages,
        "summarized_messages": report.summarized_messages,
        "truncated_message": report.truncated_message,
    }


def context_headers(report: ContextReport | None) -> dict[str, str]:
    if report is None:
        return {}
    return {
        "X-Context-Dropped": str(report.dropped_messages),
        "X-Context-Summarized": str(report.summarized_messages),
    }


def finish_reason(stats: ReplyStats, context_full: bool = False) -> str:
    return "length" if context_full else FINISH.get(stats.finish_reason, stats.finish_reason)


def chat_completion(
    env: Envelope, text: str, stats: ReplyStats, report: ContextReport | None, full: bool
) -> dict[str, Any]:
    choice = {
        "index": 0,
        "message": {"role": "assistant", "content": text},
        "logprobs": None,
        "finish_reason": finish_reason(stats, full),
    }
    body = {**env.head(), "choices": [choice], "usage": usage(stats)}
    if report is not None:
        body["context"] = context(report)
    return body


def chat_chunk(
    env: Envelope,
    delta: dict[str, Any] | None = None,
    finish: str | None = None,
    *,
    report: ContextReport | None = None,
) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta or {}, "logprobs": None, "finish_reason": finish}
    body = {**env.head(chunk=True), "choices": [choice]}
    if report is not None:
        body["context"] = context(report)
    return body


def usage_chunk(env: Envelope, stats: ReplyStats) -> dict[str, Any]:
    """The last chunk of a stream with `stream_options.include_usage`: no choices, the usage."""
    return {**env.head(chunk=True), "choices": [], "usage": usage(stats)}


def completion(env: Envelope, text: str, stats: ReplyStats, full: bool) -> dict[str, Any]:
    choice = {
        "index": 0,
        "text": text,
        "logprobs": None,
        "finish_reason": finish_reason(stats, full),
    }
    return {**env.head(), "choices": [choice], "usage": usage(stats)}


def completion_chunk(env: Envelope, text: str, finish: str | None = None) -> dict[str, Any]:
    choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
    return {**env.head(chunk=True), "choices": [choice]}


def model_list(model_id: str, created: int) -> dict[str, Any]:
    entry = {"id": model_id, "object": "model", "created": created, "owned_by": "local"}
    return {"object": "list", "data": [entry]}
