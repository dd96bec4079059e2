"""Plain data shared by the core, the CLI and the UI (frozen dataclasses)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from enum import Enum
from typing import Any

SYSTEM, USER, ASSISTANT = "system", "user", "assistant"
# LoadOptions.n_gpu_layers (and the setting): as many layers as the free GPU memory holds,
# planned from the GGUF header (`assistant.library.fit.auto_gpu_layers`).
AUTO_GPU_LAYERS = -2


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
            from assistant.errors import InvalidInputError

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


@dataclass(frozen=True)
class LoadOptions:
    n_ctx: int = 4096
    n_threads: int | None = None
    n_batch: int = 512
    n_gpu_layers: int = 0  # 0: CPU only, N: that many layers, -1: all, AUTO_GPU_LAYERS: as fit
    flash_attn: bool = False


@dataclass(frozen=True)
class ReplyStats:
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    ttft_s: float = 0.0
    tokens_per_s: float = 0.0
    total_s: float = 0.0
    finish_reason: str = "stop"  # stop | length | cancelled | error

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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
