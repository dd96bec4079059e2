"""The JSON files of a checkpoint (config, tokenizer, shard index): one clear error for each
way they can be broken, a deeply nested one included (json raises RecursionError there)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from assistant.errors import ConversionError


def parse_json(text: str | bytes, path: Path | str) -> Any:
    try:
        return json.loads(text)
    except RecursionError:
        raise ConversionError(f"{path} is not valid JSON (nested too deeply).") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, an integer too long
        raise ConversionError(f"{path} is not valid JSON ({_short(exc)}).") from None


def read_json(path: Path) -> Any:
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ConversionError(f"Cannot read {path}: {exc.strerror}.") from None
    return parse_json(text, path)


def read_json_object(path: Path) -> dict[str, Any]:
    data = read_json(path)
    if not isinstance(data, dict):
        raise ConversionError(f"{path} does not hold a JSON object.")
    return data


def _short(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 160 else text[:160] + "…"
