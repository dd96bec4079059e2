"""How a reply ended, in one place: what is stored, what is shown, what the user is told."""

from __future__ import annotations

from dataclasses import dataclass

# The engine's finish reason -> the stored message status.
STATUS_BY_FINISH = {
    "stop": "complete",
    "length": "length",
    "cancelled": "cancelled",
    "error": "error",
}
# A stored status -> the words under the message ('complete' shows nothing). 'interrupted' is
# set when the store is opened and finds a reply whose writer was killed mid-stream.
STATUS_TEXT = {
    "streaming": "writing…",
    "cancelled": "stopped",
    "length": "stopped at the length limit",
    "interrupted": "interrupted: the app closed while writing",
    "error": "failed",
}


@dataclass(frozen=True)
class Outcome:
    finish_reason: str  # stop | length | cancelled | error
    status: str  # what the message row keeps
    notice: str  # a sentence for the user, or ""


def outcome(
    finish_reason: str | None,
    *,
    context_full: bool = False,
    max_tokens: int = 0,
    notice: str = "",
) -> Outcome:
    """Map the engine's finish reason to the stored status and the notice shown with the reply.

    `finish_reason` None means the stream never reported one (it raised): an error.
    `notice` is what the window already had to say (turns that left it); the length notice is
    appended.
    """
    finish = finish_reason if finish_reason in STATUS_BY_FINISH else "error"
    if finish == "length":
        why = (
            "the end of the context window"
            if context_full
            else f"the {max_tokens}-token reply limit"
        )
        notice = _join(notice, f"The reply stopped at {why}; continue it to go on.")
    return Outcome(finish, STATUS_BY_FINISH[finish], notice)


def _join(first: str, second: str) -> str:
    return f"{first} {second}" if first else second
