"""The local model library: the embedded default, Hub downloads, and files imported or converted.

Ids are stable and readable: `embedded`; `OWNER/REPO/FILE.gguf` for a download (the Hub
cache, see hub_cache.py); `local/FILE.gguf` for a file in ASSISTANT_HOME/models, copied there
atomically (`import`), linked (`import --link`) or written by the converter (register it with
`register_converted`). How each local file got there is kept in `models/.library.json`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from assistant import paths
from assistant.errors import InvalidInputError, ModelLoadError
from assistant.library.catalog import display_name
from assistant.library.embedded import find_embedded_model
from assistant.library.gguf_header import (
    SHARD_RE,
    GGUFInfo,
    check_vocabulary,
    read_gguf_info,
    shard_paths,
)
from assistant.library.hub_cache import cached_models, remove_cached
from assistant.library.hub_errors import DiskSpaceError
from assistant.library.sizes import format_bytes

EMBEDDED_ID = "embedded"
LOCAL_PREFIX = "local/"
MANIFEST = ".library.json"


@dataclass(frozen=True)
class LibraryModel:
    id: str
    kind: str  # embedded, downloaded, imported, linked, converted or local (put there by hand)
    path: Path
    size: int
    info: GGUFInfo | None
    problem: str = ""  # why it cannot be used
    repo: str = ""
    source: str = ""  # where an imported, linked or converted model came from

    @property
    def usable(self) -> bool:
        return not self.problem and self.info is not None and self.info.is_chat_model

    @property
    def name(self) -> str:
        return display_name(self.info) if self.info else self.path.name

    def to_dict(self) -> dict[str, Any]:
        data = {
            "id": self.id,
            "kind": self.kind,
            "path": str(self.path),
            "size": self.size,
            "usable": self.usable,
            "problem": self.problem,
            "repo": self.repo,
            "source": self.source,
        }
        if self.info:
            data.update({k: v for k, v in self.info.summary().items() if k != "path"})
        return data


# -- listing ------------------------------------------------------------------------------------
def list_models(include_unusable: bool = False) -> list[LibraryModel]:
    """Every model that can be loaded (and, on request, the files that cannot and why)."""
    models = [m for m in (_embedded(), *_downloaded(), *_local()) if m is not None]
    return models if include_unusable else [m for m in models if m.usable]


def _with_info(model_id: str, kind: str, path: Path, **extra: Any) -> LibraryModel:
    try:
        info = read_gguf_info(path)
        size, problem = info.file_size, ""
        if not info.is_chat_model:
            problem = f"{path.name} is a companion file ({info.architecture}), not a chat model."
    except ModelLoadError as exc:  # what the reader raises for a file it cannot use
        info, problem = None, str(exc)
        size = path.stat().st_size if path.exists() else 0
    return LibraryModel(model_id, kind, path, size, info, problem, **extra)


def _embedded() -> LibraryModel | None:
    path = find_embedded_model()
    return _with_info(EMBEDDED_ID, "embedded", path) if path else None


def _downloaded() -> list[LibraryModel]:
    return [_with_info(c.id, "downloaded", c.path, repo=c.repo) for c in cached_models()]


def _local() -> list[LibraryModel]:
    folder = paths.models_dir()
    manifest = _read_manifest()
    models = []
    for path in sorted(folder.glob("*.gguf"), key=lambda p: p.name.lower()):
        if path.name.startswith("."):
            continue
        match = SHARD_RE.match(path.name)
        if match and int(match["no"]) != 1:
            continue  # listed through its first shard
        entry = manifest.get(path.name, {})
        kind = entry.get("kind") or ("linked" if path.is_symlink() else "local")
        model_id = LOCAL_PREFIX + path.name
        if path.is_symlink() and not path.exists():
            target = os.readlink(path)
            models.append(
                LibraryModel(
                    model_id,
                    kind,
                    path,
                    0,
                    None,
                    f"The linked file {target} is gone.",
                    source=entry.get("source", target),
                )
            )
            continue
        models.append(_with_info(model_id, kind, path, source=entry.get("source", "")))
    return models


def resolve(text: str, include_unusable: bool = False) -> LibraryModel:
    """A model by id, by file name when that is unique, or by path (outside the library too)."""
    path = Path(text).expanduser()
    if path.is_file() or (path.suffix.lower() == ".gguf" and path.exists()):
        for m in list_models(include_unusable=True):
            if _same_file(m.path, path):
                return m
        return _with_info(str(path.resolve()), "file", path.resolve())
    models = list_models(include_unusable=True)
    for m in models:
        if m.id.lower() == text.lower():
            return m
    hits = [
        m
        for m in models
        if m.path.name.lower() == text.lower() or m.id.lower().endswith("/" + text.lower())
    ]
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        raise InvalidInputError(
            f"{text!r} matches several models: {', '.join(m.id for m in hits)}; use the full id."
        )
    raise InvalidInputError(
        f"No model {text!r} in the library and no such .gguf file; "
        f"`assistant models list` shows the ids."
    )


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


# -- import -------------------------------------------------------------------------------------
def import_model(
    source: str | Path, link: bool = False, progress: Callable[[int, int], None] | None = None
) -> LibraryModel:
    """Copy (atomically: temp file, then rename) or link a GGUF model into the library."""
    src = Path(source).expanduser().resolve()
    return _add(src, "linked" if link else "imported", str(src), progress)


def register_converted(path: str | Path, source: str) -> LibraryModel:
    """Record a model the converter wrote (or copy it in when it was written elsewhere)."""
    path = Path(path).expanduser().resolve()
    if path.parent == paths.models_dir().resolve():
        read_gguf_info(path)
        _write_manifest_entry(path.name, "converted", source)
        return resolve(LOCAL_PREFIX + path.name, include_unusable=True)
    return _add(path, "converted", source, None)


def _add(
    src: Path, kind: str, source: str, progress: Callable[[int, int], None] | None
) -> LibraryModel:
    info = read_gguf_info(src)  # refuses anything that is not a complete GGUF, naming it
    check_vocabulary(src)  # and a model llama.cpp would abort on (a token listed twice)
    if not info.is_chat_model:
        raise InvalidInputError(
            f"{src.name} is a {info.architecture} companion file (a vision "
            f"projector?), not a chat model."
        )
    folder = paths.models_dir()
    files = shard_paths(src)
    for f in files:
        _check_free_name(f, folder / f.name)
    if kind == "linked":
        for f in files:
            try:
                (folder / f.name).symlink_to(f)
            except OSError as exc:
                raise InvalidInputError(
                    f"Cannot link {f} here ({exc.strerror}); import it without --link to copy it."
                ) from None
    else:
        _copy_all(files, folder, progress)
    _write_manifest_entry(files[0].name, kind, source)
    return resolve(LOCAL_PREFIX + files[0].name, include_unusable=True)


def _check_free_name(src: Path, dest: Path) -> None:
    if not (dest.exists() or dest.is_symlink()):
        return
    if _same_file(src, dest):
        raise InvalidInputError(
            f"{src.name} is already in the library as {LOCAL_PREFIX}{dest.name}."
        )
    raise InvalidInputError(
        f"Another model named {dest.name} is already in the library; "
        f"rename the file or remove {LOCAL_PREFIX}{dest.name} first."
    )


def _copy_all(files: list[Path], folder: Path, progress: Callable[[int, int], None] | None) -> None:
    total = sum(f.stat().st_size for f in files)
    free = shutil.disk_usage(folder).free
    if free < total + (64 << 20):
        raise DiskSpaceError(
            f"Not enough disk space to copy {files[0].name}: it needs "
            f"{format_bytes(total)} and {folder} has {format_bytes(free)} free."
        )
    done = 0
    for f in files:
        tmp = folder / f".{f.name}.{uuid.uuid4().hex[:8]}.part"
        try:
            with f.open("rb") as src, tmp.open("wb") as out:
                for block in iter(lambda src=src: src.read(8 << 20), b""):
                    out.write(block)
                    done += len(block)
                    if progress:
                        progress(done, total)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, folder / f.name)
        except OSError as exc:
            raise InvalidInputError(f"Cannot copy {f} into {folder}: {exc.strerror}.") from None
        finally:
            tmp.unlink(missing_ok=True)


# -- remove -------------------------------------------------------------------------------------
def remove(model_id: str) -> str:
    """Delete a model from the library; returns what was done, in words."""
    model = resolve(model_id, include_unusable=True)
    if model.kind == "embedded":
        raise InvalidInputError("The embedded model ships with the app and cannot be removed.")
    if model.kind == "file":
        raise InvalidInputError(f"{model.path} is not in the library; nothing was removed.")
    if model.kind == "downloaded":
        cached = next(c for c in cached_models() if c.id == model.id)
        freed = remove_cached(cached)
        text = f"Removed {model.id} ({format_bytes(freed)} freed)."
    else:
        text = _remove_local(model)
    return text + _forget_default(model.path, model.id)


def _remove_local(model: LibraryModel) -> str:
    files = shard_paths(model.path)
    linked = model.path.is_symlink()
    for f in files:
        f.unlink(missing_ok=True)
    _write_manifest_entry(model.path.name, None, None)
    if linked:
        return f"Removed the link {model.id}; the file it pointed to ({model.source}) is kept."
    return f"Removed {model.id} ({format_bytes(model.size)} freed)."


def _forget_default(path: Path, model_id: str) -> str:
    """The default model may be saved as a path or as a library id: forget either."""
    from assistant.settings import Settings

    settings = Settings.load()
    chosen = settings.model
    if chosen and (chosen == model_id or Path(chosen).expanduser() in {path, path.resolve()}):
        settings.model = ""
        settings.save()
        return " It was the default model; the embedded model is the default again."
    return ""


# -- manifest -----------------------------------------------------------------------------------
def _manifest_path() -> Path:
    return paths.models_dir() / MANIFEST


def _read_manifest() -> dict[str, dict[str, str]]:
    try:
        data = json.loads(_manifest_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data.get("files", {}) if isinstance(data, dict) else {}


def _write_manifest_entry(name: str, kind: str | None, source: str | None) -> None:
    files = _read_manifest()
    if kind is None:
        files.pop(name, None)
    else:
        files[name] = {
            "kind": kind,
            "source": source or "",
            "added": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
    path = _manifest_path()
    fd, tmp = tempfile.mkstemp(prefix=".library-", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump({"files": files}, handle, indent=2)
    os.replace(tmp, path)


def model_path(text: str) -> Path:
    """The file to load for an id, name or path; a clear error when it cannot be used."""
    model = resolve(text, include_unusable=True)
    if model.problem:
        raise ModelLoadError(model.problem)
    return model.path


def chosen_model_path(choice: str) -> Path:
    """The file for the model the user chose (`Settings.model`): a path, a library id (see
    `assistant models list`), or "" for the embedded default."""
    from assistant.library.embedded import embedded_model_path

    if not choice:
        return embedded_model_path()
    path = Path(choice).expanduser()
    if path.exists() or path.is_absolute() or choice.startswith((".", "~")):
        return path  # a path: if it is missing, loading says "Model file not found"
    return model_path(choice)
