"""The desktop window on the real embedded model (pytest-qt, offscreen).

Each test opens a MainWindow with its own ASSISTANT_HOME (tests/conftest.py), waits for the
model to load on the worker thread, and drives it with keys and clicks like a user would.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

pytest.importorskip("pytestqt")

from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtGui import QTextCursor  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from assistant.conversation.store import Store  # noqa: E402
from assistant.errors import ModelLoadError  # noqa: E402
from assistant.settings import Settings  # noqa: E402
from ui.main_window import MainWindow  # noqa: E402
from ui.prompt_dialog import PromptDialog  # noqa: E402
from ui.settings_dialog import SettingsDialog  # noqa: E402

from .ui_windows import (  # noqa: E402
    LOAD_TIMEOUT,
    REPLY_TIMEOUT,
    open_window,
    send,
    window_factory,
)

LONG_PROMPT = "Write a very long story about a dragon, a knight and a lighthouse, in ten chapters."
PARAGRAPH = (
    "Here is some background about my garden. It has tomatoes, beans, carrots, lettuce, basil, "
    "mint, two apple trees and a small pond with frogs. The soil is sandy and dries out fast in "
    "summer, so I water every evening, and I add compost in spring and autumn. Last year the "
    "tomatoes split after heavy rain and the beans were eaten by slugs. "
)


@pytest.fixture
def make_window(qtbot):
    yield from window_factory(qtbot)


def start_long_reply(qtbot, window: MainWindow, pieces: int = 3) -> list[str]:
    received: list[str] = []
    window.host.piece.connect(lambda _mid, text: received.append(text))
    send(qtbot, window, LONG_PROMPT, wait=False)
    qtbot.waitUntil(lambda: len(received) >= pieces, timeout=REPLY_TIMEOUT)
    return received


def test_send_streams_the_reply_into_the_view_and_sqlite(make_window, qtbot, monkeypatch):
    import assistant.engine.runtime

    threads: list[str] = []
    real_stream = assistant.engine.runtime.ModelRuntime.stream

    def recording_stream(self, *args, **kwargs):
        threads.append(threading.current_thread().name)
        return real_stream(self, *args, **kwargs)

    monkeypatch.setattr(assistant.engine.runtime.ModelRuntime, "stream", recording_stream)
    window = make_window()
    assert window.info is not None and "CPU" in window.model_label.text()
    pieces: list[str] = []
    window.host.piece.connect(lambda _mid, text: pieces.append(text))
    window.input.setPlainText("Name three colors.")
    with qtbot.waitSignal(window.host.idle, timeout=REPLY_TIMEOUT):
        qtbot.keyClick(window.input, Qt.Key.Key_Return)
        assert window.chat.messages()[0].text() == "Name three colors."  # shown at once
        assert window.input.toPlainText() == ""
    stored = window.store.messages(window.conversation_id)
    assert [m.role for m in stored] == ["user", "assistant"]
    reply = stored[1]
    assert reply.status in {"complete", "length"} and reply.content.strip()
    assert len(pieces) > 1 and "".join(pieces) == reply.content  # streamed, piece by piece
    widget = window.chat.messages()[-1]
    assert widget.message_id == reply.id and widget.text() == reply.content
    assert "tokens/s" in widget.stats_label.text() and "waited" in widget.stats_label.text()
    assert 0 < window.meter.used <= 1024
    assert window.sidebar.ids() == [window.conversation_id]
    assert threads and threading.main_thread().name not in threads  # never on the GUI thread


def test_escape_stops_the_reply_within_a_token_and_keeps_it(make_window, qtbot):
    window = make_window(max_tokens=400)
    after_stop: list[str] = []

    def count_after_stop(_mid: int, text: str) -> None:  # runs on the model thread
        job = window.replies.job
        if job is not None and job.cancel.is_set():
            after_stop.append(text)

    window.host._worker.piece.connect(count_after_stop, Qt.ConnectionType.DirectConnection)
    start_long_reply(qtbot, window)
    assert window.send_button.text() == "Stop"
    with qtbot.waitSignal(window.host.idle, timeout=REPLY_TIMEOUT):
        qtbot.keyClick(window.input, Qt.Key.Key_Escape)
    reply = window.store.messages(window.conversation_id)[-1]
    assert reply.status == "cancelled" and reply.content
    assert reply.stats["finish_reason"] == "cancelled" and reply.tokens < 400
    assert len(after_stop) <= 1
    widget = window.chat.messages()[-1]
    assert widget.text() == reply.content and "stopped" in widget.status_label.text()
    assert window.send_button.text() == "Send"


def test_regenerate_replaces_the_last_reply_and_keeps_the_old_one(make_window, qtbot):
    window = make_window()
    send(qtbot, window, "Say hello.")
    first = window.store.messages(window.conversation_id)[-1]
    question, last_widget = window.chat.messages()
    assert last_widget.regenerate_button.isVisibleTo(window)
    with qtbot.waitSignal(window.host.idle, timeout=REPLY_TIMEOUT):
        qtbot.keyClick(window.input, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)
        shown = window.chat.messages()  # at once: the old reply's widget replaced by a new one
        assert shown[0] is question and last_widget not in shown
        assert window.chat.widget_for(first.id) is None and len(shown) == 2
    stored = window.store.messages(window.conversation_id)
    assert [m.role for m in stored] == ["user", "assistant"]
    assert stored[-1].id != first.id and stored[-1].content
    with qtbot.waitSignal(window.host.idle, timeout=REPLY_TIMEOUT):
        qtbot.mouseClick(window.chat.messages()[-1].regenerate_button, Qt.MouseButton.LeftButton)
    stored = window.store.messages(window.conversation_id)
    assert len(stored) == 2
    assert [w.message_id for w in window.chat.messages()] == [m.id for m in stored]
    last = window.chat.messages()[-1]
    assert last.text() == stored[-1].content
    assert last.version_label.text() == "3/3" and last.older_button.isEnabled()
    assert window.store.versions(window.conversation_id)[stored[-1].id].ids[0] == first.id


def test_edit_and_resend_keeps_the_old_branch_to_flip_back_to(make_window, qtbot):
    window = make_window()
    send(qtbot, window, "What is 2 plus 2?")
    send(qtbot, window, "And 3 plus 3?")
    before = window.store.messages(window.conversation_id)
    assert len(before) == 4
    first = window.chat.messages()[0]
    assert first.edit_button.isVisibleTo(window)
    qtbot.mouseClick(first.edit_button, Qt.MouseButton.LeftButton)
    assert first.editing
    first.editor.setPlainText("What is 5 plus 5?")
    with qtbot.waitSignal(window.host.idle, timeout=REPLY_TIMEOUT):
        qtbot.mouseClick(first.resend_button, Qt.MouseButton.LeftButton)
    stored = window.store.messages(window.conversation_id)
    assert [m.role for m in stored] == ["user", "assistant"]
    assert stored[0].content == "What is 5 plus 5?" and stored[0].id != before[0].id
    assert [w.text() for w in window.chat.messages()] == [m.content for m in stored]
    edited = window.chat.messages()[0]
    assert edited.version_label.text() == "2/2", "the old branch is one click away"
    qtbot.mouseClick(edited.older_button, Qt.MouseButton.LeftButton)
    assert [w.text() for w in window.chat.messages()] == [m.content for m in before]
    assert window.store.messages(window.conversation_id) == before


def test_switching_chats_mid_reply_lets_it_finish_in_the_background(make_window, qtbot):
    window = make_window(max_tokens=120)
    send(qtbot, window, "Say hi.")
    first_id = window.conversation_id
    qtbot.keyClick(window.input, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
    assert window.conversation_id is None and not window.chat.messages()
    start_long_reply(qtbot, window)
    second_id = window.conversation_id
    assert second_id not in (None, first_id)
    window.sidebar.list.setCurrentRow(window.sidebar.ids().index(first_id))
    assert window.conversation_id == first_id and window.host.replying, "it goes on"
    assert window.send_button.text() == "Send", "this chat is free"
    assert "Writing in" in window.sidebar.queue_label.text()
    shown = window.chat.messages()
    assert [w.text() for w in shown] == [m.content for m in window.store.messages(first_id)]
    window.input.setPlainText("Name a fruit.")  # the model is busy: this one waits its turn
    qtbot.keyClick(window.input, Qt.Key.Key_Return)
    waiting = window.chat.messages()[-1]
    assert "Waiting for the reply in" in waiting.status_label.text()
    assert "waiting" in window.sidebar.queue_label.text()
    with qtbot.waitSignal(window.host.idle, timeout=REPLY_TIMEOUT):
        pass
    background = window.store.messages(second_id)[-1]
    assert background.role == "assistant" and background.status in {"complete", "length"}
    assert window.store.messages(first_id)[-1].content == window.chat.messages()[-1].text()
    assert not window.sidebar.queue_label.isVisibleTo(window)
    window.sidebar.list.setCurrentRow(window.sidebar.ids().index(second_id))
    assert window.chat.messages()[-1].text() == background.content


def test_returning_to_a_chat_mid_reply_shows_the_reply_still_growing(make_window, qtbot):
    window = make_window(max_tokens=200)
    send(qtbot, window, "Say hi.")
    first_id = window.conversation_id
    window.new_chat()
    start_long_reply(qtbot, window)
    second_id = window.conversation_id
    window.select_conversation(first_id)
    window.select_conversation(second_id)
    live = window.chat.messages()[-1]
    assert live.status == "streaming" and window.send_button.text() == "Stop"
    with qtbot.waitSignal(window.host.idle, timeout=REPLY_TIMEOUT):
        qtbot.keyClick(window.input, Qt.Key.Key_Escape)
    stored = window.store.messages(second_id)[-1]
    assert stored.status == "cancelled" and window.chat.messages()[-1].text() == stored.content


def watch_store_close(window: MainWindow) -> list[bool]:
    """Records, for each close of the window's store, whether the model thread still ran."""
    seen: list[bool] = []
    real_close = window.store.close

    def close() -> None:
        seen.append(window.host.running)
        real_close()

    window.store.close = close
    return seen


def test_closing_mid_reply_saves_it_and_reopening_shows_it(make_window, qtbot):
    window = make_window(max_tokens=400)
    start_long_reply(qtbot, window)
    conversation_id = window.conversation_id
    closes = watch_store_close(window)
    window.close()
    assert not window.host.running, "the model thread has ended"
    assert closes == [False], "the store is closed once, after the thread ended"
    reply = Store().messages(conversation_id)[-1]
    assert reply.status == "cancelled" and reply.content
    again = make_window()
    assert again.conversation_id == conversation_id  # the last conversation reopens
    widget = again.chat.messages()[-1]
    assert widget.text() == reply.content and "stopped" in widget.status_label.text()


def test_closing_while_the_model_loads_cancels_it_and_waits_for_the_thread(qtbot, monkeypatch):
    """A load that would take a minute (a large model on a slow disk) but can be cancelled."""
    import assistant.engine.loading as loading

    real_load = loading.load_with_fallback
    started, cancelled = threading.Event(), []

    def slow_load(path, options=None, *, cancel: threading.Event, **kwargs):
        started.set()
        if cancel.wait(60):
            cancelled.append(True)
            raise ModelLoadError("Loading was cancelled.")
        return real_load(path, options, **kwargs)

    monkeypatch.setattr(loading, "load_with_fallback", slow_load)
    settings = Settings()
    settings.save()
    window = MainWindow(settings)
    qtbot.addWidget(window)
    window.show()
    window.start()
    assert started.wait(30)
    closes = watch_store_close(window)
    began = time.monotonic()
    window.close()
    assert time.monotonic() - began < 10 and cancelled, "the load was cancelled"
    assert not window.host.running and closes == [False]


def test_closing_right_after_start_does_not_crash(qtbot):
    window = MainWindow(Settings())
    qtbot.addWidget(window)
    window.show()
    window.start()  # the embedded model starts loading on the worker thread
    closes = watch_store_close(window)
    window.close()
    assert not window.host.running and closes == [False]
    assert not window.isVisible()


def test_what_the_model_sees_shows_the_templated_prompt(make_window, qtbot):
    window = make_window()
    send(qtbot, window, "Tell me a fact about owls.")
    with qtbot.waitSignal(window.host.prompt_ready, timeout=REPLY_TIMEOUT):
        qtbot.mouseClick(window.prompt_button, Qt.MouseButton.LeftButton)
    dialog = window.findChild(PromptDialog)
    assert dialog is not None and dialog.isVisible()
    prompt = dialog.text.toPlainText()
    assert "Tell me a fact about owls." in prompt and "<|im_start|>" in prompt
    dialog.close()


def test_overflow_at_a_small_context_marks_dropped_turns(make_window, qtbot):
    window = make_window(n_ctx=512, max_tokens=24)
    for i in range(6):
        send(qtbot, window, f"Message {i}. {PARAGRAPH * 2}")
        if window.meter.dropped:
            break
    assert window.meter.dropped > 0, "the conversation never outgrew the window"
    assert window.meter.n_ctx == 512 and 0 < window.meter.used <= 512
    assert "dropped" in window.meter.left_label.text()
    conv = window.store.get_conversation(window.conversation_id)
    widgets = window.chat.messages()
    hidden = [w for w in widgets if w.hidden_reason == "dropped"]
    assert hidden and all(w.message_id < conv.window_start_id for w in hidden)
    assert all(w.hidden_label.isVisibleTo(window) for w in hidden)
    assert window.chat.divider.isVisibleTo(window)
    visible = [w for w in widgets if w.hidden_reason is None]
    assert visible[0].message_id == conv.window_start_id
    assert "left the context window" in window.banner.text()


def test_full_context_under_the_stop_policy_is_explained_and_recoverable(make_window, qtbot):
    window = make_window(n_ctx=512, max_tokens=24)
    window.policy_combo.setCurrentIndex(window.policy_combo.findData("stop"))
    window.policy_combo.activated.emit(window.policy_combo.currentIndex())
    for i in range(6):
        text = f"Message {i}. {PARAGRAPH * 2}"
        send(qtbot, window, text)
        if window.banner.kind == "error" and window.banner.text():
            break
    assert "filled the 512-token context window" in window.banner.text()
    stored = window.store.messages(window.conversation_id)
    assert stored[-1].role == "assistant" and all(m.content != text for m in stored)
    assert window.input.toPlainText() == text  # the refused message is back in the box
    assert [w.message_id for w in window.chat.messages()] == [m.id for m in stored]
    window.policy_combo.setCurrentIndex(window.policy_combo.findData("drop"))
    window.policy_combo.activated.emit(window.policy_combo.currentIndex())
    with qtbot.waitSignal(window.host.idle, timeout=REPLY_TIMEOUT):
        qtbot.keyClick(window.input, Qt.Key.Key_Return)
    stored = window.store.messages(window.conversation_id)
    assert [m.role for m in stored[-2:]] == ["user", "assistant"] and stored[-2].content == text


def test_a_corrupt_saved_model_falls_back_to_the_built_in_one_with_the_reason(
    make_window, qtbot, tmp_path, model_path
):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(model_path.read_bytes()[:3_000_000])  # an interrupted download
    window = make_window(model=str(broken))
    assert window.info is not None and "SmolLM2 135M Instruct" in window.model_label.text()
    text = window.model_banner.text()
    assert "broken.gguf" in text and "corrupted or incomplete" in text and "built-in" in text
    assert Settings.load().model == str(broken), "the choice is not forgotten silently"
    send(qtbot, window, "Hello?")  # the app works on the built-in model meanwhile
    assert window.store.messages(window.conversation_id)[-1].role == "assistant"
    with qtbot.waitSignal(window.model_ready, timeout=LOAD_TIMEOUT):
        window.use_model("")  # the user picks the built-in model for good
    assert Settings.load().model == "" and not window.model_banner.text()


def test_keyboard_shortcuts(make_window, qtbot):
    window = make_window()
    send(qtbot, window, "Hi.")
    qtbot.keyClick(window.input, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    assert QApplication.focusWidget() is window.sidebar.search
    qtbot.keyClick(window.sidebar.search, Qt.Key.Key_L, Qt.KeyboardModifier.ControlModifier)
    assert QApplication.focusWidget() is window.input
    qtbot.keyClick(window.input, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
    assert window.conversation_id is None and not window.chat.messages()
    assert QApplication.focusWidget() is window.input
    qtbot.keyClick(window.input, Qt.Key.Key_Comma, Qt.KeyboardModifier.ControlModifier)
    dialog = window.findChild(SettingsDialog)
    assert dialog is not None and dialog.isVisible()
    dialog.reject()
    window.input.setPlainText("line one")
    window.input.moveCursor(QTextCursor.MoveOperation.End)
    qtbot.keyClick(window.input, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    assert window.input.toPlainText() == "line one\n" and not window.host.replying


def test_messages_are_reachable_and_copyable_from_the_keyboard(make_window, qtbot):
    from ui.markdown_view import TextSegment

    window = make_window()
    send(qtbot, window, "Say hello.")
    reply = window.chat.messages()[-1]
    window.chat.verticalScrollBar().setValue(0)
    window.input.setFocus()
    reached: list = []
    for _ in range(60):  # Tab through the window until the reply's text has the focus
        qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Tab)
        focused = QApplication.focusWidget()
        if isinstance(focused, TextSegment):
            reached.append(focused)
            if reply.isAncestorOf(focused):
                break
    assert reached and reply.isAncestorOf(reached[-1]), "the reply's text is reachable by Tab"
    segment = reached[-1]
    assert segment.visibleRegion().boundingRect().height() > 0, "scrolled into view"
    qtbot.keyClick(segment, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClick(segment, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    copied = QApplication.clipboard().text()
    assert copied.strip() and copied.split()[0] in reply.text()
    qtbot.keyClick(segment, Qt.Key.Key_Tab)
    assert QApplication.focusWidget() is not segment, "Tab moves on from a message"


def test_a_refused_message_goes_back_to_the_box_even_when_sent_before(qtbot, monkeypatch):
    import assistant.library.embedded as embedded

    store = Store()
    conv = store.create_conversation(title="Greetings")
    store.add_message(conv.id, "user", "Say hi.")
    store.add_message(conv.id, "assistant", "Hi!")
    stored = store.messages(conv.id)
    store.close()
    monkeypatch.setattr(embedded, "find_embedded_model", lambda: None)  # no model at all
    window = open_window(qtbot, n_ctx=1024, max_tokens=20)
    assert window.info is None and window.model_label.text() == "No model loaded"
    assert "not installed" in window.model_banner.text()
    send(qtbot, window, "Say hi.")  # the very same text as the stored message
    assert "No model is loaded" in window.banner.text()
    assert window.input.toPlainText() == "Say hi.", "given back, not lost"
    assert window.store.messages(conv.id) == stored
    assert [w.message_id for w in window.chat.messages()] == [m.id for m in stored]
    window.close()


def test_a_reply_updates_the_view_without_reading_the_store(make_window, qtbot, monkeypatch):
    """The open chat lives in memory: the GUI thread reads no conversation while replying."""
    window = make_window()
    send(qtbot, window, "Say hi.")
    reads: list[str] = []
    for name in ("messages", "get_conversation", "list_conversations", "get_message"):
        real = getattr(window.store, name)

        def reading(*args, _name=name, _real=real, **kwargs):
            if threading.current_thread() is threading.main_thread():
                reads.append(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(window.store, name, reading)
    window.input.setPlainText("Name a fruit.")
    with qtbot.waitSignal(window.host.idle, timeout=REPLY_TIMEOUT):
        qtbot.keyClick(window.input, Qt.Key.Key_Return)
        user = window.chat.messages()[-2]
        assert user.text() == "Name a fruit." and user.message_id is None  # shown at once
    assert reads == []
    stored = window.store.messages(window.conversation_id)
    assert [w.message_id for w in window.chat.messages()] == [m.id for m in stored]
    assert [w.text() for w in window.chat.messages()] == [m.content for m in stored]
    assert window.chat.messages()[-1].status_label.text() in (
        "",
        "stopped at the length limit",
    )
    assert window.sidebar.ids()[0] == window.conversation_id
    assert window.sidebar.list.item(0).text() == "Say hi."


def test_the_window_does_not_import_llama_cpp_or_numpy(tmp_path):
    """The GUI thread pays for no model code at start-up (it loads on the worker thread)."""
    code = (
        "import sys\n"
        "from PySide6.QtWidgets import QApplication\n"
        "import ui.main_window, ui.settings_dialog\n"
        "app = QApplication([])\n"
        "window = ui.main_window.MainWindow()\n"
        "window.show()\n"
        "app.processEvents()\n"
        "print(sorted(m for m in ('llama_cpp', 'numpy') if m in sys.modules))\n"
        "window.close()\n"
    )
    env = {**os.environ, "ASSISTANT_HOME": str(tmp_path), "QT_QPA_PLATFORM": "offscreen"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_stop_while_the_rolling_summary_is_written_cuts_it_short(make_window, qtbot, monkeypatch):
    """The reply's cancel event reaches the summary of the turns that left the window; the
    bubble says what the wait is for meanwhile."""
    import assistant.conversation.session as session_module

    real_fold = session_module.fold_into_summary
    entered, outcomes = threading.Event(), []

    def fold(runtime, previous, leaving, cancel=None):  # on the model thread
        entered.set()
        stopped = cancel is not None and cancel.wait(60)  # a summary that takes a while
        folded = real_fold(runtime, previous, leaving, cancel)
        outcomes.append((stopped, folded))
        return folded

    monkeypatch.setattr(session_module, "fold_into_summary", fold)
    window = make_window(n_ctx=512, max_tokens=24)
    window.policy_combo.setCurrentIndex(window.policy_combo.findData("summarize"))
    window.policy_combo.activated.emit(window.policy_combo.currentIndex())
    for i in range(8):
        send(qtbot, window, f"Message {i}. {PARAGRAPH * 2}", wait=False)
        qtbot.waitUntil(lambda: entered.is_set() or not window.host.replying, timeout=REPLY_TIMEOUT)
        if entered.is_set():
            break
    assert entered.is_set(), "no turn ever left the window"
    bubble = window.chat.messages()[-1]
    qtbot.waitUntil(lambda: "Summarizing" in bubble.status_label.text(), timeout=5000)
    assert "older message" in bubble.status_label.text()
    with qtbot.waitSignal(window.host.idle, timeout=20_000):  # well before it would end
        qtbot.keyClick(window.input, Qt.Key.Key_Escape)
    assert outcomes == [(True, None)], "stopped, and the summary was cut short"
    conversation = window.store.get_conversation(window.conversation_id)
    assert conversation.summary == "", "nothing half-written kept"
    assert window.store.messages(window.conversation_id)[-1].status == "cancelled"


def test_bad_values_in_the_settings_file_are_named_in_the_banner(qtbot, assistant_home):
    (assistant_home / "settings.json").write_text('{"n_ctx": -4, "n_threads": "many"}')
    window = MainWindow(Settings.load())
    qtbot.addWidget(window)
    with qtbot.waitSignal(window.model_ready, timeout=120_000):
        window.show()
        window.start()
    text = window.model_banner.label.text()
    assert window.model_banner.isVisible() and "n_ctx" in text and "n_threads" in text
    assert window.settings.n_ctx == Settings().n_ctx, "the default is used instead"
    window.close()
