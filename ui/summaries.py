"""'Summarize this': a pasted or dropped document summarized on the model thread, with progress
and Cancel; the summary joins the conversation and its sources can be shown."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Qt
from PySide6.QtWidgets import QWidget

from assistant.conversation.store import Store
from assistant.documents.options import SummaryOptions
from assistant.errors import AssistantError
from assistant.settings import Settings

from .chat_panel import ChatPanel
from .open_chat import OpenChat, ViewMessage
from .replies import BUSY_TEXT
from .sidebar import Sidebar
from .worker import ModelHost, SummaryJob


class SummaryController(QObject):
    def __init__(
        self,
        host: ModelHost,
        store: Store,
        state: OpenChat,
        panel: ChatPanel,
        sidebar: Sidebar,
        *,
        settings: Callable[[], Settings],
        ensure_conversation: Callable[[], int | None],
        reload: Callable[[], None],
        parent: QWidget | None = None,
    ):
        super().__init__(parent)
        self.host = host
        self.store = store
        self.state = state
        self.panel = panel
        self.sidebar = sidebar
        self._settings = settings
        self._ensure_conversation = ensure_conversation
        self._reload = reload
        self.job: SummaryJob | None = None
        self._request: ViewMessage | None = None  # "Summarize the document …"
        self._summary: ViewMessage | None = None
        host.summary_progress.connect(self._on_progress)
        host.summary_done.connect(self._on_done)
        host.failed.connect(self._on_failed)

    def summarize_text(self, text: str, name: str = "pasted text") -> bool:
        """Summarize a document on the model thread; the result joins the conversation."""
        from assistant.documents.readers import from_text

        if self.host.replying:
            self.panel.show_info(BUSY_TEXT)
            return False
        try:
            document = from_text(text, name)
        except AssistantError as exc:
            self.panel.show_error(str(exc))
            return False
        conversation_id = self._ensure_conversation()
        if conversation_id is None:
            return False
        if self.state.title == "New chat":
            title = f"Summary: {document.name}"
            try:
                self.store.update_conversation(conversation_id, title=title)
            except AssistantError as exc:
                self.panel.show_error(str(exc))
                return False
            self.state.update(title=title)
            self.panel.title_label.setText(title)
        self.sidebar.touch(conversation_id, self.state.title)
        self.panel.banner.dismiss()
        self._request = self.state.add("user", f"Summarize the document “{document.name}”.")
        self._summary = self.state.add("assistant", status="streaming")
        self.panel.chat.show_messages(self.state.messages)
        self.panel.chat.scroll_to_bottom()
        options = SummaryOptions.from_settings(self._settings())
        self.job = self.host.summarize(conversation_id, document.name, document.text, options)
        self.panel.show_summary_progress(f"Summarizing {document.name}…")
        return True

    def show_sources(self, summary: dict[str, Any]) -> None:
        """The source passage behind each point of a summary."""
        from .sources_dialog import SourcesDialog

        try:
            name, text = self.store.get_document(summary["document_id"])
        except (AssistantError, KeyError):
            self.panel.show_error("The summarized document is no longer stored.")
            return
        dialog = SourcesDialog(name, text, summary, self.panel.window())
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()

    def on_idle(self) -> None:
        self.job = self._request = self._summary = None
        self.panel.summary_bar.hide()

    # -- the worker's signals --------------------------------------------------------------
    def _on_progress(self, _conversation_id: int, progress: Any) -> None:
        eta = f" · about {progress.eta_s:.0f} s left" if progress.eta_s else ""
        self.panel.show_summary_progress(
            f"Summarizing: {progress.done} of {progress.total} chunks · "
            f"{progress.tokens_processed} of {progress.source_tokens} tokens read{eta}",
            progress.done,
            progress.total,
        )

    def _on_done(self, conversation_id: int, request: Any, summary: Any) -> None:
        self.sidebar.touch(conversation_id)
        if conversation_id != self.state.id or self._summary is None:
            return
        if self._request is not None and request is not None:
            self._request.apply(request)
        self._summary.apply(summary)
        chat = self.panel.chat
        chat.show_messages(self.state.messages)
        chat.scroll_to_bottom()
        context = summary.stats.get("context")
        if context:  # the summary now sits in the window too
            self.panel.meter.set_report(context, summary.tokens or 0)
        if summary.status == "cancelled":
            self.panel.show_info("Summary cancelled: it covers only the part read so far.")

    def _on_failed(self, job: object, message: str) -> None:
        if not isinstance(job, SummaryJob) or job is not self.job:
            return
        if job.conversation_id == self.state.id:
            self._reload()  # what the failed run left in the store (usually nothing)
        self._request = self._summary = None
        # the document is not lost: offer to try again
        again = ("Try again", lambda: self.summarize_text(job.text, job.name))
        self.panel.show_error(message, [again])
