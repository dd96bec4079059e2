"""Unpickling that accepts plain data only (dicts, lists, tuples, str, numbers, bytes, bool).

Plain containers and scalars are built by pickle opcodes without looking up any class, so
refusing every class lookup (`find_class`) is enough: nothing named in the file is imported
or called, whatever it asks for.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

from assistant.errors import ConversionError


class _PlainDataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"it asks for {module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("it uses persistent ids")


def load_plain_pickle(path: Path) -> Any:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConversionError(f"Cannot read {path}: {exc.strerror}.") from None
    try:
        return _PlainDataUnpickler(io.BytesIO(data)).load()
    except pickle.UnpicklingError as exc:
        raise ConversionError(
            f"Refusing to load {path}: it is not plain data ({exc}); loading it could run "
            "code. Only dictionaries, lists, strings and numbers are accepted."
        ) from None
    except (EOFError, ValueError, TypeError, IndexError, AttributeError) as exc:
        raise ConversionError(f"{path} is not a valid pickle file ({exc}).") from None
