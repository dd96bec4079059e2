"""The conversation list: newest first, search, new, inline rename, delete (confirmed elsewhere)."""

from __future__ import annotations

from datetime import datetime, timezone

from PySide6.QtCore import QEvent, QPoint, Qt, QTimer, Signal
from PySide6.QtGui import QIcon, QKeyEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QPushButton,
    QSizePolicy,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from assistant.conversation.store import Store
from assistant.errors import AssistantError

ID_ROLE = Qt.ItemDataRole.UserRole


def _when(stamp: str) -> str:
    """'2025-01-31 14:05' from an ISO time stamp."""
    return stamp[:16].replace("T", " ")


class SearchBox(QLineEdit):
    """Esc clears the search (and, when it is already empty, hands the focus back)."""

    escaped = Signal()

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ShortcutOverride and isinstance(event, QKeyEvent):
            if event.key() == Qt.Key.Key_Escape and self.text():
                event.accept()  # before the window's Esc (stop a reply) takes it
                return True
        return super().event(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if event.key() == Qt.Key.Key_Escape:
            if self.text():
                self.clear()
            else:
                self.escaped.emit()
            return
        super().keyPressEvent(event)


class ConversationList(QListWidget):
    delete_pressed = Signal()

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if event.key() == Qt.Key.Key_Delete and self.state() != self.State.EditingState:
            self.delete_pressed.emit()
        else:
            super().keyPressEvent(event)


class Sidebar(QWidget):
    conversation_selected = Signal(int)
    new_requested = Signal()
    delete_requested = Signal(int)
    export_requested = Signal(int)
    failed = Signal(str)

    def __init__(self, store: Store, parent: QWidget | None = None):
        super().__init__(parent)
        self._store = store
        self._filling = False
        self._current: int | None = None
        self._activity: dict[int, str] = {}
        # the width the user gave it, whatever the titles: they are shortened with "…"
        self.setMinimumWidth(170)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 4, 8)
        self.new_button = QPushButton("New chat")
        self.new_button.setAccessibleName("New chat")
        self.new_button.setToolTip("Start a new conversation (Ctrl+N)")
        self.new_button.clicked.connect(self.new_requested)
        self.search = SearchBox()
        self.search.setPlaceholderText("Search chats (Ctrl+F)")
        self.search.setAccessibleName("Search conversations")
        self.search.setClearButtonEnabled(True)
        self._search_timer = QTimer(self, singleShot=True, interval=150)
        self._search_timer.timeout.connect(self.refresh)
        self.search.textChanged.connect(self._search_timer.start)
        self.list = ConversationList()
        self.list.setAccessibleName("Conversations")
        self.list.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.setUniformItemSizes(True)
        self.list.setEditTriggers(
            QAbstractItemView.EditTrigger.EditKeyPressed
            | QAbstractItemView.EditTrigger.DoubleClicked
        )
        self.list.currentItemChanged.connect(self._on_current_changed)
        self.list.itemChanged.connect(self._on_item_renamed)
        self.list.delete_pressed.connect(self._request_delete)
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.list.customContextMenuRequested.connect(self._context_menu)
        self.queue_label = QLabel()
        self.queue_label.setObjectName("queueLabel")
        self.queue_label.setAccessibleName("Replies being written")
        self.queue_label.setWordWrap(True)
        self.queue_label.hide()
        buttons = QHBoxLayout()
        self.rename_button = QPushButton("Rename")
        self.rename_button.setAccessibleName("Rename conversation")
        self.rename_button.setToolTip("Rename the selected conversation (F2)")
        self.rename_button.clicked.connect(self.rename_current)
        self.delete_button = QPushButton("Delete")
        self.delete_button.setAccessibleName("Delete conversation")
        self.delete_button.setToolTip("Delete the selected conversation (Delete)")
        self.delete_button.clicked.connect(self._request_delete)
        buttons.addWidget(self.rename_button)
        buttons.addWidget(self.delete_button)
        layout.addWidget(self.new_button)
        layout.addWidget(self.search)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.queue_label)
        layout.addLayout(buttons)

    def shutdown(self) -> None:
        """The window is closing: no more reads from the store."""
        self._search_timer.stop()
        self.blockSignals(True)
        self.setEnabled(False)

    def ids(self) -> list[int]:
        return [self.list.item(i).data(ID_ROLE) for i in range(self.list.count())]

    def refresh(self, current: int | None | bool = False) -> None:
        """Reload from the store (newest first), keeping or setting the selected conversation."""
        if current is not False:
            self._current = current  # type: ignore[assignment]
        try:
            conversations = self._store.list_conversations(self.search.text().strip() or None)
        except AssistantError as exc:
            self.failed.emit(str(exc))
            return
        self._filling = True
        try:
            self.list.clear()
            for conv in conversations:
                item = QListWidgetItem(conv.title)
                item.setData(ID_ROLE, conv.id)
                item.setToolTip(f"{conv.title}\nLast activity {_when(conv.updated_at)} UTC")
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable)
                self._mark(item)
                self.list.addItem(item)
                if conv.id == self._current:
                    self.list.setCurrentItem(item)
        finally:
            self._filling = False
        self._enable_buttons()

    def _enable_buttons(self) -> None:
        has = self._current is not None and self._current in self.ids()
        self.rename_button.setEnabled(has)
        self.delete_button.setEnabled(has)

    def touch(self, conversation_id: int, title: str | None = None) -> None:
        """This conversation just changed: move its row to the top and show its title.

        Done in place, without reading the store (a reply starts and ends this way). A row not
        listed is added, unless a search is filtering the list.
        """
        row = self.ids().index(conversation_id) if conversation_id in self.ids() else None
        if row is None and self.search.text().strip():
            return
        self._filling = True
        try:
            item = self.list.takeItem(row) if row is not None else QListWidgetItem()
            if row is None:
                item.setData(ID_ROLE, conversation_id)
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable)
            if title is not None:
                item.setText(title)
            stamp = datetime.now(timezone.utc).isoformat(timespec="minutes")
            item.setToolTip(f"{item.text()}\nLast activity {_when(stamp)} UTC")
            self._mark(item)
            self.list.insertItem(0, item)
            if conversation_id == self._current:
                self.list.setCurrentItem(item)
        finally:
            self._filling = False
        self._enable_buttons()

    def select(self, conversation_id: int) -> None:
        """Mark this conversation as the open one (reloads the list only if it is not there)."""
        self._current = conversation_id
        if conversation_id not in self.ids():
            self.refresh()
            return
        item = self.list.item(self.ids().index(conversation_id))
        if self.list.currentItem() is not item:
            self._filling = True
            try:
                self.list.setCurrentItem(item)
            finally:
                self._filling = False
        self.rename_button.setEnabled(True)
        self.delete_button.setEnabled(True)

    def rename_current(self) -> None:
        item = self.list.currentItem()
        if item is not None:
            self.list.editItem(item)

    def _on_current_changed(self, item: QListWidgetItem | None, _previous: object) -> None:
        if self._filling or item is None:
            return
        conversation_id = item.data(ID_ROLE)
        if conversation_id != self._current:
            self._current = conversation_id
            self.rename_button.setEnabled(True)
            self.delete_button.setEnabled(True)
            self.conversation_selected.emit(conversation_id)

    def _on_item_renamed(self, item: QListWidgetItem) -> None:
        if self._filling:
            return
        title = item.text().strip()
        conversation_id = item.data(ID_ROLE)
        try:
            if title:
                self._store.update_conversation(conversation_id, title=title)
        except AssistantError as exc:
            self.failed.emit(str(exc))
        self.refresh()

    def _request_delete(self) -> None:
        item = self.list.currentItem()
        if item is not None:
            self.delete_requested.emit(item.data(ID_ROLE))

    # -- what is being written ---------------------------------------------------------------
    def title_of(self, conversation_id: int) -> str:
        ids = self.ids()
        return (
            self.list.item(ids.index(conversation_id)).text()
            if conversation_id in ids
            else ("another chat")
        )

    def set_activity(self, activity: dict[int, str]) -> None:
        """Which chats have a reply being written ('writing') or waiting its turn ('waiting'):
        marked in the list, and the queue spelled out under it."""
        self._activity = dict(activity)
        for row in range(self.list.count()):
            self._mark(self.list.item(row))
        writing = [self.title_of(c) for c, what in activity.items() if what == "writing"]
        waiting = [self.title_of(c) for c, what in activity.items() if what == "waiting"]
        parts = [f"Writing in “{t}”" for t in writing]
        if waiting:
            parts.append("waiting: " + ", ".join(f"“{t}”" for t in waiting))
        self.queue_label.setText("; ".join(parts))
        self.queue_label.setVisible(bool(parts))

    def _mark(self, item: QListWidgetItem) -> None:
        what = self._activity.get(item.data(ID_ROLE), "")
        icons = {
            "writing": QStyle.StandardPixmap.SP_MediaPlay,
            "waiting": QStyle.StandardPixmap.SP_MediaPause,
        }
        self._filling, filling = True, self._filling
        try:
            item.setIcon(self.style().standardIcon(icons[what]) if what else QIcon())
            item.setData(Qt.ItemDataRole.AccessibleDescriptionRole, what)
        finally:
            self._filling = filling

    def _context_menu(self, point: QPoint) -> None:
        item = self.list.itemAt(point)
        if item is not None:
            self.context_menu(item).exec(self.list.viewport().mapToGlobal(point))

    def context_menu(self, item: QListWidgetItem) -> QMenu:
        """Open, rename, export or delete the chat under the pointer (without opening it)."""
        conversation_id = item.data(ID_ROLE)
        menu = QMenu(self)
        menu.addAction("Open", lambda: self.list.setCurrentItem(item))
        menu.addAction("Rename", lambda: self.list.editItem(item))
        menu.addAction("Export…", lambda: self.export_requested.emit(conversation_id))
        menu.addSeparator()
        menu.addAction("Delete…", lambda: self.delete_requested.emit(conversation_id))
        return menu
