"""The order Tab follows in the main window: the message box, Send, the messages from the newest
back (each one's text, then its buttons), the notices' buttons, the header, then the chat list;
and round again. Computed when Tab is pressed, so it always matches what is on screen."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QWidget


def tab_ring(window: Any) -> list[QWidget]:
    panel, sidebar = window.panel, window.sidebar
    banners: list[QWidget] = []
    for banner in (panel.model_banner, panel.banner):
        banners += [*banner.action_buttons(), banner.close_button]
    return [
        panel.input,
        panel.send_button,
        *panel.chat.tab_chain(),
        panel.summary_cancel,
        *banners,
        *panel.header.widgets(),
        sidebar.new_button,
        sidebar.search,
        sidebar.list,
        sidebar.rename_button,
        sidebar.delete_button,
    ]


def move_focus(window: Any, forward: bool) -> bool:
    """Give the focus to the next (or previous) widget of the ring; False when the focus is
    somewhere the ring does not cover (an editor, a dialog): Qt's own order applies there."""
    ring = tab_ring(window)
    focused = QApplication.focusWidget()
    index = next(
        (
            i
            for i, widget in enumerate(ring)
            if focused is widget or (focused is not None and widget.isAncestorOf(focused))
        ),
        None,
    )
    if index is None:
        return False
    step = 1 if forward else -1
    for k in range(1, len(ring) + 1):
        candidate = ring[(index + step * k) % len(ring)]
        if _tabbable(candidate):
            reason = Qt.FocusReason.TabFocusReason if forward else Qt.FocusReason.BacktabFocusReason
            candidate.setFocus(reason)
            return True
    return False


def _tabbable(widget: QWidget) -> bool:
    return (
        widget.isVisible()
        and widget.isEnabled()
        and bool(widget.focusPolicy() & Qt.FocusPolicy.TabFocus)
    )
