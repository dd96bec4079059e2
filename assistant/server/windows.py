"""Long conversations over a stateless API: the request's messages fitted like the app's.

A client resends the whole history every turn. Each request goes through the same window
fitting as the app (`assistant.conversation.window.fit_window`) with the server's policy:
older turns are dropped or folded into a running summary, the system prompt is kept, and only
the 'stop' policy or a single message too long for the window is refused.

So that follow-ups stay fast, the window start (and the running summary) of a conversation is
kept between its requests: a conversation is recognized by its messages, as a chain of hashes
over the system prompt and each message in turn. The state of a request is stored under the
hash of its whole history; the next request of the same conversation begins with that history
(plus the reply and a new message), so the longest stored prefix finds it. The start then stays
where it was until the window must slide, the prompt prefix stays the same, and the engine
reuses its KV cache instead of reading the conversation again. A small LRU holds the states.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from assistant.conversation.rolling_summary import fold_into_summary
from assistant.conversation.window import PromptCounter, Window, fit_window
from assistant.types import SYSTEM, ContextReport, Message, Policy

Summarize = Callable[[object, str, Sequence[Message], threading.Event | None], str | None]


@dataclass(frozen=True)
class _State:
    start: int  # index in the history of the first message sent
    summary: str = ""
    summary_upto: int = 0


@dataclass(frozen=True)
class Fitted:
    """What is sent for one request (its prompt tokens too), and the report the response
    carries."""

    window: Window
    report: ContextReport
    tokens: list[int]
    label: str  # the conversation, for the KV cache (its state is saved under this name)


def split_system(messages: Sequence[Message]) -> tuple[str, list[Message]]:
    """The leading system messages (joined) and the rest of the conversation."""
    n = 0
    while n < len(messages) and messages[n].role == SYSTEM:
        n += 1
    return "\n\n".join(m.content for m in messages[:n]), list(messages[n:])


def chain(system: str, history: Sequence[Message]) -> list[bytes]:
    """digests[k]: the conversation's first k messages (and its system prompt)."""
    h = hashlib.blake2b(system.encode("utf-8", "surrogatepass"), digest_size=16)
    digests = [h.digest()]
    for message in history:
        h = hashlib.blake2b(digests[-1], digest_size=16)
        h.update(message.role.encode() + b"\x00")
        h.update(message.content.encode("utf-8", "surrogatepass"))
        digests.append(h.digest())
    return digests


class ConversationWindows:
    """Fits each request's messages into the window and remembers where each window starts.

    `fit` runs on the model's owner thread (summarizing runs the model); the LRU is locked so
    that a preview from another thread would be safe too."""

    def __init__(
        self,
        policy: Policy = Policy.DROP,
        *,
        capacity: int = 64,
        slide: float = 0.33,
        summarize: Summarize = fold_into_summary,
    ):
        self.policy = policy
        self.capacity = capacity
        self.slide = slide
        self.summarize = summarize
        self._states: OrderedDict[bytes, _State] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._states)

    def fit(
        self,
        runtime,
        messages: Sequence[Message],
        max_tokens: int,
        cancel: threading.Event | None = None,
    ) -> Fitted | None:
        """The window for this request (ContextOverflowError when it cannot be fitted); None
        when `cancel` was set while older turns were being summarized."""
        system, history = split_system(messages)
        digests = chain(system, history)
        key, state = self._find(digests)
        n_ctx = runtime.n_ctx
        reserve = max(16, min(max_tokens, n_ctx // 4))
        start, summary, upto = state.start, state.summary, state.summary_upto
        counter = PromptCounter(runtime)
        for _ in range(4):
            window = fit_window(
                history,
                system=system,
                counter=counter,
                n_ctx=n_ctx,
                reserve=reserve,
                policy=self.policy,
                start=start,
                summary=summary,
                summary_upto=upto,
                slide=self.slide,
            )
            pending = window.pending_summary
            if self.policy is not Policy.SUMMARIZE or pending is None:
                break
            folded = self.summarize(runtime, summary, history[pending[0] : pending[1]], cancel)
            if folded is None:
                return None
            summary, start, upto = folded, window.start, window.start
        self._remember(key, digests[-1], _State(window.start, summary, upto))
        report = ContextReport(
            n_ctx=n_ctx,
            used=window.used,
            reserve=reserve,
            dropped_messages=window.dropped,
            summarized_messages=window.summarized,
            system_kept=window.system_kept,
            truncated_message=window.truncated,
        )
        label = "api#" + digests[min(1, len(history))].hex()  # its system prompt and first turn
        return Fitted(window, report, counter.prompt_tokens(window.messages), label)

    def _find(self, digests: list[bytes]) -> tuple[bytes | None, _State]:
        """The stored state of the longest prefix of this conversation (most recent use)."""
        with self._lock:
            for k in range(len(digests) - 1, 0, -1):
                state = self._states.get(digests[k])
                if state is not None and state.start <= k and state.summary_upto <= k:
                    self._states.move_to_end(digests[k])
                    return digests[k], state
        return None, _State(0)

    def _remember(self, old: bytes | None, new: bytes, state: _State) -> None:
        with self._lock:
            if old is not None and old != new:
                self._states.pop(old, None)  # the conversation moved on: one entry each
            self._states[new] = state
            self._states.move_to_end(new)
            while len(self._states) > self.capacity:
                self._states.popitem(last=False)
