"""The scrolling list of messages: renders the open chat's in-memory messages, auto-scrolled.

Auto-scroll follows the reply only while the user is at the bottom; scrolling up to read stops
it and scrolling back down resumes it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QFrame, QLabel, QScrollArea, QVBoxLayout, QWidget

from .markdown_view import CodeBlock
from .message_widget import MessageWidget
from .open_chat import ViewMessage

BOTTOM_SLACK = 24  # pixels from the bottom that still count as "at the bottom"
# Stored messages no longer shown keep their widgets this long (by message id), so switching
# back to a chat, or to another version, redraws nothing that was drawn before.
CACHED_WIDGETS = 300
EMPTY_TEXT = (
    "<h3>Ask anything</h3><p>Everything runs on this computer; nothing you type "
    "leaves it.</p><p>Enter sends · Shift+Enter starts a new line · Esc stops a reply"
    "</p>"
)


class ChatView(QScrollArea):
    edit_submitted = Signal(int, str)
    regenerate_requested = Signal()
    continue_requested = Signal()
    sources_requested = Signal(object)
    version_requested = Signal(int)  # the id of the version to show
    delete_requested = Signal(int)
    export_requested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setAccessibleName("Conversation")
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        container = QWidget()
        container.setObjectName("chatContainer")
        self._layout = QVBoxLayout(container)
        self._layout.setContentsMargins(16, 12, 16, 12)
        self._layout.setSpacing(10)
        self._layout.addStretch(1)
        self.setWidget(container)
        self.empty_label = QLabel(EMPTY_TEXT)
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_label.setWordWrap(True)
        self.empty_label.setObjectName("emptyState")
        self.empty_label.setContentsMargins(0, 120, 0, 0)
        self._layout.insertWidget(0, self.empty_label)
        self.divider = QLabel("▲ The model no longer sees the messages above ▲")
        self.divider.setObjectName("contextDivider")
        self.divider.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.divider.setAccessibleName("Context window boundary")
        self.divider.hide()
        self._widgets: dict[ViewMessage, MessageWidget] = {}  # by message object, not by text
        self._cache: OrderedDict[int, MessageWidget] = OrderedDict()  # hidden, by message id
        self._order: list[QWidget] = []
        self._stick = True
        self._idle = True
        bar = self.verticalScrollBar()
        bar.rangeChanged.connect(self._on_range_changed)
        bar.valueChanged.connect(self._on_value_changed)

    # -- content ---------------------------------------------------------------------------
    def messages(self) -> list[MessageWidget]:
        return [w for w in self._order if isinstance(w, MessageWidget)]

    def widget_for(self, message_id: int) -> MessageWidget | None:
        return next((w for w in self.messages() if w.message_id == message_id), None)

    def widget_of(self, message: ViewMessage) -> MessageWidget | None:
        return self._widgets.get(message)

    def show_messages(self, messages: Sequence[ViewMessage]) -> None:
        """Make the view match this list; a message keeps its widget for as long as it is shown."""
        widgets: dict[ViewMessage, MessageWidget] = {}
        wanted: list[QWidget] = []
        first_visible = None
        for message in messages:
            widget = self._widgets.get(message) or self._reuse(message) or self._new_widget(message)
            self._render(widget, message)
            widgets[message] = widget
            if message.hidden is None and first_visible is None:
                first_visible = len(wanted)
            wanted.append(widget)
        kept = set(map(id, widgets.values()))
        for message, widget in self._widgets.items():
            if message not in widgets and id(widget) not in kept:
                self._put_away(widget)
        self._widgets = widgets
        if first_visible:  # something above is hidden from the model
            wanted.insert(first_visible, self.divider)
        self._arrange(wanted)

    def update_message(self, message: ViewMessage) -> None:
        """Draw one message again (its text grew, or its id, status or stats arrived)."""
        widget = self._widgets.get(message)
        if widget is not None:
            self._render(widget, message)
            self._update_actions()

    def set_idle(self, idle: bool) -> None:
        self._idle = idle
        self._update_actions()

    def clear(self) -> None:
        self.show_messages([])

    # -- internals -------------------------------------------------------------------------
    def _new_widget(self, message: ViewMessage) -> MessageWidget:
        widget = MessageWidget(message.role, message.id)
        widget.set_room(self._room())
        widget.edit_submitted.connect(self.edit_submitted)
        widget.regenerate_requested.connect(self.regenerate_requested)
        widget.continue_requested.connect(self.continue_requested)
        widget.sources_requested.connect(self.sources_requested)
        widget.version_requested.connect(self.version_requested)
        widget.delete_requested.connect(self.delete_requested)
        widget.export_requested.connect(self.export_requested)
        return widget

    @staticmethod
    def _render(widget: MessageWidget, message: ViewMessage) -> None:
        widget.message_id = message.id
        widget.set_text(message.content)
        widget.set_status(message.status)
        widget.set_wait(message.wait, message.progress)
        widget.set_stats(message.stats)
        widget.set_hidden(message.hidden)
        widget.set_versions(message.versions, message.version_index)

    def _reuse(self, message: ViewMessage) -> MessageWidget | None:
        widget = self._cache.pop(message.id, None) if message.id is not None else None
        if widget is not None and widget.role != message.role:
            self._discard(widget)
            return None
        if widget is not None:
            widget.set_room(self._room())
        return widget

    def _put_away(self, widget: MessageWidget) -> None:
        """Out of the layout; kept hidden for a while if it shows a stored message."""
        if widget.message_id is None:
            self._discard(widget)
            return
        self._layout.removeWidget(widget)
        widget.hide()
        widget.cancel_edit()
        self._cache[widget.message_id] = widget
        self._cache.move_to_end(widget.message_id)
        while len(self._cache) > CACHED_WIDGETS:
            self._discard(self._cache.popitem(last=False)[1])

    def _discard(self, widget: QWidget) -> None:
        self._layout.removeWidget(widget)
        widget.hide()
        widget.deleteLater()

    def _arrange(self, wanted: list[QWidget]) -> None:
        """Put `wanted` in the layout in this order (before the trailing stretch)."""
        if wanted != self._order:
            for widget in self._order:
                if widget not in wanted:
                    self._layout.removeWidget(widget)
            for index, widget in enumerate(wanted):
                item = self._layout.itemAt(index + 1)  # index 0 is the empty-state label
                if item is None or item.widget() is not widget:
                    self._layout.removeWidget(widget)
                    self._layout.insertWidget(index + 1, widget)
                    widget.show()
            self._order = list(wanted)
        self.divider.setVisible(self.divider in self._order)
        self.empty_label.setVisible(not self._order)
        self._update_actions()

    def tab_chain(self) -> list[QWidget]:
        """What Tab reaches in the messages, newest message first: in each, its text, then its
        buttons (what the user reads, then what they can do with it)."""
        chain: list[QWidget] = []
        for widget in reversed(self.messages()):
            parts = [p.view if isinstance(p, CodeBlock) else p for p in widget.body.parts()]
            copies = [p.copy_button for p in widget.body.parts() if isinstance(p, CodeBlock)]
            buttons = [
                widget.older_button,
                widget.newer_button,
                widget.sources_button,
                widget.edit_button,
                widget.copy_button,
                widget.continue_button,
                widget.regenerate_button,
                widget.more_button,
            ]
            chain += [*parts, *copies, *(b for b in buttons if not b.isHidden())]
        return chain

    def _update_actions(self) -> None:
        widgets = self.messages()
        last = widgets[-1] if widgets else None
        for widget in widgets:
            is_last = widget is last and widget.message_id is not None and not widget.editing
            widget.set_actions(last=is_last, idle=self._idle)

    def _room(self) -> int:
        margins = self._layout.contentsMargins()
        return self.viewport().width() - margins.left() - margins.right()

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802
        super().resizeEvent(event)
        room = self._room()
        for widget in self.messages():
            widget.set_room(room)

    # -- scrolling -------------------------------------------------------------------------
    @property
    def at_bottom(self) -> bool:
        bar = self.verticalScrollBar()
        return bar.value() >= bar.maximum() - BOTTOM_SLACK

    def scroll_to_bottom(self) -> None:
        self._stick = True
        bar = self.verticalScrollBar()
        bar.setValue(bar.maximum())

    def _on_range_changed(self, _minimum: int, maximum: int) -> None:
        if self._stick:
            self.verticalScrollBar().setValue(maximum)

    def _on_value_changed(self, _value: int) -> None:
        self._stick = self.at_bottom
