"""The event loop's side of a gate job: submit it, read its events, cancel it on hang-up.

Also where the core's errors become OpenAI errors (`api_error`): a request the window refuses
is a 400 with code `context_length_exceeded` and the token counts; a full queue is a 429 with
Retry-After; a failure of llama.cpp is a 500; the server stays up through all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from assistant.errors import (
    AssistantError,
    ChatFormatError,
    ContextOverflowError,
    InvalidInputError,
    OutOfRangeError,
)
from assistant.server.gate import Gate, GateClosed, NoModel, QueueFull, Work
from assistant.server.requests import ApiError

PASS_S = 0.02  # pieces generated within this time after one was passed on go out together


class Call:
    """One request's job, seen from the event loop: `events()` until it ends."""

    def __init__(self, gate: Gate, work: Work, label: str = ""):
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._held: list[str] = []  # pieces not passed to the event loop yet (model thread)
        self._passed_at = 0.0
        self._gate = gate
        try:
            self.job = gate.submit(work, self._emit, label)
        except QueueFull as exc:
            raise ApiError(
                429,
                f"The model is busy: {exc} Retry in about {exc.retry_after} s.",
                type="rate_limit_error",
                code="queue_full",
                headers={"Retry-After": str(exc.retry_after)},
            ) from None
        except GateClosed:
            raise ApiError(
                503, "The server is shutting down.", type="server_error", code="shutting_down"
            ) from None

    def _emit(self, kind: str, payload: Any) -> None:
        """Called on the model's thread. The first piece goes to the event loop at once; later
        ones at most every PASS_S, together (and all of them before any other event): waking
        the loop for every token would take CPU from llama.cpp's threads on a small machine,
        and no reader sees text arrive faster than 50 times a second."""
        if kind == "piece":
            self._held.append(payload)
            now = time.monotonic()
            if now - self._passed_at < PASS_S:
                return
            self._passed_at = now
            kind, payload = "piece", "".join(self._held)
            self._held.clear()
        elif self._held:
            self._pass("piece", "".join(self._held))
            self._held.clear()
        self._pass(kind, payload)

    def _pass(self, kind: str, payload: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, (kind, payload))
        except RuntimeError:  # the event loop is gone: nobody is listening any more
            self.job.cancel.set()

    def cancel(self) -> None:
        """Stop the reply within one token, or, while it waits, take it out of the queue."""
        self.job.cancel.set()
        self._gate.withdraw(self.job)

    async def next(self) -> tuple[str, Any]:
        return await self._queue.get()

    async def events(self) -> AsyncIterator[tuple[str, Any]]:
        """Events up to and including the `end` or `fail` one. Pieces that arrived while the
        last one was being sent go out as one (a slow client, or a busy event loop, catches
        up instead of falling further behind the model)."""
        while True:
            kind, payload = await self._queue.get()
            if kind == "piece":
                parts = [payload]
                while not self._queue.empty():
                    kind, payload = self._queue.get_nowait()
                    if kind != "piece":
                        break
                    parts.append(payload)
                else:
                    kind = None
                yield "piece", "".join(parts)
                if kind is None:
                    continue
            yield kind, payload
            if kind in ("end", "fail"):
                return


@contextlib.asynccontextmanager
async def cancel_on_hangup(receive: Callable[[], Awaitable[dict]], call: Call):
    """While inside, a client that disconnects cancels the call (within one token)."""

    async def watch() -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                call.cancel()
                return

    task = asyncio.create_task(watch())
    try:
        yield
    except BaseException:  # the request itself was cancelled (a forced shutdown) or failed
        call.cancel()
        raise
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def api_error(exc: BaseException) -> ApiError:
    """The OpenAI error for an error from the core (or from a bug: a plain 500)."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, NoModel):
        retry = {"Retry-After": "5"}
        return ApiError(503, str(exc), type="server_error", code="model_not_loaded", headers=retry)
    if isinstance(exc, ContextOverflowError):
        extra = {"n_ctx": exc.limit, "needed_tokens": exc.needed}
        return ApiError(
            400, str(exc), code="context_length_exceeded", param="messages", extra=extra
        )
    if isinstance(exc, OutOfRangeError):
        return ApiError(400, str(exc), param=exc.field)
    if isinstance(exc, InvalidInputError | ChatFormatError):
        return ApiError(400, str(exc))
    if isinstance(exc, AssistantError):  # GenerationError and what else the core raises
        return ApiError(500, str(exc), type="server_error", code="generation_failed")
    return ApiError(
        500, "The server failed unexpectedly; its log has the details.", type="server_error"
    )
