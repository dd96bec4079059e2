"""The documents of the open chat: their size in tokens, Remove, Attach, and indexing with
progress and Cancel. Questions in the chat are answered from them (see
`assistant.conversation.retrieval`); the panel says how passages are found.

Indexing runs on a thread of its own (it needs no model: SQLite and text only), so the window
and a reply being written go on meanwhile; it reports through queued signals.
"""

from __future__ import annotations

import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from assistant.conversation import passage_index
from assistant.conversation.attachments import attach
from assistant.conversation.retrieval import RETRIEVER
from assistant.conversation.store import Store
from assistant.errors import AssistantError

SEARCH_NOTE = (
    f"Passages are found by {RETRIEVER}: no embedding model is used, so a question finds "
    "passages that share its words."
)
FILE_FILTER = "Documents (*.txt *.md *.markdown *.rst *.html *.htm *.pdf *.docx);;All files (*)"


class _Indexing(QObject):
    """Signals from the indexing thread (delivered queued, in the GUI thread)."""

    progress = Signal(object)  # passage_index.IndexProgress
    done = Signal(int, object)  # conversation id, DocumentInfo
    failed = Signal(str)
    cancelled = Signal()


class DocumentsPanel(QWidget):
    changed = Signal()  # a document was attached or removed
    retitled = Signal(int, str)  # a chat still called "New chat" was named after its document
    failed = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("documentsPanel")
        self.setAccessibleName("Documents of this chat")
        self._store: Store | None = None
        self._conversation_id: int | None = None  # the chat shown
        self._ensure: Callable[[], int | None] = lambda: None
        self._cancel: threading.Event | None = None
        self._signals = _Indexing(self)
        self._signals.progress.connect(self._on_progress)
        self._signals.done.connect(self._on_done)
        self._signals.failed.connect(self._on_failed)
        self._signals.cancelled.connect(self._on_cancelled)
        self._build()
        self.setVisible(False)

    def _build(self) -> None:
        column = QVBoxLayout(self)
        column.setContentsMargins(0, 0, 0, 0)
        header = QHBoxLayout()
        self.title = QLabel("<b>Documents</b>")
        self.attach_button = QPushButton("Attach…")
        self.attach_button.setAccessibleName("Attach a document")
        self.attach_button.setToolTip("Add a document to ask about (txt, md, html, pdf, docx)")
        self.attach_button.clicked.connect(self.choose_file)
        self.remove_button = QPushButton("Remove")
        self.remove_button.setAccessibleName("Remove the selected document")
        self.remove_button.setEnabled(False)
        self.remove_button.clicked.connect(self.remove_selected)
        header.addWidget(self.title, 1)
        header.addWidget(self.attach_button)
        header.addWidget(self.remove_button)
        column.addLayout(header)
        self.list = QListWidget()
        self.list.setAccessibleName("Attached documents")
        self.list.setMaximumHeight(88)
        self.list.itemSelectionChanged.connect(
            lambda: self.remove_button.setEnabled(bool(self.list.selectedItems()))
        )
        column.addWidget(self.list)
        progress = QHBoxLayout()
        self.progress_label = QLabel()
        self.progress_bar = QProgressBar()
        self.progress_bar.setAccessibleName("Indexing progress")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setAccessibleName("Cancel indexing")
        self.cancel_button.clicked.connect(self.cancel)
        progress.addWidget(self.progress_label, 1)
        progress.addWidget(self.progress_bar, 1)
        progress.addWidget(self.cancel_button)
        self.progress_row = QWidget()
        self.progress_row.setLayout(progress)
        self.progress_row.hide()
        column.addWidget(self.progress_row)
        self.note = QLabel(SEARCH_NOTE)
        self.note.setObjectName("statsLine")
        self.note.setWordWrap(True)
        column.addWidget(self.note)

    # -- wiring ----------------------------------------------------------------------------
    def bind(self, store: Store, ensure: Callable[[], int | None]) -> None:
        """The store, and a way to create the chat on a first attach (its id, or None)."""
        self._store, self._ensure = store, ensure
        self.refresh()

    def show_conversation(self, conversation_id: int | None) -> None:
        self._conversation_id = conversation_id
        self.refresh()

    @property
    def indexing(self) -> bool:
        return self._cancel is not None

    def documents(self) -> list[passage_index.DocumentInfo]:
        if self._store is None or self._conversation_id is None:
            return []
        return passage_index.list_documents(self._store, self._conversation_id)

    def refresh(self) -> None:
        """Show the open conversation's documents (hidden when there are none)."""
        try:
            documents = self.documents()
        except AssistantError as exc:
            self.failed.emit(str(exc))
            documents = []
        self.list.clear()
        for doc in documents:
            item = QListWidgetItem(
                f"{doc.name} · about {doc.tokens:,} tokens · {doc.passages} passages"
            )
            item.setData(Qt.ItemDataRole.UserRole, doc.id)
            item.setToolTip(f"{doc.chars:,} characters")
            self.list.addItem(item)
        self.remove_button.setEnabled(False)
        self.setVisible(bool(documents) or self.indexing)

    # -- intents ---------------------------------------------------------------------------
    def choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Attach a document", "", FILE_FILTER)
        if path:
            self.attach_file(path)

    def attach_file(self, path: str) -> bool:
        from assistant.documents.readers import load_document

        try:
            document = load_document(path)
        except AssistantError as exc:
            self.failed.emit(str(exc))
            return False
        return self.attach_text(document.text, document.name)

    def attach_text(self, text: str, name: str = "pasted text") -> bool:
        """Index a document into the open chat (created if need be), on a thread."""
        if self._store is None:
            return False
        if self.indexing:
            self.failed.emit("A document is still being indexed: wait, or cancel it.")
            return False
        from assistant.documents.readers import from_text

        try:
            document = from_text(text, name)
        except AssistantError as exc:
            self.failed.emit(str(exc))
            return False
        conversation_id = self._ensure()
        if conversation_id is None:
            return False
        self._conversation_id = conversation_id
        self._cancel = cancel = threading.Event()
        self.progress_label.setText(f"Indexing {document.name}…")
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setValue(0)
        self.progress_row.show()
        self.setVisible(True)
        store, signals = self._store, self._signals

        def work() -> None:
            try:
                info = attach(
                    store,
                    None,
                    conversation_id,
                    document.name,
                    document.text,
                    retitle=True,
                    progress=signals.progress.emit,
                    cancel=cancel,
                )
            except passage_index.IndexingCancelledError:
                signals.cancelled.emit()
            except AssistantError as exc:
                signals.failed.emit(str(exc))
            except Exception as exc:  # a bug must not pass silently: report it
                traceback.print_exc(file=sys.stderr)
                signals.failed.emit(f"Could not index {document.name}: {exc}")
            else:
                signals.done.emit(conversation_id, info)

        threading.Thread(target=work, name="index-document", daemon=True).start()
        return True

    def cancel(self) -> None:
        if self._cancel is not None:
            self._cancel.set()

    def remove_selected(self) -> None:
        items = self.list.selectedItems()
        if not items or self._store is None:
            return
        try:
            passage_index.remove_document(self._store, items[0].data(Qt.ItemDataRole.UserRole))
        except AssistantError as exc:
            self.failed.emit(str(exc))
        self.refresh()
        self.changed.emit()

    # -- the indexing thread's signals -----------------------------------------------------
    def _on_progress(self, progress: passage_index.IndexProgress) -> None:
        self.progress_bar.setValue(int(progress.fraction * 1000))
        self.progress_label.setText(
            f"Indexing: {progress.passages:,} passages, "
            f"{progress.done_chars / 1e6:.1f} of {progress.total_chars / 1e6:.1f} MB"
        )

    def _finished(self) -> None:
        self._cancel = None
        self.progress_row.hide()
        self.refresh()

    def _on_done(self, conversation_id: int, _info: object) -> None:
        self._finished()  # the panel shows the open chat's documents, whichever it is now
        if self._conversation_id == conversation_id:  # no other chat was opened meanwhile
            self.changed.emit()
        try:  # the list names the chat after its document even when another one is open
            title = self._store.get_conversation(conversation_id).title if self._store else ""
        except AssistantError:
            title = ""
        if title:
            self.retitled.emit(conversation_id, title)

    def _on_failed(self, message: str) -> None:
        self._finished()
        self.failed.emit(message)

    def _on_cancelled(self) -> None:
        self._finished()


def connect_documents(window: Any) -> None:
    """Wire the main window's Documents panel and the source chips of its replies: the store,
    creating the chat on a first attach, errors to the banner, a summary's document listed when
    it arrives, and a chip opening its passage."""
    from .source_chips import open_source, requests

    panel: DocumentsPanel = window.panel.documents
    panel.bind(window.store, window.conversations.ensure)
    panel.failed.connect(window.show_error)
    panel.retitled.connect(window.conversations.show_title)
    window.host.summary_done.connect(lambda *_: panel.show_conversation(window.state.id))

    def opened(sources: list, index: int, chip: QWidget) -> None:
        if chip.window() is window:  # every window hears every chip
            open_source(window, window.store, sources, index)

    requests().open.connect(opened)

    def disconnect(*_args) -> None:
        try:  # at exit the shared signal source may already be gone
            requests().open.disconnect(opened)
        except (RuntimeError, TypeError):
            pass

    window.destroyed.connect(disconnect)
