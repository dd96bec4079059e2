"""The work each request hands the gate, run on the model's owner thread.

A job emits, in order: `("start", ContextReport | None)` once the prompt is decided (a refusal
before it is a `("fail", error)`, so it can still be an HTTP error), then `("piece", text)` for
each piece of the reply, then `("end", Ending)`, or `("fail", error)` if llama.cpp fails.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from assistant.errors import AssistantError, ContextOverflowError
from assistant.server.gate import Emit
from assistant.server.windows import ConversationWindows
from assistant.types import Message, ReplyStats, SamplingOptions


@dataclass(frozen=True)
class Ending:
    stats: ReplyStats
    context_full: bool = False


def chat_work(
    windows: ConversationWindows,
    messages: tuple[Message, ...],
    sampling: SamplingOptions,
    grammar: str | None,
):
    @_reporting
    def work(runtime, cancel: threading.Event, emit: Emit) -> Ending | None:
        fitted = windows.fit(runtime, messages, sampling.max_tokens, cancel)
        if fitted is None:  # cancelled while older turns were summarized
            emit("end", None)
            return None
        stream = runtime.stream(
            fitted.tokens, sampling, cancel, grammar=grammar, label=fitted.label
        )
        return _run(stream, fitted.report, emit)

    return work


def completion_work(prompt: str, sampling: SamplingOptions, grammar: str | None = None):
    @_reporting
    def work(runtime, cancel: threading.Event, emit: Emit) -> Ending | None:
        tokens = runtime.text_prompt(prompt or " ")
        n_ctx = runtime.n_ctx
        if len(tokens) >= n_ctx:
            raise ContextOverflowError(
                f"The prompt is {len(tokens)} tokens; the {n_ctx}-token context window needs "
                "room for at least one more.",
                needed=len(tokens) + 1,
                limit=n_ctx,
            )
        return _run(runtime.stream(tokens, sampling, cancel, grammar=grammar), None, emit)

    return work


def _reporting(work):
    """Errors the core raises for a reason the user can act on become a `fail` event."""

    def guarded(runtime, cancel: threading.Event, emit: Emit) -> Ending | None:
        try:
            return work(runtime, cancel, emit)
        except AssistantError as exc:
            emit("fail", exc)
            return None

    return guarded


def _run(stream, report, emit: Emit) -> Ending:
    emit("start", report)
    for piece in stream:
        emit("piece", piece)
    ending = Ending(stream.stats or ReplyStats(finish_reason="error"), stream.context_full)
    emit("end", ending)
    return ending
