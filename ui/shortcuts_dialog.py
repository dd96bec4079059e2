"""Help → Keyboard shortcuts: every shortcut of the menus, and the keys that work in place."""

from __future__ import annotations

from collections.abc import Iterable

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

IN_PLACE = (
    ("Enter", "Send the message (in the message box); resend an edited message"),
    ("Shift+Enter", "New line in the message box"),
    ("Esc", "Stop the reply; cancel an edit; clear the chat search"),
    ("Tab / Shift+Tab", "Message box → Send → newest message → older messages → …"),
    ("Ctrl+A, Ctrl+C", "Select and copy a message's text (when it has the focus)"),
    ("F2", "Rename the selected chat (in the chat list)"),
    ("Delete", "Delete the selected chat (in the chat list, asked first)"),
    ("Menu key / right click", "Actions of a message or a chat"),
)


def menu_shortcuts(actions: Iterable[QAction]) -> list[tuple[str, str]]:
    rows = []
    for action in actions:
        keys = action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
        if keys:
            rows.append((keys, action.text().replace("&", "").rstrip("…")))
    return rows


class ShortcutsDialog(QDialog):
    def __init__(self, actions: Iterable[QAction], parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        self.resize(560, 460)
        layout = QVBoxLayout(self)
        rows = [*menu_shortcuts(actions), *IN_PLACE]
        self.table = QTableWidget(len(rows), 2)
        self.table.setAccessibleName("Keyboard shortcuts")
        self.table.setHorizontalHeaderLabels(["Keys", "What they do"])
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        for row, (keys, what) in enumerate(rows):
            self.table.setItem(row, 0, QTableWidgetItem(keys))
            self.table.setItem(row, 1, QTableWidgetItem(what))
        layout.addWidget(self.table, 1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def rows(self) -> list[tuple[str, str]]:
        return [
            (self.table.item(r, 0).text(), self.table.item(r, 1).text())
            for r in range(self.table.rowCount())
        ]
