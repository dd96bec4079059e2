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
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import llama_cpp
import numpy as np

from . import llama_log
from .chat_format import ChatFormat, JinjaChatFormat, PlainChatFormat
from .errors import ContextOverflowError, GenerationError, ModelLoadError
from .types import LoadOptions, Message, ModelInfo, ReplyStats, SamplingOptions

GGUF_MAGIC = b"GGUF"


def default_threads() -> int:
    """Generation is memory-bound: use the physical cores (about half the logical ones above 4)."""
    count = os.cpu_count() or 2
    return count if count <= 4 else count // 2


def check_gguf_file(path: Path) -> None:
    """Fail early, naming the file, for what llama.cpp would only call 'failed to load'."""
    if not path.exists():
        raise ModelLoadError(f"Model file not found: {path}")
    if path.is_dir():
        raise ModelLoadError(f"{path} is a folder; choose a .gguf model file.")
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        raise ModelLoadError(f"Cannot read the model file {path}: {exc.strerror}.") from None
    if magic != GGUF_MAGIC:
        hint = ""
        if magic[:2] == b"PK" or path.suffix in {".pt", ".pth", ".bin", ".safetensors"}:
            hint = " It looks like a PyTorch checkpoint: convert it with `assistant convert`."
        raise ModelLoadError(
            f"{path} is not a GGUF model file (it starts with {magic!r}, not b'GGUF').{hint}"
        )


def file_type_name(value: str | int | None) -> str:
    if value in (None, ""):
        return "unknown"
    try:
        import gguf

        return gguf.LlamaFileType(int(value)).name.removeprefix("MOSTLY_")
    except (ValueError, ImportError):
        return f"type {value}"


class ModelRuntime:
    """A loaded GGUF model: metadata, tokenizer, chat template and the streaming generator."""

    def __init__(self, path: str | Path, options: LoadOptions | None = None):
        self.path = Path(path).expanduser()
        self.options = options or LoadOptions()
        self._llm = self._load()
        self.chat_format = self._make_chat_format()
        self.info = self._read_info()
        self._vocab = self._llm._model.vocab
        self._add_bos = bool(self._llm._model.add_bos_token())
        bos = self._llm.token_bos()
        self._bos_text = self._llm._model.token_get_text(bos) if bos >= 0 else ""

    # -- loading ---------------------------------------------------------------------------
    def _load(self) -> llama_cpp.Llama:
        check_gguf_file(self.path)
        if self.options.n_gpu_layers < -1:  # fit.AUTO: as many layers as the free VRAM holds
            self.options = replace(self.options, n_gpu_layers=self._auto_gpu_layers())
        opts = self.options
        marker = llama_log.mark()
        try:
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
            reason = llama_log.reason_since(marker) or str(exc)
            raise ModelLoadError(f"Could not load the model {self.path}: {reason}.") from None

    def _auto_gpu_layers(self) -> int:
        from .fit import auto_gpu_layers
        from .gguf_info import read_gguf_info

        try:
            info = read_gguf_info(self.path)
        except Exception:  # noqa: BLE001 - llama.cpp's own load will name the problem
            return 0
        opts = self.options
        plan = auto_gpu_layers(info, opts.n_ctx, n_batch=opts.n_batch, flash_attn=opts.flash_attn)
        return plan.n_gpu_layers

    def _read_info(self) -> ModelInfo:
        md = dict(self._llm.metadata)
        arch = md.get("general.architecture", "unknown")
        n_layers = int(md.get(f"{arch}.block_count", 0) or 0)
        gpu = llama_cpp.llama_supports_gpu_offload()
        wanted = self.options.n_gpu_layers
        gpu_layers = 0 if not gpu else (n_layers + 1 if wanted < 0 else min(wanted, n_layers + 1))
        template = md.get("tokenizer.chat_template")
        return ModelInfo(
            path=str(self.path),
            name=md.get("general.name") or self.path.stem,
            architecture=arch,
            n_params=int(self._llm._model.n_params()),
            size_bytes=self.path.stat().st_size,
            quantization=file_type_name(md.get("general.file_type")),
            n_ctx_train=int(self._llm._model.n_ctx_train()),
            n_layers=n_layers,
            chat_template=template,
            template_name=self.chat_format.name,
            gpu_layers=gpu_layers,
            gpu_supported=bool(gpu),
            metadata=md,
        )

    def _make_chat_format(self) -> ChatFormat:
        template = self._llm.metadata.get("tokenizer.chat_template")
        if not template:
            return PlainChatFormat()
        model = self._llm._model
        eos, bos = self._llm.token_eos(), self._llm.token_bos()
        return JinjaChatFormat(
            template,
            bos_token=model.token_get_text(bos) if bos >= 0 else "",
            eos_token=model.token_get_text(eos) if eos >= 0 else "",
        )

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
        """A generator of text pieces; see `ReplyStream`."""
        if prompt and isinstance(prompt[0], Message):
            prompt = self.prompt_tokens(prompt)  # type: ignore[arg-type]
        return ReplyStream(self, list(prompt), sampling or SamplingOptions(), cancel)

    def complete(self, prompt, sampling: SamplingOptions | None = None) -> str:
        """Non-streaming callers join the same generator."""
        return self.stream(prompt, sampling).join()


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
            tail = matcher.flush() if finish != "stop" else ""
            if tail:
                self.text += tail
                yield tail
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
        from .stop_matcher import StopMatcher

        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stops = StopMatcher(stops)

    def feed(self, data: bytes) -> tuple[str, bool]:
        return self._stops.feed(self._decoder.decode(data))

    def flush(self) -> str:
        # Bytes of a character cut off by the end of generation are dropped, not shown as U+FFFD.
        return self._stops.flush()
