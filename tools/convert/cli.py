"""`assistant convert SRC --out OUT.gguf`: a progress bar on stderr, the summary on stdout."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .out_types import OUT_TYPES  # cheap: building the parser does not load the converter

if TYPE_CHECKING:
    from .pipeline import ConvertResult, Progress

HELP = "convert a PyTorch / Hugging Face / nanoGPT checkpoint or a LoRA adapter to GGUF"
DESCRIPTION = (
    "Convert a Hugging Face folder (config.json + safetensors or pytorch_model*.bin), "
    "a nanoGPT ckpt.pt, or a bare state dict (with --config) into GGUF. Given a PEFT LoRA "
    "adapter folder (adapter_config.json), merge it into its base (--base) and write the "
    "fine-tuned model, or with --adapter-only write a GGUF adapter to apply with --lora."
)


def add_convert_parser(sub) -> None:
    """Register `convert` as a sub-command (of `assistant`)."""
    add_convert_arguments(sub.add_parser("convert", help=HELP, description=DESCRIPTION))


def add_convert_arguments(p: argparse.ArgumentParser) -> None:
    """The converter's arguments, and `run_convert` as the parser's `run` default."""
    p.add_argument(
        "source",
        type=Path,
        help="model folder, ckpt.pt, .safetensors, .bin or .pt, or a PEFT LoRA adapter folder",
    )
    p.add_argument("--out", type=Path, required=True, help="the .gguf file to write")
    p.add_argument(
        "--type",
        dest="out_type",
        choices=OUT_TYPES,
        default="f16",
        help="weight type (default: f16); q4_0 and K-quants go through llama.cpp",
    )
    p.add_argument("--config", type=Path, help="config.json for a bare state dict")
    p.add_argument(
        "--tokenizer",
        type=Path,
        help="tokenizer.model, tokenizer.json, vocab.json (+merges.txt) or meta.pkl",
    )
    p.add_argument("--chat-template", type=Path, help="a Jinja chat template file")
    p.add_argument("--name", help="model name stored in the file (general.name)")
    p.add_argument(
        "--verify",
        action="store_true",
        help="compare logits and tokenization with PyTorch; exit 1 past thresholds",
    )
    p.add_argument("--threads", type=int, help="CPU threads for quantizing and verifying")
    p.add_argument(
        "--base",
        help="for an adapter: the base model, a Hugging Face folder or a Hub id in the local "
        "cache (default: the adapter's base_model_name_or_path)",
    )
    p.add_argument(
        "--adapter-only",
        action="store_true",
        help="for an adapter: write a GGUF LoRA adapter (f32, f16, bf16 or q8_0) instead of "
        "merging it; apply it with `assistant chat --model BASE.gguf --lora OUT.gguf`",
    )
    p.set_defaults(run=run_convert)


def run_convert(args: argparse.Namespace) -> int:
    from .pipeline import ConvertOptions, convert

    options = ConvertOptions(
        source=args.source,
        out=args.out,
        out_type=args.out_type,
        config=args.config,
        tokenizer=args.tokenizer,
        chat_template=args.chat_template,
        name=args.name,
        verify=args.verify,
        threads=args.threads,
        base=args.base,
        adapter_only=args.adapter_only,
    )
    with _ProgressBar() as bar:
        result = convert(options, bar.update)
    _print_result(result)
    return 0 if result.passed else 1


class _ProgressBar:
    """One tqdm bar for the bytes written, then a line per later stage."""

    def __init__(self) -> None:
        self._bar = None

    def __enter__(self) -> _ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.close()

    def update(self, p: Progress) -> None:
        from tqdm import tqdm

        if p.stage == "writing":
            if self._bar is None:
                self._bar = tqdm(
                    total=p.total,
                    unit="B",
                    unit_scale=True,
                    desc="Writing",
                    file=sys.stderr,
                    disable=None,
                    leave=False,
                )
            self._bar.n = p.done
            self._bar.set_postfix_str(p.detail, refresh=True)
        elif p.done == 0:
            if self._bar is not None:
                self._bar.close()
                self._bar = None
            label = {"quantizing": "Quantizing to", "verifying": "Verifying:"}.get(p.stage, p.stage)
            print(f"{label} {p.detail}…", file=sys.stderr, flush=True)


def _print_result(result: ConvertResult) -> None:
    from assistant.library.sizes import format_bytes

    what = "adapter " if result.kind == "adapter" else ""
    print(
        f"Wrote {what}{result.path} ({result.gguf_architecture}, {result.out_type}, "
        f"{result.n_tensors} tensors, {format_bytes(result.size_bytes)}) in "
        f"{result.seconds:.1f} s"
    )
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    if result.verification is not None:
        for line in result.verification.lines():
            print(line)
        if not result.verification.passed:
            print("error: verification failed; the file was kept for inspection.", file=sys.stderr)
