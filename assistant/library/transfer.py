"""One HTTP body into a partial file, bounded and cancellable whatever the server does.

The body is read on a helper thread that hands the network reads over a small queue; the
downloading thread waits on that queue at most POLL_INTERVAL at a time, so Cancel and the speed
floor are checked four times a second even while the server sends nothing at all (a stalled
socket, headers that never come). A reader left behind by Cancel never touches the disk and
ends at its own read timeout. The body may not outgrow the size the Hub declared: a longer
Content-Length is refused before a byte is read, a body without one is cut off at that size.
A transfer that receives less than MIN_SPEED_BYTES in MIN_SPEED_WINDOW seconds is given up,
and what it received stays in the partial file for the next pull to resume.
"""

from __future__ import annotations

import contextlib
import hashlib
import queue
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from assistant.library.hub_errors import (
    DownloadCancelledError,
    HubConnectionError,
    HubError,
    UnsafeResponseError,
)
from assistant.library.sizes import format_bytes

POLL_INTERVAL = 0.25  # seconds between looks at the cancel flag while the server is silent
MIN_SPEED_BYTES = 32 << 10  # a transfer that receives less than this...
MIN_SPEED_WINDOW = 30.0  # ...in this many seconds is given up (the part is kept)
CALL_TIMEOUT = 60.0  # seconds for a listing or a file's description to arrive in full
QUEUE_CHUNKS = 16  # network reads (64 KiB or less each) between the reader and the file
HASH_BLOCK = 1 << 20
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)$")

T = TypeVar("T")


class Partial:
    """The `.incomplete` file of one blob and the SHA-256 of what it holds so far."""

    def __init__(self, path: Path):
        self.path = path
        self.hasher = hashlib.sha256()
        self.size = 0
        if path.exists():
            with path.open("rb") as handle:
                for block in iter(lambda: handle.read(HASH_BLOCK), b""):
                    self.hasher.update(block)
                    self.size += len(block)

    def reset(self) -> None:
        self.path.unlink(missing_ok=True)
        self.hasher = hashlib.sha256()
        self.size = 0


class SpeedFloor:
    """Bytes received across all the requests of one file, judged once per window."""

    def __init__(self) -> None:
        self._start = time.monotonic()
        self._mark = self.received = 0

    def add(self, n: int) -> None:
        self.received += n

    def check(self, filename: str, partial: Partial) -> None:
        now = time.monotonic()
        if now - self._start < MIN_SPEED_WINDOW:
            return
        got = self.received - self._mark
        if got < MIN_SPEED_BYTES:
            raise HubConnectionError(
                f"{filename} is arriving too slowly ({format_bytes(got)} in the last "
                f"{MIN_SPEED_WINDOW:g} s, under the minimum of {format_bytes(MIN_SPEED_BYTES)}); "
                f"gave up. {format_bytes(partial.size)} are kept; pull again to resume."
            )
        self._start, self._mark = now, self.received


def check_cancel(cancel: threading.Event | None, partial: Partial | None = None) -> None:
    if cancel is None or not cancel.is_set():
        return
    if partial is not None and partial.size:
        raise DownloadCancelledError(
            f"Download cancelled; {format_bytes(partial.size)} are kept and the next pull "
            f"resumes from there."
        )
    raise DownloadCancelledError("Download cancelled before any of the file arrived.")


def pause(seconds: float, cancel: threading.Event | None, partial: Partial) -> None:
    """Wait before a retry, answering Cancel at once."""
    if cancel is None:
        time.sleep(seconds)
    elif cancel.wait(seconds):
        check_cancel(cancel, partial)


def call(fn: Callable[[], T], cancel: threading.Event | None, what: str) -> T:
    """fn() (one request to the Hub) on a helper thread: Cancel is answered within
    POLL_INTERVAL and an answer still incomplete after CALL_TIMEOUT seconds is given up."""
    box: dict[str, Any] = {}
    done = threading.Event()

    def run() -> None:
        try:
            box["value"] = fn()
        except Exception as exc:  # handed to the calling thread, which raises it
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=run, daemon=True, name=f"hub: {what}").start()
    start = time.monotonic()
    while not done.wait(POLL_INTERVAL):
        check_cancel(cancel)
        if time.monotonic() - start > CALL_TIMEOUT:
            raise HubConnectionError(
                f"The Hub did not finish sending {what} within {CALL_TIMEOUT:g} s; check the "
                f"connection and try again."
            )
    if "error" in box:
        raise box["error"]
    return box["value"]


def receive(
    open_response: Callable[[], contextlib.AbstractContextManager],
    partial: Partial,
    size: int,
    advance: Callable[[int], None],
    cancel: threading.Event | None,
    floor: SpeedFloor,
    where: tuple[str, str],
) -> None:
    """One request's body appended to `partial`, never past `size` bytes in all.

    `open_response()` sends the request and yields the response (status checked);
    `advance(n)` reports progress (negative when a server that ignored Range restarts the
    file); `where` is (repository, file name) for messages. Transport errors are raised as
    they are, for the caller to retry.
    """
    chunks: queue.Queue = queue.Queue(QUEUE_CHUNKS)
    stop = threading.Event()
    reader = threading.Thread(
        target=_read, args=(open_response, chunks, stop), daemon=True, name=f"body: {where[1]}"
    )
    reader.start()
    try:
        _, (status, length, content_range) = _take(chunks, cancel, floor, partial, where[1])
        _check_start(status, length, content_range, partial, size, advance, where)
        overflow = False
        with partial.path.open("ab") as out:
            while True:
                kind, chunk = _take(chunks, cancel, floor, partial, where[1])
                if kind == "end":
                    return
                if len(chunk) > size - partial.size:
                    overflow = True
                    break
                out.write(chunk)
                partial.hasher.update(chunk)
                partial.size += len(chunk)
                floor.add(len(chunk))
                advance(len(chunk))
        if overflow:
            partial.reset()
            raise UnsafeResponseError(
                f"{where[0]}: the server sent more of {where[1]} than the {size:,} bytes the Hub "
                f"declared; cut off there and refused (nothing was kept)."
            )
    finally:
        stop.set()


def _take(
    chunks: queue.Queue,
    cancel: threading.Event | None,
    floor: SpeedFloor,
    partial: Partial,
    filename: str,
) -> tuple[str, Any]:
    """The reader's next item; raises what it raised, Cancel, or the speed floor."""
    while True:
        check_cancel(cancel, partial)
        floor.check(filename, partial)
        try:
            kind, value = chunks.get(timeout=POLL_INTERVAL)
        except queue.Empty:
            continue
        if kind == "error":
            raise value
        return kind, value


def _check_start(
    status: int,
    length: str | None,
    content_range: str | None,
    partial: Partial,
    size: int,
    advance: Callable[[int], None],
    where: tuple[str, str],
) -> None:
    repo, filename = where
    if partial.size and status != 206:  # the server ignored Range: start over
        advance(-partial.size)
        partial.reset()
    if status == 206:
        match = _CONTENT_RANGE.match(content_range or "")
        if not match or int(match[1]) != partial.size:
            at = partial.size
            partial.reset()
            raise HubError(
                f"{repo}: asked to resume {filename} at byte {at:,}, the server sent "
                f"the range {content_range!r}; the part was deleted, pull again to start over."
            )
    if length is None:
        return
    declared = int(length) if length.strip().isdigit() else None
    if declared is None or declared > size - partial.size:
        raise UnsafeResponseError(
            f"{repo}: the server offered {length!r} bytes of {filename} from byte "
            f"{partial.size:,}, more than the {size:,} bytes the Hub declared; refused before "
            f"reading them."
        )


def _read(
    open_response: Callable[[], contextlib.AbstractContextManager],
    chunks: queue.Queue,
    stop: threading.Event,
) -> None:
    """The reader thread: status, then the raw network reads, then 'end' (or 'error')."""

    def hand(item: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                chunks.put(item, timeout=POLL_INTERVAL)
                return True
            except queue.Full:
                continue
        return False

    try:
        with open_response() as resp:
            head = (resp.status_code, resp.headers.get("content-length"))
            if not hand(("start", (*head, resp.headers.get("content-range")))):
                return
            for chunk in resp.iter_raw():
                if not hand(("data", chunk)):
                    return
        hand(("end", None))
    except Exception as exc:  # handed to the downloading thread, which retries or raises it
        hand(("error", exc))
