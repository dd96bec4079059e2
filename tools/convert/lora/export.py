"""A LoRA adapter as a GGUF file llama.cpp applies at load (`--lora`, `lora_path`).

The layout llama.cpp expects (its convert_lora_to_gguf.py writes the same): general.type
"adapter", adapter.type "lora", adapter.lora.alpha, the base's architecture, and for each adapted
weight `<gguf name>.lora_a` (A, [r, in]) and `.lora_b` (B, [out, r]). llama.cpp scales every
pair by alpha / r with r read from the tensor, so a per-module scale (rsLoRA's alpha/√r,
rank and alpha patterns) is folded into B; B also gets the row permutation the mapper applies
to the base weight (LLaMA's q and k), so B·A lines up with the converted weight.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import gguf
import numpy as np

from ..mappers.base import Mapper, PlannedTensor
from ..writer import GGUFFile
from .adapter import Adapter, LoraPair


def adapter_plan(adapter: Adapter, mapper: Mapper) -> list[PlannedTensor]:
    alpha = adapter.config.alpha
    plan: list[PlannedTensor] = []
    for pair in sorted(adapter.pairs.values(), key=lambda p: _order(p.target)):
        factor = pair.scale if alpha == 0 else pair.scale * pair.rank / alpha
        info_a = adapter.weights.tensors[pair.a]
        info_b = adapter.weights.tensors[pair.b]

        def load_a(pair: LoraPair = pair) -> np.ndarray:
            return adapter.load_a(pair)

        def load_b(pair: LoraPair = pair, factor: float = factor) -> np.ndarray:
            b = adapter.load_b(pair)
            if factor != 1.0:
                b *= np.float32(factor)
            return mapper.lora_b(pair.weight, pair.target, b)

        plan += [
            PlannedTensor(
                pair.target + ".lora_a",
                (pair.rank, pair.in_features),
                pair.a,
                info_a.dtype,
                load_a,
            ),
            PlannedTensor(
                pair.target + ".lora_b",
                (pair.out_features, pair.rank),
                pair.b,
                info_b.dtype,
                load_b,
            ),
        ]
    return plan


def _order(target: str) -> tuple[int, str]:
    parts = target.split(".")
    return (int(parts[1]), target) if parts[0] == "blk" else (-1, target)


def write_adapter_gguf(
    adapter: Adapter,
    mapper: Mapper,
    path: Path,
    out_type: str,
    name: str,
    base_name: str,
    on_tensor: Callable[[str, int], None] | None = None,
    cancel: threading.Event | None = None,
) -> GGUFFile:
    """Write the adapter to `path` (the caller makes it atomic); returns what was written."""
    gguf_file = GGUFFile(adapter_plan(adapter, mapper), out_type)

    def metadata(w: gguf.GGUFWriter) -> None:
        w.add_type(gguf.GGUFType.ADAPTER)
        w.add_name(name)
        w.add_string(gguf.Keys.Adapter.TYPE, "lora")
        w.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(adapter.config.alpha))
        # not read by llama.cpp; lets a loader name the base and check the layer count
        w.add_block_count(mapper.n_layer)
        w.add_base_model_count(1)
        w.add_base_model_name(0, base_name)

    gguf_file.write(path, mapper.arch_name, metadata, on_tensor, cancel)
    return gguf_file
