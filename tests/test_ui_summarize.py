"""'Summarize this' in the desktop window, on the real embedded model (pytest-qt, offscreen)."""

from __future__ import annotations

import threading

import pytest

pytest.importorskip("pytestqt")

from PySide6.QtCore import QMimeData, Qt, QUrl  # noqa: E402

from assistant.settings import Settings  # noqa: E402
from ui.main_window import MainWindow  # noqa: E402
from ui.prompt_dialog import PromptDialog  # noqa: E402
from ui.sources_dialog import SourcesDialog  # noqa: E402

from .ui_windows import open_window  # noqa: E402

RUN_TIMEOUT = 300_000
ARTICLE = "\n\n".join(
    [
        "The harbor museum reopened in March after a two-year renovation that cost four million "
        "euros. Visitors can now enter through a glass hall facing the old lighthouse.",
        "Its new wing shows Roman coins and amphorae found by divers near the harbor wall in "
        "2019. The finds prove that ships from Carthage traded wine and olive oil here.",
        "The city council hopes the museum will double the number of tourists in winter. "
        "Entry is free for children, and the café on the roof serves fish soup every Friday. "
        "Guided tours start at ten.",
    ]
    * 4
)  # about 2,000 characters: a paste this long is offered for a summary


@pytest.fixture
def make_window(qtbot):
    windows: list[MainWindow] = []

    def make(*, n_ctx: int = 2048) -> MainWindow:
        window = open_window(qtbot, n_ctx=n_ctx, max_tokens=24)
        windows.append(window)
        return window

    yield make
    for window in windows:
        window.close()


def paste(window: MainWindow, text: str) -> None:
    data = QMimeData()
    data.setText(text)
    window.input.insertFromMimeData(data)


def drop(window: MainWindow, path) -> None:
    data = QMimeData()
    data.setUrls([QUrl.fromLocalFile(str(path))])
    window.input.insertFromMimeData(data)


def test_pasted_text_is_summarized_off_the_gui_thread_with_sources(make_window, qtbot):
    assert len(ARTICLE) >= 2000
    window = make_window()
    threads: list[str] = []
    window.host._worker.summary_progress.connect(
        lambda *_: threads.append(threading.current_thread().name),
        Qt.ConnectionType.DirectConnection,
    )
    paste(window, ARTICLE)
    assert window.input.toPlainText() == ""
    button = next(b for b in window.banner.action_buttons() if b.text() == "Summarize this")
    with qtbot.waitSignal(window.host.idle, timeout=RUN_TIMEOUT):
        qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
        assert window.summary_bar.isVisible() and window.send_button.text() == "Stop"
    assert threads and threading.main_thread().name not in threads
    assert not window.summary_bar.isVisible() and window.send_button.text() == "Send"
    stored = window.store.messages(window.conversation_id)
    assert [m.role for m in stored] == ["user", "assistant"]
    reply = stored[1]
    assert reply.status == "complete" and reply.content.strip()
    summary = reply.stats["summary"]
    name, text = window.store.get_document(summary["document_id"])
    assert name == "pasted text" and text == ARTICLE
    assert summary["sources"] and all(p["ranges"] for p in summary["sources"])
    widget = window.chat.messages()[-1]
    assert widget.message_id == reply.id and widget.text() == reply.content
    assert widget.sources_button.isVisible()
    context = reply.stats["context"]
    assert context["n_ctx"] == 2048
    assert window.meter.used == context["used"] + reply.tokens > 0, "meter counts the summary"

    # the sources dialog highlights the passage behind the selected point
    qtbot.mouseClick(widget.sources_button, Qt.MouseButton.LeftButton)
    dialog = window.findChild(SourcesDialog)
    assert dialog is not None and dialog.isVisible()
    last = len(summary["sources"]) - 1
    dialog.points.setCurrentRow(last)
    expected = [tuple(r) for r in summary["sources"][last]["ranges"]]
    assert dialog.highlighted() == expected
    cursor = dialog.document.textCursor()
    assert cursor.position() == expected[0][0]
    dialog.close()

    # a follow-up question sees the summary in its context
    window.input.setPlainText("When did the museum reopen?")
    with qtbot.waitSignal(window.host.idle, timeout=RUN_TIMEOUT):
        qtbot.keyClick(window.input, Qt.Key.Key_Return)
    with qtbot.waitSignal(window.host.prompt_ready, timeout=RUN_TIMEOUT):
        window.show_prompt()
    prompt = window.findChild(PromptDialog).text.toPlainText()
    assert reply.content.strip()[:20] in prompt and "When did the museum reopen?" in prompt
    assert len(window.store.messages(window.conversation_id)) == 4


def test_escape_cancels_a_multi_chunk_summary_and_keeps_it_partial(make_window, qtbot):
    window = make_window(n_ctx=512)
    events: list = []
    window.host.summary_progress.connect(lambda _cid, p: events.append(p))
    assert window.summarize_text(ARTICLE * 3, "museum.txt")
    qtbot.waitUntil(lambda: bool(events), timeout=RUN_TIMEOUT)
    assert events[0].total > 1, "a small context splits the document into chunks"
    assert "of" in window.summary_label.text() and window.summary_progress.maximum() > 1
    with qtbot.waitSignal(window.host.idle, timeout=RUN_TIMEOUT):
        qtbot.keyClick(window.input, Qt.Key.Key_Escape)
    reply = window.store.messages(window.conversation_id)[-1]
    assert reply.status == "cancelled" and reply.stats["summary"]["partial"]
    assert "partial" in reply.content.lower() and reply.content.strip()
    assert events[-1].done < events[-1].total
    widget = window.chat.messages()[-1]
    assert "stopped" in widget.status_label.text() and not window.summary_bar.isVisible()
    assert "cancelled" in window.banner.text()


def test_bad_files_show_the_reason_and_the_app_keeps_working(make_window, qtbot, tmp_path):
    window = make_window()
    from pypdf import PdfWriter

    scan = PdfWriter()
    scan.add_blank_page(200, 200)  # a page with no text layer, like a scanned image
    scan.write(tmp_path / "scan.pdf")
    cases = {
        "empty.txt": (b"", "no text to summarize"),
        "photo.png": (b"\x89PNG\r\n\x1a\n" + bytes(64), "unsupported file type"),
        "broken.pdf": (b"%PDF-1.4 not really a pdf", "not a readable PDF"),
        "scan.pdf": (None, "no text layer"),
    }
    for name, (data, reason) in cases.items():
        path = tmp_path / name
        if data is not None:
            path.write_bytes(data)
        drop(window, path)
        assert window.banner.kind == "error" and reason in window.banner.text(), name
    assert window.input.toPlainText() == "" and window.chat.messages() == []

    # a dropped document (HTML here) goes through the document reader and is summarized
    page = tmp_path / "museum.html"
    page.write_text(
        "<html><body><h1>Museum</h1>"
        + "".join(f"<p>{p}</p>" for p in ARTICLE.split("\n\n"))
        + "</body></html>",
        encoding="utf-8",
    )
    drop(window, page)
    assert "museum.html" in window.banner.text()
    button = next(b for b in window.banner.action_buttons() if b.text() == "Summarize this")
    with qtbot.waitSignal(window.host.idle, timeout=RUN_TIMEOUT):
        qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    reply = window.store.messages(window.conversation_id)[-1]
    assert reply.stats["summary"]["document"] == "museum.html" and reply.content.strip()


def test_summary_length_and_form_come_from_the_settings_dialog(make_window, qtbot):
    from ui.settings_dialog import SettingsDialog

    window = make_window()
    window.open_settings()
    dialog = window.findChild(SettingsDialog)
    dialog.summary_length.setCurrentIndex(dialog.summary_length.findData("short"))
    dialog.summary_bullets.setChecked(False)
    with qtbot.assertNotEmitted(window.host.load_finished, wait=200):
        dialog.accept()  # summaries are not a load option: the model stays loaded
    assert window.settings.summary_length == "short" and not window.settings.summary_bullets
    assert Settings.load().summary_length == "short", "saved for the next launch"
    with qtbot.waitSignal(window.host.idle, timeout=RUN_TIMEOUT):
        assert window.summarize_text(ARTICLE)
    reply = window.store.messages(window.conversation_id)[-1]
    summary = reply.stats["summary"]
    assert (summary["length"], summary["bullets"]) == ("short", False)
    assert not reply.content.startswith("- "), "prose, not bullet points"
