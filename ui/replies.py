"""Replies: send, regenerate, edit, continue and stop, and the worker's reply signals.

The open chat is changed here in memory and redrawn; nothing is read back from the store while
a reply runs. The user's message is shown at once and gets its stored id from `reply_started`;
the reply's text grows from `piece` and takes its final text, status and stats from
`reply_done`. A send refused before its message was stored (no id reported) puts the text back
into the message box.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QTimer
from PySide6.QtGui import QTextCursor

from .chat_panel import ChatPanel
from .open_chat import OpenChat, ViewMessage
from .sidebar import Sidebar
from .worker import ModelHost, ReplyJob

FLUSH_MS = 40  # streamed text is drawn at most this often: smooth, and cheap for the GUI thread
BUSY_TEXT = "A reply is still being written: wait, or stop it (Esc)."


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
        self.job: ReplyJob | None = None
        self._user: ViewMessage | None = None  # the message a send or an edit stores
        self._reply: ViewMessage | None = None  # the reply being written
        self._started = False  # the worker reported the stored ids of `job`
        self._flush_timer = QTimer(self, singleShot=True, interval=FLUSH_MS)
        self._flush_timer.timeout.connect(self._flush)
        host.reply_started.connect(self._on_started)
        host.piece.connect(self._on_piece)
        host.reply_done.connect(self._on_done)
        host.failed.connect(self._on_failed)

    # -- intents ---------------------------------------------------------------------------
    def send(self) -> None:
        """Send what is in the message box (Enter)."""
        box = self.panel.input
        text = box.toPlainText()
        if not text.strip() or self.host.replying:
            return
        if self.send_text(text):
            box.clear()

    def send_text(self, text: str) -> bool:
        if self.host.replying:
            self.panel.show_info(BUSY_TEXT)
            return False
        conversation_id = self._ensure_conversation()
        if conversation_id is None:
            return False
        self.panel.banner.dismiss()
        user = self.state.add("user", text)
        reply = self.state.add("assistant", status="streaming")
        self._begin(self.host.reply("send", conversation_id, text), user, reply)
        return True

    def regenerate(self) -> None:
        """Write the last reply again (or get one for a last message left without a reply)."""
        last = self.state.last()
        if self.host.replying or self.state.id is None or last is None or last.id is None:
            return
        if last.role == "assistant":
            self.state.remove(last)  # the reply being replaced, this very message
        reply = self.state.add("assistant", status="streaming")
        self._begin(self.host.reply("regenerate", self.state.id), None, reply)

    def continue_reply(self) -> None:
        last = self.state.last()
        if self.host.replying or self.state.id is None or last is None or last.id is None:
            return
        if last.role != "assistant":
            return
        last.status = "streaming"
        self._begin(self.host.reply("continue", self.state.id), None, last)

    def edit(self, message_id: int, text: str) -> None:
        """Replace one of the user's messages; every later turn is replaced by a new reply."""
        message = self.state.find(message_id)
        if self.host.replying or self.state.id is None or message is None:
            return
        message.content = text
        self.state.remove_after(message)
        reply = self.state.add("assistant", status="streaming")
        self._begin(self.host.reply("edit", self.state.id, text, message_id), message, reply)

    def stop(self) -> bool:
        return self.host.stop()

    def _begin(self, job: ReplyJob, user: ViewMessage | None, reply: ViewMessage) -> None:
        self.job, self._user, self._reply, self._started = job, user, reply, False
        self.chat.show_messages(self.state.messages)
        self.chat.scroll_to_bottom()

    # -- the worker's signals --------------------------------------------------------------
    def _on_started(
        self, conversation_id: int, user_id: int, reply_id: int, context: Any, title: str
    ) -> None:
        self.sidebar.touch(conversation_id, title)  # moved to the top, renamed by a first send
        if not self._is_current(conversation_id) or self._reply is None:
            return
        self._started = True
        if self._user is not None and user_id:
            self._user.id = user_id
        self._reply.id = reply_id
        self._reply.status = "streaming"
        self.state.mark_window(context.first_visible_message_id, context.summarized_messages)
        if title != self.state.title:
            self.state.update(title=title)
            self.panel.title_label.setText(title)
        self.chat.show_messages(self.state.messages)
        self.panel.meter.set_report(context.to_dict())

    def _on_piece(self, message_id: int, text: str) -> None:
        reply = self._reply
        if reply is None or reply.id != message_id:
            return
        reply.content += text
        if not self._flush_timer.isActive():
            self._flush_timer.start()

    def _flush(self) -> None:
        if self._reply is not None:
            self.chat.update_message(self._reply)

    def _on_done(self, conversation_id: int, result: Any) -> None:
        reply = self._reply
        if not self._is_current(conversation_id) or reply is None:
            return
        if reply.id != result.message_id:
            return
        self._flush_timer.stop()
        stats = result.stats
        reply.content = result.text
        reply.status = result.status
        reply.stats = {**stats.to_dict(), "context": result.context.to_dict()}
        reply.tokens = stats.completion_tokens
        self.chat.update_message(reply)
        self.panel.meter.set_report(result.context.to_dict(), stats.completion_tokens)
        if result.notice:
            self.panel.show_info(result.notice)

    def _on_failed(self, job: object, message: str) -> None:
        if not isinstance(job, ReplyJob):
            return
        if job is self.job and not self._started and self._is_current(job.conversation_id):
            if job.kind == "send":  # refused before the message was stored: nothing is lost
                self.state.remove(*(m for m in (self._user, self._reply) if m is not None))
                self.chat.show_messages(self.state.messages)
                self._give_back(job.text)
            else:  # what the refused job left in the store is the truth: read it once
                self._reload()
            self._reply = self._user = None
        self.panel.show_error(message)

    def on_idle(self) -> None:
        """Every reply has ended and is saved."""
        self._flush_timer.stop()
        self.job = self._user = self._reply = None
        self._started = False

    # -- helpers ---------------------------------------------------------------------------
    def _is_current(self, conversation_id: int) -> bool:
        return conversation_id == self.state.id

    def _give_back(self, text: str) -> None:
        """Put an unsent message back into the box (before anything typed since)."""
        box = self.panel.input
        typed = box.toPlainText()
        box.setPlainText(f"{text}\n{typed}" if typed.strip() else text)
        box.moveCursor(QTextCursor.MoveOperation.End)
