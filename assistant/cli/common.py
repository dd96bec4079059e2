"""What the command groups share: model and sampling options, settings overrides, loading the
model, streaming a reply to stdout and writing files atomically."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from assistant.errors import InvalidInputError
from assistant.types import RANGES, SamplingOptions

if TYPE_CHECKING:
    from assistant.engine.runtime import ModelRuntime
    from assistant.settings import Settings

# argparse attribute -> Settings field, for the numbers that override the saved settings
SETTING_OVERRIDES = (
    ("ctx", "n_ctx"),
    ("threads", "n_threads"),
    ("batch", "n_batch"),
    ("gpu_layers", "n_gpu_layers"),
    ("lora_scale", "lora_scale"),
)
SAMPLING_OVERRIDES = (
    "max_tokens",
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "repeat_penalty",
    "seed",
)


# Numeric options are read as text and checked against `assistant.types.RANGES` when the
# command runs, so that every bad number (not a number, NaN, out of range) is one line naming
# the option, the value and the range, with exit code 1, like every other user error.
def number_option(p: argparse.ArgumentParser, field: str, help: str | None = None) -> None:
    """Add the option that sets `field`, its range in its help."""
    spec = RANGES[field]
    text = f"{help}; " if help else ""
    p.add_argument(spec.option, metavar="N", help=f"{text}{spec.describe()}".replace("%", "%%"))


def number_arg(args: argparse.Namespace, attr: str, field: str | None = None):
    """The checked value of a numeric option, or None when it was not given."""
    value = getattr(args, attr, None)
    if value is None:
        return None
    spec = RANGES[field or attr]
    return spec.check(value, spec.option)


def model_options(p: argparse.ArgumentParser) -> None:
    """--model, --ctx, --threads, --batch, --gpu-layers, --flash-attn, --chat-format."""
    p.add_argument("--model", default=argparse.SUPPRESS, help="GGUF model file")
    number_option(p, "n_ctx", "context window (default: settings, 4096)")
    number_option(p, "n_threads", "CPU threads (default: the physical cores)")
    number_option(p, "n_batch", "prompt batch size (default 512)")
    number_option(p, "n_gpu_layers", "layers on the GPU (default: auto, as many as fit)")
    p.add_argument("--flash-attn", action="store_true", default=None, help="flash attention")
    p.add_argument(
        "--chat-format",
        choices=("model", "plain"),
        help="model: the chat template in the model file (default); plain: a plain "
        "transcript instead, for a model whose template fails",
    )


def lora_options(p: argparse.ArgumentParser) -> None:
    """--lora FILE, --lora-scale S: a GGUF LoRA adapter applied on the model at load."""
    p.add_argument(
        "--lora",
        metavar="FILE",
        help="a GGUF LoRA adapter to apply on the model (assistant convert ADAPTER_DIR "
        "--adapter-only makes one)",
    )
    number_option(p, "lora_scale", "adapter strength (default 1)")


def sampling_options(p: argparse.ArgumentParser) -> None:
    """--max-tokens, --temperature, --top-p, --top-k, --min-p, --repeat-penalty, --seed, --stop,
    --ignore-eos."""
    number_option(p, "max_tokens", "longest reply")
    number_option(p, "temperature")
    number_option(p, "top_p")
    number_option(p, "top_k")
    number_option(p, "min_p")
    number_option(p, "repeat_penalty")
    number_option(p, "seed", "default: random")
    p.add_argument("--stop", action="append", help="stop string (repeatable)")
    p.add_argument(
        "--ignore-eos",
        action="store_true",
        default=None,
        help="never stop at the model's end token, only at --max-tokens or a stop string",
    )


def load_settings(args: argparse.Namespace) -> Settings:
    """The saved settings with this command's options on top (not saved). Every number on the
    command line is checked first, before anything is loaded or stored."""
    check_options(args)
    overrides = {key: number_arg(args, attr, key) for attr, key in SETTING_OVERRIDES}
    if getattr(args, "flash_attn", None) is not None:
        overrides["flash_attn"] = args.flash_attn
    if getattr(args, "chat_format", None) is not None:
        overrides["chat_format"] = args.chat_format
    if getattr(args, "exact_slide", False):
        overrides["exact_slide"] = True
    settings = load_saved_settings()
    if getattr(args, "model", None):
        path = Path(args.model).expanduser()
        # a file given relative to the current folder is remembered absolutely; ids stay ids
        settings.model = str(path.resolve()) if path.exists() else args.model
        settings.lora_path = ""  # a saved adapter belongs to the saved model
    if getattr(args, "lora", None):
        settings.lora_path = str(Path(args.lora).expanduser().resolve())
    for key, value in overrides.items():
        if value is not None:
            setattr(settings, key, value)
    return settings


def load_saved_settings() -> Settings:
    """The settings file; each value it had wrong (replaced by its default) is one stderr line."""
    from assistant.settings import Settings

    settings = Settings.load()
    for problem in settings.problems:
        print(f"[{problem}]", file=sys.stderr)
    return settings


def sampling_from(args: argparse.Namespace, settings: Settings) -> SamplingOptions:
    """The saved sampling options with this command's options on top (all checked)."""
    overrides = {k: number_arg(args, k) for k in SAMPLING_OVERRIDES}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if getattr(args, "ignore_eos", None) is not None:
        overrides["ignore_eos"] = args.ignore_eos
    if getattr(args, "stop", None):
        overrides["stop"] = tuple(args.stop)
    return replace(settings.sampling_options(), **overrides).validated()


def check_options(args: argparse.Namespace) -> None:
    """Refuse a bad number on the command line before anything is loaded or stored."""
    for attr, key in SETTING_OVERRIDES:
        number_arg(args, attr, key)
    for attr in SAMPLING_OVERRIDES:
        number_arg(args, attr)


def load_runtime(settings: Settings) -> ModelRuntime:
    """Load the model with the automatic GPU fit and the out-of-memory fallbacks; a value
    fitted to the model or the computer (context, batch, threads) is one stderr line."""
    from assistant.engine.loading import load_with_fallback
    from assistant.library.local import chosen_model_path

    runtime, choice = load_with_fallback(chosen_model_path(settings.model), settings.load_options())
    for note in choice.adjustments:
        print(f"[{note}]", file=sys.stderr)
    if choice.attempts or "reinstall" in choice.message:
        print(f"[{choice.message}]", file=sys.stderr)
    return runtime


def stream_to_stdout(reply, as_json: bool) -> None:
    """Print a reply as it streams (or one JSON object at the end); Ctrl-C stops it, saved."""
    try:
        for piece in reply:
            if not as_json:
                sys.stdout.write(piece)
                sys.stdout.flush()
    except KeyboardInterrupt:
        reply.close()  # saved, marked cancelled
    result = reply.result
    if as_json:
        print(json.dumps(result.to_json(), ensure_ascii=False), flush=True)
    else:
        print(flush=True)
        if result.notice:
            print(f"[{result.notice}]", file=sys.stderr, flush=True)


def write_atomically(path: Path, text: str) -> None:
    """Write text and a final newline to path, all or nothing."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text + "\n", encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise InvalidInputError(f"Cannot write {path}: {exc.strerror}.") from None
