"""Does a GGUF LoRA adapter fit the model it is applied on? Checked from both headers before
llama.cpp sees the files, so a mismatch is one message naming both (llama.cpp's own refusal
says only "wrong base model?", and a shape it does not check can crash it).

Checked: the adapter is a LoRA adapter file, written for the model's architecture and layer
count, and every `X.lora_a` / `X.lora_b` pair lines up with the model's tensor X
(A is [in, r] and B is [r, out] in GGUF order, X is [in, out]).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from assistant.errors import ModelLoadError
from assistant.library.gguf_header import read_header, shard_paths
from assistant.library.gguf_parse import GGUFHeader, TensorInfo

_SUFFIXES = (".lora_a", ".lora_b")


def check_adapter(model_path: str | Path, adapter_path: str | Path | None) -> None:
    """Raise ModelLoadError naming the adapter, the model and the first mismatch (nothing to do
    without an adapter)."""
    if not adapter_path:
        return
    adapter_path = Path(adapter_path).expanduser()
    model_path = Path(model_path).expanduser()
    adapter = read_header(adapter_path)
    fields = adapter.fields
    if fields.get("general.type") != "adapter" or fields.get("adapter.type") != "lora":
        raise ModelLoadError(
            f"{adapter_path} is not a LoRA adapter file (general.type is "
            f"{fields.get('general.type')!r}): make one with `assistant convert ADAPTER_DIR "
            "--adapter-only`, or load it as a model."
        )
    headers = [read_header(p) for p in shard_paths(model_path)]
    model_fields = headers[0].fields
    tensors = {t.name: t for h in headers for t in h.tensors}
    arch = str(model_fields.get("general.architecture", "?"))
    adapter_arch = str(fields.get("general.architecture", "?"))
    model_layers = model_fields.get(f"{arch}.block_count")
    adapter_layers = fields.get(f"{adapter_arch}.block_count")
    problem = None
    if adapter_arch != arch:
        problem = f"it is for {adapter_arch} models"
    elif adapter_layers is not None and adapter_layers != model_layers:
        problem = f"it is for {adapter_layers} layers, the model has {model_layers}"
    else:
        problem = _shape_problem(adapter, tensors)
    if problem:
        made_for = _base_name(fields)
        raise ModelLoadError(
            f"The adapter {adapter_path.name} ({adapter_arch}, {_layers(adapter_layers)}"
            f"{made_for}) does not fit the model {model_path.name} ({arch}, "
            f"{_layers(model_layers)}): {problem}."
        )


def _shape_problem(adapter: GGUFHeader, model: dict[str, TensorInfo]) -> str | None:
    pairs: dict[str, dict[str, TensorInfo]] = {}
    for t in adapter.tensors:
        base, _, kind = t.name.rpartition(".")
        if "." + kind not in _SUFFIXES:
            return f"its tensor {t.name} is not part of a LoRA pair"
        pairs.setdefault(base, {})[kind] = t
    if not pairs:
        return "it holds no LoRA tensors"
    for name, pair in sorted(pairs.items()):
        if set(pair) != {"lora_a", "lora_b"}:
            return f"{name} has only {', '.join(pair)}"
        target = model.get(name)
        if target is None:
            return f"the model has no tensor {name}"
        a, b = pair["lora_a"].shape, pair["lora_b"].shape
        w = target.shape
        if len(a) != 2 or len(b) != 2 or len(w) != 2 or a[1] != b[0] or (a[0], b[1]) != w[:2]:
            return f"{name} is {list(w)} in the model, the adapter's A is {list(a)} and B {list(b)}"
    return None


def _layers(value: Any) -> str:
    return f"{value} layers" if value is not None else "layers unknown"


def _base_name(fields: Any) -> str:
    name = fields.get("general.base_model.0.name")
    return f", made for {name}" if isinstance(name, str) and name else ""
