"""The main window: composes the parts and turns user intents into model-thread jobs.

State lives in the store (SQLite) and on the model thread; the window renders it. Every
intent that could race a streaming reply (switch, delete, new chat, reload) first stops the
reply and runs once the worker has saved it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence, QTextCursor
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from assistant.errors import AssistantError, NotFoundError
from assistant.settings import Settings
from assistant.store import Conversation, Store
from assistant.types import Policy

from . import ui_state
from .banner import Banner
from .chat_view import ChatView
from .context_meter import ContextMeter
from .input_box import InputBox
from .prompt_dialog import PromptDialog
from .settings_dialog import POLICY_NAMES, SettingsDialog
from .sidebar import Sidebar
from .worker import ModelHost, ReplyJob

FLUSH_MS = 40  # streamed text is drawn at most this often: smooth, and cheap for the GUI thread
RELOAD_FIELDS = ("model", "n_ctx", "n_threads", "n_gpu_layers", "flash_attn")


class MainWindow(QMainWindow):
    model_ready = Signal()  # the model finished loading (or failed to): tests and benches wait

    def __init__(self, settings: Settings | None = None, store: Store | None = None):
        super().__init__()
        self.settings = settings or Settings.load()
        self._owns_store = store is None
        self.store = store or Store()
        self.host = ModelHost(self.store, self)
        self.info: Any = None  # ModelInfo once loaded
        self.conversation_id: int | None = None
        self._new_chat_policy = self.settings.policy
        self._job: ReplyJob | None = None
        self._streaming_id: int | None = None
        self._stream_text = ""
        self._after_reply: list[Callable[[], None]] = []
        self._summarizing: tuple[str, str] | None = None  # text, name: kept until it lands
        self._closed = False
        self._flush_timer = QTimer(self, singleShot=True, interval=FLUSH_MS)
        self._flush_timer.timeout.connect(self._flush_stream)
        self.confirm: Callable[[str, str], bool] = self._ask_yes_no  # tests replace it
        self.setWindowTitle("Offline Assistant")
        self.resize(1100, 760)
        self._build()
        self._build_actions()
        self._connect_host()

    # -- construction ----------------------------------------------------------------------
    def _build(self) -> None:
        self.sidebar = Sidebar(self.store)
        self.sidebar.conversation_selected.connect(self.select_conversation)
        self.sidebar.new_requested.connect(self.new_chat)
        self.sidebar.delete_requested.connect(self.delete_conversation)
        self.sidebar.failed.connect(self.show_error)
        right = QWidget()
        column = QVBoxLayout(right)
        column.setContentsMargins(4, 8, 8, 8)
        column.addLayout(self._build_header())
        self.banner = Banner()
        column.addWidget(self.banner)
        self.chat = ChatView()
        self.chat.edit_submitted.connect(self.edit_message)
        self.chat.regenerate_requested.connect(self.regenerate)
        self.chat.sources_requested.connect(self.show_sources)
        column.addWidget(self.chat, 1)
        column.addWidget(self._build_summary_bar())
        column.addLayout(self._build_input())
        self.splitter = QSplitter()
        self.splitter.addWidget(self.sidebar)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([260, 840])
        self.setCentralWidget(self.splitter)
        self.model_label = QLabel("Starting…")
        self.model_label.setAccessibleName("Model status")
        self.load_bar = QProgressBar()
        self.load_bar.setRange(0, 0)
        self.load_bar.setMaximumWidth(140)
        self.load_bar.setMaximumHeight(14)
        self.load_bar.setAccessibleName("Model loading")
        self.load_bar.hide()
        self.statusBar().addPermanentWidget(self.load_bar)
        self.statusBar().addPermanentWidget(self.model_label)

    def _build_header(self) -> QHBoxLayout:
        header = QHBoxLayout()
        self.title_label = QLabel()
        self.title_label.setObjectName("conversationTitle")
        self.title_label.setAccessibleName("Conversation title")
        font = self.title_label.font()
        font.setBold(True)
        self.title_label.setFont(font)
        self.policy_combo = QComboBox()
        self.policy_combo.setAccessibleName("Context policy for this conversation")
        self.policy_combo.setToolTip(
            "What happens when this conversation outgrows the context window"
        )
        for policy in Policy:
            self.policy_combo.addItem(POLICY_NAMES[policy.value], policy.value)
        self.policy_combo.activated.connect(self._on_policy_chosen)
        self.meter = ContextMeter()
        self.prompt_button = QPushButton("What the model sees")
        self.prompt_button.setAccessibleName("What the model sees")
        self.prompt_button.setToolTip("Show the exact prompt of the last reply (Ctrl+Shift+P)")
        self.prompt_button.clicked.connect(self.show_prompt)
        header.addWidget(self.title_label, 1)
        header.addWidget(QLabel("When full:"))
        header.addWidget(self.policy_combo)
        header.addWidget(self.meter)
        header.addWidget(self.prompt_button)
        return header

    def _build_summary_bar(self) -> QWidget:
        """Shown while a document is summarized: model calls done, ETA, and Cancel (Esc)."""
        self.summary_bar = QWidget()
        row = QHBoxLayout(self.summary_bar)
        row.setContentsMargins(0, 0, 0, 0)
        self.summary_label = QLabel()
        self.summary_label.setAccessibleName("Summary progress")
        self.summary_progress = QProgressBar()
        self.summary_progress.setAccessibleName("Summary progress bar")
        self.summary_cancel = QPushButton("Cancel")
        self.summary_cancel.setAccessibleName("Cancel summary")
        self.summary_cancel.setToolTip("Stop and keep the summary of what was read so far (Esc)")
        self.summary_cancel.clicked.connect(self.stop)
        row.addWidget(self.summary_label, 1)
        row.addWidget(self.summary_progress, 1)
        row.addWidget(self.summary_cancel)
        self.summary_bar.hide()
        return self.summary_bar

    def _build_input(self) -> QHBoxLayout:
        row = QHBoxLayout()
        self.input = InputBox()
        self.input.send_requested.connect(self.send)
        self.input.long_text.connect(self._offer_long_text)
        self.input.failed.connect(self.show_error)
        self.send_button = QPushButton("Send")
        self.send_button.setAccessibleName("Send message")
        self.send_button.setToolTip("Send (Enter)")
        self.send_button.clicked.connect(self._send_or_stop)
        row.addWidget(self.input, 1)
        row.addWidget(self.send_button, 0, Qt.AlignmentFlag.AlignBottom)
        return row

    def _action(
        self,
        menu: Any,
        text: str,
        slot: Callable[[], object],
        shortcut: str | QKeySequence | None = None,
    ) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(slot)
        menu.addAction(action)
        return action

    def _build_actions(self) -> None:
        bar = self.menuBar()
        chats = bar.addMenu("&Chat")
        self.new_action = self._action(chats, "&New chat", self.new_chat, "Ctrl+N")
        self.search_action = self._action(chats, "&Search chats", self.focus_search, "Ctrl+F")
        self.focus_action = self._action(chats, "&Focus message box", self.focus_input, "Ctrl+L")
        chats.addSeparator()
        self.stop_action = self._action(chats, "S&top reply", self.stop, "Esc")
        self.stop_action.setEnabled(False)  # disabled, Esc still reaches editors and dialogs
        self.regenerate_action = self._action(chats, "&Regenerate reply", self.regenerate, "Ctrl+R")
        self.continue_action = self._action(chats, "&Continue reply", self.continue_reply)
        self.prompt_action = self._action(
            chats, "&What the model sees", self.show_prompt, "Ctrl+Shift+P"
        )
        chats.addSeparator()
        self._action(chats, "&Export chat…", self.export_conversation, "Ctrl+E")
        self._action(chats, "&Import chat…", self.import_conversation)
        chats.addSeparator()
        self._action(chats, "&Quit", self.close, QKeySequence.StandardKey.Quit)
        settings = bar.addMenu("&Settings")
        self.settings_action = self._action(settings, "&Settings…", self.open_settings, "Ctrl+,")
        models = bar.addMenu("&Models")
        self.models_action = self._action(models, "&Manage models…", self.open_models, "Ctrl+M")
        self.convert_action = self._action(models, "&Convert a model…", self.open_convert)

    def _connect_host(self) -> None:
        host = self.host
        host.loading.connect(self._on_loading)
        host.loaded.connect(self._on_loaded)
        host.load_failed.connect(self._on_load_failed)
        host.reply_started.connect(self._on_reply_started)
        host.piece.connect(self._on_piece)
        host.reply_done.connect(self._on_reply_done)
        host.failed.connect(self._on_failed)
        host.prompt_ready.connect(self._on_prompt_ready)
        host.summary_progress.connect(self._on_summary_progress)
        host.summary_done.connect(self._on_summary_done)
        host.idle.connect(self._on_replies_finished)

    # -- start-up --------------------------------------------------------------------------
    def start(self) -> None:
        """Load the model in the background and reopen the last conversation."""
        self.load_model()
        state = ui_state.load()
        self._restore_geometry(state)
        self.sidebar.refresh()
        ids = self.sidebar.ids()
        last = state.get("last_conversation")
        if last in ids:
            self.open_conversation(last)
        elif ids:
            self.open_conversation(ids[0])
        else:
            self._show_new_chat()
        self.focus_input()

    def load_model(self) -> None:
        self.info = None
        self.model_label.setText("Loading the model…")
        self.load_bar.show()
        self.host.load(self.settings)

    def _restore_geometry(self, state: dict[str, Any]) -> None:
        for key, restore in (
            ("geometry", self.restoreGeometry),
            ("splitter", self.splitter.restoreState),
        ):
            if isinstance(state.get(key), str):
                restore(QByteArray.fromBase64(state[key].encode("ascii")))

    # -- model status ----------------------------------------------------------------------
    def _on_loading(self, name: str) -> None:
        self.model_label.setText(f"Loading {name}…")
        self.load_bar.show()

    def _on_loaded(self, info: Any, note: str) -> None:
        self.info = info
        self.load_bar.hide()
        self.model_label.setText(f"{info.name} · {info.quantization} · {info.runs_on}")
        self.model_label.setToolTip(info.path)
        if self.banner.kind == "error" and "load" in self.banner.label.text().lower():
            self.banner.dismiss()
        if self.meter.used == 0:
            self.meter.set_capacity(self.settings.n_ctx)
        if note:  # memory forced fewer GPU layers or a smaller context
            self.banner.show_message(note, "info")
        self.model_ready.emit()

    def _on_load_failed(self, message: str) -> None:
        self.load_bar.hide()
        self.model_label.setText("No model loaded")
        self.model_label.setToolTip(message)
        self.show_error(
            f"{message} Choose another model file in Settings; your conversations are still here.",
            actions=[("Open settings", self.open_settings)],
        )
        self.model_ready.emit()

    # -- intents: conversations ------------------------------------------------------------
    def select_conversation(self, conversation_id: int) -> None:
        if conversation_id != self.conversation_id:
            self._after_current_reply(lambda: self.open_conversation(conversation_id))

    def open_conversation(self, conversation_id: int) -> None:
        try:
            conv = self.store.get_conversation(conversation_id)
        except NotFoundError:
            self.sidebar.refresh()
            self._show_new_chat()
            return
        except AssistantError as exc:
            self.show_error(str(exc))
            return
        self.conversation_id = conv.id
        self._streaming_id = None
        self._render_conversation(conv)
        self.chat.scroll_to_bottom()
        self._show_meter_from_store()
        self.sidebar.select(conv.id)
        ui_state.save(last_conversation=conv.id)

    def new_chat(self) -> None:
        self._after_current_reply(self._show_new_chat)

    def _show_new_chat(self) -> None:
        """An empty chat; its row is created by the first message (no empty rows pile up)."""
        self.conversation_id = None
        self._streaming_id = None
        self._new_chat_policy = self.settings.policy
        self.chat.clear()
        self.title_label.setText("New chat")
        self._set_policy_combo(self._new_chat_policy)
        self.meter.set_capacity(self.settings.n_ctx if self.info else 0)
        self.sidebar.refresh(current=None)
        self.sidebar.list.clearSelection()
        self.focus_input()

    def delete_conversation(self, conversation_id: int) -> None:
        try:
            title = self.store.get_conversation(conversation_id).title
        except AssistantError as exc:
            self.show_error(str(exc))
            return
        if not self.confirm(
            "Delete conversation", f"Delete “{title}” and all its messages? This cannot be undone."
        ):
            return

        def delete() -> None:
            try:
                self.store.delete_conversation(conversation_id)
            except AssistantError as exc:
                self.show_error(str(exc))
            if conversation_id == self.conversation_id:
                self._show_new_chat()
            else:
                self.sidebar.refresh()

        if conversation_id == self.conversation_id:
            self._after_current_reply(delete)
        else:
            delete()

    def _ensure_conversation(self) -> int | None:
        if self.conversation_id is not None:
            return self.conversation_id
        try:
            conv = self.store.create_conversation(
                system_prompt=self.settings.system_prompt,
                model=self.info.name if self.info else "",
                sampling=self.settings.sampling,
                policy=self._new_chat_policy,
            )
        except AssistantError as exc:
            self.show_error(str(exc))
            return None
        self.conversation_id = conv.id
        self.title_label.setText(conv.title)
        self.sidebar.refresh(current=conv.id)
        ui_state.save(last_conversation=conv.id)
        return conv.id

    def _on_policy_chosen(self, _index: int) -> None:
        policy = self.policy_combo.currentData()
        if self.conversation_id is None:
            self._new_chat_policy = policy
            return
        try:
            self.store.update_conversation(self.conversation_id, policy=policy)
        except AssistantError as exc:
            self.show_error(str(exc))

    # -- intents: messages -----------------------------------------------------------------
    def send(self) -> None:
        text = self.input.toPlainText()
        if not text.strip() or self.host.replying:
            return
        if self.send_text(text):
            self.input.clear()

    def send_text(self, text: str) -> bool:
        if self.host.replying:
            self.banner.show_message(
                "A reply is still being written: wait, or stop it (Esc).", "info"
            )
            return False
        conversation_id = self._ensure_conversation()
        if conversation_id is None:
            return False
        self.banner.dismiss()
        self.chat.add_pending("user", text)
        self.chat.add_pending("assistant")
        self._begin(self.host.reply("send", conversation_id, text))
        return True

    def regenerate(self) -> None:
        if self.host.replying or self.conversation_id is None:
            return
        widgets = self.chat.messages()
        if not widgets or widgets[-1].message_id is None:
            return
        last = widgets[-1]
        if last.role == "assistant":
            self.chat.truncate_after(last.message_id - 1)
        self.chat.add_pending("assistant")
        self._begin(self.host.reply("regenerate", self.conversation_id))

    def continue_reply(self) -> None:
        widgets = self.chat.messages()
        if self.host.replying or self.conversation_id is None or not widgets:
            return
        if widgets[-1].role != "assistant":
            return
        self._begin(self.host.reply("continue", self.conversation_id))

    def edit_message(self, message_id: int, text: str) -> None:
        if self.host.replying or self.conversation_id is None:
            return
        widget = self.chat.widget_for(message_id)
        if widget is not None:
            widget.set_text(text)
        self.chat.truncate_after(message_id)
        self.chat.add_pending("assistant")
        self._begin(self.host.reply("edit", self.conversation_id, text, message_id))

    def stop(self) -> None:
        if self.host.stop():
            self.statusBar().showMessage("Stopping…", 2000)

    def _send_or_stop(self) -> None:
        if self.host.replying:
            self.stop()
        else:
            self.send()

    def _begin(self, job: ReplyJob) -> None:
        self._job = job
        self._set_replying(True)

    def _set_replying(self, replying: bool) -> None:
        self.send_button.setText("Stop" if replying else "Send")
        self.send_button.setAccessibleName("Stop reply" if replying else "Send message")
        self.send_button.setToolTip("Stop the reply (Esc)" if replying else "Send (Enter)")
        self.stop_action.setEnabled(replying)
        self.regenerate_action.setEnabled(not replying)
        self.chat.set_idle(not replying)

    def _after_current_reply(self, callback: Callable[[], None]) -> None:
        """Run now, or once the streaming reply has been stopped and saved."""
        if self.host.replying:
            self._after_reply.append(callback)
            self.host.stop()
        else:
            callback()

    # -- worker events ---------------------------------------------------------------------
    def _on_reply_started(self, conversation_id: int, message_id: int, context: Any) -> None:
        if conversation_id != self.conversation_id:
            return
        self._streaming_id = message_id
        continuing = self._job is not None and self._job.kind == "continue"
        widget = self.chat.widget_for(message_id)
        self._stream_text = widget.text() if continuing and widget is not None else ""
        self._reload(streaming_id=message_id)
        self.meter.set_report(context.to_dict())
        self.sidebar.refresh()

    def _on_piece(self, message_id: int, text: str) -> None:
        if message_id != self._streaming_id:
            return
        self._stream_text += text
        if not self._flush_timer.isActive():
            self._flush_timer.start()

    def _flush_stream(self) -> None:
        if self._streaming_id is not None:
            self.chat.set_stream_text(self._streaming_id, self._stream_text)

    def _on_reply_done(self, conversation_id: int, result: Any) -> None:
        if conversation_id == self.conversation_id:
            self._flush_timer.stop()
            self._streaming_id = None
            self._reload()
            self.meter.set_report(result.context.to_dict(), result.stats.completion_tokens)
            if result.notice:
                self.banner.show_message(result.notice, "info")
        self.sidebar.refresh()

    def _on_failed(self, conversation_id: int, message: str) -> None:
        if conversation_id == self.conversation_id:
            self._streaming_id = None
            self._reload()
            self._restore_unsent_text()
        if self._summarizing is not None:  # the document is not lost: offer to try again
            text, name = self._summarizing
            self.show_error(message, [("Try again", lambda: self.summarize_text(text, name))])
            return
        self.show_error(message)

    def _restore_unsent_text(self) -> None:
        """A message refused before it was stored goes back into the box, not lost."""
        job = self._job
        if job is None or job.kind != "send" or self.input.toPlainText():
            return
        stored = self.store.messages(job.conversation_id)
        users = [m for m in stored if m.role == "user"]
        if not users or users[-1].content != job.text:
            self.input.setPlainText(job.text)
            self.input.moveCursor(QTextCursor.MoveOperation.End)

    def _on_replies_finished(self) -> None:
        self._job = None
        self._summarizing = None
        self.summary_bar.hide()
        self._set_replying(False)
        callbacks, self._after_reply = self._after_reply, []
        for callback in callbacks:
            callback()

    # -- rendering -------------------------------------------------------------------------
    def _reload(self, streaming_id: int | None = None) -> None:
        if self.conversation_id is None:
            return
        try:
            conv = self.store.get_conversation(self.conversation_id)
        except AssistantError as exc:
            self.show_error(str(exc))
            return
        self._render_conversation(conv, streaming_id)

    def _render_conversation(self, conv: Conversation, streaming_id: int | None = None) -> None:
        try:
            messages = self.store.messages(conv.id)
        except AssistantError as exc:
            self.show_error(str(exc))
            return
        self.title_label.setText(conv.title)
        self._set_policy_combo(conv.policy)
        self.chat.show_messages(messages, conv, streaming_id)

    def _show_meter_from_store(self) -> None:
        """The meter for a reopened conversation: its last reply's stored context report."""
        messages = self.store.messages(self.conversation_id) if self.conversation_id else []
        for message in reversed(messages):
            context = message.stats.get("context") if message.role == "assistant" else None
            if context:
                self.meter.set_report(context, message.tokens or 0)
                return
        self.meter.set_capacity(self.settings.n_ctx if self.info else 0)

    def _set_policy_combo(self, policy: str) -> None:
        index = self.policy_combo.findData(policy)
        if index >= 0:
            self.policy_combo.setCurrentIndex(index)

    def show_error(
        self, message: str, actions: list[tuple[str, Callable[[], object]]] | None = None
    ) -> None:
        self.banner.show_message(message, "error", actions or [])

    def _offer_long_text(self, text: str, source: str) -> None:
        words = len(text.split())
        self.banner.show_message(
            f"The {source} is long ({words} words). Ask for a summary, or send it as it is?",
            "info",
            [
                ("Summarize this", lambda: self.summarize_text(text, source)),
                ("Send as a message", lambda: self.send_text(text)),
            ],
        )

    # -- summaries -------------------------------------------------------------------------
    def summarize_text(self, text: str, name: str = "pasted text") -> bool:
        """Summarize a document on the model thread; the result joins the conversation."""
        from assistant.documents import from_text

        if self.host.replying:
            self.banner.show_message(
                "A reply is still being written: wait, or stop it (Esc).", "info"
            )
            return False
        try:
            document = from_text(text, name)
        except AssistantError as exc:
            self.show_error(str(exc))
            return False
        conversation_id = self._ensure_conversation()
        if conversation_id is None:
            return False
        try:
            if self.store.get_conversation(conversation_id).title == "New chat":
                self.store.update_conversation(conversation_id, title=f"Summary: {document.name}")
        except AssistantError as exc:
            self.show_error(str(exc))
            return False
        self.banner.dismiss()
        self.chat.add_pending("user", f"Summarize the document “{document.name}”.")
        self.chat.add_pending("assistant")
        self.host.summarize(
            conversation_id, document.name, document.text, self.settings.summary_options()
        )
        self._summarizing = (document.text, document.name)
        self.summary_label.setText(f"Summarizing {document.name}…")
        self.summary_progress.setRange(0, 0)
        self.summary_bar.show()
        self._set_replying(True)
        return True

    def _on_summary_progress(self, conversation_id: int, progress: Any) -> None:
        self.summary_progress.setRange(0, progress.total)
        self.summary_progress.setValue(progress.done)
        eta = f" · about {progress.eta_s:.0f} s left" if progress.eta_s else ""
        self.summary_label.setText(
            f"Summarizing: {progress.done} of {progress.total} chunks · "
            f"{progress.tokens_processed} of {progress.source_tokens} tokens read{eta}"
        )

    def _on_summary_done(self, conversation_id: int, message: Any) -> None:
        if conversation_id == self.conversation_id:
            self._reload()
            self._show_meter_from_store()  # the summary now sits in the window too
            self.chat.scroll_to_bottom()
            if message.status == "cancelled":
                self.banner.show_message(
                    "Summary cancelled: it covers only the part read so far.", "info"
                )
        self.sidebar.refresh()

    def show_sources(self, summary: dict[str, Any]) -> None:
        from .sources_dialog import SourcesDialog

        try:
            name, text = self.store.get_document(summary["document_id"])
        except (AssistantError, KeyError):
            self.show_error("The summarized document is no longer stored.")
            return
        self._open_dialog(SourcesDialog(name, text, summary, self))

    # -- dialogs ---------------------------------------------------------------------------
    def show_prompt(self) -> None:
        if self.conversation_id is None or not self.chat.messages():
            self.banner.show_message("Nothing has been sent to the model in this chat yet.", "info")
            return
        self.host.request_prompt(self.conversation_id)

    def _on_prompt_ready(self, conversation_id: int, prompt: str) -> None:
        if conversation_id == self.conversation_id:
            self._open_dialog(PromptDialog(prompt, self))

    def open_convert(self) -> None:
        from .convert_dialog import ConvertDialog

        dialog = ConvertDialog(self)
        dialog.model_chosen.connect(self.use_model)
        self._open_dialog(dialog)

    def open_models(self) -> None:
        from .model_manager import ModelManager

        dialog = ModelManager(self.settings.n_ctx, self)
        dialog.model_chosen.connect(self.use_model)
        self._open_dialog(dialog)

    def use_model(self, model: str) -> None:
        """Make `model` (a library id or a path) the model: save the settings and reload."""
        self.apply_settings(replace(self.settings, model=model))

    def open_settings(self) -> None:
        conv = None
        if self.conversation_id is not None:
            try:
                conv = self.store.get_conversation(self.conversation_id)
            except AssistantError:
                conv = None
        dialog = SettingsDialog(
            self.settings,
            system_prompt=conv.system_prompt if conv else None,
            sampling=conv.sampling if conv and conv.sampling else None,
            gpu_supported=self.info.gpu_supported if self.info else None,
            parent=self,
        )
        dialog.accepted.connect(lambda: self.apply_settings(dialog.settings()))
        self._open_dialog(dialog)

    def apply_settings(self, new: Settings) -> None:
        """Persist, apply to the open conversation, and reload the model if its options moved."""
        reload = any(getattr(new, f) != getattr(self.settings, f) for f in RELOAD_FIELDS)
        reload = reload or self.info is None
        self.settings = replace(new)
        try:
            new.save()
        except OSError as exc:
            self.show_error(f"Could not save the settings: {exc.strerror or exc}.")
        if self.conversation_id is not None:
            try:
                self.store.update_conversation(
                    self.conversation_id, system_prompt=new.system_prompt, sampling=new.sampling
                )
            except AssistantError as exc:
                self.show_error(str(exc))
        if reload:
            self._after_current_reply(self.load_model)

    def _open_dialog(self, dialog: QDialog) -> None:
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()

    def _ask_yes_no(self, title: str, text: str) -> bool:
        answer = QMessageBox.question(self, title, text)
        return answer == QMessageBox.StandardButton.Yes

    def export_conversation(self) -> None:
        if self.conversation_id is None:
            return
        path, _ = QFileDialog.getSaveFileName(
            self, "Export chat", "chat.md", "Markdown (*.md);;JSON (*.json)"
        )
        if not path:
            return
        try:
            if path.endswith(".json"):
                text = json.dumps(
                    self.store.export_json(self.conversation_id), ensure_ascii=False, indent=2
                )
            else:
                text = self.store.export_markdown(self.conversation_id)
            Path(path).write_text(text + "\n", encoding="utf-8")
        except AssistantError as exc:
            self.show_error(str(exc))
        except OSError as exc:
            self.show_error(f"Cannot write {path}: {exc.strerror}.")

    def import_conversation(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import chat", "", "JSON (*.json)")
        if not path:
            return
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            conv = self.store.import_json(data, source=path)
        except AssistantError as exc:
            self.show_error(str(exc))
            return
        except (OSError, ValueError):
            self.show_error(f"{path} is not a readable JSON file.")
            return
        self.select_conversation(conv.id)

    # -- focus and closing -----------------------------------------------------------------
    def focus_input(self) -> None:
        self.input.setFocus(Qt.FocusReason.ShortcutFocusReason)

    def focus_search(self) -> None:
        self.sidebar.search.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.sidebar.search.selectAll()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        """Stop the reply; the worker saves it before the thread ends."""
        ui_state.save(
            geometry=bytes(self.saveGeometry().toBase64()).decode("ascii"),
            splitter=bytes(self.splitter.saveState().toBase64()).decode("ascii"),
        )
        self._flush_timer.stop()
        self.host.shutdown()
        self.host.blockSignals(True)  # what the worker said last is saved; the view is going
        self.sidebar.shutdown()
        if self._owns_store and not self._closed:
            self.store.close()
        self._closed = True
        super().closeEvent(event)
