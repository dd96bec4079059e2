"""The one model runtime: owns a `llama_cpp.Llama` and streams text pieces with a cancel flag.

The CLI, the chat manager, the summarizer, the benchmarks and the Qt worker all consume
`ModelRuntime.stream(...)`. One runtime is driven from one thread at a time.
"""

from __future__ import annotations

import codecs
import os
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import llama_cpp
import numpy as np

from assistant.engine import llama_log
from assistant.engine.chat_format import (
    CHAT_FORMATS,
    CHOSEN_PLAIN_NAME,
    ChatFormat,
    JinjaChatFormat,
    PlainChatFormat,
)
from assistant.errors import (
    ChatFormatError,
    ContextOverflowError,
    GenerationError,
    InvalidInputError,
    LoadCancelledError,
    ModelLoadError,
)
from assistant.library.fit import auto_gpu_layers
from assistant.library.gguf_header import GGUFInfo, ModelInfo, check_vocabulary, read_gguf_info
from assistant.settings import default_threads
from assistant.types import AUTO_GPU_LAYERS, LoadOptions, Message, ReplyStats, SamplingOptions

# llama-cpp-python builds the model parameters inside `Llama.__init__` and offers no way to pass
# llama.cpp's load progress callback; it is installed by wrapping the default-parameters
# function for the duration of one load (one load at a time: this lock).
_LOAD_LOCK = threading.Lock()


class ModelRuntime:
    """A loaded GGUF model: metadata, tokenizer, chat template and the streaming generator."""

    def __init__(
        self,
        path: str | Path,
        options: LoadOptions | None = None,
        *,
        header: GGUFInfo | None = None,
        cancel: threading.Event | None = None,
        progress: Callable[[float], None] | None = None,
    ):
        """Load `path`; `header` is its GGUFInfo when the caller has already read it.

        `progress` receives llama.cpp's load progress (0 to 1); setting `cancel` stops the load
        at its next progress step with LoadCancelledError."""
        self.path = Path(path).expanduser()
        self.options = options or LoadOptions()
        self._cancel = cancel
        self._progress = progress
        # The one header reader: it names the file and the reason for any file it cannot use
        # (ModelLoadError) before llama.cpp sees it, and the model's info comes from it.
        self.header = header or read_gguf_info(self.path)
        self._llm = self._load()
        try:
            self.chat_format = self._make_chat_format()
        except (ModelLoadError, InvalidInputError):
            self.close()  # the weights are loaded: free them before refusing the model
            raise
        self.info = self._read_info()
        self._vocab = self._llm._model.vocab
        self._eog_tokens: np.ndarray | None = None  # filled on first use (ignore_eos)
        self._add_bos = bool(self._llm._model.add_bos_token())
        bos = self._llm.token_bos()
        self._bos_text = self._llm._model.token_get_text(bos) if bos >= 0 else ""

    # -- loading ---------------------------------------------------------------------------
    def _load(self) -> llama_cpp.Llama:
        # a number out of range (a negative batch, a million threads) crashes llama.cpp: refuse
        # it here, whoever the caller (OutOfRangeError names the field, value and range)
        self.options = self.options.validated()
        if self.options.n_gpu_layers <= AUTO_GPU_LAYERS:  # as many as the free VRAM holds
            self.options = replace(self.options, n_gpu_layers=self._auto_gpu_layers())
        opts = self.options
        if opts.chat_format not in CHAT_FORMATS:
            raise InvalidInputError(
                f"Unknown chat format {opts.chat_format!r}: choose {' or '.join(CHAT_FORMATS)}."
            )
        # a token listed twice makes llama.cpp abort the process: refused here, by name
        check_vocabulary(self.path)
        marker = llama_log.mark()
        try:
            with self._load_progress():
                return llama_cpp.Llama(
                    model_path=str(self.path),
                    n_ctx=opts.n_ctx,
                    n_batch=opts.n_batch,
                    n_threads=opts.n_threads or default_threads(),
                    n_threads_batch=opts.n_threads or os.cpu_count() or default_threads(),
                    n_gpu_layers=opts.n_gpu_layers,
                    flash_attn=opts.flash_attn,
                    verbose=False,
                )
        except (ValueError, RuntimeError, OSError, MemoryError) as exc:
            if self._cancel is not None and self._cancel.is_set():
                raise LoadCancelledError(f"Loading {self.path.name} was cancelled.") from None
            reason = llama_log.reason_since(marker) or _exception_reason(exc)
            raise ModelLoadError(f"Could not load the model {self.path}: {reason}.") from None

    @contextmanager
    def _load_progress(self) -> Iterator[None]:
        """llama.cpp calls back while it reads the weights: report progress, and abort the
        load (by returning False) once `cancel` is set."""
        if self._cancel is None and self._progress is None:
            yield
            return

        def on_progress(fraction: float, _user_data) -> bool:
            if self._progress is not None:
                self._progress(float(fraction))
            return not (self._cancel is not None and self._cancel.is_set())

        callback = llama_cpp.llama_progress_callback(on_progress)  # kept alive for the load
        module = llama_cpp.llama_cpp
        original = module.llama_model_default_params

        def params_with_progress():
            params = original()
            params.progress_callback = callback
            return params

        with _LOAD_LOCK:
            module.llama_model_default_params = params_with_progress
            try:
                yield
            finally:
                module.llama_model_default_params = original

    def _auto_gpu_layers(self) -> int:
        opts = self.options
        plan = auto_gpu_layers(
            self.header, opts.n_ctx, n_batch=opts.n_batch, flash_attn=opts.flash_attn
        )
        return plan.n_gpu_layers

    def _read_info(self) -> ModelInfo:
        gpu = bool(llama_cpp.llama_supports_gpu_offload())
        wanted, n_layers = self.options.n_gpu_layers, self.header.n_layers
        gpu_layers = 0 if not gpu else (n_layers + 1 if wanted < 0 else min(wanted, n_layers + 1))
        return ModelInfo(self.header, self.chat_format.name, gpu_layers, gpu)

    def _make_chat_format(self) -> ChatFormat:
        """The model's own template, tried once on a short conversation (ModelLoadError, naming
        the model and the problem, when it fails); the plain transcript when the model has no
        template or when the user chose it (`LoadOptions.chat_format`)."""
        if self.options.chat_format == "plain":
            return PlainChatFormat(CHOSEN_PLAIN_NAME)
        template = self.header.chat_template or self._llm.metadata.get("tokenizer.chat_template")
        if not template:
            return PlainChatFormat()
        model = self._llm._model
        eos, bos = self._llm.token_eos(), self._llm.token_bos()
        try:
            chat_format = JinjaChatFormat(
                template,
                bos_token=model.token_get_text(bos) if bos >= 0 else "",
                eos_token=model.token_get_text(eos) if eos >= 0 else "",
                model=self.path.name,
            )
            chat_format.probe()
        except ChatFormatError as exc:
            raise ModelLoadError(
                f"{exc} Choose the plain transcript format to use the model anyway "
                "(--chat-format plain, or Chat format in Settings)."
            ) from None
        return chat_format

    def close(self) -> None:
        if self._llm is not None:
            self._llm.close()
            self._llm = None

    # -- tokens ----------------------------------------------------------------------------
    @property
    def n_ctx(self) -> int:
        return self._llm.n_ctx()

    def tokenize(self, text: str, *, special: bool = False) -> list[int]:
        return self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=special)

    def detokenize(self, tokens: Sequence[int]) -> str:
        return self._llm.detokenize(list(tokens)).decode("utf-8", errors="replace")

    def render(self, messages: Sequence[Message]) -> str:
        """The exact prompt text for these messages (the model's own chat template)."""
        return self.chat_format.render(messages)

    def prompt_tokens(self, messages: Sequence[Message]) -> list[int]:
        text = self.render(messages)
        tokens = self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        if self._add_bos and not (self._bos_text and text.startswith(self._bos_text)):
            tokens.insert(0, self._llm.token_bos())
        return tokens

    def count_prompt(self, messages: Sequence[Message]) -> int:
        return len(self.prompt_tokens(messages))

    def is_end_of_generation(self, token: int) -> bool:
        return bool(llama_cpp.llama_vocab_is_eog(self._vocab, token))

    def ban_end_of_generation(self, _input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """A logits processor for `ignore_eos`: end-of-generation tokens are never sampled."""
        if self._eog_tokens is None:
            n_vocab = llama_cpp.llama_vocab_n_tokens(self._vocab)
            self._eog_tokens = np.array(
                [t for t in range(n_vocab) if self.is_end_of_generation(t)], dtype=np.int64
            )
        scores[self._eog_tokens] = -np.inf
        return scores

    def reusable_prefix(self, tokens: Sequence[int]) -> int:
        """Leading prompt tokens the KV cache already holds (what `Llama.generate` reuses)."""
        llm = self._llm
        if llm.n_tokens == 0 or not tokens:
            return 0
        cached = llm.input_ids[: llm.n_tokens]
        n = min(len(cached), len(tokens))
        diff = np.flatnonzero(cached[:n] != np.asarray(tokens[:n], dtype=cached.dtype))
        common = int(diff[0]) if diff.size else n
        if common == len(tokens):
            exact = llm.n_tokens == len(tokens) and not llm._requires_eval
            return common if exact else common - 1
        return common

    # -- generation ------------------------------------------------------------------------
    def stream(
        self,
        prompt: Sequence[int] | Sequence[Message],
        sampling: SamplingOptions | None = None,
        cancel: threading.Event | None = None,
    ) -> ReplyStream:
        """A generator of text pieces; see `ReplyStream`. The sampling options are checked
        against their ranges whoever built them (a stored conversation, a request): nothing out
        of range reaches llama.cpp, and max_tokens is never 'unlimited'."""
        sampling = (sampling or SamplingOptions()).validated()
        if prompt and isinstance(prompt[0], Message):
            prompt = self.prompt_tokens(prompt)  # type: ignore[arg-type]
        return ReplyStream(self, list(prompt), sampling, cancel)

    def complete(self, prompt, sampling: SamplingOptions | None = None) -> str:
        """Non-streaming callers join the same generator."""
        return self.stream(prompt, sampling).join()


def _exception_reason(exc: BaseException) -> str:
    """A load failure's reason when llama.cpp logged none (llama-cpp-python's own errors)."""
    if isinstance(exc, MemoryError):  # e.g. the logits buffer of a huge batch
        return f"not enough memory ({exc})" if str(exc) else "not enough memory"
    return str(exc)


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
        runtime: ModelRuntime,
        prompt: list[int],
        sampling: SamplingOptions,
        cancel: threading.Event | None,
    ):
        self.runtime = runtime
        self.prompt = prompt
        self.sampling = sampling
        self.cancel_event = cancel or threading.Event()
        self.text = ""
        self.stats: ReplyStats | None = None
        self.context_full = False
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
        cached = rt.reusable_prefix(prompt)
        llm.set_seed(s.seed if s.seed is not None else random.randrange(1, 2**31))
        stops = tuple(s.stop) + rt.chat_format.stop_strings
        matcher = _StopAndDecode(stops)
        finish, n = "length", 0
        t0 = time.perf_counter()
        t_first = t_last = t0
        if not self._evaluate_prompt(llm, prompt, cached):  # stopped while reading the prompt
            self.stats = ReplyStats(
                prompt_tokens=len(prompt),
                cached_tokens=cached,
                ttft_s=round(time.perf_counter() - t0, 4),
                total_s=round(time.perf_counter() - t0, 4),
                finish_reason="cancelled",
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
            self.stats = ReplyStats(
                prompt_tokens=len(prompt),
                cached_tokens=cached,
                completion_tokens=n,
                ttft_s=round(t_first - t0, 4) if n else round(end - t0, 4),
                tokens_per_s=round((n - 1) / decode, 2) if n > 1 and decode > 0 else 0.0,
                total_s=round(end - t0, 4),
                finish_reason=finish if finish != "length" or n else "length",
            )

    def _evaluate_prompt(self, llm: llama_cpp.Llama, prompt: list[int], cached: int) -> bool:
        """Evaluate all but the last prompt token one batch at a time, checking the cancel flag
        between batches, so a stop also takes effect while a long prompt is read (which takes
        minutes for a full window on a slow CPU). `generate` then finds this prefix in the cache
        and evaluates only the last token. False if cancelled (the cache keeps what was read)."""
        end, step = len(prompt) - 1, llm.n_batch
        if end - cached <= step:  # one batch or less: generate() reads it as fast
            return True
        if cached and llm._ctx.kv_cache_seq_rm(-1, cached, -1):
            llm.n_tokens = cached
        else:  # nothing reusable, or a cache that cannot drop a suffix (recurrent models)
            llm.reset()
            cached = 0
        for i in range(cached, end, step):
            if self.cancel_event.is_set():
                return False
            try:
                llm.eval(prompt[i : min(end, i + step)])
            except RuntimeError as exc:
                raise GenerationError(f"llama.cpp failed while reading the prompt: {exc}") from None
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
