"""GGUF files that would abort the process: refused by name (file, field, value) before llama.cpp
sees them, in bounded time, by the header reader, the library import and the CLI (exit 1, one
line, never 134). Hostile files are written here with the `gguf` package (tiny) or patched
copies of the embedded model."""

from __future__ import annotations

import os
import re
import struct
import subprocess
import sys
import time

import gguf
import pytest

from assistant.errors import ModelLoadError
from assistant.library import fit
from assistant.library.gguf_header import check_vocabulary, read_gguf_info
from assistant.library.memory import GpuMemory, SystemMemory
from tests.gguf_files import copy_with_duplicate_token, write_header_gguf

# case: (layers, header values, attention tensors, tensors, what the error must say)
HOSTILE = {
    "layers_513": (513, {}, False, None, "llama.block_count is 513; it must be 1 to 512"),
    "layers_0": (0, {}, False, 1, "llama.block_count is 0; it must be 1 to 512"),
    "layers_5e7": (
        1,
        {"llama.block_count": 50_000_000},
        False,
        None,
        "llama.block_count is 50000000, but the model has only 2 tensors",
    ),
    "no_heads": (
        1,
        {"llama.attention.head_count": 0},
        True,
        None,
        "llama.attention.head_count is 0, but the model has attention (blk.0.attn_q.weight)",
    ),
    "kv_heads_above_heads": (
        1,
        {"llama.attention.head_count": 2, "llama.attention.head_count_kv": 4},
        True,
        None,
        "llama.attention.head_count_kv is 4 with 2 heads",
    ),
    "kv_heads_per_layer_not_dividing": (
        2,
        {"llama.attention.head_count": 4, "llama.attention.head_count_kv": [2, 3]},
        True,
        None,
        "llama.attention.head_count_kv is 3 in layer 1 with 4 heads",
    ),
    "heads_not_dividing_embedding": (
        1,
        {"llama.attention.head_count": 3},
        True,
        None,
        "llama.attention.head_count is 3, which does not divide the embedding length 4",
    ),
    "heads_absurd": (
        1,
        {"llama.attention.head_count": 1 << 30},
        True,
        None,
        "llama.attention.head_count is 1073741824; it must be 1 to 4096",
    ),
    "embedding_wider_than_tensors": (
        1,
        {"llama.embedding_length": 1 << 30},
        False,
        None,
        "llama.embedding_length is 1073741824; it must be 1 to 8 (the widest tensor",
    ),
    "embedding_0": (1, {"llama.embedding_length": 0}, False, None, "embedding_length is 0"),
    "head_size_absurd": (
        1,
        {"llama.attention.key_length": 1 << 30},
        True,
        None,
        "llama.attention.key_length is 1073741824; it must be 1 to 8",
    ),
    "feed_forward_absurd": (
        1,
        {"llama.feed_forward_length": 1 << 31},
        False,
        None,
        "llama.feed_forward_length is 2147483648; it must be 0 to 8",
    ),
    "context_0": (1, {"llama.context_length": 0}, False, None, "context_length is 0; it must"),
    "context_absurd": (
        1,
        {"llama.context_length": (1 << 32) - 1},
        False,
        None,
        "llama.context_length is 4294967295; it must be 1 to 16777216",
    ),
    "vocab_absurd": (
        1,
        {"llama.vocab_size": 1 << 31},
        False,
        None,
        "llama.vocab_size is 2147483648; it must be 0 to 4194304",
    ),
    "experts_above_cap": (
        1,
        {"llama.expert_count": 1025, "llama.expert_used_count": 2},
        False,
        None,
        "llama.expert_count is 1025; it must be 0 to 1024",
    ),
    "experts_used_without_experts": (
        1,
        {"llama.expert_used_count": 2},
        False,
        None,
        "llama.expert_used_count is 2, but the model has no experts",
    ),
    "experts_none_used": (
        1,
        {"llama.expert_count": 4, "llama.expert_used_count": 0},
        False,
        None,
        "llama.expert_used_count is 0; it must be 1 to 4",
    ),
    "experts_more_used_than_exist": (
        1,
        {"llama.expert_count": 4, "llama.expert_used_count": 8},
        False,
        None,
        "llama.expert_used_count is 8; it must be 1 to 4",
    ),
    "expert_groups_not_dividing": (
        1,
        {
            "llama.expert_count": 8,
            "llama.expert_used_count": 2,
            "llama.expert_group_count": 3,
            "llama.expert_group_used_count": 1,
        },
        False,
        None,
        "llama.expert_group_count is 3, which does not divide 8",
    ),
    "rope_scaling_unknown": (
        1,
        {"llama.rope.scaling.type": "bogus"},
        False,
        None,
        "llama.rope.scaling.type is 'bogus'; llama.cpp knows none, linear, yarn, longrope",
    ),
    "next_token_layers_above_layers": (
        1,
        {"llama.nextn_predict_layers": 2},
        False,
        None,
        "llama.nextn_predict_layers is 2; it must be 0 to 1",
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_hyperparameters_are_one_named_error_in_bounded_time(tmp_path, case):
    layers, values, attention, tensors, reason = HOSTILE[case]
    path = write_header_gguf(
        tmp_path / f"{case}.gguf", layers, attention=attention, tensors=tensors, values=values
    )
    start = time.perf_counter()
    with pytest.raises(ModelLoadError) as error:
        read_gguf_info(path)
    assert time.perf_counter() - start < 2
    message = str(error.value)
    assert message.startswith(f"{path} is not a usable GGUF model file: ")
    assert reason in message and "\n" not in message


def test_plausible_values_are_accepted(tmp_path):
    """What real models have: grouped-query heads, experts in groups, per-layer head counts with
    layers without attention (hybrid models), a known RoPE scaling type."""
    values = {
        "llama.attention.head_count": 4,
        "llama.attention.head_count_kv": [2, 0],
        "llama.expert_count": 8,
        "llama.expert_used_count": 2,
        "llama.expert_group_count": 4,
        "llama.expert_group_used_count": 2,
        "llama.rope.scaling.type": "yarn",
    }
    info = read_gguf_info(write_header_gguf(tmp_path / "ok.gguf", 2, attention=True, values=values))
    assert info.n_layers == 2 and info.n_head_kv == (2, 0)
    adapter = write_header_gguf(tmp_path / "adapter.gguf", 1, values={"llama.block_count": None})
    assert read_gguf_info(adapter).n_layers == 0  # no block count: not a model, not an error


@pytest.mark.parametrize("n_fields", [1, 10**15], ids=["array_of_1e12_strings", "1e15_fields"])
def test_huge_stated_counts_cost_nothing(tmp_path, n_fields):
    """A count is checked against the bytes left before anything is iterated: an 8 MB file that
    claims 10**12 vocabulary strings (or 10**15 fields) used to be walked item by item."""
    key = b"test.huge"
    header = b"GGUF" + struct.pack("<IQQ", 3, 0, n_fields) + struct.pack("<Q", len(key)) + key
    array = struct.pack("<IIQ", 9, 8, 10**12)  # value type: array of strings, 10**12 of them
    path = tmp_path / "claims.gguf"
    path.write_bytes(header + array + b"\0" * (8 << 20))
    start = time.perf_counter()
    with pytest.raises(ModelLoadError, match="is truncated"):
        read_gguf_info(path)
    assert time.perf_counter() - start < 0.5


def test_gpu_layer_plan_is_one_pass_over_the_layers(tmp_path, monkeypatch, model_path):
    """The planner used to estimate every split (quadratic in layers); the table of VRAM by
    layer count is built in one pass and matches the estimate exactly."""
    info = read_gguf_info(model_path)
    for kwargs in ({}, {"flash_attn": True, "n_batch": 64, "cache_type": "q8_0"}):
        table = fit.vram_by_gpu_layers(info, 4096, **kwargs)
        expected = [fit.estimate(info, 4096, k, **kwargs).vram_bytes for k in range(32)]
        assert table == expected
    big = read_gguf_info(write_header_gguf(tmp_path / "512.gguf", 512))
    calls = []
    monkeypatch.setattr(fit, "estimate", lambda *a, **k: calls.append(1))
    gpu = GpuMemory(0, "Test GPU", total_bytes=8 << 30, free_bytes=8 << 30, backend="cuda")
    memory = SystemMemory(ram_total=16 << 30, ram_available=16 << 30, gpus=(gpu,))
    plan = fit.auto_gpu_layers(big, 4096, memory, offload_supported=True)
    assert plan.n_gpu_layers == 513 and not calls


def test_a_repeated_token_is_refused_at_load_and_import(tmp_path, model_path):
    """llama.cpp asserts every token is distinct (GGML_ASSERT in the vocabulary loader): such a
    file is listed, but refused by name before it is loaded or imported."""
    path, first, again = copy_with_duplicate_token(model_path, tmp_path / "dup.gguf")
    assert read_gguf_info(path).n_layers == 30  # listing stays cheap and works
    reason = re.escape(f"lists the same token twice (entries {first} and {again})")
    with pytest.raises(ModelLoadError, match=reason):
        check_vocabulary(path)
    from assistant.library import local

    with pytest.raises(ModelLoadError, match=reason):
        local.import_model(path)
    assert not any(p.name == "dup.gguf" for p in local.paths.models_dir().iterdir())
    check_vocabulary(model_path)  # the real vocabulary passes


def test_import_refuses_a_file_llama_cpp_would_abort_on(tmp_path):
    from assistant.library import local

    path = write_header_gguf(tmp_path / "layers513.gguf", 513)
    with pytest.raises(ModelLoadError, match="layers513.gguf .*block_count is 513"):
        local.import_model(path)
    assert not list(local.paths.models_dir().glob("*.gguf"))


def _ask(path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "assistant", "ask", "--model", str(path), *extra, "hi"],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ.copy(),
    )


@pytest.mark.parametrize("case", ["layers_513", "experts_used_without_experts", "layers_0"])
def test_cli_exits_1_with_one_line_never_134(tmp_path, case):
    layers, values, attention, tensors, reason = HOSTILE[case]
    path = write_header_gguf(
        tmp_path / f"{case}.gguf", layers, attention=attention, tensors=tensors, values=values
    )
    result = _ask(path)
    assert result.returncode == 1, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and reason in lines[0] and str(path) in lines[0]


def test_cli_refuses_a_repeated_token_with_one_line(tmp_path, model_path):
    path, first, again = copy_with_duplicate_token(model_path, tmp_path / "dup.gguf")
    result = _ask(path, "--max-tokens", "4")
    assert result.returncode == 1, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"entries {first} and {again}" in lines[0]


def test_the_gguf_package_agrees_on_the_token_list(tmp_path, model_path):
    """The patched copy is a well-formed GGUF (the gguf package reads it) with one repeat."""
    path, first, again = copy_with_duplicate_token(model_path, tmp_path / "dup.gguf")
    tokens = gguf.GGUFReader(str(path), "r").fields[gguf.Keys.Tokenizer.LIST].contents()
    assert tokens[first] == tokens[again] and len(set(tokens)) == len(tokens) - 1


def test_load_error_reason_comes_from_warnings_and_errors_only():
    """llama.cpp's information lines mention "unknown" harmlessly; a load that failed without an
    error line (a huge batch: llama-cpp-python's own MemoryError) was blamed on one of them."""
    from assistant.engine import llama_log
    from assistant.engine.runtime import _exception_reason

    marker = llama_log.mark()
    info = (
        b"llama_model_loader: - kv  29:  tokenizer.ggml.unknown_token_id u32 = 0\n",
        b"print_info: rope_finetuned        = unknown\n",
    )
    for text in info:
        llama_log._callback(2, text, None)  # INFO
    llama_log._callback(1, b"graph_reserve: failed? no, a debug line\n", None)  # DEBUG
    assert llama_log.reason_since(marker) == ""
    memory = MemoryError("Unable to allocate 179. TiB for an array with shape (1000000000, 49152)")
    assert _exception_reason(memory).startswith("not enough memory (Unable to allocate 179. TiB")
    llama_log._callback(3, b"llama_context: failed to allocate compute buffer\n", None)  # WARN
    assert llama_log.reason_since(marker) == "failed to allocate compute buffer"
    llama_log._callback(4, b"llama_model_load: error loading model: bad tensor\n", None)  # ERROR
    assert llama_log.reason_since(marker) == "bad tensor"
