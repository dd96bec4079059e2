"""The curated catalog of recommended models (`models/catalog.json`) as frozen dataclasses."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from assistant.errors import InvalidInputError
from assistant.library.gguf_header import GGUFInfo

CATALOG_ENV = "ASSISTANT_CATALOG"
DEFAULT_CATALOG = Path(__file__).resolve().parents[2] / "models" / "catalog.json"


@dataclass(frozen=True)
class CatalogFile:
    quant: str
    file: str
    size_bytes: int


@dataclass(frozen=True)
class Architecture:
    arch: str
    layers: int
    embd: int
    heads: int
    kv_heads: int
    head_dim: int
    ff: int
    vocab: int
    tied_embeddings: bool


@dataclass(frozen=True)
class CatalogEntry:
    id: str
    name: str
    repo: str
    license: str
    context_length: int
    parameters: int
    description: str
    default_quant: str
    files: tuple[CatalogFile, ...]
    architecture: Architecture
    embedded: bool = False
    source: str = ""

    def file_for(self, quant: str | None = None) -> CatalogFile:
        wanted = (quant or self.default_quant).upper()
        for f in self.files:
            if f.quant.upper() == wanted:
                return f
        choices = ", ".join(f.quant for f in self.files)
        raise InvalidInputError(
            f"{self.name} has no {wanted} file in the catalog; choose one of "
            f"{choices}, or list the repository with `assistant models files "
            f"{self.repo}`."
        )

    def approximate_info(self, quant: str | None = None) -> GGUFInfo:
        """A GGUFInfo good enough for a fit estimate before the file is downloaded.

        Bytes are spread over the tensors in proportion to their parameter counts.
        """
        a, f = self.architecture, self.file_for(quant)
        per_param = f.size_bytes / max(self.parameters, 1)
        embedding = int(a.vocab * a.embd * per_param)
        output = 0 if a.tied_embeddings else embedding
        per_layer = max(0, (f.size_bytes - embedding - output) // max(a.layers, 1))
        return GGUFInfo(
            path=f"{self.repo}/{f.file}",
            name=self.name,
            architecture=a.arch,
            n_params=self.parameters,
            file_size=f.size_bytes,
            quantization=f.quant,
            n_ctx_train=self.context_length,
            n_layers=a.layers,
            n_embd=a.embd,
            n_head=a.heads,
            n_head_kv=(a.kv_heads,) * a.layers,
            head_dim_k=a.head_dim,
            head_dim_v=a.head_dim,
            n_ff=a.ff,
            n_vocab=a.vocab,
            has_chat_template=True,
            layer_bytes=(per_layer,) * a.layers,
            input_bytes=embedding,
            embedding_bytes=embedding,
            output_bytes=output,
            tied_output=a.tied_embeddings,
            license=self.license,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "repo": self.repo,
            "license": self.license,
            "context_length": self.context_length,
            "parameters": self.parameters,
            "description": self.description,
            "default_quant": self.default_quant,
            "embedded": self.embedded,
            "files": [f.__dict__.copy() for f in self.files],
        }


def catalog_path() -> Path:
    return Path(os.environ.get(CATALOG_ENV) or DEFAULT_CATALOG)


def load_catalog(path: Path | None = None) -> tuple[CatalogEntry, ...]:
    path = path or catalog_path()
    return _load(str(path), path.stat().st_mtime_ns if path.exists() else 0)


@lru_cache(maxsize=4)
def _load(path: str, _mtime: int) -> tuple[CatalogEntry, ...]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return tuple(_entry(m) for m in data["models"])
    except OSError as exc:
        raise InvalidInputError(f"Cannot read the model catalog {path}: {exc.strerror}.") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidInputError(f"The model catalog {path} is malformed ({exc}).") from None


def _entry(m: dict[str, Any]) -> CatalogEntry:
    return CatalogEntry(
        id=m["id"],
        name=m["name"],
        repo=m["repo"],
        license=m["license"],
        context_length=int(m["context_length"]),
        parameters=int(m["parameters"]),
        description=m["description"],
        default_quant=m["default_quant"],
        files=tuple(CatalogFile(f["quant"], f["file"], int(f["size_bytes"])) for f in m["files"]),
        architecture=Architecture(**m["architecture"]),
        embedded=bool(m.get("embedded", False)),
        source=m.get("source", ""),
    )


def display_name(info: GGUFInfo) -> str:
    """The name people see for a model file, the same everywhere (status bar, library, settings,
    the CLI): the catalog's name when the file is one of its models, else the GGUF's cleaned
    `general.name` (see `naming`), else the file name."""
    try:
        entries = load_catalog()
    except (InvalidInputError, OSError):
        return info.name
    file_name = Path(info.path).name.lower()
    for entry in entries:
        if any(f.file.lower() == file_name for f in entry.files):
            return entry.name
    return info.name


def with_display_name(info: GGUFInfo) -> GGUFInfo:
    return replace(info, name=display_name(info))


def find_entry(text: str, entries: tuple[CatalogEntry, ...] | None = None) -> CatalogEntry | None:
    """The entry whose id or repository is `text` (case-insensitive), else None."""
    key = text.lower()
    for entry in entries if entries is not None else load_catalog():
        if key in {entry.id.lower(), entry.repo.lower()}:
            return entry
    return None
