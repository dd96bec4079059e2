"""The window's right-hand column: the header (title, model, context policy and meter), notices,
the messages, the summary progress bar and the message box. Widgets and their look only; the
window and its controllers decide what they show.

Notices belong to what they are about: the model banner to the model (it stays whichever chat
is open), every other notice to its conversation (switching chats shows that chat's notice, a
new chat starts with none).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from .banner import Banner
from .chat_header import ChatHeader
from .chat_view import ChatView
from .documents_panel import DocumentsPanel
from .input_box import InputBox

NoticeActions = Sequence[tuple[str, Callable[[], object]]]
Notice = tuple[str, str, NoticeActions]  # text, kind ("error" or "info"), actions


class ChatPanel(QWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        # never wider than the window allows: messages wrap, the header rearranges itself
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setMinimumWidth(300)
        column = QVBoxLayout(self)
        column.setContentsMargins(4, 8, 8, 8)
        self.header = header = ChatHeader()
        column.addWidget(header)
        self.title_label = header.title_label
        self.model_picker = header.model_picker
        self.policy_combo = header.policy_combo
        self.meter = header.meter
        self.prompt_button = header.prompt_button
        self.model_banner = Banner()
        self.model_banner.setAccessibleName("Model notice")
        column.addWidget(self.model_banner)
        self.banner = Banner()
        self.banner.dismissed.connect(self._forget_notice)
        column.addWidget(self.banner)
        self.documents = DocumentsPanel()  # the chat's documents (hidden while there are none)
        column.addWidget(self.documents)
        self.chat = ChatView()
        column.addWidget(self.chat, 1)
        column.addWidget(self._build_summary_bar())
        column.addLayout(self._build_input())
        self._notices: dict[int | None, Notice] = {}
        self.shown_chat: int | None = None

    def _build_summary_bar(self) -> QWidget:
        """Shown while a document is summarized: model calls done, ETA, and Cancel (Esc)."""
        self.summary_bar = QWidget()
        row = QHBoxLayout(self.summary_bar)
        row.setContentsMargins(0, 0, 0, 0)
        self.summary_label = QLabel()
        self.summary_label.setAccessibleName("Summary progress")
        self.summary_label.setWordWrap(True)
        self.summary_label.setMinimumWidth(1)
        self.summary_progress = QProgressBar()
        self.summary_progress.setAccessibleName("Summary progress bar")
        self.summary_cancel = QPushButton("Cancel")
        self.summary_cancel.setAccessibleName("Cancel summary")
        self.summary_cancel.setToolTip("Stop and keep the summary of what was read so far (Esc)")
        row.addWidget(self.summary_label, 2)
        row.addWidget(self.summary_progress, 1)
        row.addWidget(self.summary_cancel)
        self.summary_bar.hide()
        return self.summary_bar

    def _build_input(self) -> QHBoxLayout:
        row = QHBoxLayout()
        self.input = InputBox()
        self.send_button = QPushButton("Send")
        self.send_button.setAccessibleName("Send message")
        self.send_button.setToolTip("Send (Enter)")
        row.addWidget(self.input, 1)
        row.addWidget(self.send_button, 0, Qt.AlignmentFlag.AlignBottom)
        return row

    # -- what it shows ---------------------------------------------------------------------
    def show_conversation(self, conversation_id: int | None, title: str, policy: str) -> None:
        """Switch to this conversation's title, policy and notices."""
        if conversation_id is None:
            self._notices.pop(None, None)  # a new chat starts with nothing to say
        self.title_label.setText(title)
        index = self.policy_combo.findData(policy)
        if index >= 0:
            self.policy_combo.setCurrentIndex(index)
        self.shown_chat = conversation_id
        self.documents.show_conversation(conversation_id)
        notice = self._notices.get(conversation_id)
        if notice is None:
            self.banner.clear()
        else:
            self.banner.show_message(*notice)

    def chat_created(self, conversation_id: int) -> None:
        """The new chat on screen got its row: its notices go with it."""
        if self.shown_chat is None:
            self.shown_chat = conversation_id
            if None in self._notices:
                self._notices[conversation_id] = self._notices.pop(None)

    def set_replying(self, replying: bool) -> None:
        """Send turns into Stop while this chat's reply or summary owns the model or waits
        for it."""
        self.send_button.setText("Stop" if replying else "Send")
        self.send_button.setAccessibleName("Stop reply" if replying else "Send message")
        self.send_button.setToolTip("Stop the reply (Esc)" if replying else "Send (Enter)")
        self.chat.set_idle(not replying)

    def notify(
        self, conversation_id: int | None, text: str, kind: str, actions: NoticeActions = ()
    ) -> None:
        """A notice about one conversation: shown now if it is open, else when it is."""
        self._notices[conversation_id] = (text, kind, tuple(actions))
        if conversation_id == self.shown_chat:
            self.banner.show_message(text, kind, actions)

    def notice_of(self, conversation_id: int | None) -> str:
        notice = self._notices.get(conversation_id)
        return notice[0] if notice else ""

    def dismiss_notice(self) -> None:
        self.banner.dismiss()

    def show_error(self, message: str, actions: NoticeActions = ()) -> None:
        self.notify(self.shown_chat, message, "error", actions)

    def show_info(self, message: str, actions: NoticeActions = ()) -> None:
        self.notify(self.shown_chat, message, "info", actions)

    def _forget_notice(self) -> None:
        self._notices.pop(self.shown_chat, None)

    def show_summary_progress(self, text: str, done: int = 0, total: int = 0) -> None:
        """The progress bar under the messages (total 0: busy, not counted yet)."""
        self.summary_label.setText(text)
        self.summary_progress.setRange(0, total)
        self.summary_progress.setValue(done)
        self.summary_bar.show()
