"""The window's right-hand column: title, context policy and meter, notices, the messages, the
summary progress bar and the message box. Widgets and their look only; the window and its
controllers decide what they show."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from assistant.types import Policy

from .banner import Banner
from .chat_view import ChatView
from .context_meter import ContextMeter
from .input_box import InputBox
from .settings_dialog import POLICY_NAMES

NoticeActions = Sequence[tuple[str, Callable[[], object]]]


class ChatPanel(QWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        column = QVBoxLayout(self)
        column.setContentsMargins(4, 8, 8, 8)
        column.addLayout(self._build_header())
        self.banner = Banner()
        column.addWidget(self.banner)
        self.chat = ChatView()
        column.addWidget(self.chat, 1)
        column.addWidget(self._build_summary_bar())
        column.addLayout(self._build_input())

    def _build_header(self) -> QHBoxLayout:
        header = QHBoxLayout()
        self.title_label = QLabel()
        self.title_label.setObjectName("conversationTitle")
        self.title_label.setAccessibleName("Conversation title")
        font = self.title_label.font()
        font.setBold(True)
        self.title_label.setFont(font)
        self.policy_combo = QComboBox()
        self.policy_combo.setAccessibleName("Context policy for this conversation")
        self.policy_combo.setToolTip(
            "What happens when this conversation outgrows the context window"
        )
        for policy in Policy:
            self.policy_combo.addItem(POLICY_NAMES[policy.value], policy.value)
        self.meter = ContextMeter()
        self.prompt_button = QPushButton("What the model sees")
        self.prompt_button.setAccessibleName("What the model sees")
        self.prompt_button.setToolTip("Show the exact prompt of the last reply (Ctrl+Shift+P)")
        header.addWidget(self.title_label, 1)
        header.addWidget(QLabel("When full:"))
        header.addWidget(self.policy_combo)
        header.addWidget(self.meter)
        header.addWidget(self.prompt_button)
        return header

    def _build_summary_bar(self) -> QWidget:
        """Shown while a document is summarized: model calls done, ETA, and Cancel (Esc)."""
        self.summary_bar = QWidget()
        row = QHBoxLayout(self.summary_bar)
        row.setContentsMargins(0, 0, 0, 0)
        self.summary_label = QLabel()
        self.summary_label.setAccessibleName("Summary progress")
        self.summary_progress = QProgressBar()
        self.summary_progress.setAccessibleName("Summary progress bar")
        self.summary_cancel = QPushButton("Cancel")
        self.summary_cancel.setAccessibleName("Cancel summary")
        self.summary_cancel.setToolTip("Stop and keep the summary of what was read so far (Esc)")
        row.addWidget(self.summary_label, 1)
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
    def show_conversation(self, title: str, policy: str) -> None:
        self.title_label.setText(title)
        index = self.policy_combo.findData(policy)
        if index >= 0:
            self.policy_combo.setCurrentIndex(index)

    def set_replying(self, replying: bool) -> None:
        """Send turns into Stop while a reply or summary owns the model."""
        self.send_button.setText("Stop" if replying else "Send")
        self.send_button.setAccessibleName("Stop reply" if replying else "Send message")
        self.send_button.setToolTip("Stop the reply (Esc)" if replying else "Send (Enter)")
        self.chat.set_idle(not replying)

    def show_error(self, message: str, actions: NoticeActions = ()) -> None:
        self.banner.show_message(message, "error", actions)

    def show_info(self, message: str, actions: NoticeActions = ()) -> None:
        self.banner.show_message(message, "info", actions)

    def show_summary_progress(self, text: str, done: int = 0, total: int = 0) -> None:
        """The progress bar under the messages (total 0: busy, not counted yet)."""
        self.summary_label.setText(text)
        self.summary_progress.setRange(0, total)
        self.summary_progress.setValue(done)
        self.summary_bar.show()
