"""'What the model sees': the exact templated prompt of the last reply."""

from __future__ import annotations

from PySide6.QtGui import QFontDatabase, QGuiApplication
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)


class PromptDialog(QDialog):
    def __init__(self, prompt: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("What the model sees")
        self.resize(760, 560)
        layout = QVBoxLayout(self)
        note = QLabel(
            "The exact text of the last reply's prompt, after the model's chat "
            "template. Messages left out of the context window are not in it."
        )
        note.setWordWrap(True)
        layout.addWidget(note)
        self.text = QPlainTextEdit(prompt)
        self.text.setReadOnly(True)
        self.text.setAccessibleName("Prompt text")
        self.text.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.text.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        layout.addWidget(self.text, 1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        copy = buttons.addButton("Copy", QDialogButtonBox.ButtonRole.ActionRole)
        copy.setAccessibleName("Copy prompt")
        copy.clicked.connect(lambda: QGuiApplication.clipboard().setText(prompt))
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
