"""The conversion, start to end: a checkpoint (`steps`) or a PEFT adapter (`adapter_pipeline`)
into GGUF, with the options checked first.

Everything that can be refused (architecture, tokenizer, shapes, disk space) is checked
before the first byte is written. Progress goes to a callback (a terminal bar, a dialog).
"""

from __future__ import annotations

import threading
import time

from assistant.errors import ConversionError

from .adapter_pipeline import convert_adapter
from .lora import is_adapter_folder
from .mappers import mapper_for
from .options import ConvertOptions, ConvertResult, Progress, ProgressFn
from .out_types import OUT_TYPES
from .source import resolve_source
from .steps import convert_source


def convert(
    options: ConvertOptions,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
) -> ConvertResult:
    start = time.perf_counter()
    if options.out_type not in OUT_TYPES:
        raise ConversionError(
            f"Unknown type {options.out_type}; choose one of {', '.join(OUT_TYPES)}."
        )
    out = options.out.expanduser().resolve()
    if not out.parent.is_dir():
        raise ConversionError(f"The output folder {out.parent} does not exist.")
    if out.is_dir():
        raise ConversionError(f"{out} is a folder; give the .gguf file to write.")
    report = progress or (lambda p: None)
    if is_adapter_folder(options.source.expanduser()):
        return convert_adapter(options, out, report, cancel, start)
    if options.adapter_only or options.base:
        raise ConversionError(
            f"{options.source} is not a PEFT adapter folder (no adapter_config.json): "
            "--base and --adapter-only are for adapters."
        )
    source = resolve_source(options.source, options.config)
    try:
        mapper = mapper_for(source.architecture, source.config)
        return convert_source(options, out, source, mapper, report, cancel, start)
    finally:
        source.close()


__all__ = ["OUT_TYPES", "ConvertOptions", "ConvertResult", "Progress", "convert"]
