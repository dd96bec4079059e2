"""nanoGPT checkpoints for the conversion tests: ckpt.pt as a torch.compile'd run saves it
(`_orig_mod.` names, optimizer state, causal-mask buffers), bias-free, and character-level with
its meta.pkl; the reference is a `transformers` GPT-2 with the same weights and exact GELU."""

from __future__ import annotations

import pickle
from pathlib import Path

import torch

from tests.convert_models import CORPUS, STEPS, Trained, _gpt2, corpus_ids, train


def make_nanogpt(zoo, name: str, folder: Path) -> Trained:
    if name == "nanogpt":
        return make_nanogpt_from(zoo.get("gpt2"), folder)
    if name == "nanogpt-nobias":
        return make_nanogpt_nobias(zoo.get("gpt2"), folder)
    if name == "nanogpt-chars":
        return make_nanogpt_chars(folder)
    raise KeyError(name)


def nanogpt_state(model: torch.nn.Module, *, bias: bool, prefix: str) -> dict[str, torch.Tensor]:
    """GPT2LMHeadModel weights as nanoGPT's GPT names and lays them out (nn.Linear)."""
    conv1d = (
        ".attn.c_attn.weight",
        ".attn.c_proj.weight",
        ".mlp.c_fc.weight",
        ".mlp.c_proj.weight",
    )
    state: dict[str, torch.Tensor] = {}
    for name, tensor in model.state_dict().items():
        if name.endswith(".bias") and not bias:
            continue
        state[prefix + name] = tensor.t().contiguous() if name.endswith(conv1d) else tensor.clone()
    n_pos = model.config.n_positions
    for i in range(model.config.n_layer):  # the causal-mask buffer older nanoGPT keeps
        mask = torch.tril(torch.ones(n_pos, n_pos)).view(1, 1, n_pos, n_pos)
        state[f"{prefix}transformer.h.{i}.attn.bias"] = mask
    state[prefix + "lm_head.weight"] = state[prefix + "transformer.wte.weight"]
    return state


def save_nanogpt(path: Path, model: torch.nn.Module, *, bias: bool, compiled: bool) -> None:
    c = model.config
    model_args = {
        "n_layer": c.n_layer,
        "n_head": c.n_head,
        "n_embd": c.n_embd,
        "block_size": c.n_positions,
        "bias": bias,
        "vocab_size": c.vocab_size,
        "dropout": 0.0,
    }
    # a real optimizer state, as nanoGPT saves it (on copies: the model must not change)
    params = [p.detach().clone().requires_grad_() for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-3)
    for p in params:
        p.grad = torch.ones_like(p)
    optimizer.step()
    checkpoint = {
        "model": nanogpt_state(model, bias=bias, prefix="_orig_mod." if compiled else ""),
        "optimizer": optimizer.state_dict(),
        "model_args": model_args,
        "iter_num": STEPS,
        "best_val_loss": torch.tensor(1.5),
        "config": {"dataset": "corpus", "compile": compiled, "learning_rate": 3e-3},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, path)


def make_nanogpt_from(gpt2: Trained, folder: Path) -> Trained:
    """The same weights as the HF GPT-2, as a torch.compile'd nanoGPT run's ckpt.pt."""
    save_nanogpt(folder / "ckpt.pt", gpt2.model, bias=True, compiled=True)
    # nanoGPT's MLP uses nn.GELU() (exact), so its reference is GPT-2 with exact GELU
    reference = _gpt2(gpt2.model.config.vocab_size, exact_gelu=True, seed=0)
    reference.load_state_dict(gpt2.model.state_dict())
    reference.eval()
    tokenizer = gpt2.source / "vocab.json"
    return Trained(
        "nanogpt", folder / "ckpt.pt", tokenizer, reference, gpt2.encode, None, gpt2.loss
    )


def make_nanogpt_nobias(gpt2: Trained, folder: Path) -> Trained:
    """nanoGPT with bias=False: trained with every bias held at zero, exact GELU."""
    model = _gpt2(gpt2.model.config.vocab_size, exact_gelu=True, seed=4)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".bias"):
                p.zero_()
                p.requires_grad_(False)
    loss = train(model, corpus_ids(gpt2.encode))
    save_nanogpt(folder / "ckpt.pt", model, bias=False, compiled=False)
    tokenizer = gpt2.source / "tokenizer.json"
    return Trained("nanogpt-nobias", folder / "ckpt.pt", tokenizer, model, gpt2.encode, None, loss)


def make_nanogpt_chars(folder: Path) -> Trained:
    """Character-level nanoGPT (shakespeare_char style) with its meta.pkl."""
    chars = sorted(set(CORPUS))
    stoi = {ch: i for i, ch in enumerate(chars)}
    meta = {"vocab_size": len(chars), "itos": dict(enumerate(chars)), "stoi": stoi}
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    (data / "meta.pkl").write_bytes(pickle.dumps(meta))
    model = _gpt2(len(chars), exact_gelu=True, seed=5)
    encode = lambda text: [stoi[c] for c in text]  # noqa: E731
    loss = train(model, encode(CORPUS), steps=3 * STEPS)  # characters need longer
    save_nanogpt(folder / "out" / "ckpt.pt", model, bias=True, compiled=False)
    return Trained(
        "nanogpt-chars", folder / "out" / "ckpt.pt", data / "meta.pkl", model, encode, None, loss
    )
