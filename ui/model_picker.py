"""The model picker in the window's header: the built-in model and the library's models, each
with its fit badge, plus "Other file…" and "Manage models…".

The list is read off the GUI thread (GGUF headers, free memory) and drawn when it is ready, so
opening the picker never stalls the window: it shows the last list at once and refreshes it in
the background. Choosing a model only asks for it; the window checks and loads it, and the
picker shows the model actually loaded once the load has ended.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QPaintEvent
from PySide6.QtWidgets import QComboBox, QStyle, QStyleOptionComboBox, QStylePainter, QWidget

from assistant.errors import AssistantError

from .tasks import Task

OTHER_FILE = "\x00other"  # item data of the two commands at the end of the list
MANAGE = "\x00manage"
STALE_S = 10.0  # a list older than this is read again when the picker opens
TOOLTIP = Qt.ItemDataRole.ToolTipRole
NAME = Qt.ItemDataRole.UserRole + 1  # the model's name alone, shown when the list is closed


@dataclass(frozen=True)
class ModelChoice:
    value: str  # what `Settings.model` holds for it: "" (built in), a library id, or a path
    name: str
    badge: str  # "built in · CPU only (no GPU found)"
    path: str

    @property
    def label(self) -> str:
        return f"{self.name} · {self.badge}" if self.badge else self.name


def scan_models(n_ctx: int) -> list[ModelChoice]:
    """The usable models with their fit at `n_ctx` (reads headers: run it off the GUI thread)."""
    from assistant.library import fit
    from assistant.library.local import EMBEDDED_ID, list_models
    from assistant.library.memory import detect_memory
    from assistant.library.sizes import format_bytes

    memory = detect_memory()
    choices = []
    for m in list_models():
        try:
            verdict = fit.fit(m.info, n_ctx, memory).badge
        except (AssistantError, OSError):
            verdict = "fit unknown"
        kind = "built in" if m.id == EMBEDDED_ID else m.kind
        badge = f"{kind} · {format_bytes(m.size)} · {verdict}"
        value = "" if m.id == EMBEDDED_ID else m.id
        choices.append(ModelChoice(value, m.name, badge, str(m.path)))
    return choices


class ModelPicker(QComboBox):
    model_chosen = Signal(str)  # a Settings.model value
    other_file_requested = Signal()
    manage_requested = Signal()
    scanned = Signal()  # the list was read again (tests wait for it)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setAccessibleName("Model")
        self.setToolTip("The model that writes the replies; each with how it fits this computer")
        self.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.setMinimumContentsLength(12)
        self.view().setMinimumWidth(420)
        self.n_ctx = 4096
        self.current = ""  # the loaded model's value
        self._choices: list[ModelChoice] = []
        self._scanned_at = 0.0
        self._task: Task | None = None
        self._show(None)
        self.activated.connect(self._on_activated)

    # -- the list ----------------------------------------------------------------------------
    def refresh(self, n_ctx: int | None = None) -> None:
        """Read the list again in the background (one scan at a time)."""
        if n_ctx is not None:
            self.n_ctx = n_ctx
        if self._task is not None and self._task.isRunning():
            return
        ctx = self.n_ctx

        def work(_report: Callable[[Any], None], _cancel: threading.Event) -> list[ModelChoice]:
            return scan_models(ctx)

        self._task = Task(work, self)
        self._task.done.connect(self._on_scanned)
        self._task.failed.connect(lambda _message: self.scanned.emit())
        self._task.start()

    def shutdown(self) -> None:
        if self._task is not None:
            self._task.wait()

    def choices(self) -> list[ModelChoice]:
        return list(self._choices)

    def showPopup(self) -> None:  # noqa: N802 (Qt override)
        if time.monotonic() - self._scanned_at > STALE_S:
            self.refresh()  # the list shown now is the last one; the new one replaces it
        super().showPopup()

    def _on_scanned(self, choices: list[ModelChoice]) -> None:
        self._choices = choices
        self._scanned_at = time.monotonic()
        if not self.view().isVisible():  # never rebuild the list under the user's pointer
            self._show(None)
        self.scanned.emit()

    # -- what is shown ---------------------------------------------------------------------
    def set_current(self, value: str, name: str = "") -> None:
        """The loaded model (`value` as in Settings.model, `name` as the model calls itself)."""
        self.current = value
        self._show(name)

    def _show(self, name: str | None) -> None:
        self.blockSignals(True)
        try:
            self.clear()
            choices = list(self._choices)
            if not any(c.value == self.current for c in choices):
                label = name or ("Built-in model" if not self.current else self.current)
                choices.insert(0, ModelChoice(self.current, label, "", self.current))
            for choice in choices:
                self.addItem(choice.label, choice.value)
                self.setItemData(self.count() - 1, choice.path or choice.name, TOOLTIP)
                self.setItemData(self.count() - 1, choice.name, NAME)
            self.insertSeparator(self.count())
            self.addItem("Other GGUF file…", OTHER_FILE)
            self.addItem("Manage models…", MANAGE)
            self.setCurrentIndex(max(self.findData(self.current), 0))
        finally:
            self.blockSignals(False)

    def paintEvent(self, _event: QPaintEvent) -> None:  # noqa: N802 (Qt override)
        """Closed, the picker shows the model's name; the badges are in the open list."""
        painter = QStylePainter(self)
        option = QStyleOptionComboBox()
        self.initStyleOption(option)
        name = self.itemData(self.currentIndex(), NAME)
        if name:
            option.currentText = name
        painter.drawComplexControl(QStyle.ComplexControl.CC_ComboBox, option)
        painter.drawControl(QStyle.ControlElement.CE_ComboBoxLabel, option)

    def _on_activated(self, index: int) -> None:
        value = self.itemData(index)
        self.setCurrentIndex(max(self.findData(self.current), 0))  # until the load has ended
        if value == OTHER_FILE:
            self.other_file_requested.emit()
        elif value == MANAGE:
            self.manage_requested.emit()
        elif value is not None and value != self.current:
            self.model_chosen.emit(value)
