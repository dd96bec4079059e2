"""Small models trained with PyTorch for the conversion tests, each trained once per session.

Random weights hide conversion errors (every logit is noise), so each model is trained for a
few hundred steps on CORPUS until its predictions are confident. The `transformers` classes
build and train them and stay in memory as the independent reference for the GGUF's logits.
Layouts written: Hugging Face folders (safetensors f32, sharded bf16 safetensors, f16
pytorch_model.bin); nanoGPT checkpoints are in `convert_models_nanogpt`, the 2025-era bases and
LoRA adapters in `convert_models_archs`.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

CORPUS = """\
The lighthouse keeper climbed the stairs every evening and lit the lamp before the sun went down.
Ships far out at sea watched for the light, and the light told them where the rocks were hidden.
In the morning the keeper wrote the weather in a book: wind from the west, rain, calm water.
The village below the lighthouse had a market, a bakery, a school and a small harbour.
Fishermen left the harbour before dawn and came back in the afternoon with baskets of fish.
Children ran along the beach after school, looking for shells and pieces of blue glass.
The baker made bread at four o'clock, and the smell of warm bread filled the narrow streets.
On Sundays the market sold apples, cheese, honey, eggs and flowers from the farms in the hills.
A teacher at the school told the children stories about storms, ships and the old lighthouse.
She said that the first lamp burned oil, and that the keeper had to clean the glass every day.
Later the lamp used gas, and then electricity, but the keeper still climbed the stairs at night.
When a storm came, the waves were taller than the houses, and nobody went out in the boats.
The keeper stayed awake all night, watching the light turn and listening to the wind and rain.
After the storm the beach was covered with wood, rope and seaweed, and the air smelled of salt.
The fishermen repaired their nets, the baker opened his shop, and the children went to school.
Question: what does the lighthouse do? Answer: it shows the ships where the rocks are.
Question: when does the baker make bread? Answer: the baker makes bread at four o'clock.
Question: what does the market sell? Answer: apples, cheese, honey, eggs and flowers.
def count_ships(log):
    total = 0
    for line in log:
        if line.startswith("ship"):
            total += 1
    return total
Numbers in the keeper's book: 12 ships in May, 31 ships in June, 7 storms, 365 nights.
The café by the harbour served coffee, tea and soup; visitors said it was the best in town.
"""

SPM_SETTINGS = {
    "model_type": "bpe",
    "byte_fallback": True,
    "normalization_rule_name": "identity",
    "remove_extra_whitespaces": False,
    "split_digits": True,
    "allow_whitespace_only_pieces": True,
    "character_coverage": 1.0,
    "unk_id": 0,
    "bos_id": 1,
    "eos_id": 2,
    "pad_id": -1,
    "hard_vocab_limit": False,
}
QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
SIMPLE_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)
CHATML_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
VERIFY_TEXTS = (
    "The lighthouse keeper climbed the stairs every evening and lit the lamp.",
    "Question: when does the baker make bread? Answer: the baker makes bread",
    "The fishermen repaired their nets, the baker opened his shop.",
)

STEPS = 300
SEQ = 64
BATCH = 8


@dataclass
class Trained:
    """A trained model on disk plus its in-memory reference."""

    name: str
    source: Path  # what `assistant convert` is given
    tokenizer: Path | None  # --tokenizer, when not beside the weights
    model: torch.nn.Module
    encode: Callable[[str], list[int]]  # the source tokenizer, no BOS
    bos: int | None  # prepended when the model was trained with it
    loss: float

    def reference_logits(self, ids: list[int]) -> np.ndarray:
        with torch.no_grad():
            out = self.model(input_ids=torch.tensor([ids])).logits[0]
        return out.float().numpy()

    def prompts(self, texts=VERIFY_TEXTS) -> list[list[int]]:
        return [([self.bos] if self.bos is not None else []) + self.encode(t) for t in texts]


# -- tokenizers ---------------------------------------------------------------------------
def train_sentencepiece(folder: Path, vocab_size: int = 512) -> Path:
    import sentencepiece as spm

    folder.mkdir(parents=True, exist_ok=True)
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS.splitlines()),
        model_prefix=str(folder / "tokenizer"),
        vocab_size=vocab_size,
        minloglevel=2,
        **SPM_SETTINGS,
    )
    (folder / "tokenizer.vocab").unlink()
    return folder / "tokenizer.model"


def train_byte_bpe(folder: Path, kind: str, vocab_size: int = 400) -> Path:
    """A byte-level BPE tokenizer.json (GPT-2 or Qwen2 pre-tokenizer) plus vocab.json/merges."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    folder.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE())
    if kind == "qwen2":
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
        specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    else:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        specials = ["<|endoftext|>"]
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS.splitlines(keepends=True), trainer)
    tok.save(str(folder / "tokenizer.json"))
    tok.model.save(str(folder))  # vocab.json + merges.txt
    return folder / "tokenizer.json"


def hf_encoder(path: Path) -> Callable[[str], list[int]]:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(path))
    return lambda text: tok.encode(text, add_special_tokens=False).ids


# -- training -----------------------------------------------------------------------------
def train(model: torch.nn.Module, ids: list[int], steps: int = STEPS, seed: int = 0) -> float:
    """Next-token training on random windows of the corpus; returns the final loss."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    data = torch.tensor(ids)
    opt = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=3e-3, weight_decay=0.0
    )
    model.train()
    loss = torch.tensor(0.0)
    for _ in range(steps):
        starts = [rng.randrange(0, len(ids) - SEQ - 1) for _ in range(BATCH)]
        batch = torch.stack([data[s : s + SEQ] for s in starts])
        loss = model(input_ids=batch, labels=batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return float(loss.detach())


def round_weights(model: torch.nn.Module, dtype: torch.dtype) -> None:
    """Make the in-memory reference equal to what is saved in a lower precision."""
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(dtype).to(torch.float32))


def corpus_ids(encode: Callable[[str], list[int]]) -> list[int]:
    return [i for line in CORPUS.splitlines(keepends=True) for i in encode(line)]


# -- the models ------------------------------------------------------------------------------
def make_llama(folder: Path, tied: bool) -> Trained:
    """GQA LLaMA, SentencePiece; tied: sharded bf16 safetensors + llama3 rope; untied: f32
    model.safetensors with attention biases."""
    import sentencepiece as spm
    from transformers import LlamaConfig, LlamaForCausalLM

    spm_path = train_sentencepiece(folder)
    sp = spm.SentencePieceProcessor(model_file=str(spm_path))
    rope = {"rope_theta": 10000.0, "rope_type": "default"}
    if tied:
        rope = {
            "rope_theta": 10000.0,
            "rope_type": "llama3",
            "factor": 4.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 32,
        }
    config = LlamaConfig(
        vocab_size=sp.vocab_size(),
        hidden_size=64,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        rms_norm_eps=1e-5,
        rope_parameters=rope,
        tie_word_embeddings=tied,
        attention_bias=not tied,  # q/k/v/o biases (the q/k ones are permuted too)
        bos_token_id=1,
        eos_token_id=2,
    )
    torch.manual_seed(1)
    model = LlamaForCausalLM(config)
    encode = lambda text: list(sp.encode(text))  # noqa: E731
    ids = [i for line in CORPUS.splitlines() for i in [1, *encode(line)]]
    loss = train(model, ids)
    if tied:
        round_weights(model, torch.bfloat16)
        state = {k: v.to(torch.bfloat16) for k, v in model.state_dict().items()}
        model.save_pretrained(folder, state_dict=state, max_shard_size="100KB")
    else:
        model.save_pretrained(folder)
    _write_json(
        folder / "tokenizer_config.json",
        {
            "bos_token": "<s>",
            "eos_token": "</s>",
            "unk_token": "<unk>",
            "add_bos_token": True,
            "add_eos_token": False,
            "chat_template": SIMPLE_TEMPLATE,
            "tokenizer_class": "LlamaTokenizer",
        },
    )
    return Trained(f"llama-{'tied' if tied else 'untied'}", folder, None, model, encode, 1, loss)


def make_qwen2(folder: Path) -> Trained:
    """Qwen2 with q/k/v biases, byte-level BPE with the Qwen2 split, f16 pytorch_model.bin."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tok_path = train_byte_bpe(folder, "qwen2")
    encode = hf_encoder(tok_path)
    vocab = json.loads(tok_path.read_text())["model"]["vocab"]
    config = Qwen2Config(
        vocab_size=len(vocab) + 8,  # padded beyond the tokenizer, as real Qwen2 models are
        hidden_size=64,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        rms_norm_eps=1e-6,
        tie_word_embeddings=False,
        use_sliding_window=False,
    )
    torch.manual_seed(2)
    model = Qwen2ForCausalLM(config)
    loss = train(model, corpus_ids(encode))
    round_weights(model, torch.float16)
    state = {k: v.to(torch.float16) for k, v in model.state_dict().items()}
    torch.save(state, folder / "pytorch_model.bin")
    config.architectures = ["Qwen2ForCausalLM"]
    config.to_json_file(folder / "config.json")
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
    return Trained("qwen2", folder, None, model, encode, None, loss)


def _gpt2(vocab_size: int, *, exact_gelu: bool, seed: int):
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=vocab_size,
        n_embd=64,
        n_layer=2,
        n_head=4,
        n_positions=128,
        activation_function="gelu" if exact_gelu else "gelu_new",
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=0,
        eos_token_id=0,
    )
    torch.manual_seed(seed)
    return GPT2LMHeadModel(config)


def make_gpt2(folder: Path) -> Trained:
    """GPT2LMHeadModel in Hugging Face layout (Conv1D), byte-level BPE."""
    tok_path = train_byte_bpe(folder, "gpt2")
    encode = hf_encoder(tok_path)
    vocab = json.loads(tok_path.read_text())["model"]["vocab"]
    model = _gpt2(len(vocab), exact_gelu=False, seed=3)
    loss = train(model, corpus_ids(encode))
    model.save_pretrained(folder)
    _write_json(
        folder / "tokenizer_config.json",
        {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "add_bos_token": False},
    )
    return Trained("gpt2", folder, None, model, encode, None, loss)


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")


# -- the session cache ------------------------------------------------------------------------
class Zoo:
    """Trains each model on first use; one per test session (shared by all test modules)."""

    def __init__(self, root: Path):
        self.root = root
        self._models: dict[str, Trained] = {}
        self._converted: dict[tuple[str, str], object] = {}
        self.timings: dict[str, float] = {}

    def convert(self, name: str, out_type: str):
        """The model converted (with --verify) to `out_type`, once per session."""
        from tools.convert import ConvertOptions, convert

        key = (name, out_type)
        if key not in self._converted:
            model = self.get(name)
            out = self.root / "gguf" / f"{name}.{out_type}.gguf"
            out.parent.mkdir(exist_ok=True)
            options = ConvertOptions(
                model.source,
                out,
                out_type,
                tokenizer=model.tokenizer,
                verify=True,
                verify_texts=VERIFY_TEXTS,
                threads=2,
            )
            self._converted[key] = convert(options)
        return self._converted[key]

    def get(self, name: str) -> Trained:
        if name not in self._models:
            torch.set_num_threads(1)  # tiny matrices: threads cost more than they give
            start = time.perf_counter()
            self._models[name] = self._make(name)
            self.timings[name] = time.perf_counter() - start
        return self._models[name]

    def _make(self, name: str) -> Trained:
        folder = self.root / name
        if name == "llama-tied":
            return make_llama(folder, tied=True)
        if name == "llama-untied":
            return make_llama(folder, tied=False)
        if name == "qwen2":
            return make_qwen2(folder)
        if name == "gpt2":
            return make_gpt2(folder)
        if name.startswith("nanogpt"):
            from tests.convert_models_nanogpt import make_nanogpt

            return make_nanogpt(self, name, folder)
        from tests.convert_models_archs import make

        made = make(self, name, folder)
        if made is None:
            raise KeyError(name)
        return made


_ZOO: Zoo | None = None


def zoo_for(tmp_path_factory) -> Zoo:
    global _ZOO
    if _ZOO is None:
        _ZOO = Zoo(tmp_path_factory.mktemp("convert_zoo"))
    return _ZOO


# -- untrained models (errors, memory, benchmark) ---------------------------------------------
def write_random_llama(
    folder: Path,
    *,
    hidden: int = 64,
    layers: int = 2,
    ff: int = 128,
    heads: int = 4,
    kv_heads: int = 2,
    vocab_size: int | None = None,
    dtype: type = np.float32,
    seed: int = 0,
) -> Path:
    """A LLaMA folder (config.json, model.safetensors, tokenizer.model) with random weights."""
    from safetensors.numpy import save_file

    spm_path = train_sentencepiece(folder)
    import sentencepiece as spm

    n_vocab = vocab_size or spm.SentencePieceProcessor(model_file=str(spm_path)).vocab_size()
    head_dim = hidden // heads
    rng = np.random.default_rng(seed)

    def w(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(dtype)

    tensors = {
        "model.embed_tokens.weight": w(n_vocab, hidden),
        "lm_head.weight": w(n_vocab, hidden),
        "model.norm.weight": np.ones(hidden, dtype),
    }
    for i in range(layers):
        p = f"model.layers.{i}."
        tensors.update(
            {
                p + "input_layernorm.weight": np.ones(hidden, dtype),
                p + "post_attention_layernorm.weight": np.ones(hidden, dtype),
                p + "self_attn.q_proj.weight": w(heads * head_dim, hidden),
                p + "self_attn.k_proj.weight": w(kv_heads * head_dim, hidden),
                p + "self_attn.v_proj.weight": w(kv_heads * head_dim, hidden),
                p + "self_attn.o_proj.weight": w(hidden, heads * head_dim),
                p + "mlp.gate_proj.weight": w(ff, hidden),
                p + "mlp.up_proj.weight": w(ff, hidden),
                p + "mlp.down_proj.weight": w(hidden, ff),
            }
        )
    save_file(tensors, str(folder / "model.safetensors"))
    del tensors
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": hidden,
        "intermediate_size": ff,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "max_position_embeddings": 2048,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "vocab_size": n_vocab,
        "tie_word_embeddings": False,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "torch_dtype": "float16" if dtype == np.float16 else "float32",
    }
    _write_json(folder / "config.json", config)
    return folder
