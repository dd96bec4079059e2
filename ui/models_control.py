"""The window's model: load it at start-up, switch to another one safely, and say what happened.

A model choice (the picker, Settings, the model manager, the converter) is saved only once the
model has loaded: a file that fails its check or its load leaves the previous model loaded and
the settings as they were, with the reason in plain words on the model banner. At start-up a
saved model that no longer loads is replaced, for this run, by the built-in one, with a banner.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog, QWidget

from assistant import paths
from assistant.settings import Settings

from .chat_panel import ChatPanel
from .host import ModelHost
from .jobs import LoadOutcome
from .model_status import ModelStatus

# the settings that need the model loaded again when they change
RELOAD_FIELDS = (
    "model",
    "n_ctx",
    "n_threads",
    "n_gpu_layers",
    "flash_attn",
    "chat_format",
    "exact_slide",  # the sessions are made with it (a reload is the simple way to apply it)
    "kv_cache_mb",
    "lora_path",
    "lora_scale",
)


class ModelControl(QObject):
    finished = Signal(object)  # LoadOutcome, once the window shows it

    def __init__(
        self,
        host: ModelHost,
        panel: ChatPanel,
        status: ModelStatus,
        *,
        settings: Callable[[], Settings],
        save: Callable[[Settings], None],
        open_settings: Callable[[], None],
        open_models: Callable[[], None],
        parent: QObject | None = None,
    ):
        super().__init__(parent)
        self.host = host
        self.panel = panel
        self.status = status
        self._settings = settings
        self._save = save
        self.info: Any = None  # ModelInfo of the loaded model, None without one
        self.n_ctx = 0
        self.gpus: tuple[str, ...] = ()
        self.loaded: Settings | None = None  # what the loaded model was loaded with
        self._startup: Any = None  # the start-up load job
        picker = panel.model_picker
        picker.model_chosen.connect(self.use)
        picker.other_file_requested.connect(self.browse)
        picker.manage_requested.connect(open_models)
        self._open_settings = open_settings
        host.loading.connect(self._on_loading)
        host.load_finished.connect(self._on_finished)

    def start(self) -> None:
        """Load the saved model in the background (falling back to the built-in one); nothing
        is saved for it (a model given on the command line is for this run only)."""
        self.status.loading()
        self._startup = self.host.load(self._settings(), fallback=True)

    def use(self, model: str, lora_path: str = "") -> None:
        """Switch to `model` (a library id, a path, or "" for the built-in one), with the LoRA
        adapter `lora_path` applied (an adapter belongs to its base: none unless given)."""
        self.load(replace(self._settings(), model=model, lora_path=lora_path))

    def load(self, wanted: Settings) -> None:
        """Load with these settings once the replies are stopped and saved; the current model
        stays until the new one is ready."""
        self.status.loading()
        self.host.after_replies(lambda: self.host.load(wanted))

    def needs_reload(self, new: Settings) -> bool:
        current = self.loaded or self._settings()
        return self.info is None or any(
            getattr(new, f) != getattr(current, f) for f in RELOAD_FIELDS
        )

    def kept(self, new: Settings) -> Settings:
        """`new` with the load fields of the model now loaded (saved until the new one loads)."""
        current = self.loaded or self._settings()
        return replace(new, **{f: getattr(current, f) for f in RELOAD_FIELDS})

    def browse(self) -> None:
        window = self.panel.window()
        path, _ = QFileDialog.getOpenFileName(
            window if isinstance(window, QWidget) else None,
            "Choose a model",
            str(paths.models_dir()),
            "GGUF models (*.gguf);;All files (*)",
        )
        if path:
            self.use(path)

    # -- what the worker says --------------------------------------------------------------
    def _on_loading(self, name: str) -> None:
        self.status.loading(name)

    def _on_finished(self, outcome: LoadOutcome) -> None:
        self.info, self.n_ctx = outcome.info, outcome.n_ctx
        self.gpus = outcome.gpus or self.gpus
        self.loaded = outcome.settings
        banner = self.panel.model_banner
        if outcome.switched:
            if outcome.job is not self._startup:  # a choice the user made: kept from now on
                wanted = outcome.job.settings
                fields = {f: getattr(wanted, f) for f in RELOAD_FIELDS}
                self._save(replace(self._settings(), **fields))
            if banner.kind == "error":
                banner.dismiss()
            if outcome.note:  # values fitted to the model, or memory forced smaller settings
                banner.show_message(outcome.note, "info")
        elif outcome.info is not None:  # the previous model, or the built-in one, is loaded
            banner.show_message(
                outcome.problem,
                "error",
                [("Choose another model", self.panel.model_picker.showPopup)],
            )
        else:
            banner.show_message(
                f"No model is loaded: {outcome.problem} Choose another model; your "
                "conversations are still here.",
                "error",
                [("Open settings", self._open_settings)],
            )
        if outcome.info is not None:
            self.status.loaded(outcome.info)
        else:
            self.status.failed(outcome.problem)
        picker = self.panel.model_picker
        loaded = outcome.settings or self._settings()
        picker.set_current(loaded.model, outcome.info.name if outcome.info else "")
        picker.refresh(self.n_ctx or self._settings().n_ctx)
        self.finished.emit(outcome)
