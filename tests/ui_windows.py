"""Opening the real main window on the embedded model for UI tests."""

from __future__ import annotations

from PySide6.QtWidgets import QApplication

from assistant.settings import Settings
from assistant.types import SamplingOptions
from ui.main_window import MainWindow

LOAD_TIMEOUT = 120_000


def open_window(qtbot, *, n_ctx: int, max_tokens: int, model: str = "") -> MainWindow:
    """Save settings, show the window, wait until the model is loaded and the window active."""
    settings = Settings(model=model, n_ctx=n_ctx)  # automatic threads, as users get
    settings.sampling = SamplingOptions(max_tokens=max_tokens, seed=7).to_dict()
    settings.save()
    window = MainWindow(settings)
    qtbot.addWidget(window)
    with qtbot.waitSignal(window.model_ready, timeout=LOAD_TIMEOUT):
        window.show()
        window.start()
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=5000)
    return window
