"""A reply as the conversation records it: the plan it was sent with, the streaming `Reply`
that saves the growing text and the final row, and the `ReplyResult` callers get."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, replace

from assistant.conversation.outcome import outcome
from assistant.conversation.window import Window
from assistant.engine.reply_stream import PieceStream, ReplyStream
from assistant.types import ContextReport, ReplyStats


@dataclass(frozen=True)
class ReplyResult:
    message_id: int
    text: str
    stats: ReplyStats
    context: ContextReport
    notice: str = ""
    status: str = "complete"  # what the message row keeps (see conversation.outcome)
    sources: tuple = ()  # the document passages sent (retrieval.Source), most relevant first

    def to_json(self) -> dict:
        return {
            "reply": self.text,
            "message_id": self.message_id,
            **self.stats.to_dict(),
            "context": self.context.to_dict(),
            "notice": self.notice,
            "sources": [s.to_json() for s in self.sources],
        }

    def stored_stats(self) -> dict:
        """The stats as the message row keeps them (the app shows them without reading back)."""
        sources = {"sources": [s.to_json(text=False) for s in self.sources]} if self.sources else {}
        return {**self.stats.to_dict(), "context": self.context.to_dict(), **sources}


@dataclass(frozen=True)
class Plan:
    """What the next reply would send, decided without writing anything."""

    window: Window
    ids: tuple[int | None, ...]  # the history's message ids (None: a message not stored yet)
    report: ContextReport
    notice: str  # what left the window since the previous reply, for the user


class Reply(PieceStream):
    """A streaming reply: iterate for text pieces; it is recorded as it grows and when it ends.

    The engine's stream knows nothing of the store: this wrapper saves the growing text at
    least every `save_interval` seconds and the final row (text, status, stats, context)."""

    def __init__(
        self,
        session,  # the ChatSession that started it
        stream: ReplyStream,
        message_id: int,
        prefix: str,
        plan: Plan,
        *,
        user_message_id: int | None = None,
        title: str = "",
    ):
        self.session = session
        self.stream = stream
        self.message_id = message_id
        self.user_message_id = user_message_id
        self.prefix = prefix
        self.plan = plan
        self.context = plan.report
        self.notice = plan.notice
        self.title = title
        self.result: ReplyResult | None = None
        self._iter = self._run()

    def cancel(self) -> None:
        self.stream.cancel()

    def join(self) -> ReplyResult:
        for _ in self:
            pass
        assert self.result is not None
        return self.result

    @property
    def text(self) -> str:
        return self.prefix + self.stream.text

    def _run(self) -> Iterator[str]:
        store, last_save = self.session.store, time.monotonic()
        try:
            for piece in self.stream:
                now = time.monotonic()
                if now - last_save >= self.session.save_interval:
                    store.save_partial(self.message_id, self.text)  # busy: skips this beat
                    last_save = now
                yield piece
        finally:
            self.stream.close()  # a consumer that stopped early ends the engine's stream too
            self._finish()

    def _finish(self) -> None:
        stats = self.stream.stats or ReplyStats(finish_reason="error")
        session = self.session
        # what the user waited: from the send (the running summary included) to the first token
        first = self.stream.started_at + stats.ttft_s if self.stream.started_at else 0.0
        stats = replace(
            stats,
            wait_s=round(max(0.0, first - session._sent_at), 4) if first else 0.0,
            summary_s=round(session._summary_s, 4),
        )
        end = outcome(
            stats.finish_reason,
            context_full=self.stream.context_full,
            max_tokens=self.stream.sampling.max_tokens,
            notice=self.notice,
        )
        # The result first: if the save fails for good (StoreError, after FINAL_SAVE_WAIT),
        # the caller still has the whole text, and the row keeps what was last saved.
        sources = self.plan.window.sources
        self.result = ReplyResult(
            self.message_id, self.text, stats, self.context, end.notice, end.status, sources
        )
        self.session.store.finish_message(
            self.message_id,
            content=self.text,
            status=end.status,
            tokens=stats.completion_tokens,
            stats=self.result.stored_stats(),
        )
        # Keep this conversation's cache (a snapshot now, the disk write in the background):
        # the reply is complete, so this delays no token.
        session.runtime.save_state()
