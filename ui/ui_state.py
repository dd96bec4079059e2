"""Window state between runs (last conversation, geometry) in the app's home folder."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from assistant import paths

FILENAME = "window.json"


def state_path() -> Path:
    return paths.home() / FILENAME


def load() -> dict[str, Any]:
    try:
        data = json.loads(state_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def save(**values: Any) -> None:
    """Merge `values` into the saved state; a failure to write is not worth bothering the user."""
    data = {**load(), **values}
    try:
        path = state_path()
        fd, tmp = tempfile.mkstemp(prefix=".window-", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle)
        os.replace(tmp, path)
    except OSError:
        pass
