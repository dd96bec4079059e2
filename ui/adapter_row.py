"""Settings → Model → Adapter: a GGUF LoRA adapter applied on the model at load, and its
strength (`Settings.lora_path`, `Settings.lora_scale`). An adapter that does not fit the model
is refused at load with a banner naming both (`assistant.library.lora_check`)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QDoubleSpinBox,
    QFileDialog,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QWidget,
)

from assistant import paths
from assistant.settings import Settings
from assistant.types import RANGES


class AdapterRow(QWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        self.path_edit = QLineEdit()
        self.path_edit.setAccessibleName("LoRA adapter file (optional)")
        self.path_edit.setPlaceholderText("None: the model as it is")
        choose = QPushButton("Choose…")
        choose.setAccessibleName("Choose a GGUF LoRA adapter")
        choose.clicked.connect(self._browse)
        clear = QPushButton("None")
        clear.setAccessibleName("Use no adapter")
        clear.clicked.connect(self.path_edit.clear)
        spec = RANGES["lora_scale"]
        self.scale_spin = QDoubleSpinBox()
        self.scale_spin.setAccessibleName("Adapter strength")
        self.scale_spin.setRange(spec.low, spec.high)
        self.scale_spin.setSingleStep(0.1)
        self.scale_spin.setToolTip(spec.describe())
        for widget, stretch in ((self.path_edit, 1), (choose, 0), (clear, 0), (self.scale_spin, 0)):
            row.addWidget(widget, stretch)

    def load(self, settings: Settings) -> None:
        self.path_edit.setText(settings.lora_path)
        self.scale_spin.setValue(settings.lora_scale)

    def values(self) -> dict[str, object]:
        """The Settings fields this row edits."""
        return {"lora_path": self.path_edit.text().strip(), "lora_scale": self.scale_spin.value()}

    def _browse(self) -> None:
        start = paths.models_dir() / "adapters"
        path, _ = QFileDialog.getOpenFileName(
            self,
            "Choose a LoRA adapter",
            str(start if start.is_dir() else Path.home()),
            "GGUF adapters (*.gguf);;All files (*)",
        )
        if path:
            self.path_edit.setText(path)
