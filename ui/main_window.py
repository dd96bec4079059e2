"""The main window: composes the parts, opens conversations and turns intents into jobs.

The open conversation lives in memory (`OpenChat`) and is drawn by the chat view; replies
(`replies.ReplyController`) and document summaries (`summaries.SummaryController`) update it
from the worker's signals, and go on in the background when another chat is opened. The store
is read when a conversation is opened, never to draw a reply. The model is loaded, and switched
safely, by `models_control.ModelControl`. Nothing here imports llama.cpp: the model and its
imports live on the worker thread.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from PySide6.QtCore import QByteArray, Qt, Signal
from PySide6.QtGui import QCloseEvent, QResizeEvent
from PySide6.QtWidgets import QApplication, QDialog, QMainWindow, QMessageBox, QSplitter

from assistant.conversation.store import Store
from assistant.errors import AssistantError
from assistant.settings import Settings

from . import theme, ui_state
from .chat_panel import ChatPanel, NoticeActions
from .conversations import ConversationController
from .documents_panel import connect_documents
from .export_import import export_chat, import_chat
from .focus_ring import FocusRing
from .host import ModelHost
from .jobs import Failure, PromptJob
from .local_server import LocalServerControl, ServerStatus
from .menus import build_menus
from .model_status import ModelStatus
from .models_control import RELOAD_FIELDS, ModelControl
from .open_chat import OpenChat
from .prompt_dialog import PromptDialog
from .replies import ReplyController
from .sidebar import Sidebar
from .summaries import SummaryController
from .tab_order import move_focus

__all__ = ["RELOAD_FIELDS", "MainWindow"]


class MainWindow(QMainWindow):
    model_ready = Signal()  # a load ended (the model, another one, or none): tests wait on it

    def __init__(self, settings: Settings | None = None, store: Store | None = None):
        super().__init__()
        self.settings = settings or Settings.load()
        self._owns_store = store is None
        self.store = store or Store()
        self.host = ModelHost(self.store, self)
        self.state = OpenChat()
        self._closed = False
        self.confirm: Callable[[str, str], bool] = self._ask_yes_no  # tests replace it
        self.setWindowTitle("Offline Assistant")
        self.setMinimumSize(640, 480)
        self.resize(1100, 760)
        self._build()
        self.models = ModelControl(
            self.host,
            self.panel,
            self.model_status,
            settings=lambda: self.settings,
            save=self._save_settings,
            open_settings=self.open_settings,
            open_models=self.open_models,
            parent=self,
        )
        self.conversations = ConversationController(
            self.host,
            self.store,
            self.state,
            self.panel,
            self.sidebar,
            new_chat_fields=self._new_chat_fields,
            capacity=lambda: self.models.n_ctx if self.models.info else 0,
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
            offer_summary=lambda text: self.summarize_text(text, "your message"),
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
            show_title=self.conversations.show_title,
            parent=self,
        )
        self.server = LocalServerControl(self.host, self)  # Settings → Local server
        self.server_status = ServerStatus(self.server)
        self.statusBar().addPermanentWidget(self.server_status)
        self.server.failed.connect(self._on_server_failed)
        self.conversations.on_loaded += [self.replies.reattach, self.summaries.reattach]
        self.conversations.on_shown += [self._show_activity, self.summaries.show_progress]
        self.menu_actions = build_menus(self, theme.current_theme())
        self.stop_action = self.menu_actions.stop
        self.regenerate_action = self.menu_actions.regenerate
        self.models_action = self.menu_actions.models
        self.focus_ring = FocusRing(self)
        self._connect()

    @property
    def info(self) -> Any:
        """The loaded model's ModelInfo (None without a model)."""
        return self.models.info

    # -- construction ----------------------------------------------------------------------
    def _build(self) -> None:
        self.sidebar = Sidebar(self.store)
        self.panel = panel = ChatPanel()
        # the parts that tests, benchmarks and tools reach for
        self.banner = panel.banner
        self.model_banner = panel.model_banner
        self.chat = panel.chat
        self.input = panel.input
        self.meter = panel.meter
        self.title_label = panel.title_label
        self.model_picker = panel.model_picker
        self.policy_combo = panel.policy_combo
        self.prompt_button = panel.prompt_button
        self.send_button = panel.send_button
        self.summary_bar = panel.summary_bar
        self.summary_label = panel.summary_label
        self.summary_progress = panel.summary_progress
        self.splitter = QSplitter()
        self.splitter.addWidget(self.sidebar)
        self.splitter.addWidget(panel)
        self.splitter.setStretchFactor(0, 0)  # the sidebar keeps its width; the chat gets the rest
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setCollapsible(0, False)
        self.splitter.setCollapsible(1, False)
        self.splitter.setSizes([240, 860])
        self.setCentralWidget(self.splitter)
        self.model_status = ModelStatus()
        self.model_label = self.model_status.label
        self.statusBar().addPermanentWidget(self.model_status)

    def _connect(self) -> None:
        sidebar, panel, host = self.sidebar, self.panel, self.host
        sidebar.failed.connect(self.show_error)
        sidebar.export_requested.connect(self.export_conversation)
        sidebar.search.escaped.connect(self.focus_input)
        panel.chat.edit_submitted.connect(self.edit_message)
        panel.chat.regenerate_requested.connect(self.regenerate)
        panel.chat.continue_requested.connect(self.continue_reply)
        panel.chat.sources_requested.connect(self.summaries.show_sources)
        panel.chat.export_requested.connect(self.export_conversation)
        panel.chat.verticalScrollBar().valueChanged.connect(self.focus_ring.follow)
        panel.prompt_button.clicked.connect(self.show_prompt)
        panel.summary_cancel.clicked.connect(self.stop)
        panel.input.send_requested.connect(self.send)
        panel.input.long_text.connect(self._offer_long_text)
        panel.input.failed.connect(self.show_error)
        panel.send_button.clicked.connect(self._send_or_stop)
        host.prompt_ready.connect(self._on_prompt_ready)
        host.failed.connect(self._on_failed)
        host.queue_changed.connect(self._show_activity)
        self.models.finished.connect(self._on_model_loaded)
        connect_documents(self)  # the Documents panel and the source chips under replies

    # -- start-up --------------------------------------------------------------------------
    def start(self) -> None:
        """Load the model in the background and reopen the last conversation."""
        notices = [*self.settings.problems, getattr(self.store, "notice", "")]
        if any(notices):  # settings.json values replaced, or an empty database started afresh
            self.model_banner.show_message(" ".join(n for n in notices if n), "info")
        self.models.start()
        self.server.apply(self.settings)  # requests wait (or get 503) until the model is in
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
        """Load the model the settings name (again)."""
        self.models.load(self.settings)

    def _restore_geometry(self, state: dict[str, Any]) -> None:
        for key, restore in (
            ("geometry", self.restoreGeometry),
            ("splitter", self.splitter.restoreState),
        ):
            if isinstance(state.get(key), str):
                restore(QByteArray.fromBase64(state[key].encode("ascii")))

    def _on_model_loaded(self, _outcome: Any) -> None:
        self.conversations.recount()  # the window size may have changed: the meter follows
        self.replies.update_waits()
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
        self.focus_input()

    def delete_conversation(self, conversation_id: int) -> None:
        self.conversations.delete(conversation_id)

    def _new_chat_fields(self) -> dict[str, Any]:
        return {
            "system_prompt": self.settings.system_prompt,
            "model": self.info.name if self.info else "",
            "sampling": self.settings.sampling,
            "policy": self.settings.policy,
        }

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
        """Stop this chat's reply or summary (Esc); other chats' replies go on."""
        if self.host.stop(self.state.id):
            self.statusBar().showMessage("Stopping…", 2000)

    def _send_or_stop(self) -> None:
        if self.host.replying_in(self.state.id):
            self.stop()
        else:
            self.send()

    def _on_failed(self, job: object, failure: Failure) -> None:
        """Failures of other jobs (the prompt preview); replies and summaries handle theirs."""
        if isinstance(job, PromptJob):
            self.show_error(failure.message)

    def _show_activity(self) -> None:
        """This chat's Send/Stop, and which chats have a reply written or waiting."""
        busy = self.host.replying_in(self.state.id)
        self.panel.set_replying(busy)
        self.stop_action.setEnabled(busy)
        self.regenerate_action.setEnabled(not busy)
        current = self.host.current
        activity = {}
        for job in self.host.queue():
            if job.conversation_id not in activity:
                activity[job.conversation_id] = "writing" if job is current else "waiting"
        self.sidebar.set_activity(activity)

    def show_error(self, message: str, actions: NoticeActions | None = None) -> None:
        self.panel.show_error(message, actions or [])

    def _offer_long_text(self, text: str, source: str) -> None:
        words = len(text.split())
        self.panel.show_info(
            f"The {source} is long ({words} words). Ask for a summary, or send it as it is?",
            [
                ("Summarize this", lambda: self.summarize_text(text, source)),
                ("Ask about this", lambda: self.panel.documents.attach_text(text, source)),
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

    def show_shortcuts(self) -> None:
        from .shortcuts_dialog import ShortcutsDialog

        self._open_dialog(ShortcutsDialog(self.menu_actions.all(), self))

    def open_convert(self) -> None:
        from .convert_dialog import ConvertDialog

        dialog = ConvertDialog(self)
        dialog.model_chosen.connect(self.use_model)
        dialog.adapter_chosen.connect(self.models.use)  # the base, with the adapter applied
        self._open_dialog(dialog)

    def open_models(self) -> None:
        from .model_manager import ModelManager

        dialog = ModelManager(self.settings.n_ctx, self)
        dialog.model_chosen.connect(self.use_model)
        dialog.library_changed.connect(lambda: self.model_picker.refresh())
        self._open_dialog(dialog)

    def use_model(self, model: str) -> None:
        """Switch to `model` (a library id or a path); saved once it has loaded."""
        self.models.use(model)

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
            gpus=self.models.gpus if self.info else None,
            server_state=self._server_state(),
            parent=self,
        )
        dialog.accepted.connect(lambda: self.apply_settings(dialog.settings()))
        self._open_dialog(dialog)

    def apply_settings(self, new: Settings) -> None:
        """Persist, apply to the open conversation, and switch the model if its options moved
        (those are saved once the model has loaded with them)."""
        reload = self.models.needs_reload(new)
        self._save_settings(self.models.kept(new) if reload else new)
        if self.state.id is not None:
            try:
                self.store.update_conversation(
                    self.state.id, system_prompt=new.system_prompt, sampling=new.sampling
                )
            except AssistantError as exc:
                self.show_error(str(exc))
        if reload:
            self.models.load(new)
        self.server.apply(self.settings)

    def _server_state(self) -> str:
        if self.server.running:
            return f"Serving {self.server.url} with the loaded model."
        return self.server.problem

    def _on_server_failed(self, message: str) -> None:
        self.model_banner.show_message(message, "error", [("Open settings", self.open_settings)])

    def _save_settings(self, settings: Settings) -> None:
        self.settings = replace(settings)
        try:
            settings.save()
        except OSError as exc:
            self.show_error(f"Could not save the settings: {exc.strerror or exc}.")

    def set_theme(self, name: str) -> None:
        """View → Theme: system, light or dark (remembered)."""
        app = QApplication.instance()
        if isinstance(app, QApplication):
            theme.set_theme(app, name)
        ui_state.save(theme=name)
        if self.state.id is not None:  # code blocks take the new colours
            self.conversations.reload()

    def _open_dialog(self, dialog: QDialog) -> None:
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()

    def _ask_yes_no(self, title: str, text: str) -> bool:
        answer = QMessageBox.question(self, title, text)
        return answer == QMessageBox.StandardButton.Yes

    def export_conversation(self, conversation_id: int | None = None) -> None:
        if isinstance(conversation_id, bool) or not isinstance(conversation_id, int):
            conversation_id = self.state.id  # from the menu (its "checked" flag) or the chat
        if conversation_id is not None:
            export_chat(self, self.store, conversation_id, self.show_error)

    def import_conversation(self) -> None:
        conversation_id = import_chat(self, self.store, self.show_error)
        if conversation_id is not None:
            self.sidebar.refresh()
            self.select_conversation(conversation_id)

    # -- focus and keyboard ----------------------------------------------------------------
    def focus_input(self) -> None:
        self.input.setFocus(Qt.FocusReason.ShortcutFocusReason)

    def focus_search(self) -> None:
        self.sidebar.search.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.sidebar.search.selectAll()

    def focusNextPrevChild(self, next: bool) -> bool:  # noqa: N802, A002 (Qt override)
        """Tab and Shift+Tab follow `tab_order.tab_ring` (newest message first)."""
        return move_focus(self, next) or super().focusNextPrevChild(next)

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802
        super().resizeEvent(event)
        self.focus_ring.follow()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        """Stop the running job, wait for the worker to save and end, then close the store.

        The store is closed only once the model thread has finished, so a reply being saved
        is never cut off and the thread is never destroyed while it runs.
        """
        if not self._closed:
            self._closed = True
            self.conversations.flush()
            ui_state.save(
                geometry=bytes(self.saveGeometry().toBase64()).decode("ascii"),
                splitter=bytes(self.splitter.saveState().toBase64()).decode("ascii"),
            )
            self.hide()  # the window goes at once; the worker may need a moment to save
            self.sidebar.shutdown()
            self.model_picker.shutdown()
            self.server.stop()  # its requests end (cancelled) before the model goes
            self.host.shutdown()
            self.host.blockSignals(True)  # what the worker said last is saved; the view goes
            if self._owns_store and not self.host.running:
                self.store.close()
        super().closeEvent(event)
