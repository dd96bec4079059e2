"""GGUF files in a Hub repository: quantization labels, grouping shards into models, and the
rules every name from the network must pass before it becomes part of a path.

Plain data and naming rules only (no network, no cache): `hub` lists a repository's files
with these, `hub_cache` groups the files of a downloaded snapshot the same way, `download`
checks the ETag, commit and sizes a server sends with them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

from assistant.library.gguf_header import SHARD_RE
from assistant.library.hub_errors import UnsafeResponseError

MAX_FILE_SIZE = 1 << 50  # 1 PiB: a declared size above this is a lie, not a model
_HEX = re.compile(r"[0-9a-f]+")
# device names Windows keeps in every folder, whatever the extension ("NUL.gguf" is NUL)
_DEVICE = re.compile(r"(con|prn|aux|nul|conin\$|conout\$|(com|lpt)[0-9¹²³])(\..*)?", re.I)

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


# -- names from the network -----------------------------------------------------------------------
def _refuse(repo: str, field: str, value: object, reason: str) -> UnsafeResponseError:
    """`field` says what and where from: 'the commit hash (X-Repo-Commit) the Hub sent'."""
    shown = repr(value) if len(repr(value)) <= 120 else repr(value)[:117] + "..."
    return UnsafeResponseError(
        f"{repo}: {field}, {shown}, {reason}; refused before anything was written."
    )


def hex_digest(repo: str, field: str, value: object, lengths: tuple[int, ...]) -> str:
    """`value` if it is a lowercase hex digest of one of `lengths` (40: git SHA-1, 64: SHA-256)."""
    if not isinstance(value, str) or len(value) not in lengths or not _HEX.fullmatch(value):
        wanted = "- or ".join(str(n) for n in lengths)
        raise _refuse(repo, field, value, f"is not a {wanted}-digit lowercase hex digest")
    return value


def safe_name(repo: str, field: str, value: object) -> str:
    """`value` if it is a relative '/'-separated name that cannot leave the folder it is joined
    to on any system: no absolute or drive path, no '..', '.', empty part, backslash or NUL, and
    nothing Windows reads as another thing (a device name, a trailing dot or space)."""
    if not isinstance(value, str) or not value:
        raise _refuse(repo, field, value, "is not a file name")
    reason = None
    parts = value.split("/")
    if any(c in value for c in "\\\0") or any(ord(c) < 32 for c in value):
        reason = "holds a backslash or a control character"
    elif PurePosixPath(value).is_absolute() or PureWindowsPath(value).drive:
        reason = "is an absolute path"
    elif ".." in parts or "." in parts:
        reason = "climbs out of its folder with '..'"
    elif "" in parts:
        reason = "has an empty part"
    elif any(":" in part for part in parts):
        reason = "holds a ':' (a drive or stream on Windows)"
    elif any(_DEVICE.fullmatch(part.rstrip(" .")) for part in parts):
        reason = "is a device name on Windows (CON, NUL, COM1 …), not a file"
    elif any(part.endswith((" ", ".")) for part in parts):
        reason = "ends in a dot or a space, which Windows drops (another file's name)"
    if reason:
        raise _refuse(repo, field, value, reason)
    return value


def inside(root: Path, path: Path, repo: str, field: str, value: str) -> Path:
    """`path` if, with every link resolved, it stays inside `root` (the cache folder)."""
    if not path.resolve().is_relative_to(root.resolve()):
        raise _refuse(repo, field, value, f"leads out of the cache folder {root}")
    return path


def declared_size(repo: str, filename: str, value: object) -> int | None:
    """A file size from the listing or a header: None, or a plausible whole number of bytes."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_FILE_SIZE:
        field = f"the size the Hub declared for {filename}"
        raise _refuse(repo, field, value, "is not a plausible number of bytes")
    return value
