"""The header above the messages: the chat's title, the model picker, the context policy and
meter, and "What the model sees". It rearranges itself to the width it gets: one row when
everything fits, two rows when not, and on a narrow window three rows, with "What the model
sees" moved into a "⋯" menu, so nothing overlaps or is cut off down to 640×480."""

from __future__ import annotations

from PySide6.QtGui import QAction, QResizeEvent
from PySide6.QtWidgets import (
    QComboBox,
    QGridLayout,
    QLabel,
    QMenu,
    QPushButton,
    QToolButton,
    QWidget,
)

from assistant.types import Policy

from .context_meter import ContextMeter
from .elided_label import ElidedLabel
from .model_picker import ModelPicker
from .settings_dialog import POLICY_NAMES


class ChatHeader(QWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.title_label = ElidedLabel()
        self.title_label.setObjectName("conversationTitle")
        self.title_label.setAccessibleName("Conversation title")
        font = self.title_label.font()
        font.setBold(True)
        self.title_label.setFont(font)
        self.model_picker = ModelPicker()
        self.policy_label = QLabel("When full:")
        self.policy_combo = QComboBox()
        self.policy_combo.setAccessibleName("Context policy for this conversation")
        self.policy_combo.setToolTip(
            "What happens when this conversation outgrows the context window"
        )
        for policy in Policy:
            self.policy_combo.addItem(POLICY_NAMES[policy.value], policy.value)
        self.meter = ContextMeter()
        self.prompt_button = QPushButton("What the model sees")
        self.prompt_button.setAccessibleName("What the model sees")
        self.prompt_button.setToolTip("Show the exact prompt of the next reply (Ctrl+Shift+P)")
        self.more_button = QToolButton()
        self.more_button.setText("⋯")
        self.more_button.setAccessibleName("More chat actions")
        self.more_button.setToolTip("More")
        self.more_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.more_button)
        self.prompt_action = QAction("What the model sees", menu)
        self.prompt_action.triggered.connect(self.prompt_button.click)
        menu.addAction(self.prompt_action)
        self.more_button.setMenu(menu)
        self._grid = QGridLayout(self)
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._grid.setHorizontalSpacing(6)
        self._grid.setVerticalSpacing(4)
        self.rows = 0
        self._arrange(1)

    def widgets(self) -> list[QWidget]:
        return [
            self.title_label,
            self.model_picker,
            self.policy_label,
            self.policy_combo,
            self.meter,
            self.prompt_button,
            self.more_button,
        ]

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802
        super().resizeEvent(event)
        rows = self._rows_for(event.size().width())
        if rows != self.rows:
            self._arrange(rows)

    def _rows_for(self, width: int) -> int:
        def need(*widgets: QWidget) -> int:
            hints = [w.minimumSizeHint().width() or w.sizeHint().width() for w in widgets]
            return sum(max(h, w.minimumWidth()) for h, w in zip(hints, widgets, strict=True)) + (
                6 * (len(widgets) - 1)
            )

        title = 160  # room the title keeps before the header breaks into rows
        controls = (self.model_picker, self.policy_label, self.policy_combo, self.meter)
        if title + need(*controls, self.prompt_button) + 6 <= width:
            return 1
        if need(*controls) <= width:
            return 2
        return 3

    def _arrange(self, rows: int) -> None:
        grid = self._grid
        for widget in self.widgets():
            grid.removeWidget(widget)
        for column in range(8):
            grid.setColumnStretch(column, 0)
        self.rows = rows
        if rows == 1:
            placed = [
                (self.title_label, 0, 0, 1, 1),
                (self.model_picker, 0, 1, 1, 1),
                (self.policy_label, 0, 2, 1, 1),
                (self.policy_combo, 0, 3, 1, 1),
                (self.meter, 0, 4, 1, 1),
                (self.prompt_button, 0, 5, 1, 1),
            ]
            grid.setColumnStretch(0, 1)
        elif rows == 2:
            placed = [
                (self.title_label, 0, 0, 1, 4),
                (self.prompt_button, 0, 4, 1, 1),
                (self.model_picker, 1, 0, 1, 1),
                (self.policy_label, 1, 1, 1, 1),
                (self.policy_combo, 1, 2, 1, 1),
                (self.meter, 1, 3, 1, 2),
            ]
            grid.setColumnStretch(3, 1)
        else:
            placed = [
                (self.title_label, 0, 0, 1, 1),
                (self.more_button, 0, 1, 1, 1),
                (self.model_picker, 1, 0, 1, 2),
                (self.policy_combo, 2, 0, 1, 1),
                (self.meter, 2, 1, 1, 1),
            ]
            grid.setColumnStretch(0, 1)
        shown = {w for w, *_ in placed}
        for widget, row, column, height, width in placed:
            grid.addWidget(widget, row, column, height, width)
        for widget in self.widgets():
            widget.setVisible(widget in shown)
