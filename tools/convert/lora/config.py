"""adapter_config.json: what kind of adapter it is, and whether it can be merged exactly.

A LoRA adds scale·B·A to a weight, scale = alpha / r (rsLoRA: alpha / √r), with per-module r
and alpha from `rank_pattern` / `alpha_pattern`. Everything else PEFT can save is refused by
name: DoRA (a learned magnitude), trained embeddings or whole modules (`modules_to_save`,
`trainable_token_indices`), LoRA biases, initialisations that changed the base weights
(PiSSA, OLoRA, LoftQ …, unless converted back on save), activated LoRA.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.errors import ConversionError

from ..config_check import show_value
from ..json_files import read_json_object

CONFIG_NAME = "adapter_config.json"
# init_lora_weights values that leave the base weights as they were
_PLAIN_INITS = (True, False, "gaussian", None)


@dataclass(frozen=True)
class AdapterConfig:
    path: Path
    r: int
    alpha: float
    rslora: bool
    target_modules: tuple[str, ...] | str
    rank_pattern: Mapping[str, int] = field(default_factory=dict)
    alpha_pattern: Mapping[str, float] = field(default_factory=dict)
    base_model: str = ""

    def rank_and_alpha(self, module: str) -> tuple[int, float]:
        """r and alpha of one module (its full name, e.g. model.layers.0.self_attn.q_proj)."""
        key = _pattern_key(self.rank_pattern, module)
        r = int(self.rank_pattern[key]) if key is not None else self.r
        key = _pattern_key(self.alpha_pattern, module)
        alpha = float(self.alpha_pattern[key]) if key is not None else self.alpha
        return r, alpha

    def scale(self, module: str) -> float:
        r, alpha = self.rank_and_alpha(module)
        return alpha / math.sqrt(r) if self.rslora else alpha / r


def _pattern_key(patterns: Mapping[str, Any], module: str) -> str | None:
    """The pattern PEFT would apply to `module`: an exact name, or a regex matching its end."""
    for key in patterns:
        if key == module or re.fullmatch(rf"(.*\.)?(?:{key})", module):
            return key
    return None


def not_supported(path: Path, what: str) -> ConversionError:
    return ConversionError(f"{path}: not supported: {what}; no file was written.")


def read_adapter_config(folder: Path) -> AdapterConfig:
    path = folder / CONFIG_NAME
    data = read_json_object(path)
    kind = data.get("peft_type")
    if kind != "LORA":
        raise not_supported(path, f"peft_type {show_value(kind)} (only LORA adapters are)")
    _refuse_variants(path, data)
    r = data.get("r")
    alpha = data.get("lora_alpha", r)
    if isinstance(r, bool) or not isinstance(r, int) or r <= 0:
        raise ConversionError(f"{path}: r is {show_value(r)}; it must be a positive whole number.")
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not math.isfinite(alpha):
        raise ConversionError(f"{path}: lora_alpha is {show_value(alpha)}; it must be a number.")
    targets = data.get("target_modules") or ()
    if isinstance(targets, list):
        targets = tuple(str(t) for t in targets)
    elif not isinstance(targets, str):
        raise ConversionError(f"{path}: target_modules is {show_value(targets)}.")
    return AdapterConfig(
        path=path,
        r=r,
        alpha=float(alpha),
        rslora=bool(data.get("use_rslora")),
        target_modules=targets,
        rank_pattern=_pattern(path, data, "rank_pattern"),
        alpha_pattern=_pattern(path, data, "alpha_pattern"),
        base_model=str(data.get("base_model_name_or_path") or ""),
    )


def _pattern(path: Path, data: Mapping[str, Any], key: str) -> dict[str, float]:
    value = data.get(key) or {}
    ok = isinstance(value, dict) and all(
        isinstance(v, int | float) and not isinstance(v, bool) and v > 0 for v in value.values()
    )
    if not ok:
        raise ConversionError(
            f"{path}: {key} is {show_value(value)}; it must map module names to numbers."
        )
    return dict(value)


def _refuse_variants(path: Path, data: Mapping[str, Any]) -> None:
    if data.get("use_dora"):
        raise not_supported(path, "DoRA (use_dora); merge it with PEFT's merge_and_unload first")
    saved = data.get("modules_to_save")
    if saved:
        names = ", ".join(str(m) for m in saved) if isinstance(saved, list) else str(saved)
        raise not_supported(path, f"modules_to_save ({names}): whole trained modules")
    checks = (
        ("trainable_token_indices", "trained token embeddings (trainable_token_indices)"),
        ("target_parameters", "LoRA on parameters (target_parameters)"),
        ("lora_bias", "LoRA biases (lora_bias)"),
        ("alora_invocation_tokens", "activated LoRA (alora_invocation_tokens)"),
        ("layer_replication", "layer_replication"),
        ("use_qalora", "QA-LoRA (use_qalora)"),
        ("use_bdlora", "block-diagonal LoRA (use_bdlora)"),
    )
    for key, what in checks:
        if data.get(key):
            raise not_supported(path, what)
    if data.get("bias", "none") != "none":
        raise not_supported(path, f"trained biases (bias={data['bias']!r})")
    init = data.get("init_lora_weights", True)
    if init not in _PLAIN_INITS or data.get("loftq_config"):
        name = "loftq" if data.get("loftq_config") else init
        raise not_supported(
            path,
            f"an adapter initialised with {name!r} changes the base weights; save it with "
            "PEFT's path_initial_model_for_weight_conversion to get a plain LoRA",
        )
