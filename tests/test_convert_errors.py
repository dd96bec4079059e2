"""What must be refused is refused with a clear ConversionError, and leaves nothing behind."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import pytest
import torch

from assistant.errors import ConversionError
from tests.convert_models import write_random_llama
from tools.convert import ConvertOptions, convert
from tools.convert import writer as writer_module


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory) -> Path:
    return write_random_llama(tmp_path_factory.mktemp("random_llama"))


@pytest.fixture
def out_dir(tmp_path) -> Path:
    out = tmp_path / "out"
    out.mkdir()
    return out


def copy_model(src: Path, dst: Path, *, skip: tuple[str, ...] = (), config: dict | None = None):
    dst.mkdir()
    for item in src.iterdir():
        if item.name not in skip:
            shutil.copy(item, dst / item.name)
    if config is not None:
        data = json.loads((dst / "config.json").read_text())
        data.update(config)
        (dst / "config.json").write_text(json.dumps(data))
    return dst


def refused(source: Path, out_dir: Path, match: str, **options) -> ConversionError:
    with pytest.raises(ConversionError, match=match) as info:
        convert(ConvertOptions(source, out_dir / "model.gguf", **options))
    assert list(out_dir.iterdir()) == [], "no output (and no temporary file) is left"
    return info.value


class Evil:
    """Unpickling this calls open(path, 'w'): it creates the marker file if ever executed."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_unsupported_architecture(llama_dir, tmp_path, out_dir):
    src = copy_model(
        llama_dir, tmp_path / "falcon", config={"architectures": ["FalconForCausalLM"]}
    )
    error = refused(src, out_dir, "unsupported architecture FalconForCausalLM; supported: ")
    assert "LlamaForCausalLM" in str(error) and "GPT2LMHeadModel" in str(error)


def test_missing_tokenizer(llama_dir, tmp_path, out_dir):
    src = copy_model(llama_dir, tmp_path / "no_tok", skip=("tokenizer.model",))
    error = refused(src, out_dir, "No tokenizer found")
    assert "--tokenizer" in str(error) and "tokenizer.model" in str(error)


def test_shape_mismatch(llama_dir, tmp_path, out_dir):
    src = copy_model(llama_dir, tmp_path / "bad_shape", config={"intermediate_size": 96})
    refused(
        src, out_dir, r"Shape mismatch for 'model\.layers\.0\.mlp\.(gate|up|down)_proj\.weight'"
    )


def test_missing_layer(llama_dir, tmp_path, out_dir):
    src = copy_model(llama_dir, tmp_path / "three", config={"num_hidden_layers": 3})
    refused(src, out_dir, r"lacks tensors .*blk\.2\.")


def test_truncated_safetensors(llama_dir, tmp_path, out_dir):
    src = copy_model(llama_dir, tmp_path / "truncated")
    weights = src / "model.safetensors"
    os.truncate(weights, weights.stat().st_size // 2)
    refused(src, out_dir, "truncated")


@pytest.mark.parametrize("zip_format", [True, False])
def test_malicious_pytorch_pickle(llama_dir, tmp_path, out_dir, zip_format):
    marker = tmp_path / "pwned"
    bad = tmp_path / "bad.pt"
    payload = {"model": {"x": torch.zeros(2)}, "model_args": Evil(marker)}
    if zip_format:
        torch.save(payload, bad)
    else:
        bad.write_bytes(pickle.dumps(payload, protocol=2))
    error = refused(bad, out_dir, "could run arbitrary code", config=llama_dir / "config.json")
    assert "Refusing" in str(error)
    assert not marker.exists(), "the pickle's code was executed"


def test_malicious_meta_pkl(llama_dir, tmp_path, out_dir):
    marker = tmp_path / "pwned"
    meta = tmp_path / "meta.pkl"
    meta.write_bytes(pickle.dumps({"stoi": {"a": 0}, "hook": Evil(marker)}))
    refused(llama_dir, out_dir, "not plain data", tokenizer=meta)
    assert not marker.exists(), "the pickle's code was executed"


def test_unknown_tensors_are_refused(llama_dir, tmp_path, out_dir):
    from safetensors.numpy import load_file, save_file

    src = copy_model(llama_dir, tmp_path / "extra")
    tensors = load_file(str(src / "model.safetensors"))
    tensors["model.layers.0.mlp.extra_proj.weight"] = tensors["model.norm.weight"]
    save_file(tensors, str(src / "model.safetensors"))
    refused(src, out_dir, r"does not use: model\.layers\.0\.mlp\.extra_proj\.weight")


def test_bare_state_dict_needs_config(llama_dir, tmp_path, out_dir):
    from safetensors.torch import load_file

    bare = tmp_path / "bare"
    bare.mkdir()
    torch.save(load_file(str(llama_dir / "model.safetensors")), bare / "weights.pt")
    refused(bare / "weights.pt", out_dir, "--config")
    result = convert(
        ConvertOptions(
            bare / "weights.pt",
            out_dir / "bare.gguf",
            "f16",
            config=llama_dir / "config.json",
            tokenizer=llama_dir / "tokenizer.model",
        )
    )
    assert result.path.is_file() and result.gguf_architecture == "llama"


def test_interrupted_write_leaves_no_file_and_keeps_the_old_one(llama_dir, out_dir, monkeypatch):
    target = out_dir / "model.gguf"
    target.write_bytes(b"previous good file")
    calls = {"n": 0}
    real_encode = writer_module.encode

    def failing_encode(data, qtype):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real_encode(data, qtype)

    monkeypatch.setattr(writer_module, "encode", failing_encode)
    with pytest.raises(KeyboardInterrupt):
        convert(ConvertOptions(llama_dir, target, "f16"))
    assert target.read_bytes() == b"previous good file"
    assert [p.name for p in out_dir.iterdir()] == ["model.gguf"]


def test_not_enough_disk_space(llama_dir, out_dir, monkeypatch):
    usage = shutil.disk_usage(out_dir)
    monkeypatch.setattr(
        writer_module.shutil, "disk_usage", lambda p: usage._replace(free=1024 * 1024)
    )
    refused(llama_dir, out_dir, "Not enough free disk space")


def test_failed_quantization_removes_the_temporary_file(llama_dir, out_dir, monkeypatch):
    from tools.convert import steps

    def fail(src, dst, kind, threads=None):
        assert src.is_file()
        raise ConversionError("llama.cpp could not quantize (simulated).")

    monkeypatch.setattr(steps, "quantize_file", fail)
    refused(llama_dir, out_dir, "simulated", out_type="q4_k_m")


def test_unknown_type_and_missing_source(llama_dir, tmp_path, out_dir):
    refused(llama_dir, out_dir, "Unknown type q3_x", out_type="q3_x")
    refused(tmp_path / "nowhere", out_dir, "does not exist")
