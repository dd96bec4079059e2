"""Architecture mappers, registered by the Hugging Face architecture names they handle.

Adding an architecture means adding one module here that subclasses `Mapper`, decorates it
with `@register("SomethingForCausalLM")`, and is imported at the bottom of this file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from assistant.errors import ConversionError

if TYPE_CHECKING:
    from .base import Mapper

_REGISTRY: dict[str, type[Mapper]] = {}


def register(*names: str) -> Callable[[type[Mapper]], type[Mapper]]:
    def add(cls: type[Mapper]) -> type[Mapper]:
        cls.handles = names
        for name in names:
            _REGISTRY[name] = cls
        return cls

    return add


def supported_architectures() -> list[str]:
    return sorted(_REGISTRY)


def mapper_for(architecture: str, config: Mapping[str, Any]) -> Mapper:
    cls = _REGISTRY.get(architecture)
    if cls is None:
        raise ConversionError(
            f"unsupported architecture {architecture}; supported: "
            f"{', '.join(supported_architectures())}."
        )
    return cls(config, architecture)


from . import gemma, gpt2, llama, phi3, qwen2, qwen3  # noqa: E402,F401  (registration)
