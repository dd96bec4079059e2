"""Models downloaded from the Hub: the cache folder, its complete models, and removing one.

The cache has huggingface_hub's layout (`models--OWNER--NAME/{blobs,snapshots,refs}`), so it
can be shared with other Hugging Face tools. Only complete files are linked into a snapshot
(see `download`), so everything listed here can be loaded.

Cache folder: HF_HUB_CACHE if set, else HF_HOME/hub if HF_HOME is set (shared with other
Hugging Face tools), else ASSISTANT_HOME/hub, so that by default all of the assistant's state
stays in its one folder.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from assistant import paths
from assistant.library.hub_files import RemoteFile, group_gguf_files


def cache_dir() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        path = Path(os.environ["HF_HUB_CACHE"]).expanduser()
    elif os.environ.get("HF_HOME"):
        path = Path(os.environ["HF_HOME"]).expanduser() / "hub"
    else:
        path = paths.home() / "hub"
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass(frozen=True)
class CachedModel:
    """A complete GGUF model in the Hub cache."""

    repo: str
    filename: str  # first shard
    path: Path  # snapshot path of the first shard
    files: tuple[Path, ...]
    size: int
    commit: str

    @property
    def id(self) -> str:
        return f"{self.repo}/{self.filename}"


def _repo_of(folder: Path) -> str | None:
    if not folder.name.startswith("models--"):
        return None
    return folder.name.removeprefix("models--").replace("--", "/")


def cached_models(cache: Path | None = None) -> list[CachedModel]:
    """Complete GGUF models in the Hub cache (partial downloads are never linked there)."""
    cache = cache or cache_dir()
    found: dict[tuple[str, str], CachedModel] = {}
    for repo_dir in sorted(cache.glob("models--*")):
        repo = _repo_of(repo_dir)
        if not repo:
            continue
        main = _read_ref(repo_dir / "refs" / "main")
        snapshots = sorted(
            (repo_dir / "snapshots").glob("*"), key=lambda p: (p.name == main, p.stat().st_mtime)
        )
        for snap in snapshots:  # later ones (main last) win for the same file name
            for model in _snapshot_models(repo, snap):
                found[(repo, model.filename)] = model
    return sorted(found.values(), key=lambda m: m.id.lower())


def cached_from(repo: str) -> list[CachedModel]:
    """The downloaded models of one repository (its name compared without case)."""
    return [c for c in cached_models() if c.repo.lower() == repo.lower()]


def _read_ref(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _snapshot_models(repo: str, snap: Path) -> list[CachedModel]:
    files = [p for p in snap.rglob("*") if p.name.lower().endswith(".gguf") and p.is_file()]
    names = {p.relative_to(snap).as_posix(): p for p in files}
    models = []
    remote = [RemoteFile(n, p.stat().st_size, None) for n, p in names.items()]
    for m in group_gguf_files(repo, remote):
        parts = tuple(names[f.filename] for f in m.files)
        models.append(
            CachedModel(
                repo, m.filename, parts[0], parts, sum(p.stat().st_size for p in parts), snap.name
            )
        )
    return models


def remove_cached(model: CachedModel) -> int:
    """Delete a downloaded model's links in every snapshot and the blobs no longer used."""
    snap = model.path.parents[len(Path(model.filename).parts) - 1]
    storage = snap.parent.parent
    names = {p.relative_to(snap).as_posix() for p in model.files}
    freed = 0
    blobs: set[Path] = set()
    for snap in (storage / "snapshots").glob("*"):
        for name in names:
            link = snap / name
            if link.is_symlink() or link.exists():
                if link.is_symlink():
                    blobs.add(Path(os.path.realpath(link)))
                else:
                    freed += link.stat().st_size
                link.unlink()
    still_used = {
        Path(os.path.realpath(p)) for p in (storage / "snapshots").rglob("*") if p.is_symlink()
    }
    own_blobs = Path(os.path.realpath(storage / "blobs"))
    for blob in blobs - still_used:
        if blob.parent == own_blobs and blob.exists():  # never a file a link leads out to
            freed += blob.stat().st_size
            blob.unlink()
    _prune_empty(storage / "snapshots")
    if not any((storage / "snapshots").rglob("*")) and not any((storage / "blobs").glob("*")):
        shutil.rmtree(storage, ignore_errors=True)
    return freed


def _prune_empty(root: Path) -> None:
    for folder in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        with contextlib.suppress(OSError):
            folder.rmdir()
