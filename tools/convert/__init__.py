"""Checkpoint → GGUF conversion: read lazily, map one architecture, write, quantize, verify.

`convert(ConvertOptions(...))` is the entry point for the CLI and the desktop app; the pieces
(checkpoint readers, mappers, vocabularies, writer, quantizer, verifier, and `lora` for PEFT
adapters, merged or exported as GGUF adapters) are usable alone.
Importing the package is cheap: the pipeline (numpy, gguf) loads on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .pipeline import ConvertOptions, ConvertResult, Progress, convert

__all__ = ["ConvertOptions", "ConvertResult", "Progress", "convert"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
