"""The Hugging Face Hub: search GGUF repositories, list their files, download with resume.

Everything goes through `huggingface_hub` (its API client, its HTTP session and error types,
and its cache layout), with the endpoint read from HF_ENDPOINT at call time.

Downloads: huggingface_hub 2.x deletes its partial file when a download fails, so a download
cancelled or cut off could not resume in a later run. Here the file body is fetched with the
library's own session into `<cache>/models--OWNER--NAME/blobs/<etag>.incomplete`, which survives
an interruption and is continued with an HTTP Range request; once complete its SHA-256 is
checked against the one the Hub publishes, the blob is renamed into place, and
`hf_hub_download` itself records it in the cache (snapshot link and ref). A half-downloaded
file is never linked into a snapshot, so it is never offered as a model.

Cache folder: HF_HUB_CACHE if set, else HF_HOME/hub if HF_HOME is set (shared with other
Hugging Face tools), else ASSISTANT_HOME/hub, so that by default all of the assistant's state
stays in its one folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from . import paths
from .errors import AssistantError
from .gguf_info import SHARD_RE, GGUFInfo, HeaderTruncated, info_from_headers, parse_header
from .hub_errors import (
    ChecksumError,
    DiskSpaceError,
    DownloadCancelledError,
    GatedRepoError,
    HubConnectionError,
    HubError,
    OfflineModeError,
    RemoteFileNotFoundError,
    RepoNotFoundError,
)

DEFAULT_ENDPOINT = "https://huggingface.co"
CHUNK = 1 << 20
MAX_RETRIES = 5  # consecutive failed attempts (an attempt that received data resets it)
RETRY_DELAY = 1.0  # seconds, doubled per failed attempt up to 16
HEADER_FETCH = 4 << 20  # first Range read for a remote GGUF header; grown as needed
HEADER_LIMIT = 256 << 20
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_QUANT = re.compile(
    r"(?:^|[-_.])((?:I?Q\d(?:_[A-Z0-9]+)*)|BF16|F16|F32|FP16|FP32|MXFP4(?:_MOE)?|TQ\d_\d)"
    r"(?=[-_.]|$)",
    re.IGNORECASE,
)


# -- settings -----------------------------------------------------------------------------------
def endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def cache_dir() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        path = Path(os.environ["HF_HUB_CACHE"]).expanduser()
    elif os.environ.get("HF_HOME"):
        path = Path(os.environ["HF_HOME"]).expanduser() / "hub"
    else:
        path = paths.home() / "hub"
    path.mkdir(parents=True, exist_ok=True)
    return path


def is_offline() -> bool:
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().lower() in {"1", "true", "yes", "on"}


# -- plain data ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class RepoSummary:
    id: str
    downloads: int
    likes: int
    gated: bool
    last_modified: str

    def to_dict(self) -> dict:
        return dict(self.__dict__)


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


@dataclass(frozen=True)
class Progress:
    filename: str
    done: int  # bytes, all files of the model
    total: int | None
    speed: float  # bytes per second received in this run
    eta: float | None  # seconds
    resumed_from: int  # bytes already on disk when the download started


@dataclass(frozen=True)
class DownloadResult:
    repo: str
    model: str
    path: Path  # the file to load (the first shard of a split model)
    files: tuple[Path, ...]
    size: int
    verified: bool  # every file matched the Hub's SHA-256
    already_present: bool
    resumed_from: int


# -- errors ------------------------------------------------------------------------------------
@contextlib.contextmanager
def hub_errors(repo: str | None = None, filename: str | None = None) -> Iterator[None]:
    """Turn huggingface_hub and transport exceptions into user-facing assistant errors."""
    import httpx2
    from huggingface_hub import errors as hf

    what = f"{repo}/{filename}" if filename else repo or "the Hub"
    try:
        yield
    except AssistantError:
        raise
    except hf.GatedRepoError:
        raise GatedRepoError(
            f"{repo} is gated: its authors require you to accept their licence first. Open "
            f"{endpoint()}/{repo} in a browser, accept it while logged in, then give the "
            f"assistant a token (`hf auth login`, or set HF_TOKEN) and pull again."
        ) from None
    except hf.RepositoryNotFoundError:
        raise RepoNotFoundError(
            f"There is no repository {repo} on the Hub (or it is private and needs a token). "
            f"Check the spelling (OWNER/NAME), or find one with `assistant models search`."
        ) from None
    except hf.RevisionNotFoundError:
        raise RemoteFileNotFoundError(
            f"{repo} has no such revision (branch, tag or commit)."
        ) from None
    except hf.RemoteEntryNotFoundError:
        raise RemoteFileNotFoundError(
            f"{repo} has no file {filename}; list its files with `assistant models files {repo}`."
        ) from None
    except (hf.OfflineModeIsEnabled, hf.LocalEntryNotFoundError):
        raise OfflineModeError(
            f"{what} is not downloaded, and getting it needs a connection: "
            f"offline mode is on (HF_HUB_OFFLINE=1). Unset it to download."
        ) from None
    except (httpx2.TransportError, hf.FileMetadataError, ConnectionError) as exc:
        raise HubConnectionError(
            f"Cannot reach the Hub at {endpoint()} ({_reason(exc)}). Check the connection, or "
            f"set HF_HUB_OFFLINE=1 to work with the models already downloaded."
        ) from None
    except hf.HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "?"
        if status == 401:
            raise GatedRepoError(
                f"The Hub refused access to {what} (401): it needs a valid "
                f"token (`hf auth login`, or set HF_TOKEN)."
            ) from None
        raise HubError(f"The Hub answered {status} for {what}; try again later.") from None


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:160]


def _api():
    _configure()
    from huggingface_hub import HfApi

    return HfApi(endpoint=endpoint())


def _configure() -> None:
    """No telemetry: unless HF_HUB_DISABLE_TELEMETRY=0, huggingface_hub would fetch an "agent
    harness" list from its import-time endpoint to enrich its user agent."""
    from huggingface_hub import constants

    value = os.environ.get("HF_HUB_DISABLE_TELEMETRY", "1").strip().lower()
    constants.HF_HUB_DISABLE_TELEMETRY = value in {"1", "true", "yes", "on"}


def _need_connection(action: str) -> None:
    if is_offline():
        count = len(cached_models())
        raise OfflineModeError(
            f"{action} needs a connection, and offline mode is on (HF_HUB_OFFLINE=1). "
            f"{count} downloaded model{'s' if count != 1 else ''} can be used offline "
            f"(`assistant models list`); unset HF_HUB_OFFLINE to reach the Hub."
        )


# -- search and listing -------------------------------------------------------------------------
def search(text: str, limit: int = 20) -> list[RepoSummary]:
    """GGUF repositories whose name contains `text`, most downloaded first."""
    _need_connection("Searching the Hub")
    _check_reachable()
    with hub_errors():
        found = _api().list_models(search=text, filter="gguf", sort="downloads", limit=limit)
        return [
            RepoSummary(
                id=m.id,
                downloads=int(m.downloads or 0),
                likes=int(m.likes or 0),
                gated=bool(m.gated),
                last_modified=str(m.last_modified or ""),
            )
            for m in found
        ]


def _check_reachable(timeout: float = 5.0) -> None:
    """Fail fast when the Hub is unreachable: its search call retries for about 20 s."""
    if any(
        os.environ.get(v)
        for v in (
            "HTTPS_PROXY",
            "https_proxy",
            "HTTP_PROXY",
            "http_proxy",
            "ALL_PROXY",
            "all_proxy",
        )
    ):
        return  # only the proxy knows
    url = urlparse(endpoint())
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname or "", port), timeout=timeout).close()
    except OSError as exc:
        raise HubConnectionError(
            f"Cannot reach the Hub at {endpoint()} ({exc.strerror or exc}). Check the "
            f"connection, or set HF_HUB_OFFLINE=1 to work with the models already downloaded."
        ) from None


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


def list_gguf_files(repo: str, revision: str = "main") -> list[RemoteModel]:
    """The GGUF models of a repository with sizes, quantization labels and checksums."""
    if is_offline():
        cached = [c for c in cached_models() if c.repo.lower() == repo.lower()]
        names = ", ".join(c.filename for c in cached) or "none"
        raise OfflineModeError(
            f"Listing the files of {repo} needs a connection, and offline "
            f"mode is on (HF_HUB_OFFLINE=1). Downloaded from it: {names}."
        )
    with hub_errors(repo):
        info = _api().model_info(repo, revision=revision, files_metadata=True)
    files = [
        RemoteFile(s.rfilename, s.size, s.lfs.sha256 if s.lfs else None)
        for s in info.siblings or []
    ]
    return group_gguf_files(repo, files)


def choose(
    models: list[RemoteModel],
    repo: str,
    quant: str | None = None,
    filename: str | None = None,
    default_quant: str = "Q4_K_M",
) -> RemoteModel:
    """The model a pull asked for, or an error that lists the choices."""
    usable = [m for m in models if not m.is_projector] or models
    if not usable:
        raise RemoteFileNotFoundError(
            f"{repo} has no GGUF files; search for a GGUF version with `assistant models search`."
        )
    listing = ", ".join(f"{m.quant or '?'} ({m.filename})" for m in usable)
    if filename:
        hits = [
            m
            for m in models
            if filename in {m.name, m.filename, Path(m.filename).name}
            or filename in {f.filename for f in m.files}
        ]
        if not hits:
            raise RemoteFileNotFoundError(f"{repo} has no GGUF file {filename}; it has: {listing}.")
        return hits[0]
    wanted = (quant or default_quant).upper()
    hits = [m for m in usable if m.quant == wanted]
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        raise RemoteFileNotFoundError(
            f"{repo} has several {wanted} files; pick one with "
            f"--file: {', '.join(m.filename for m in hits)}."
        )
    if quant is None and len(usable) == 1:
        return usable[0]
    raise RemoteFileNotFoundError(
        f"{repo} has no {wanted} file; choose one with --quant or --file: {listing}."
    )


def remote_gguf_info(model: RemoteModel, revision: str = "main") -> GGUFInfo:
    """Read the GGUF header(s) of a file on the Hub with Range requests (a few MB), for fit."""
    _need_connection("Reading a model's header from the Hub")
    _configure()
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    headers = []
    total = 0
    for f in model.files:
        with hub_errors(model.repo, f.filename):
            url = hf_hub_url(model.repo, f.filename, revision=revision, endpoint=endpoint())
            meta = get_hf_file_metadata(url, endpoint=endpoint())
            headers.append(_fetch_header(meta.location, f.filename))
        total += meta.size or f.size or 0
    return info_from_headers(
        f"{model.repo}/{model.filename}", headers, total, [f.filename for f in model.files]
    )


def _fetch_header(url: str, filename: str):
    from huggingface_hub import get_session, hf_raise_for_status

    want = HEADER_FETCH
    while True:
        buf = bytearray()
        with get_session().stream(
            "GET", url, headers={"Range": f"bytes=0-{want - 1}"}, follow_redirects=True
        ) as resp:
            hf_raise_for_status(resp)
            for chunk in resp.iter_bytes(CHUNK):
                buf += chunk
                if len(buf) >= want:  # a server that ignores Range: stop reading anyway
                    break
        try:
            return parse_header(bytes(buf[:want]))
        except HeaderTruncated as exc:
            if len(buf) < want or want >= HEADER_LIMIT:
                raise HubError(f"{filename} on the Hub ends inside its GGUF header.") from None
            want = min(HEADER_LIMIT, max(exc.needed + (1 << 20), want * 4))
        except ValueError as exc:
            raise HubError(f"{filename} on the Hub is not a usable GGUF file: {exc}.") from None


# -- download ----------------------------------------------------------------------------------
class _Tracker:
    """Bytes, speed (over the last seconds) and time left, reported to a callback."""

    def __init__(self, total: int | None, callback: Callable[[Progress], None] | None):
        self.total, self.callback = total, callback
        self.done = self.resumed_from = 0
        self.filename = ""
        self._samples: list[tuple[float, int]] = []

    def start_file(self, filename: str, already: int) -> None:
        self.filename = filename
        self.done += already
        self.resumed_from += already
        self._emit()

    def advance(self, n: int) -> None:
        self.done += n
        self._emit()

    def rewind(self, n: int) -> None:
        self.done -= n
        self._emit()

    def _emit(self) -> None:
        now = time.monotonic()
        self._samples.append((now, self.done))
        while len(self._samples) > 2 and now - self._samples[0][0] > 5:
            self._samples.pop(0)
        (t0, d0) = self._samples[0]
        speed = (self.done - d0) / (now - t0) if now > t0 else 0.0
        eta = (self.total - self.done) / speed if self.total and speed > 0 else None
        if self.callback:
            self.callback(
                Progress(self.filename, self.done, self.total, speed, eta, self.resumed_from)
            )


class _Partial:
    """The `.incomplete` file of one blob and the SHA-256 of what it holds so far."""

    def __init__(self, path: Path):
        self.path = path
        self.hasher = hashlib.sha256()
        self.size = 0
        if path.exists():
            with path.open("rb") as handle:
                for block in iter(lambda: handle.read(CHUNK), b""):
                    self.hasher.update(block)
                    self.size += len(block)

    def reset(self) -> None:
        self.path.unlink(missing_ok=True)
        self.hasher = hashlib.sha256()
        self.size = 0


def download(
    repo: str,
    *,
    quant: str | None = None,
    filename: str | None = None,
    revision: str = "main",
    progress: Callable[[Progress], None] | None = None,
    cancel: threading.Event | None = None,
    default_quant: str = "Q4_K_M",
) -> DownloadResult:
    """Download one GGUF model (all its shards) into the Hub cache, resuming what was there."""
    if is_offline():
        return _offline_pull(repo, quant, filename, default_quant)
    model = choose(list_gguf_files(repo, revision), repo, quant, filename, default_quant)
    tracker = _Tracker(model.size, progress)
    paths_: list[Path] = []
    verified, present = True, True
    for f in model.files:
        path, checked, was_there = _download_file(repo, f, revision, tracker, cancel)
        paths_.append(path)
        verified &= checked
        present &= was_there
    return DownloadResult(
        repo,
        model.name,
        paths_[0],
        tuple(paths_),
        sum(p.stat().st_size for p in paths_),
        verified,
        present,
        tracker.resumed_from,
    )


def _download_file(
    repo: str, f: RemoteFile, revision: str, tracker: _Tracker, cancel: threading.Event | None
) -> tuple[Path, bool, bool]:
    from filelock import FileLock, Timeout
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url
    from huggingface_hub.file_download import repo_folder_name

    _configure()
    cache = cache_dir()
    with hub_errors(repo, f.filename):
        url = hf_hub_url(repo, f.filename, revision=revision, endpoint=endpoint())
        meta = get_hf_file_metadata(url, endpoint=endpoint())
    if not meta.etag or not meta.commit_hash:
        raise HubError(
            f"The Hub at {endpoint()} did not describe {f.filename} (no ETag or "
            f"commit); is HF_ENDPOINT a Hugging Face Hub?"
        )
    size = meta.size if meta.size is not None else f.size
    storage = cache / repo_folder_name(repo_id=repo, repo_type="model")
    pointer = storage / "snapshots" / meta.commit_hash / f.filename
    blob = storage / "blobs" / meta.etag
    if pointer.exists():
        tracker.start_file(f.filename, pointer.stat().st_size)
        return pointer, True, True
    expected = f.sha256 or (meta.etag if _SHA256.match(meta.etag) else None)
    verified = expected is not None
    if not blob.exists():
        blob.parent.mkdir(parents=True, exist_ok=True)
        lock_path = cache / ".locks" / storage.name / f"{meta.etag}.assistant.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(lock_path))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise HubError(
                f"{f.filename} is already being downloaded by another assistant "
                f"window or process; wait for it to finish."
            ) from None
        try:
            partial = _Partial(blob.with_name(blob.name + ".incomplete"))
            if size is not None and partial.size > size:
                partial.reset()
            tracker.start_file(f.filename, partial.size)
            _check_disk_space(blob.parent, (size or 0) - partial.size, f.filename)
            with hub_errors(repo, f.filename):
                _fetch(meta.location, url, partial, size, tracker, cancel, f.filename)
            if expected and partial.hasher.hexdigest() != expected:
                got = partial.hasher.hexdigest()
                partial.reset()
                raise ChecksumError(
                    f"{f.filename} arrived corrupted: its SHA-256 is {got[:16]}…, the Hub "
                    f"published {expected[:16]}…. The damaged file was deleted; pull again."
                )
            os.replace(partial.path, blob)
        finally:
            lock.release()
    else:
        tracker.start_file(f.filename, blob.stat().st_size)
    with hub_errors(repo, f.filename):  # the library records the blob in its snapshot and ref
        path = hf_hub_download(
            repo, f.filename, revision=revision, cache_dir=cache, endpoint=endpoint()
        )
    return Path(path), verified, False


def _check_disk_space(folder: Path, needed: int, filename: str) -> None:
    free = shutil.disk_usage(folder).free
    if needed > 0 and free < needed + (64 << 20):
        raise DiskSpaceError(
            f"Not enough disk space for {filename}: it needs {needed / 1e9:.2f}"
            f" GB more and {folder} has {free / 1e9:.2f} GB free."
        )


def _fetch(
    location: str,
    url: str,
    partial: _Partial,
    size: int | None,
    tracker: _Tracker,
    cancel: threading.Event | None,
    filename: str,
) -> None:
    """GET the body into the partial file, resuming with Range after a dropped connection."""
    import httpx2
    from huggingface_hub import constants, get_session, hf_raise_for_status
    from huggingface_hub.errors import HfHubHTTPError
    from huggingface_hub.utils import build_hf_headers

    headers = build_hf_headers()
    if urlparse(location).netloc != urlparse(url).netloc:
        headers.pop("authorization", None)  # a signed CDN address: the token stays with the Hub
    failures = 0
    while size is None or partial.size < size:
        request = dict(headers)
        if partial.size:
            request["Range"] = f"bytes={partial.size}-"
        before = partial.size
        try:
            _stream_into(
                get_session(),
                location,
                request,
                partial,
                tracker,
                cancel,
                constants.HF_HUB_DOWNLOAD_TIMEOUT,
                hf_raise_for_status,
            )
        except HfHubHTTPError:
            raise  # an HTTP error status: hub_errors explains it; the partial file is kept
        except OSError as exc:
            raise HubError(f"Cannot write {partial.path}: {exc.strerror or exc}.") from None
        except httpx2.TransportError as exc:  # dropped or timed out: resume with Range
            failures = 0 if partial.size > before else failures + 1
            if failures > MAX_RETRIES:
                raise HubConnectionError(
                    f"The download of {filename} keeps failing ({_reason(exc)}). "
                    f"{partial.size / 1e6:.0f} MB are kept; pull again to resume."
                ) from None
            time.sleep(min(RETRY_DELAY * 2 ** max(failures - 1, 0), 16))
            continue
        if size is None:
            return
        if partial.size == before:
            failures += 1
            if failures > MAX_RETRIES:
                raise HubConnectionError(
                    f"The Hub stopped sending {filename} at "
                    f"{partial.size:,} of {size:,} bytes; pull again."
                )


def _stream_into(
    session,
    location: str,
    headers: dict,
    partial: _Partial,
    tracker: _Tracker,
    cancel: threading.Event | None,
    timeout: float,
    raise_for_status,
) -> None:
    with session.stream(
        "GET", location, headers=headers, timeout=timeout, follow_redirects=True
    ) as resp:
        raise_for_status(resp)
        if partial.size and resp.status_code != 206:  # the server ignored Range: start over
            tracker.rewind(partial.size)
            partial.reset()
        with partial.path.open("ab") as out:
            for chunk in resp.iter_bytes(CHUNK):
                if cancel is not None and cancel.is_set():
                    raise DownloadCancelledError(
                        f"Download cancelled; {partial.size / 1e6:.0f} MB are kept and the "
                        f"next pull resumes from there."
                    )
                out.write(chunk)
                partial.hasher.update(chunk)
                partial.size += len(chunk)
                tracker.advance(len(chunk))


# -- the local cache ---------------------------------------------------------------------------
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
    for blob in blobs - still_used:
        if blob.exists():
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


def _offline_pull(
    repo: str, quant: str | None, filename: str | None, default_quant: str
) -> DownloadResult:
    cached = [c for c in cached_models() if c.repo.lower() == repo.lower()]
    models = [
        RemoteModel(
            c.repo, c.filename, quant_label(c.filename), (RemoteFile(c.filename, c.size, None),)
        )
        for c in cached
    ]
    try:
        chosen = choose(models, repo, quant, filename, default_quant)
    except RemoteFileNotFoundError:
        names = ", ".join(c.filename for c in cached) or "nothing"
        raise OfflineModeError(
            f"Downloading from {repo} needs a connection, and offline mode is on "
            f"(HF_HUB_OFFLINE=1). Already downloaded from it: {names}. Unset HF_HUB_OFFLINE "
            f"to download."
        ) from None
    c = next(c for c in cached if c.filename == chosen.filename)
    return DownloadResult(repo, c.filename, c.path, c.files, c.size, True, True, 0)
