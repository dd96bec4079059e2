"""One streamed reply: the engine's token loop, with a cancel flag checked between tokens and
between prompt batches, stop strings, and the reply's figures (`ReplyStats`)."""

from __future__ import annotations

import codecs
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence

import llama_cpp

from assistant.errors import ContextOverflowError, GenerationError
from assistant.types import ReplyStats, SamplingOptions


class PieceStream:
    """The iterator protocol shared by every streamed reply: subclasses set `self._iter`."""

    _iter: Iterator[str]

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        return next(self._iter)

    def close(self) -> None:
        """Stop consuming: the reply ends as cancelled, keeping what was generated."""
        self._iter.close()


class ReplyStream(PieceStream):
    """Iterate for text pieces; `stats`, `text` and `context_full` are set when it ends.

    `cancel()` (or setting the shared event) stops it between two tokens with finish reason
    'cancelled'; what was generated so far is kept in `text`.
    """

    def __init__(
        self,
        runtime,  # the ModelRuntime that made this stream
        prompt: list[int],
        sampling: SamplingOptions,
        cancel: threading.Event | None,
        grammar: llama_cpp.LlamaGrammar | None = None,
        on_progress: Callable[[int, int], None] | None = None,
        label: str | None = None,
        exact: bool = False,
    ):
        self.runtime = runtime
        self.prompt = prompt
        self.sampling = sampling
        self.grammar = grammar
        self.on_progress = on_progress
        self.label = label  # whose cache this becomes (a conversation), see PromptCache
        self.exact = exact  # read again what a shift would reuse
        self.cancel_event = cancel or threading.Event()
        self.text = ""
        self.stats: ReplyStats | None = None
        self.context_full = False
        self.started_at = 0.0  # time.perf_counter() when the engine started on the prompt
        self._iter = self._run()

    def cancel(self) -> None:
        self.cancel_event.set()

    def join(self) -> str:
        for _ in self:
            pass
        return self.text

    @property
    def finish_reason(self) -> str | None:
        return self.stats.finish_reason if self.stats else None

    def _run(self) -> Iterator[str]:
        rt, s, prompt = self.runtime, self.sampling, self.prompt
        llm = rt._llm
        n_ctx = llm.n_ctx()
        if len(prompt) >= n_ctx:
            raise ContextOverflowError(
                f"The prompt is {len(prompt)} tokens; the context window holds {n_ctx}.",
                needed=len(prompt),
                limit=n_ctx,
            )
        room = n_ctx - len(prompt)
        limit = min(s.max_tokens, room) if s.max_tokens and s.max_tokens > 0 else room
        if self.cancel_event.is_set():  # stopped before the prompt was even evaluated
            self.stats = ReplyStats(prompt_tokens=len(prompt), finish_reason="cancelled")
            return
        t0 = self.started_at = time.perf_counter()
        use = rt.cache.prepare(prompt, label=self.label, exact=self.exact)
        cached = use.cached
        llm.set_seed(s.seed if s.seed is not None else random.randrange(1, 2**31))
        stops = tuple(s.stop) + rt.chat_format.stop_strings
        matcher = _StopAndDecode(stops)
        finish, n = "length", 0
        t_read = time.perf_counter()
        t_first = t_last = t0
        cache_figures = {
            "cached_tokens": cached,
            "shifted_tokens": use.shifted,
            "reread_tokens": use.reread,
            "restored_tokens": use.restored,
            "restore_s": use.restore_s,
        }
        if not self._evaluate_prompt(llm, prompt, cached):  # stopped while reading the prompt
            rt.cache.forget_live()  # the cache holds part of this prompt only
            end = time.perf_counter()
            self.stats = ReplyStats(
                prompt_tokens=len(prompt),
                ttft_s=round(end - t0, 4),
                total_s=round(end - t0, 4),
                prompt_s=round(end - t_read, 4),
                finish_reason="cancelled",
                **cache_figures,
            )
            return
        tokens = llm.generate(
            prompt,
            top_k=s.top_k,
            top_p=s.top_p,
            min_p=s.min_p,
            temp=max(s.temperature, 0.0),
            repeat_penalty=s.repeat_penalty,
            logits_processor=(
                llama_cpp.LogitsProcessorList([rt.ban_end_of_generation]) if s.ignore_eos else None
            ),
            grammar=self.grammar,
        )
        try:
            for token in tokens:
                t_last = time.perf_counter()
                if n == 0:
                    t_first = t_last
                if self.cancel_event.is_set():
                    finish = "cancelled"
                    break
                if rt.is_end_of_generation(token):
                    finish = "stop"
                    break
                n += 1
                piece, stopped = matcher.feed(llm.detokenize([token]))
                if piece:
                    self.text += piece
                    yield piece
                if stopped:
                    finish = "stop"
                    break
                if n >= limit:
                    self.context_full = limit == room
                    break
                if self.cancel_event.is_set():
                    finish = "cancelled"
                    break
            else:
                finish = "stop"
            # Text held back as a possible start of a stop string was not one after all (a
            # matched stop string leaves nothing held): it belongs to the reply.
            tail = matcher.flush()
            if tail:
                self.text += tail
                yield tail
        except GeneratorExit:  # the consumer closed the stream: a stop, not a length limit
            finish = "cancelled"
            raise
        except RuntimeError as exc:
            finish = "error"
            raise GenerationError(f"llama.cpp failed while generating: {exc}") from None
        finally:
            tokens.close()
            end = time.perf_counter()
            decode = t_last - t_first
            ttft = t_first - t0 if n else end - t0
            self.stats = ReplyStats(
                prompt_tokens=len(prompt),
                completion_tokens=n,
                ttft_s=round(ttft, 4),
                tokens_per_s=round((n - 1) / decode, 2) if n > 1 and decode > 0 else 0.0,
                total_s=round(end - t0, 4),
                finish_reason=finish if finish != "length" or n else "length",
                prompt_s=round((t_first if n else end) - t_read, 4),
                **cache_figures,
            )

    def _evaluate_prompt(self, llm: llama_cpp.Llama, prompt: list[int], cached: int) -> bool:
        """Evaluate all but the last prompt token one batch at a time, checking the cancel flag
        between batches, so a stop also takes effect while a long prompt is read (which takes
        minutes for a full window on a slow CPU). `generate` then finds this prefix in the cache
        and evaluates only the last token. False if cancelled (the cache keeps what was read)."""
        end, step = len(prompt) - 1, llm.n_batch
        report = self.on_progress or (lambda _done, _total: None)
        if end - cached <= step:  # one batch or less: generate() reads it as fast
            report(0, len(prompt) - cached)
            return True
        if cached and llm._ctx.kv_cache_seq_rm(-1, cached, -1):
            llm.n_tokens = cached
        else:  # nothing reusable, or a cache that cannot drop a suffix (recurrent models)
            llm.reset()
            cached = 0
        total = len(prompt) - cached
        report(0, total)
        for i in range(cached, end, step):
            if self.cancel_event.is_set():
                return False
            try:
                llm.eval(prompt[i : min(end, i + step)])
            except RuntimeError as exc:
                raise GenerationError(f"llama.cpp failed while reading the prompt: {exc}") from None
            report(min(end, i + step) - cached, total)
        return True


class _StopAndDecode:
    """Incremental UTF-8 decoding (a character may span tokens) followed by stop matching."""

    def __init__(self, stops: Sequence[str]):
        from assistant.engine.stop_matcher import StopMatcher

        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stops = StopMatcher(stops)

    def feed(self, data: bytes) -> tuple[str, bool]:
        return self._stops.feed(self._decoder.decode(data))

    def flush(self) -> str:
        # Bytes of a character cut off by the end of generation are dropped, not shown as U+FFFD.
        return self._stops.flush()
