"""Documents in the desktop window (pytest-qt, offscreen): the Documents panel (attach, sizes,
remove, cancel), numbered source chips under a reply, and a chip opening its passage."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("pytestqt")

from PySide6.QtCore import QMimeData, Qt  # noqa: E402
from PySide6.QtWidgets import QWidget  # noqa: E402

from assistant.conversation import passage_index  # noqa: E402
from assistant.conversation.store import Store  # noqa: E402
from ui.documents_panel import DocumentsPanel  # noqa: E402
from ui.message_widget import MessageWidget  # noqa: E402
from ui.source_chips import open_source, requests  # noqa: E402
from ui.sources_dialog import SourcesDialog  # noqa: E402

from .ui_windows import open_window  # noqa: E402

DATA = Path(__file__).parent / "data"
ENGLISH = (DATA / "jargon_file_4.4.7_excerpt.txt").read_text(encoding="utf-8")
RUN_TIMEOUT = 300_000


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "ui.sqlite3")
    yield s
    s.close()


def test_the_documents_panel_attaches_lists_and_removes(qtbot, store):
    conversation = store.create_conversation()
    panel = DocumentsPanel()
    qtbot.addWidget(panel)
    panel.bind(store, lambda: conversation.id)
    panel.show_conversation(conversation.id)
    assert panel.isHidden(), "hidden without documents"
    assert "BM25" in panel.note.text() and "no embedding model" in panel.note.text()
    with qtbot.waitSignal(panel.changed, timeout=30_000):
        assert panel.attach_text(ENGLISH, "jargon.txt")
    assert panel.list.count() == 1
    row = panel.list.item(0).text()
    assert row.startswith("jargon.txt · about ") and "tokens" in row and "passages" in row
    assert not panel.progress_row.isVisibleTo(panel)
    panel.list.setCurrentRow(0)
    assert panel.remove_button.isEnabled()
    qtbot.mouseClick(panel.remove_button, Qt.MouseButton.LeftButton)
    assert panel.list.count() == 0 and passage_index.count_passages(store) == (0, 0)


def test_cancelling_an_indexing_keeps_nothing(qtbot, store):
    conversation = store.create_conversation()
    panel = DocumentsPanel()
    qtbot.addWidget(panel)
    panel.bind(store, lambda: conversation.id)
    panel.show_conversation(conversation.id)
    started = []
    panel._signals.progress.connect(lambda p: started.append(p) or panel.cancel())
    with qtbot.waitSignal(panel._signals.cancelled, timeout=60_000):
        assert panel.attach_text(ENGLISH * 40, "big.txt")
        assert panel.progress_row.isVisibleTo(panel) and panel.indexing
    assert started and panel.list.count() == 0 and not panel.indexing
    assert passage_index.list_documents(store, conversation.id) == []


def test_chips_under_a_reply_open_the_passage_highlighted(qtbot, store):
    conversation = store.create_conversation()
    doc = passage_index.add_document(store, conversation.id, "jargon.txt", ENGLISH)
    start = ENGLISH.index("The Story of Mel")
    sources = [
        {"n": 2, "document": "jargon.txt", "document_id": doc.id, "start": start, "end": start + 90,
         "score": 7.5},
        {"n": 1, "document": "jargon.txt", "document_id": doc.id, "start": 0, "end": 120,
         "score": 2.0},
    ]  # fmt: skip
    widget = MessageWidget("assistant", 1)
    qtbot.addWidget(widget)
    widget.show()
    widget.set_stats({"completion_tokens": 3, "sources": sources})
    chips = widget.source_chips
    assert chips.isVisible() and [c.text() for c in chips.chips] == [
        "[1] jargon.txt",
        "[2] jargon.txt",
    ]
    with qtbot.waitSignal(requests().open, timeout=5000) as opened:
        qtbot.mouseClick(chips.chips[1], Qt.MouseButton.LeftButton)
    assert opened.args[1] == 0, "the chip [2] is the first (most relevant) source"

    window = QWidget()
    window.show_error = lambda message: pytest.fail(message)
    qtbot.addWidget(window)
    open_source(window, store, sources, 0)
    dialog = window.findChild(SourcesDialog)
    assert dialog is not None and dialog.points.count() == 2
    assert dialog.points.currentRow() == 1  # listed by number: [1], then [2]
    assert dialog.highlighted() == [(start, start + 90)]
    widget.set_stats({"completion_tokens": 3})
    assert not chips.isVisible()


def test_ask_about_a_pasted_document_in_the_window(qtbot):
    window = open_window(qtbot, n_ctx=1024, max_tokens=8)
    try:
        data = QMimeData()
        data.setText(ENGLISH)
        window.input.insertFromMimeData(data)
        button = next(b for b in window.banner.action_buttons() if b.text() == "Ask about this")
        documents = window.panel.documents
        with qtbot.waitSignal(documents.changed, timeout=60_000):
            qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
        assert documents.isVisible() and documents.list.count() == 1
        title = window.store.get_conversation(window.conversation_id).title
        assert title != "New chat"  # named after the document, in the header and the list
        assert window.title_label.text() == title
        assert window.sidebar.title_of(window.conversation_id) == title
        window.input.setPlainText("What did OS stand for among old-time ITS hackers?")
        with qtbot.waitSignal(window.host.idle, timeout=RUN_TIMEOUT):
            qtbot.keyClick(window.input, Qt.Key.Key_Return)
        assert window.store.get_conversation(window.conversation_id).title == title
        reply = window.store.messages(window.conversation_id)[-1]
        sources = reply.stats["sources"]
        answer = ENGLISH.index("it almost always meant")
        assert any(s["start"] <= answer < s["end"] for s in sources[:3])
        widget = window.chat.messages()[-1]
        assert widget.source_chips.isVisible() and widget.source_chips.chips
        qtbot.mouseClick(widget.source_chips.chips[0], Qt.MouseButton.LeftButton)
        dialog = window.findChild(SourcesDialog)
        first = min(sources, key=lambda s: s["n"])
        assert dialog is not None and dialog.highlighted()[0] == (first["start"], first["end"])
        dialog.close()
    finally:
        window.close()
