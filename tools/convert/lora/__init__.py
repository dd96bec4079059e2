"""PEFT LoRA adapters: read lazily, check against their base, merge or export for llama.cpp.

`open_adapter(folder, base_checkpoint, mapper)` reads `adapter_config.json` and the adapter's
weights (names and shapes only), refuses what cannot be merged exactly (DoRA, embeddings,
modules_to_save …) with "not supported: …", and checks every pair against the base's tensor.
`MergedCheckpoint` is the base with W + scale·B·A computed tensor by tensor in float32 (the
rest of the converter sees an ordinary checkpoint); `write_adapter_gguf` writes the pairs as a
GGUF LoRA adapter that llama.cpp applies at load on the base model's GGUF.
"""

from __future__ import annotations

from .adapter import Adapter, LoraPair, is_adapter_folder, open_adapter, resolve_base
from .config import AdapterConfig, read_adapter_config
from .export import write_adapter_gguf
from .merge import MergedCheckpoint

__all__ = [
    "Adapter",
    "AdapterConfig",
    "LoraPair",
    "MergedCheckpoint",
    "is_adapter_folder",
    "open_adapter",
    "read_adapter_config",
    "resolve_base",
    "write_adapter_gguf",
]
