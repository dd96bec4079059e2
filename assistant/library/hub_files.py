"""GGUF files in a Hub repository: quantization labels and grouping shards into models.

Plain data and naming rules only (no network, no cache): `hub` lists a repository's files
with these, `hub_cache` groups the files of a downloaded snapshot the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from assistant.library.gguf_header import SHARD_RE

_QUANT = re.compile(
    r"(?:^|[-_.])((?:I?Q\d(?:_[A-Z0-9]+)*)|BF16|F16|F32|FP16|FP32|MXFP4(?:_MOE)?|TQ\d_\d)"
    r"(?=[-_.]|$)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class RemoteFile:
    filename: str
    size: int | None
    sha256: str | None


@dataclass(frozen=True)
class RemoteModel:
    """One GGUF model in a repository: a single file or all the shards of a split one."""

    repo: str
    name: str  # file name, or the shared base name of the shards
    quant: str
    files: tuple[RemoteFile, ...]

    @property
    def filename(self) -> str:
        return self.files[0].filename

    @property
    def size(self) -> int | None:
        sizes = [f.size for f in self.files]
        return None if None in sizes else sum(sizes)  # type: ignore[arg-type]

    @property
    def is_projector(self) -> bool:
        return "mmproj" in self.name.lower()

    def to_dict(self) -> dict:
        return {
            "repo": self.repo,
            "name": self.name,
            "quant": self.quant,
            "size": self.size,
            "files": [f.filename for f in self.files],
            "projector": self.is_projector,
        }


def quant_label(filename: str) -> str:
    """Q4_K_M from 'Model-Q4_K_M.gguf' (or '...-q4_k_m-00001-of-00002.gguf'); '' if none."""
    stem = Path(filename).name
    match = SHARD_RE.match(stem)
    stem = match["base"] if match else stem.removesuffix(".gguf").removesuffix(".GGUF")
    labels = _QUANT.findall(stem)
    return labels[-1].upper() if labels else ""


def group_gguf_files(repo: str, files: list[RemoteFile]) -> list[RemoteModel]:
    """One RemoteModel per single file or per complete set of shards."""
    singles: list[RemoteModel] = []
    shards: dict[tuple[str, int], list[RemoteFile]] = {}
    for f in files:
        if not f.filename.lower().endswith(".gguf"):
            continue
        match = SHARD_RE.match(Path(f.filename).name)
        if match:
            base = f.filename[: len(f.filename) - len(Path(f.filename).name)] + match["base"]
            shards.setdefault((base, int(match["count"])), []).append(f)
        else:
            singles.append(RemoteModel(repo, f.filename, quant_label(f.filename), (f,)))
    for (base, count), parts in shards.items():
        if len(parts) == count:  # an incomplete upload is not a usable model
            parts.sort(key=lambda p: p.filename)
            singles.append(RemoteModel(repo, base, quant_label(parts[0].filename), tuple(parts)))
    return sorted(singles, key=lambda m: (m.is_projector, m.size or 0, m.name))
