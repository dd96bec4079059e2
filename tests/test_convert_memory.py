"""Peak memory follows the largest tensor (conversion) or one layer (verification), not the
model: lazy reads, one tensor or layer at a time."""

from __future__ import annotations

import tracemalloc
import weakref
from collections.abc import Mapping

import pytest

from tests.convert_models import write_random_llama
from tools.convert import ConvertOptions, convert
from tools.convert.mappers import mapper_for
from tools.convert.reference import LazyWeights
from tools.convert.source import resolve_source

HIDDEN, LAYERS, FF = 256, 8, 1024


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    return write_random_llama(
        tmp_path_factory.mktemp("mem_llama"),
        hidden=HIDDEN,
        layers=LAYERS,
        ff=FF,
        heads=8,
        kv_heads=2,
    )


@pytest.mark.parametrize("out_type", ["f16", "bf16", "q8_0"])
def test_peak_allocations_near_largest_tensor(llama_dir, tmp_path, out_type):
    model_bytes = (llama_dir / "model.safetensors").stat().st_size
    largest = FF * HIDDEN * 4  # an f32 MLP matrix
    tracemalloc.start()
    try:
        convert(ConvertOptions(llama_dir, tmp_path / "out.gguf", out_type))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert model_bytes > 25 * largest
    assert peak < 3 * largest, f"peak {peak / 1e6:.1f} MB for a {model_bytes / 1e6:.0f} MB model"


class _Tracked(Mapping):
    """Weights that count the bytes of the tensors handed out and still alive."""

    def __init__(self, inner: Mapping):
        self.inner = inner
        self.live = self.peak = 0

    def __getitem__(self, name: str):
        tensor = self.inner[name]
        size = tensor.numel() * tensor.element_size()
        self.live += size
        self.peak = max(self.peak, self.live)
        weakref.finalize(tensor, self._freed, size)
        return tensor

    def _freed(self, size: int) -> None:
        self.live -= size

    def __iter__(self):
        return iter(self.inner)

    def __len__(self) -> int:
        return len(self.inner)


def test_verify_reference_holds_about_one_layer(llama_dir):
    """--verify's PyTorch forward reads one layer at a time (a 7B model verifies in about the
    memory of its checkpoint, not 28 GB of float32)."""
    source = resolve_source(llama_dir)
    try:
        mapper = mapper_for(source.architecture, source.config)
        weights = _Tracked(LazyWeights(source.checkpoint))
        logits = mapper.reference_logits(weights, [[1, 5, 9, 13, 17, 21]] * 4)
        assert len(logits) == 4 and logits[0].shape == (6, mapper.n_vocab)
        infos = source.checkpoint.tensors
        whole = sum(4 * i.n_elements for i in infos.values())
        layer = sum(4 * i.n_elements for n, i in infos.items() if n.startswith("model.layers.0."))
        largest = max(4 * i.n_elements for i in infos.values())
    finally:
        source.close()
    assert weights.peak <= layer + 2 * largest, (weights.peak, layer, largest)
    assert weights.peak < whole / 4
