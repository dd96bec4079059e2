"""Settings rows for long conversations: exact re-reading on slides, and the conversations'
saved model caches (their size on disk, and a Clear button)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QPushButton, QWidget

from assistant import paths
from assistant.library.sizes import format_bytes
from assistant.settings import Settings

STATE_SUFFIX = ".kvstate"  # assistant.engine.state_cache.SUFFIX (not imported: numpy)


def saved_cache_files() -> list[Path]:
    folder = paths.kv_states_dir()
    return sorted(folder.glob(f"*{STATE_SUFFIX}")) if folder.is_dir() else []


def saved_cache_bytes() -> int:
    total = 0
    for path in saved_cache_files():
        try:
            total += path.stat().st_size
        except OSError:
            pass
    return total


class ExactSlideCheck(QCheckBox):
    def __init__(self, settings: Settings):
        super().__init__("Re-read the window when older messages leave it (exact, slower)")
        self.setToolTip(
            "By default the model's cache is shifted when older messages leave the context "
            "window, so long chats stay fast; the shifted cache is a close approximation. "
            "Checked, the window is read again instead."
        )
        self.setChecked(settings.exact_slide)


class SavedCacheRow(QWidget):
    """'Saved conversation caches: 10 MB of 2 GB [Clear]'."""

    def __init__(self, settings: Settings):
        super().__init__()
        self._budget = settings.kv_cache_mb * 1024**2
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.clear_button = QPushButton("Clear")
        self.clear_button.setAccessibleName("Clear the saved conversation caches")
        self.clear_button.clicked.connect(self.clear)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.clear_button)
        self.refresh()

    def refresh(self) -> None:
        used = saved_cache_bytes()
        budget = format_bytes(self._budget) if self._budget else "saving off"
        self.label.setText(
            f"{format_bytes(used)} of {budget}: reopening a chat restores its cache "
            "instead of reading it again."
        )
        self.clear_button.setEnabled(used > 0)

    def clear(self) -> None:
        for path in saved_cache_files():
            path.unlink(missing_ok=True)
        self.refresh()
