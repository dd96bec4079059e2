"""Resumable, verified downloads of one GGUF model (all its shards) into the Hub cache.

huggingface_hub 2.x deletes its partial file when a download fails, so a download cancelled or
cut off could not resume in a later run. Here the file body is fetched with the library's own
session into `<cache>/models--OWNER--NAME/blobs/<etag>.incomplete`, which survives an
interruption and is continued with an HTTP Range request; once complete its SHA-256 is checked
against the one the Hub publishes, the blob is renamed into place, and `hf_hub_download`
itself records it in the cache (snapshot link and ref). A half-downloaded file is never linked
into a snapshot, so it is never offered as a model. Offline, a pull answers from the cache.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from assistant.library.hub import (
    CHUNK,
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
    DownloadCancelledError,
    HubConnectionError,
    HubError,
    OfflineModeError,
    RemoteFileNotFoundError,
)
from assistant.library.hub_files import RemoteFile, RemoteModel, quant_label
from assistant.library.sizes import format_bytes

MAX_RETRIES = 5  # consecutive failed attempts (an attempt that received data resets it)
RETRY_DELAY = 1.0  # seconds, doubled per failed attempt up to 16
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


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

    configure_client()
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
            f"Not enough disk space for {filename}: it needs {format_bytes(needed)} more "
            f"and {folder} has {format_bytes(free)} free."
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
                    f"The download of {filename} keeps failing ({short_reason(exc)}). "
                    f"{format_bytes(partial.size)} are kept; pull again to resume."
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
                        f"Download cancelled; {format_bytes(partial.size)} are kept and the "
                        f"next pull resumes from there."
                    )
                out.write(chunk)
                partial.hasher.update(chunk)
                partial.size += len(chunk)
                tracker.advance(len(chunk))


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
