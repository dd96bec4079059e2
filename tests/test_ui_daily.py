"""The desktop app as people use it every day (issue 13), on the real embedded model offscreen:
safe model switching, honest waits, state that belongs to its chat, versions that survive a
restart, the layout down to 640×480, the keyboard, menus and themes."""

from __future__ import annotations

from dataclasses import replace

import pytest

pytest.importorskip("pytestqt")

from PySide6.QtCore import QPoint, QRect, Qt  # noqa: E402
from PySide6.QtGui import QPalette  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from assistant.settings import Settings  # noqa: E402
from ui import ui_state  # noqa: E402
from ui.main_window import MainWindow  # noqa: E402
from ui.markdown_view import TextSegment  # noqa: E402
from ui.shortcuts_dialog import ShortcutsDialog  # noqa: E402

from .test_ui_app import PARAGRAPH  # noqa: E402
from .ui_windows import LOAD_TIMEOUT, REPLY_TIMEOUT, send, window_factory  # noqa: E402

ARTICLE = " ".join(
    f"Section {i}. The harbor museum keeps {i} boats, each with a logbook written by its "
    "crew; the oldest pages describe storms, cargo and the fish sold at the market."
    for i in range(80)
)


@pytest.fixture
def make_window(qtbot):
    yield from window_factory(qtbot)


def load(qtbot, window: MainWindow, start) -> None:
    with qtbot.waitSignal(window.model_ready, timeout=LOAD_TIMEOUT):
        start()


def rect_in(window: MainWindow, widget) -> QRect:
    return QRect(widget.mapTo(window, QPoint(0, 0)), widget.size())


# -- models --------------------------------------------------------------------------------------
def test_a_bad_model_file_keeps_the_old_model_and_survives_a_restart(make_window, qtbot, tmp_path):
    window = make_window()
    fake = tmp_path / "notes.gguf"
    fake.write_text("this is a text file, not a model")
    load(qtbot, window, lambda: window.use_model(str(fake)))
    assert window.info is not None, "the working model was not unloaded"
    text = window.model_banner.text()
    assert "notes.gguf is not a GGUF model file" in text and "begins with “this”" in text
    assert "b'" not in text and "still loaded" in text, text
    assert Settings.load().model == "", "the bad path is not saved"
    send(qtbot, window, "Say hi.")
    assert window.store.messages(window.conversation_id)[-1].status in {"complete", "length"}
    window.close()
    again = make_window()  # the next launch starts with the model that worked
    assert again.info is not None and not again.model_banner.text()


def test_the_picker_lists_models_with_their_fit_and_switches_safely(make_window, qtbot, model_path):
    from assistant.library import local

    linked = local.import_model(model_path, link=True)  # a second model in the library
    window = make_window()
    picker = window.model_picker
    with qtbot.waitSignal(picker.scanned, timeout=30_000):
        picker.refresh()
    labels = [picker.itemText(i) for i in range(picker.count())]
    built_in = labels[picker.findData("")]
    assert built_in.startswith("SmolLM2 135M Instruct · built in")
    assert "CPU only (" in built_in or "GPU" in built_in, "the fit badge, with its reason"
    row = picker.findData(linked.id)
    assert row >= 0 and "linked" in labels[row]
    assert "Other GGUF file…" in labels and "Manage models…" in labels
    with qtbot.waitSignal(window.host.idle, timeout=LOAD_TIMEOUT):
        picker.activated.emit(row)
        window.input.setPlainText("Say hi.")  # sent while the new model loads
        qtbot.keyClick(window.input, Qt.Key.Key_Return)
        assert window.chat.messages()[-1].status_label.text() == "Loading the model…"
    assert window.chat.messages()[-1].text(), "answered by the new model once it was ready"
    assert Settings.load().model == linked.id and picker.currentData() == linked.id
    assert window.info.name == "SmolLM2 135M Instruct", "one name: the catalog's"
    assert window.model_label.text().startswith("SmolLM2 135M Instruct")


# -- honest waits --------------------------------------------------------------------------------
def test_a_reply_says_what_it_waits_for_and_how_long_it_waited(make_window, qtbot):
    window = make_window(n_ctx=512, max_tokens=24)
    statuses: list = []
    window.host.status.connect(lambda _cid, status: statuses.append(status))
    for i in range(8):
        statuses.clear()
        send(qtbot, window, f"Message {i}. {PARAGRAPH * 2}")
        if window.meter.dropped:
            break
    assert window.meter.dropped, "the conversation slid"
    reading = [s for s in statuses if s.stage == "reading"]
    assert reading and "tokens of this conversation…" in reading[0].text
    assert reading[0].total > 0 and reading[-1].done <= reading[-1].total
    line = window.chat.messages()[-1].stats_label.text()
    assert "waited" in line and "first token" not in line


def test_a_long_documents_first_chunk_shows_progress_before_it_is_done(make_window, qtbot):
    window = make_window(n_ctx=2048, n_batch=128)  # small batches: progress comes sooner
    events: list = []
    window.host.summary_progress.connect(lambda _cid, p: events.append(p))
    assert window.summarize_text(ARTICLE, "harbor.txt")
    qtbot.waitUntil(lambda: any(e.prompt_done for e in events), timeout=REPLY_TIMEOUT)
    first = next(e for e in events if e.prompt_done)
    assert first.done == 0 and first.prompt_done < first.prompt_total, "inside the first chunk"
    assert "Reading harbor.txt: chunk 1 of" in window.summary_label.text()
    assert window.summary_progress.value() > 0, "the bar moved before any chunk was done"
    bubble = window.chat.messages()[-1]
    assert "chunk 1 of" in bubble.status_label.text() and not bubble.wait_bar.isHidden()
    with qtbot.waitSignal(window.host.idle, timeout=REPLY_TIMEOUT):
        qtbot.keyClick(window.input, Qt.Key.Key_Escape)


# -- state that belongs to its chat ----------------------------------------------------------------
def test_notices_and_the_meter_follow_the_chat_and_the_settings(make_window, qtbot):
    window = make_window(n_ctx=512, max_tokens=24)
    for i in range(6):
        send(qtbot, window, f"Message {i}. {PARAGRAPH * 2}")
        if window.meter.dropped:
            break
    first = window.conversation_id
    assert "left the context window" in window.banner.text()
    window.new_chat()
    assert window.banner.text() == "", "a new chat has nothing to say yet"
    assert window.meter.used == 0 and not window.meter.dropped
    too_long = "The quick brown fox jumps over the lazy dog. " * 120
    send(qtbot, window, too_long)
    second = window.conversation_id
    error = window.banner.text()
    assert "too long" in error or "tokens" in error
    assert "shortening it in the middle" not in error, "the app offers its own way out"
    actions = [b.text() for b in window.banner.action_buttons()]
    assert "Summarize it instead" in actions and window.input.toPlainText() == too_long
    window.input.clear()
    window.select_conversation(first)
    assert "left the context window" in window.banner.text() and error not in window.banner.text()
    window.select_conversation(second)
    assert window.banner.text() == error
    window.select_conversation(first)
    stored = window.store.messages(first)
    load(qtbot, window, lambda: window.apply_settings(replace(window.settings, n_ctx=1024)))
    qtbot.waitUntil(lambda: window.meter.n_ctx == 1024, timeout=REPLY_TIMEOUT)
    assert 0 < window.meter.used <= 1024, "recounted at once, nothing generated"
    assert window.store.messages(first) == stored
    window.close()
    again = make_window(n_ctx=768)
    assert again.conversation_id == first
    qtbot.waitUntil(lambda: again.meter.n_ctx == 768, timeout=REPLY_TIMEOUT)


# -- nothing lost --------------------------------------------------------------------------------
def test_versions_of_replies_and_edits_survive_a_restart(make_window, qtbot):
    window = make_window(max_tokens=16)
    window.settings.sampling = {**window.settings.sampling, "seed": None, "temperature": 1.0}
    send(qtbot, window, "Say hello.")
    with qtbot.waitSignal(window.host.idle, timeout=REPLY_TIMEOUT):
        window.regenerate()
    conversation = window.conversation_id
    reply_versions = window.store.versions(conversation)
    assert len(reply_versions) == 1
    first = window.chat.messages()[0]
    first.start_edit()
    first.editor.setPlainText("Say good night.")
    with qtbot.waitSignal(window.host.idle, timeout=REPLY_TIMEOUT):
        first.submit_edit()
    window.close()
    again = make_window()
    assert again.conversation_id == conversation
    edited = again.chat.messages()[0]
    assert edited.text() == "Say good night." and edited.version_label.text() == "2/2"
    qtbot.mouseClick(edited.older_button, Qt.MouseButton.LeftButton)
    original, reply = again.chat.messages()
    assert original.text() == "Say hello." and reply.version_label.text() == "2/2"
    qtbot.mouseClick(reply.older_button, Qt.MouseButton.LeftButton)
    assert again.chat.messages()[-1].version_label.text() == "1/2"
    again.confirm = lambda _title, _text: True
    again.chat.messages()[-1].delete_requested.emit(again.chat.messages()[-1].message_id)
    assert again.chat.messages()[-1].version_label.text() == "", "one version left"


def test_a_reply_cut_by_the_length_limit_offers_continue(make_window, qtbot):
    window = make_window(max_tokens=8)
    send(qtbot, window, "Write a long story about a lighthouse keeper and the sea.")
    reply = window.chat.messages()[-1]
    assert reply.status == "length" and reply.continue_button.isVisibleTo(window)
    button = next(b for b in window.banner.action_buttons() if b.text() == "Continue")
    before = reply.text()
    with qtbot.waitSignal(window.host.idle, timeout=REPLY_TIMEOUT):
        qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    assert window.chat.messages()[-1].text().startswith(before)
    assert len(window.chat.messages()[-1].text()) > len(before)


# -- layout and keyboard -------------------------------------------------------------------------
def test_the_window_works_from_640x480_without_overlaps_or_cut_text(make_window, qtbot):
    window = make_window(max_tokens=12)
    send(qtbot, window, "# Minutes of the meeting about " + "a very long subject " * 12)
    with qtbot.waitSignal(window.host.idle, timeout=REPLY_TIMEOUT):
        window.regenerate()  # a reply with versions, cut at the length limit: every button
    assert window.chat.messages()[-1].version_label.text() == "2/2"
    assert window.title_label.text().startswith("Minutes of the meeting"), "no Markdown"
    assert window.sidebar.list.item(0).text().startswith("Minutes of the meeting")
    sidebar = window.sidebar.width()
    for width, height in ((1280, 800), (800, 600), (640, 480)):
        window.resize(width, height)
        qtbot.waitUntil(lambda w=width: window.width() == w, timeout=2000)
        qtbot.wait(150)  # text re-wraps, and message heights follow
        shown = [w for w in window.panel.header.widgets() if w.isVisible()]
        rects = [rect_in(window, w) for w in shown]
        for widget, rect in zip(shown, rects, strict=True):
            assert window.rect().contains(rect), (width, widget.accessibleName(), rect)
            assert widget.width() >= widget.minimumSizeHint().width(), widget.accessibleName()
        for i, a in enumerate(rects):
            for b in rects[i + 1 :]:
                assert not a.intersects(b), (width, a, b)
        viewport = rect_in(window, window.chat.viewport())
        for message in window.chat.messages():
            box = rect_in(window, message)
            assert box.right() <= viewport.right(), (width, "a message is cut off")
            parts = [*message.body.parts(), message.status_label, message.stats_label]
            buttons = [message.older_button, message.newer_button, message.copy_button]
            buttons += [message.regenerate_button, message.continue_button, message.more_button]
            for part in [*parts, *buttons]:
                if part.isVisible():
                    assert box.contains(rect_in(window, part)), (width, part.accessibleName())
        compact = window.chat.messages()[-1].more_button.isVisible()
        assert compact == (width == 640), "narrow: a message's actions go into its menu"
        assert window.sidebar.width() == sidebar, "the sidebar keeps its width"
    assert window.panel.header.rows == 3 and window.panel.header.more_button.isVisible()


def test_tab_goes_from_the_box_to_send_then_newest_message_first(make_window, qtbot):
    window = make_window(max_tokens=12)
    send(qtbot, window, "Say one.")
    send(qtbot, window, "Say two.")
    widgets = window.chat.messages()
    window.input.setFocus()
    qtbot.keyClick(window.input, Qt.Key.Key_Tab)
    assert QApplication.focusWidget() is window.send_button
    assert window.focus_ring.target is window.send_button, "a visible focus ring"
    seen: list[int] = []
    for _ in range(40):
        qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Tab)
        focused = QApplication.focusWidget()
        owner = next((i for i, w in enumerate(widgets) if w.isAncestorOf(focused)), None)
        if owner is None:
            break
        if not seen or seen[-1] != owner:
            seen.append(owner)
        if isinstance(focused, TextSegment):
            ring = window.focus_ring.geometry()
            assert ring.contains(rect_in(window, focused).intersected(ring))
    assert seen == [3, 2, 1, 0], "newest message first, then the older ones"


def test_menus_theme_shortcuts_and_the_search_box(make_window, qtbot):
    window = make_window(max_tokens=12)
    send(qtbot, window, "Say hi.")
    user, reply = window.chat.messages()
    reply_actions = [a.text() for a in reply.context_menu().actions() if a.text()]
    assert {"Copy message", "Regenerate", "Delete…", "Export chat…"} <= set(reply_actions)
    assert "Edit and resend…" in [a.text() for a in user.context_menu().actions()]
    chats = window.sidebar.context_menu(window.sidebar.list.item(0)).actions()
    assert [a.text() for a in chats if a.text()] == ["Open", "Rename", "Export…", "Delete…"]
    window.focus_search()
    qtbot.keyClicks(window.sidebar.search, "zzz")
    qtbot.keyClick(window.sidebar.search, Qt.Key.Key_Escape)
    assert window.sidebar.search.text() == ""
    qtbot.keyClick(window.sidebar.search, Qt.Key.Key_Escape)
    assert QApplication.focusWidget() is window.input
    window.menu_actions.themes["dark"].trigger()
    assert QApplication.palette().color(QPalette.ColorRole.Window).lightness() < 128
    assert ui_state.load()["theme"] == "dark"
    window.menu_actions.themes["light"].trigger()
    assert QApplication.palette().color(QPalette.ColorRole.Window).lightness() > 128
    window.menu_actions.shortcuts.trigger()
    dialog = window.findChild(ShortcutsDialog)
    rows = dict(dialog.rows())
    assert rows["Ctrl+N"] == "New chat" and "Esc" in rows and "Ctrl+R" in rows
    dialog.close()
