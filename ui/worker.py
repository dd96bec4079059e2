"""The model owner: one long-lived QThread that loads the model and runs every reply.

`ModelWorker` lives on that thread and is only reached through queued signals, so the model is
never touched by the GUI thread (nor imported by it: llama.cpp and numpy are imported here, on
the first job). `ModelHost` is its GUI-side face: it posts jobs, re-emits the worker's signals in
the GUI thread and stops a job by setting its threading.Event, which the core checks between
two tokens and between two prompt batches (the rolling summary's included).
"""

from __future__ import annotations

import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal, Slot

from assistant.conversation.store import Store
from assistant.errors import AssistantError, ModelLoadError
from assistant.settings import Settings, default_threads

REPLY_KINDS = ("send", "regenerate", "edit", "continue")


@dataclass(frozen=True)
class LoadJob:
    settings: Settings  # model (a path, a library id, or "" for the embedded one) and options
    cancel: threading.Event = field(default_factory=threading.Event, compare=False)


@dataclass(frozen=True)
class ReplyJob:
    kind: str  # one of REPLY_KINDS
    conversation_id: int
    text: str = ""
    message_id: int | None = None
    cancel: threading.Event = field(default_factory=threading.Event, compare=False)


@dataclass(frozen=True)
class SummaryJob:
    conversation_id: int
    name: str  # the document's name ("pasted text" or a file name)
    text: str
    options: Any = None  # SummaryOptions; None: the defaults
    cancel: threading.Event = field(default_factory=threading.Event, compare=False)


@dataclass(frozen=True)
class PromptJob:
    conversation_id: int


STOPPABLE = (ReplyJob, SummaryJob)  # own the model for a while; Stop (Esc) ends them


class ModelWorker(QObject):
    """Runs on the model thread; owns the ModelRuntime and one ChatSession per conversation."""

    loading = Signal(str)  # file name
    loaded = Signal(object, str)  # ModelInfo, a note when memory forced smaller settings
    load_failed = Signal(str)
    # conversation id, the stored user message (0 for regenerate and continue), the stored
    # reply, its ContextReport, the conversation's title after this message
    reply_started = Signal(int, int, int, object, str)
    piece = Signal(int, str)  # reply message id, text
    reply_done = Signal(int, object)  # conversation id, ReplyResult
    failed = Signal(object, str)  # the job, a user-facing message
    prompt_ready = Signal(int, str)  # conversation id, templated prompt
    summary_progress = Signal(int, object)  # conversation id, summarizer Progress
    summary_done = Signal(int, object, object)  # conversation id, stored request, stored summary
    job_finished = Signal(object)  # the job, whatever happened

    def __init__(self, store: Store, closing: threading.Event):
        super().__init__()
        self._store = store
        self._closing = closing
        self._runtime: Any = None
        self._sessions: dict[int, Any] = {}
        self._load_error = "The model is still loading."

    @Slot(object)
    def handle(self, job: object) -> None:
        try:
            if self._closing.is_set():
                return
            if isinstance(job, LoadJob):
                self._load(job)
            elif isinstance(job, ReplyJob):
                self._reply(job)
            elif isinstance(job, SummaryJob):
                self._summarize(job)
            elif isinstance(job, PromptJob):
                self._prompt(job)
        finally:
            self.job_finished.emit(job)

    @Slot()
    def close(self) -> None:
        """Free the model on its own thread, then end the thread's event loop."""
        self._drop_runtime()
        QThread.currentThread().quit()

    # -- jobs ------------------------------------------------------------------------------
    def _load(self, job: LoadJob) -> None:
        """Resolve and load the model (the imports happen here too, off the GUI thread)."""
        self._drop_runtime()
        try:
            path = _model_path(job.settings)
            self.loading.emit(path.name)
            options = job.settings.load_options()
            if not options.n_threads:
                options = replace(options, n_threads=default_threads(leave_one_for_gui=True))
            self._runtime, choice = _load(path, options, job.cancel)
        except AssistantError as exc:
            self._load_error = f"No model is loaded: {exc}"
            self.load_failed.emit(str(exc))
            return
        except Exception as exc:  # a bug in loading must not kill the thread: report it
            self._load_error = f"No model is loaded: {exc}"
            _log_unexpected()
            self.load_failed.emit(f"Could not load the model: {exc}")
            return
        notes = [*choice.adjustments, choice.message if choice.attempts else ""]
        self.loaded.emit(self._runtime.info, " ".join(n for n in notes if n))

    def _reply(self, job: ReplyJob) -> None:
        cid = job.conversation_id
        reply = None
        try:
            session = self._session(cid)
            if job.kind == "send":
                reply = session.send(job.text, job.cancel)
            elif job.kind == "regenerate":
                reply = session.regenerate(job.cancel)
            elif job.kind == "edit":
                reply = session.edit(job.message_id, job.text, job.cancel)
            else:
                reply = session.continue_reply(job.cancel)
            self.reply_started.emit(
                cid, reply.user_message_id or 0, reply.message_id, reply.context, reply.title
            )
            for text in reply:
                self.piece.emit(reply.message_id, text)
        except AssistantError as exc:
            self.failed.emit(job, str(exc))
        except Exception as exc:  # a bug must not kill the thread: report it, keep the reply
            _log_unexpected()
            self.failed.emit(job, f"Something went wrong while replying: {exc}")
        finally:
            if reply is not None:
                reply.close()  # saves the text so far (marked cancelled) if the loop broke
                if reply.result is not None:
                    self.reply_done.emit(cid, reply.result)

    def _summarize(self, job: SummaryJob) -> None:
        """Summarize on this thread; a cancel returns what was read so far, marked partial."""
        cid = job.conversation_id
        try:
            from assistant.documents.summarizer import Summarizer, SummaryOptions

            session = self._session(cid)
            summarizer = Summarizer(
                self._runtime,
                job.options or SummaryOptions(),
                progress=lambda p: self.summary_progress.emit(cid, p),
                cancel=job.cancel,
            )
            result = summarizer.summarize(job.text)
            request, summary = session.record_summary(job.name, job.text, result)
            self.summary_done.emit(cid, request, summary)
        except AssistantError as exc:
            self.failed.emit(job, str(exc))
        except Exception as exc:  # a bug must not kill the thread: report it
            _log_unexpected()
            self.failed.emit(job, f"Something went wrong while summarizing: {exc}")

    def _prompt(self, job: PromptJob) -> None:
        try:
            self.prompt_ready.emit(
                job.conversation_id, self._session(job.conversation_id).prompt_text()
            )
        except AssistantError as exc:
            self.failed.emit(job, str(exc))
        except Exception as exc:  # a bug must not kill the thread: report it
            _log_unexpected()
            self.failed.emit(job, f"Could not build the prompt: {exc}")

    def _session(self, conversation_id: int) -> Any:
        if self._runtime is None:
            raise ModelLoadError(self._load_error)
        session = self._sessions.get(conversation_id)
        if session is None:
            from assistant.conversation.session import ChatSession

            session = ChatSession(self._runtime, self._store, conversation_id)
            self._sessions[conversation_id] = session
        return session

    def _drop_runtime(self) -> None:
        self._sessions.clear()
        if self._runtime is not None:
            self._runtime.close()
            self._runtime = None


def _model_path(settings: Settings) -> Any:
    """The model file `settings.model` names (a path, a library id, or the embedded model)."""
    from assistant.library.local import chosen_model_path

    return chosen_model_path(settings.model)


def _load(path: Any, options: Any, cancel: threading.Event) -> tuple[Any, Any]:
    """Load with the GPU-layer plan and out-of-memory fallback; `cancel` (set when the window
    closes) stops the load at llama.cpp's next progress step."""
    from assistant.engine.loading import load_with_fallback

    return load_with_fallback(path, options, cancel=cancel)


def _log_unexpected() -> None:
    """Bugs go to stderr for a report; the window shows a plain sentence instead."""
    traceback.print_exc(file=sys.stderr)


class ModelHost(QObject):
    """GUI-thread handle on the model thread: post jobs, stop them, shut down."""

    loading = Signal(str)
    loaded = Signal(object, str)
    load_failed = Signal(str)
    reply_started = Signal(int, int, int, object, str)
    piece = Signal(int, str)
    reply_done = Signal(int, object)
    failed = Signal(object, str)
    prompt_ready = Signal(int, str)
    summary_progress = Signal(int, object)
    summary_done = Signal(int, object, object)
    replying_changed = Signal(bool)  # a reply or summary started owning the model, or none does
    idle = Signal()  # the last queued reply or summary has ended (saved, whatever happened)

    _post = Signal(object)
    _close = Signal()

    def __init__(self, store: Store, parent: QObject | None = None):
        super().__init__(parent)
        self._closing = threading.Event()
        self._pending: list[object] = []
        self._after_idle: list[Callable[[], None]] = []
        self._thread = QThread()
        self._thread.setObjectName("model")
        self._worker = ModelWorker(store, self._closing)
        self._worker.moveToThread(self._thread)
        self._post.connect(self._worker.handle)
        self._close.connect(self._worker.close)
        for name in (
            "loading",
            "loaded",
            "load_failed",
            "reply_started",
            "piece",
            "reply_done",
            "failed",
            "prompt_ready",
            "summary_progress",
            "summary_done",
        ):
            getattr(self._worker, name).connect(getattr(self, name))
        self._worker.job_finished.connect(self._on_job_finished)
        self._thread.start()

    @property
    def busy(self) -> bool:
        return bool(self._pending)

    @property
    def replying(self) -> bool:
        """A reply or a summary is queued or running (both own the model and can be stopped)."""
        return any(isinstance(job, STOPPABLE) for job in self._pending)

    @property
    def running(self) -> bool:
        """The model thread is alive (it ends only in `shutdown`)."""
        return self._thread.isRunning()

    def load(self, settings: Settings) -> None:
        self._submit(LoadJob(replace(settings)))

    def reply(
        self, kind: str, conversation_id: int, text: str = "", message_id: int | None = None
    ) -> ReplyJob:
        if kind not in REPLY_KINDS:
            raise ValueError(kind)
        job = ReplyJob(kind, conversation_id, text, message_id)
        self._submit(job)
        return job

    def summarize(
        self, conversation_id: int, name: str, text: str, options: Any = None
    ) -> SummaryJob:
        job = SummaryJob(conversation_id, name, text, options)
        self._submit(job)
        return job

    def request_prompt(self, conversation_id: int) -> None:
        self._submit(PromptJob(conversation_id))

    def stop(self) -> bool:
        """Stop every queued or running reply or summary within one token; True if any."""
        jobs = [job for job in self._pending if isinstance(job, STOPPABLE)]
        for job in jobs:
            job.cancel.set()
        return bool(jobs)

    def after_replies(self, callback: Callable[[], None]) -> None:
        """Run `callback` now, or stop the reply or summary and run it once that is saved."""
        if self.replying:
            self._after_idle.append(callback)
            self.stop()
        else:
            callback()

    def shutdown(self) -> None:
        """Stop every job, let the running one save, free the model, and join the thread.

        Waits as long as the worker needs: a reply or summary ends within one token, a load
        when it can be cancelled or is done. The thread is never left running (Qt aborts when
        a running QThread is destroyed) and the caller may close the store afterwards.
        """
        if not self._thread.isRunning():
            return
        self._closing.set()
        for job in self._pending:
            cancel = getattr(job, "cancel", None)
            if cancel is not None:
                cancel.set()
        self._after_idle.clear()
        self._close.emit()
        self._thread.wait()

    def _submit(self, job: object) -> None:
        was_replying = self.replying
        self._pending.append(job)
        self._post.emit(job)
        if isinstance(job, STOPPABLE) and not was_replying:
            self.replying_changed.emit(True)

    @Slot(object)
    def _on_job_finished(self, job: object) -> None:
        self._pending = [pending for pending in self._pending if pending is not job]
        if isinstance(job, STOPPABLE) and not self.replying:
            self.replying_changed.emit(False)
            self.idle.emit()
            callbacks, self._after_idle = self._after_idle, []
            for callback in callbacks:
                callback()
