"""A visible focus ring: a 2-pixel outline in the highlight colour around whatever has the
keyboard focus in the window, drawn over it (the Fusion style's own focus marks are faint, and
text views have none). It follows the focused widget as it moves or scrolls, is clipped to the
part of it that is visible, and is not drawn for a focus given by a mouse click."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QRect, Qt
from PySide6.QtGui import QGuiApplication, QPainter, QPaintEvent, QPalette, QPen
from PySide6.QtWidgets import QApplication, QWidget
from shiboken6 import isValid

MARGIN = 2
WIDTH = 2


class FocusRing(QWidget):
    def __init__(self, window: QWidget):
        super().__init__(window)
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.setAttribute(Qt.WidgetAttribute.WA_NoSystemBackground)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.setObjectName("focusRing")
        self._target: QWidget | None = None
        self.hide()
        QApplication.instance().focusChanged.connect(self._on_focus_changed)

    @property
    def target(self) -> QWidget | None:
        return self._target if self.isVisible() else None

    def _on_focus_changed(self, _old: QWidget | None, new: QWidget | None) -> None:
        if self._target is not None and isValid(self._target):  # not one being destroyed
            self._target.removeEventFilter(self)
            self._target.destroyed.disconnect(self._forget)
        window = self.parentWidget()
        clicked = QGuiApplication.mouseButtons() != Qt.MouseButton.NoButton
        if new is None or clicked or window is None or not window.isAncestorOf(new):
            self._target = None
            self.hide()
            return
        self._target = new
        new.installEventFilter(self)
        new.destroyed.connect(self._forget)
        self.follow()

    def _forget(self) -> None:
        self._target = None
        self.hide()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802
        if watched is self._target and event.type() in (
            QEvent.Type.Move,
            QEvent.Type.Resize,
            QEvent.Type.Show,
            QEvent.Type.Hide,
        ):
            self.follow()
        return False

    def follow(self) -> None:
        """Put the ring around the visible part of the focused widget (or hide it)."""
        target, window = self._target, self.parentWidget()
        if target is None or window is None or not isValid(target) or not target.isVisible():
            self.hide()
            return
        visible = target.visibleRegion().boundingRect()
        if visible.isEmpty():
            self.hide()
            return
        top_left = target.mapTo(window, visible.topLeft())
        rect = QRect(top_left, visible.size()).adjusted(-MARGIN, -MARGIN, MARGIN, MARGIN)
        self.setGeometry(rect.intersected(window.rect()))
        self.raise_()
        self.show()
        self.update()

    def paintEvent(self, _event: QPaintEvent) -> None:  # noqa: N802
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        pen = QPen(self.palette().color(QPalette.ColorRole.Highlight), WIDTH)
        painter.setPen(pen)
        painter.drawRoundedRect(self.rect().adjusted(1, 1, -1, -1), 4, 4)
