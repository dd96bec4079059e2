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
from assistant.errors import OutOfRangeError
from assistant.types import (
    AUTO_GPU_LAYERS,
    RANGES,
    LoadOptions,
    Policy,
    SamplingOptions,
)


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
    # "model": the model file's chat template; "plain": a plain transcript instead (for a model
    # whose template fails: it is refused at load otherwise)
    chat_format: str = "model"
    # a GGUF LoRA adapter applied on the model at load (empty: none), and how strongly
    lora_path: str = ""
    lora_scale: float = 1.0
    # read the window again when it slides instead of shifting the KV cache (exact, slower)
    exact_slide: bool = False
    # disk budget for conversations' saved KV caches (0: none saved)
    kv_cache_mb: int = 2048
    # the local OpenAI-compatible server in the app (Settings → Local server), on 127.0.0.1
    server_enabled: bool = False
    server_port: int = 8080
    server_api_key: str = ""  # empty: no key asked (the server only listens on this computer)
    # What was wrong in the file when it was loaded (each value replaced by its default), one
    # user-facing line each: the CLI prints them, the app shows them. Never saved.
    problems: list[str] = field(default_factory=list, compare=False, repr=False)

    @classmethod
    def load(cls, path: Path | None = None) -> Settings:
        """The saved settings; a value of the wrong type or out of range is replaced by its
        default and named in `problems` (a broken file is kept until the settings are saved)."""
        path = path or paths.settings_path()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError, RecursionError) as exc:
            reason = getattr(exc, "strerror", None) or "it is not valid JSON"
            problem = f"Settings file {path} cannot be read ({reason}); using defaults."
            return cls(problems=[problem])
        if not isinstance(data, dict):
            return cls(problems=[f"Settings file {path} is not a JSON object; using defaults."])
        clean, problems = clean_settings(data)
        return cls(**clean, problems=[f"Settings file {path}: {p}" for p in problems])

    def save(self, path: Path | None = None) -> None:
        path = path or paths.settings_path()
        data = asdict(self)
        data.pop("problems")
        fd, tmp = tempfile.mkstemp(prefix=".settings-", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2)
        os.replace(tmp, path)

    def load_options(self) -> LoadOptions:
        """How to load the model (checked: OutOfRangeError names a value out of range)."""
        return LoadOptions(
            n_ctx=self.n_ctx,
            n_threads=self.n_threads,
            n_batch=self.n_batch,
            n_gpu_layers=self.n_gpu_layers,
            flash_attn=self.flash_attn,
            chat_format=self.chat_format,
            lora_path=self.lora_path,
            lora_scale=self.lora_scale,
        ).validated()

    def sampling_options(self) -> SamplingOptions:
        """How to sample (checked: OutOfRangeError names a value out of range)."""
        return SamplingOptions.from_dict(self.sampling).validated()


_DEFAULTS = Settings()
_SAMPLING_DEFAULTS = SamplingOptions().to_dict()
_TEXT = ("model", "system_prompt", "summary_length", "lora_path", "server_api_key")
_FLAGS = ("flash_attn", "summary_bullets", "exact_slide", "server_enabled")


def clean_settings(data: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """(the known fields of a settings file, each valid or left out, one line per value left
    out). Numbers are checked against `assistant.types.RANGES`; unknown keys are ignored."""
    clean: dict[str, Any] = {}
    problems: list[str] = []
    for name in (f.name for f in fields(Settings) if f.name != "problems"):
        if name not in data:
            continue
        value = data[name]
        if name == "sampling":
            clean[name], found = _clean_sampling(value)
            problems += found
            continue
        problem = _problem(name, value)
        if problem is None:
            integer = name in RANGES and RANGES[name].integer
            clean[name] = int(value) if integer and value is not None else value
        else:
            problems.append(f"{problem} Using the default, {_show(getattr(_DEFAULTS, name))}.")
    return clean, problems


def _show(default: Any, name: str = "") -> str:
    if default is None:
        return "random" if name == "seed" else "automatic"
    return "empty" if default in ("", []) else json.dumps(default)


def _problem(name: str, value: Any) -> str | None:
    """Why `value` cannot be setting `name`, or None."""
    if name in _TEXT:
        return None if isinstance(value, str) else f"{name} must be text."
    if name in _FLAGS:
        return None if isinstance(value, bool) else f"{name} must be true or false."
    if name == "chat_format":
        ok = value in ("model", "plain")
        return None if ok else f"chat_format {value!r} is not one of model, plain."
    if name == "policy":
        names = [p.value for p in Policy]
        shown = repr(str(value)[:40])
        return None if value in names else f"policy {shown} is not one of {', '.join(names)}."
    if name == "n_threads" and value is None:
        return None
    try:
        RANGES[name].check(value)
    except OutOfRangeError as exc:
        return str(exc)
    return None


def _clean_sampling(value: Any) -> tuple[dict[str, Any], list[str]]:
    """Sampling options from the file: each bad one replaced by its default."""
    if not isinstance(value, dict):
        return dict(_SAMPLING_DEFAULTS), ["sampling must be a JSON object. Using the defaults."]
    clean, problems = dict(_SAMPLING_DEFAULTS), []
    for key, default in _SAMPLING_DEFAULTS.items():
        if key not in value:
            continue
        item = value[key]
        problem = None
        if key == "stop":
            ok = isinstance(item, list) and all(isinstance(s, str) for s in item)
            problem = None if ok else "sampling.stop must be a list of strings."
        elif key == "ignore_eos":
            ok = isinstance(item, bool)
            problem = None if ok else "sampling.ignore_eos must be true or false."
        elif not (key == "seed" and item is None):
            try:
                item = RANGES[key].check(item, f"sampling.{key}")
            except OutOfRangeError as exc:
                problem = str(exc)
        if problem is None:
            clean[key] = item
        else:
            problems.append(f"{problem} Using the default, {_show(default, key)}.")
    return clean, problems


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
