"""'Summarize this': a pasted or dropped document summarized on the model thread, with progress
and Cancel; the summary joins the conversation and its sources can be shown.

Like a reply, a summary goes on when another chat is opened: its progress bar shows whenever
its own chat is open, and progress starts moving while the first chunk is still being read.
"""

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
from .host import ModelHost
from .jobs import Failure, SummaryJob
from .open_chat import OpenChat, ViewMessage
from .replies import BUSY_TEXT
from .sidebar import Sidebar


def progress_text(name: str, p: Any) -> tuple[str, int, int]:
    """(words, done, total) for the progress bar: the chunk being read and how far, the calls
    done, the tokens read, the time left."""
    eta = f" · about {p.eta_s:.0f} s left" if p.eta_s else ""
    if p.prompt_total and p.stage != "reduce":
        share = 100 * p.prompt_done // max(p.prompt_total, 1)
        current = min(p.done + 1, p.total)
        # the bar moves within the call being read: each call counts 100 steps
        return (
            f"Reading {name}: chunk {current} of {p.total}, {share}%{eta}",
            p.done * 100 + share,
            p.total * 100,
        )
    what = "Combining the notes" if p.stage == "reduce" else f"Summarizing {name}"
    return (
        f"{what}: {p.done} of {p.total} steps · {p.tokens_processed} of {p.source_tokens} "
        f"tokens read{eta}",
        p.done * 100,
        p.total * 100,
    )


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
        show_title: Callable[[int, str], None],
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
        self._show_title = show_title
        self.job: SummaryJob | None = None
        self._request: ViewMessage | None = None  # "Summarize the document …"
        self._summary: ViewMessage | None = None
        self._progress: tuple[str, int, int] = ("", 0, 0)
        host.summary_progress.connect(self._on_progress)
        host.summary_done.connect(self._on_done)
        host.failed.connect(self._on_failed)
        host.job_ended.connect(self._on_job_ended)

    def summarize_text(self, text: str, name: str = "pasted text") -> bool:
        """Summarize a document on the model thread; the result joins the conversation."""
        from assistant.documents.readers import from_text

        if self.host.replying_in(self.state.id):
            self.panel.show_info(BUSY_TEXT)
            return False
        if self.job is not None:  # one document at a time (its progress bar is its chat's)
            other = self.sidebar.title_of(self.job.conversation_id)
            self.panel.show_info(
                f"A document is being summarized in “{other}”: wait for it, or open that chat "
                "and stop it (Esc)."
            )
            return False
        try:
            document = from_text(text, name)
        except AssistantError as exc:
            self.panel.show_error(str(exc))
            return False
        conversation_id = self._ensure_conversation()
        if conversation_id is None:
            return False
        self.sidebar.touch(conversation_id, self.state.title)
        self.panel.dismiss_notice()
        self._request = self.state.add("user", f"Summarize the document “{document.name}”.")
        self._summary = self.state.add("assistant", status="streaming")
        self._summary.wait = f"Reading {document.name}…"
        self.panel.chat.show_messages(self.state.messages)
        self.panel.chat.scroll_to_bottom()
        options = SummaryOptions.from_settings(self._settings())
        self.job = self.host.summarize(conversation_id, document.name, document.text, options)
        self._progress = (f"Summarizing {document.name}…", 0, 0)
        self.show_progress()
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

    # -- the open chat -----------------------------------------------------------------------
    def reattach(self) -> None:
        """The open chat was just read: a summary still being written shows in it again."""
        if self._is_open() and self._summary is not None and self._summary.id is None:
            self.state.messages += [m for m in (self._request, self._summary) if m is not None]

    def show_progress(self) -> None:
        """The progress bar belongs to the summary's chat: shown there, hidden elsewhere."""
        if self._is_open():
            self.panel.show_summary_progress(*self._progress)
        else:
            self.panel.summary_bar.hide()

    def _is_open(self) -> bool:
        return self.job is not None and self.job.conversation_id == self.state.id

    # -- the worker's signals --------------------------------------------------------------
    def _on_progress(self, _conversation_id: int, progress: Any) -> None:
        if self.job is None:
            return
        self._progress = progress_text(self.job.name, progress)
        if self._summary is not None and self._summary.id is None:
            self._summary.wait = self._progress[0]
            self._summary.progress = self._progress[1:]
            if any(m is self._summary for m in self.state.messages):
                self.panel.chat.update_message(self._summary)
        self.show_progress()

    def _on_done(self, conversation_id: int, request: Any, summary: Any) -> None:
        try:  # the core may have titled the chat after the document
            self._show_title(conversation_id, self.store.get_conversation(conversation_id).title)
        except AssistantError:
            self.sidebar.touch(conversation_id)
        if self._summary is None:
            return
        if self._request is not None and request is not None:
            self._request.apply(request)
        self._summary.apply(summary)
        self._summary.wait, self._summary.progress = "", None
        if conversation_id != self.state.id:
            return
        chat = self.panel.chat
        chat.show_messages(self.state.messages)
        chat.scroll_to_bottom()
        context = summary.stats.get("context")
        if context:  # the summary now sits in the window too
            self.panel.meter.set_report(context, summary.tokens or 0)
        if summary.status == "cancelled":
            self.panel.show_info("Summary cancelled: it covers only the part read so far.")

    def _on_failed(self, job: object, failure: Failure) -> None:
        if not isinstance(job, SummaryJob) or job is not self.job:
            return
        self._request = self._summary = None
        if job.conversation_id == self.state.id:
            self._reload()  # what the failed run left in the store (usually nothing)
        # the document is not lost: offer to try again
        again = ("Try again", lambda: self.summarize_text(job.text, job.name))
        self.panel.notify(job.conversation_id, failure.message, "error", [again])

    def _on_job_ended(self, job: object) -> None:
        if job is self.job:
            self.job = self._request = self._summary = None
            self.panel.summary_bar.hide()
