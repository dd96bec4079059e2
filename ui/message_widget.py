"""One message in the chat view: who, the Markdown body, actions, and the reply statistics."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QGuiApplication, QKeyEvent
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from assistant.conversation.outcome import STATUS_TEXT

from .markdown_view import MarkdownView

ROLE_NAMES = {"user": "You", "assistant": "Assistant", "system": "System"}
HIDDEN_TEXT = {
    "dropped": "Not seen by the model: dropped to fit the context window",
    "summarized": "Not seen word for word: summarized to fit the context window",
}


def stats_line(stats: dict[str, Any] | None) -> str:
    """'48 tokens · 121.3 tokens/s · first token 0.08 s' from a reply's stored stats."""
    if not stats or "completion_tokens" not in stats:
        return ""
    parts = [f"{stats['completion_tokens']} tokens"]
    if stats.get("tokens_per_s"):
        parts.append(f"{stats['tokens_per_s']:.1f} tokens/s")
    if stats.get("ttft_s") is not None:
        parts.append(f"first token {stats['ttft_s']:.2f} s")
    if stats.get("prompt_tokens"):
        cached = stats.get("cached_tokens") or 0
        parts.append(f"prompt {stats['prompt_tokens']}" + (f" ({cached} cached)" if cached else ""))
    return " · ".join(parts)


class MessageEditor(QPlainTextEdit):
    """Inline editor for a user message: Ctrl+Enter resends, Esc cancels."""

    submitted = Signal()
    cancelled = Signal()

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        enter = event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter)
        if enter and not event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            self.submitted.emit()
        elif event.key() == Qt.Key.Key_Escape:
            self.cancelled.emit()
        else:
            super().keyPressEvent(event)


class MessageWidget(QFrame):
    edit_submitted = Signal(int, str)  # message id, new text
    regenerate_requested = Signal()
    sources_requested = Signal(object)  # the summary stats: points, ranges, document id

    def __init__(self, role: str, message_id: int | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.role = role
        self.message_id = message_id
        self.status = "complete"
        self.summary: dict[str, Any] | None = None
        self.hidden_reason: str | None = None
        self.setObjectName("userMessage" if role == "user" else "assistantMessage")
        self.setAccessibleName(f"Message from {ROLE_NAMES.get(role, role)}")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 6, 10, 6)
        layout.setSpacing(3)
        self._build_header(layout)
        self.hidden_label = QLabel()
        self.hidden_label.setObjectName("hiddenTag")
        self.hidden_label.hide()
        layout.addWidget(self.hidden_label)
        self.body = MarkdownView()
        layout.addWidget(self.body)
        self.editor_box = self._build_editor()
        self.editor_box.hide()
        layout.addWidget(self.editor_box)
        self.stats_label = QLabel()
        self.stats_label.setObjectName("statsLine")
        self.stats_label.setAccessibleName("Reply statistics")
        self.stats_label.hide()
        layout.addWidget(self.stats_label)

    def _build_header(self, parent: QVBoxLayout) -> None:
        # attached first, so the buttons are children before their visibility is set (a
        # parentless widget shown would open as a window of its own and steal the focus)
        header = QHBoxLayout()
        parent.addLayout(header)
        header.setSpacing(6)
        self.role_label = QLabel(f"<b>{ROLE_NAMES.get(self.role, self.role)}</b>")
        self.status_label = QLabel()
        self.status_label.setObjectName("statusTag")
        header.addWidget(self.role_label)
        header.addWidget(self.status_label)
        header.addStretch(1)
        self.edit_button = self._tool("Edit", "Edit and resend this message", self.start_edit)
        self.copy_button = self._tool("Copy", "Copy this message as Markdown", self.copy)
        self.regenerate_button = self._tool(
            "Regenerate", "Write this reply again (Ctrl+R)", self.regenerate_requested.emit
        )
        self.sources_button = self._tool(
            "Sources", "Show the source passage behind each point", self._request_sources
        )
        self.sources_button.setAccessibleName("Show summary sources")
        buttons = (self.sources_button, self.edit_button, self.copy_button, self.regenerate_button)
        for button in buttons:
            header.addWidget(button)
        self.edit_button.setVisible(self.role == "user")
        self.regenerate_button.hide()
        self.sources_button.hide()

    def _tool(self, text: str, tip: str, slot: Any) -> QToolButton:
        button = QToolButton()
        button.setText(text)
        button.setToolTip(tip)
        button.setAccessibleName(f"{text} message")
        button.setAutoRaise(True)
        button.clicked.connect(slot)
        return button

    def _build_editor(self) -> QWidget:
        box = QWidget()
        layout = QVBoxLayout(box)
        layout.setContentsMargins(0, 0, 0, 0)
        self.editor = MessageEditor()
        self.editor.setAccessibleName("Edit message")
        self.editor.setMaximumHeight(160)
        self.editor.submitted.connect(self.submit_edit)
        self.editor.cancelled.connect(self.cancel_edit)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        self.cancel_edit_button = QPushButton("Cancel")
        self.cancel_edit_button.setAccessibleName("Cancel editing")
        self.cancel_edit_button.clicked.connect(self.cancel_edit)
        self.resend_button = QPushButton("Save and resend")
        self.resend_button.setAccessibleName("Save and resend message")
        self.resend_button.setToolTip("Replace this message and everything after it (Enter)")
        self.resend_button.clicked.connect(self.submit_edit)
        buttons.addWidget(self.cancel_edit_button)
        buttons.addWidget(self.resend_button)
        layout.addWidget(self.editor)
        layout.addLayout(buttons)
        return box

    # -- state -----------------------------------------------------------------------------
    def text(self) -> str:
        return self.body.text()

    def set_text(self, text: str) -> None:
        self.body.set_text(text)
        self._show_status()

    def set_status(self, status: str) -> None:
        self.status = status
        self._show_status()

    def _show_status(self) -> None:
        text = STATUS_TEXT.get(self.status, "")
        if self.status == "streaming" and not self.body.text():
            text = "thinking…"
        self.status_label.setText(f"<i>{text}</i>" if text else "")

    def set_stats(self, stats: dict[str, Any] | None) -> None:
        line = stats_line(stats) if self.role == "assistant" else ""
        self.stats_label.setText(line)
        self.stats_label.setVisible(bool(line))
        summary = (stats or {}).get("summary") if self.role == "assistant" else None
        self.summary = summary if isinstance(summary, dict) and summary.get("sources") else None
        self.sources_button.setVisible(self.summary is not None)

    def set_hidden(self, reason: str | None) -> None:
        """Mark a message the model no longer sees ('dropped' or 'summarized')."""
        if reason == self.hidden_reason:
            return
        self.hidden_reason = reason
        self.hidden_label.setText(HIDDEN_TEXT.get(reason or "", ""))
        self.hidden_label.setVisible(reason is not None)
        self.body.set_dimmed(reason is not None)
        self.setProperty("outOfContext", reason is not None)
        self.style().unpolish(self)
        self.style().polish(self)

    def set_actions(self, *, last: bool, idle: bool) -> None:
        """Regenerate on the last reply; 'Get reply' on a last message left without one."""
        self.regenerate_button.setText("Regenerate" if self.role == "assistant" else "Get reply")
        self.regenerate_button.setVisible(last)
        self.regenerate_button.setEnabled(idle)
        self.edit_button.setEnabled(idle and self.message_id is not None)

    # -- actions ---------------------------------------------------------------------------
    def copy(self) -> None:
        QGuiApplication.clipboard().setText(self.text())

    def _request_sources(self) -> None:
        if self.summary is not None:
            self.sources_requested.emit(self.summary)

    def start_edit(self) -> None:
        if self.role != "user" or self.message_id is None:
            return
        self.editor.setPlainText(self.text())
        self.body.hide()
        self.editor_box.show()
        self.editor.setFocus()
        self.editor.selectAll()

    def cancel_edit(self) -> None:
        self.editor_box.hide()
        self.body.show()

    def submit_edit(self) -> None:
        text = self.editor.toPlainText()
        if not text.strip() or self.message_id is None:
            return
        self.cancel_edit()
        self.edit_submitted.emit(self.message_id, text)

    @property
    def editing(self) -> bool:
        return not self.editor_box.isHidden()
