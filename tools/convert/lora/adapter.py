"""A PEFT adapter folder: its config, its weights (names and shapes up front, data on demand),
and each LoRA pair matched to the base tensor it changes."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from assistant.errors import ConversionError

from ..checkpoints import Checkpoint, SafetensorsFile, open_torch_state_dict
from ..mappers.base import Mapper
from .config import CONFIG_NAME, AdapterConfig, not_supported, read_adapter_config

WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")
PREFIX = "base_model.model."
# The GGUF tensors a LoRA may change: the attention and MLP projections of each block.
TARGETS = re.compile(
    r"blk\.\d+\.(attn_q|attn_k|attn_v|attn_qkv|attn_output|ffn_gate|ffn_up|ffn_down)\.weight"
)
_PAIR = re.compile(r"^(?P<module>.+)\.lora_(?P<ab>[AB])(?:\.[^.]+)?\.weight$")


@dataclass(frozen=True)
class LoraPair:
    """One adapted weight: scale · B·A is added to `weight` ([out, in] as nn.Linear holds it)."""

    module: str  # model.layers.0.self_attn.q_proj
    weight: str  # the base checkpoint tensor it changes
    target: str  # its GGUF name, blk.0.attn_q.weight
    a: str  # adapter tensor names
    b: str
    rank: int
    in_features: int
    out_features: int
    scale: float
    transposed: bool = False  # the base stores the weight as [in, out] (GPT-2's Conv1D)


def is_adapter_folder(path: Path) -> bool:
    return path.is_dir() and (path / CONFIG_NAME).is_file()


class Adapter:
    def __init__(self, folder: Path, config: AdapterConfig, weights: Checkpoint):
        self.folder = folder
        self.config = config
        self.weights = weights
        self.pairs: dict[str, LoraPair] = {}  # by base tensor name

    def load_a(self, pair: LoraPair) -> np.ndarray:
        return np.array(self.weights.load(pair.a), dtype=np.float32)  # a writable copy

    def load_b(self, pair: LoraPair) -> np.ndarray:
        return np.array(self.weights.load(pair.b), dtype=np.float32)

    def delta(self, pair: LoraPair) -> np.ndarray:
        """scale · B·A in float32, laid out as the base checkpoint stores the weight."""
        delta = self.load_b(pair) @ self.load_a(pair)
        delta *= np.float32(pair.scale)
        return delta.T if pair.transposed else delta

    @property
    def n_parameters(self) -> int:
        return sum(p.rank * (p.in_features + p.out_features) for p in self.pairs.values())

    def close(self) -> None:
        self.weights.close()


def _open_weights(folder: Path) -> Checkpoint:
    for name in WEIGHT_FILES:
        path = folder / name
        if path.is_file():
            return (
                SafetensorsFile(path)
                if path.suffix == ".safetensors"
                else (open_torch_state_dict(path))
            )
    raise ConversionError(
        f"{folder} has {CONFIG_NAME} but no adapter weights ({' or '.join(WEIGHT_FILES)})."
    )


def open_adapter(folder: Path, base: Checkpoint, mapper: Mapper, base_name: str) -> Adapter:
    """The adapter in `folder`, every pair checked against the base checkpoint; refusals name
    the adapter, the module and the base (`base_name`)."""
    config = read_adapter_config(folder)
    weights = _open_weights(folder)
    adapter = Adapter(folder, config, weights)
    try:
        _pair_up(adapter, base, mapper, base_name)
    except BaseException:
        weights.close()
        raise
    return adapter


def _pair_up(adapter: Adapter, base: Checkpoint, mapper: Mapper, base_name: str) -> None:
    where = getattr(adapter.weights, "path", adapter.folder)
    halves: dict[str, dict[str, str]] = {}
    refusals: list[tuple[int, str]] = []  # (priority, what): the most telling one is named
    for name in adapter.weights.tensors:
        inner = name.removeprefix(PREFIX)
        match = _PAIR.match(inner)
        if match:
            halves.setdefault(match["module"], {})[match["ab"]] = name
        elif "lora_magnitude_vector" in inner:
            refusals.append((0, f"DoRA ({inner})"))
        elif "lora_embedding_" in inner:
            refusals.append((1, f"LoRA on embeddings ({inner})"))
        elif ".lora_B." in inner and inner.endswith(".bias"):
            refusals.append((2, f"LoRA biases ({inner})"))
        else:
            refusals.append((3, f"a whole trained tensor ({inner}: modules_to_save?)"))
    if refusals and min(refusals)[0] < 3:
        raise not_supported(where, min(refusals)[1])
    if not halves:
        raise ConversionError(f"{where} holds no LoRA weights.")
    for module, ab in sorted(halves.items()):
        if set(ab) != {"A", "B"}:
            have = "lora_A" if "A" in ab else "lora_B"
            raise ConversionError(f"{where} is incomplete: {module} has {have} only.")
        pair = _pair(adapter, module, ab["A"], ab["B"], base, mapper, base_name)
        adapter.pairs[pair.weight] = pair
    if refusals:  # whole tensors: named after any pair on a module that cannot be merged
        raise not_supported(where, min(refusals)[1])


def _pair(
    adapter: Adapter,
    module: str,
    a: str,
    b: str,
    base: Checkpoint,
    mapper: Mapper,
    base_name: str,
) -> LoraPair:
    config, folder = adapter.config, adapter.folder
    weight = module + ".weight"
    if weight not in base.tensors:
        raise ConversionError(
            f"The adapter {folder.name} changes {weight}, which the base {base_name} "
            f"({mapper.architecture}, {mapper.n_layer} layers) does not have: is it the model "
            "the adapter was trained on?"
        )
    target = None if mapper.skip(weight) else mapper.gguf_name(weight)
    if target is None or not TARGETS.fullmatch(target):
        raise not_supported(
            config.path,
            f"LoRA on {module} ({target or 'not a tensor of the converted model'}): only the "
            "attention and MLP projections (q, k, v, o, gate, up, down) are",
        )
    shape_a, shape_b = adapter.weights.tensors[a].shape, adapter.weights.tensors[b].shape
    w_shape = base.tensors[weight].shape
    # A and B are [r, in] and [out, r] whatever the base's layout (PEFT's fan_in_fan_out says
    # how the model it was trained on stored the weight); the mapper knows this base's
    transposed = mapper.stored_transposed(weight)
    out_in = w_shape[::-1] if transposed else w_shape
    fits = (
        len(shape_a) == 2
        and len(shape_b) == 2
        and len(out_in) == 2
        and shape_a[0] == shape_b[1]
        and (shape_b[0], shape_a[1]) == tuple(out_in)
    )
    if not fits:
        raise ConversionError(
            f"The adapter {folder.name} does not fit the base {base_name} "
            f"({mapper.architecture}, {mapper.n_layer} layers): {module} is {list(w_shape)} in "
            f"the base, the adapter has A {list(shape_a)} and B {list(shape_b)}."
        )
    r, _ = config.rank_and_alpha(module)
    if shape_a[0] != r:
        raise ConversionError(
            f"{config.path}: {module} has rank {shape_a[0]} in the weights but {r} in the config."
        )
    scale = config.scale(module)
    return LoraPair(module, weight, target, a, b, r, out_in[1], out_in[0], scale, transposed)


def resolve_base(given: str | Path | None, config: AdapterConfig) -> Path:
    """The base model's folder: `given` (--base) or the adapter's base_model_name_or_path,
    either a folder or a Hugging Face Hub id already in the local cache (never downloaded)."""
    text = str(given) if given else config.base_model
    if not text:
        raise ConversionError(
            f"{config.path} names no base model (base_model_name_or_path): pass --base with the "
            "Hugging Face folder of the model the adapter was trained on."
        )
    path = Path(text).expanduser()
    if path.suffix.lower() == ".gguf":
        raise ConversionError(
            f"The base {path.name} is a GGUF file: give the base's Hugging Face folder (to use "
            "the adapter on a GGUF, write it with --adapter-only and load it with --lora)."
        )
    if path.exists():
        return path
    if path.is_absolute() or text.startswith((".", "~")) or text.count("/") != 1:
        raise ConversionError(f"The base model {text} does not exist.")
    return _cached_snapshot(text)


def _cached_snapshot(repo_id: str) -> Path:
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except (LocalEntryNotFoundError, HFValidationError, OSError, ValueError):
        raise ConversionError(
            f"The base model {repo_id} is neither a folder nor in the local Hugging Face cache "
            f"({constants.HF_HUB_CACHE}): download it first, or pass --base with its folder."
        ) from None
