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
from collections.abc import Callable, Sequence

from assistant.conversation import attachments
from assistant.conversation.reply import Plan, Reply, ReplyResult  # noqa: F401 (re-exported)
from assistant.conversation.retrieval import fit_with_documents
from assistant.conversation.rolling_summary import fold_into_summary
from assistant.conversation.store import Conversation, Store, StoredMessage
from assistant.conversation.titles import NEW_TITLE, title_from
from assistant.conversation.window import PromptCounter, Window, fit_window
from assistant.engine.runtime import ModelRuntime
from assistant.errors import ContextOverflowError, InvalidInputError
from assistant.types import (
    ASSISTANT,
    SYSTEM,
    USER,
    ContextReport,
    Message,
    Policy,
    SamplingOptions,
    WaitStatus,
)

SHIFT_SLIDE = 0.0625  # of the budget: the margin a cheap slide leaves besides the reply
READ_SLIDE = 0.33  # when a slide means summarizing or reading the window again


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
        slide: float | None = None,
        exact_slide: bool = False,
    ):
        self.runtime = runtime
        self.store = store
        self.reserve_override = reserve
        self.truncate_oversize = truncate_oversize
        self.save_interval = save_interval
        self.slide_override = slide
        # re-read the window after a slide instead of shifting the cache (see README)
        self.exact_slide = exact_slide
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
        self._begin(None)
        self._end()

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

    @property
    def cache_label(self) -> str:
        """Whose KV cache the runtime holds after a reply of this conversation (saved states
        are found again under this name, in this process or the next)."""
        return f"{self.store.path.resolve()}#{self.conversation_id}"

    def slide(self, policy: Policy) -> float:
        """How much of the budget a slide frees. Dropping turns only shifts the KV cache, so the
        smallest block that leaves room for the reply keeps the most in view; summarizing runs
        the model and re-reading is slow, so those free a larger block less often."""
        if self.slide_override is not None:
            return self.slide_override
        if policy is Policy.DROP and not self.exact_slide:
            return SHIFT_SLIDE
        return READ_SLIDE

    def reserve(self) -> int:
        if self.reserve_override is not None:
            return self.reserve_override
        return max(16, min(self.sampling.max_tokens or 512, self.runtime.n_ctx // 4))

    # -- intents ---------------------------------------------------------------------------
    def send(
        self,
        text: str,
        cancel: threading.Event | None = None,
        on_status: Callable[[WaitStatus], None] | None = None,
    ) -> Reply:
        """Commit the user's message, then return the streaming reply.

        A message the window refuses (too long, or a full window under the 'stop' policy)
        raises before anything is stored, so the caller can hand the text back to the user."""
        self._begin(on_status)
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

    def regenerate(
        self,
        cancel: threading.Event | None = None,
        on_status: Callable[[WaitStatus], None] | None = None,
    ) -> Reply:
        """Write the last reply again; the old one stays stored as an earlier version."""
        self._begin(on_status)
        msgs = self.messages()
        if not msgs:
            raise InvalidInputError("There is nothing to regenerate yet.")
        if msgs[-1].role != ASSISTANT:
            return self._reply(cancel)
        kept = [(i, m) for i, m in self._history() if i != msgs[-1].id]
        self.preview(kept)  # a window or template that fails keeps the old reply
        return self._new_version(msgs[-1].id, lambda: self._reply(cancel))

    def edit(
        self,
        message_id: int,
        text: str,
        cancel: threading.Event | None = None,
        on_status: Callable[[WaitStatus], None] | None = None,
    ) -> Reply:
        """Send a new version of one of the user's messages; the old one and the messages
        after it stay stored as the other branch (the reply carries the new message's id).

        The edited conversation is checked against the window first: a refused edit changes
        nothing."""
        self._begin(on_status)
        msg = self.store.get_message(message_id)
        if msg.conversation_id != self.conversation_id or msg.role != USER:
            raise InvalidInputError("Only your own messages in this conversation can be edited.")
        if not text.strip():
            raise InvalidInputError("The message is empty.")
        kept = [(i, m) for i, m in self._history() if i is not None and i < message_id]
        self.preview(kept + [(None, Message(USER, text))])  # raises if refused
        tokens = len(self.runtime.tokenize(text))

        def reply() -> Reply:
            user = self.store.add_message(self.conversation_id, USER, text, tokens=tokens)
            return self._reply(cancel, user_message_id=user.id)

        return self._new_version(message_id, reply)

    def _new_version(self, message_id: int, write: Callable[[], Reply]) -> Reply:
        """Hide `message_id` from the shown path, then `write` its new version; if writing
        fails before a reply exists, the old version is shown again."""
        self.store.hide_version(message_id)
        try:
            return write()
        except BaseException:
            if not any(m.id > message_id for m in self.messages()):
                self.store.select_version(message_id)
            raise

    def continue_reply(
        self,
        cancel: threading.Event | None = None,
        on_status: Callable[[WaitStatus], None] | None = None,
    ) -> Reply:
        """Extend the last reply (after it stopped for length, or was cancelled)."""
        self._begin(on_status)
        msgs = self.messages()
        if not msgs or msgs[-1].role != ASSISTANT:
            raise InvalidInputError("There is no reply to continue.")
        return self._reply(cancel, continue_message=msgs[-1])

    def record_summary(self, name: str, text: str, result) -> tuple[StoredMessage, StoredMessage]:
        """Put a document summary into the conversation, the document attached (indexed) so
        follow-up questions are answered from it; returns the stored request and the summary
        (see `attachments.record_summary`)."""
        return attachments.record_summary(
            self.store,
            self.runtime,
            self.conversation_id,
            name,
            text,
            result,
            self.preview_report(),
            retitle=True,
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
        self._end()  # a preview on its own, never an intent's leftovers
        try:
            return self.preview().report
        except ContextOverflowError:
            return None

    def prompt_text(self) -> str:
        """What the model sees next (templated), for 'what the model sees': a pure preview."""
        self._end()
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
            leaving = msgs[pending[0] : pending[1]]
            n = len(leaving)
            self._status(
                WaitStatus(
                    "summarizing", 0, n, f"Summarizing {n} older message{'s' if n != 1 else ''}…"
                )
            )
            started = time.perf_counter()
            folded = fold_into_summary(self.runtime, summary, leaving, cancel)
            self._summary_s += time.perf_counter() - started
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

    # -- what the user waits for ---------------------------------------------------------------
    def _begin(self, on_status: Callable[[WaitStatus], None] | None) -> None:
        self._on_status = on_status
        self._sent_at = time.perf_counter()
        self._summary_s = 0.0
        # within one intent the check (preview) and the commit fit the same window: once
        self._counter = PromptCounter(self.runtime)
        self._fits: dict[tuple, Window] | None = {}

    def _end(self) -> None:
        """Nothing fitted during an intent is reused after it (documents, settings move)."""
        self._counter = None
        self._fits = None

    def _status(self, status: WaitStatus) -> None:
        if self._on_status is not None:
            self._on_status(status)

    def _reading(self, done: int, total: int) -> None:
        self._status(
            WaitStatus("reading", done, total, f"Reading {total:,} tokens of this conversation…")
        )

    def _fit(
        self, msgs: list[Message], conv: Conversation, start: int, summary: str, upto: int
    ) -> Window:
        """The window with the conversation's documents in it (see `retrieval`)."""
        key = (tuple(msgs), conv.system_prompt, conv.policy, start, summary, upto)
        if self._fits is not None and key in self._fits:
            return self._fits[key]
        reserve = self.reserve()
        counter = self._counter or PromptCounter(self.runtime)

        def fit(block: str) -> Window:
            return fit_window(
                msgs,
                system=conv.system_prompt,
                counter=counter,
                n_ctx=self.runtime.n_ctx,
                reserve=reserve,
                policy=Policy.parse(conv.policy),
                start=start,
                summary=summary,
                summary_upto=upto,
                slide=self.slide(Policy.parse(conv.policy)),
                truncate_oversize=self.truncate_oversize,
                context_block=block,
            )

        window = fit_with_documents(fit, self.store, conv, msgs, counter, reserve, summary)
        if self._fits is not None:
            self._fits[key] = window
        return window

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
        counter = self._counter or PromptCounter(self.runtime)
        prompt = counter.prompt_tokens(plan.window.messages)  # counted while fitting
        self._end()
        stream = self.runtime.stream(
            prompt,
            self.sampling,
            cancel,
            on_progress=self._reading,
            label=self.cache_label,
            exact=self.exact_slide,
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
