"""The chat session: one conversation, its context window, and replies recorded as they stream.

The path of a reply: the user's message is checked against the window (pure: a refused message
is not stored) and committed; the window is planned (pure) then committed (a new running
summary, the window start); the engine streams the reply while `Reply` records it (the row
first, the growing text at least every `save_interval`, the final text with its stats);
`outcome` decides what the ending means.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from assistant.conversation.outcome import outcome
from assistant.conversation.rolling_summary import fold_into_summary
from assistant.conversation.store import Conversation, Store, StoredMessage
from assistant.conversation.window import Window, fit_window
from assistant.engine.runtime import ModelRuntime, PieceStream, ReplyStream
from assistant.errors import ContextOverflowError, InvalidInputError
from assistant.types import (
    ASSISTANT,
    SYSTEM,
    USER,
    ContextReport,
    Message,
    Policy,
    ReplyStats,
    SamplingOptions,
)

NEW_TITLE = "New chat"
TITLE_CHARS = 60


@dataclass(frozen=True)
class ReplyResult:
    message_id: int
    text: str
    stats: ReplyStats
    context: ContextReport
    notice: str = ""
    status: str = "complete"  # what the message row keeps (see conversation.outcome)

    def to_json(self) -> dict:
        return {
            "reply": self.text,
            "message_id": self.message_id,
            **self.stats.to_dict(),
            "context": self.context.to_dict(),
            "notice": self.notice,
        }


@dataclass(frozen=True)
class Plan:
    """What the next reply would send, decided without writing anything."""

    window: Window
    ids: tuple[int | None, ...]  # the history's message ids (None: a message not stored yet)
    report: ContextReport
    notice: str  # what left the window since the previous reply, for the user


class ChatSession:
    """Drives one stored conversation with one runtime. Not thread-safe: one caller at a time."""

    def __init__(
        self,
        runtime: ModelRuntime,
        store: Store,
        conversation: Conversation | int | None = None,
        *,
        system_prompt: str | None = None,
        policy: Policy | str | None = None,
        sampling: SamplingOptions | None = None,
        reserve: int | None = None,
        truncate_oversize: bool = False,
        save_interval: float = 1.0,
        slide: float = 0.33,
    ):
        self.runtime = runtime
        self.store = store
        self.reserve_override = reserve
        self.truncate_oversize = truncate_oversize
        self.save_interval = save_interval
        self.slide = slide
        if conversation is None:
            conversation = store.create_conversation(
                system_prompt=system_prompt or "",
                model=runtime.info.name,
                sampling=(sampling or SamplingOptions()).to_dict(),
                policy=Policy.parse(policy or Policy.DROP).value,
            )
        elif isinstance(conversation, int):
            conversation = store.get_conversation(conversation)
        self.conversation_id = conversation.id
        updates: dict = {}
        if system_prompt is not None and system_prompt != conversation.system_prompt:
            updates["system_prompt"] = system_prompt
        if policy is not None and Policy.parse(policy).value != conversation.policy:
            updates["policy"] = Policy.parse(policy).value
        if sampling is not None:
            updates["sampling"] = sampling.to_dict()
        if updates:
            store.update_conversation(conversation.id, **updates)
        self.last_plan: Plan | None = None  # the window of the last reply, once committed

    # -- state -----------------------------------------------------------------------------
    @property
    def conversation(self) -> Conversation:
        return self.store.get_conversation(self.conversation_id)

    @property
    def policy(self) -> Policy:
        return Policy.parse(self.conversation.policy)

    @property
    def sampling(self) -> SamplingOptions:
        return SamplingOptions.from_dict(self.conversation.sampling)

    def messages(self) -> list[StoredMessage]:
        return self.store.messages(self.conversation_id)

    def set_system_prompt(self, text: str) -> None:
        self.store.update_conversation(self.conversation_id, system_prompt=text)

    def set_policy(self, policy: Policy | str) -> None:
        self.store.update_conversation(self.conversation_id, policy=Policy.parse(policy).value)

    def set_sampling(self, sampling: SamplingOptions) -> None:
        self.store.update_conversation(self.conversation_id, sampling=sampling.to_dict())

    def reserve(self) -> int:
        if self.reserve_override is not None:
            return self.reserve_override
        return max(16, min(self.sampling.max_tokens or 512, self.runtime.n_ctx // 4))

    # -- intents ---------------------------------------------------------------------------
    def send(self, text: str, cancel: threading.Event | None = None) -> Reply:
        """Commit the user's message, then return the streaming reply.

        A message the window refuses (too long, or a full window under the 'stop' policy)
        raises before anything is stored, so the caller can hand the text back to the user."""
        if not text.strip():
            raise InvalidInputError("The message is empty.")
        self.preview(self._history() + [(None, Message(USER, text))])  # raises if refused
        conv = self.conversation
        tokens = len(self.runtime.tokenize(text))
        user = self.store.add_message(self.conversation_id, USER, text, tokens=tokens)
        title = conv.title
        if title == NEW_TITLE:
            title = title_from(text)
            self.store.update_conversation(self.conversation_id, title=title)
        return self._reply(cancel, user_message_id=user.id, title=title)

    def regenerate(self, cancel: threading.Event | None = None) -> Reply:
        """Replace the last reply with a new one."""
        msgs = self.messages()
        if not msgs:
            raise InvalidInputError("There is nothing to regenerate yet.")
        if msgs[-1].role == ASSISTANT:
            kept = [(i, m) for i, m in self._history() if i != msgs[-1].id]
            self.preview(kept)  # a window or template that fails keeps the old reply
            self.store.delete_messages_from(self.conversation_id, msgs[-1].id)
        return self._reply(cancel)

    def edit(self, message_id: int, text: str, cancel: threading.Event | None = None) -> Reply:
        """Change a user message; every later message is replaced by a new reply.

        The edited conversation is checked against the window first: a refused edit changes
        nothing."""
        msg = self.store.get_message(message_id)
        if msg.conversation_id != self.conversation_id or msg.role != USER:
            raise InvalidInputError("Only your own messages in this conversation can be edited.")
        if not text.strip():
            raise InvalidInputError("The message is empty.")
        kept = [(i, m) for i, m in self._history() if i is not None and i < message_id]
        self.preview(kept + [(message_id, Message(USER, text))])  # raises if refused
        later = [m for m in self.messages() if m.id > message_id]
        if later:
            self.store.delete_messages_from(self.conversation_id, later[0].id)
        self.store.update_message(message_id, content=text, tokens=len(self.runtime.tokenize(text)))
        return self._reply(cancel, user_message_id=message_id)

    def continue_reply(self, cancel: threading.Event | None = None) -> Reply:
        """Extend the last reply (after it stopped for length, or was cancelled)."""
        msgs = self.messages()
        if not msgs or msgs[-1].role != ASSISTANT:
            raise InvalidInputError("There is no reply to continue.")
        return self._reply(cancel, continue_message=msgs[-1])

    def record_summary(self, name: str, text: str, result) -> tuple[StoredMessage, StoredMessage]:
        """Put a document summary into the conversation so follow-up questions can use it;
        returns the stored request ("Summarize the document …") and the summary.

        The document is kept (its ranges index into it); the reply's stats carry the summary's
        points with their source ranges and the document id, for 'show the source passage'."""
        document_id = self.store.add_document(self.conversation_id, name, text)
        tokens = result.source_tokens
        note = " (partial: cancelled)" if result.partial else ""
        request = self.store.add_message(
            self.conversation_id, USER, f"Summarize the document “{name}” ({tokens} tokens)."
        )
        summary = result.to_json()
        stats: dict = {"summary": {**summary, "document_id": document_id, "document": name}}
        report = self.preview_report()  # the window before the summary, as for a reply
        if report is not None:
            stats["context"] = report.to_dict()
        return request, self.store.add_message(
            self.conversation_id,
            ASSISTANT,
            result.summary + note,
            status="cancelled" if result.partial else "complete",
            tokens=len(self.runtime.tokenize(result.summary)),
            stats=stats,
        )

    # -- the window: planning is pure, committing writes -------------------------------------
    def preview(self, history: list[tuple[int | None, Message]] | None = None) -> Plan:
        """The window the next reply would use, from the stored state; writes nothing and never
        runs the model (turns waiting to be summarized are simply not shown).

        Raises ContextOverflowError when the window cannot hold what must be sent."""
        conv = self.conversation
        history = self._history() if history is None else history
        ids = tuple(i for i, _ in history)
        msgs = [m for _, m in history]
        start = _index_of(ids, conv.window_start_id)
        upto = _index_of(ids, conv.summary_upto_id)
        window = self._fit(msgs, conv, start, conv.summary, upto)
        return self._plan(window, ids, conv)

    def preview_report(self) -> ContextReport | None:
        """The context report of the window as it stands (None if it cannot be fitted)."""
        try:
            return self.preview().report
        except ContextOverflowError:
            return None

    def prompt_text(self) -> str:
        """What the model sees next (templated), for 'what the model sees': a pure preview."""
        return self.runtime.render(self.preview().window.messages)

    def commit_window(self, cancel: threading.Event | None = None) -> Plan:
        """Plan the window and make it so: fold turns that left into the running summary (if
        the policy says so; a stop takes effect within one token or prompt batch and keeps
        nothing half-written) and remember the window start."""
        conv = self.conversation
        history = self._history()
        ids = tuple(i for i, _ in history)
        msgs = [m for _, m in history]
        start = _index_of(ids, conv.window_start_id)
        upto = _index_of(ids, conv.summary_upto_id)
        summary = conv.summary
        for _ in range(4):
            window = self._fit(msgs, conv, start, summary, upto)
            pending = window.pending_summary
            if Policy.parse(conv.policy) is not Policy.SUMMARIZE or pending is None:
                break
            folded = fold_into_summary(self.runtime, summary, msgs[pending[0] : pending[1]], cancel)
            if folded is None:  # stopped: nothing is written, the reply ends as cancelled
                return self._plan(window, ids, conv)
            summary, start = folded, window.start
            upto = start
            self.store.update_conversation(
                self.conversation_id,
                summary=summary,
                summary_upto_id=ids[upto] if upto < len(ids) else None,
            )
        if ids and window.start < len(ids):
            self.store.update_conversation(self.conversation_id, window_start_id=ids[window.start])
        plan = self._plan(window, ids, conv)
        self.last_plan = plan
        return plan

    def _fit(
        self, msgs: list[Message], conv: Conversation, start: int, summary: str, upto: int
    ) -> Window:
        return fit_window(
            msgs,
            system=conv.system_prompt,
            counter=self.runtime,
            n_ctx=self.runtime.n_ctx,
            reserve=self.reserve(),
            policy=Policy.parse(conv.policy),
            start=start,
            summary=summary,
            summary_upto=upto,
            slide=self.slide,
            truncate_oversize=self.truncate_oversize,
        )

    def _plan(self, window: Window, ids: Sequence[int | None], before: Conversation) -> Plan:
        report = ContextReport(
            n_ctx=window.n_ctx,
            used=window.used,
            reserve=window.reserve,
            dropped_messages=window.dropped,
            summarized_messages=window.summarized,
            system_kept=window.system_kept,
            truncated_message=window.truncated,
            first_visible_message_id=ids[window.start] if window.start < len(ids) else None,
        )
        return Plan(window, tuple(ids), report, _left_notice(window, ids, before))

    def _history(self) -> list[tuple[int | None, Message]]:
        return [(m.id, Message(m.role, m.content)) for m in self.messages() if m.role != SYSTEM]

    # -- replies -------------------------------------------------------------------------------
    def _reply(
        self,
        cancel: threading.Event | None,
        continue_message: StoredMessage | None = None,
        user_message_id: int | None = None,
        title: str | None = None,
    ) -> Reply:
        cancel = cancel or threading.Event()
        plan = self.commit_window(cancel)
        stream = self.runtime.stream(
            self.runtime.prompt_tokens(plan.window.messages), self.sampling, cancel
        )
        if continue_message is None:
            stored = self.store.add_message(self.conversation_id, ASSISTANT, "", status="streaming")
            prefix = ""
        else:
            stored = continue_message
            prefix = continue_message.content
            self.store.update_message(stored.id, status="streaming")
        return Reply(
            self,
            stream,
            stored.id,
            prefix,
            plan,
            user_message_id=user_message_id,
            title=title if title is not None else self.conversation.title,
        )


class Reply(PieceStream):
    """A streaming reply: iterate for text pieces; it is recorded as it grows and when it ends.

    The engine's stream knows nothing of the store: this wrapper saves the growing text at
    least every `save_interval` seconds and the final row (text, status, stats, context)."""

    def __init__(
        self,
        session: ChatSession,
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
        end = outcome(
            stats.finish_reason,
            context_full=self.stream.context_full,
            max_tokens=self.stream.sampling.max_tokens,
            notice=self.notice,
        )
        # The result first: if the save fails for good (StoreError, after FINAL_SAVE_WAIT),
        # the caller still has the whole text, and the row keeps what was last saved.
        self.result = ReplyResult(
            self.message_id, self.text, stats, self.context, end.notice, end.status
        )
        self.session.store.finish_message(
            self.message_id,
            content=self.text,
            status=end.status,
            tokens=stats.completion_tokens,
            stats={**stats.to_dict(), "context": self.context.to_dict()},
        )


def title_from(text: str) -> str:
    """A conversation title from its first message: the first line, cut at TITLE_CHARS."""
    first_line = text.strip().splitlines()[0]
    return first_line[:TITLE_CHARS] + ("…" if len(first_line) > TITLE_CHARS else "")


def _left_notice(window: Window, ids: Sequence[int | None], before: Conversation) -> str:
    """Tell the user when older messages left the window for this reply."""
    previous_start = _index_of(ids, before.window_start_id)
    left = window.start - previous_start
    notice = ""
    if left > 0:
        how = "summarized" if window.summarized >= window.start else "dropped"
        notice = (
            f"{left} older message{'s' if left != 1 else ''} left the context window "
            f"({how}); the model no longer sees them word for word."
        )
    if window.truncated:
        notice = (notice + " " if notice else "") + (
            "Your message was shortened in the middle to fit the window."
        )
    return notice


def _index_of(ids: Sequence[int | None], message_id: int | None) -> int:
    """History index of the first message with id >= message_id (0 when unset); a message not
    stored yet (id None) comes after every stored one."""
    if message_id is None:
        return 0
    for i, mid in enumerate(ids):
        if mid is None or mid >= message_id:
            return i
    return len(ids)
