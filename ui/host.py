"""The GUI-thread face of the model thread: post jobs, know what is queued, stop, shut down.

Jobs run one at a time in the order posted (the worker's thread takes them from its event
queue); `ModelHost` keeps the list of jobs not finished yet, so the window can tell which
conversation's reply is being written and which ones wait their turn. Stopping a job sets its
threading.Event; the worker's signals are re-emitted here, in the GUI thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal, Slot

from assistant.conversation.store import Store
from assistant.settings import Settings

from .jobs import (
    REPLY_KINDS,
    STOPPABLE,
    LoadJob,
    MeterJob,
    PromptJob,
    ReplyJob,
    ServeJob,
    SummaryJob,
)
from .worker import ModelWorker

FORWARDED = (
    "loading",
    "load_finished",
    "reply_started",
    "status",
    "piece",
    "reply_done",
    "failed",
    "prompt_ready",
    "meter_ready",
    "summary_progress",
    "summary_done",
)


class ModelHost(QObject):
    """GUI-thread handle on the model thread: post jobs, stop them, shut down."""

    loading = Signal(str)
    load_finished = Signal(object)
    reply_started = Signal(int, int, int, object, str)
    status = Signal(int, object)
    piece = Signal(int, str)
    reply_done = Signal(int, object)
    failed = Signal(object, object)
    prompt_ready = Signal(int, str)
    meter_ready = Signal(int, object)
    summary_progress = Signal(int, object)
    summary_done = Signal(int, object, object)
    queue_changed = Signal()  # a reply or summary was queued, started or ended
    job_started = Signal(object)
    job_ended = Signal(object)  # any job, once the worker is done with it (saved)
    idle = Signal()  # the last queued reply or summary has ended (saved, whatever happened)

    _post = Signal(object)
    _close = Signal()

    def __init__(self, store: Store, parent: QObject | None = None):
        super().__init__(parent)
        self._closing = threading.Event()
        self._pending: list[object] = []
        self.current: object | None = None  # the job the worker is running
        self._after_idle: list[tuple[int | None, Callable[[], None]]] = []
        self._thread = QThread()
        self._thread.setObjectName("model")
        self._worker = ModelWorker(store, self._closing)
        self._worker.moveToThread(self._thread)
        self._post.connect(self._worker.handle)
        self._close.connect(self._worker.close)
        for name in FORWARDED:
            getattr(self._worker, name).connect(getattr(self, name))
        self._worker.job_started.connect(self._on_job_started)
        self._worker.job_finished.connect(self._on_job_finished)
        self._thread.start()

    # -- what is going on ------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return bool(self._pending)

    @property
    def replying(self) -> bool:
        """A reply or a summary is queued or running (both own the model and can be stopped)."""
        return any(isinstance(job, STOPPABLE) for job in self._pending)

    def replying_in(self, conversation_id: int | None) -> bool:
        """A reply or summary of this conversation is queued or running."""
        return conversation_id is not None and bool(self.jobs_of(conversation_id))

    def jobs_of(self, conversation_id: int) -> list[Any]:
        return [
            job
            for job in self._pending
            if isinstance(job, STOPPABLE) and job.conversation_id == conversation_id
        ]

    def queue(self) -> list[Any]:
        """The replies and summaries not finished, the running one first."""
        return [job for job in self._pending if isinstance(job, STOPPABLE)]

    def ahead_of(self, job: object) -> list[Any]:
        """The jobs that will run before this one (a load included)."""
        index = next((i for i, j in enumerate(self._pending) if j is job), len(self._pending))
        return self._pending[:index]

    @property
    def running(self) -> bool:
        """The model thread is alive (it ends only in `shutdown`)."""
        return self._thread.isRunning()

    # -- jobs --------------------------------------------------------------------------------
    def load(self, settings: Settings, *, fallback: bool = False) -> LoadJob:
        job = LoadJob(replace(settings), fallback)
        self._submit(job)
        return job

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

    def recount(self, conversation_id: int) -> None:
        """Ask for the conversation's context report at the loaded model's window size (once:
        a recount already waiting for its turn does the job)."""
        waiting = [
            j
            for j in self._pending
            if isinstance(j, MeterJob) and j.conversation_id == conversation_id
        ]
        if not any(j is not self.current for j in waiting):
            self._submit(MeterJob(conversation_id))

    def serve(self, gate: Any) -> None:
        """Give the local server's next queued request its turn on the model."""
        self._submit(ServeJob(gate))

    def stop(self, conversation_id: int | None = None) -> bool:
        """Stop the queued or running replies and summaries (of one conversation, or all)
        within one token; True if any."""
        jobs = self.queue() if conversation_id is None else self.jobs_of(conversation_id)
        for job in jobs:
            job.cancel.set()
        return bool(jobs)

    def after_replies(
        self, callback: Callable[[], None], conversation_id: int | None = None
    ) -> None:
        """Run `callback` now, or stop the replies and summaries (of one conversation, or all)
        and run it once they are saved."""
        busy = self.replying if conversation_id is None else self.replying_in(conversation_id)
        if busy:
            self._after_idle.append((conversation_id, callback))
            self.stop(conversation_id)
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
        self._pending.append(job)
        self._post.emit(job)
        if isinstance(job, STOPPABLE):
            self.queue_changed.emit()

    @Slot(object)
    def _on_job_started(self, job: object) -> None:
        self.current = job
        self.job_started.emit(job)
        if isinstance(job, STOPPABLE):
            self.queue_changed.emit()

    @Slot(object)
    def _on_job_finished(self, job: object) -> None:
        self._pending = [pending for pending in self._pending if pending is not job]
        if self.current is job:
            self.current = None
        self.job_ended.emit(job)
        if not isinstance(job, STOPPABLE):
            return
        self.queue_changed.emit()
        if not self.replying:
            self.idle.emit()
        due, self._after_idle = self._after_idle, []
        keep = []
        for conversation_id, callback in due:
            if conversation_id is None and self.replying or self.replying_in(conversation_id):
                keep.append((conversation_id, callback))
            else:
                callback()  # may ask for more: kept after the ones still waiting
        self._after_idle = keep + self._after_idle
