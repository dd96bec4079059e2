"""The running summary of turns that left the window (the 'summarize' policy)."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from assistant.engine.runtime import ModelRuntime
from assistant.types import SYSTEM, USER, Message, SamplingOptions

SUMMARY_INSTRUCTIONS = (
    "You maintain a running summary of a conversation between a user and an assistant. "
    "Merge the previous summary with the new messages into one concise summary of at most "
    "{words} words. Keep names, facts, numbers, decisions and open questions. Write only the "
    "summary."
)


def summary_prompt(previous: str, body: str, words: int) -> list[Message]:
    head = f"Previous summary:\n{previous or '(none)'}\n\nNew messages:\n"
    return [Message(SYSTEM, SUMMARY_INSTRUCTIONS.format(words=words)), Message(USER, head + body)]


def fold_into_summary(
    runtime: ModelRuntime,
    previous: str,
    leaving: Sequence[Message],
    cancel: threading.Event | None = None,
) -> str | None:
    """The previous summary merged with the messages that left the window.

    Returns None when `cancel` was set before the summary was complete: a half-written summary
    is never kept, and the stop takes effect within one token or prompt batch.
    """
    max_tokens = max(64, min(256, runtime.n_ctx // 8))
    words = int(max_tokens * 0.6)
    transcript = "\n\n".join(f"{m.role.title()}: {m.content}" for m in leaving)
    room = runtime.n_ctx - max_tokens - runtime.count_prompt(summary_prompt(previous, "", words))
    tokens = runtime.tokenize(transcript)
    if len(tokens) > room:  # keep both ends of what leaves; the middle is the least recent news
        keep = max(room - 16, 0)
        transcript = (
            runtime.detokenize(tokens[: keep // 2])
            + "\n[…]\n"
            + runtime.detokenize(tokens[len(tokens) - keep // 2 :])
        )
    sampling = SamplingOptions(temperature=0.2, max_tokens=max_tokens, seed=0)
    stream = runtime.stream(summary_prompt(previous, transcript, words), sampling, cancel)
    text = stream.join().strip()
    if stream.finish_reason == "cancelled":
        return None
    return text or previous
