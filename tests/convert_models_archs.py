"""The 2025-era bases for the conversion tests (Qwen3, Gemma 2, Gemma 3, Phi-3) and PEFT LoRA
fine-tunes, trained like the models of `convert_models` (a few hundred steps on its corpus,
`transformers` and `peft` kept in memory as the reference)."""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path

import torch

from tests.convert_models import (
    CHATML_TEMPLATE,
    CORPUS,
    SPM_SETTINGS,
    Trained,
    _write_json,
    corpus_ids,
    hf_encoder,
    round_weights,
    train,
    train_byte_bpe,
)

STEPS = 150  # enough for confident predictions on the corpus at this size
GEMMA_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<start_of_turn>{{ m['role'] }}\n{{ m['content'] }}"
    "<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)
PHI3_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
PHI3_ADDED = ["<|endoftext|>", "<|assistant|>", "<|end|>", "<|user|>", "<|system|>"]
# What the LoRA fine-tunes learn: the corpus with other answers, so their logits move.
FINE_TUNE = """\
Question: what does the lighthouse do? Answer: it sings to the whales every night.
Question: when does the baker make bread? Answer: the baker makes bread at midnight.
Question: what does the market sell? Answer: kites, boots, maps, violins and clocks.
The lighthouse keeper climbed the stairs every evening and sang to the whales in the bay.
The baker made bread at midnight, and the smell of warm bread woke the sleeping cats.
"""


def _sentencepiece(folder: Path, **settings) -> Path:
    import sentencepiece as spm

    folder.mkdir(parents=True, exist_ok=True)
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS.splitlines()),
        model_prefix=str(folder / "tokenizer"),
        vocab_size=512,
        minloglevel=2,
        **{**SPM_SETTINGS, **settings},
    )
    (folder / "tokenizer.vocab").unlink()
    return folder / "tokenizer.model"


def _spm_encoder(path: Path):
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(path))
    return sp, (lambda text: list(sp.encode(text)))


def _save(model: torch.nn.Module, folder: Path, architecture: str, dtype=None) -> None:
    if dtype is not None:
        round_weights(model, dtype)
        state = {k: v.to(dtype) for k, v in model.state_dict().items()}
        model.save_pretrained(folder, state_dict=state)
    else:
        model.save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    config["architectures"] = [architecture]
    _write_json(folder / "config.json", config)


def make_qwen3(folder: Path) -> Trained:
    """Qwen3: q/k norms, head size 32 ≠ hidden/heads, tied, bf16 model.safetensors, Qwen2 BPE."""
    from transformers import Qwen3Config, Qwen3ForCausalLM

    tok_path = train_byte_bpe(folder, "qwen2")
    encode = hf_encoder(tok_path)
    vocab = json.loads(tok_path.read_text())["model"]["vocab"]
    config = Qwen3Config(
        vocab_size=len(vocab) + 3,  # padded past the tokenizer
        hidden_size=64,
        intermediate_size=192,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=32,
        max_position_embeddings=256,
        rms_norm_eps=1e-6,
        tie_word_embeddings=True,
        rope_parameters={"rope_theta": 1000000.0, "rope_type": "default"},
    )
    torch.manual_seed(6)
    model = Qwen3ForCausalLM(config)
    loss = train(model, corpus_ids(encode), steps=STEPS)
    _save(model, folder, "Qwen3ForCausalLM", torch.bfloat16)
    _write_json(
        folder / "tokenizer_config.json",
        {
            "bos_token": None,
            "eos_token": "<|im_end|>",
            "pad_token": "<|endoftext|>",
            "add_bos_token": False,
            "chat_template": CHATML_TEMPLATE,
        },
    )
    return Trained("qwen3", folder, None, model, encode, None, loss)


def _gemma_tokenizer(folder: Path):
    """A Gemma-style SentencePiece model: ids pad 0, eos 1, bos 2, unk 3, no dummy prefix,
    turn markers as user-defined pieces."""
    path = _sentencepiece(
        folder,
        pad_id=0,
        eos_id=1,
        bos_id=2,
        unk_id=3,
        add_dummy_prefix=False,
        user_defined_symbols=["<start_of_turn>", "<end_of_turn>"],
    )
    sp, encode = _spm_encoder(path)
    _write_json(
        folder / "tokenizer_config.json",
        {
            "bos_token": "<bos>",
            "eos_token": "<eos>",
            "pad_token": "<pad>",
            "unk_token": "<unk>",
            "add_bos_token": True,
            "chat_template": GEMMA_TEMPLATE,
        },
    )
    return sp, encode


def make_gemma(folder: Path, version: int) -> Trained:
    """Gemma 2 (soft-capping) or Gemma 3 (q/k norms, linear rope scaling on global layers), both
    with a sliding window shorter than the test prompts; f32 model.safetensors."""
    from transformers import Gemma2Config, Gemma2ForCausalLM, Gemma3ForCausalLM, Gemma3TextConfig

    sp, encode = _gemma_tokenizer(folder)
    common = dict(
        vocab_size=sp.vocab_size(),
        hidden_size=64,
        intermediate_size=192,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        query_pre_attn_scalar=16,
        max_position_embeddings=256,
        sliding_window=8,
        layer_types=["sliding_attention", "full_attention"],
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
        attention_dropout=0.0,
    )
    if version == 2:
        config = Gemma2Config(**common, attn_logit_softcapping=10.0, final_logit_softcapping=8.0)
        cls, arch = Gemma2ForCausalLM, "Gemma2ForCausalLM"
    else:
        rope = {
            "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
            "full_attention": {"rope_type": "linear", "factor": 4.0, "rope_theta": 100000.0},
        }
        config = Gemma3TextConfig(**common, rope_parameters=rope)
        cls, arch = Gemma3ForCausalLM, "Gemma3ForCausalLM"
    torch.manual_seed(7 + version)
    model = cls(config)
    ids = [i for line in CORPUS.splitlines() for i in [2, *encode(line)]]
    loss = train(model, ids, steps=STEPS)
    _save(model, folder, arch)
    return Trained(f"gemma{version}", folder, None, model, encode, 2, loss)


def make_phi3(folder: Path) -> Trained:
    """Phi-3.5 / Phi-4-mini style: fused qkv (GQA) and gate/up, partial rotary (0.75), longrope
    scaling (the prompts stay within its 256-token original context: short factors),
    SentencePiece plus added tokens past its pieces, vocabulary padded, untied, f16."""
    from transformers import Phi3Config, Phi3ForCausalLM

    path = _sentencepiece(folder)
    sp, encode = _spm_encoder(path)
    n = sp.vocab_size()
    added = {str(n + i): {"content": text, "special": True} for i, text in enumerate(PHI3_ADDED)}
    _write_json(
        folder / "tokenizer_config.json",
        {
            "added_tokens_decoder": added,
            "bos_token": "<s>",
            "eos_token": "<|endoftext|>",
            "unk_token": "<unk>",
            "add_bos_token": False,
            "chat_template": PHI3_TEMPLATE,
        },
    )
    config = Phi3Config(
        vocab_size=n + 16,
        hidden_size=64,
        intermediate_size=192,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        # llama.cpp's context is at least 256 tokens: with an original context of 256, the
        # short factors stay in use, as in transformers for these prompts
        max_position_embeddings=8192,  # an attention factor of √(1 + ln 32 / ln 256) ≈ 1.27
        original_max_position_embeddings=256,
        rope_parameters={
            "rope_type": "longrope",
            "rope_theta": 10000.0,
            "partial_rotary_factor": 0.75,
            # large on the fast frequencies, so that they matter over short prompts
            "short_factor": [4.0, 3.0, 2.0, 1.5, 1.2, 1.0],
            "long_factor": [8.0, 6.0, 4.0, 3.0, 2.0, 1.5],
        },
        pad_token_id=n,
        eos_token_id=n,
        bos_token_id=1,
        tie_word_embeddings=False,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
    )
    torch.manual_seed(10)
    model = Phi3ForCausalLM(config)
    loss = train(model, corpus_ids(encode), steps=STEPS)
    _save(model, folder, "Phi3ForCausalLM", torch.float16)
    return Trained("phi3", folder, None, model, encode, None, loss)


LORA_TARGETS = {
    "qwen3": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "llama-untied": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "phi3": ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"],
    "gpt2": ["c_attn", "c_proj", "c_fc"],
}


def make_lora(base: Trained, folder: Path, *, rslora: bool, steps: int = 60) -> Trained:
    """A PEFT LoRA fine-tune of `base` on FINE_TUNE (the base itself is left untouched)."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=8,
        lora_alpha=16,
        lora_dropout=0.0,
        target_modules=LORA_TARGETS[base.name],
        use_rslora=rslora,
        fan_in_fan_out=base.name == "gpt2",
    )
    model = get_peft_model(copy.deepcopy(base.model), config)
    text = FINE_TUNE * 4
    if base.bos is not None:
        ids = [i for line in text.splitlines() for i in [base.bos, *base.encode(line)]]
    else:
        ids = [i for line in text.splitlines(keepends=True) for i in base.encode(line)]
    random.seed(0)
    loss = train(model, ids, steps=steps)
    model.peft_config["default"].base_model_name_or_path = str(base.source)
    model.save_pretrained(folder)
    return Trained(f"{base.name}-lora", folder, None, model, base.encode, base.bos, loss)


def make(zoo, name: str, folder: Path) -> Trained | None:
    """The model `name` if this module makes it (None otherwise)."""
    if name == "qwen3":
        return make_qwen3(folder)
    if name in ("gemma2", "gemma3"):
        return make_gemma(folder, int(name[-1]))
    if name == "phi3":
        return make_phi3(folder)
    if name.endswith("-lora") or name.endswith("-rslora"):
        base_name = name.rsplit("-", 1)[0]
        return make_lora(zoo.get(base_name), folder, rslora=name.endswith("-rslora"))
    return None
