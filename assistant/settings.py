"""User settings: one JSON file in the user's home folder, written atomically.

Plain data: importing this module loads no model code (no llama.cpp, numpy, library, engine or
documents). Resolving `Settings.model` to a file is the library's
(`assistant.library.local.chosen_model_path`); how the app summarizes is
`assistant.documents.options.SummaryOptions.from_settings`.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from assistant import paths
from assistant.types import AUTO_GPU_LAYERS, LoadOptions, SamplingOptions


@dataclass
class Settings:
    model: str = ""  # empty: the embedded default model
    n_ctx: int = 4096
    n_threads: int | None = None
    n_batch: int = 512
    n_gpu_layers: int = AUTO_GPU_LAYERS  # as many as fit; 0: CPU only, N layers, -1: all
    flash_attn: bool = False
    system_prompt: str = ""
    policy: str = "drop"
    sampling: dict[str, Any] = field(default_factory=lambda: SamplingOptions().to_dict())
    summary_length: str = "medium"  # short | medium | detailed: documents summarized in the app
    summary_bullets: bool = True

    @classmethod
    def load(cls, path: Path | None = None) -> Settings:
        path = path or paths.settings_path()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return cls()  # missing or unreadable: defaults (a broken file is kept until saved)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def save(self, path: Path | None = None) -> None:
        path = path or paths.settings_path()
        fd, tmp = tempfile.mkstemp(prefix=".settings-", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(asdict(self), handle, indent=2)
        os.replace(tmp, path)

    def load_options(self) -> LoadOptions:
        return LoadOptions(
            n_ctx=self.n_ctx,
            n_threads=self.n_threads,
            n_batch=self.n_batch,
            n_gpu_layers=self.n_gpu_layers,
            flash_attn=self.flash_attn,
        )

    def sampling_options(self) -> SamplingOptions:
        return SamplingOptions.from_dict(self.sampling)


def default_threads(*, leave_one_for_gui: bool = False, cpu_count: int | None = None) -> int:
    """Generation threads when none are set: the physical cores (about half the logical ones
    above 4), since generation is memory-bound.

    With `leave_one_for_gui` (the desktop app), one core is left to the window: llama.cpp's
    threads spin while they wait for each other, and when the GUI thread takes one of their
    cores they stall (on 2 cores: about 5 tokens/s with 2 threads, 70 with 1).
    """
    cpus = cpu_count or os.cpu_count() or 2
    physical = cpus if cpus <= 4 else cpus // 2
    return max(1, min(physical, cpus - 1)) if leave_one_for_gui else physical
