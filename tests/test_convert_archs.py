"""Qwen3, Gemma 2, Gemma 3 and Phi-3, trained in Hugging Face layout, converted (f16, q8_0,
q4_k_m) and compared with `transformers` on the same token ids; their metadata; and what the
mappers refuse."""

from __future__ import annotations

import gguf
import numpy as np
import pytest

from assistant.errors import ConversionError
from tests.convert_models import zoo_for
from tests.convert_models_archs import PHI3_ADDED
from tools.convert.mappers import mapper_for
from tools.convert.reference import LazyWeights
from tools.convert.reference_gemma import gemma_logits, phi3_logits
from tools.convert.source import resolve_source
from tools.convert.verify import TOKENIZER_TEXTS, check_tokenization, compare_logits, gguf_logits

MODELS = ["qwen3", "gemma2", "gemma3", "phi3"]


@pytest.fixture(scope="session")
def zoo(tmp_path_factory):
    return zoo_for(tmp_path_factory)


def _metadata(path) -> dict:
    reader = gguf.GGUFReader(path)
    return {name: field.contents() for name, field in reader.fields.items()}


@pytest.mark.parametrize("out_type", ["f16", "q8_0", "q4_k_m"])
@pytest.mark.parametrize("name", MODELS)
def test_gguf_logits_match_transformers(zoo, name, out_type):
    model = zoo.get(name)
    result = zoo.convert(name, out_type)
    prompts = model.prompts()
    reference = [model.reference_logits(ids) for ids in prompts]
    got = gguf_logits(result.path, prompts, model.model.config.vocab_size, threads=2)
    check = compare_logits(reference, got, out_type, prompts)
    figures = check.line("transformers")
    if out_type == "f16":
        assert check.nmse < 1e-4 and check.top1 >= 0.99, figures
    assert check.passed, figures  # the --verify thresholds of the type, against transformers
    assert result.verification is not None and result.verification.passed, (
        result.verification.lines() if result.verification else None
    )


@pytest.mark.parametrize("name", MODELS)
def test_verify_reference_forward_equals_transformers(zoo, name):
    model = zoo.get(name)
    source = resolve_source(model.source)
    try:
        mapper = mapper_for(source.architecture, source.config)
        ours = mapper.reference_logits(LazyWeights(source.checkpoint), model.prompts())
        for logits, ids in zip(ours, model.prompts(), strict=True):
            np.testing.assert_allclose(
                logits.numpy(), model.reference_logits(ids), atol=2e-4, rtol=1e-4
            )
    finally:
        source.close()


def test_models_are_trained_and_use_what_is_tested(zoo):
    """Confident predictions; Gemma's sliding window and soft-capping and Phi-3's longrope
    factors change the output (the prompts are longer than the window), so dropping any of
    them would be caught."""
    for name in MODELS:
        model = zoo.get(name)
        logits = np.concatenate([model.reference_logits(ids) for ids in model.prompts()])
        probs = np.exp(logits - logits.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        assert model.loss < 1.8 and probs.max(-1).mean() > 0.5, name
    model = zoo.get("gemma2")
    source = resolve_source(model.source)
    try:
        m = mapper_for(source.architecture, source.config)
        prompts = model.prompts()
        assert min(len(p) for p in prompts) > 2 * m.window
        reference = [model.reference_logits(ids) for ids in prompts]
        common = dict(
            n_layer=m.n_layer,
            n_head=m.n_head,
            n_head_kv=m.n_head_kv,
            head_dim=m.head_dim,
            eps=m.eps,
            ropes=[m.rope_global] * m.n_layer,
            scale=m.head_dim**-0.5,
            qk_norm=False,
            tied=True,
        )
        weights = LazyWeights(source.checkpoint)
        variants = {
            "no window": dict(windows=[None, None], attn_softcap=10.0, final_softcap=8.0),
            "no soft-capping": dict(windows=[8, None], attn_softcap=None, final_softcap=None),
        }
        for what, kw in variants.items():
            other = [t.numpy() for t in gemma_logits(weights, prompts, **common, **kw)]
            assert compare_logits(reference, other, "f16").nmse > 1e-3, what
    finally:
        source.close()
    model = zoo.get("phi3")  # longrope: its short factors and attention factor matter
    source = resolve_source(model.source)
    try:
        m = mapper_for(source.architecture, source.config)
        prompts = model.prompts()
        reference = [model.reference_logits(ids) for ids in prompts]
        short, _long, attention = m.long_rope
        assert attention > 1.01
        common = dict(
            n_layer=m.n_layer,
            n_head=m.n_head,
            n_head_kv=m.n_head_kv,
            head_dim=m.head_dim,
            rotary_dim=m.rotary_dim,
            eps=m.eps,
            rope_theta=m.rope_theta,
            tied=False,
        )
        weights = LazyWeights(source.checkpoint)
        for kw in (dict(freq_factors=short), dict(attn_factor=attention)):
            other = [t.numpy() for t in phi3_logits(weights, prompts, **common, **kw)]
            assert compare_logits(reference, other, "f16").nmse > 1e-4, kw.keys()
    finally:
        source.close()


@pytest.mark.parametrize("name", MODELS)
def test_same_ids_as_source_tokenizer(zoo, name):
    model = zoo.get(name)
    path = zoo.convert(name, "f16").path
    check = check_tokenization(path, model.encode, TOKENIZER_TEXTS)
    assert check.passed and check.checked == len(TOKENIZER_TEXTS), check.mismatches[:2]


def test_metadata(zoo):
    md = _metadata(zoo.convert("gemma2", "f16").path)
    assert md["general.architecture"] == "gemma2"
    assert md["gemma2.attention.sliding_window"] == 8
    assert list(md["gemma2.attention.sliding_window_pattern"]) == [True, False]
    assert md["gemma2.attn_logit_softcapping"] == 10.0
    assert md["gemma2.final_logit_softcapping"] == 8.0
    assert md["tokenizer.ggml.add_space_prefix"] is False
    assert (md["tokenizer.ggml.bos_token_id"], md["tokenizer.ggml.eos_token_id"]) == (2, 1)
    tokens = md["tokenizer.ggml.tokens"]
    assert md["tokenizer.ggml.token_type"][tokens.index("<start_of_turn>")] == (
        gguf.TokenType.USER_DEFINED
    )
    md = _metadata(zoo.convert("gemma3", "f16").path)
    assert md["gemma3.rope.freq_base"] == 100000.0 and md["gemma3.rope.freq_base_swa"] == 10000.0
    assert md["gemma3.rope.scaling.type"] == "linear" and md["gemma3.rope.scaling.factor"] == 4.0
    assert "gemma3.final_logit_softcapping" not in md
    md = _metadata(zoo.convert("qwen3", "f16").path)
    assert md["qwen3.attention.key_length"] == 32 and md["qwen3.embedding_length"] == 64
    md = _metadata(zoo.convert("phi3", "f16").path)
    assert md["phi3.rope.dimension_count"] == 12  # partial_rotary_factor 0.75 of 16
    assert md["phi3.rope.scaling.original_context_length"] == 256
    assert abs(md["phi3.rope.scaling.attn_factor"] - (1 + np.log(32) / np.log(256)) ** 0.5) < 1e-6
    tokens, types = md["tokenizer.ggml.tokens"], md["tokenizer.ggml.token_type"]
    first = tokens.index(PHI3_ADDED[0])
    assert tokens[first : first + len(PHI3_ADDED)] == PHI3_ADDED
    assert all(types[first + i] == gguf.TokenType.CONTROL for i in range(len(PHI3_ADDED)))
    assert md["tokenizer.ggml.eos_token_id"] == first
    assert len(tokens) == zoo.get("phi3").model.config.vocab_size


BASE = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 100,
    "max_position_embeddings": 256,
    "sliding_window": 4096,
}


@pytest.mark.parametrize(
    ("arch", "extra", "message"),
    [
        ("Gemma2ForCausalLM", {"head_dim": 16, "query_pre_attn_scalar": 32}, "query_pre_attn"),
        ("Gemma2ForCausalLM", {"head_dim": 16, "final_logit_softcapping": None}, "soft-caps"),
        (
            "Gemma3ForCausalLM",
            {"head_dim": 16, "query_pre_attn_scalar": 16, "attn_logit_softcapping": 50.0},
            "attn_logit_softcapping",
        ),
        ("Gemma2ForCausalLM", {"head_dim": 16, "hidden_activation": "relu"}, "activation"),
        (
            "Phi3ForCausalLM",
            {"rope_scaling": {"type": "longrope", "long_factor": [1.0], "short_factor": [1.0]}},
            "must list 8 positive numbers",
        ),
        ("Phi3ForCausalLM", {"rope_scaling": {"type": "linear", "factor": 2.0}}, "'linear'"),
        ("Qwen3ForCausalLM", {"attention_bias": True}, "attention_bias"),
    ],
)
def test_unsupported_variants_are_refused(arch, extra, message):
    config = {
        **BASE,
        "hidden_activation": "gelu_pytorch_tanh",
        "attn_logit_softcapping": 50.0,
        "final_logit_softcapping": 30.0,
        **extra,
    }
    if arch.startswith("Gemma3"):
        config.pop("final_logit_softcapping")
    with pytest.raises(ConversionError, match=message):
        mapper_for(arch, config)
