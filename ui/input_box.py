"""The message box: Enter sends, Shift+Enter is a newline; long pastes and dropped documents
are offered to the window (summarize or send) instead of silently filling the box."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QMimeData, Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QPlainTextEdit, QWidget

LONG_TEXT = 2000  # characters: a paste this long is probably a document
MIN_LINES, MAX_LINES = 2, 10


class InputBox(QPlainTextEdit):
    send_requested = Signal()
    long_text = Signal(str, str)  # text, where it came from ("pasted text" or a file name)
    failed = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setAccessibleName("Message")
        self.setPlaceholderText("Message the assistant — Enter sends, Shift+Enter for a new line")
        self.setTabChangesFocus(True)
        self.document().contentsChanged.connect(self._fit)
        self._fit()

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            if event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
                self.insertPlainText("\n")
            else:
                self.send_requested.emit()
            return
        super().keyPressEvent(event)

    def canInsertFromMimeData(self, source: QMimeData) -> bool:  # noqa: N802
        return source.hasUrls() or super().canInsertFromMimeData(source)

    def insertFromMimeData(self, source: QMimeData) -> None:  # noqa: N802
        files = [url.toLocalFile() for url in source.urls() if url.isLocalFile()]
        if files:
            self._take_file(Path(files[0]))
            return
        text = source.text()
        if len(text) >= LONG_TEXT:
            self.long_text.emit(text, "pasted text")
            return
        super().insertFromMimeData(source)

    def _take_file(self, path: Path) -> None:
        """Any supported document (text, Markdown, HTML, PDF, Word) is read into text; a short
        plain-text file goes into the box, anything else is offered for a summary."""
        from assistant.documents.readers import TEXT_SUFFIXES, load_document
        from assistant.errors import InvalidInputError

        try:
            document = load_document(path)
        except InvalidInputError as exc:
            self.failed.emit(str(exc))
            return
        if len(document.text) < LONG_TEXT and path.suffix.lower() in TEXT_SUFFIXES:
            self.insertPlainText(document.text)
        else:
            self.long_text.emit(document.text, document.name)

    def _fit(self) -> None:
        lines = max(MIN_LINES, min(MAX_LINES, self.document().lineCount()))
        height = self.fontMetrics().lineSpacing() * lines
        margins = self.contentsMargins()
        frame = int(self.document().documentMargin() * 2) + margins.top() + margins.bottom()
        self.setFixedHeight(height + frame + 4)
