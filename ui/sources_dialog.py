"""The source passages behind a summary: pick a point, see its ranges highlighted in the text."""

from __future__ import annotations

from typing import Any

from PySide6.QtGui import QColor, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QListWidget,
    QPlainTextEdit,
    QSplitter,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

HIGHLIGHT = QColor("#ffe38a")


class SourcesDialog(QDialog):
    def __init__(
        self, name: str, text: str, summary: dict[str, Any], parent: QWidget | None = None
    ):
        super().__init__(parent)
        self.setWindowTitle(f"Sources: {name}")
        self.resize(900, 600)
        self._sources = summary.get("sources") or []
        self.points = QListWidget()
        self.points.setAccessibleName("Summary points")
        self.points.setWordWrap(True)
        self.points.setSpacing(4)
        self.points.setAlternatingRowColors(True)
        for source in self._sources:
            self.points.addItem(source["point"])
        self.document = QPlainTextEdit(text)
        self.document.setReadOnly(True)
        self.document.setAccessibleName("Source document")
        self.points.currentRowChanged.connect(self.show_point)
        splitter = QSplitter()
        splitter.addWidget(self.points)
        splitter.addWidget(self.document)
        splitter.setSizes([300, 600])
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(splitter, 1)
        layout.addWidget(buttons)
        if self._sources:
            self.points.setCurrentRow(0)

    def show_point(self, row: int) -> None:
        """Highlight the point's source ranges and scroll the first into view."""
        ranges = self._sources[row]["ranges"] if 0 <= row < len(self._sources) else []
        size = len(self.document.toPlainText())
        selections = []
        fmt = QTextCharFormat()
        fmt.setBackground(HIGHLIGHT)
        for start, end in ranges:
            selection = QTextEdit.ExtraSelection()
            selection.format = fmt
            selection.cursor = self._cursor(min(start, size), min(end, size))
            selections.append(selection)
        self.document.setExtraSelections(selections)
        if selections:  # scroll the whole first range into view, cursor left at its start
            for position in (ranges[0][1], ranges[0][0]):
                self.document.setTextCursor(self._cursor(min(position, size), min(position, size)))
                self.document.ensureCursorVisible()

    def highlighted(self) -> list[tuple[int, int]]:
        return [
            (s.cursor.selectionStart(), s.cursor.selectionEnd())
            for s in self.document.extraSelections()
        ]

    def _cursor(self, anchor: int, position: int) -> QTextCursor:
        cursor = QTextCursor(self.document.document())
        cursor.setPosition(anchor)
        cursor.setPosition(position, QTextCursor.MoveMode.KeepAnchor)
        return cursor
