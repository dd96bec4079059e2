"""The window's parts without a model: Markdown, the chat view, input, sidebar, settings."""

from __future__ import annotations

import sys
from dataclasses import replace

import pytest

pytest.importorskip("pytestqt")

from PySide6.QtCore import QMimeData, Qt, QUrl  # noqa: E402
from PySide6.QtGui import QGuiApplication  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from assistant.conversation.store import Conversation, Store, StoredMessage  # noqa: E402
from assistant.settings import Settings  # noqa: E402
from ui import platform_check  # noqa: E402
from ui.chat_view import ChatView  # noqa: E402
from ui.context_meter import ContextMeter  # noqa: E402
from ui.input_box import LONG_TEXT, InputBox  # noqa: E402
from ui.markdown_view import CodeBlock, MarkdownView, TextSegment, split_markdown  # noqa: E402
from ui.message_widget import MessageWidget, stats_line  # noqa: E402
from ui.open_chat import OpenChat, ViewMessage, hidden_reason  # noqa: E402
from ui.settings_dialog import PRESETS, SettingsDialog  # noqa: E402
from ui.sidebar import Sidebar  # noqa: E402

REPLY = """Here is how:

```python
def add(a, b):
    return a + b
```

| a | b |
|---|---|
| 1 | 2 |
"""


def message(id: int, role: str, content: str, **kw) -> StoredMessage:
    return StoredMessage(id=id, conversation_id=1, role=role, content=content, created_at="", **kw)


def conversation(**kw) -> Conversation:
    base = dict(
        id=1,
        title="t",
        system_prompt="",
        model="",
        sampling={},
        policy="drop",
        created_at="",
        updated_at="",
    )
    return Conversation(**{**base, **kw})


def visible_windows() -> list:
    return [w for w in QApplication.topLevelWidgets() if w.isVisible()]


# -- Markdown ------------------------------------------------------------------------------------
def test_split_markdown_separates_prose_and_fenced_code():
    parts = split_markdown(REPLY)
    assert [p.kind for p in parts] == ["text", "code", "text"]
    assert parts[1].language == "python" and parts[1].text == "def add(a, b):\n    return a + b"
    assert "| a | b |" in parts[2].text


def test_an_unclosed_fence_while_streaming_is_code_to_the_end():
    parts = split_markdown("Intro\n~~~js\nlet x = 1;")
    assert [(p.kind, p.language, p.text) for p in parts] == [
        ("text", "", "Intro"),
        ("code", "js", "let x = 1;"),
    ]


def test_streaming_updates_reuse_the_rendered_parts(qtbot):
    view = MarkdownView()
    qtbot.addWidget(view)
    view.set_text("Here is how:\n\n```python\ndef add(a, b):")
    first, code = view.parts()
    assert isinstance(first, TextSegment) and isinstance(code, CodeBlock)
    view.set_text(REPLY)
    parts = view.parts()
    assert parts[0] is first and parts[1] is code  # nothing above the growing end re-created
    assert code.source_text == "def add(a, b):\n    return a + b" and len(parts) == 3
    assert "a + b" in code.view.toPlainText()


def test_code_block_copy_puts_the_code_on_the_clipboard(qtbot):
    block = CodeBlock("print('hi')", "python")
    qtbot.addWidget(block)
    qtbot.mouseClick(block.copy_button, Qt.MouseButton.LeftButton)
    assert QGuiApplication.clipboard().text() == "print('hi')"
    assert block.copy_button.accessibleName() == "Copy code"


def test_model_output_cannot_make_the_view_load_files(qtbot, tmp_path):
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"not an image")
    view = MarkdownView()
    qtbot.addWidget(view)
    view.set_text(f"![x]({QUrl.fromLocalFile(str(secret)).toString()})")
    segment = view.parts()[0]
    assert segment.loadResource(2, QUrl.fromLocalFile(str(secret))) is None


# -- messages and the chat view ------------------------------------------------------------------
def test_stats_line_reads_like_a_sentence():
    line = stats_line(
        {
            "completion_tokens": 48,
            "tokens_per_s": 121.34,
            "ttft_s": 0.081,
            "prompt_tokens": 412,
            "cached_tokens": 380,
        }
    )
    assert line == "48 tokens · 121.3 tokens/s · first token 0.08 s · prompt 412 (380 cached)"
    assert stats_line({}) == ""


def test_stats_line_reports_the_wait_and_what_it_went_to():
    line = stats_line(
        {
            "completion_tokens": 30,
            "tokens_per_s": 40.0,
            "ttft_s": 1.05,
            "wait_s": 19.8,
            "summary_s": 12.1,
            "prompt_s": 6.5,
            "restore_s": 0.01,
            "prompt_tokens": 1912,
            "cached_tokens": 82,
        }
    )
    assert line == (
        "30 tokens · 40.0 tokens/s · waited 19.80 s (summarizing older messages 12.1 s, "
        "reading 1,830 tokens 6.5 s) · prompt 1912 (82 cached)"
    )


def test_a_waiting_reply_says_why_with_progress(qtbot):
    widget = MessageWidget("assistant", 1)
    qtbot.addWidget(widget)
    widget.set_status("streaming")
    widget.set_wait("Reading 1,830 tokens of this conversation…", (512, 1830))
    assert "Reading 1,830 tokens" in widget.status_label.text()
    assert not widget.wait_bar.isHidden() and widget.wait_bar.value() == 512
    widget.set_text("Hello")
    assert "Reading" not in widget.status_label.text() and widget.wait_bar.isHidden()


def test_versions_switcher_and_export_file_names(qtbot):
    from ui.export_import import file_name

    widget = MessageWidget("assistant", 7)
    qtbot.addWidget(widget)
    widget.set_actions(last=True, idle=True)
    widget.set_versions((3, 7, 9), 1)
    assert widget.version_label.text() == "2/3"
    asked: list[int] = []
    widget.version_requested.connect(asked.append)
    widget.older_button.click()
    widget.newer_button.click()
    assert asked == [3, 9]
    widget.set_versions((), 0)
    assert widget.older_button.isHidden() and widget.version_label.text() == ""
    assert file_name("Plan: a/b \\ trip?") == "Plan a b trip" and file_name("...") == "chat"


def test_message_widgets_never_open_windows_of_their_own(qtbot):
    before = visible_windows()
    for role in ("user", "assistant"):
        widget = MessageWidget(role, 1)
        widget.set_stats({"completion_tokens": 1})
        widget.set_actions(last=True, idle=True)
    assert visible_windows() == before


def test_hidden_reason_follows_the_window_start_and_summary():
    conv = conversation(window_start_id=5)
    assert hidden_reason(message(4, "user", "x"), conv) == "dropped"
    assert hidden_reason(message(5, "user", "x"), conv) is None
    conv = conversation(window_start_id=5, policy="summarize", summary="s", summary_upto_id=3)
    assert hidden_reason(message(2, "user", "x"), conv) == "summarized"
    assert hidden_reason(message(4, "user", "x"), conv) == "dropped"
    assert hidden_reason(message(1, "user", "x"), None) is None


def test_chat_view_renders_the_open_chat_and_keeps_widgets_per_message(qtbot):
    view = ChatView()
    qtbot.addWidget(view)
    view.show()
    chat = OpenChat()
    msgs = [
        message(1, "user", "old"),
        message(2, "assistant", "old reply"),
        message(3, "user", "new"),
    ]
    chat.load(conversation(window_start_id=3), msgs)
    view.show_messages(chat.messages)
    widgets = view.messages()
    assert [w.hidden_reason for w in widgets] == ["dropped", "dropped", None]
    assert view.divider.isVisible() and not view.empty_label.isVisible()
    pending = chat.add("assistant", status="streaming")  # shown before the store has it
    view.show_messages(chat.messages)
    shown = view.messages()[3]
    assert view.messages()[:3] == widgets and "thinking" in shown.status_label.text()
    assert shown.message_id is None and not shown.regenerate_button.isVisibleTo(view)
    pending.id, pending.content = 4, "hi there"  # the worker reported its id, then text
    view.update_message(pending)
    assert view.messages()[3] is shown and shown.message_id == 4
    assert shown.text() == "hi there" and view.widget_for(4) is shown
    view.show_messages([])
    assert not view.messages() and view.empty_label.isVisible()


def test_the_same_text_twice_is_two_messages(qtbot):
    view = ChatView()
    qtbot.addWidget(view)
    chat = OpenChat()
    first, second = chat.add("user", "again"), chat.add("user", "again")
    view.show_messages(chat.messages)
    assert len(view.messages()) == 2
    chat.remove(second)
    view.show_messages(chat.messages)
    assert view.messages() == [view.widget_of(first)] and view.widget_of(second) is None


def test_a_reports_window_marks_what_the_model_no_longer_sees():
    chat = OpenChat()
    chat.load(conversation(), [message(i, "user", f"m{i}") for i in range(1, 6)])
    chat.mark_window(first_visible_id=4, summarized=2)
    assert [m.hidden for m in chat.messages] == ["summarized", "summarized", "dropped", None, None]
    chat.mark_window(first_visible_id=1, summarized=0)
    assert [m.hidden for m in chat.messages] == [None] * 5


def test_auto_scroll_follows_only_while_at_the_bottom(qtbot):
    view = ChatView()
    qtbot.addWidget(view)
    view.resize(400, 300)
    view.show()
    msgs = [
        ViewMessage("user" if i % 2 else "assistant", f"Line {i}\n\n" * 8, id=i)
        for i in range(1, 9)
    ]
    view.show_messages(msgs)
    bar = view.verticalScrollBar()
    view.scroll_to_bottom()
    qtbot.waitUntil(lambda: bar.maximum() > 0 and bar.value() == bar.maximum())
    msgs[-1].content = "Line 8\n\n" * 30
    view.update_message(msgs[-1])
    qtbot.waitUntil(lambda: bar.value() == bar.maximum())  # followed the growing reply
    bar.setValue(0)  # the user scrolls up to read
    msgs[-1].content = "Line 8\n\n" * 60
    view.update_message(msgs[-1])
    qtbot.wait(50)
    assert bar.value() == 0 and bar.maximum() > 0


def test_editing_a_message_emits_the_new_text(qtbot):
    widget = MessageWidget("user", 7)
    qtbot.addWidget(widget)
    widget.set_text("before")
    widget.show()
    widget.start_edit()
    assert widget.editing and widget.editor.toPlainText() == "before"
    widget.editor.setPlainText("after")
    with qtbot.waitSignal(widget.edit_submitted) as blocker:
        qtbot.keyClick(widget.editor, Qt.Key.Key_Return)
    assert blocker.args == [7, "after"] and not widget.editing


# -- input ---------------------------------------------------------------------------------------
def test_enter_sends_and_shift_enter_is_a_newline(qtbot):
    box = InputBox()
    qtbot.addWidget(box)
    qtbot.keyClicks(box, "hello")
    qtbot.keyClick(box, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    assert box.toPlainText() == "hello\n"
    with qtbot.waitSignal(box.send_requested):
        qtbot.keyClick(box, Qt.Key.Key_Return)


def test_long_paste_and_dropped_text_file_are_offered_not_inserted(qtbot, tmp_path):
    box = InputBox()
    qtbot.addWidget(box)
    data = QMimeData()
    data.setText("x" * LONG_TEXT)
    with qtbot.waitSignal(box.long_text) as blocker:
        box.insertFromMimeData(data)
    assert blocker.args == ["x" * LONG_TEXT, "pasted text"] and box.toPlainText() == ""
    notes = tmp_path / "notes.txt"
    notes.write_text("short note", encoding="utf-8")
    dropped = QMimeData()
    dropped.setUrls([QUrl.fromLocalFile(str(notes))])
    assert box.canInsertFromMimeData(dropped)
    box.insertFromMimeData(dropped)
    assert box.toPlainText() == "short note"
    binary = tmp_path / "image.bin"
    binary.write_bytes(b"\xff\xfe\x00\x81" * 10)
    dropped.setUrls([QUrl.fromLocalFile(str(binary))])
    with qtbot.waitSignal(box.failed) as blocker:
        box.insertFromMimeData(dropped)
    assert "image.bin: unsupported file type" in blocker.args[0]


# -- sidebar, meter, settings --------------------------------------------------------------------
def test_sidebar_lists_newest_first_searches_and_renames(qtbot):
    store = Store()
    first = store.create_conversation(title="Gardening")
    second = store.create_conversation(title="Taxes")
    store.add_message(first.id, "user", "tomatoes split after rain")
    sidebar = Sidebar(store)
    qtbot.addWidget(sidebar)
    sidebar.refresh()
    assert sidebar.ids() == [first.id, second.id]  # the newest activity first
    sidebar.search.setText("tomatoes")
    qtbot.waitUntil(lambda: sidebar.ids() == [first.id])
    sidebar.search.clear()
    qtbot.waitUntil(lambda: len(sidebar.ids()) == 2)
    with qtbot.waitSignal(sidebar.conversation_selected) as blocker:
        sidebar.list.setCurrentRow(1)
    assert blocker.args == [second.id]
    sidebar.list.item(1).setText("Tax return 2025")  # what an inline rename ends with
    assert store.get_conversation(second.id).title == "Tax return 2025"
    with qtbot.waitSignal(sidebar.delete_requested) as blocker:
        qtbot.mouseClick(sidebar.delete_button, Qt.MouseButton.LeftButton)
    assert blocker.args == [second.id]


def test_sidebar_moves_a_changed_conversation_to_the_top_without_reading_the_store(
    qtbot, monkeypatch
):
    store = Store()
    first = store.create_conversation(title="Gardening")
    second = store.create_conversation(title="Taxes")
    sidebar = Sidebar(store)
    qtbot.addWidget(sidebar)
    sidebar.refresh(current=first.id)
    assert sidebar.ids() == [second.id, first.id]
    reads: list = []
    monkeypatch.setattr(store, "list_conversations", lambda *a: reads.append(a) or [])
    with qtbot.assertNotEmitted(sidebar.conversation_selected):
        sidebar.touch(first.id, "Gardening in spring")
    assert sidebar.ids() == [first.id, second.id] and not reads
    assert sidebar.list.currentItem().text() == "Gardening in spring"
    sidebar.touch(99, "Imported")  # a row it did not list yet
    assert sidebar.ids() == [99, first.id, second.id]


def test_context_meter_shows_use_and_what_left(qtbot):
    meter = ContextMeter()
    qtbot.addWidget(meter)
    meter.set_report({"n_ctx": 512, "used": 400, "reserve": 24, "dropped_messages": 3}, 40)
    assert meter.bar.format() == "440 / 512 tokens" and meter.used == 440
    assert meter.left_label.text() == "3 dropped"
    meter.set_capacity(2048)
    assert meter.bar.format() == "0 / 2048 tokens" and meter.left_label.text() == ""


def test_settings_dialog_edits_and_returns_settings(qtbot):
    settings = Settings(n_ctx=2048, policy="drop")
    dialog = SettingsDialog(settings, system_prompt="Be brief.", gpu_supported=True, gpus=("A",))
    qtbot.addWidget(dialog)
    assert dialog.system_prompt() == "Be brief." and dialog.model_combo.currentData() == ""
    dialog.preset_combo.setCurrentText("Programmer")
    dialog.preset_combo.activated.emit(dialog.preset_combo.currentIndex())
    dialog.ctx_spin.setValue(8192)
    dialog.max_tokens.setValue(256)
    dialog.seed.setValue(42)
    dialog.policy_combo.setCurrentIndex(dialog.policy_combo.findData("summarize"))
    assert dialog.gpu_layers() == settings.n_gpu_layers and dialog.gpu_spin.isHidden()
    new = dialog.settings()
    assert new.system_prompt == PRESETS["Programmer"] and new.n_ctx == 8192
    assert new.sampling["max_tokens"] == 256 and new.sampling["seed"] == 42
    assert new.policy == "summarize" and new.n_threads is None
    assert (
        replace(new, sampling=settings.sampling, system_prompt="", n_ctx=2048, policy="drop")
        == settings
    )
    dialog.gpu_mode.setCurrentIndex(dialog.gpu_mode.findData(1))
    dialog.gpu_spin.setValue(12)
    assert not dialog.gpu_spin.isHidden() and dialog.settings().n_gpu_layers == 12
    names = [
        w.accessibleName()
        for w in (
            dialog.model_combo,
            dialog.system_edit,
            dialog.temperature,
            dialog.ctx_spin,
            dialog.gpu_spin,
        )
    ]
    assert all(names)


@pytest.mark.parametrize(
    "supported, gpus, reason",
    [(False, ("A",), "no GPU support"), (True, (), "No GPU found")],
)
def test_without_a_gpu_the_gpu_line_says_why_and_offers_no_layers(qtbot, supported, gpus, reason):
    settings = Settings(n_gpu_layers=12)
    dialog = SettingsDialog(settings, gpu_supported=supported, gpus=gpus)
    qtbot.addWidget(dialog)
    assert reason in dialog.gpu_note.text() and not dialog.gpu_note.isHidden()
    assert not dialog.gpu_mode.isEnabled() and dialog.gpu_mode.currentData() == 0
    assert dialog.gpu_spin.isHidden(), "no greyed-out layer count"
    assert dialog.settings().n_gpu_layers == 12, "the saved choice is kept for a GPU later"


# -- platform check ------------------------------------------------------------------------------
def test_missing_xcb_libraries_are_named_as_packages(monkeypatch):
    def fake_cdll(name, *args, **kwargs):
        if name in ("libxcb-cursor.so.0", "libxcb-icccm.so.4"):
            raise OSError(name)

    monkeypatch.setattr(platform_check.ctypes, "CDLL", fake_cdll)
    monkeypatch.setattr(sys, "platform", "linux")
    problem = platform_check.display_problem({"DISPLAY": ":0"})
    assert "sudo apt-get install libxcb-cursor0 libxcb-icccm4" in problem
    assert platform_check.display_problem({"DISPLAY": ":0", "QT_QPA_PLATFORM": "offscreen"}) is None
    assert "No graphical display" in platform_check.display_problem({})


def test_automatic_threads_leave_a_core_to_the_window():
    from assistant.settings import default_threads

    auto = [default_threads(leave_one_for_gui=True, cpu_count=n) for n in (1, 2, 4, 8, 16)]
    assert auto == [1, 1, 3, 4, 8]
