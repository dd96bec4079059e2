"""Fit estimates on real GGUF headers against hand-computed numbers; GPU layers; load retries."""

from __future__ import annotations

import re

import pytest

from assistant.engine import llama_log, loading
from assistant.engine.loading import load_with_fallback
from assistant.engine.runtime import ModelRuntime
from assistant.errors import ModelLoadError
from assistant.library import fit, memory
from assistant.library.fit import auto_gpu_layers, estimate
from assistant.library.gguf_header import read_gguf_info
from assistant.library.memory import GIB, MIB, GpuMemory, SystemMemory
from assistant.types import AUTO_GPU_LAYERS, LoadOptions
from tests.hub_server import write_model_gguf
from tests.test_models_gguf_info import HOSTILE, write_gguf_with

NO_GPU = SystemMemory(16 * GIB, 8 * GIB)


def with_gpu(free: int, total: int = 8 * GIB, ram: int = 8 * GIB) -> SystemMemory:
    return SystemMemory(16 * GIB, ram, (GpuMemory(0, "Test GPU", total, free, "cuda"),))


@pytest.fixture(scope="module")
def smollm(model_path):
    return read_gguf_info(model_path)


def test_tiny_model_hand_computed(tmp_path):
    info = read_gguf_info(write_model_gguf(tmp_path / "tiny.gguf"))
    e = estimate(info, 512)
    # 512 tokens x 2 layers x 2 KV heads x (16 + 16) x 2 bytes (f16)
    assert e.kv_bytes == e.kv_cpu == 131_072
    # 4 B x 512 x max(256 + 2 x 64, 4 x 512 + 512 + 128 + 2 x 64) + 4 B x 256 (logits)
    assert e.compute_bytes == e.compute_cpu == 4 * 512 * 2816 + 1024
    assert e.weights_bytes == e.weights_cpu == 2 * 74_240 + 32_768 + 32_768 + 256
    assert e.vram_bytes == 0
    # The context is padded to 256 tokens; q8_0 cache: 34 bytes per 32 values
    assert estimate(info, 300).kv_bytes == estimate(info, 512).kv_bytes
    assert estimate(info, 512, cache_type="q8_0").kv_bytes == 131_072 // 2 * 34 // 32


def test_tiny_model_gpu_split(tmp_path):
    info = read_gguf_info(write_model_gguf(tmp_path / "tiny.gguf"))
    one = estimate(info, 512, 1)  # the last block and its KV cache
    assert (one.weights_gpu, one.kv_gpu) == (74_240, 65_536)
    assert one.weights_cpu == 74_240 + 32_768 + 32_768 + 256
    assert one.compute_gpu == 4 * 512 * 2816 + 1024
    assert one.compute_cpu == 4 * 512 * 2 * 64 + 4 * 512 * (256 + 128)  # inputs + logits
    full = estimate(info, 512, -1)  # blocks + output head: 3 "layers"
    assert full.n_gpu_layers == 3
    assert full.weights_gpu == 2 * 74_240 + 32_768 + 256 and full.weights_cpu == 32_768
    assert full.kv_cpu == 0 and full.compute_cpu == 4 * 512 * 2 * 64


def test_tied_head_is_copied_to_the_gpu(tmp_path):
    info = read_gguf_info(write_model_gguf(tmp_path / "tied.gguf", tied=True))
    full = estimate(info, 512, 3)
    assert full.weights_gpu == 2 * 74_240 + 256 + 32_768  # norm + token_embd copy
    assert full.weights_cpu == 32_768


def test_embedded_model_hand_computed(smollm):
    e = estimate(smollm, 4096)
    assert e.kv_bytes == 4096 * 30 * 3 * (64 + 64) * 2 == 94_371_840
    assert e.weights_bytes == 96_576_768
    assert e.compute_bytes == 4 * 512 * (49152 + 2 * 576) + 4 * 49152  # logits dominate
    big = estimate(smollm, 8192)  # here the 9 x 8192 attention scores dominate
    assert big.compute_bytes == 4 * 512 * (9 * 8192 + 8192 + 1536 + 2 * 576) + 4 * 49152


def test_compute_estimate_matches_llama_cpp(model_path, smollm):
    """llama.cpp logs its compute buffer size: the formula must be within 5 % of it."""
    marker = llama_log.mark()
    rt = ModelRuntime(model_path, LoadOptions(n_ctx=1024, n_threads=2))
    rt.close()
    text = "".join(t for _, t in llama_log.lines_since(marker))
    found = re.findall(r"CPU compute buffer size\s*=\s*([\d.]+) MiB", text)
    if not found:
        pytest.skip("this llama.cpp build does not log its compute buffer size")
    measured = float(found[-1]) * MIB
    assert estimate(smollm, 1024).compute_bytes == pytest.approx(measured, rel=0.05)


def test_auto_layers_fit_hand_computed_budget(smollm):
    total = 8 * GIB
    reserve = fit.GPU_RESERVE + int(total * fit.GPU_RESERVE_SHARE)
    per_layer = 2_216_448 + 4096 * 3 * 128 * 2  # weights + KV of one block
    compute = 4 * 512 * (49152 + 2 * 576) + 4 * 49152
    free = reserve + 10 * per_layer + compute + per_layer // 2
    plan = auto_gpu_layers(smollm, 4096, with_gpu(free, total), offload_supported=True)
    assert plan.n_gpu_layers == 10
    assert "10 of 31 layers" in plan.note
    verdict = fit.fit(smollm, 4096, with_gpu(free, total), offload_supported=True)
    assert verdict.kind == "partial" and verdict.label.startswith("partly offloaded (10 of 31")
    assert verdict.estimate.vram_bytes <= fit.gpu_budget(with_gpu(free, total))


def test_verdicts(smollm):
    assert fit.fit(smollm, 4096, with_gpu(8 * GIB), offload_supported=True).kind == "gpu"
    cpu = fit.fit(smollm, 4096, NO_GPU)
    assert cpu.kind == "cpu" and cpu.n_gpu_layers == 0
    assert "CPU only at 4096 tokens" in cpu.message and "KV cache 90 MiB" in cpu.message
    small = SystemMemory(1 * GIB, 600 * MIB)
    too = fit.fit(smollm, 4096, small)
    assert too.kind == "too_large" and "smaller quantization" in too.message
    long = fit.fit(smollm, 16384, NO_GPU)
    assert "trained on 8192 tokens" in long.message
    assert fit.fit(smollm, 4096, with_gpu(100 * MIB), offload_supported=True).kind == "cpu"


def test_gpu_without_gpu_build_says_how_to_install(smollm):
    verdict = fit.fit(smollm, 4096, with_gpu(8 * GIB), offload_supported=False)
    assert verdict.kind == "cpu"
    assert 'CMAKE_ARGS="-DGGML_CUDA=on" pip install --force-reinstall' in verdict.message
    assert "llama-cpp-python==0.3.36" in verdict.message
    apple = SystemMemory(
        16 * GIB, 8 * GIB, (GpuMemory(0, "Apple GPU", 12 * GIB, 8 * GIB, "metal"),), unified=True
    )
    assert "-DGGML_METAL=on" in auto_gpu_layers(smollm, 4096, apple, False).note


def test_unified_memory_counts_gpu_share_against_ram(smollm):
    apple = SystemMemory(
        2 * GIB,
        700 * MIB,
        (GpuMemory(0, "Apple GPU", 1536 * MIB, 700 * MIB, "metal"),),
        unified=True,
    )
    verdict = fit.fit(smollm, 8192, apple, offload_supported=True)
    assert verdict.kind == "too_large"  # 0.43 GiB > 700 MiB - 512 MiB reserve


def test_parse_nvidia_smi(monkeypatch):
    text = "0, NVIDIA H100 80GB HBM3, 80000, 81559\n1, NVIDIA RTX 4090, [N/A], 24564\n"
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    gpus = memory.parse_nvidia_smi(text)
    assert len(gpus) == 1 and gpus[0].free_bytes == 80000 * MIB
    assert gpus[0].total_bytes == 81559 * MIB and gpus[0].backend == "cuda"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert memory.parse_nvidia_smi(text) == []


def test_detect_memory_reads_this_machine():
    found = memory.detect_memory()
    assert found.ram_total > 0 and 0 < found.ram_available <= found.ram_total


# -- load_with_fallback -----------------------------------------------------------------------
class FakeLoader:
    """Fails like llama.cpp does when memory runs out, above the given limits."""

    def __init__(self, max_layers: int, max_ctx: int = 1 << 20, message: str | None = None):
        self.max_layers, self.max_ctx, self.calls = max_layers, max_ctx, []
        self.message = message or "cudaMalloc failed: out of memory"

    def __call__(self, path, options: LoadOptions):
        self.calls.append((options.n_gpu_layers, options.n_ctx))
        if options.n_gpu_layers > self.max_layers or options.n_ctx > self.max_ctx:
            raise ModelLoadError(f"Could not load the model {path}: {self.message}.")
        return ("runtime", options)


def test_retry_with_fewer_layers(model_path):
    loader = FakeLoader(max_layers=12)
    runtime, choice = load_with_fallback(
        model_path, LoadOptions(n_ctx=4096, n_gpu_layers=31), loader=loader
    )
    assert loader.calls == [(31, 4096), (23, 4096), (15, 4096), (7, 4096)]
    assert runtime[1].n_gpu_layers == 7 and choice.n_gpu_layers == 7
    assert len(choice.attempts) == 3
    assert choice.message.startswith("Loaded with 7 layers on the GPU, 4096 tokens of context.")
    assert "31 GPU layers and 4096 tokens ran out of memory" in choice.message


def test_retry_then_smaller_context(model_path):
    loader = FakeLoader(
        max_layers=0, max_ctx=1024, message="failed to allocate buffer for kv cache"
    )
    _, choice = load_with_fallback(
        model_path, LoadOptions(n_ctx=8192, n_gpu_layers=8), loader=loader
    )
    assert loader.calls == [
        (8, 8192),
        (6, 8192),
        (4, 8192),
        (2, 8192),
        (0, 8192),
        (0, 4096),
        (0, 2048),
        (0, 1024),
    ]
    assert (choice.n_gpu_layers, choice.n_ctx) == (0, 1024)
    assert "on the CPU, 1024 tokens" in choice.message and "shorter context" in choice.message


def test_other_errors_are_not_retried(model_path):
    loader = FakeLoader(max_layers=0, message="unknown model architecture: 'foo'")
    with pytest.raises(ModelLoadError, match="unknown model architecture"):
        load_with_fallback(model_path, LoadOptions(n_gpu_layers=4), loader=loader)
    assert len(loader.calls) == 1


def test_gives_up_with_a_clear_message(model_path):
    loader = FakeLoader(max_layers=-1)
    with pytest.raises(ModelLoadError, match="Not enough memory to load .* even on the CPU"):
        load_with_fallback(model_path, LoadOptions(n_ctx=1024, n_gpu_layers=2), loader=loader)


def test_auto_layers_then_retry(model_path):
    loader = FakeLoader(max_layers=20)
    _, choice = load_with_fallback(
        model_path,
        LoadOptions(n_ctx=4096, n_gpu_layers=AUTO_GPU_LAYERS),
        loader=loader,
        memory=with_gpu(8 * GIB),
        offload_supported=True,
    )
    assert loader.calls[0] == (31, 4096)  # the estimate said everything fits
    assert choice.n_gpu_layers == 15


def test_real_load_on_cpu(model_path):
    runtime, choice = load_with_fallback(
        model_path, LoadOptions(n_ctx=512, n_threads=2, n_gpu_layers=AUTO_GPU_LAYERS), memory=NO_GPU
    )
    try:
        assert runtime.n_ctx == 512 and choice.n_gpu_layers == 0
        assert "No GPU found" in choice.message
    finally:
        runtime.close()


def test_a_model_larger_than_the_computer_is_refused_with_numbers(model_path):
    tiny_computer = SystemMemory(ram_total=64 * 1024 * 1024, ram_available=32 * 1024 * 1024)
    loads = []
    with pytest.raises(ModelLoadError, match=r"too large for this computer.*needs .* of RAM"):
        load_with_fallback(
            model_path,
            LoadOptions(n_ctx=2048),
            memory=tiny_computer,
            loader=lambda p, o: loads.append(o),
        )
    assert loads == [], "llama.cpp is never asked to load it"


# -- the header is read once, by the one reader; its errors are named, never swallowed ----------
def test_an_unusable_header_is_refused_before_llama_cpp(tmp_path):
    path = write_gguf_with(tmp_path / "bad.gguf", HOSTILE["file_type_array"][0])
    loads = []
    with pytest.raises(ModelLoadError, match=r"bad.gguf is not a usable GGUF model file: general"):
        load_with_fallback(
            path, LoadOptions(n_ctx=512), memory=NO_GPU, loader=lambda p, o: loads.append(o)
        )
    assert loads == [], "llama.cpp is never asked to load it"


def test_a_bug_in_the_header_reader_is_not_swallowed(model_path, monkeypatch):
    """Only the reader's documented ModelLoadError means 'unusable file'; a bug surfaces."""

    def broken(path):
        raise TypeError("a bug in the reader")

    monkeypatch.setattr(loading, "read_gguf_info", broken)
    loads = []
    with pytest.raises(TypeError, match="a bug in the reader"):
        load_with_fallback(
            model_path, LoadOptions(n_ctx=512), memory=NO_GPU, loader=lambda p, o: loads.append(o)
        )
    assert loads == []


def test_runtime_names_an_unusable_header_when_planning_gpu_layers(tmp_path):
    path = write_gguf_with(tmp_path / "zero-align.gguf", HOSTILE["alignment_zero"][0])
    with pytest.raises(ModelLoadError, match="zero-align.gguf .*general.alignment is 0"):
        ModelRuntime(path, LoadOptions(n_ctx=256, n_gpu_layers=AUTO_GPU_LAYERS))


def test_runtime_info_is_the_header(model_path, smollm):
    rt = ModelRuntime(model_path, LoadOptions(n_ctx=256, n_threads=2))
    try:
        info = rt.info
        assert info.header == smollm
        assert info.chat_template == rt._llm.metadata["tokenizer.chat_template"]
        assert info.n_params == rt._llm._model.n_params()  # llama.cpp counts the same
        assert info.n_ctx_train == rt._llm._model.n_ctx_train() == 8192
        assert info.size_bytes == model_path.stat().st_size
        summary = info.summary()
        assert (summary["quantization"], summary["layers"]) == ("Q4_1", 30)
        assert summary["runs_on"] == "CPU"
    finally:
        rt.close()
