"""The Hugging Face Hub: search GGUF repositories, list their files, read a remote header.

Everything goes through `huggingface_hub` (its API client, its HTTP session and error types),
with the endpoint read from HF_ENDPOINT at call time. `hub_errors` turns the library's and the
transport's exceptions into the assistant's own errors; `download` fetches a chosen model into
the cache (`hub_cache`) with resume and checksum.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlparse

from assistant.errors import AssistantError
from assistant.library.gguf_header import (
    GGUFInfo,
    HeaderTruncated,
    MalformedHeader,
    info_from_headers,
    parse_header,
)
from assistant.library.hub_cache import cached_from, cached_models
from assistant.library.hub_errors import (
    GatedRepoError,
    HubConnectionError,
    HubError,
    OfflineModeError,
    RemoteFileNotFoundError,
    RepoNotFoundError,
)
from assistant.library.hub_files import (
    RemoteFile,
    RemoteModel,
    declared_size,
    group_gguf_files,
    hex_digest,
    safe_name,
)

DEFAULT_ENDPOINT = "https://huggingface.co"
CHUNK = 1 << 20
HEADER_FETCH = 4 << 20  # first Range read for a remote GGUF header; grown as needed
HEADER_LIMIT = 256 << 20
# How to go on without the Hub, in words for the app and the terminal alike (the CLI adds how to
# switch the Hub off: `assistant.cli.main`).
OFFLINE_WORKS = "the models already downloaded work without it."


# -- settings -----------------------------------------------------------------------------------
def endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def is_offline() -> bool:
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class RepoSummary:
    id: str
    downloads: int
    likes: int
    gated: bool
    last_modified: str

    def to_dict(self) -> dict:
        return dict(self.__dict__)


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
            f"Cannot reach the Hub at {endpoint()} ({short_reason(exc)}). Check the connection;"
            f" {OFFLINE_WORKS}"
        ) from None
    except hf.HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "?"
        if status == 401:
            raise GatedRepoError(
                f"The Hub refused access to {what} (401): it needs a valid "
                f"token (`hf auth login`, or set HF_TOKEN)."
            ) from None
        raise HubError(f"The Hub answered {status} for {what}; try again later.") from None


def short_reason(exc: BaseException) -> str:
    """The first line of an exception's text, short enough for a one-line message."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:160]


def _api():
    configure_client()
    from huggingface_hub import HfApi

    return HfApi(endpoint=endpoint())


def configure_client() -> None:
    """No telemetry: unless HF_HUB_DISABLE_TELEMETRY=0, huggingface_hub would fetch an "agent
    harness" list from its import-time endpoint to enrich its user agent."""
    from huggingface_hub import constants

    value = os.environ.get("HF_HUB_DISABLE_TELEMETRY", "1").strip().lower()
    constants.HF_HUB_DISABLE_TELEMETRY = value in {"1", "true", "yes", "on"}


def need_connection(action: str) -> None:
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
    need_connection("Searching the Hub")
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
            f"connection; {OFFLINE_WORKS}"
        ) from None


def list_gguf_files(repo: str, revision: str = "main") -> list[RemoteModel]:
    """The GGUF models of a repository with sizes, quantization labels and checksums."""
    if is_offline():
        names = ", ".join(c.filename for c in cached_from(repo)) or "none"
        raise OfflineModeError(
            f"Listing the files of {repo} needs a connection, and offline "
            f"mode is on (HF_HUB_OFFLINE=1). Downloaded from it: {names}."
        )
    safe_name(repo, "the revision", revision)
    with hub_errors(repo):
        info = _api().model_info(repo, revision=revision, files_metadata=True)
    files = [f for s in info.siblings or [] if (f := _listed_file(repo, s)) is not None]
    return group_gguf_files(repo, files)


def _listed_file(repo: str, sibling) -> RemoteFile | None:
    """A GGUF file of the listing, its name, size and checksum checked: they become paths and
    limits. Other files are never downloaded, so their names never touch the disk."""
    name = sibling.rfilename
    if not isinstance(name, str) or not name.lower().endswith(".gguf"):
        return None
    safe_name(repo, "the file name the Hub listed", name)
    size = declared_size(repo, name, sibling.size)
    sha = sibling.lfs.sha256 if sibling.lfs else None
    if sha is not None:
        field = f"the SHA-256 the Hub listed for {name}"
        sha = hex_digest(repo, field, sha.lower() if isinstance(sha, str) else sha, (64,))
    return RemoteFile(name, size, sha)


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
            if filename in {m.name, m.filename, m.filename.rsplit("/", 1)[-1]}
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


def remote_gguf_info(
    model: RemoteModel, revision: str = "main", cancel: threading.Event | None = None
) -> GGUFInfo:
    """Read the GGUF header(s) of a file on the Hub with Range requests (a few MB), for fit;
    `cancel` stops it between two pieces (HeaderReadCancelled)."""
    need_connection("Reading a model's header from the Hub")
    configure_client()
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    headers = []
    total = 0
    for f in model.files:
        _stop_if(cancel, f.filename)
        with hub_errors(model.repo, f.filename):
            url = hf_hub_url(model.repo, f.filename, revision=revision, endpoint=endpoint())
            meta = get_hf_file_metadata(url, endpoint=endpoint())
            headers.append(_fetch_header(meta.location, f.filename, cancel))
        total += meta.size or f.size or 0
    try:
        return info_from_headers(
            f"{model.repo}/{model.filename}", headers, total, [f.filename for f in model.files]
        )
    except MalformedHeader as exc:
        raise HubError(f"{model.filename} on the Hub is not a usable GGUF file: {exc}.") from None


class HeaderReadCancelled(HubError):
    """Reading a header from the Hub was stopped (the file list is shown without its fit)."""


def _stop_if(cancel: threading.Event | None, filename: str) -> None:
    if cancel is not None and cancel.is_set():
        raise HeaderReadCancelled(f"Reading the header of {filename} was cancelled.")


def _fetch_header(url: str, filename: str, cancel: threading.Event | None = None):
    from huggingface_hub import get_session, hf_raise_for_status

    want = HEADER_FETCH
    while True:
        buf = bytearray()
        with get_session().stream(
            "GET", url, headers={"Range": f"bytes=0-{want - 1}"}, follow_redirects=True
        ) as resp:
            hf_raise_for_status(resp)
            for chunk in resp.iter_bytes():  # as it arrives: a trickle still sees a cancel
                _stop_if(cancel, filename)
                buf += chunk
                if len(buf) >= want:  # a server that ignores Range: stop reading anyway
                    break
        try:
            return parse_header(bytes(buf[:want]))
        except HeaderTruncated as exc:
            if len(buf) < want or want >= HEADER_LIMIT:
                raise HubError(f"{filename} on the Hub ends inside its GGUF header.") from None
            want = min(HEADER_LIMIT, max(exc.needed + (1 << 20), want * 4))
        except MalformedHeader as exc:
            raise HubError(f"{filename} on the Hub is not a usable GGUF file: {exc}.") from None
