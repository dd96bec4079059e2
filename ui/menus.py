"""The menu bar: every command of the window with its shortcut (the window's intents are the
slots)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QMainWindow, QMenu

THEME_NAMES = {"system": "&System", "light": "&Light", "dark": "&Dark"}


@dataclass(frozen=True)
class Actions:
    new: QAction
    search: QAction
    focus: QAction
    stop: QAction
    regenerate: QAction
    continue_reply: QAction
    prompt: QAction
    export: QAction
    import_: QAction
    quit: QAction
    settings: QAction
    models: QAction
    convert: QAction
    themes: dict[str, QAction]
    shortcuts: QAction

    def all(self) -> list[QAction]:
        found: list[QAction] = []
        for f in fields(self):
            value = getattr(self, f.name)
            found += list(value.values()) if isinstance(value, dict) else [value]
        return found


def _action(
    window: QMainWindow,
    menu: QMenu,
    text: str,
    slot: Callable[[], object],
    shortcut: str | QKeySequence | QKeySequence.StandardKey | None = None,
) -> QAction:
    action = QAction(text, window)
    if shortcut is not None:
        action.setShortcut(QKeySequence(shortcut))
    action.triggered.connect(slot)
    menu.addAction(action)
    return action


def build_menus(window: Any, theme: str = "system") -> Actions:
    """Chat, View, Settings, Models and Help menus on `window` (a MainWindow: it has the
    slots)."""
    bar = window.menuBar()
    chats = bar.addMenu("&Chat")
    new = _action(window, chats, "&New chat", window.new_chat, "Ctrl+N")
    search = _action(window, chats, "&Search chats", window.focus_search, "Ctrl+F")
    focus = _action(window, chats, "&Focus message box", window.focus_input, "Ctrl+L")
    chats.addSeparator()
    stop = _action(window, chats, "S&top reply", window.stop, "Esc")
    stop.setEnabled(False)  # enabled only while replying, so Esc still reaches editors
    regenerate = _action(window, chats, "&Regenerate reply", window.regenerate, "Ctrl+R")
    continue_reply = _action(
        window, chats, "&Continue reply", window.continue_reply, "Ctrl+Shift+R"
    )
    prompt = _action(window, chats, "&What the model sees", window.show_prompt, "Ctrl+Shift+P")
    chats.addSeparator()
    export = _action(window, chats, "&Export chat…", window.export_conversation, "Ctrl+E")
    import_ = _action(window, chats, "&Import chat…", window.import_conversation)
    chats.addSeparator()
    quit_ = _action(window, chats, "&Quit", window.close, QKeySequence.StandardKey.Quit)
    view = bar.addMenu("&View")
    theme_menu = view.addMenu("&Theme")
    group = QActionGroup(window)
    themes = {}
    for name, text in THEME_NAMES.items():
        action = _action(window, theme_menu, text, lambda _on=False, n=name: window.set_theme(n))
        action.setCheckable(True)
        action.setChecked(name == theme)
        group.addAction(action)
        themes[name] = action
    settings_menu = bar.addMenu("&Settings")
    settings = _action(window, settings_menu, "&Settings…", window.open_settings, "Ctrl+,")
    models_menu = bar.addMenu("&Models")
    models = _action(window, models_menu, "&Manage models…", window.open_models, "Ctrl+M")
    convert = _action(window, models_menu, "&Convert a model…", window.open_convert)
    help_menu = bar.addMenu("&Help")
    shortcuts = _action(window, help_menu, "&Keyboard shortcuts", window.show_shortcuts, "Ctrl+/")
    return Actions(
        new,
        search,
        focus,
        stop,
        regenerate,
        continue_reply,
        prompt,
        export,
        import_,
        quit_,
        settings,
        models,
        convert,
        themes,
        shortcuts,
    )
