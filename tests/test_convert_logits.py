"""Trained models converted to every direct type and q4_k_m, run in llama.cpp, compared with
the `transformers` implementation of their architecture (the independent reference)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.convert_models import zoo_for
from tools.convert.mappers import mapper_for
from tools.convert.reference import load_weights
from tools.convert.source import resolve_source
from tools.convert.verify import compare_logits, gguf_logits

MODELS = [
    "llama-tied",  # GQA, tied, sharded bf16 safetensors, llama3 rope scaling
    "llama-untied",  # GQA, untied, attention biases, f32 model.safetensors
    "qwen2",  # q/k/v biases, Qwen2 BPE, f16 pytorch_model.bin, vocab padded past the tokenizer
    "gpt2",  # Hugging Face GPT2LMHeadModel (Conv1D)
    "nanogpt",  # the same weights as a compiled nanoGPT ckpt.pt, GPT-2 vocab.json + merges.txt
    "nanogpt-nobias",  # nanoGPT bias=False
    "nanogpt-chars",  # character-level nanoGPT with meta.pkl
]
TYPES = ["f32", "f16", "bf16", "q8_0", "q4_k_m"]
# The targets; K-quants are reported, with a loose floor that still catches breakage.
TARGETS = {
    "f32": (1e-4, 0.99),
    "f16": (1e-4, 0.99),
    "bf16": (1e-4, 0.99),
    "q8_0": (None, 0.95),
    "q4_k_m": (None, 0.80),
}


@pytest.fixture(scope="session")
def zoo(tmp_path_factory):
    return zoo_for(tmp_path_factory)


@pytest.mark.parametrize("out_type", TYPES)
@pytest.mark.parametrize("name", MODELS)
def test_gguf_logits_match_transformers(zoo, name, out_type):
    model = zoo.get(name)
    result = zoo.convert(name, out_type)
    prompts = model.prompts()
    reference = [model.reference_logits(ids) for ids in prompts]
    got = gguf_logits(result.path, prompts, model.model.config.vocab_size, threads=2)
    check = compare_logits(reference, got, out_type)
    max_nmse, min_top1 = TARGETS[out_type]
    figures = f"{name} {out_type}: NMSE {check.nmse:.3g}, top-1 {check.top1:.1%}"
    assert max_nmse is None or check.nmse < max_nmse, figures
    assert check.top1 >= min_top1, figures
    # --verify (its own PyTorch forward) agrees and passed
    assert result.verification is not None and result.verification.passed, (
        result.verification.lines() if result.verification else None
    )


@pytest.mark.parametrize("name", MODELS)
def test_verify_reference_forward_equals_transformers(zoo, name):
    """--verify's PyTorch forward reads the checkpoint as stored; it must be transformers'."""
    model = zoo.get(name)
    source = resolve_source(model.source)
    try:
        mapper = mapper_for(source.architecture, source.config)
        weights = load_weights(source.checkpoint)
        prompts = model.prompts()
        for ours, ids in zip(mapper.reference_logits(weights, prompts), prompts, strict=True):
            np.testing.assert_allclose(
                ours.numpy(), model.reference_logits(ids), atol=2e-4, rtol=1e-4
            )
    finally:
        source.close()


def test_models_are_trained(zoo):
    """Random weights would hide errors: every model must predict its corpus confidently."""
    for name in MODELS:
        model = zoo.get(name)
        logits = np.concatenate([model.reference_logits(ids) for ids in model.prompts()])
        probs = np.exp(logits - logits.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        assert model.loss < 1.8 and probs.max(-1).mean() > 0.5, name
