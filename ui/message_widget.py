"""One message in the chat view: who, the Markdown body, its versions (‹ 2/3 ›), actions, what the
reply is waiting for (with progress), and the reply statistics."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QContextMenuEvent, QGuiApplication, QKeyEvent
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QMenu,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from assistant.conversation.outcome import STATUS_TEXT

from .elided_label import ElidedLabel
from .markdown_view import MarkdownView
from .source_chips import SourceChips

ROLE_NAMES = {"user": "You", "assistant": "Assistant", "system": "System"}
HIDDEN_TEXT = {
    "dropped": "Not seen by the model: dropped to fit the context window",
    "summarized": "Not seen word for word: summarized to fit the context window",
}
CONTINUABLE = ("length", "cancelled", "interrupted")  # a reply that can be continued
SPENT_MIN_S = 0.05  # a share of the wait shorter than this is not worth naming


def stats_line(stats: dict[str, Any] | None) -> str:
    """'48 tokens · 121.3 tokens/s · waited 6.20 s (summarizing 4.1 s, reading 1,830 tokens
    2.0 s) · prompt 1912 (82 cached)' from a reply's stored stats. The wait runs from the send
    to the first token, whatever it went to; older replies stored only the first-token time."""
    if not stats or "completion_tokens" not in stats:
        return ""
    parts = [f"{stats['completion_tokens']} tokens"]
    if stats.get("tokens_per_s"):
        parts.append(f"{stats['tokens_per_s']:.1f} tokens/s")
    if stats.get("wait_s"):
        spent = _spent(stats)
        parts.append(f"waited {stats['wait_s']:.2f} s" + (f" ({spent})" if spent else ""))
    elif stats.get("ttft_s") is not None:
        parts.append(f"first token {stats['ttft_s']:.2f} s")
    if stats.get("prompt_tokens"):
        parts.append(f"prompt {stats['prompt_tokens']}" + _cache_words(stats))
    return " · ".join(parts)


def _cache_words(stats: dict[str, Any]) -> str:
    """' (1830 cached, 95 restored, 240 shifted out, 40 read again)': how the prompt used the
    model's cache (see ReplyStats)."""
    words = [
        f"{stats[key]} {name}"
        for key, name in (
            ("cached_tokens", "cached"),
            ("restored_tokens", "restored"),
            ("shifted_tokens", "shifted out"),
            ("reread_tokens", "read again"),
        )
        if stats.get(key)
    ]
    return f" ({', '.join(words)})" if words else ""


def _spent(stats: dict[str, Any]) -> str:
    read = (stats.get("prompt_tokens") or 0) - (stats.get("cached_tokens") or 0)
    shares = (
        ("summary_s", "summarizing older messages"),
        ("restore_s", "restoring the saved cache"),
        ("prompt_s", f"reading {read:,} tokens" if read > 0 else "reading the prompt"),
    )
    return ", ".join(
        f"{words} {stats[key]:.1f} s"
        for key, words in shares
        if (stats.get(key) or 0) >= SPENT_MIN_S
    )


class MessageEditor(QPlainTextEdit):
    """Inline editor for a user message: Enter resends, Shift+Enter is a newline, Esc cancels."""

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
    continue_requested = Signal()
    sources_requested = Signal(object)  # the summary stats: points, ranges, document id
    version_requested = Signal(int)  # the id of the version to show instead
    delete_requested = Signal(int)  # message id
    export_requested = Signal()

    def __init__(self, role: str, message_id: int | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.role = role
        self.message_id = message_id
        self.status = "complete"
        self.summary: dict[str, Any] | None = None
        self.hidden_reason: str | None = None
        self.versions: tuple[int, ...] = ()
        self.version_index = 0
        self.wait = ""
        self._last = self._idle = self.compact = False
        self._actions_set = False  # set_actions has run (its inputs are then known)
        self.room = 0  # the width the chat view gives it (0: not known yet)
        self._layout_key: tuple = ()
        self.setObjectName("userMessage" if role == "user" else "assistantMessage")
        self.setAccessibleName(f"Message from {ROLE_NAMES.get(role, role)}")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 6, 10, 6)
        layout.setSpacing(3)
        self._build_header(layout)
        self.hidden_label = QLabel()
        self.hidden_label.setObjectName("hiddenTag")
        self.hidden_label.setWordWrap(True)
        self.hidden_label.hide()
        layout.addWidget(self.hidden_label)
        self.wait_bar = QProgressBar()
        self.wait_bar.setAccessibleName("Progress before the reply starts")
        self.wait_bar.setMaximumHeight(8)
        self.wait_bar.setTextVisible(False)
        self.wait_bar.hide()
        layout.addWidget(self.wait_bar)
        self.body = MarkdownView()
        layout.addWidget(self.body)
        self.editor_box: QWidget | None = None  # built on the first edit (most never are)
        self.stats_label = QLabel()
        self.stats_label.setObjectName("statsLine")
        self.stats_label.setAccessibleName("Reply statistics")
        self.stats_label.setWordWrap(True)
        self.stats_label.hide()
        layout.addWidget(self.stats_label)
        self.source_chips = SourceChips(self)  # the document passages a reply was given
        layout.addWidget(self.source_chips)

    def _build_header(self, parent: QVBoxLayout) -> None:
        # attached first, so the buttons are children before their visibility is set (a
        # parentless widget shown would open as a window of its own and steal the focus)
        header = QHBoxLayout()
        parent.addLayout(header)
        header.setSpacing(6)
        self.role_label = QLabel(f"<b>{ROLE_NAMES.get(self.role, self.role)}</b>")
        self.status_label = ElidedLabel()  # a long wait is shortened, never widens the bubble
        self.status_label.setObjectName("statusTag")
        self.status_label.setAccessibleName("Message status")
        font = self.status_label.font()
        font.setItalic(True)
        self.status_label.setFont(font)
        header.addWidget(self.role_label)
        header.addWidget(self.status_label, 1)
        self.older_button = self._tool("‹", "Show the previous version", self._older)
        self.older_button.setAccessibleName("Previous version")
        self.version_label = QLabel()
        self.version_label.setObjectName("versionLabel")
        self.version_label.setAccessibleName("Version")
        self.newer_button = self._tool("›", "Show the next version", self._newer)
        self.newer_button.setAccessibleName("Next version")
        self.edit_button = self._tool("Edit", "Edit and resend this message", self.start_edit)
        self.copy_button = self._tool("Copy", "Copy this message as Markdown", self.copy)
        self.continue_button = self._tool(
            "Continue", "Go on writing this reply", self.continue_requested.emit
        )
        self.regenerate_button = self._tool(
            "Regenerate", "Write this reply again; this one is kept (Ctrl+R)", self._regenerate
        )
        self.sources_button = self._tool(
            "Sources", "Show the source passage behind each point", self._request_sources
        )
        self.sources_button.setAccessibleName("Show summary sources")
        self.more_button = self._tool("⋯", "Actions of this message", lambda: None)
        self.more_button.setAccessibleName("Message actions")
        self.more_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.more_button.setMenu(QMenu(self.more_button))
        self.more_button.menu().aboutToShow.connect(self._fill_more_menu)
        for widget in (
            self.older_button,
            self.version_label,
            self.newer_button,
            self.sources_button,
            self.edit_button,
            self.copy_button,
            self.continue_button,
            self.regenerate_button,
            self.more_button,
        ):
            header.addWidget(widget)
        self._update_buttons()

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
        self.resend_button.setToolTip(
            "Send this version; the earlier one and the replies after it stay as version 1 (Enter)"
        )
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

    def set_wait(self, text: str, progress: tuple[int, int] | None = None) -> None:
        """What the reply waits for before its first token ('' once it writes), with progress
        (done, total) where it is counted; (0, 0) is a busy bar."""
        self.wait = text
        waiting = bool(text) and self.status == "streaming" and not self.body.text()
        if waiting and progress is not None:
            done, total = progress
            self.wait_bar.setRange(0, max(total, 0))
            self.wait_bar.setValue(min(done, total) if total else 0)
        self.wait_bar.setVisible(waiting and progress is not None)
        self._show_status()

    def _show_status(self) -> None:
        text = STATUS_TEXT.get(self.status, "")
        if self.status == "streaming" and not self.body.text():
            text = self.wait or "thinking…"
        elif self.wait_bar.isVisibleTo(self):
            self.wait_bar.hide()
        self.status_label.setText(text)

    def set_stats(self, stats: dict[str, Any] | None) -> None:
        line = stats_line(stats) if self.role == "assistant" else ""
        self.stats_label.setText(line)
        self.stats_label.setVisible(bool(line))
        summary = (stats or {}).get("summary") if self.role == "assistant" else None
        self.summary = summary if isinstance(summary, dict) and summary.get("sources") else None
        self._update_buttons()
        sources = (stats or {}).get("sources") if self.role == "assistant" else None
        self.source_chips.set_sources(sources)

    def set_versions(self, versions: tuple[int, ...], index: int) -> None:
        """‹ 2/3 › when this message has other versions (regenerated replies, edits)."""
        self.versions, self.version_index = tuple(versions), index
        count = max(len(self.versions), index + 1)  # a new version still being written
        many = count > 1
        self.version_label.setText(f"{index + 1}/{count}" if many else "")
        self._update_buttons()

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
        """Regenerate on the last reply ('Get reply' on a last message left without one),
        Continue on a last reply that stopped short; nothing that changes the chat while it
        is replying."""
        if self._actions_set and (last, idle) == (self._last, self._idle):
            return  # a reply streaming: unchanged for every message but the one it updates
        self._actions_set = True
        self._last, self._idle = last, idle
        self.regenerate_button.setText("Regenerate" if self.role == "assistant" else "Get reply")
        self._update_buttons()

    def set_room(self, width: int) -> None:
        """The width the message gets: when its actions do not fit beside its name and status,
        they go into a "⋯" menu (the version switcher stays in view)."""
        if width != self.room:
            self.room = width
            self._update_buttons()

    def _update_buttons(self) -> None:
        many = bool(self.version_label.text())
        actions = {
            self.sources_button: self.summary is not None,
            self.edit_button: self.role == "user",
            self.copy_button: True,
            self.continue_button: self.can_continue,
            self.regenerate_button: self._last,
        }
        key = (self.room, many, tuple(actions.values()))
        if key != self._layout_key:
            self._layout_key = key
            wanted = [b for b, shown in actions.items() if shown]
            if many:
                wanted += [self.older_button, self.version_label, self.newer_button]
            need = sum(w.sizeHint().width() + 6 for w in (self.role_label, *wanted)) + 80
            self.compact = self.room > 0 and need > self.room
        shown = {
            self.older_button: many,
            self.version_label: many,
            self.newer_button: many,
            **{b: v and not self.compact for b, v in actions.items()},
            self.more_button: self.compact,
        }
        for widget, visible in shown.items():
            if widget.isHidden() == visible:
                widget.setVisible(visible)
        self._enable()

    @property
    def can_continue(self) -> bool:
        return self._last and self.role == "assistant" and self.status in CONTINUABLE

    def _enable(self) -> None:
        idle = self._idle
        self.regenerate_button.setEnabled(idle)
        self.continue_button.setEnabled(idle)
        self.edit_button.setEnabled(idle and self.message_id is not None)
        self.older_button.setEnabled(idle and self.version_index > 0)
        self.newer_button.setEnabled(idle and self.version_index < len(self.versions) - 1)

    # -- actions ---------------------------------------------------------------------------
    def copy(self) -> None:
        QGuiApplication.clipboard().setText(self.text())

    def _regenerate(self) -> None:
        self.regenerate_requested.emit()

    def _older(self) -> None:
        if self.version_index > 0:
            self.version_requested.emit(self.versions[self.version_index - 1])

    def _newer(self) -> None:
        if self.version_index < len(self.versions) - 1:
            self.version_requested.emit(self.versions[self.version_index + 1])

    def _request_sources(self) -> None:
        if self.summary is not None:
            self.sources_requested.emit(self.summary)

    def start_edit(self) -> None:
        if self.role != "user" or self.message_id is None:
            return
        if self.editor_box is None:
            self.editor_box = self._build_editor()
            layout = self.layout()
            layout.insertWidget(layout.indexOf(self.body) + 1, self.editor_box)
        self.editor.setPlainText(self.text())
        self.body.hide()
        self.editor_box.show()
        self.editor.setFocus()
        self.editor.selectAll()

    def cancel_edit(self) -> None:
        if self.editor_box is not None:
            self.editor_box.hide()
        self.body.show()

    def submit_edit(self) -> None:
        if self.editor_box is None:
            return
        text = self.editor.toPlainText()
        if not text.strip() or self.message_id is None:
            return
        self.cancel_edit()
        self.edit_submitted.emit(self.message_id, text)

    @property
    def editing(self) -> bool:
        return self.editor_box is not None and not self.editor_box.isHidden()

    def contextMenuEvent(self, event: QContextMenuEvent) -> None:  # noqa: N802
        self.context_menu().exec(event.globalPos())

    def _fill_more_menu(self) -> None:
        menu = self.more_button.menu()
        menu.clear()
        self.context_menu(menu)

    def context_menu(self, menu: QMenu | None = None) -> QMenu:
        """Copy, edit, regenerate, continue, versions, delete and export, as they apply."""
        menu = menu if menu is not None else QMenu(self)
        selected = self.body.selected_text()
        if selected:
            menu.addAction("Copy selected text", lambda: _copy(selected))
        menu.addAction("Copy message", self.copy)
        if self.summary is not None:
            menu.addAction("Show sources", self._request_sources)
        stored, idle = self.message_id is not None, self._idle
        if self.role == "user":
            menu.addAction("Edit and resend…", self.start_edit).setEnabled(idle and stored)
        if self._last:
            label = "Regenerate" if self.role == "assistant" else "Get reply"
            menu.addAction(label, self._regenerate).setEnabled(idle)
        if self.can_continue:
            menu.addAction("Continue", self.continue_requested.emit).setEnabled(idle)
        if len(self.versions) > 1:
            menu.addAction("Previous version", self._older).setEnabled(
                self.older_button.isEnabled()
            )
            menu.addAction("Next version", self._newer).setEnabled(self.newer_button.isEnabled())
        menu.addSeparator()
        delete = menu.addAction("Delete…", lambda: self.delete_requested.emit(self.message_id))
        delete.setEnabled(idle and stored)
        menu.addAction("Export chat…", self.export_requested.emit)
        return menu


def _copy(text: str) -> None:
    QGuiApplication.clipboard().setText(text)
