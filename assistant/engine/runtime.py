"""The one model runtime: owns a `llama_cpp.Llama` and streams text pieces with a cancel flag.

The CLI, the chat manager, the summarizer, the benchmarks and the Qt worker all consume
`ModelRuntime.stream(...)`. One runtime is driven from one thread at a time.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import llama_cpp
import numpy as np

from assistant.engine import kv_cache, llama_log
from assistant.engine.chat_format import (
    CHAT_FORMATS,
    CHOSEN_PLAIN_NAME,
    ChatFormat,
    JinjaChatFormat,
    PlainChatFormat,
)
from assistant.engine.control_text import ControlText
from assistant.engine.kv_reuse import plan_reuse
from assistant.engine.prompt_cache import PromptCache
from assistant.engine.reply_stream import ReplyStream
from assistant.engine.state_cache import StateCache
from assistant.engine.state_cache import model_key as state_model_key
from assistant.errors import (
    ChatFormatError,
    InvalidInputError,
    LoadCancelledError,
    ModelLoadError,
)
from assistant.library.fit import auto_gpu_layers
from assistant.library.gguf_header import GGUFInfo, ModelInfo, check_vocabulary, read_gguf_info
from assistant.library.lora_check import check_adapter
from assistant.settings import default_threads
from assistant.types import AUTO_GPU_LAYERS, LoadOptions, Message, SamplingOptions

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
        self.cache = PromptCache(self._llm, self._state_key)
        self._key: str | None = None
        try:
            self.chat_format = self._make_chat_format()
        except (ModelLoadError, InvalidInputError):
            self.close()  # the weights are loaded: free them before refusing the model
            raise
        self.info = self._read_info()
        self._vocab = self._llm._model.vocab
        self._control: ControlText | None = None  # built on first render
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
        check_adapter(self.path, opts.lora_path)  # an adapter for another model: named, refused
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
                    lora_path=opts.lora_path or None,
                    lora_scale=opts.lora_scale,
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

    # -- saved conversation caches -------------------------------------------------------
    def use_saved_states(self, states: StateCache | None) -> None:
        """Keep conversations' KV states in `states` (memory and disk) and restore them when a
        conversation comes back (see PromptCache)."""
        self.cache.states = states

    def save_state(self) -> bool:
        """Keep the live cache of the conversation it belongs to (after a reply, when the user
        switches away); the disk write happens in the background."""
        return self._llm is not None and self.cache.save()

    def _state_key(self) -> str:
        if self._key is None:
            opts = self.options
            adapter = opts.lora_path
            if adapter:  # an adapter converted again to the same path has other weights
                try:
                    st = os.stat(adapter)
                    adapter = f"{adapter}:{st.st_size}:{st.st_mtime_ns}"
                except OSError:
                    pass
            extra = f"{adapter}|{opts.lora_scale}|{opts.flash_attn}"
            self._key = state_model_key(self.path, self.n_ctx, extra)
        return self._key

    def close(self) -> None:
        if self._llm is not None:
            self.save_state()
            if self.cache.states is not None:
                self.cache.states.flush(timeout=30)
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
        """The exact prompt text for these messages (the model's own chat template); a control
        token spelled inside a message stays text (see `control_text`)."""
        if self._control is None:
            self._control = ControlText(self._control_texts())
        return self.chat_format.render(self._control.messages(messages))

    def _control_texts(self) -> list[str]:
        vocab, control = self._vocab, llama_cpp.LLAMA_TOKEN_ATTR_CONTROL
        texts = []
        for token in range(llama_cpp.llama_vocab_n_tokens(vocab)):
            if llama_cpp.llama_vocab_get_attr(vocab, token) & control:
                texts.append(
                    llama_cpp.llama_vocab_get_text(vocab, token).decode("utf-8", "replace")
                )
        return texts

    def prompt_tokens(self, messages: Sequence[Message]) -> list[int]:
        return self.text_prompt(self.render(messages))

    def text_prompt(self, text: str) -> list[int]:
        """A whole prompt given as text (a rendered chat, a raw completion prompt): special
        tokens written in it count as such, and BOS leads when the model wants it (once)."""
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
        """Leading prompt tokens the KV cache holds in place (the rule `PromptCache` uses before
        any shift: at most all but the last token, whose logits start the reply)."""
        return plan_reuse(kv_cache.cached_tokens(self._llm), tokens, shift=False).reused

    # -- generation ------------------------------------------------------------------------
    def stream(
        self,
        prompt: Sequence[int] | Sequence[Message],
        sampling: SamplingOptions | None = None,
        cancel: threading.Event | None = None,
        *,
        grammar: str | None = None,
        on_progress: Callable[[int, int], None] | None = None,
        label: str | None = None,
        exact: bool = False,
    ) -> ReplyStream:
        """A generator of text pieces; see `ReplyStream`. The sampling options are checked
        against their ranges whoever built them (a stored conversation, a request): nothing out
        of range reaches llama.cpp, and max_tokens is never 'unlimited'.

        `grammar` (GBNF text) constrains the reply (InvalidInputError if it does not parse);
        `on_progress(done, total)` is called while the prompt is read, before the first batch
        and after each one, with the prompt tokens evaluated so far out of those to evaluate.
        `label` names the conversation the cache will belong to (its state is saved and restored
        under that name); `exact` re-reads what a shift of the cache would reuse."""
        sampling = (sampling or SamplingOptions()).validated()
        if prompt and isinstance(prompt[0], Message):
            prompt = self.prompt_tokens(prompt)  # type: ignore[arg-type]
        parsed = _parse_grammar(grammar) if grammar else None
        return ReplyStream(
            self, list(prompt), sampling, cancel, parsed, on_progress, label=label, exact=exact
        )

    def complete(self, prompt, sampling: SamplingOptions | None = None) -> str:
        """Non-streaming callers join the same generator."""
        return self.stream(prompt, sampling).join()


def _parse_grammar(grammar: str) -> llama_cpp.LlamaGrammar:
    marker = llama_log.mark()
    try:
        return llama_cpp.LlamaGrammar.from_string(grammar, verbose=False)
    except (ValueError, RuntimeError) as exc:
        reason = llama_log.reason_since(marker) or str(exc)
        raise InvalidInputError(f"The reply grammar does not parse: {reason}") from None


def _exception_reason(exc: BaseException) -> str:
    """A load failure's reason when llama.cpp logged none (llama-cpp-python's own errors)."""
    if isinstance(exc, MemoryError):  # e.g. the logits buffer of a huge batch
        return f"not enough memory ({exc})" if str(exc) else "not enough memory"
    return str(exc)
