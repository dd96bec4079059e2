"""A message body: Markdown text with fenced code blocks shown as highlighted, copyable blocks.

While a reply streams the body is re-set many times; `MarkdownView.set_text` splits the text
into segments and only re-renders the segments that changed (in practice the last one), so the
rest of the message neither flickers nor moves.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from PySide6.QtCore import QSize, Qt, QUrl
from PySide6.QtGui import (
    QFocusEvent,
    QFontDatabase,
    QGuiApplication,
    QPalette,
    QTextDocument,
)
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QScrollArea,
    QSizePolicy,
    QTextBrowser,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from . import highlight

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})\s*([^\s`]*)")


@dataclass(frozen=True)
class Segment:
    kind: str  # "text" or "code"
    text: str
    language: str = ""


def split_markdown(text: str) -> list[Segment]:
    """Split Markdown into prose and fenced code blocks (an unclosed fence runs to the end)."""
    segments: list[Segment] = []
    prose: list[str] = []
    code: list[str] | None = None
    fence, language = "", ""

    def flush_prose() -> None:
        chunk = "\n".join(prose)
        if chunk.strip():
            segments.append(Segment("text", chunk))
        prose.clear()

    for line in text.split("\n"):
        if code is None:
            match = FENCE.match(line)
            if match:
                flush_prose()
                fence, language, code = match.group(1), match.group(2), []
            else:
                prose.append(line)
        else:
            stripped = line.strip()
            if stripped.startswith(fence) and set(stripped) == {fence[0]}:
                segments.append(Segment("code", "\n".join(code), language))
                code = None
            else:
                code.append(line)
    if code is not None:
        segments.append(Segment("code", "\n".join(code), language))
    flush_prose()
    return segments


def is_dark(widget: QWidget) -> bool:
    return widget.palette().color(QPalette.ColorRole.Base).lightness() < 128


class AutoHeightBrowser(QTextBrowser):
    """A read-only rich-text view as tall as its content; the chat view does the scrolling."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setOpenExternalLinks(True)
        # Reachable with Tab (and readable, selectable and copyable from the keyboard); Tab
        # itself moves on instead of being typed or cycling through links.
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setTabChangesFocus(True)
        self.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextBrowserInteraction
            | Qt.TextInteractionFlag.TextSelectableByKeyboard
        )
        # the message's own menu (copy, edit, regenerate, delete...) covers the text too
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.NoContextMenu)
        palette = self.palette()
        palette.setColor(QPalette.ColorRole.Base, Qt.GlobalColor.transparent)
        self.setPalette(palette)
        self.document().setDocumentMargin(2)
        self.document().documentLayout().documentSizeChanged.connect(self._fit)
        self._fit()

    def focusInEvent(self, event: QFocusEvent) -> None:  # noqa: N802 (Qt override)
        """Reached with the keyboard: scroll the conversation so this text is in view."""
        super().focusInEvent(event)
        if event.reason() in (Qt.FocusReason.TabFocusReason, Qt.FocusReason.BacktabFocusReason):
            area = self.parent()
            while area is not None and not isinstance(area, QScrollArea):
                area = area.parent()
            if area is not None:
                area.ensureWidgetVisible(self)

    def loadResource(self, kind: int, url: QUrl) -> object:  # noqa: N802 (Qt override)
        """Never fetch images or files named by model output (privacy, and no stalls)."""
        return None

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(super().sizeHint().width(), self.height())

    def _fit(self, *_: object) -> None:
        height = math.ceil(self.document().size().height()) + 2 * self.frameWidth()
        if height != self.height() or self.minimumHeight() != height:
            self.setFixedHeight(max(height, 8))


class TextSegment(AutoHeightBrowser):
    def __init__(self, text: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setAccessibleName("Message text")
        self.source_text = ""
        self.set_source(text)

    def set_source(self, text: str) -> None:
        if text != self.source_text:
            self.source_text = text
            self.document().setMarkdown(text, QTextDocument.MarkdownFeature.MarkdownDialectGitHub)


class CodeBlock(QFrame):
    """A fenced code block: language label, Copy button, highlighted monospace text."""

    def __init__(self, code: str, language: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("codeBlock")
        self.source_text = ""
        self.language = language
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 4, 8, 6)
        layout.setSpacing(2)
        header = QHBoxLayout()
        self.label = QLabel(language or "code")
        self.label.setObjectName("codeLanguage")
        self.copy_button = QToolButton()
        self.copy_button.setText("Copy")
        self.copy_button.setAccessibleName("Copy code")
        self.copy_button.setToolTip("Copy this code block")
        self.copy_button.clicked.connect(self.copy)
        header.addWidget(self.label)
        header.addStretch(1)
        header.addWidget(self.copy_button)
        layout.addLayout(header)
        self.view = AutoHeightBrowser()
        self.view.setAccessibleName(f"Code block {language}".strip())
        self.view.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        layout.addWidget(self.view)
        self._apply_background()
        self.set_source(code)

    def _apply_background(self) -> None:
        color = highlight.background(is_dark(self))
        self.setStyleSheet(
            f"QFrame#codeBlock {{ background: {color}; border-radius: 6px; }}"
            f" QLabel#codeLanguage {{ color: gray; }}"
        )

    def set_source(self, code: str, language: str | None = None) -> None:
        if language is not None and language != self.language:
            self.language = language
            self.label.setText(language or "code")
        if code != self.source_text:
            self.source_text = code
            self.view.setHtml(highlight.code_html(code, self.language, is_dark(self)))

    def copy(self) -> None:
        QGuiApplication.clipboard().setText(self.source_text)
        self.copy_button.setText("Copied")


class MarkdownView(QWidget):
    """The body of one message."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(6)
        self._parts: list[TextSegment | CodeBlock] = []
        self._text = ""

    def text(self) -> str:
        return self._text

    def parts(self) -> list[TextSegment | CodeBlock]:
        return list(self._parts)

    def set_text(self, text: str) -> None:
        if text == self._text:
            return
        self._text = text
        segments = split_markdown(text)
        for index, segment in enumerate(segments):
            part = self._parts[index] if index < len(self._parts) else None
            kind = "code" if isinstance(part, CodeBlock) else "text"
            if part is not None and kind == segment.kind:
                if isinstance(part, CodeBlock):
                    part.set_source(segment.text, segment.language)
                else:
                    part.set_source(segment.text)
                continue
            new = (
                CodeBlock(segment.text, segment.language)
                if segment.kind == "code"
                else TextSegment(segment.text)
            )
            if part is not None:
                self._layout.replaceWidget(part, new)
                part.deleteLater()
                self._parts[index] = new
            else:
                self._layout.addWidget(new)
                self._parts.append(new)
        for part in self._parts[len(segments) :]:
            self._layout.removeWidget(part)
            part.deleteLater()
        del self._parts[len(segments) :]

    def selected_text(self) -> str:
        """The text selected in any part of the message ('' when none)."""
        for part in self._parts:
            view = part.view if isinstance(part, CodeBlock) else part
            text = view.textCursor().selectedText()
            if text:
                return text.replace("\u2029", "\n").replace("\u2028", "\n")
        return ""

    def set_dimmed(self, dimmed: bool) -> None:
        """Grey the prose of a message the model no longer sees."""
        palette = self.palette()
        role = QPalette.ColorRole.PlaceholderText if dimmed else QPalette.ColorRole.WindowText
        color = QGuiApplication.palette().color(role)
        palette.setColor(QPalette.ColorRole.Text, color)
        self.setPalette(palette)
