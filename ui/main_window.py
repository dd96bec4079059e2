"""The main window: composes the parts, opens conversations and turns intents into jobs.

The open conversation lives in memory (`OpenChat`) and is drawn by the chat view; replies
(`replies.ReplyController`) and document summaries (`summaries.SummaryController`) update it
from the worker's signals. The store is read when a conversation is opened, never while a
reply runs. Every intent that could race a streaming reply (switch, delete, new chat, reload)
first stops the reply and runs once the worker has saved it. Nothing here imports llama.cpp:
the model and its imports live on the worker thread.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from PySide6.QtCore import QByteArray, Qt, Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import QDialog, QMainWindow, QMessageBox, QSplitter

from assistant.conversation.store import Store
from assistant.errors import AssistantError
from assistant.settings import Settings

from . import ui_state
from .chat_panel import ChatPanel, NoticeActions
from .conversations import ConversationController
from .export_import import export_chat, import_chat
from .menus import build_menus
from .model_status import ModelStatus
from .open_chat import OpenChat
from .prompt_dialog import PromptDialog
from .replies import ReplyController
from .sidebar import Sidebar
from .summaries import SummaryController
from .worker import ModelHost, PromptJob

RELOAD_FIELDS = ("model", "n_ctx", "n_threads", "n_gpu_layers", "flash_attn", "chat_format")


class MainWindow(QMainWindow):
    model_ready = Signal()  # the model finished loading (or failed to): tests and benches wait

    def __init__(self, settings: Settings | None = None, store: Store | None = None):
        super().__init__()
        self.settings = settings or Settings.load()
        self._owns_store = store is None
        self.store = store or Store()
        self.host = ModelHost(self.store, self)
        self.info: Any = None  # ModelInfo once loaded
        self.state = OpenChat()
        self._closed = False
        self.confirm: Callable[[str, str], bool] = self._ask_yes_no  # tests replace it
        self.setWindowTitle("Offline Assistant")
        self.resize(1100, 760)
        self._build()
        self.conversations = ConversationController(
            self.host,
            self.store,
            self.state,
            self.panel,
            self.sidebar,
            new_chat_fields=self._new_chat_fields,
            capacity=self._capacity,
            confirm=lambda title, text: self.confirm(title, text),
            parent=self,
        )
        self.replies = ReplyController(
            self.host,
            self.state,
            self.panel,
            self.sidebar,
            ensure_conversation=self.conversations.ensure,
            reload=self.conversations.reload,
            parent=self,
        )
        self.summaries = SummaryController(
            self.host,
            self.store,
            self.state,
            self.panel,
            self.sidebar,
            settings=lambda: self.settings,
            ensure_conversation=self.conversations.ensure,
            reload=self.conversations.reload,
            parent=self,
        )
        self.menu_actions = build_menus(self)
        self.stop_action = self.menu_actions.stop
        self.regenerate_action = self.menu_actions.regenerate
        self.models_action = self.menu_actions.models
        self._connect()

    # -- construction ----------------------------------------------------------------------
    def _build(self) -> None:
        self.sidebar = Sidebar(self.store)
        self.panel = panel = ChatPanel()
        # the parts that tests, benchmarks and tools reach for
        self.banner = panel.banner
        self.chat = panel.chat
        self.input = panel.input
        self.meter = panel.meter
        self.title_label = panel.title_label
        self.policy_combo = panel.policy_combo
        self.prompt_button = panel.prompt_button
        self.send_button = panel.send_button
        self.summary_bar = panel.summary_bar
        self.summary_label = panel.summary_label
        self.summary_progress = panel.summary_progress
        self.splitter = QSplitter()
        self.splitter.addWidget(self.sidebar)
        self.splitter.addWidget(panel)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([260, 840])
        self.setCentralWidget(self.splitter)
        self.model_status = ModelStatus()
        self.model_label = self.model_status.label
        self.statusBar().addPermanentWidget(self.model_status)

    def _connect(self) -> None:
        sidebar, panel, host = self.sidebar, self.panel, self.host
        sidebar.failed.connect(self.show_error)
        panel.chat.edit_submitted.connect(self.edit_message)
        panel.chat.regenerate_requested.connect(self.regenerate)
        panel.chat.sources_requested.connect(self.summaries.show_sources)
        panel.prompt_button.clicked.connect(self.show_prompt)
        panel.summary_cancel.clicked.connect(self.stop)
        panel.input.send_requested.connect(self.send)
        panel.input.long_text.connect(self._offer_long_text)
        panel.input.failed.connect(self.show_error)
        panel.send_button.clicked.connect(self._send_or_stop)
        host.loading.connect(self.model_status.loading)
        host.loaded.connect(self._on_loaded)
        host.load_failed.connect(self._on_load_failed)
        host.prompt_ready.connect(self._on_prompt_ready)
        host.failed.connect(self._on_failed)
        host.replying_changed.connect(self._set_replying)
        host.idle.connect(self._on_idle)

    # -- start-up --------------------------------------------------------------------------
    def start(self) -> None:
        """Load the model in the background and reopen the last conversation."""
        notices = [*self.settings.problems, getattr(self.store, "notice", "")]
        if any(notices):  # settings.json values replaced, or an empty database started afresh
            self.banner.show_message(" ".join(n for n in notices if n), "info")
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
            self.conversations.show_new_chat()
        self.focus_input()

    def load_model(self) -> None:
        self.info = None
        self.model_status.loading()
        self.host.load(self.settings)

    def _restore_geometry(self, state: dict[str, Any]) -> None:
        for key, restore in (
            ("geometry", self.restoreGeometry),
            ("splitter", self.splitter.restoreState),
        ):
            if isinstance(state.get(key), str):
                restore(QByteArray.fromBase64(state[key].encode("ascii")))

    # -- model status ----------------------------------------------------------------------
    def _on_loaded(self, info: Any, note: str) -> None:
        self.info = info
        self.model_status.loaded(info)
        if self.banner.kind == "error" and "load" in self.banner.label.text().lower():
            self.banner.dismiss()
        if self.meter.used == 0:
            self.meter.set_capacity(self.settings.n_ctx)
        if note:  # values fitted to the model, or memory forced fewer layers or less context
            self.banner.show_message(note, "info")
        self.model_ready.emit()

    def _on_load_failed(self, message: str) -> None:
        self.model_status.failed(message)
        self.show_error(
            f"{message} Choose another model file in Settings; your conversations are still here.",
            actions=[("Open settings", self.open_settings)],
        )
        self.model_ready.emit()

    # -- conversations (see conversations.py) ---------------------------------------------
    @property
    def conversation_id(self) -> int | None:
        return self.state.id

    def select_conversation(self, conversation_id: int) -> None:
        self.conversations.select(conversation_id)

    def open_conversation(self, conversation_id: int) -> None:
        self.conversations.open(conversation_id)

    def new_chat(self) -> None:
        self.conversations.new_chat()

    def delete_conversation(self, conversation_id: int) -> None:
        self.conversations.delete(conversation_id)

    def _new_chat_fields(self) -> dict[str, Any]:
        return {
            "system_prompt": self.settings.system_prompt,
            "model": self.info.name if self.info else "",
            "sampling": self.settings.sampling,
            "policy": self.settings.policy,
        }

    def _capacity(self) -> int:
        return self.settings.n_ctx if self.info else 0

    # -- intents: replies and summaries (see replies.py and summaries.py) -------------------
    def send(self) -> None:
        self.replies.send()

    def send_text(self, text: str) -> bool:
        return self.replies.send_text(text)

    def regenerate(self) -> None:
        self.replies.regenerate()

    def continue_reply(self) -> None:
        self.replies.continue_reply()

    def edit_message(self, message_id: int, text: str) -> None:
        self.replies.edit(message_id, text)

    def summarize_text(self, text: str, name: str = "pasted text") -> bool:
        return self.summaries.summarize_text(text, name)

    def stop(self) -> None:
        if self.host.stop():
            self.statusBar().showMessage("Stopping…", 2000)

    def _send_or_stop(self) -> None:
        if self.host.replying:
            self.stop()
        else:
            self.send()

    def _on_failed(self, job: object, message: str) -> None:
        """Failures of other jobs (the prompt preview); replies and summaries handle theirs."""
        if isinstance(job, PromptJob):
            self.show_error(message)

    def _on_idle(self) -> None:
        """The last reply or summary has ended and is saved."""
        self.replies.on_idle()
        self.summaries.on_idle()

    def _set_replying(self, replying: bool) -> None:
        self.panel.set_replying(replying)
        self.stop_action.setEnabled(replying)
        self.regenerate_action.setEnabled(not replying)

    def show_error(self, message: str, actions: NoticeActions | None = None) -> None:
        self.panel.show_error(message, actions or [])

    def _offer_long_text(self, text: str, source: str) -> None:
        words = len(text.split())
        self.panel.show_info(
            f"The {source} is long ({words} words). Ask for a summary, or send it as it is?",
            [
                ("Summarize this", lambda: self.summarize_text(text, source)),
                ("Send as a message", lambda: self.send_text(text)),
            ],
        )

    # -- dialogs ---------------------------------------------------------------------------
    def show_prompt(self) -> None:
        if self.state.id is None or not self.state.messages:
            self.panel.show_info("Nothing has been sent to the model in this chat yet.")
            return
        self.host.request_prompt(self.state.id)

    def _on_prompt_ready(self, conversation_id: int, prompt: str) -> None:
        if conversation_id == self.state.id:
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
        from .settings_dialog import SettingsDialog

        conv = None
        if self.state.id is not None:
            try:
                conv = self.store.get_conversation(self.state.id)
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
        if self.state.id is not None:
            try:
                self.store.update_conversation(
                    self.state.id, system_prompt=new.system_prompt, sampling=new.sampling
                )
            except AssistantError as exc:
                self.show_error(str(exc))
        if reload:
            self.host.after_replies(self.load_model)

    def _open_dialog(self, dialog: QDialog) -> None:
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()

    def _ask_yes_no(self, title: str, text: str) -> bool:
        answer = QMessageBox.question(self, title, text)
        return answer == QMessageBox.StandardButton.Yes

    def export_conversation(self) -> None:
        if self.state.id is not None:
            export_chat(self, self.store, self.state.id, self.show_error)

    def import_conversation(self) -> None:
        conversation_id = import_chat(self, self.store, self.show_error)
        if conversation_id is not None:
            self.sidebar.refresh()
            self.select_conversation(conversation_id)

    # -- focus and closing -----------------------------------------------------------------
    def focus_input(self) -> None:
        self.input.setFocus(Qt.FocusReason.ShortcutFocusReason)

    def focus_search(self) -> None:
        self.sidebar.search.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.sidebar.search.selectAll()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        """Stop the running job, wait for the worker to save and end, then close the store.

        The store is closed only once the model thread has finished, so a reply being saved
        is never cut off and the thread is never destroyed while it runs.
        """
        if not self._closed:
            self._closed = True
            ui_state.save(
                geometry=bytes(self.saveGeometry().toBase64()).decode("ascii"),
                splitter=bytes(self.splitter.saveState().toBase64()).decode("ascii"),
            )
            self.hide()  # the window goes at once; the worker may need a moment to save
            self.sidebar.shutdown()
            self.host.shutdown()
            self.host.blockSignals(True)  # what the worker said last is saved; the view goes
            if self._owns_store and not self.host.running:
                self.store.close()
        super().closeEvent(event)
