"""Opening the real main window on the embedded model for UI tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from assistant.settings import Settings
from assistant.types import SamplingOptions
from ui.main_window import MainWindow

LOAD_TIMEOUT = 120_000
REPLY_TIMEOUT = 180_000


def open_window(
    qtbot, *, n_ctx: int, max_tokens: int, model: str = "", **fields: object
) -> MainWindow:
    """Save settings, show the window, wait until the model is loaded and the window active
    (`fields`: other settings, e.g. n_batch)."""
    settings = Settings(model=model, n_ctx=n_ctx, **fields)  # automatic threads, as users get
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


def window_factory(qtbot) -> Iterator[Callable[..., MainWindow]]:
    """For a `make_window` fixture: opens windows with small, seeded replies (deletions
    confirmed) and closes them, and their model threads, at the end."""
    windows: list[MainWindow] = []

    def make(
        *, n_ctx: int = 1024, max_tokens: int = 40, model: str = "", **fields: object
    ) -> MainWindow:
        window = open_window(qtbot, n_ctx=n_ctx, max_tokens=max_tokens, model=model, **fields)
        window.confirm = lambda _title, _text: True
        windows.append(window)
        return window

    yield make
    for window in windows:
        window.close()


def send(qtbot, window: MainWindow, text: str, *, wait: bool = True) -> None:
    """Type into the box and press Enter, as a user does; optionally wait for the reply."""
    window.input.setPlainText(text)
    if not wait:
        qtbot.keyClick(window.input, Qt.Key.Key_Return)
        return
    with qtbot.waitSignal(window.host.idle, timeout=REPLY_TIMEOUT):
        qtbot.keyClick(window.input, Qt.Key.Key_Return)
