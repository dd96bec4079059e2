"""The scrolling list of messages: synced from the store by id, streamed into, auto-scrolled.

Auto-scroll follows the reply only while the user is at the bottom; scrolling up to read stops
it and scrolling back down resumes it.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QLabel, QScrollArea, QVBoxLayout, QWidget

from assistant.store import Conversation, StoredMessage

from .message_widget import MessageWidget

BOTTOM_SLACK = 24  # pixels from the bottom that still count as "at the bottom"
EMPTY_TEXT = (
    "<h3>Ask anything</h3><p>Everything runs on this computer; nothing you type "
    "leaves it.</p><p>Enter sends · Shift+Enter starts a new line · Esc stops a reply"
    "</p>"
)


def hidden_reason(message: StoredMessage, conversation: Conversation | None) -> str | None:
    """'dropped' or 'summarized' when the model no longer sees this message, else None."""
    if conversation is None or conversation.window_start_id is None:
        return None
    if message.id >= conversation.window_start_id:
        return None
    summarized = (
        conversation.policy == "summarize"
        and conversation.summary
        and conversation.summary_upto_id is not None
        and message.id < conversation.summary_upto_id
    )
    return "summarized" if summarized else "dropped"


class ChatView(QScrollArea):
    edit_submitted = Signal(int, str)
    regenerate_requested = Signal()
    sources_requested = Signal(object)

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
        self._by_id: dict[int, MessageWidget] = {}
        self._pending: list[MessageWidget] = []
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
        return self._by_id.get(message_id)

    def show_messages(
        self,
        messages: Sequence[StoredMessage],
        conversation: Conversation | None,
        streaming_id: int | None = None,
    ) -> None:
        """Make the view match the store; widgets are reused by id (pending ones adopted)."""
        wanted: list[QWidget] = []
        first_visible = None
        for message in messages:
            if message.role == "system":
                continue
            widget = self._by_id.get(message.id) or self._adopt(message)
            if message.id != streaming_id:
                widget.set_text(message.content)
                widget.set_status(message.status)
                widget.set_stats(message.stats)
            reason = hidden_reason(message, conversation)
            widget.set_hidden(reason)
            if reason is None and first_visible is None:
                first_visible = len(wanted)
            wanted.append(widget)
        keep = {id(w) for w in wanted}
        for widget in [*self._by_id.values(), *self._pending]:
            if id(widget) not in keep:
                self._discard(widget)
        self._by_id = {w.message_id: w for w in wanted if isinstance(w, MessageWidget)}
        self._pending = []
        if first_visible:  # something above is hidden from the model
            wanted.insert(first_visible, self.divider)
        self._arrange(wanted)

    def add_pending(self, role: str, text: str = "") -> MessageWidget:
        """A message shown before the store has it (adopted by the next `show_messages`)."""
        widget = self._new_widget(role, None)
        widget.set_text(text)
        widget.set_status("streaming" if role == "assistant" else "complete")
        self._pending.append(widget)
        self._arrange([*self._order, widget])
        self.scroll_to_bottom()
        return widget

    def truncate_after(self, message_id: int) -> None:
        """Remove the messages after this one (edit and regenerate replace the tail)."""
        keep: list[QWidget] = []
        for widget in self._order:
            if (
                isinstance(widget, MessageWidget)
                and widget.message_id is not None
                and widget.message_id > message_id
            ):
                self._by_id.pop(widget.message_id, None)
                self._discard(widget)
            else:
                keep.append(widget)
        self._arrange(keep)

    def set_stream_text(self, message_id: int, text: str) -> None:
        widget = self._by_id.get(message_id)
        if widget is not None:
            widget.set_text(text)

    def set_idle(self, idle: bool) -> None:
        self._idle = idle
        self._update_actions()

    def clear(self) -> None:
        self.show_messages([], None)

    # -- internals -------------------------------------------------------------------------
    def _adopt(self, message: StoredMessage) -> MessageWidget:
        if self._pending and self._pending[0].role == message.role:
            widget = self._pending.pop(0)
            widget.message_id = message.id
            return widget
        return self._new_widget(message.role, message.id)

    def _new_widget(self, role: str, message_id: int | None) -> MessageWidget:
        widget = MessageWidget(role, message_id)
        widget.edit_submitted.connect(self.edit_submitted)
        widget.regenerate_requested.connect(self.regenerate_requested)
        widget.sources_requested.connect(self.sources_requested)
        return widget

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

    def _update_actions(self) -> None:
        widgets = self.messages()
        last = widgets[-1] if widgets else None
        for widget in widgets:
            is_last = widget is last and widget.message_id is not None and not widget.editing
            widget.set_actions(last=is_last, idle=self._idle)

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
