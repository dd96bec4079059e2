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
from assistant.types import AUTO_GPU_LAYERS, SamplingOptions

if TYPE_CHECKING:
    from assistant.engine.runtime import ModelRuntime
    from assistant.settings import Settings

# argparse attribute -> Settings field, for the options that override the saved settings
SETTING_OVERRIDES = (
    ("ctx", "n_ctx"),
    ("threads", "n_threads"),
    ("batch", "n_batch"),
    ("gpu_layers", "n_gpu_layers"),
    ("flash_attn", "flash_attn"),
)
SAMPLING_OVERRIDES = (
    "max_tokens",
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "repeat_penalty",
    "seed",
    "ignore_eos",
)


def model_options(p: argparse.ArgumentParser) -> None:
    """--model, --ctx, --threads, --batch, --gpu-layers, --flash-attn."""
    p.add_argument("--model", default=argparse.SUPPRESS, help="GGUF model file")
    p.add_argument("--ctx", type=int, help="context window in tokens (default: settings, 4096)")
    p.add_argument("--threads", type=int, help="CPU threads")
    p.add_argument("--batch", type=int, help="prompt batch size in tokens (default 512)")
    p.add_argument(
        "--gpu-layers",
        type=gpu_layers,
        help="layers on the GPU: N, all, or auto (default: as many as fit)",
    )
    p.add_argument("--flash-attn", action="store_true", default=None, help="flash attention")


def gpu_layers(value: str) -> int:
    """`--gpu-layers`: a number of layers, 'all' (-1) or 'auto' (as many as fit)."""
    if value.strip().lower() == "auto":
        return AUTO_GPU_LAYERS
    if value.strip().lower() in {"all", "-1", "max"}:
        return -1
    try:
        layers = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a number of layers, 'all' or 'auto'") from None
    if layers < 0:
        raise argparse.ArgumentTypeError("expected a number of layers, 'all' or 'auto'")
    return layers


def sampling_options(p: argparse.ArgumentParser) -> None:
    """--max-tokens, --temperature, --top-p, --top-k, --min-p, --repeat-penalty, --seed, --stop,
    --ignore-eos."""
    p.add_argument("--max-tokens", type=int, help="longest reply in tokens")
    p.add_argument("--temperature", type=float)
    p.add_argument("--top-p", type=float)
    p.add_argument("--top-k", type=int)
    p.add_argument("--min-p", type=float)
    p.add_argument("--repeat-penalty", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--stop", action="append", help="stop string (repeatable)")
    p.add_argument(
        "--ignore-eos",
        action="store_true",
        default=None,
        help="never stop at the model's end token, only at --max-tokens or a stop string",
    )


def load_settings(args: argparse.Namespace) -> Settings:
    """The saved settings with this command's options on top (not saved)."""
    from assistant.settings import Settings

    settings = Settings.load()
    if getattr(args, "model", None):
        path = Path(args.model).expanduser()
        # a file given relative to the current folder is remembered absolutely; ids stay ids
        settings.model = str(path.resolve()) if path.exists() else args.model
    for attr, key in SETTING_OVERRIDES:
        if getattr(args, attr, None) is not None:
            setattr(settings, key, getattr(args, attr))
    return settings


def sampling_from(args: argparse.Namespace, settings: Settings) -> SamplingOptions:
    """The saved sampling options with this command's options on top."""
    overrides = {
        k: getattr(args, k) for k in SAMPLING_OVERRIDES if getattr(args, k, None) is not None
    }
    if getattr(args, "stop", None):
        overrides["stop"] = tuple(args.stop)
    return replace(settings.sampling_options(), **overrides)


def load_runtime(settings: Settings) -> ModelRuntime:
    """Load the model with the automatic GPU fit and the out-of-memory fallbacks."""
    from assistant.engine.loading import load_with_fallback
    from assistant.library.local import chosen_model_path

    runtime, choice = load_with_fallback(chosen_model_path(settings.model), settings.load_options())
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
