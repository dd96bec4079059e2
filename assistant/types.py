"""Plain data shared by the core, the CLI and the UI (frozen dataclasses), and the one table of
valid ranges for every number a user can give (`RANGES`)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from enum import Enum
from typing import Any

from assistant.errors import InvalidInputError, OutOfRangeError

SYSTEM, USER, ASSISTANT = "system", "user", "assistant"
# LoadOptions.n_gpu_layers (and the setting): as many layers as the free GPU memory holds,
# planned from the GGUF header (`assistant.library.fit.auto_gpu_layers`).
AUTO_GPU_LAYERS = -2


@dataclass(frozen=True)
class NumberRange:
    """The valid values of one numeric option: `low` to `high` (`low` itself excluded when
    `low_open`), plus named special values (`--gpu-layers all`)."""

    field: str  # the LoadOptions / SamplingOptions / Settings field
    option: str  # how the command line spells it
    low: float
    high: float
    integer: bool = True
    low_open: bool = False
    special: tuple[tuple[str, int], ...] = ()  # (word, value) also accepted
    why: str = ""  # a short reason, shown with the range

    def describe(self) -> str:
        low, high = _show_number(self.low), _show_number(self.high)
        text = f"more than {low} and at most {high}" if self.low_open else f"{low} to {high}"
        if self.special:
            text += "".join(f", or {word}" for word, _ in self.special)
        return f"{text} ({self.why})" if self.why else text

    def check(self, value: object, name: str | None = None) -> int | float:
        """`value` (a number, or text from the command line) as an int or a float when it is in
        range; otherwise OutOfRangeError naming `name` (default: the field), value and range."""
        name = name or self.field
        if isinstance(value, str):
            word = value.strip().lower()
            for special, number in self.special:
                if word in (special, str(number)):
                    return number
        elif any(value == number and not isinstance(value, bool) for _, number in self.special):
            return int(value)  # type: ignore[arg-type]
        number, problem = self._number(value)
        if number is not None:
            if number < self.low or (self.low_open and number == self.low):
                problem = "is too small"
            elif number > self.high:
                problem = "is too large"
            else:
                return number
        raise OutOfRangeError(
            f"{name} {_show_value(value)} {problem}: use {self.describe()}.",
            field=self.field,
            value=value,
        )

    def _number(self, value: object) -> tuple[int | float | None, str]:
        kind = "a whole number" if self.integer else "a number"
        if isinstance(value, str):
            try:
                value = int(value.strip(), 10) if self.integer else float(value.strip())
            except ValueError:
                return None, f"is not {kind}"
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None, f"is not {kind}"
        if isinstance(value, float):
            if not math.isfinite(value):
                return None, "is not a finite number"
            if self.integer:
                if not value.is_integer():
                    return None, f"is not {kind}"
                value = int(value)
        elif not self.integer:
            try:
                value = float(value)
            except OverflowError:
                return None, "is too large"
        return value, ""


def _show_number(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)


def _show_value(value: object) -> str:
    try:
        text = value if isinstance(value, str) else repr(value)
    except ValueError:  # an int of more than 4300 digits has no repr
        text = f"an integer of {value.bit_length()} bits"  # type: ignore[attr-defined]
    return text if len(text) <= 40 else text[:37] + "..."


# The longest context accepted anywhere: 2**20 tokens, the longest trained context of the
# models this app can run on a desktop (Qwen2.5-1M, Llama 3.1's 128k with room), and at that
# length a KV cache already needs tens of GB; it keeps llama.cpp's 32-bit context arithmetic
# far from overflowing. A model's own trained context lowers it at load time (with a notice).
CTX_MAX = 1 << 20
# The shortest context: llama.cpp allocates the KV cache in steps of 256 tokens (a request for
# 1 token gets 256, 0 gets the trained context), and a chat template, a system prompt and a
# short reply already need a few hundred tokens.
CTX_MIN = 256
# ggml's GGML_MAX_N_THREADS: more threads overrun its thread pool's fixed arrays (SIGSEGV).
THREADS_MAX = 512
# llama.cpp refuses models with more than 512 layers; +1 counts the output head.
GPU_LAYERS_MAX = 513
# The seed is a 32-bit unsigned number in llama.cpp, where 2**32 - 1 means "random"; the Qt
# spin box and the JSON consumers hold 31 bits. No seed (None) means random.
SEED_MAX = 2**31 - 1

RANGES: dict[str, NumberRange] = {
    r.field: r
    for r in (
        NumberRange("n_ctx", "--ctx", CTX_MIN, CTX_MAX, why="tokens"),
        NumberRange("n_threads", "--threads", 1, THREADS_MAX, why="llama.cpp's limit"),
        NumberRange("n_batch", "--batch", 1, CTX_MAX, why="tokens, at most the context"),
        NumberRange(
            "n_gpu_layers",
            "--gpu-layers",
            0,
            GPU_LAYERS_MAX,
            special=(("all", -1), ("auto", AUTO_GPU_LAYERS)),
        ),
        NumberRange("max_tokens", "--max-tokens", 1, CTX_MAX, why="tokens"),
        NumberRange("temperature", "--temperature", 0.0, 10.0, integer=False),
        NumberRange("top_p", "--top-p", 0.0, 1.0, integer=False, low_open=True),
        NumberRange("top_k", "--top-k", 0, CTX_MAX, why="0 turns it off"),
        NumberRange("min_p", "--min-p", 0.0, 1.0, integer=False, why="0 turns it off"),
        NumberRange(
            "repeat_penalty",
            "--repeat-penalty",
            0.0,
            10.0,
            integer=False,
            low_open=True,
            why="1 turns it off",
        ),
        NumberRange("seed", "--seed", 0, SEED_MAX),
        NumberRange(
            "kv_cache_mb", "--kv-cache-mb", 0, 1024**2, why="MB of saved caches, 0 turns it off"
        ),
        NumberRange("server_port", "--port", 1, 65535, why="a TCP port"),
        NumberRange("chunk_tokens", "--chunk-tokens", CTX_MIN, CTX_MAX, why="tokens"),
        NumberRange("search_limit", "--limit", 1, 1000, why="results"),
        NumberRange(
            "lora_scale",
            "--lora-scale",
            -4.0,
            4.0,
            integer=False,
            why="how strongly the adapter applies: 1 as trained, 0 not at all",
        ),
    )
}
SAMPLING_NUMBERS = ("temperature", "top_p", "top_k", "min_p", "repeat_penalty", "max_tokens")


def check_number(field: str, value: object, name: str | None = None) -> int | float:
    """`value` checked against `RANGES[field]` (OutOfRangeError names `name` or the field)."""
    return RANGES[field].check(value, name)


@dataclass(frozen=True)
class Message:
    role: str
    content: str

    def as_llama(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


class Policy(str, Enum):
    """What happens when a conversation outgrows the context window."""

    DROP = "drop"
    SUMMARIZE = "summarize"
    STOP = "stop"

    @classmethod
    def parse(cls, value: str | Policy) -> Policy:
        try:
            return cls(value)
        except ValueError:
            names = ", ".join(p.value for p in cls)
            raise InvalidInputError(
                f"Unknown context policy {value!r}; choose one of {names}."
            ) from None


@dataclass(frozen=True)
class SamplingOptions:
    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    repeat_penalty: float = 1.1
    seed: int | None = None
    max_tokens: int = 512
    stop: tuple[str, ...] = ()
    # Never end at the model's end-of-generation token (only at max_tokens or a stop string):
    # llama.cpp's --ignore-eos, for benchmarks and tests that need a reply of a known length.
    ignore_eos: bool = False

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["stop"] = list(self.stop)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> SamplingOptions:
        known = {f.name for f in fields(cls)}
        clean = {k: v for k, v in (data or {}).items() if k in known}
        if "stop" in clean:
            clean["stop"] = tuple(clean["stop"] or ())
        return cls(**clean)

    def validated(self) -> SamplingOptions:
        """These options with every number checked against `RANGES` (OutOfRangeError names the
        field): nothing out of range reaches llama.cpp, and max_tokens is never 'unlimited'."""
        clean: dict[str, Any] = {k: check_number(k, getattr(self, k)) for k in SAMPLING_NUMBERS}
        if self.seed is not None:
            clean["seed"] = check_number("seed", self.seed)
        stop = self.stop
        if isinstance(stop, str) or not all(isinstance(s, str) for s in stop):
            raise OutOfRangeError("stop must be a list of strings.", field="stop", value=stop)
        return replace(self, stop=tuple(stop), ignore_eos=bool(self.ignore_eos), **clean)


@dataclass(frozen=True)
class LoadOptions:
    n_ctx: int = 4096
    n_threads: int | None = None
    n_batch: int = 512
    n_gpu_layers: int = 0  # 0: CPU only, N: that many layers, -1: all, AUTO_GPU_LAYERS: as fit
    flash_attn: bool = False
    # "model": the chat template in the model file (refused at load if it fails);
    # "plain": the plain transcript format instead, chosen by the user
    chat_format: str = "model"
    # a LoRA adapter in GGUF (assistant convert --adapter-only) applied on this model at load
    lora_path: str = ""
    lora_scale: float = 1.0

    def validated(self) -> LoadOptions:
        """These options with every number checked against `RANGES` (OutOfRangeError names the
        field); values that make llama.cpp crash (a negative batch, a million threads) stop here."""
        threads = self.n_threads
        return replace(
            self,
            n_ctx=check_number("n_ctx", self.n_ctx),
            n_threads=None if threads is None else check_number("n_threads", threads),
            n_batch=check_number("n_batch", self.n_batch),
            n_gpu_layers=check_number("n_gpu_layers", self.n_gpu_layers),
            flash_attn=bool(self.flash_attn),
            lora_path=str(self.lora_path or ""),
            lora_scale=check_number("lora_scale", self.lora_scale),
        )

    def adjusted(
        self, n_ctx_train: int = 0, cpu_count: int | None = None
    ) -> tuple[LoadOptions, tuple[str, ...]]:
        """Valid options fitted to one model and one computer, with one line for each change:
        no more context than the model was trained on (at least CTX_MIN), no larger batch than
        the context, no more threads than CPUs (they would wait on each other)."""
        ctx, batch, threads = self.n_ctx, self.n_batch, self.n_threads
        notes: list[str] = []
        if n_ctx_train and ctx > max(n_ctx_train, CTX_MIN):
            ctx = max(n_ctx_train, CTX_MIN)
            notes.append(
                f"Context {self.n_ctx} is more than the {n_ctx_train} tokens the model was "
                f"trained on: using {ctx}."
            )
        if batch > ctx:
            if batch != LoadOptions.n_batch:  # the default batch was nobody's choice
                notes.append(f"Batch {batch} is larger than the {ctx}-token context: using {ctx}.")
            batch = ctx
        if threads is not None and cpu_count and threads > cpu_count:
            notes.append(
                f"Threads {threads} is more than this computer's {cpu_count} CPUs: "
                f"using {cpu_count}."
            )
            threads = cpu_count
        return replace(self, n_ctx=ctx, n_batch=batch, n_threads=threads), tuple(notes)


@dataclass(frozen=True)
class ReplyStats:
    """Figures of one reply. Prompt tokens are `cached_tokens` (found in the KV cache, some of
    them `restored_tokens` from a saved state) plus the tokens evaluated; `reread_tokens` of the
    evaluated ones were held by the previous cache but could not be reused (a model that cannot
    shift, exact re-reading chosen, new text placed before them); `shifted_tokens` were cut
    out of the cache when the window slid. `ttft_s` runs from the start of the engine's work to
    the first token; `wait_s` from the user's send (running summary included) to the first token,
    spent on `summary_s` (folding older turns), `restore_s` (loading a saved state) and
    `prompt_s` (reading the prompt)."""

    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    ttft_s: float = 0.0
    tokens_per_s: float = 0.0
    total_s: float = 0.0
    finish_reason: str = "stop"  # stop | length | cancelled | error
    shifted_tokens: int = 0
    reread_tokens: int = 0
    restored_tokens: int = 0
    wait_s: float = 0.0
    summary_s: float = 0.0
    restore_s: float = 0.0
    prompt_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class WaitStatus:
    """Why the first token is not here yet, for the reply bubble: `stage` is 'summarizing'
    (folding older turns into the running summary), 'restoring' (loading the conversation's saved
    cache) or 'reading' (evaluating prompt tokens); `done` of `total` units of that stage."""

    stage: str
    done: int
    total: int
    text: str

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total > 0 else 0.0


@dataclass(frozen=True)
class ContextReport:
    """What the window held for one reply: the UI draws its meter and marks from this."""

    n_ctx: int
    used: int
    reserve: int
    dropped_messages: int = 0
    summarized_messages: int = 0
    system_kept: bool = True
    truncated_message: bool = False
    first_visible_message_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_ctx": self.n_ctx,
            "used": self.used,
            "reserve": self.reserve,
            "dropped_messages": self.dropped_messages,
            "summarized_messages": self.summarized_messages,
            "system_kept": self.system_kept,
            "truncated_message": self.truncated_message,
        }
