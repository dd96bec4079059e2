"""What the window asks of the model thread (jobs) and what it hears back (outcomes): plain data.

Jobs run one at a time, in the order posted; a reply or summary owns the model while it runs and
can be stopped through its cancel event (see `host.ModelHost`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from assistant.settings import Settings

REPLY_KINDS = ("send", "regenerate", "edit", "continue")


@dataclass(frozen=True)
class LoadJob:
    settings: Settings  # model (a path, a library id, or "" for the embedded one) and options
    # at start-up: if this model does not load, load the embedded one instead (with a notice)
    fallback: bool = False
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


@dataclass(frozen=True)
class MeterJob:
    """Count the open conversation against the loaded model's window, generating nothing."""

    conversation_id: int


@dataclass(frozen=True, eq=False)
class ServeJob:
    """Run the local server's next request (one per request queued at `gate`, so server
    requests take their turn among the app's own replies)."""

    gate: Any  # assistant.server.gate.Gate


STOPPABLE = (ReplyJob, SummaryJob)  # own the model for a while; Stop (Esc) ends them


@dataclass(frozen=True)
class LoadOutcome:
    """How a load ended. `info` is the model loaded now, whichever it is: the one asked for, the
    previous one kept because the new one failed, or the embedded one after a start-up failure;
    None when no model is loaded. `problem` says why the model asked for is not loaded."""

    job: LoadJob
    info: Any = None  # ModelInfo
    settings: Settings | None = None  # the settings the loaded model was loaded with
    n_ctx: int = 0  # its context size (may be less than asked when memory is short)
    note: str = ""  # what loading adjusted (fewer GPU layers, less context)
    problem: str = ""
    gpus: tuple[str, ...] = ()  # the GPUs found (names), for the settings' GPU line

    @property
    def switched(self) -> bool:
        return self.info is not None and not self.problem


@dataclass(frozen=True)
class Failure:
    """A job that ended with an error: the sentence for the user, whether it had already stored
    something (a reply's user message), and the error's class name (to offer a way out)."""

    message: str
    stored: bool = False
    kind: str = ""
