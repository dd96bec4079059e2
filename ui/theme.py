"""Light and dark themes: the system's colour scheme, or the one chosen in View → Theme."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication

STYLESHEET = """
QFrame#userMessage { background: palette(alternate-base); border-radius: 8px; }
QFrame#assistantMessage { border-radius: 8px; }
QFrame[outOfContext="true"] { border: 1px dashed #c08030; }
QLabel#hiddenTag, QLabel#contextDivider, QLabel#contextLeft { color: #c06a00; }
QLabel#hiddenTag, QLabel#contextDivider { font-style: italic; }
QLabel#statsLine, QLabel#statusTag, QLabel#emptyState, QLabel#queueLabel { color: gray; }
QLabel#versionLabel { color: gray; }
"""
THEMES = ("system", "light", "dark")


def dark_palette() -> QPalette:
    palette = QPalette()
    colors = {
        QPalette.ColorRole.Window: "#202124",
        QPalette.ColorRole.WindowText: "#e8eaed",
        QPalette.ColorRole.Base: "#17181a",
        QPalette.ColorRole.AlternateBase: "#2a2c30",
        QPalette.ColorRole.Text: "#e8eaed",
        QPalette.ColorRole.Button: "#2d2f33",
        QPalette.ColorRole.ButtonText: "#e8eaed",
        QPalette.ColorRole.Highlight: "#3d6fb6",
        QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.ToolTipBase: "#2d2f33",
        QPalette.ColorRole.ToolTipText: "#e8eaed",
        QPalette.ColorRole.PlaceholderText: "#8a8d91",
        QPalette.ColorRole.Link: "#8ab4f8",
        QPalette.ColorRole.Mid: "#4a4d52",
    }
    for role, color in colors.items():
        palette.setColor(role, QColor(color))
    for role in (
        QPalette.ColorRole.Text,
        QPalette.ColorRole.ButtonText,
        QPalette.ColorRole.WindowText,
    ):
        palette.setColor(QPalette.ColorGroup.Disabled, role, QColor("#6f7277"))
    return palette


def system_is_dark() -> bool:
    return QGuiApplication.styleHints().colorScheme() == Qt.ColorScheme.Dark


def apply_theme(app: QApplication, dark: bool | None = None) -> None:
    """Fusion everywhere (consistent), with a dark palette when the system asks for one."""
    app.setStyle("Fusion")
    dark = system_is_dark() if dark is None else dark
    app.setPalette(dark_palette() if dark else app.style().standardPalette())
    app.setStyleSheet(STYLESHEET)


_chosen = {"theme": "system"}


def set_theme(app: QApplication, theme: str) -> None:
    """'system' follows the system's scheme (and its changes); 'light' and 'dark' are fixed."""
    _chosen["theme"] = theme if theme in THEMES else "system"
    apply_theme(app, None if _chosen["theme"] == "system" else _chosen["theme"] == "dark")


def current_theme() -> str:
    return _chosen["theme"]


def follow_system(app: QApplication, theme: str = "system") -> None:
    set_theme(app, theme)
    app.styleHints().colorSchemeChanged.connect(
        lambda _scheme: _chosen["theme"] == "system" and apply_theme(app)
    )
