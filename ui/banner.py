"""A dismissible strip above the input for errors and notices (never a traceback)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QToolButton, QWidget

STYLES = {
    "error": "QFrame#banner { background: #f8d7da; border: 1px solid #e0a0a8; border-radius: 6px; }"
    " QFrame#banner QLabel { color: #58151c; }",
    "info": "QFrame#banner { background: #dbe9f9; border: 1px solid #a9c6ea; border-radius: 6px; }"
    " QFrame#banner QLabel { color: #0c2c52; }",
}


class Banner(QFrame):
    dismissed = Signal()  # the user closed it (or used one of its actions)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("banner")
        self.kind = "info"
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 6, 6)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.label.setAccessibleName("Notice")
        layout.addWidget(self.label, 1)
        self._actions_layout = QHBoxLayout()
        layout.addLayout(self._actions_layout)
        self.close_button = QToolButton()
        self.close_button.setText("✕")
        self.close_button.setAccessibleName("Dismiss notice")
        self.close_button.setToolTip("Dismiss")
        self.close_button.clicked.connect(self.dismiss)
        layout.addWidget(self.close_button)
        self.hide()

    def show_message(
        self,
        text: str,
        kind: str = "error",
        actions: Sequence[tuple[str, Callable[[], object]]] = (),
    ) -> None:
        self.kind = kind
        self.setStyleSheet(STYLES.get(kind, STYLES["info"]))
        self.label.setText(text)
        self.setAccessibleDescription(text)
        self._clear_actions()
        for title, callback in actions:
            button = QPushButton(title)
            button.setAccessibleName(title)
            button.clicked.connect(self.dismiss)
            button.clicked.connect(callback)
            self._actions_layout.addWidget(button)
        self.show()

    def text(self) -> str:
        return self.label.text() if self.isVisibleTo(self.parentWidget()) else ""

    def action_buttons(self) -> list[QPushButton]:
        return [
            self._actions_layout.itemAt(i).widget() for i in range(self._actions_layout.count())
        ]

    def dismiss(self) -> None:
        was_shown = not self.isHidden()
        self.clear()
        if was_shown:
            self.dismissed.emit()

    def clear(self) -> None:
        """Hide it without telling anyone (another chat's notices are shown instead)."""
        self.hide()
        self._clear_actions()

    def _clear_actions(self) -> None:
        while self._actions_layout.count():
            widget = self._actions_layout.takeAt(0).widget()
            if widget is not None:
                widget.deleteLater()
