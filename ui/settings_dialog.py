"""Settings: model file and how it loads, system prompt (with presets), sampling, policy,
and how documents are summarized.

The dialog only edits values; the window decides what to reload and what to persist.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from assistant import paths
from assistant.documents.options import LENGTHS, SummaryOptions
from assistant.errors import AssistantError
from assistant.settings import Settings
from assistant.types import AUTO_GPU_LAYERS, CTX_MIN, RANGES, Policy, SamplingOptions

from .adapter_row import AdapterRow
from .cache_row import ExactSlideCheck, SavedCacheRow
from .server_settings import ServerGroup

PRESETS: dict[str, str] = {
    "None (model default)": "",
    "Helpful assistant": "You are a helpful, accurate assistant. Answer clearly and say when "
    "you are not sure.",
    "Concise": "Answer in as few words as possible, without preamble.",
    "Programmer": "You are an expert programmer. Give working code in fenced code blocks that "
    "name the language, then a short explanation.",
    "Editor": "You are a careful editor. Improve clarity and grammar while keeping the author's "
    "voice, and briefly explain important changes.",
}
CUSTOM = "Custom"
POLICY_NAMES = {
    "drop": "Drop oldest turns",
    "summarize": "Summarize old turns",
    "stop": "Stop at the limit",
}
SUMMARY_LENGTHS = {
    name: f"{name.capitalize()} ({count} points)" for name, (_, count) in LENGTHS.items()
}
EMBEDDED_LABEL = "Built-in model (SmolLM2 135M Instruct)"
TOOLTIP = Qt.ItemDataRole.ToolTipRole
GPU_MODES = (
    ("Automatic (as many as fit)", AUTO_GPU_LAYERS),
    ("CPU only", 0),
    ("All layers", -1),
    ("This many layers:", 1),
)


def library_models() -> list[tuple[str, str, str]]:
    """(label, settings value, tooltip) for each usable model: downloaded, imported, local."""
    try:
        from assistant.library.local import list_models

        models = list_models()
    except (AssistantError, OSError):  # the picker still offers the embedded model and Browse
        return []
    return [(f"{m.name} ({m.kind})", m.id, str(m.path)) for m in models if m.kind != "embedded"]


def gpu_line(gpu_supported: bool | None, gpus: tuple[str, ...] | None) -> str:
    """Why the model runs on the CPU whatever is chosen, or "" when a GPU can be used (or it is
    not known yet: no model loaded)."""
    if gpus is not None and not gpus:
        return "No GPU found: the model runs on the CPU."
    if gpu_supported is False:
        return "This llama.cpp build has no GPU support: the model runs on the CPU."
    return ""


class SettingsDialog(QDialog):
    def __init__(
        self,
        settings: Settings,
        *,
        system_prompt: str | None = None,
        sampling: dict[str, Any] | None = None,
        gpu_supported: bool | None = None,
        gpus: tuple[str, ...] | None = None,
        server_state: str = "",
        parent: QWidget | None = None,
    ):
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.setObjectName("settingsDialog")
        self._settings = settings
        layout = QVBoxLayout(self)
        self._cpu_only = gpu_line(gpu_supported, gpus)
        # the groups scroll, the buttons stay: the dialog fits a small screen
        groups = QWidget()
        column = QVBoxLayout(groups)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(self._model_group())
        column.addWidget(self._prompt_group())
        column.addWidget(self._sampling_group())
        column.addWidget(self._summary_group())
        self.server_group = ServerGroup(server_state)
        column.addWidget(self.server_group)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(groups)
        self._scroll = scroll
        layout.addWidget(scroll, 1)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok
            | QDialogButtonBox.StandardButton.Cancel
            | QDialogButtonBox.StandardButton.RestoreDefaults
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        defaults = buttons.button(QDialogButtonBox.StandardButton.RestoreDefaults)
        defaults.setAccessibleName("Restore default settings")
        defaults.clicked.connect(
            lambda: self._load(
                Settings(model=self._settings.model), "", SamplingOptions().to_dict()
            )
        )
        layout.addWidget(buttons)
        self._fit_screen(groups, buttons)
        self._load(
            settings,
            settings.system_prompt if system_prompt is None else system_prompt,
            sampling if sampling is not None else settings.sampling,
        )

    # -- layout ----------------------------------------------------------------------------
    def _fit_screen(self, groups: QWidget, buttons: QWidget) -> None:
        """Open showing every group when the screen is tall enough; else scroll them."""
        hint = groups.sizeHint()
        bar = self._scroll.verticalScrollBar().sizeHint().width()
        width = hint.width() + bar + 2 * self.layout().contentsMargins().left()
        height = hint.height() + buttons.sizeHint().height() + 40
        screen = self.screen()
        if screen is not None:
            height = min(height, int(screen.availableGeometry().height() * 0.9))
        self.resize(width, height)

    def _model_group(self) -> QGroupBox:
        box = QGroupBox("Model")
        form = QFormLayout(box)
        row = QHBoxLayout()
        self.model_combo = QComboBox()
        self.model_combo.setAccessibleName("Model file")
        self.model_combo.setMinimumWidth(340)
        self.browse_button = QPushButton("Browse…")
        self.browse_button.setAccessibleName("Choose a GGUF model file")
        self.browse_button.clicked.connect(self._browse)
        row.addWidget(self.model_combo, 1)
        row.addWidget(self.browse_button)
        form.addRow("Model:", row)
        self.adapter_row = AdapterRow()  # issue 16: a LoRA adapter applied at load
        form.addRow("Adapter:", self.adapter_row)
        self.ctx_spin = self._spin_for("n_ctx", "Context size in tokens", step=CTX_MIN)
        form.addRow("Context size:", self.ctx_spin)
        # 0 shows "Automatic"; more threads than CPUs are lowered to the CPU count when loading
        threads = min(RANGES["n_threads"].high, os.cpu_count() or 2)
        self.threads_spin = self._spin(0, int(threads), "CPU threads")
        self.threads_spin.setSpecialValueText("Automatic")
        form.addRow("Threads:", self.threads_spin)
        gpu_row = QHBoxLayout()
        self.gpu_mode = QComboBox()
        self.gpu_mode.setAccessibleName("GPU offload")
        for label, value in GPU_MODES:
            self.gpu_mode.addItem(label, value)
        self.gpu_spin = self._spin(1, int(RANGES["n_gpu_layers"].high), "Layers on the GPU")
        self.gpu_mode.currentIndexChanged.connect(
            lambda _i: self.gpu_spin.setVisible(self.gpu_mode.currentData() == 1)
        )
        gpu_row.addWidget(self.gpu_mode, 1)
        gpu_row.addWidget(self.gpu_spin)
        self.gpu_note = QLabel(self._cpu_only)
        self.gpu_note.setObjectName("gpuNote")
        self.gpu_note.setWordWrap(True)
        self.gpu_note.setVisible(bool(self._cpu_only))
        gpu_row.addWidget(self.gpu_note, 2)
        if self._cpu_only:  # nothing to choose: say why instead of offering layers
            self.gpu_mode.setToolTip(self._cpu_only)
            self.gpu_mode.setEnabled(False)
        form.addRow("GPU:", gpu_row)
        self.flash_check = QCheckBox("Flash attention")
        self.flash_check.setAccessibleName("Flash attention")
        form.addRow("", self.flash_check)
        self.chat_format_combo = formats = QComboBox()
        formats.setAccessibleName("Chat format")
        formats.addItem("The model's chat template", "model")
        formats.addItem("Plain transcript (for a model whose template fails)", "plain")
        form.addRow("Chat format:", formats)
        return box

    def _prompt_group(self) -> QGroupBox:
        box = QGroupBox("Conversation (this chat, and the default for new chats)")
        form = QFormLayout(box)
        self.preset_combo = QComboBox()
        self.preset_combo.setAccessibleName("System prompt preset")
        self.preset_combo.addItems([*PRESETS, CUSTOM])
        self.preset_combo.activated.connect(self._apply_preset)
        form.addRow("Preset:", self.preset_combo)
        self.system_edit = QPlainTextEdit()
        self.system_edit.setAccessibleName("System prompt")
        self.system_edit.setPlaceholderText("Instructions the model gets before the conversation")
        self.system_edit.setMaximumHeight(90)
        self.system_edit.setTabChangesFocus(True)
        self.system_edit.textChanged.connect(self._sync_preset)
        form.addRow("System prompt:", self.system_edit)
        self.policy_combo = QComboBox()
        self.policy_combo.setAccessibleName("Default context policy")
        for policy in Policy:
            self.policy_combo.addItem(POLICY_NAMES[policy.value], policy.value)
        form.addRow("New chats, when full:", self.policy_combo)
        self.exact_slide = ExactSlideCheck(self._settings)
        form.addRow("", self.exact_slide)
        self.saved_caches = SavedCacheRow(self._settings)
        form.addRow("Saved caches:", self.saved_caches)
        return box

    def _sampling_group(self) -> QGroupBox:
        box = QGroupBox("Sampling")
        form = QFormLayout(box)
        self.temperature = self._double_for("temperature", 0.05, "Temperature")
        self.top_p = self._double_for("top_p", 0.01, "Top-p")
        self.top_k = self._spin_for("top_k", "Top-k")
        self.min_p = self._double_for("min_p", 0.01, "Min-p")
        self.repeat_penalty = self._double_for("repeat_penalty", 0.01, "Repeat penalty")
        self.max_tokens = self._spin_for("max_tokens", "Longest reply in tokens", step=16)
        self.seed = self._spin(-1, int(RANGES["seed"].high), "Seed")  # -1: random
        self.seed.setSpecialValueText("Random")
        for label, widget in (
            ("Temperature:", self.temperature),
            ("Top-p:", self.top_p),
            ("Top-k:", self.top_k),
            ("Min-p:", self.min_p),
            ("Repeat penalty:", self.repeat_penalty),
            ("Max tokens:", self.max_tokens),
            ("Seed:", self.seed),
        ):
            form.addRow(label, widget)
        form.addRow(QLabel("Applies to this chat and to new chats."))
        return box

    def _summary_group(self) -> QGroupBox:
        box = QGroupBox("Document summaries")
        form = QFormLayout(box)
        self.summary_length = QComboBox()
        self.summary_length.setAccessibleName("Summary length")
        for value, label in SUMMARY_LENGTHS.items():
            self.summary_length.addItem(label, value)
        form.addRow("Length:", self.summary_length)
        self.summary_bullets = QCheckBox("As bullet points (otherwise prose)")
        self.summary_bullets.setAccessibleName("Summaries as bullet points")
        form.addRow("", self.summary_bullets)
        return box

    def _spin(self, low: int, high: int, name: str, step: int = 1) -> QSpinBox:
        spin = QSpinBox()
        spin.setRange(low, high)
        spin.setSingleStep(step)
        spin.setAccessibleName(name)
        return spin

    def _double(self, low: float, high: float, step: float, name: str) -> QDoubleSpinBox:
        spin = QDoubleSpinBox()
        spin.setDecimals(2)
        spin.setRange(low, high)
        spin.setSingleStep(step)
        spin.setAccessibleName(name)
        return spin

    # The spin boxes hold exactly the ranges the core accepts (assistant.types.RANGES).
    def _spin_for(self, field: str, name: str, step: int = 1) -> QSpinBox:
        spec = RANGES[field]
        return self._spin(int(spec.low), int(spec.high), name, step)

    def _double_for(self, field: str, step: float, name: str) -> QDoubleSpinBox:
        spec = RANGES[field]
        low = spec.low + 0.01 if spec.low_open else spec.low  # the smallest step above it
        return self._double(low, spec.high, step, name)

    # -- values ----------------------------------------------------------------------------
    def _load(self, settings: Settings, system_prompt: str, sampling: dict[str, Any]) -> None:
        self.model_combo.clear()
        self.model_combo.addItem(EMBEDDED_LABEL, "")
        for label, value, tip in library_models():
            self.model_combo.addItem(label, value)
            self.model_combo.setItemData(self.model_combo.count() - 1, tip, TOOLTIP)
        self._select_model(settings.model)
        self.ctx_spin.setValue(settings.n_ctx)
        self.threads_spin.setValue(settings.n_threads or 0)
        layers = settings.n_gpu_layers
        mode = layers if layers in (AUTO_GPU_LAYERS, 0, -1) else 1
        if self._cpu_only:
            mode = 0  # shown as what happens; the saved choice is kept (see gpu_layers)
        self.gpu_mode.setCurrentIndex(max(self.gpu_mode.findData(mode), 0))
        self.gpu_spin.setValue(layers if mode == 1 else 8)
        self.gpu_spin.setVisible(mode == 1)
        self.flash_check.setChecked(settings.flash_attn)
        formats = self.chat_format_combo
        formats.setCurrentIndex(max(formats.findData(settings.chat_format), 0))
        self.adapter_row.load(settings)
        self.system_edit.setPlainText(system_prompt)
        self.policy_combo.setCurrentIndex(max(self.policy_combo.findData(settings.policy), 0))
        s = SamplingOptions.from_dict(sampling)
        self.temperature.setValue(s.temperature)
        self.top_p.setValue(s.top_p)
        self.top_k.setValue(s.top_k)
        self.min_p.setValue(s.min_p)
        self.repeat_penalty.setValue(s.repeat_penalty)
        self.max_tokens.setValue(s.max_tokens)
        self.seed.setValue(-1 if s.seed is None else s.seed)
        summary = SummaryOptions.from_settings(settings)
        self.summary_length.setCurrentIndex(self.summary_length.findData(summary.length))
        self.summary_bullets.setChecked(summary.bullets)
        self.server_group.load(settings)

    def _select_model(self, model: str) -> None:
        index = self.model_combo.findData(model)
        if index < 0:  # a path given as a library entry is the same model
            tips = [self.model_combo.itemData(i, TOOLTIP) for i in range(self.model_combo.count())]
            index = tips.index(model) if model in tips else -1
        if index < 0:
            self.model_combo.addItem(Path(model).name, model)
            index = self.model_combo.count() - 1
            self.model_combo.setItemData(index, model, TOOLTIP)
        self.model_combo.setCurrentIndex(index)

    def _browse(self) -> None:
        start = str(paths.models_dir())
        path, _ = QFileDialog.getOpenFileName(
            self, "Choose a model", start, "GGUF models (*.gguf);;All files (*)"
        )
        if path:
            self._select_model(path)

    def _apply_preset(self, index: int) -> None:
        name = self.preset_combo.itemText(index)
        if name in PRESETS:
            self.system_edit.setPlainText(PRESETS[name])

    def _sync_preset(self) -> None:
        text = self.system_edit.toPlainText().strip()
        names = [name for name, value in PRESETS.items() if value == text]
        self.preset_combo.setCurrentText(names[0] if names else CUSTOM)

    def system_prompt(self) -> str:
        return self.system_edit.toPlainText().strip()

    def sampling(self) -> dict[str, Any]:
        base = SamplingOptions.from_dict(self._settings.sampling)
        seed = self.seed.value()
        return replace(
            base,
            temperature=self.temperature.value(),
            top_p=self.top_p.value(),
            top_k=self.top_k.value(),
            min_p=self.min_p.value(),
            repeat_penalty=self.repeat_penalty.value(),
            max_tokens=self.max_tokens.value(),
            seed=None if seed < 0 else seed,
        ).to_dict()

    def gpu_layers(self) -> int:
        if self._cpu_only:  # the line was only shown as "CPU only": keep what was chosen
            return self._settings.n_gpu_layers
        mode = self.gpu_mode.currentData()
        return self.gpu_spin.value() if mode == 1 else mode

    def settings(self) -> Settings:
        """The edited settings (a new object; the caller saves it)."""
        threads = self.threads_spin.value()
        return replace(
            self._settings,
            model=self.model_combo.currentData() or "",
            n_ctx=self.ctx_spin.value(),
            n_threads=threads or None,
            n_gpu_layers=self.gpu_layers(),
            flash_attn=self.flash_check.isChecked(),
            chat_format=self.chat_format_combo.currentData(),
            **self.adapter_row.values(),
            system_prompt=self.system_prompt(),
            policy=self.policy_combo.currentData(),
            sampling=self.sampling(),
            summary_length=self.summary_length.currentData(),
            summary_bullets=self.summary_bullets.isChecked(),
            exact_slide=self.exact_slide.isChecked(),
            **self.server_group.values(),
        )
