"""What a conversion is asked to do, how it reports progress, and what it produced."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .verify import PROMPTS, VerifyReport


@dataclass(frozen=True)
class ConvertOptions:
    source: Path  # a checkpoint, or a PEFT adapter folder (adapter_config.json)
    out: Path
    out_type: str = "f16"
    config: Path | None = None
    tokenizer: Path | None = None
    chat_template: Path | None = None
    name: str | None = None
    verify: bool = False
    threads: int | None = None
    verify_texts: tuple[str, ...] = PROMPTS
    # adapters: the base model (a folder or a cached Hub id; default: the adapter's
    # base_model_name_or_path), and whether to write a GGUF adapter instead of merging
    base: str | None = None
    adapter_only: bool = False


@dataclass(frozen=True)
class Progress:
    stage: str  # "writing", "quantizing", "verifying"
    done: int  # bytes written so far (writing), else 0/1
    total: int
    detail: str = ""


@dataclass(frozen=True)
class ConvertResult:
    path: Path
    out_type: str
    architecture: str
    gguf_architecture: str
    n_tensors: int
    size_bytes: int
    seconds: float
    notes: list[str] = field(default_factory=list)
    verification: VerifyReport | None = None
    kind: str = "model"  # "adapter": a GGUF LoRA adapter, applied on a GGUF of `base`
    base: Path | None = None  # the base model an adapter was merged into or made for

    @property
    def passed(self) -> bool:
        return self.verification is None or self.verification.passed


ProgressFn = Callable[[Progress], None]
