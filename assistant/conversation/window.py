"""Fitting a conversation into the context window: pure logic around a token counter.

`fit_window` decides what is sent for the next reply. Rules:
- the system prompt is always kept (with the running summary appended under SUMMARIZE);
- the newest turn is always kept; older turns leave whole (a user message with its replies),
  oldest first;
- the window start is sticky: while the conversation still fits from the previous start, nothing
  moves, so the prompt prefix (and llama.cpp's KV cache) stays valid; when it must slide it frees
  a generous block at once (`slide` of the budget) so that many turns fit before the next slide.

Only what can fit is counted: the messages' own token counts, added up from the newest back,
rule out every start whose text alone passes the budget, and only the prompts of the starts left
are rendered and counted exactly, so a reply costs the same in a 100,000-message conversation as
in one that just fills the window.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from assistant.errors import ContextFullError, ContextOverflowError, MessageTooLongError
from assistant.types import SYSTEM, USER, Message, Policy

SUMMARY_HEADER = "Summary of the earlier part of this conversation (older messages are not shown):"
TRUNCATION_MARKER = (
    "\n\n[… {n} tokens removed from the middle of this message to fit the context window …]\n\n"
)


class TokenCounter(Protocol):
    """What fitting needs from a model: exact templated counts and a way to cut text by tokens."""

    def count_prompt(self, messages: Sequence[Message]) -> int:
        """Tokens of the fully templated prompt (generation prompt included)."""
        ...

    def tokenize(self, text: str) -> list[int]: ...

    def detokenize(self, tokens: Sequence[int]) -> str: ...


class PromptCounter:
    """A model's counter that keeps the prompts it tokenized, for one reply or request: fitting
    counts a start more than once, the window it settles on was counted already, and the reply
    then needs exactly those tokens (each would otherwise be rendered and tokenized again)."""

    def __init__(self, runtime):
        self.runtime = runtime
        self.n_ctx = runtime.n_ctx
        self._prompts: dict[tuple[Message, ...], list[int]] = {}

    def count_prompt(self, messages: Sequence[Message]) -> int:
        return len(self.prompt_tokens(messages))

    def prompt_tokens(self, messages: Sequence[Message]) -> list[int]:
        key = tuple(messages)
        tokens = self._prompts.get(key)
        if tokens is None:
            tokens = self._prompts[key] = self.runtime.prompt_tokens(messages)
        return tokens

    def tokenize(self, text: str) -> list[int]:
        return self.runtime.tokenize(text)

    def detokenize(self, tokens: Sequence[int]) -> str:
        return self.runtime.detokenize(tokens)


@dataclass(frozen=True)
class Window:
    """What is sent for one reply, and what was left out."""

    messages: tuple[Message, ...]
    start: int  # index in the history of the first message the model sees
    used: int  # prompt tokens
    n_ctx: int
    reserve: int
    summary_upto: int  # history[:summary_upto] is covered by the summary
    system_kept: bool  # the system prompt (if any) is in the window: true by construction
    truncated: bool = False
    sources: tuple = ()  # the document passages in the context block (see `retrieval`)

    @property
    def summarized(self) -> int:
        return min(self.summary_upto, self.start)

    @property
    def dropped(self) -> int:
        return self.start - self.summarized

    @property
    def pending_summary(self) -> tuple[int, int] | None:
        """History range that left the window and is not in the summary yet."""
        return (self.summary_upto, self.start) if self.start > self.summary_upto else None


def compose(
    system: str, summary: str, history: Sequence[Message], context_block: str = ""
) -> tuple[Message, ...]:
    """The message list sent to the model: system (+ summary, + the documents' context block)
    then the visible history."""
    content = system.strip()
    if summary.strip():
        content = (content + "\n\n" if content else "") + f"{SUMMARY_HEADER}\n{summary.strip()}"
    if context_block.strip():
        content = (content + "\n\n" if content else "") + context_block.strip()
    head = (Message(SYSTEM, content),) if content else ()
    return head + tuple(history)


def turn_starts(history: Sequence[Message]) -> list[int]:
    """Indices where a turn begins (a user message); index 0 always counts as a start."""
    starts = [i for i, m in enumerate(history) if m.role == USER]
    if not starts or starts[0] != 0:
        starts.insert(0, 0)
    return starts


def fit_window(
    history: Sequence[Message],
    *,
    system: str,
    counter: TokenCounter,
    n_ctx: int,
    reserve: int,
    policy: Policy = Policy.DROP,
    start: int = 0,
    summary: str = "",
    summary_upto: int = 0,
    slide: float = 0.33,
    truncate_oversize: bool = False,
    context_block: str = "",
) -> Window:
    """Choose the window for the next reply. Raises ContextOverflowError when nothing can fit.

    `context_block` (the documents' excerpts) goes after the system prompt and the summary,
    and is counted like them: it never leaves the window."""
    budget = n_ctx - reserve
    summary = summary if (policy is Policy.SUMMARIZE and summary_upto > 0) else ""
    summary_upto = summary_upto if summary else 0
    base = compose(system, summary, (), context_block)
    base_tokens = counter.count_prompt(base) if base else 0
    if base_tokens > budget:
        raise ContextOverflowError(
            f"The system prompt is {base_tokens} tokens but the {n_ctx}-token window keeps "
            f"{reserve} for the reply, leaving {budget}. Shorten the system prompt or raise "
            "the context size.",
            needed=base_tokens + reserve,
            limit=n_ctx,
        )
    if not history:
        return Window(base, 0, base_tokens, n_ctx, reserve, summary_upto, True)

    starts = turn_starts(history)
    last = starts[-1]
    start = starts[min(bisect.bisect_left(starts, min(start, last)), len(starts) - 1)]
    floor = _floor(history, counter, base_tokens, budget)

    def count(s: int) -> int:
        return counter.count_prompt(compose(system, summary, history[s:], context_block))

    def window(s: int, used: int) -> Window:
        msgs = compose(system, summary, history[s:], context_block)
        return Window(msgs, s, used, n_ctx, reserve, summary_upto, True)

    known_over = start < floor.first  # the text alone from `start` is over the budget
    used = floor.tokens if known_over else count(start)
    if used <= budget:
        return window(start, used)
    if policy is Policy.STOP:
        raise ContextFullError(
            f"This conversation has filled the {n_ctx}-token context window "
            f"({'more than ' if known_over else ''}{used} tokens plus {reserve} kept for the "
            "reply). Start a new chat, or switch the context policy to 'drop' or 'summarize' "
            "to keep going.",
            needed=used + reserve,
            limit=n_ctx,
        )

    target = budget - int(slide * budget)
    chosen = _first_fitting(
        [s for s in starts if s > start and floor.at(s) <= target], count, target
    ) or _first_fitting([s for s in starts if s > start and floor.at(s) <= budget], count, budget)
    if chosen is not None and chosen[0] == last and len(starts) > 1:
        # the previous exchange (the reply being answered) stays while the budget holds it,
        # even when that leaves less than `slide` free
        previous = starts[-2]
        if previous > start and floor.at(previous) <= budget:
            used = count(previous)
            if used <= budget:
                chosen = (previous, used)
    if chosen is not None:
        return window(*chosen)
    return _fit_oversize(
        history,
        last,
        system,
        summary,
        summary_upto,
        counter,
        n_ctx,
        reserve,
        truncate_oversize,
        context_block,
    )


@dataclass(frozen=True)
class _Floor:
    """Lower bounds of the prompt from each start, known back to where they pass the budget."""

    first: int  # starts before this are known to be over the budget
    tokens: int  # the bound from `first - 1` (over the budget), or from 0 when first == 0
    suffix: tuple[int, ...]  # suffix[i - first]: the bound from start i

    def at(self, start: int) -> int:
        return self.tokens if start < self.first else self.suffix[start - self.first]


def _floor(history: Sequence[Message], counter: TokenCounter, base: int, budget: int) -> _Floor:
    """Walk back from the newest message adding up the tokens of each message's text alone, and
    stop once they pass the budget: no start before that can fit, so neither the whole history
    nor any prompt much larger than the window is ever rendered or counted.

    The template adds role markers around every message, so a message costs at least its text
    (a template that leaves text out, such as an old turn's reasoning, makes the window slide
    a little earlier than it had to; it never overflows: what is sent is counted exactly)."""
    bounds: list[int] = []
    total = base
    for i in range(len(history) - 1, -1, -1):
        total += max(1, len(counter.tokenize(history[i].content)))
        if total > budget:
            bounds.reverse()
            return _Floor(i + 1, total, tuple(bounds))
        bounds.append(total)
    bounds.reverse()
    return _Floor(0, total, tuple(bounds))


def _first_fitting(candidates: list[int], count, limit: int) -> tuple[int, int] | None:
    """Smallest candidate start whose prompt fits `limit` (counts shrink as the start grows)."""
    lo, hi, found = 0, len(candidates) - 1, None
    while lo <= hi:
        mid = (lo + hi) // 2
        used = count(candidates[mid])
        if used <= limit:
            found, hi = (candidates[mid], used), mid - 1
        else:
            lo = mid + 1
    return found


def _fit_oversize(
    history, last, system, summary, summary_upto, counter, n_ctx, reserve, truncate, block=""
) -> Window:
    """The newest turn alone does not fit: explain with numbers, or cut the middle if allowed."""
    budget = n_ctx - reserve
    turn = list(history[last:])
    message = turn[0]
    msg_tokens = counter.tokenize(message.content)
    used = counter.count_prompt(compose(system, summary, turn, block))
    overhead = used - len(msg_tokens)
    room = budget - overhead
    if not truncate or room <= 64:
        raise MessageTooLongError(
            f"This message is {len(msg_tokens)} tokens, but the {n_ctx}-token window has room "
            f"for {max(room, 0)} (after the system prompt, the rest of this turn and {reserve} "
            "tokens kept for the reply). Shorten it, raise the context size, or summarize it as "
            "a document.",
            needed=used + reserve,
            limit=n_ctx,
        )
    keep = room - len(counter.tokenize(TRUNCATION_MARKER.format(n=len(msg_tokens))))
    for _ in range(8):  # detokenize/retokenize can shift counts slightly: shrink until it fits
        head, tail = msg_tokens[: keep // 2], msg_tokens[len(msg_tokens) - (keep - keep // 2) :]
        removed = len(msg_tokens) - len(head) - len(tail)
        text = (
            counter.detokenize(head)
            + TRUNCATION_MARKER.format(n=removed)
            + counter.detokenize(tail)
        )
        turn[0] = type(message)(message.role, text)
        used = counter.count_prompt(compose(system, summary, turn, block))
        if used <= budget:
            msgs = compose(system, summary, turn, block)
            return Window(msgs, last, used, n_ctx, reserve, summary_upto, True, truncated=True)
        keep -= used - budget + 8
    raise MessageTooLongError(  # pragma: no cover - the loop converges in practice
        f"This message could not be shortened to fit the {n_ctx}-token window.",
        needed=used + reserve,
        limit=n_ctx,
    )
