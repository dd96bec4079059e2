"""The adapter part of the convert dialog: the base model, and merge or keep as an adapter.

Shown when the chosen checkpoint is a PEFT adapter folder (adapter_config.json). The base is
offered from the adapter's own config (base_model_name_or_path) and from the library's converted
models whose Hugging Face folder is still there; any folder or cached Hub id can be typed.
"""

from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from assistant.errors import AssistantError

ADAPTER_CONFIG = "adapter_config.json"


def is_adapter_folder(text: str) -> bool:
    path = Path(text).expanduser() if text else None
    return bool(path and path.is_dir() and (path / ADAPTER_CONFIG).is_file())


def adapter_base(folder: str) -> str:
    """The base the adapter names (base_model_name_or_path), or ""."""
    try:
        data = json.loads((Path(folder).expanduser() / ADAPTER_CONFIG).read_text("utf-8"))
    except (OSError, ValueError):
        return ""
    base = data.get("base_model_name_or_path") if isinstance(data, dict) else None
    return base if isinstance(base, str) else ""


def converted_bases() -> list[tuple[str, str, str]]:
    """(label, Hugging Face folder, library id) of each converted library model whose source
    folder still exists."""
    from assistant.library import local as library

    try:
        models = library.list_models()
    except AssistantError:
        return []
    found = []
    for m in models:
        if m.kind == "converted" and m.source and Path(m.source).is_dir():
            found.append((f"{m.name} ({Path(m.source).name})", m.source, m.id))
    return found


def library_model_for(base: Path) -> str | None:
    """The library id of a model converted from the folder `base`, if there is one."""
    target = base.expanduser().resolve()
    for _label, folder, model_id in converted_bases():
        if Path(folder).resolve() == target:
            return model_id
    return None


class AdapterOptions(QGroupBox):
    changed = Signal()  # merge/keep switched: the dialog updates the types and the output

    def __init__(self, parent: QWidget | None = None):
        super().__init__("LoRA adapter", parent)
        self.setAccessibleName("Adapter options")
        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.base_combo = QComboBox()
        self.base_combo.setEditable(True)
        self.base_combo.setAccessibleName("Base model (folder or Hugging Face id)")
        self.base_combo.setToolTip(
            "The model the adapter was trained on: its Hugging Face folder, a model converted "
            "from it, or a Hub id already downloaded."
        )
        browse = QPushButton("Folder…")
        browse.setAccessibleName("Choose the base model folder")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.base_combo, 1)
        row.addWidget(browse)
        form.addRow("Base model:", row)
        layout.addLayout(form)
        self.merge_radio = QRadioButton("Merge into a new model")
        self.merge_radio.setAccessibleName("Merge the adapter into a new model")
        self.keep_radio = QRadioButton("Keep as an adapter, applied on the base when chatting")
        self.keep_radio.setAccessibleName("Keep as an adapter")
        self.merge_radio.setChecked(True)
        group = QButtonGroup(self)
        for button in (self.merge_radio, self.keep_radio):
            group.addButton(button)
            layout.addWidget(button)
        self.keep_radio.toggled.connect(lambda _on: self.changed.emit())

    def offer(self, adapter_folder: str) -> None:
        """Fill the base choices for this adapter (its own base first)."""
        self.base_combo.clear()
        own = adapter_base(adapter_folder)
        if own:
            self.base_combo.addItem(own, own)
        for label, folder, _model_id in converted_bases():
            if folder != own:
                self.base_combo.addItem(label, folder)

    def base(self) -> str:
        index = self.base_combo.currentIndex()
        text = self.base_combo.currentText().strip()
        if index >= 0 and text == self.base_combo.itemText(index):
            return str(self.base_combo.itemData(index) or text)
        return text

    def keep_adapter(self) -> bool:
        return self.keep_radio.isChecked()

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose the base model folder")
        if folder:
            self.base_combo.setEditText(folder)
