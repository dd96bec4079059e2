"""Replies: send, regenerate, edit, continue and stop, and the worker's reply signals.

Each reply asked for is a `Pending` until its job ends: its messages live in memory and are
drawn whenever their chat is open. Switching chats does not stop a reply: it goes on in the
background, and a reply asked for in another chat waits its turn (the model writes one at a
time), its bubble saying so. Reopening the chat puts the live messages back in place of what
the store had (`reattach`).

The user's message is shown at once and gets its stored id from `reply_started`; the reply's
text grows from `piece`, says what it is waiting for from `status` before its first token, and
takes its final text, status and stats from `reply_done`. Regenerating and editing keep the
earlier version (‹ 1/2 ›). A send refused before its message was stored puts the text back into
the message box (or keeps it for when its chat is opened again).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, QTimer
from PySide6.QtGui import QTextCursor

from .chat_panel import ChatPanel
from .host import ModelHost
from .jobs import Failure, LoadJob, ReplyJob
from .open_chat import OpenChat, ViewMessage
from .sidebar import Sidebar

FLUSH_MS = 40  # streamed text is drawn at most this often: smooth, and cheap for the GUI thread
BUSY_TEXT = "A reply is still being written in this chat: wait, or stop it (Esc)."


@dataclass(eq=False)
class Pending:
    job: ReplyJob
    user: ViewMessage | None  # the message a send or an edit stores
    reply: ViewMessage  # the reply being written (the same message when continuing)
    replaced: ViewMessage | None = None  # the version it replaces (regenerate, edit)
    started: bool = False  # the worker reported the stored ids
    queued: str = ""  # the wait shown while it waited its turn ("" once it runs)

    @property
    def conversation_id(self) -> int:
        return self.job.conversation_id

    def reattach(self, messages: list[ViewMessage]) -> list[ViewMessage]:
        """`messages` as read from the store, with this reply's live messages in place."""
        if self.started:
            ids = {m.id: i for i, m in enumerate(messages)}
            for live in (self.user, self.reply):
                if live is not None and live.id in ids:
                    index = ids[live.id]
                    live.hidden = messages[index].hidden
                    messages[index] = live
            if not any(m is self.reply for m in messages):
                messages.append(self.reply)
            return messages
        old = self.replaced
        if old is not None and old.id is not None:
            cut = next((i for i, m in enumerate(messages) if m.id == old.id), None)
            if cut is not None:
                messages = messages[:cut]
        if self.job.kind == "continue":
            return [self.reply if m.id == self.reply.id else m for m in messages]
        return [*messages, *(m for m in (self.user, self.reply) if m is not None)]


class ReplyController(QObject):
    def __init__(
        self,
        host: ModelHost,
        state: OpenChat,
        panel: ChatPanel,
        sidebar: Sidebar,
        *,
        ensure_conversation: Callable[[], int | None],
        reload: Callable[[], None],
        offer_summary: Callable[[str], object],
        parent: QObject | None = None,
    ):
        super().__init__(parent)
        self.host = host
        self.state = state
        self.panel = panel
        self.chat = panel.chat
        self.sidebar = sidebar
        self._ensure_conversation = ensure_conversation
        self._reload = reload
        self._offer_summary = offer_summary
        self.pending: list[Pending] = []
        self.unsent: dict[int, str] = {}  # refused while their chat was not open
        self._flush_timer = QTimer(self, singleShot=True, interval=FLUSH_MS)
        self._flush_timer.timeout.connect(self._flush)
        self._dirty: list[ViewMessage] = []
        host.reply_started.connect(self._on_started)
        host.status.connect(self._on_status)
        host.piece.connect(self._on_piece)
        host.reply_done.connect(self._on_done)
        host.failed.connect(self._on_failed)
        host.job_ended.connect(self._on_job_ended)
        host.queue_changed.connect(self.update_waits)
        host.job_started.connect(lambda _job: self.update_waits())

    @property
    def job(self) -> ReplyJob | None:
        """The open chat's reply job, if one is queued or running."""
        return next((p.job for p in self.pending if self._is_open(p)), None)

    # -- intents ---------------------------------------------------------------------------
    def send(self) -> None:
        """Send what is in the message box (Enter)."""
        box = self.panel.input
        text = box.toPlainText()
        if not text.strip() or self.host.replying_in(self.state.id):
            return
        if self.send_text(text):
            box.clear()

    def send_text(self, text: str) -> bool:
        if self.host.replying_in(self.state.id):
            self.panel.show_info(BUSY_TEXT)
            return False
        conversation_id = self._ensure_conversation()
        if conversation_id is None:
            return False
        self.panel.dismiss_notice()
        user = self.state.add("user", text)
        reply = self.state.add("assistant", status="streaming")
        self._begin(Pending(self.host.reply("send", conversation_id, text), user, reply))
        return True

    def regenerate(self) -> None:
        """Write the last reply again, keeping the old one as a version (or get one for a last
        message left without a reply)."""
        last = self.state.last()
        if not self._can_change(last):
            return
        reply = ViewMessage("assistant", status="streaming")
        replaced = last if last.role == "assistant" else None
        if replaced is not None:
            reply.versions = replaced.versions or (replaced.id,)
            self.state.messages[-1] = reply
        else:
            self.state.messages.append(reply)
        job = self.host.reply("regenerate", self.state.id)
        self._begin(Pending(job, None, reply, replaced))

    def continue_reply(self) -> None:
        last = self.state.last()
        if not self._can_change(last) or last.role != "assistant":
            return
        last.status = "streaming"
        self._begin(Pending(self.host.reply("continue", self.state.id), None, last))

    def edit(self, message_id: int, text: str) -> None:
        """Send a new version of one of the user's messages; the old one and what followed it
        stay stored as the other branch."""
        message = self.state.find(message_id)
        if not self._can_change(message):
            return
        user = ViewMessage("user", text, versions=message.versions or (message.id,))
        reply = ViewMessage("assistant", status="streaming")
        index = self.state.messages.index(message)
        self.state.messages[index:] = [user, reply]
        job = self.host.reply("edit", self.state.id, text, message_id)
        self._begin(Pending(job, user, reply, message))

    def stop(self) -> bool:
        return self.host.stop(self.state.id)

    def _can_change(self, message: ViewMessage | None) -> bool:
        return not (
            self.host.replying_in(self.state.id)
            or self.state.id is None
            or message is None
            or message.id is None
        )

    def _begin(self, pending: Pending) -> None:
        self.pending.append(pending)
        self.update_waits()
        self.chat.show_messages(self.state.messages)
        self.chat.scroll_to_bottom()

    # -- the open chat -----------------------------------------------------------------------
    def reattach(self) -> None:
        """The open chat was just read from the store: put its live replies back in place."""
        messages = self.state.messages
        for pending in self.pending:
            if self._is_open(pending, loaded=True):
                messages = pending.reattach(messages)
        self.state.messages = messages
        text = self.unsent.pop(self.state.id, None) if self.state.id is not None else None
        if text:
            self._give_back(text)

    def update_waits(self) -> None:
        """What each reply not started yet is waiting for: the model to load, or another chat's
        reply (the model writes one at a time)."""
        for pending in self.pending:
            if pending.started:
                continue
            reply = pending.reply
            ahead = self.host.ahead_of(pending.job)
            if any(isinstance(job, LoadJob) for job in ahead):
                wait = "Loading the model…"
            else:
                others = [
                    job
                    for job in self.host.queue()
                    if job in ahead and job.conversation_id != pending.conversation_id
                ]
                other = self.sidebar.title_of(others[0].conversation_id) if others else ""
                wait = f"Waiting for the reply in “{other}” to finish…" if others else ""
            if not wait and reply.wait != pending.queued:
                continue  # its turn came: what the worker says now stands
            if wait != reply.wait:
                reply.wait, reply.progress = wait, None
                self._redraw(reply)
            pending.queued = wait

    # -- the worker's signals --------------------------------------------------------------
    def _find(self, conversation_id: int | None = None, reply_id: int | None = None) -> Any:
        for pending in self.pending:
            if reply_id is not None and pending.reply.id == reply_id and pending.started:
                return pending
            if conversation_id is not None and pending.conversation_id == conversation_id:
                if pending.job is self.host.current:
                    return pending
        return None

    def _on_started(
        self, conversation_id: int, user_id: int, reply_id: int, context: Any, title: str
    ) -> None:
        self.sidebar.touch(conversation_id, title)  # moved to the top, renamed by a first send
        pending = self._find(conversation_id)
        if pending is None:
            return
        pending.started = True
        if pending.user is not None and user_id:
            pending.user.id = user_id
            if pending.replaced is not None:  # an edit: the new version of the message
                pending.user.versions = (*pending.user.versions, user_id)
        reply = pending.reply
        reply.id = reply_id
        reply.status = "streaming"
        if pending.job.kind == "regenerate" and pending.replaced is not None:
            reply.versions = (*reply.versions, reply_id)
        if not self._is_open(pending):
            return
        self.state.mark_window(context.first_visible_message_id, context.summarized_messages)
        if title != self.state.title:
            self.state.update(title=title)
            self.panel.title_label.setText(title)
        self.chat.show_messages(self.state.messages)
        self.panel.meter.set_report(context.to_dict())

    def _on_status(self, conversation_id: int, status: Any) -> None:
        pending = self._find(conversation_id)
        if pending is not None and not pending.reply.content:
            pending.reply.wait = status.text
            pending.reply.progress = (status.done, status.total)
            self._redraw(pending.reply)

    def _on_piece(self, message_id: int, text: str) -> None:
        pending = self._find(reply_id=message_id)
        if pending is None:
            return
        reply = pending.reply
        reply.content += text
        reply.wait, reply.progress = "", None
        self._redraw(reply)

    def _redraw(self, message: ViewMessage) -> None:
        if any(m is message for m in self.state.messages):
            if not any(m is message for m in self._dirty):
                self._dirty.append(message)
            if not self._flush_timer.isActive():
                self._flush_timer.start()

    def _flush(self) -> None:
        dirty, self._dirty = self._dirty, []
        for message in dirty:
            self.chat.update_message(message)

    def _on_done(self, conversation_id: int, result: Any) -> None:
        pending = self._find(reply_id=result.message_id)
        if pending is None:
            return
        stats = result.stats
        reply = pending.reply
        reply.content = result.text
        reply.status = result.status
        reply.stats = result.stored_stats()  # with the passages it was given, for the chips
        reply.tokens = stats.completion_tokens
        reply.wait, reply.progress = "", None
        if self._is_open(pending):
            self._dirty = [m for m in self._dirty if m is not reply]
            self.chat.update_message(reply)
            self.panel.meter.set_report(result.context.to_dict(), stats.completion_tokens)
        if result.notice:
            actions = [("Continue", self.continue_reply)] if result.status == "length" else []
            self.panel.notify(conversation_id, result.notice, "info", actions)

    def _on_failed(self, job: object, failure: Failure) -> None:
        pending = next((p for p in self.pending if p.job is job), None)
        if not isinstance(job, ReplyJob) or pending is None:
            return
        cid, is_open = job.conversation_id, self._is_open(pending)
        if not pending.started:  # its placeholders go; a reload must not bring them back
            self.pending.remove(pending)
        actions: list[tuple[str, Callable[[], object]]] = []
        if failure.stored or pending.started:
            self.sidebar.refresh()  # a first message may have named the chat
            if is_open:
                self._reload()
        elif job.kind == "send":  # refused before the message was stored: nothing is lost
            if is_open:
                self.state.remove(*(m for m in (pending.user, pending.reply) if m is not None))
                self.chat.show_messages(self.state.messages)
                self._give_back(job.text)
            else:
                self.unsent[cid] = job.text
            if failure.kind == "MessageTooLongError":
                text = job.text
                actions.append(("Summarize it instead", lambda: self._offer_summary(text)))
        elif is_open:  # what the refused job left in the store is the truth: read it once
            self._reload()
        self.panel.notify(cid, failure.message, "error", actions)

    def _on_job_ended(self, job: object) -> None:
        if not isinstance(job, ReplyJob):
            return
        self.pending = [p for p in self.pending if p.job is not job]
        self.update_waits()

    # -- helpers ---------------------------------------------------------------------------
    def _is_open(self, pending: Pending, loaded: bool = False) -> bool:
        """Whether the pending reply's chat is the one on screen (`loaded`: just read, so its
        live messages are not in the list yet)."""
        if pending.conversation_id != self.state.id:
            return False
        return loaded or any(m is pending.reply for m in self.state.messages)

    def _give_back(self, text: str) -> None:
        """Put an unsent message back into the box (before anything typed since)."""
        box = self.panel.input
        typed = box.toPlainText()
        box.setPlainText(f"{text}\n{typed}" if typed.strip() else text)
        box.moveCursor(QTextCursor.MoveOperation.End)
