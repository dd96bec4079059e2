"""PEFT LoRA fine-tunes of trained bases, merged into a GGUF and kept as a GGUF adapter that
llama.cpp applies on the base, each compared with the `peft` model on the same token ids."""

from __future__ import annotations

import gguf
import numpy as np
import pytest

from assistant.engine.runtime import ModelRuntime
from assistant.types import LoadOptions, SamplingOptions
from tests.convert_models import VERIFY_TEXTS, zoo_for
from tools.convert import ConvertOptions, convert
from tools.convert.verify import compare_logits, gguf_logits

# rsLoRA on every projection of Qwen3; LLaMA q/k/v/o (B must follow the q/k permutation);
# Phi-3's fused qkv and gate/up; GPT-2's Conv1D (fan_in_fan_out)
ADAPTERS = ["qwen3-rslora", "llama-untied-lora", "phi3-lora", "gpt2-lora"]


@pytest.fixture(scope="session")
def zoo(tmp_path_factory):
    return zoo_for(tmp_path_factory)


@pytest.fixture(scope="session")
def converted(zoo):
    """(merged f16, adapter f16) of each adapter, converted once, with --verify."""
    out = zoo.root / "lora_gguf"
    out.mkdir(exist_ok=True)
    cache: dict[tuple[str, str], object] = {}

    def get(name: str, kind: str, out_type: str = "f16"):
        key = (name, kind + out_type)
        if key not in cache:
            options = ConvertOptions(
                zoo.get(name).source,
                out / f"{name}.{kind}.{out_type}.gguf",
                out_type,
                verify=True,
                verify_texts=VERIFY_TEXTS,
                threads=2,
                adapter_only=kind == "adapter",
            )
            cache[key] = convert(options)
        return cache[key]

    return get


def _base(zoo, name: str):
    return zoo.get(name.rsplit("-", 1)[0])


@pytest.mark.parametrize("name", ADAPTERS)
def test_the_adapter_changes_the_model(zoo, name):
    """Otherwise the comparisons below would prove nothing."""
    tuned, base = zoo.get(name), _base(zoo, name)
    prompts = tuned.prompts()
    check = compare_logits(
        [tuned.reference_logits(p) for p in prompts],
        [base.reference_logits(p) for p in prompts],
        "f16",
        prompts,
    )
    assert check.kl > 0.2 and check.top1 < 0.95 and check.nmse > 0.01, check.line("the base")


@pytest.mark.parametrize("name", ADAPTERS)
def test_merged_gguf_matches_peft(zoo, converted, name):
    tuned = zoo.get(name)
    result = converted(name, "merged")
    prompts = tuned.prompts()
    reference = [tuned.reference_logits(p) for p in prompts]
    got = gguf_logits(result.path, prompts, tuned.model.config.vocab_size, threads=2)
    check = compare_logits(reference, got, "f16", prompts)
    assert check.nmse < 1e-4 and check.top1 >= 0.99, check.line("peft")
    assert result.kind == "model" and result.base == _base(zoo, name).source
    assert result.verification is not None and result.verification.passed


@pytest.mark.parametrize("name", ADAPTERS)
def test_gguf_adapter_applied_by_llama_cpp_matches_peft(zoo, converted, name):
    tuned, base = zoo.get(name), _base(zoo, name)
    result = converted(name, "adapter")
    base_gguf = zoo.convert(base.name, "f16").path
    prompts = tuned.prompts()
    reference = [tuned.reference_logits(p) for p in prompts]
    got = gguf_logits(
        base_gguf, prompts, tuned.model.config.vocab_size, threads=2, lora=result.path
    )
    check = compare_logits(reference, got, "adapter", prompts)
    assert check.nmse < 1e-3 and check.passed, check.line("peft")
    assert result.kind == "adapter" and result.verification.passed, result.verification.lines()
    assert "the merged PyTorch model" in result.verification.lines()[0]
    md = {k: f.contents() for k, f in gguf.GGUFReader(result.path).fields.items()}
    assert md["general.type"] == "adapter" and md["adapter.type"] == "lora"
    assert md["adapter.lora.alpha"] == 16.0
    assert md["general.architecture"] == zoo.convert(base.name, "f16").gguf_architecture
    assert result.size_bytes < zoo.convert(base.name, "f16").size_bytes / 4


@pytest.mark.parametrize("out_type", ["q8_0", "q4_k_m"])
def test_merged_and_quantized(zoo, converted, out_type):
    tuned = zoo.get("qwen3-rslora")
    result = converted("qwen3-rslora", "merged", out_type)
    prompts = tuned.prompts()
    reference = [tuned.reference_logits(p) for p in prompts]
    got = gguf_logits(result.path, prompts, tuned.model.config.vocab_size, threads=2)
    check = compare_logits(reference, got, out_type, prompts)
    assert check.passed, check.line("peft")
    assert result.verification.passed, result.verification.lines()


def test_adapter_on_a_quantized_base_through_the_runtime(zoo, converted):
    """What `assistant chat --model BASE.q8_0.gguf --lora ADAPTER.gguf` loads: greedy decoding
    continues as the fine-tune does; at scale 0 as the base does."""
    tuned, base = zoo.get("qwen3-rslora"), zoo.get("qwen3")
    adapter = str(converted("qwen3-rslora", "adapter").path)
    base_gguf = zoo.convert("qwen3", "q8_0").path
    # the base answers "four o'clock", the fine-tune "midnight"
    prompt = tuned.encode(
        "Question: when does the baker make bread? Answer: the baker makes bread at"
    )
    greedy = SamplingOptions(temperature=0.0, max_tokens=1, repeat_penalty=1.0, ignore_eos=True)
    expected = {
        1.0: int(tuned.reference_logits(prompt)[-1].argmax()),
        0.0: int(base.reference_logits(prompt)[-1].argmax()),
    }
    assert expected[1.0] != expected[0.0]
    for scale, token in expected.items():
        options = LoadOptions(n_ctx=256, n_threads=2, lora_path=adapter, lora_scale=scale)
        runtime = ModelRuntime(base_gguf, options)
        try:
            assert runtime.complete(prompt, greedy) == runtime.detokenize([token]), scale
        finally:
            runtime.close()


def test_the_delta_follows_the_base_layout(zoo):
    """GPT-2's LoRA (trained with fan_in_fan_out on Conv1D weights) merged into the same
    weights saved by nanoGPT (nn.Linear): every merged matrix is the transpose, the square
    c_proj included (where a wrong orientation would still fit the shape)."""
    from tools.convert.lora import MergedCheckpoint, open_adapter
    from tools.convert.mappers import mapper_for
    from tools.convert.source import resolve_source

    tuned = zoo.get("gpt2-lora")
    merged = {}
    for base in ("gpt2", "nanogpt"):
        source = resolve_source(zoo.get(base).source)
        mapper = mapper_for(source.architecture, source.config)
        adapter = open_adapter(tuned.source, source.checkpoint, mapper, base)
        merged[base] = MergedCheckpoint(source.checkpoint, adapter)
    try:
        names = list(merged["gpt2"].adapter.pairs)
        assert any(n.endswith("attn.c_proj.weight") for n in names)
        for name in names:
            np.testing.assert_allclose(
                merged["gpt2"].load(name).T, merged["nanogpt"].load(name), rtol=0, atol=1e-6
            )
            assert not np.allclose(merged["gpt2"].load(name), merged["gpt2"].base.load(name))
    finally:
        for checkpoint in merged.values():
            checkpoint.close()
