"""User settings: one JSON file in the user's home folder, written atomically."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from . import paths
from .embedded import embedded_model_path
from .types import LoadOptions, SamplingOptions


@dataclass
class Settings:
    model: str = ""  # empty: the embedded default model
    n_ctx: int = 4096
    n_threads: int | None = None
    n_batch: int = 512
    n_gpu_layers: int = -2  # -2: as many as fit (fit.AUTO), 0: CPU only, N layers, -1: all
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

    def model_path(self) -> Path:
        """The model file: a path, a library id (see `assistant models list`), or the default."""
        if not self.model:
            return embedded_model_path()
        path = Path(self.model).expanduser()
        if path.exists() or path.is_absolute() or self.model.startswith((".", "~")):
            return path  # a path: if it is missing, loading says "Model file not found"
        from .library import model_path

        return model_path(self.model)

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

    def summary_options(self):
        """How the app summarizes documents (an unknown length in the file reads as medium)."""
        from .summarizer import LENGTHS, SummaryOptions

        length = self.summary_length if self.summary_length in LENGTHS else "medium"
        return SummaryOptions(length=length, bullets=bool(self.summary_bullets))
