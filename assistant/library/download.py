"""Resumable, verified downloads of one GGUF model (all its shards) into the Hub cache.

huggingface_hub 2.x deletes its partial file when a download fails, so a download cancelled or
cut off could not resume in a later run. Here the file body is fetched with the library's own
session into `<cache>/models--OWNER--NAME/blobs/<etag>.incomplete`, which survives an
interruption and is continued with an HTTP Range request; once complete its SHA-256 is checked
against the one the Hub publishes, the blob is renamed into place and linked into its snapshot
(with the revision's ref), in huggingface_hub's cache layout. A half-downloaded file is never
linked into a snapshot, so it is never offered as a model. Offline, a pull answers from the cache.

Everything the server says is untrusted: the file names in the listing, the commit hash and the
ETag that become folder and file names, the sizes. Each is checked before it touches a path
(`hub_files`: a hex digest where one is expected, else a relative name that stays inside the
cache), and the body may not outgrow the declared size (`transfer`). Cancel is answered within
a quarter of a second whatever the server does, and a server that trickles is given up.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from assistant.library.hub import (
    choose,
    configure_client,
    endpoint,
    hub_errors,
    is_offline,
    list_gguf_files,
    short_reason,
)
from assistant.library.hub_cache import cache_dir, cached_from
from assistant.library.hub_errors import (
    ChecksumError,
    DiskSpaceError,
    HubConnectionError,
    HubError,
    OfflineModeError,
    RemoteFileNotFoundError,
    UnsafeResponseError,
)
from assistant.library.hub_files import (
    RemoteFile,
    RemoteModel,
    declared_size,
    hex_digest,
    inside,
    quant_label,
    safe_name,
)
from assistant.library.sizes import format_bytes
from assistant.library.transfer import Partial, SpeedFloor, call, pause, receive

MAX_RETRIES = 5  # consecutive failed attempts (an attempt that received data resets it)
RETRY_DELAY = 1.0  # seconds, doubled per failed attempt up to 16


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
    safe_name(repo, "the revision", revision)  # it names a file under refs/
    if is_offline():
        return _offline_pull(repo, quant, filename, default_quant)
    listing = call(lambda: list_gguf_files(repo, revision), cancel, f"the file list of {repo}")
    model = choose(listing, repo, quant, filename, default_quant)
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


@dataclass(frozen=True)
class _Target:
    """Where one file goes in the cache, from what the Hub said about it (all checked)."""

    pointer: Path  # snapshots/<commit>/<file name>
    blob: Path  # blobs/<etag>
    commit: str
    size: int
    expected: str | None  # SHA-256


def _download_file(
    repo: str, f: RemoteFile, revision: str, tracker: _Tracker, cancel: threading.Event | None
) -> tuple[Path, bool, bool]:
    from filelock import FileLock, Timeout
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    configure_client()
    cache = cache_dir()
    with hub_errors(repo, f.filename):
        url = hf_hub_url(repo, f.filename, revision=revision, endpoint=endpoint())
        meta = call(
            lambda: get_hf_file_metadata(url, endpoint=endpoint()),
            cancel,
            f"the description of {f.filename}",
        )
    target = _target(repo, f, meta, cache)
    if target.pointer.exists():
        tracker.start_file(f.filename, target.pointer.stat().st_size)
        return target.pointer, True, True
    new_blob = not target.blob.exists()
    if new_blob:
        target.blob.parent.mkdir(parents=True, exist_ok=True)
        storage = target.blob.parent.parent
        lock_path = cache / ".locks" / storage.name / f"{target.blob.name}.assistant.lock"
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
            _fetch_blob(repo, f.filename, target, meta.location, url, tracker, cancel)
        finally:
            lock.release()
    else:
        tracker.start_file(f.filename, target.blob.stat().st_size)
    _record(cache, repo, target, revision, new_blob)
    return target.pointer, target.expected is not None, False


def _target(repo: str, f: RemoteFile, meta, cache: Path) -> _Target:
    """Check every name and size the Hub sent before any of them becomes part of a path."""
    from huggingface_hub.file_download import repo_folder_name

    if not meta.etag or not meta.commit_hash:
        raise HubError(
            f"The Hub at {endpoint()} did not describe {f.filename} (no ETag or "
            f"commit); is HF_ENDPOINT a Hugging Face Hub?"
        )
    sent = "the Hub sent for " + f.filename
    etag = hex_digest(repo, f"the ETag (X-Linked-Etag) {sent}", meta.etag, (40, 64))
    commit = hex_digest(repo, f"the commit hash (X-Repo-Commit) {sent}", meta.commit_hash, (40,))
    size = declared_size(repo, f.filename, meta.size)
    if size is not None and f.size is not None and size != f.size:
        raise UnsafeResponseError(
            f"{repo}: the Hub lists {f.filename} at {f.size:,} bytes and describes it at "
            f"{size:,}; refused before downloading. Pull again in a moment."
        )
    size = f.size if size is None else size
    if size is None:
        raise UnsafeResponseError(
            f"{repo}: the Hub declared no size for {f.filename}; a download without a size "
            f"limit is refused."
        )
    if f.sha256 and len(etag) == 64 and etag != f.sha256:
        raise UnsafeResponseError(
            f"{repo}: the Hub lists {f.filename} with SHA-256 {f.sha256[:16]}… but sends "
            f"{etag[:16]}… as its ETag; refused before downloading."
        )
    storage = cache / repo_folder_name(repo_id=repo, repo_type="model")
    pointer = storage / "snapshots" / commit / f.filename
    blob = storage / "blobs" / etag
    inside(cache, pointer, repo, f"the snapshot path {sent}", f"{commit}/{f.filename}")
    inside(cache, blob, repo, f"the blob path {sent}", etag)
    return _Target(pointer, blob, commit, size, f.sha256 or (etag if len(etag) == 64 else None))


def _fetch_blob(
    repo: str,
    filename: str,
    target: _Target,
    location: str,
    url: str,
    tracker: _Tracker,
    cancel: threading.Event | None,
) -> None:
    """The body into `<blob>.incomplete` (resumed), checked, then renamed to the blob."""
    partial = Partial(target.blob.with_name(target.blob.name + ".incomplete"))
    if partial.size > target.size:
        partial.reset()
    tracker.start_file(filename, partial.size)
    _check_disk_space(target.blob.parent, target.size - partial.size, filename)
    with hub_errors(repo, filename):
        _fetch(location, url, partial, target.size, tracker, cancel, (repo, filename))
    expected = target.expected
    if expected and partial.hasher.hexdigest() != expected:
        got = partial.hasher.hexdigest()
        partial.reset()
        raise ChecksumError(
            f"{filename} arrived corrupted: its SHA-256 is {got[:16]}…, the Hub "
            f"published {expected[:16]}…. The damaged file was deleted; pull again."
        )
    partial.path.touch()  # an empty file has no body to create it
    os.replace(partial.path, target.blob)


def _record(cache: Path, repo: str, target: _Target, revision: str, new_blob: bool) -> None:
    """Link the blob into its snapshot and point the revision's ref at the commit, as
    huggingface_hub's cache does; done here from the names checked above, not by a second
    `hf_hub_download` that would ask the server again and trust its new answer."""
    target.pointer.parent.mkdir(parents=True, exist_ok=True)
    target.pointer.unlink(missing_ok=True)
    try:
        os.symlink(os.path.relpath(target.blob, target.pointer.parent), target.pointer)
    except OSError:  # no symlinks here (Windows without developer mode): the file itself
        if new_blob:
            os.replace(target.blob, target.pointer)
        else:
            shutil.copyfile(target.blob, target.pointer)
    if revision != target.commit:
        ref = target.blob.parent.parent / "refs" / revision
        inside(cache, ref, repo, "the ref", revision)
        ref.parent.mkdir(parents=True, exist_ok=True)
        tmp = ref.with_name(f"{ref.name}.{os.getpid()}.tmp")
        tmp.write_text(target.commit)
        os.replace(tmp, ref)


def _check_disk_space(folder: Path, needed: int, filename: str) -> None:
    free = shutil.disk_usage(folder).free
    if needed > 0 and free < needed + (64 << 20):
        raise DiskSpaceError(
            f"Not enough disk space for {filename}: it needs {format_bytes(needed)} more "
            f"and {folder} has {format_bytes(free)} free."
        )


def _fetch(
    location: str,
    url: str,
    partial: Partial,
    size: int,
    tracker: _Tracker,
    cancel: threading.Event | None,
    where: tuple[str, str],
) -> None:
    """GET the body into the partial file, resuming with Range after a dropped connection."""
    import httpx2
    from huggingface_hub import constants, get_session, hf_raise_for_status
    from huggingface_hub.errors import HfHubHTTPError
    from huggingface_hub.utils import build_hf_headers

    headers = build_hf_headers()
    headers["Accept-Encoding"] = "identity"  # the bytes received are the file's: sizes hold
    if urlparse(location).netloc != urlparse(url).netloc:
        headers.pop("authorization", None)  # a signed CDN address: the token stays with the Hub
    filename = where[1]
    floor = SpeedFloor()
    failures = 0
    while partial.size < size:
        request = dict(headers)
        if partial.size:
            request["Range"] = f"bytes={partial.size}-"
        before = partial.size

        @contextlib.contextmanager
        def opened(request=request):
            with get_session().stream(
                "GET",
                location,
                headers=request,
                timeout=constants.HF_HUB_DOWNLOAD_TIMEOUT,
                follow_redirects=True,
            ) as resp:
                hf_raise_for_status(resp)
                yield resp

        try:
            receive(opened, partial, size, tracker.advance, cancel, floor, where)
        except HfHubHTTPError:
            raise  # an HTTP error status: hub_errors explains it; the partial file is kept
        except OSError as exc:
            raise HubError(f"Cannot write {partial.path}: {exc.strerror or exc}.") from None
        except httpx2.TransportError as exc:  # dropped or timed out: resume with Range
            failures = 0 if partial.size > before else failures + 1
            if failures > MAX_RETRIES:
                raise HubConnectionError(
                    f"The download of {filename} keeps failing ({short_reason(exc)}). "
                    f"{format_bytes(partial.size)} are kept; pull again to resume."
                ) from None
            pause(min(RETRY_DELAY * 2 ** max(failures - 1, 0), 16), cancel, partial)
            continue
        except httpx2.HTTPError as exc:  # redirect loop, bad URL: retrying will not help
            raise HubError(
                f"The download of {filename} failed ({short_reason(exc)}). "
                f"{format_bytes(partial.size)} are kept; pull again to resume."
            ) from None
        if partial.size == before:
            failures += 1
            if failures > MAX_RETRIES:
                raise HubConnectionError(
                    f"The Hub stopped sending {filename} at "
                    f"{partial.size:,} of {size:,} bytes; pull again."
                )


def _offline_pull(
    repo: str, quant: str | None, filename: str | None, default_quant: str
) -> DownloadResult:
    cached = cached_from(repo)
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
