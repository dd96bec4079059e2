"""Numbered chips under a reply, one per document passage the model was given; a click opens
the document at that passage, highlighted (in the Sources dialog of summaries)."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QToolButton, QWidget

from assistant.errors import AssistantError

PREVIEW_CHARS = 300


class _Requests(QObject):
    """Where chips ask for a passage to be shown: the window that holds the chip answers."""

    open = Signal(object, int, object)  # the reply's sources, the chosen index, the chip


_requests: _Requests | None = None


def requests() -> _Requests:
    global _requests
    if _requests is None:
        _requests = _Requests()
    return _requests


class SourceChips(QWidget):
    """`[1] name` chips for a reply's stored sources (dicts of retrieval.Source.to_json)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("sourceChips")
        self.setAccessibleName("Passages this reply was given")
        self._row = QHBoxLayout(self)
        self._row.setContentsMargins(0, 0, 0, 0)
        self._row.setSpacing(4)
        self.sources: list[dict[str, Any]] = []
        self.chips: list[QToolButton] = []
        self.hide()

    def set_sources(self, sources: Any) -> None:
        valid = [s for s in sources or [] if isinstance(s, dict) and _valid(s)]
        if valid == self.sources:
            return
        self.sources = valid
        while self._row.count():
            item = self._row.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        self.chips = []
        if valid:
            self._row.addWidget(QLabel("Sources:"))
        for index, source in sorted(enumerate(valid), key=lambda pair: pair[1]["n"]):
            chip = QToolButton()
            chip.setText(f"[{source['n']}] {source['document']}")
            chip.setAccessibleName(f"Source {source['n']}: {source['document']}")
            chip.setToolTip(
                f"{source['document']}, characters {source['start']}–{source['end']} "
                f"(relevance {source['score']:.2f}): open it there"
            )
            chip.setAutoRaise(True)
            chip.clicked.connect(lambda _=False, i=index, c=chip: self._open(i, c))
            self._row.addWidget(chip)
            self.chips.append(chip)
        self._row.addStretch(1)
        self.setVisible(bool(valid))

    def _open(self, index: int, chip: QToolButton) -> None:
        requests().open.emit(self.sources, index, chip)


def _valid(source: dict[str, Any]) -> bool:
    keys = {"n": int, "document": str, "document_id": int, "start": int, "end": int}
    return all(isinstance(source.get(k), t) for k, t in keys.items()) and isinstance(
        source.get("score"), (int, float)
    )


def sources_view(sources: list[dict[str, Any]], index: int, text: str) -> tuple[dict, int]:
    """The chosen passage and its siblings from the same document, in the shape the Sources
    dialog shows (points with ranges), and the row of the chosen one."""
    chosen = sources[index]
    same = [s for s in sources if s["document_id"] == chosen["document_id"]]
    same.sort(key=lambda s: s["n"])
    points = []
    for s in same:
        preview = " ".join(text[s["start"] : s["end"]].split())
        if len(preview) > PREVIEW_CHARS:
            preview = preview[:PREVIEW_CHARS] + "…"
        points.append({"point": f"[{s['n']}] {preview}", "ranges": [[s["start"], s["end"]]]})
    return {"sources": points}, same.index(chosen)


def open_source(window: Any, store: Any, sources: list[dict[str, Any]], index: int) -> None:
    """The document of the chosen source, its passages sent with that reply listed and the
    chosen one highlighted (the Sources dialog of summaries)."""
    from .sources_dialog import SourcesDialog

    chosen = sources[index]
    try:
        name, text = store.get_document(chosen["document_id"])
    except AssistantError:
        window.show_error(f"{chosen['document']} is no longer attached to this chat.")
        return
    view, row = sources_view(sources, index, text)
    dialog = SourcesDialog(name, text, view, window)
    dialog.setWindowTitle(f"Passages sent from {name}")
    dialog.points.setAccessibleName("Passages sent with this reply")
    dialog.points.setCurrentRow(row)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.open()
