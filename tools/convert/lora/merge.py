"""The base checkpoint with a LoRA merged in, one tensor at a time."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..checkpoints import Checkpoint, TensorInfo
from .adapter import Adapter


class MergedCheckpoint(Checkpoint):
    """Reads like the base; an adapted tensor comes out as W + scale·B·A, computed in float32
    when it is loaded (memory: that tensor and its delta, never the whole model)."""

    def __init__(self, base: Checkpoint, adapter: Adapter):
        self.base = base
        self.adapter = adapter

    @property
    def tensors(self) -> Mapping[str, TensorInfo]:
        return self.base.tensors

    def load(self, name: str) -> np.ndarray:
        data = self.base.load(name)
        pair = self.adapter.pairs.get(name)
        if pair is None:
            return data
        merged = np.array(data, dtype=np.float32)  # a copy: the base may be a read-only map
        del data
        merged += self.adapter.delta(pair)
        return merged

    def close(self) -> None:
        self.adapter.close()
        self.base.close()
