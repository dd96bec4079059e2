"""The model indicator in the status bar: loading (with a busy bar), loaded, or none."""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QWidget


class ModelStatus(QWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        self.load_bar = QProgressBar()
        self.load_bar.setRange(0, 0)
        self.load_bar.setMaximumWidth(140)
        self.load_bar.setMaximumHeight(14)
        self.load_bar.setAccessibleName("Model loading")
        self.load_bar.hide()
        self.label = QLabel("Starting…")
        self.label.setAccessibleName("Model status")
        row.addWidget(self.load_bar)
        row.addWidget(self.label)

    def loading(self, name: str = "") -> None:
        self.label.setText(f"Loading {name}…" if name else "Loading the model…")
        self.load_bar.show()

    def loaded(self, info: Any) -> None:
        self.load_bar.hide()
        self.label.setText(f"{info.name} · {info.quantization} · {info.runs_on}")
        self.label.setToolTip(info.path)

    def failed(self, message: str) -> None:
        self.load_bar.hide()
        self.label.setText("No model loaded")
        self.label.setToolTip(message)
