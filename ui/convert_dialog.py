"""Convert a model…: a PyTorch / Hugging Face / nanoGPT checkpoint, or a PEFT LoRA adapter
folder, to GGUF, off the GUI thread.

The conversion runs in a QThread and reports through queued signals; Cancel sets an event
the converter checks between tensors. On success "Chat with it" registers the file in the
library and asks the window (signal `model_chosen`) to make it the model. An adapter is merged
into its base (a new model), or kept as a GGUF adapter: then "Chat with it" loads the base's
GGUF from the library with the adapter applied (signal `adapter_chosen`), converting the base
first when the library has no model made from it.
"""

from __future__ import annotations

import sys
import threading
import traceback
from pathlib import Path
from typing import Any

from PySide6.QtCore import QThread, Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from assistant import paths
from assistant.errors import AssistantError
from assistant.library.sizes import format_bytes
from tools.convert.out_types import DIRECT_TYPES, OUT_TYPES

from .convert_adapter import AdapterOptions, is_adapter_folder, library_model_for

STAGES = {"writing": "Writing", "quantizing": "Quantizing to", "verifying": "Verifying:"}


class ConvertThread(QThread):
    """Runs tools.convert.pipeline.convert; emits progress, then succeeded or failed."""

    progress = Signal(str, int, int, str)  # stage, done, total, detail
    succeeded = Signal(object)  # ConvertResult
    failed = Signal(str)

    def __init__(self, options: Any, parent: QWidget | None = None):
        super().__init__(parent)
        self.options = options
        self.cancel_event = threading.Event()

    def run(self) -> None:
        from tools.convert.pipeline import convert

        try:
            result = convert(self.options, self._report, self.cancel_event)
        except AssistantError as exc:
            self.failed.emit(str(exc))
        except Exception as exc:  # a bug on this thread: logged; the dialog stays usable
            traceback.print_exc(file=sys.stderr)
            self.failed.emit(f"The conversion failed: {type(exc).__name__}: {exc}")
        else:
            self.succeeded.emit(result)

    def _report(self, p: Any) -> None:
        # Byte counts can pass 2**31: scale to kilobytes for the int signal.
        self.progress.emit(p.stage, p.done // 1024, max(p.total // 1024, 1), p.detail)


def result_text(result: Any) -> str:
    """The summary shown after a conversion: file, size, time, and the verification."""
    what = "the adapter " if getattr(result, "kind", "model") == "adapter" else ""
    lines = [
        f"Wrote {what}{Path(result.path).name} ({result.gguf_architecture}, {result.out_type}, "
        f"{result.n_tensors} tensors, {format_bytes(result.size_bytes)}) "
        f"in {result.seconds:.1f} s."
    ]
    lines += [f"Note: {note}" for note in result.notes]
    if result.verification is not None:
        lines += list(result.verification.lines())
        if not result.verification.passed:
            lines.append("Verification failed: the file was kept for inspection.")
    return "\n".join(lines)


class ConvertDialog(QDialog):
    model_chosen = Signal(str)  # library id of the converted model, for "Chat with it"
    adapter_chosen = Signal(str, str)  # library id of the base, path of the GGUF adapter
    finished_conversion = Signal(bool)  # tests wait on it: True on success

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Convert a model")
        self.setObjectName("convertDialog")
        self.setMinimumWidth(560)
        self.thread_: ConvertThread | None = None
        self.converted: Any = None
        self.base_model_id: str | None = None  # the base an adapter is applied on
        layout = QVBoxLayout(self)
        layout.addLayout(self._form())
        self.adapter_box = AdapterOptions()
        self.adapter_box.hide()
        self.adapter_box.changed.connect(self._adapter_mode_changed)
        layout.addWidget(self.adapter_box)
        self.progress_bar = QProgressBar()
        self.progress_bar.setAccessibleName("Conversion progress")
        self.progress_bar.hide()
        self.status_label = QLabel(
            "Choose a checkpoint: a Hugging Face folder, ckpt.pt, .safetensors, .bin or .pt, "
            "or a LoRA adapter folder (adapter_config.json)."
        )
        self.status_label.setAccessibleName("Conversion status")
        self.status_label.setWordWrap(True)
        self.status_label.setTextInteractionFlags(
            self.status_label.textInteractionFlags() | _selectable()
        )
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.status_label, 1)
        layout.addLayout(self._buttons())
        self._set_running(False)

    # -- layout ----------------------------------------------------------------------------
    def _form(self) -> QFormLayout:
        form = QFormLayout()
        self.source_edit = QLineEdit()
        self.source_edit.setAccessibleName("Checkpoint to convert")
        self.source_edit.textChanged.connect(self._source_changed)
        folder = self._button("Folder…", "Choose a model folder", self._browse_folder)
        file = self._button("File…", "Choose a checkpoint file", self._browse_file)
        form.addRow("Checkpoint:", _row(self.source_edit, folder, file))
        self.tokenizer_edit = QLineEdit()
        self.tokenizer_edit.setAccessibleName("Tokenizer file (optional)")
        self.tokenizer_edit.setPlaceholderText("Found next to the checkpoint when left empty")
        form.addRow("Tokenizer:", self.tokenizer_edit)
        self.type_combo = QComboBox()
        self.type_combo.setAccessibleName("Output type")
        self.type_combo.addItems(OUT_TYPES)
        self.type_combo.setCurrentText("q8_0")
        self.type_combo.currentTextChanged.connect(lambda _t: self._suggest_output())
        form.addRow("Output type:", self.type_combo)
        self.out_edit = QLineEdit()
        self.out_edit.setAccessibleName("Output GGUF file")
        save = self._button("Save as…", "Choose where to write the GGUF file", self._browse_out)
        form.addRow("Output file:", _row(self.out_edit, save))
        self.verify_check = QCheckBox("Verify against PyTorch (logits and tokenization)")
        self.verify_check.setAccessibleName("Verify the converted model")
        self.verify_check.setChecked(True)
        form.addRow("", self.verify_check)
        return form

    def _buttons(self) -> QHBoxLayout:
        row = QHBoxLayout()
        self.convert_button = self._button("Convert", "Start the conversion", self.start)
        self.cancel_button = self._button("Cancel", "Cancel the conversion", self.cancel)
        self.chat_button = self._button(
            "Chat with it", "Use the converted model for chatting", self.chat_with_it
        )
        self.chat_button.hide()
        self.close_button = self._button("Close", "Close this dialog", self.reject)
        row.addStretch(1)
        for button in (self.convert_button, self.cancel_button, self.chat_button):
            row.addWidget(button)
        row.addWidget(self.close_button)
        return row

    def _button(self, text: str, name: str, slot: Any) -> QPushButton:
        button = QPushButton(text)
        button.setAccessibleName(name)
        button.clicked.connect(slot)
        return button

    # -- choosing files --------------------------------------------------------------------
    def _browse_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a model folder")
        if folder:
            self.source_edit.setText(folder)

    def _browse_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self,
            "Choose a checkpoint",
            "",
            "Checkpoints (*.pt *.pth *.bin *.safetensors *.ckpt);;All files (*)",
        )
        if path:
            self.source_edit.setText(path)

    def _browse_out(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Write the GGUF model to", self.out_edit.text(), "GGUF models (*.gguf)"
        )
        if path:
            self.out_edit.setText(path if path.endswith(".gguf") else path + ".gguf")

    def _source_changed(self, text: str) -> None:
        adapter = is_adapter_folder(text.strip())
        if adapter and not self.adapter_box.isVisible():
            self.adapter_box.offer(text.strip())
        self.adapter_box.setVisible(adapter)
        self._adapter_mode_changed()

    def adapter_mode(self) -> bool:
        return self.adapter_box.isVisible() and self.adapter_box.keep_adapter()

    def _adapter_mode_changed(self) -> None:
        """A GGUF adapter is written in a direct type only (f16 by default)."""
        keep = self.adapter_mode()
        model = self.type_combo.model()
        for i in range(self.type_combo.count()):
            item = model.item(i)  # type: ignore[attr-defined]
            item.setEnabled(not keep or self.type_combo.itemText(i) in DIRECT_TYPES)
        if keep and self.type_combo.currentText() not in DIRECT_TYPES:
            self.type_combo.setCurrentText("f16")
        self._suggest_output()

    def _suggest_output(self) -> None:
        text = self.source_edit.text().strip()
        if not text:
            return
        src = Path(text).expanduser()
        stem = src.name if src.is_dir() or not src.suffix else src.stem
        if stem in ("ckpt", "model", "pytorch_model", "out", ""):
            stem = src.parent.name if src.is_dir() else src.parent.name or stem
        kind = self.type_combo.currentText()
        if self.adapter_mode():  # not in the models folder: the library lists models only
            out = paths.models_dir() / "adapters" / f"{stem or 'adapter'}.lora.{kind}.gguf"
        else:
            out = paths.models_dir() / f"{stem or 'model'}.{kind}.gguf"
        self.out_edit.setText(str(out))

    # -- running ---------------------------------------------------------------------------
    def options(self) -> Any:
        from tools.convert.pipeline import ConvertOptions

        tokenizer = self.tokenizer_edit.text().strip()
        adapter = self.adapter_box.isVisible()
        return ConvertOptions(
            source=Path(self.source_edit.text().strip()).expanduser(),
            out=Path(self.out_edit.text().strip()).expanduser(),
            out_type=self.type_combo.currentText(),
            tokenizer=Path(tokenizer).expanduser() if tokenizer else None,
            verify=self.verify_check.isChecked(),
            base=(self.adapter_box.base() or None) if adapter else None,
            adapter_only=self.adapter_mode(),
        )

    def start(self) -> None:
        if not self.source_edit.text().strip():
            self._show_error("Choose a checkpoint folder or file to convert.")
            return
        if not self.out_edit.text().strip():
            self._show_error("Choose the GGUF file to write.")
            return
        out = Path(self.out_edit.text().strip()).expanduser()
        if out.parent in (paths.models_dir(), paths.models_dir() / "adapters"):
            out.parent.mkdir(parents=True, exist_ok=True)
        self.converted = None
        self.base_model_id = None
        self.chat_button.hide()
        self._run(self.options(), self._on_succeeded, "Reading the checkpoint…")

    def _run(self, options: Any, on_success: Any, status: str) -> None:
        self.thread_ = ConvertThread(options, self)
        self.thread_.progress.connect(self._on_progress)
        self.thread_.succeeded.connect(on_success)
        self.thread_.failed.connect(self._on_failed)
        self.progress_bar.setRange(0, 0)
        self.progress_bar.show()
        self.status_label.setText(status)
        self._set_running(True)
        self.thread_.start()

    def cancel(self) -> None:
        if self.thread_ is not None and self.thread_.isRunning():
            self.thread_.cancel_event.set()
            self.status_label.setText("Cancelling…")
            self.cancel_button.setEnabled(False)

    def _on_progress(self, stage: str, done: int, total: int, detail: str) -> None:
        if stage == "writing":
            self.progress_bar.setRange(0, total)
            self.progress_bar.setValue(min(done, total))
            self.status_label.setText(f"Writing {detail}")
        else:
            self.progress_bar.setRange(0, 0)  # busy: the stage reports only start and end
            self.status_label.setText(f"{STAGES.get(stage, stage)} {detail}…")

    def _on_succeeded(self, result: Any) -> None:
        self.converted = result
        self._finish()
        if result.kind == "adapter":
            self.base_model_id = library_model_for(result.base)
            if self.base_model_id is None:
                self._convert_base(result)
                return
        self.status_label.setText(result_text(result))
        self.chat_button.setVisible(True)
        self.finished_conversion.emit(True)

    def _convert_base(self, adapter: Any) -> None:
        """No library model comes from the adapter's base: convert it (q8_0) to apply it on."""
        from tools.convert.pipeline import ConvertOptions

        out = paths.models_dir() / f"{Path(adapter.base).name}.q8_0.gguf"
        out.parent.mkdir(parents=True, exist_ok=True)
        options = ConvertOptions(source=Path(adapter.base), out=out, out_type="q8_0")
        status = f"Converting the base model {Path(adapter.base).name} to apply the adapter on…"
        self._run(options, self._on_base_converted, status)

    def _on_base_converted(self, base: Any) -> None:
        from assistant.library import local as library

        self._finish()
        adapter = self.converted
        try:
            self.base_model_id = library.register_converted(base.path, str(adapter.base)).id
        except AssistantError as exc:
            self._on_failed(str(exc))
            return
        self.status_label.setText(
            f"{result_text(adapter)}\nConverted the base model to {Path(base.path).name} "
            f"({format_bytes(base.size_bytes)}) to apply the adapter on."
        )
        self.chat_button.setVisible(True)
        self.finished_conversion.emit(True)

    def _on_failed(self, message: str) -> None:
        self._finish()
        self._show_error(message)
        self.finished_conversion.emit(False)

    def _finish(self) -> None:
        if self.thread_ is not None:
            self.thread_.wait()
            self.thread_ = None
        self.progress_bar.hide()
        self._set_running(False)

    def _show_error(self, message: str) -> None:
        self.status_label.setText(f"Error: {message}")

    def _set_running(self, running: bool) -> None:
        for widget in (
            self.source_edit,
            self.tokenizer_edit,
            self.type_combo,
            self.out_edit,
            self.verify_check,
            self.convert_button,
            self.adapter_box,
        ):
            widget.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        self.cancel_button.setVisible(running)

    def is_running(self) -> bool:
        return self.thread_ is not None and self.thread_.isRunning()

    # -- after -----------------------------------------------------------------------------
    def chat_with_it(self) -> None:
        if self.converted is None:
            return
        from assistant.library import local as library

        if self.converted.kind == "adapter":
            if self.base_model_id is not None:
                self.adapter_chosen.emit(self.base_model_id, str(self.converted.path))
                self.accept()
            return

        try:
            model = library.register_converted(self.converted.path, self.source_edit.text().strip())
        except AssistantError as exc:
            self._show_error(str(exc))
            return
        self.model_chosen.emit(model.id)
        self.accept()

    def reject(self) -> None:
        self._stop_thread()
        super().reject()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        self._stop_thread()
        super().closeEvent(event)

    def _stop_thread(self) -> None:
        if self.thread_ is not None and self.thread_.isRunning():
            self.thread_.cancel_event.set()
            self.thread_.wait()


def _row(*widgets: QWidget) -> QHBoxLayout:
    row = QHBoxLayout()
    for i, widget in enumerate(widgets):
        row.addWidget(widget, 1 if i == 0 else 0)
    return row


def _selectable() -> Any:
    from PySide6.QtCore import Qt

    return Qt.TextInteractionFlag.TextSelectableByMouse
