"""What every architecture mapper shares: the tensor plan built from expected shapes.

A mapper says which GGUF tensors the architecture needs and their shapes (from the config),
how a checkpoint tensor becomes one (rename with `gguf.get_tensor_name_map`, then permute or
transpose), and which checkpoint tensors to skip. `build_plan` checks the checkpoint against
that before anything is written: unknown, missing and misshapen tensors are errors.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import gguf
import numpy as np

from assistant.errors import ConversionError

from ..checkpoints import Checkpoint

Loader = Callable[[], np.ndarray]


@dataclass(frozen=True)
class TensorSpec:
    """A tensor the GGUF file must (or may) hold; shape in PyTorch order (rows, columns)."""

    name: str
    shape: tuple[int, ...]
    required: bool = True
    zeros_if_missing: bool = False  # e.g. the biases of a bias-free nanoGPT
    make: Loader | None = None  # computed, not read from the checkpoint


@dataclass(frozen=True)
class PlannedTensor:
    name: str
    shape: tuple[int, ...]
    source: str | None  # checkpoint name, None when synthesized
    source_dtype: str
    load: Loader


def find_hparam(config: Mapping[str, Any], *keys: str, default: Any = None) -> Any:
    for key in keys:
        if config.get(key) is not None:
            return config[key]
    if default is not None:
        return default
    raise ConversionError(f"config.json lacks {' / '.join(keys)}.")


class Mapper(ABC):
    """One architecture family; subclasses register the Hugging Face names they handle."""

    gguf_arch: ClassVar[gguf.MODEL_ARCH]
    handles: ClassVar[tuple[str, ...]] = ()
    skip_suffixes: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: Mapping[str, Any], architecture: str):
        self.config = dict(config)
        self.architecture = architecture
        self.n_layer = int(find_hparam(config, "num_hidden_layers", "n_layer"))
        self.n_vocab = int(find_hparam(config, "vocab_size"))
        self.tensor_map = gguf.get_tensor_name_map(self.gguf_arch, self.n_layer)
        self.notes: list[str] = []  # what the user should know about this conversion

    @property
    def arch_name(self) -> str:
        return gguf.MODEL_ARCH_NAMES[self.gguf_arch]

    @property
    def tied_embeddings(self) -> bool:
        return bool(self.config.get("tie_word_embeddings", False))

    @property
    def context_length(self) -> int:
        keys = ("max_position_embeddings", "n_positions", "n_ctx")
        return int(find_hparam(self.config, *keys))

    # -- what subclasses provide -------------------------------------------------------------
    @abstractmethod
    def specs(self, n_vocab_out: int) -> list[TensorSpec]:
        """Every tensor of the output, in order; token rows padded to `n_vocab_out`."""

    @abstractmethod
    def write_hparams(self, writer: gguf.GGUFWriter) -> None: ...

    def transform(self, source: str, target: str, data: np.ndarray) -> np.ndarray:
        """Turn a checkpoint tensor into the GGUF one (a permutation, a transpose)."""
        return data

    def stored_transposed(self, source: str) -> bool:
        """Whether the checkpoint stores the matrix `source` as [in, out] (not nn.Linear's)."""
        return False

    def lora_b(self, source: str, target: str, b: np.ndarray) -> np.ndarray:
        """A LoRA's B [out, r] for the weight `source`, laid out so that B·A lines up with the
        converted weight (the row permutation `transform` applies; A is never changed)."""
        return self.transform(source, target, b)

    def source_shape(self, spec: TensorSpec) -> tuple[int, ...]:
        """The shape the checkpoint tensor must have to become `spec`."""
        return spec.shape

    def skip(self, name: str) -> bool:
        if name.endswith(self.skip_suffixes):
            return True
        return self.tied_embeddings and name in ("lm_head.weight", "output.weight")

    def gguf_name(self, name: str) -> str | None:
        return self.tensor_map.get_name(name, try_suffixes=(".weight", ".bias"))

    def tensor_name(self, kind: gguf.MODEL_TENSOR, bid: int | None = None, suffix: str = ".weight"):
        name = gguf.TENSOR_NAMES[kind]
        return (name.format(bid=bid) if bid is not None else name) + suffix

    # -- the reference forward used by --verify -----------------------------------------------
    @abstractmethod
    def reference_logits(self, weights: Mapping[str, Any], prompts: Sequence[Sequence[int]]) -> Any:
        """float32 logits [len(ids), n_vocab] for each prompt, from a PyTorch forward on the
        checkpoint's weights (source names, float32 torch tensors: `reference.LazyWeights`)."""


def build_plan(mapper: Mapper, checkpoint: Checkpoint, n_vocab_out: int) -> list[PlannedTensor]:
    specs = mapper.specs(n_vocab_out)
    by_name = {s.name: s for s in specs}
    found: dict[str, str] = {}
    unknown: list[str] = []
    for name in checkpoint.tensors:
        if mapper.skip(name):
            continue
        target = mapper.gguf_name(name)
        if target is None or target not in by_name:
            unknown.append(name)
            continue
        if target in found:
            raise ConversionError(f"Both {found[target]!r} and {name!r} map to {target}.")
        found[target] = name
    if unknown:
        listed = ", ".join(unknown[:6]) + (" …" if len(unknown) > 6 else "")
        raise ConversionError(
            f"The checkpoint has tensors that {mapper.architecture} does not use: {listed}. "
            "It may be a variant this converter does not support."
        )
    plan: list[PlannedTensor] = []
    missing: list[str] = []
    for spec in specs:
        planned = _plan_one(mapper, checkpoint, spec, found.get(spec.name))
        if planned is None:
            if spec.required:
                missing.append(spec.name)
            continue
        plan.append(planned)
    if missing:
        listed = ", ".join(missing[:6]) + (" …" if len(missing) > 6 else "")
        raise ConversionError(
            f"The checkpoint lacks tensors that {mapper.architecture} with "
            f"{mapper.n_layer} layers needs (GGUF names): {listed}."
        )
    return plan


def _plan_one(
    mapper: Mapper, checkpoint: Checkpoint, spec: TensorSpec, source: str | None
) -> PlannedTensor | None:
    if spec.make is not None:
        return PlannedTensor(spec.name, spec.shape, None, "F32", spec.make)
    if source is None:
        if not spec.zeros_if_missing:
            return None
        shape = spec.shape
        return PlannedTensor(spec.name, shape, None, "F32", lambda: np.zeros(shape, np.float32))
    info = checkpoint.tensors[source]
    expected = mapper.source_shape(spec)
    rows = _padded_rows(mapper, spec, expected, info.shape)
    if info.shape != expected and rows is None:
        raise ConversionError(
            f"Shape mismatch for {source!r}: the config implies {list(expected)}, the checkpoint "
            f"has {list(info.shape)}. Is config.json the one these weights were trained with?"
        )

    def load() -> np.ndarray:
        data = mapper.transform(source, spec.name, checkpoint.load(source))
        if rows is not None:
            data = pad_rows(data, spec.shape[0])
        return data

    return PlannedTensor(spec.name, spec.shape, source, info.dtype, load)


def _padded_rows(
    mapper: Mapper, spec: TensorSpec, expected: tuple[int, ...], actual: tuple[int, ...]
) -> int | None:
    """A token table written with extra rows for tokens the vocabulary adds (a char-level EOS)."""
    if spec.name not in ("token_embd.weight", "output.weight") or len(actual) != 2:
        return None
    if actual[1:] == expected[1:] and actual[0] == mapper.n_vocab < expected[0]:
        return actual[0]
    return None


def pad_rows(data: np.ndarray, rows: int) -> np.ndarray:
    out = np.zeros((rows, *data.shape[1:]), dtype=data.dtype)
    out[: data.shape[0]] = data
    return out
