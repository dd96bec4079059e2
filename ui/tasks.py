"""A background thread for work that touches the disk or the network (never the model)."""

from __future__ import annotations

import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal

from assistant.errors import AssistantError


class Task(QThread):
    """Runs fn(report, cancel) off the GUI thread; emits progress, then done or failed."""

    progress = Signal(object)
    done = Signal(object)
    failed = Signal(str)

    def __init__(
        self,
        fn: Callable[[Callable[[Any], None], threading.Event], Any],
        parent: QObject | None = None,
    ):
        super().__init__(parent)
        self.fn = fn
        self.cancel_event = threading.Event()

    def run(self) -> None:
        try:
            result = self.fn(self.progress.emit, self.cancel_event)
        except AssistantError as exc:
            self.failed.emit(str(exc))
        except Exception as exc:  # a bug on this thread: logged, and shown in words
            traceback.print_exc(file=sys.stderr)
            self.failed.emit(f"{type(exc).__name__}: {exc}")
        else:
            self.done.emit(result)
