"""Entry point of the desktop app: `assistant` with no arguments calls `run_app`."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from . import platform_check

if TYPE_CHECKING:
    from PySide6.QtWidgets import QApplication

    from .main_window import MainWindow

APP_NAME = "Offline Assistant"


def make_application(argv: list[str] | None = None) -> QApplication:
    """The QApplication (created once), themed to follow the system."""
    from PySide6.QtWidgets import QApplication

    from .theme import follow_system

    app = QApplication.instance()
    if app is None:
        app = QApplication(argv if argv is not None else [sys.argv[0]])
        app.setApplicationName(APP_NAME)
        app.setApplicationDisplayName(APP_NAME)
        app.setDesktopFileName("offline-assistant")
        from . import ui_state

        follow_system(app, ui_state.load().get("theme", "system"))
    return app


def build_window(model: str | None = None) -> MainWindow:
    """The main window with the user's settings (`model` overrides the model for this run)."""
    from assistant.settings import Settings

    from .main_window import MainWindow

    settings = Settings.load()
    if model:  # a file, or a library id (see library.local.chosen_model_path)
        path = Path(model).expanduser()
        settings.model = str(path.resolve()) if path.exists() else model
    return MainWindow(settings)


def run_app(model: str | None = None) -> int:
    """Open the window at once; the model loads on its own thread. Returns the exit code."""
    problem = platform_check.display_problem()
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    app = make_application()
    from assistant.errors import AssistantError

    try:
        window = build_window(model)
    except AssistantError as exc:  # e.g. the conversation database cannot be opened
        from PySide6.QtWidgets import QMessageBox

        QMessageBox.critical(None, APP_NAME, str(exc))
        return 1
    window.show()
    window.start()
    _close_on_signals(window)
    return app.exec()


def _close_on_signals(window: MainWindow) -> None:
    """Ctrl+C or SIGTERM in the terminal closes the window properly (a reply is saved)."""
    from PySide6.QtCore import QTimer

    def close(*_: object) -> None:
        window.close()

    for name in ("SIGINT", "SIGTERM"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), close)
    # Python runs signal handlers only between bytecodes: wake it up now and then
    wake = QTimer(window, interval=250)
    wake.timeout.connect(lambda: None)
    wake.start()


if __name__ == "__main__":
    sys.exit(run_app(sys.argv[1] if len(sys.argv) > 1 else None))
