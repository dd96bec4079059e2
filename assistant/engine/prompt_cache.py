"""What the loaded model's KV cache holds, for which conversation, and how the next prompt reuses
it: the common prefix, blocks moved down after a slide (`kv_reuse`), or a saved state of the
conversation (`state_cache`) restored when the live cache belongs to another one.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import llama_cpp
import numpy as np

from assistant.engine import kv_cache
from assistant.engine.kv_reuse import ReusePlan, common_prefix, plan_reuse
from assistant.engine.state_cache import SavedState, StateCache

log = logging.getLogger(__name__)

# A saved state is restored only when it gives this many more tokens than the live cache.
MIN_RESTORE_GAIN = 32
# Caches shorter than this are not worth saving.
MIN_SAVED_TOKENS = 32
SEEN_LABELS = 16


@dataclass(frozen=True)
class CacheUse:
    """How one prompt used the cache (see ReplyStats for the meaning of each figure)."""

    cached: int = 0
    shifted: int = 0
    reread: int = 0
    restored: int = 0
    restore_s: float = 0.0


class PromptCache:
    """The live KV cache of one `Llama` and the saved states of the conversations it served."""

    def __init__(self, llm: llama_cpp.Llama, model_key: Callable[[], str]):
        self._llm = llm
        self._model_key = model_key
        self.states: StateCache | None = None
        self.label: str | None = None  # the conversation the live cache belongs to
        self._unsaved = False  # the live cache changed since it was last saved
        # the tokens each recent conversation's cache held when another one took the cache, so
        # that reading them again is reported (`reread`) even when no saved state is kept
        self._seen: OrderedDict[str, np.ndarray] = OrderedDict()

    # -- before a prompt is read ------------------------------------------------------------
    def prepare(
        self,
        prompt: Sequence[int],
        *,
        label: str | None,
        exact: bool = False,
    ) -> CacheUse:
        """Make the cache hold as much of `prompt`'s start as possible and say how."""
        llm = self._llm
        shift = kv_cache.can_shift(llm)
        live = kv_cache.cached_tokens(llm)
        plan = plan_reuse(live, prompt, shift=shift and not exact)
        if label != self.label:
            self.save()  # the live cache is about to serve another conversation: keep it
            if self.label is not None:
                self._seen[self.label] = live
                self._seen.move_to_end(self.label)
                while len(self._seen) > SEEN_LABELS:
                    self._seen.popitem(last=False)
        restored, restore_s = 0, 0.0
        # only a conversation's own prompt is worth a restore (not a summarizer's chunks)
        wanted = self.states is not None and label is not None
        if wanted and plan.reused + MIN_RESTORE_GAIN < len(prompt):
            found = self._best_saved(prompt, label, shift and not exact, plan.reused)
            if found is not None:
                state, saved_plan = found
                started = time.perf_counter()
                if self._restore(state):
                    plan, restored = saved_plan, saved_plan.reused
                else:  # refused or damaged: removed; use what the cache holds now (nothing
                    # after a refused restore, the live cache when the file did not even load)
                    live = kv_cache.cached_tokens(llm)
                    plan = plan_reuse(live, prompt, shift=shift and not exact)
                restore_s = time.perf_counter() - started
        kept = kv_cache.apply_plan(llm, plan, prompt)
        held = plan.held
        own = self._seen.get(label) if label is not None and label != self.label else None
        if own is not None:  # what this conversation's cache held before another one came
            held = max(held, plan_reuse(own, prompt, shift=shift and not exact).held)
        self.label = label
        self._unsaved = label is not None
        return CacheUse(
            cached=kept,
            shifted=plan.shifted if kept == plan.reused else 0,
            reread=max(0, held - kept),
            restored=min(restored, kept),
            restore_s=round(restore_s, 4),
        )

    def _best_saved(
        self, prompt: Sequence[int], label: str | None, shift: bool, live_reuse: int
    ) -> tuple[SavedState, ReusePlan] | None:
        """The saved state of this model that gives the most of `prompt`: the conversation's
        own state is planned in full (moves included), others by their common prefix only
        (many conversations share a system prompt; only their own state holds their turns)."""
        assert self.states is not None
        key = self._model_key()
        p = np.asarray(prompt, dtype=np.int64)
        best: tuple[SavedState, ReusePlan] | None = None
        for state in self.states.candidates(key):
            if state.label == label:
                plan = plan_reuse(state.tokens, prompt, shift=shift)
            else:
                n = min(common_prefix(state.tokens, p[: max(0, len(p) - 1)]), len(p) - 1)
                plan = ReusePlan(n, (), n, n, len(state.tokens))
            if plan.reused >= live_reuse + MIN_RESTORE_GAIN and (
                best is None or plan.reused > best[1].reused
            ):
                best = (state, plan)
        return best

    def _restore(self, state: SavedState) -> bool:
        assert self.states is not None
        data = self.states.load(state)
        if data is None or not kv_cache.restore(self._llm, state.tokens, data):
            log.warning("Ignored a saved conversation cache that did not load (%s).", state.path)
            self.states.forget(state)
            return False
        return True

    # -- after a reply ----------------------------------------------------------------------
    def save(self) -> bool:
        """Keep the live cache of the current conversation (in memory at once, on disk in the
        background). False when there is nothing new to keep."""
        if self.states is None or not self._unsaved or self.label is None:
            return False
        if self._llm.n_tokens < MIN_SAVED_TOKENS:
            return False
        try:
            tokens, data = kv_cache.snapshot(self._llm)
        except (MemoryError, OSError) as exc:
            log.warning("Could not keep the conversation cache: %s", exc)
            return False
        self.states.put(self._model_key(), self.label, tokens, data)
        self._unsaved = False
        return True

    def forget_live(self) -> None:
        """The live cache no longer matches its label (cleared, or used without a label)."""
        self.label = None
        self._unsaved = False
