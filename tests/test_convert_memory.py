"""Peak memory follows the largest tensor, not the model: lazy reads, one tensor at a time."""

from __future__ import annotations

import tracemalloc

import pytest

from tests.convert_models import write_random_llama
from tools.convert import ConvertOptions, convert

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
