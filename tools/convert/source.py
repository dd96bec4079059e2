"""What the user pointed at: a Hugging Face folder, a nanoGPT ckpt.pt, or a bare state dict."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.errors import ConversionError

from .checkpoints import (
    Checkpoint,
    TorchStateDict,
    open_folder_weights,
    open_weights,
    torch_load,
    unwrap_state_dict,
)
from .config_check import check_config
from .json_files import read_json_object

NANOGPT = "nanoGPT"
TORCH_SUFFIXES = {".pt", ".pth", ".bin", ".ckpt"}
_MODEL_TYPES = {
    "llama": "LlamaForCausalLM",
    "mistral": "MistralForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
    "gpt2": "GPT2LMHeadModel",
    "qwen3": "Qwen3ForCausalLM",
    "gemma2": "Gemma2ForCausalLM",
    "gemma3_text": "Gemma3ForCausalLM",
    "phi3": "Phi3ForCausalLM",
}


@dataclass
class Source:
    checkpoint: Checkpoint
    config: dict[str, Any]
    architecture: str
    folder: Path  # where tokenizer files and tokenizer_config.json are looked for
    name: str
    extras: dict[str, Any] = field(default_factory=dict)

    def close(self) -> None:
        self.checkpoint.close()


def read_json(path: Path) -> dict[str, Any]:
    return read_json_object(path)


def architecture_of(config: Mapping[str, Any], where: Path | str) -> str:
    archs = config.get("architectures")
    if isinstance(archs, list) and archs:
        return str(archs[0])
    model_type = config.get("model_type")
    if model_type in _MODEL_TYPES:
        return _MODEL_TYPES[model_type]
    raise ConversionError(
        f"{where} names no architecture (no 'architectures' list and no known 'model_type')."
    )


def nanogpt_config(model_args: Mapping[str, Any], where: str = "model_args") -> dict[str, Any]:
    """nanoGPT's model_args in the Hugging Face GPT-2 vocabulary the GPT-2 mapper reads."""
    if not isinstance(model_args, Mapping):
        raise ConversionError(f"{where} is not a dictionary of model sizes.")
    try:
        config = {
            "architectures": [NANOGPT],
            "n_layer": model_args["n_layer"],
            "n_head": model_args["n_head"],
            "n_embd": model_args["n_embd"],
            "n_positions": model_args["block_size"],
            "vocab_size": model_args["vocab_size"],
            "bias": bool(model_args.get("bias", True)),
            "layer_norm_epsilon": 1e-5,
            "activation_function": "gelu",  # nn.GELU(): the exact erf form
            "tie_word_embeddings": True,
        }
    except KeyError as exc:
        raise ConversionError(f"The nanoGPT checkpoint's model_args lack {exc}.") from None
    check_config(config, where)
    return config


def resolve_source(src: Path, config_path: Path | None = None) -> Source:
    src = src.expanduser()
    if not src.exists():
        raise ConversionError(f"{src} does not exist.")
    if src.is_dir():
        return _from_folder(src, config_path)
    return _from_file(src, config_path)


def _from_folder(folder: Path, config_path: Path | None) -> Source:
    config_file = config_path or folder / "config.json"
    if not config_file.is_file():
        ckpt = folder / "ckpt.pt"
        if ckpt.is_file():
            return _from_file(ckpt, config_path)
        raise ConversionError(
            f"{folder} has no config.json (and no nanoGPT ckpt.pt): give the Hugging Face "
            "folder that holds config.json, or pass --config."
        )
    config = read_json(config_file)
    check_config(config, str(config_file))
    arch = architecture_of(config, config_file)
    checkpoint = open_folder_weights(folder)
    if checkpoint is None:
        raise ConversionError(
            f"{folder} holds no weights: expected model.safetensors, sharded safetensors with "
            "model.safetensors.index.json, or pytorch_model*.bin."
        )
    return Source(checkpoint, config, arch, folder, folder.name)


def _from_file(path: Path, config_path: Path | None) -> Source:
    folder = path.parent
    if path.name.endswith(".json") and not path.name.endswith(".index.json"):
        raise ConversionError(f"{path} is a JSON file; give the model folder or weights file.")
    if path.suffix in TORCH_SUFFIXES:
        obj = torch_load(path)
        if isinstance(obj, Mapping) and "model_args" in obj and "model" in obj:
            state = unwrap_state_dict(obj["model"])
            if state is None:
                raise ConversionError(f"{path}: its 'model' entry holds no tensors.")
            config = nanogpt_config(obj["model_args"], f"{path} (model_args)")
            name = path.parent.name if path.stem == "ckpt" else path.stem
            return Source(TorchStateDict(state, path), config, NANOGPT, folder, name)
        state = unwrap_state_dict(obj)
        if state is None:
            raise ConversionError(f"{path} does not contain a state dict of tensors.")
        checkpoint: Checkpoint = TorchStateDict(state, path)
    else:
        checkpoint = open_weights(path)
    config_file = config_path or folder / "config.json"
    if not config_file.is_file():
        checkpoint.close()
        raise ConversionError(
            f"{path} is a bare state dict: pass its config.json with --config so the "
            "architecture and sizes are known."
        )
    try:
        config = read_json(config_file)
        check_config(config, str(config_file))
        arch = architecture_of(config, config_file)
    except ConversionError:
        checkpoint.close()
        raise
    return Source(checkpoint, config, arch, folder, path.stem)
