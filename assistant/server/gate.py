"""The one way to the model: a bounded first-come queue of jobs run one at a time by its owner.

The runtime is not thread-safe, so every generation (and every summary the window needs) runs
on one owner thread. By default the gate starts its own (`start()`); the desktop app can hand
in its model worker instead: pass `on_ready` and call `run_next()` on that worker whenever it
fires, so server requests queue with the app's own replies behind the same owner.

A job is `work(runtime, cancel, emit)`: it streams events through `emit` and stops within one
token once `cancel` is set (a client that hung up, the server shutting down); what it returns
is kept as `job.result`, and the last jobs run are listed in `gate.finished`. Waiting jobs are
bounded (`QueueFull`, with a Retry-After estimate); a job cancelled while waiting is skipped.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from assistant.errors import ModelLoadError

log = logging.getLogger(__name__)

Emit = Callable[[str, Any], None]
Work = Callable[[Any, threading.Event, Emit], None]


class QueueFull(Exception):
    """Too many requests are waiting; `retry_after` seconds is a fair guess of when to retry."""

    def __init__(self, waiting: int, retry_after: int):
        super().__init__(f"{waiting} requests are already waiting for the model.")
        self.waiting = waiting
        self.retry_after = retry_after


class NoModel(ModelLoadError):
    """The owner has no model loaded (the desktop app while it loads or after a failed load)."""


class GateClosed(Exception):
    """The server is shutting down: no new work is taken."""


def _ended(*_args: Any) -> None:
    """What an ended job's work and emit become: nothing listens any more."""


class Job:
    """One queued piece of work, its cancel flag, and where its events go."""

    def __init__(self, work: Work, emit: Emit, label: str = ""):
        self.work = work
        self.emit = emit
        self.label = label
        self.cancel = threading.Event()
        self.done = threading.Event()
        self.result: Any = None
        self.queued_at = time.monotonic()

    def release(self) -> None:
        """Let go of the request (its messages, its client's queue) once the job has ended;
        `gate.finished` keeps only the label and the result."""
        self.work = self.emit = _ended


class Gate:
    """Runs jobs one at a time, in arrival order, on the model's owner thread."""

    def __init__(
        self,
        runtime: Any,
        *,
        max_waiting: int = 8,
        on_ready: Callable[[], None] | None = None,
        on_busy: Callable[[bool], None] | None = None,
    ):
        self.runtime = runtime
        self.max_waiting = max_waiting
        self.on_ready = on_ready  # an outside owner: it calls run_next() on its thread
        self.on_busy = on_busy  # called on the owner thread as a job starts (True) / ends
        self._waiting: deque[Job] = deque()
        self._cond = threading.Condition()
        self._running: Job | None = None
        self._closed = False
        self._thread: threading.Thread | None = None
        self._mean_s = 2.0  # a running mean of job durations, for Retry-After
        self.finished: deque[Job] = deque(maxlen=32)  # the last jobs run, newest last
        # the model file served, for /v1/models: an outside owner that swaps models sets it
        self.model_path: Any = None

    @property
    def model_file(self) -> Path | None:
        """The file of the model serving now (None: not known, no model loaded)."""
        where = self.model_path or getattr(self.runtime, "path", None)
        return Path(where) if where else None

    # -- clients -------------------------------------------------------------------------------
    def submit(self, work: Work, emit: Emit, label: str = "") -> Job:
        """Queue `work`; QueueFull when `max_waiting` jobs already wait, GateClosed when the
        gate is shutting down."""
        job = Job(work, emit, label)
        with self._cond:
            if self._closed:
                raise GateClosed("The server is shutting down.")
            waiting = sum(not j.cancel.is_set() for j in self._waiting)
            if waiting >= self.max_waiting:
                ahead = waiting + (self._running is not None)
                raise QueueFull(waiting, max(1, math.ceil(self._mean_s * ahead)))
            self._waiting.append(job)
            self._cond.notify()
        if self.on_ready is not None:
            self.on_ready()
        return job

    @property
    def busy(self) -> bool:
        return self._running is not None

    @property
    def waiting(self) -> int:
        with self._cond:
            return sum(not j.cancel.is_set() for j in self._waiting)

    # -- the owner -----------------------------------------------------------------------------
    def run_next(self, timeout: float | None = 0) -> bool:
        """Run the next waiting job on the calling thread (the model's owner); False when none
        came within `timeout` seconds (None: wait until one comes or the gate closes)."""
        with self._cond:
            deadline = None if timeout is None else time.monotonic() + timeout
            while not self._waiting and not self._closed:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
            if not self._waiting:
                return False
            job = self._waiting.popleft()
            self._running = job
        try:
            if job.cancel.is_set():
                job.emit("end", None)  # its client left (or the server is closing) meanwhile
            else:
                self._run(job)
        finally:
            with self._cond:
                self._running = None
                self.finished.append(job)
            job.done.set()
            job.release()
        return True

    def withdraw(self, job: Job) -> None:
        """A waiting job whose client left: out of the queue now, ended (a running or finished
        job is left to its cancel flag)."""
        with self._cond:
            try:
                self._waiting.remove(job)
            except ValueError:
                return
            self.finished.append(job)
        job.cancel.set()
        job.emit("end", None)
        job.done.set()
        job.release()

    def refuse_next(self, error: Exception) -> bool:
        """Answer the next waiting job with `error` instead of running it (an owner with no
        model loaded); False when none waits."""
        with self._cond:
            if not self._waiting:
                return False
            job = self._waiting.popleft()
        if job.cancel.is_set():
            job.emit("end", None)  # its client left meanwhile
        else:
            job.emit("fail", error)
        with self._cond:
            self.finished.append(job)
        job.done.set()
        job.release()
        return True

    def _run(self, job: Job) -> None:
        started = time.monotonic()
        if self.on_busy is not None:
            self.on_busy(True)
        try:
            job.result = job.work(self.runtime, job.cancel, job.emit)
        except Exception as exc:  # the work reports what it expects; anything else is a bug
            log.exception("A model job failed unexpectedly")
            job.emit("fail", exc)
        finally:
            took = time.monotonic() - started
            self._mean_s = 0.7 * self._mean_s + 0.3 * took
            if self.on_busy is not None:
                self.on_busy(False)

    def start(self) -> None:
        """Become the owner: a thread of the gate's own runs the jobs."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="model-gate", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._closed or self._waiting:
            self.run_next(timeout=None)

    def cancel_running(self) -> None:
        """Cancel the job running now, if any (it ends within one token); the queue goes on."""
        job = self._running
        if job is not None:
            job.cancel.set()

    def cancel_all(self) -> None:
        """Cancel the running job and every waiting one (each ends within one token)."""
        with self._cond:
            jobs = list(self._waiting) + ([self._running] if self._running else [])
        for job in jobs:
            job.cancel.set()

    def close(self, timeout: float = 10.0) -> None:
        """Take no new work, cancel what is queued or running, and stop the owner thread."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            # with an outside owner nothing may run the waiting jobs any more: end them here
            left = [] if self._thread is not None else list(self._waiting)
            if left:
                self._waiting.clear()
        self.cancel_all()
        for job in left:
            job.cancel.set()
            job.emit("end", None)
            job.done.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
