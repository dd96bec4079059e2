"""Loading a model the way this computer allows: the GPU plan, then retries on out-of-memory.

`load_with_fallback(path, options)` checks the options against their ranges, reads the GGUF
header once, fits the context, batch and threads to the model and the computer (saying so),
refuses (with numbers) a model that cannot fit this computer even on the CPU, plans the GPU
layers when asked for `AUTO_GPU_LAYERS`, and when llama.cpp runs out of memory retries with
fewer GPU layers (3/4, 1/2, 1/4, none), then with half the context, down to 512 tokens. The
CLI, the desktop app's worker and the benchmarks load through it.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from assistant.engine.runtime import ModelRuntime
from assistant.errors import ModelLoadError
from assistant.library.catalog import with_display_name
from assistant.library.fit import CTX_PAD, auto_gpu_layers, estimate, gpu_budget, padded_ctx
from assistant.library.gguf_header import GGUFInfo, read_gguf_info
from assistant.library.memory import SystemMemory, detect_memory
from assistant.library.sizes import format_bytes
from assistant.types import AUTO_GPU_LAYERS, LoadOptions

MIN_CTX = 512
_OOM = re.compile(
    r"out of memory|failed to allocate|unable to allocate|cudamalloc|"
    r"not enough memory|insufficient memory|erroroutofdevicememory|"
    r"failed to create (llama_)?context|memoryerror|cannot allocate",
    re.I,
)


def is_out_of_memory(error: BaseException) -> bool:
    return bool(_OOM.search(str(error)))


@dataclass(frozen=True)
class LoadChoice:
    n_gpu_layers: int
    n_ctx: int
    attempts: tuple[tuple[int, int, str], ...]  # (layers, context, error) of the failures
    message: str
    # what was fitted to the model or the computer, one user-facing line each (context above
    # the trained one, batch above the context, more threads than CPUs, context rounded up)
    adjustments: tuple[str, ...] = ()


def fallback_steps(layers: int, n_ctx: int) -> list[tuple[int, int]]:
    """What to try, in order: fewer layers (3/4, 1/2, 1/4, none), then halve the context."""
    steps = [(layers, n_ctx)]
    for share in (0.75, 0.5, 0.25, 0.0):
        k = int(layers * share)
        if k < steps[-1][0]:
            steps.append((k, n_ctx))
    ctx = n_ctx
    while ctx > MIN_CTX:
        ctx = max(MIN_CTX, ctx // 2)
        steps.append((0, ctx))
    return steps


def load_with_fallback(
    path: str | Path,
    options: LoadOptions | None = None,
    *,
    loader: Callable[[Path, LoadOptions], Any] | None = None,
    memory: SystemMemory | None = None,
    offload_supported: bool | None = None,
    cancel: threading.Event | None = None,
    progress: Callable[[float], None] | None = None,
) -> tuple[Any, LoadChoice]:
    """Load a model; on an out-of-memory failure retry with fewer GPU layers, then less context.

    `options.n_gpu_layers == AUTO_GPU_LAYERS` picks the layers from the estimate. `loader`
    defaults to `ModelRuntime`; tests inject one that fails. Returns (runtime, what was chosen
    and why). A file whose header cannot be read raises the reader's ModelLoadError, which
    names the file and the reason: there is nothing to retry.
    """
    path = Path(path).expanduser()
    options = (options or LoadOptions(n_gpu_layers=AUTO_GPU_LAYERS)).validated()
    info = with_display_name(read_gguf_info(path))
    options, adjustments = fitted_options(options, info)
    memory = memory or detect_memory()
    refuse_if_too_large(path, info, options, memory)
    layers, note = options.n_gpu_layers, ""
    if layers <= AUTO_GPU_LAYERS:
        plan = auto_gpu_layers(
            info,
            options.n_ctx,
            memory,
            offload_supported,
            n_batch=options.n_batch,
            flash_attn=options.flash_attn,
        )
        layers, note = plan.n_gpu_layers, plan.note
    elif layers < 0:
        layers = info.n_layers + 1
    if loader is None:

        def loader(p: Path, o: LoadOptions) -> ModelRuntime:
            # the header is read once; a cancel stops the load at its next progress step
            return ModelRuntime(p, o, header=info, cancel=cancel, progress=progress)

    failures: list[tuple[int, int, str]] = []
    for k, ctx in fallback_steps(layers, options.n_ctx):
        try:
            runtime = loader(path, replace(options, n_gpu_layers=k, n_ctx=ctx))
        except ModelLoadError as exc:
            if not is_out_of_memory(exc):
                raise
            failures.append((k, ctx, str(exc)))
            continue
        return runtime, LoadChoice(
            k, ctx, tuple(failures), _explain(k, ctx, options, failures, note), adjustments
        )
    tried = ", ".join(f"{k} GPU layers/{c} tokens" for k, c, _ in failures)
    raise ModelLoadError(
        f"Not enough memory to load {path.name}, even on the CPU with "
        f"{failures[-1][1]} tokens of context (tried {tried}). Close other "
        f"programs or choose a smaller quantization."
    )


def fitted_options(options: LoadOptions, info: GGUFInfo) -> tuple[LoadOptions, tuple[str, ...]]:
    """Valid options fitted to this model and computer (`LoadOptions.adjusted`), plus a line
    when llama.cpp will round the context up (it allocates it in steps of CTX_PAD tokens)."""
    options, notes = options.adjusted(info.n_ctx_train, os.cpu_count())
    if padded_ctx(options.n_ctx) != options.n_ctx:
        notes += (
            f"Context {options.n_ctx} is rounded up to {padded_ctx(options.n_ctx)} tokens "
            f"(llama.cpp allocates it in steps of {CTX_PAD}).",
        )
    return options, notes


def refuse_if_too_large(
    path: Path, info: GGUFInfo, options: LoadOptions, memory: SystemMemory
) -> None:
    """A model that cannot fit this computer's RAM even on the CPU is refused with numbers
    before llama.cpp tries (it would thrash the disk or be killed, not fail cleanly)."""
    if not memory.ram_total:
        return
    est = estimate(info, options.n_ctx, 0, n_batch=options.n_batch, flash_attn=options.flash_attn)
    vram = 0 if memory.unified else gpu_budget(memory)
    if est.total_bytes > memory.ram_total + vram:
        raise ModelLoadError(
            f"{path.name} is too large for this computer: at {options.n_ctx} tokens of context "
            f"it needs {_gib(est.total_bytes)} (weights {_gib(est.weights_bytes)}, KV cache "
            f"{_gib(est.kv_bytes)}, compute buffer {_gib(est.compute_bytes)}) but the "
            f"computer has {_gib(memory.ram_total)} of RAM"
            f"{f' and {_gib(vram)} of usable VRAM' if vram else ''}. Choose a smaller "
            "quantization or model, or a shorter context."
        )


def _gib(n: int) -> str:
    return format_bytes(n, binary=True)


def _explain(k: int, ctx: int, options: LoadOptions, failures: list, note: str) -> str:
    where = "on the CPU" if k == 0 else f"with {k} layers on the GPU"
    text = f"Loaded {where}, {ctx} tokens of context."
    if failures:
        first_k, first_ctx, _ = failures[0]
        text += (
            f" Loading with {first_k} GPU layers and {first_ctx} tokens ran out of memory"
            f" ({len(failures)} attempt{'s' if len(failures) > 1 else ''} failed), so "
            f"{'fewer layers' if k < first_k else 'less'}"
            f"{' and a shorter context' if ctx < options.n_ctx else ''} were used."
        )
    elif note:
        text += f" {note}"
    return text
