"""Adapters that cannot be converted or applied are refused with one clear message, and leave
no file behind: a mismatched base (at conversion and at load), unsupported targets, DoRA,
modules_to_save, a truncated file; plus the base found in the Hugging Face cache."""

from __future__ import annotations

import copy
import json
import os
import shutil
from pathlib import Path

import pytest

from assistant.cli import main as assistant_main
from assistant.engine.runtime import ModelRuntime
from assistant.errors import ConversionError, ModelLoadError
from assistant.types import LoadOptions
from tests.convert_models import zoo_for
from tools.convert import ConvertOptions, convert


@pytest.fixture(scope="session")
def zoo(tmp_path_factory):
    return zoo_for(tmp_path_factory)


@pytest.fixture
def out_dir(tmp_path) -> Path:
    out = tmp_path / "out"
    out.mkdir()
    return out


def peft_adapter(zoo, folder: Path, base: str = "qwen3", **config) -> Path:
    """An untrained PEFT adapter (random B, so it is not a no-op) of the zoo model `base`."""
    from peft import LoraConfig, get_peft_model

    model = zoo.get(base)
    settings = dict(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    peft_model = get_peft_model(copy.deepcopy(model.model), LoraConfig(**{**settings, **config}))
    peft_model.peft_config["default"].base_model_name_or_path = str(model.source)
    peft_model.save_pretrained(folder)
    return folder


def refused(source: Path, out_dir: Path, match: str, **options) -> ConversionError:
    with pytest.raises(ConversionError, match=match) as info:
        convert(ConvertOptions(source, out_dir / "model.gguf", **options))
    assert list(out_dir.iterdir()) == [], "no output (and no temporary file) is left"
    return info.value


def test_mismatched_base_names_both(zoo, tmp_path, out_dir):
    adapter = peft_adapter(zoo, tmp_path / "qwen3-adapter")
    gemma = zoo.get("gemma3").source
    error = refused(adapter, out_dir, "does not fit the base", base=str(gemma))
    assert "gemma3" in str(error) and "qwen3-adapter" in str(error) and "q_proj" in str(error)
    refused(adapter, out_dir, "does not have", base=str(zoo.get("phi3").source))  # fused qkv


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"target_modules": ["embed_tokens"]}, "not supported: LoRA on embeddings"),
        ({"target_modules": ["q_proj", "lm_head"]}, "not supported: LoRA on lm_head"),
        ({"use_dora": True}, "not supported: DoRA"),
        ({"modules_to_save": ["lm_head"]}, r"not supported: modules_to_save \(lm_head\)"),
        ({"init_lora_weights": "pissa"}, "changes the base weights"),
    ],
)
def test_unsupported_adapters(zoo, tmp_path, out_dir, config, match):
    adapter = peft_adapter(zoo, tmp_path / "adapter", **config)
    refused(adapter, out_dir, match)
    refused(adapter, out_dir, match, adapter_only=True)


def test_truncated_adapter_file(zoo, tmp_path, out_dir):
    adapter = peft_adapter(zoo, tmp_path / "adapter")
    weights = adapter / "adapter_model.safetensors"
    os.truncate(weights, weights.stat().st_size - 100)
    refused(adapter, out_dir, "adapter_model.safetensors is truncated")


def test_missing_base_and_wrong_options(zoo, tmp_path, out_dir):
    adapter = peft_adapter(zoo, tmp_path / "adapter")
    refused(adapter, out_dir, "does not exist", base=str(tmp_path / "nowhere"))
    refused(adapter, out_dir, "neither a folder nor in the local Hugging Face cache", base="a/b")
    refused(adapter, out_dir, "An adapter is written as", adapter_only=True, out_type="q4_k_m")
    refused(adapter, out_dir, "is a GGUF file", base=str(zoo.convert("qwen3", "f16").path))
    config = json.loads((adapter / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = None
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    refused(adapter, out_dir, "names no base model")
    refused(zoo.get("qwen3").source, out_dir, "not a PEFT adapter folder", adapter_only=True)


def test_base_from_the_hugging_face_cache(zoo, tmp_path, out_dir, monkeypatch):
    """A Hub id as --base is found in the local cache (never downloaded)."""
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    repo = cache / "models--someone--tiny-qwen3"
    snapshot = repo / "snapshots" / ("0" * 40)
    shutil.copytree(zoo.get("qwen3").source, snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    adapter = peft_adapter(zoo, tmp_path / "adapter")
    result = convert(ConvertOptions(adapter, out_dir / "a.gguf", "f16", base="someone/tiny-qwen3"))
    assert result.base == snapshot and result.path.is_file()


def test_adapter_for_another_model_is_refused_at_load(zoo, tmp_path, out_dir):
    adapter = peft_adapter(zoo, tmp_path / "qwen3-adapter")
    gguf_adapter = convert(
        ConvertOptions(adapter, out_dir / "qwen3-adapter.gguf", "f16", adapter_only=True)
    ).path
    phi3 = zoo.convert("phi3", "f16").path
    with pytest.raises(ModelLoadError, match="does not fit the model") as info:
        ModelRuntime(phi3, LoadOptions(n_ctx=256, n_threads=2, lora_path=str(gguf_adapter)))
    message = str(info.value)
    assert "qwen3-adapter.gguf (qwen3, 2 layers" in message and "(phi3, 2 layers)" in message
    with pytest.raises(ModelLoadError, match="is not a LoRA adapter file"):
        ModelRuntime(phi3, LoadOptions(n_ctx=256, n_threads=2, lora_path=str(phi3)))
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(gguf_adapter.read_bytes()[:-64])
    with pytest.raises(ModelLoadError, match="truncated"):
        ModelRuntime(
            zoo.convert("qwen3", "f16").path,
            LoadOptions(n_ctx=256, n_threads=2, lora_path=str(truncated)),
        )


def test_cli_lora_flags(zoo, tmp_path, out_dir, capsys):
    adapter = peft_adapter(zoo, tmp_path / "adapter")
    gguf_adapter = convert(
        ConvertOptions(adapter, out_dir / "adapter.gguf", "f16", adapter_only=True)
    ).path
    base = zoo.convert("qwen3", "q8_0").path
    common = ["ask", "--model", str(base), "--ctx", "256", "--threads", "2", "--max-tokens", "4"]
    rc = assistant_main([*common, "--lora", str(gguf_adapter), "--lora-scale", "0.5", "Hello"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    rc = assistant_main([*common, "--lora", str(gguf_adapter), "--lora-scale", "9", "Hello"])
    captured = capsys.readouterr()
    assert rc == 1 and captured.err.count("\n") == 1 and "--lora-scale 9" in captured.err
    other = zoo.convert("gemma2", "f16").path
    rc = assistant_main(["ask", "--model", str(other), "--lora", str(gguf_adapter), "Hello"])
    captured = capsys.readouterr()
    assert rc == 1 and "does not fit the model" in captured.err and "Traceback" not in captured.err
