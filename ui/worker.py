"""The model owner: lives on one long-lived QThread, loads the model and runs every job.

`ModelWorker` is only reached through queued signals (see `host.ModelHost`), so the model is
never touched by the GUI thread (nor imported by it: llama.cpp and numpy are imported here, on
the first job). A reply or summary stops when its cancel event is set: the core checks it
between two tokens and between two prompt batches (the rolling summary's included).

Switching models is safe: the chosen file is checked first (header, chat model, vocabulary, fit)
and nothing is unloaded if it fails; the current model stays loaded while the new one loads
when memory allows both, and is loaded again if the new one fails after all.
"""

from __future__ import annotations

import sys
import traceback
from dataclasses import replace
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal, Slot

from assistant.conversation.store import Store
from assistant.errors import AssistantError, InvalidInputError, ModelLoadError
from assistant.settings import Settings, default_threads

from .jobs import (
    Failure,
    LoadJob,
    LoadOutcome,
    MeterJob,
    PromptJob,
    ReplyJob,
    ServeJob,
    SummaryJob,
)


class ModelWorker(QObject):
    """Runs on the model thread; owns the ModelRuntime and one ChatSession per conversation."""

    loading = Signal(str)  # the model's name
    load_finished = Signal(object)  # LoadOutcome
    # conversation id, the stored user message (0 for regenerate and continue), the stored
    # reply, its ContextReport, the conversation's title after this message
    reply_started = Signal(int, int, int, object, str)
    status = Signal(int, object)  # conversation id, WaitStatus (why the first token waits)
    piece = Signal(int, str)  # reply message id, text
    reply_done = Signal(int, object)  # conversation id, ReplyResult
    failed = Signal(object, object)  # the job, a Failure
    prompt_ready = Signal(int, str)  # conversation id, templated prompt
    meter_ready = Signal(int, object)  # conversation id, ContextReport dict (None: no model)
    summary_progress = Signal(int, object)  # conversation id, summarizer Progress
    summary_done = Signal(int, object, object)  # conversation id, stored request, stored summary
    job_started = Signal(object)  # the job
    job_finished = Signal(object)  # the job, whatever happened

    def __init__(self, store: Store, closing: Any):
        super().__init__()
        self._store = store
        self._closing = closing
        self._runtime: Any = None
        self._loaded: Settings | None = None  # the settings the runtime was loaded with
        self._sessions: dict[int, Any] = {}
        self._load_error = "The model is still loading."

    @Slot(object)
    def handle(self, job: object) -> None:
        try:
            if self._closing.is_set():
                return
            self.job_started.emit(job)
            if isinstance(job, LoadJob):
                self._load(job)
            elif isinstance(job, ReplyJob):
                self._reply(job)
            elif isinstance(job, SummaryJob):
                self._summarize(job)
            elif isinstance(job, PromptJob):
                self._prompt(job)
            elif isinstance(job, MeterJob):
                self._meter(job)
            elif isinstance(job, ServeJob):
                self._serve(job)
        finally:
            self.job_finished.emit(job)

    @Slot()
    def close(self) -> None:
        """Free the model on its own thread, then end the thread's event loop."""
        self._drop_runtime()
        QThread.currentThread().quit()

    # -- loading ---------------------------------------------------------------------------
    def _load(self, job: LoadJob) -> None:
        try:
            outcome = self._switch(job)
        except AssistantError as exc:
            outcome = self._not_loaded(job, str(exc))
        except Exception as exc:  # a bug in loading must not kill the thread: report it
            _log_unexpected()
            outcome = self._not_loaded(job, f"Could not load the model: {exc}")
        self.load_finished.emit(outcome)

    def _switch(self, job: LoadJob) -> LoadOutcome:
        """Check the file, then load it; the current model goes only once the new one is in
        (or first, when memory cannot hold both, and then comes back if the new one fails)."""
        from assistant.library.memory import detect_memory

        settings = job.settings
        options = settings.load_options()
        if not options.n_threads:
            options = replace(options, n_threads=default_threads(leave_one_for_gui=True))
        memory = detect_memory()
        path, header = _checked(settings, options, memory)  # raises: nothing was unloaded
        self.loading.emit(header.name)
        previous = self._loaded if self._runtime is not None else None
        if previous is not None and not _room_for_both(self._runtime, header, options, memory):
            self._drop_runtime()
        try:
            runtime, choice = _load(path, options, job.cancel, memory)
        except AssistantError as exc:
            stopped = job.cancel.is_set() or self._closing.is_set()  # closing: no reload
            if previous is not None and self._runtime is None and not stopped:
                self._restore(previous, job.cancel)
            return self._not_loaded(job, str(exc))
        self._drop_runtime()
        from assistant.engine.state_cache import saved_states

        # conversations' caches are kept and restored on a switch back or after a restart
        runtime.use_saved_states(saved_states(settings.kv_cache_mb))
        self._runtime, self._loaded = runtime, settings
        notes = [*choice.adjustments, choice.message if choice.attempts else ""]
        return LoadOutcome(
            job,
            runtime.info,
            settings,
            runtime.n_ctx,
            " ".join(n for n in notes if n),
            gpus=tuple(g.name for g in memory.gpus),
        )

    def _restore(self, settings: Settings, cancel: Any) -> None:
        """Load the previous model again after the new one failed (it had to go first); the
        failed job's cancel stops this load too (the window closing)."""
        try:
            self._switch(LoadJob(settings, cancel=cancel))
        except AssistantError:
            pass  # the outcome says no model is loaded

    def _not_loaded(self, job: LoadJob, problem: str) -> LoadOutcome:
        """The model asked for is not loaded: keep what is, or at start-up the embedded one."""
        wanted = job.fallback and job.settings.model and not job.cancel.is_set()
        if self._runtime is None and wanted and not self._closing.is_set():
            try:
                fallback = self._switch(LoadJob(replace(job.settings, model=""), cancel=job.cancel))
            except AssistantError:
                fallback = None
            if fallback is not None and fallback.info is not None:
                return replace(
                    fallback,
                    job=job,
                    problem=f"{problem} The built-in {fallback.info.name} is loaded instead.",
                )
        if self._runtime is None:
            self._load_error = f"No model is loaded: {problem}"
            return LoadOutcome(job, problem=problem)
        return LoadOutcome(
            job,
            self._runtime.info,
            self._loaded,
            self._runtime.n_ctx,
            problem=f"{problem} {self._runtime.info.name} is still loaded.",
        )

    # -- replies ---------------------------------------------------------------------------
    def _reply(self, job: ReplyJob) -> None:
        cid = job.conversation_id
        reply = None
        before = self._count(cid)
        try:
            session = self._session(cid)
            status = lambda s: self.status.emit(cid, s)  # noqa: E731
            if job.kind == "send":
                reply = session.send(job.text, job.cancel, on_status=status)
            elif job.kind == "regenerate":
                reply = session.regenerate(job.cancel, on_status=status)
            elif job.kind == "edit":
                reply = session.edit(job.message_id, job.text, job.cancel, on_status=status)
            else:
                reply = session.continue_reply(job.cancel, on_status=status)
            self.reply_started.emit(
                cid, reply.user_message_id or 0, reply.message_id, reply.context, reply.title
            )
            for text in reply:
                self.piece.emit(reply.message_id, text)
        except AssistantError as exc:
            stored = reply is not None or self._count(cid) != before
            self.failed.emit(job, Failure(str(exc), stored, type(exc).__name__))
        except Exception as exc:  # a bug must not kill the thread: report it, keep the reply
            _log_unexpected()
            stored = reply is not None or self._count(cid) != before
            self.failed.emit(job, Failure(f"Something went wrong while replying: {exc}", stored))
        finally:
            if reply is not None:
                reply.close()  # saves the text so far (marked cancelled) if the loop broke
                if reply.result is not None:
                    self.reply_done.emit(cid, reply.result)

    def _count(self, conversation_id: int) -> int:
        """How many messages the conversation shows (to tell a refused send from a stored one)."""
        try:
            return self._store.message_counts(conversation_id).get(conversation_id, 0)
        except AssistantError:
            return -1

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
            self.failed.emit(job, Failure(str(exc), kind=type(exc).__name__))
        except Exception as exc:  # a bug must not kill the thread: report it
            _log_unexpected()
            self.failed.emit(job, Failure(f"Something went wrong while summarizing: {exc}"))

    def _prompt(self, job: PromptJob) -> None:
        try:
            self.prompt_ready.emit(
                job.conversation_id, self._session(job.conversation_id).prompt_text()
            )
        except AssistantError as exc:
            self.failed.emit(job, Failure(str(exc), kind=type(exc).__name__))
        except Exception as exc:  # a bug must not kill the thread: report it
            _log_unexpected()
            self.failed.emit(job, Failure(f"Could not build the prompt: {exc}"))

    def _meter(self, job: MeterJob) -> None:
        """The context report of the window as it stands, at the loaded model's context size
        (a pure preview: nothing is written, summarized or generated)."""
        report = None
        try:
            preview = self._session(job.conversation_id).preview_report()
            report = preview.to_dict() if preview is not None else None
        except AssistantError:
            report = None  # no model, or the conversation is gone: the meter says so
        except Exception:  # a bug must not kill the thread
            _log_unexpected()
        self.meter_ready.emit(job.conversation_id, report)

    def _serve(self, job: ServeJob) -> None:
        """One request of the local server, on this model (503 when none is loaded); its
        errors are answered to its client by the gate."""
        from assistant.server.gate import NoModel

        job.gate.runtime = self._runtime
        if self._runtime is None:  # still loading, or the load failed: the client may retry
            job.gate.refuse_next(NoModel(self._load_error))
        else:
            job.gate.run_next(timeout=0)

    def _session(self, conversation_id: int) -> Any:
        if self._runtime is None:
            raise ModelLoadError(self._load_error)
        session = self._sessions.get(conversation_id)
        if session is None:
            from assistant.conversation.session import ChatSession

            exact = self._loaded.exact_slide if self._loaded is not None else False
            session = ChatSession(self._runtime, self._store, conversation_id, exact_slide=exact)
            self._sessions[conversation_id] = session
        return session

    def _drop_runtime(self) -> None:
        self._sessions.clear()
        if self._runtime is not None:
            self._runtime.close()
            self._runtime = None


def _checked(settings: Settings, options: Any, memory: Any) -> tuple[Any, Any]:
    """(path, header) of the model `settings` names, once it is known to be a usable chat model
    that fits this computer; the error says why not, in words (nothing is loaded or unloaded)."""
    from assistant.engine.loading import fitted_options, refuse_if_too_large
    from assistant.library.catalog import with_display_name
    from assistant.library.gguf_header import check_vocabulary, read_gguf_info
    from assistant.library.local import chosen_model_path

    path = chosen_model_path(settings.model)
    header = with_display_name(read_gguf_info(path))
    if not header.is_chat_model:
        raise InvalidInputError(
            f"{path.name} is a {header.architecture} companion file (a vision projector?), not a "
            "chat model."
        )
    check_vocabulary(path)
    fitted, _ = fitted_options(options, header)
    refuse_if_too_large(path, header, fitted, memory)
    return path, header


def _room_for_both(runtime: Any, header: Any, options: Any, memory: Any) -> bool:
    """Whether the new model can load while the current one stays: the current one holds no GPU
    layers (the new one would get fewer) and the new one fits the free RAM on the CPU."""
    from assistant.library.fit import estimate, ram_budget

    if runtime.info.gpu_layers > 0:
        return False
    if not memory.ram_total:
        return True  # not measurable: keep the working model, llama.cpp says if it cannot
    need = estimate(header, options.n_ctx, 0, n_batch=options.n_batch).total_bytes
    return need <= ram_budget(memory)


def _load(path: Any, options: Any, cancel: Any, memory: Any) -> tuple[Any, Any]:
    """Load with the GPU-layer plan and out-of-memory fallback; `cancel` (set when the window
    closes) stops the load at llama.cpp's next progress step."""
    from assistant.engine.loading import load_with_fallback

    return load_with_fallback(path, options, cancel=cancel, memory=memory)


def _log_unexpected() -> None:
    """Bugs go to stderr for a report; the window shows a plain sentence instead."""
    traceback.print_exc(file=sys.stderr)
