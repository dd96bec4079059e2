"""The chat manager: one conversation, its context window, and replies saved as they stream."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

from .context import Window, fit_window
from .errors import AssistantError, InvalidInputError
from .runtime import ModelRuntime, PieceStream, ReplyStream
from .store import Conversation, Store, StoredMessage
from .types import (
    ASSISTANT,
    SYSTEM,
    USER,
    ContextReport,
    Message,
    Policy,
    ReplyStats,
    SamplingOptions,
)

SUMMARY_INSTRUCTIONS = (
    "You maintain a running summary of a conversation between a user and an assistant. "
    "Merge the previous summary with the new messages into one concise summary of at most "
    "{words} words. Keep names, facts, numbers, decisions and open questions. Write only the "
    "summary."
)


@dataclass(frozen=True)
class ReplyResult:
    message_id: int
    text: str
    stats: ReplyStats
    context: ContextReport
    notice: str = ""

    def to_json(self) -> dict:
        return {
            "reply": self.text,
            "message_id": self.message_id,
            **self.stats.to_dict(),
            "context": self.context.to_dict(),
            "notice": self.notice,
        }


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
        updates = {}
        if (
            system_prompt is not None
            and conversation.id
            and system_prompt != conversation.system_prompt
        ):
            updates["system_prompt"] = system_prompt
        if policy is not None and Policy.parse(policy).value != conversation.policy:
            updates["policy"] = Policy.parse(policy).value
        if sampling is not None:
            updates["sampling"] = sampling.to_dict()
        if updates:
            store.update_conversation(conversation.id, **updates)
        self.last_window: Window | None = None

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
        """Commit the user's message first, then return the streaming reply."""
        if not text.strip():
            raise InvalidInputError("The message is empty.")
        conv = self.conversation
        tokens = len(self.runtime.tokenize(text))
        self.store.add_message(self.conversation_id, USER, text, tokens=tokens)
        if conv.title == "New chat":
            first_line = text.strip().splitlines()[0]
            title = first_line[:60] + ("…" if len(first_line) > 60 else "")
            self.store.update_conversation(self.conversation_id, title=title)
        return self._reply(cancel)

    def regenerate(self, cancel: threading.Event | None = None) -> Reply:
        """Replace the last reply with a new one."""
        msgs = self.messages()
        if not msgs:
            raise InvalidInputError("There is nothing to regenerate yet.")
        if msgs[-1].role == ASSISTANT:
            self.store.delete_messages_from(self.conversation_id, msgs[-1].id)
        return self._reply(cancel)

    def edit(self, message_id: int, text: str, cancel: threading.Event | None = None) -> Reply:
        """Change a user message; every later message is replaced by a new reply."""
        msg = self.store.get_message(message_id)
        if msg.conversation_id != self.conversation_id or msg.role != USER:
            raise InvalidInputError("Only your own messages in this conversation can be edited.")
        if not text.strip():
            raise InvalidInputError("The message is empty.")
        later = [m for m in self.messages() if m.id > message_id]
        if later:
            self.store.delete_messages_from(self.conversation_id, later[0].id)
        self.store.update_message(message_id, content=text, tokens=len(self.runtime.tokenize(text)))
        return self._reply(cancel)

    def continue_reply(self, cancel: threading.Event | None = None) -> Reply:
        """Extend the last reply (after it stopped for length, or was cancelled)."""
        msgs = self.messages()
        if not msgs or msgs[-1].role != ASSISTANT:
            raise InvalidInputError("There is no reply to continue.")
        return self._reply(cancel, continue_message=msgs[-1])

    def record_summary(self, name: str, text: str, result) -> StoredMessage:
        """Put a document summary into the conversation so follow-up questions can use it.

        The document is kept (its ranges index into it); the reply's stats carry the summary's
        points with their source ranges and the document id, for 'show the source passage'."""
        document_id = self.store.add_document(self.conversation_id, name, text)
        tokens = result.source_tokens
        note = " (partial: cancelled)" if result.partial else ""
        self.store.add_message(
            self.conversation_id, USER, f"Summarize the document “{name}” ({tokens} tokens)."
        )
        summary = result.to_json()
        stats: dict = {"summary": {**summary, "document_id": document_id, "document": name}}
        report = self._preview()  # the window before the summary, as for a reply
        if report is not None:
            stats["context"] = report.to_dict()
        return self.store.add_message(
            self.conversation_id,
            ASSISTANT,
            result.summary + note,
            status="cancelled" if result.partial else "complete",
            tokens=len(self.runtime.tokenize(result.summary)),
            stats=stats,
        )

    # -- the window ------------------------------------------------------------------------
    def plan(self) -> Window:
        """The window the next reply would use (running the summarizer if the policy asks)."""
        history, conv = self._history()
        ids = [m.id for m in history]
        msgs = [Message(m.role, m.content) for m in history]
        start = _index_of(ids, conv.window_start_id)
        upto = _index_of(ids, conv.summary_upto_id)
        summary = conv.summary
        for _ in range(4):
            window = self._fit(msgs, conv, start, summary, upto)
            pending = window.pending_summary
            if Policy.parse(conv.policy) is not Policy.SUMMARIZE or pending is None:
                break
            summary = self._summarize(summary, msgs[pending[0] : pending[1]])
            start = upto = window.start
            self.store.update_conversation(
                self.conversation_id,
                summary=summary,
                summary_upto_id=ids[upto] if upto < len(ids) else None,
            )
        if ids and window.start < len(ids):
            self.store.update_conversation(self.conversation_id, window_start_id=ids[window.start])
        self.last_window = window
        return window

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

    def _report(self, window: Window, history: Sequence[StoredMessage]) -> ContextReport:
        return ContextReport(
            n_ctx=window.n_ctx,
            used=window.used,
            reserve=window.reserve,
            dropped_messages=window.dropped,
            summarized_messages=window.summarized,
            system_kept=window.system_kept,
            truncated_message=window.truncated,
            first_visible_message_id=history[window.start].id if history else None,
        )

    def _preview(self) -> ContextReport | None:
        """The window as it stands, without summarizing or moving anything (None if full)."""
        history, conv = self._history()
        ids = [m.id for m in history]
        msgs = [Message(m.role, m.content) for m in history]
        start = _index_of(ids, conv.window_start_id)
        upto = _index_of(ids, conv.summary_upto_id)
        try:
            window = self._fit(msgs, conv, start, conv.summary, upto)
        except AssistantError:
            return None
        return self._report(window, history)

    def prompt_text(self) -> str:
        """Exactly what the model saw for the last reply (templated), for 'what the model sees'."""
        window = self.last_window or self.plan()
        return self.runtime.render(window.messages)

    def _history(self) -> tuple[list[StoredMessage], Conversation]:
        conv = self.conversation
        return [m for m in self.messages() if m.role != SYSTEM], conv

    def _summarize(self, previous: str, leaving: Sequence[Message]) -> str:
        rt = self.runtime
        max_tokens = max(64, min(256, rt.n_ctx // 8))
        words = int(max_tokens * 0.6)
        transcript = "\n\n".join(f"{m.role.title()}: {m.content}" for m in leaving)
        head = f"Previous summary:\n{previous or '(none)'}\n\nNew messages:\n"

        def prompt(body: str) -> list[Message]:
            return [
                Message(SYSTEM, SUMMARY_INSTRUCTIONS.format(words=words)),
                Message(USER, head + body),
            ]

        room = rt.n_ctx - max_tokens - rt.count_prompt(prompt(""))
        tokens = rt.tokenize(transcript)
        if len(tokens) > room:  # keep both ends of what leaves; the middle is the least recent news
            keep = max(room - 16, 0)
            transcript = (
                rt.detokenize(tokens[: keep // 2])
                + "\n[…]\n"
                + rt.detokenize(tokens[len(tokens) - keep // 2 :])
            )
        sampling = SamplingOptions(temperature=0.2, max_tokens=max_tokens, seed=0)
        text = rt.complete(prompt(transcript), sampling).strip()
        return text or previous

    def _reply(
        self, cancel: threading.Event | None, continue_message: StoredMessage | None = None
    ) -> Reply:
        before = self.conversation
        window = self.plan()
        history, _ = self._history()
        previous_hidden = _index_of([m.id for m in history], before.window_start_id)
        report = self._report(window, history)
        left = window.start - previous_hidden
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
        stream = self.runtime.stream(
            self.runtime.prompt_tokens(window.messages), self.sampling, cancel
        )
        if continue_message is None:
            stored = self.store.add_message(self.conversation_id, ASSISTANT, "", status="streaming")
            prefix = ""
        else:
            stored = continue_message
            prefix = continue_message.content
            self.store.update_message(stored.id, status="streaming")
        return Reply(self, stream, stored.id, prefix, report, notice)


class Reply(PieceStream):
    """A streaming reply: iterate for text pieces; it is saved as it grows and when it ends."""

    def __init__(
        self,
        session: ChatSession,
        stream: ReplyStream,
        message_id: int,
        prefix: str,
        context: ContextReport,
        notice: str,
    ):
        self.session = session
        self.stream = stream
        self.message_id = message_id
        self.prefix = prefix
        self.context = context
        self.notice = notice
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
        status = "error"
        try:
            for piece in self.stream:
                now = time.monotonic()
                if now - last_save >= self.session.save_interval:
                    store.update_message(self.message_id, content=self.text)
                    last_save = now
                yield piece
            status = {"stop": "complete"}.get(self.stream.finish_reason or "", "")
            status = status or self.stream.finish_reason or "complete"
        except (GeneratorExit, KeyboardInterrupt):
            self.stream.cancel()
            status = "cancelled"
            raise
        except AssistantError:
            status = "error"
            raise
        finally:
            self.stream.close()
            stats = self.stream.stats or ReplyStats(finish_reason="error")
            if status == "cancelled" and stats.finish_reason != "cancelled":
                stats = replace(stats, finish_reason="cancelled")
            store.update_message(
                self.message_id,
                content=self.text,
                status=status,
                tokens=stats.completion_tokens,
                stats={**stats.to_dict(), "context": self.context.to_dict()},
            )
            notice = self.notice
            if stats.finish_reason == "length":
                why = (
                    "the end of the context window"
                    if self.stream.context_full
                    else f"the {self.stream.sampling.max_tokens}-token reply limit"
                )
                notice = (notice + " " if notice else "") + (
                    f"The reply stopped at {why}; continue it to go on."
                )
            self.result = ReplyResult(self.message_id, self.text, stats, self.context, notice)


def _index_of(ids: Sequence[int], message_id: int | None) -> int:
    """History index of the first message with id >= message_id (0 when unset)."""
    if message_id is None:
        return 0
    for i, mid in enumerate(ids):
        if mid >= message_id:
            return i
    return len(ids)
