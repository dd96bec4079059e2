"""Who writes a reply: an identity stored with each 'streaming' row, and whether that writer
is still alive, so that opening the store marks only a dead writer's reply `interrupted`.

An identity is the host, the boot id, the process id and the process's start time (a reused
pid is a different process: its start time differs), plus a random token per `Store` (within
one process, a closed store's rows are its own to recover). Where the platform cannot tell
whether a process is the same one (no /proc), the row's last save acts as a lease: a writer
that has not saved for `LEASE_SECONDS` is taken for gone.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
import weakref
from enum import Enum
from typing import Any

LEASE_SECONDS = 600.0  # longer than any prompt read between two saves of a live writer

_BOOT_ID_FILE = "/proc/sys/kernel/random/boot_id"
_live_tokens: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()
_process: dict[str, Any] = {}  # this process's identity, computed once per pid (fork-safe)


class Liveness(Enum):
    ALIVE = "alive"
    DEAD = "dead"
    UNKNOWN = "unknown"  # decided by the lease


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return None


def _proc_start(pid: int) -> tuple[str, str] | None:
    """(state, start time in clock ticks since boot) of a process from /proc, None if absent."""
    stat = _read(f"/proc/{pid}/stat")
    if not stat:
        return None
    fields = stat.rpartition(")")[2].split()  # the command name may hold spaces and ')'
    if len(fields) < 20:
        return None
    return fields[0], fields[19]


def process_identity() -> dict[str, Any]:
    pid = os.getpid()
    if _process.get("pid") != pid:
        proc = _proc_start(pid)
        _process.clear()
        _process.update(
            host=socket.gethostname(),
            boot=_read(_BOOT_ID_FILE),
            pid=pid,
            start=proc[1] if proc else None,
        )
    return dict(_process)


def register(store: Any) -> str:
    """A new writer token for `store`, alive while the store is open in this process."""
    token = secrets.token_hex(8)
    _live_tokens[token] = store
    return token


def unregister(token: str) -> None:
    _live_tokens.pop(token, None)


def writer_id(token: str) -> str:
    return json.dumps({**process_identity(), "token": token}, separators=(",", ":"))


def liveness(writer: str | None) -> Liveness:
    """Whether the writer recorded on a row is still running."""
    try:
        who = json.loads(writer) if writer else None
        pid = int(who["pid"])
    except (ValueError, TypeError, KeyError):
        return Liveness.DEAD  # written before writers were recorded, or unreadable
    if not 0 < pid < 2**31:
        return Liveness.DEAD  # not a process id (os.kill would signal a process group)
    me = process_identity()
    if who.get("host") != me["host"]:
        return Liveness.UNKNOWN  # another machine (or container) sharing the file
    if who.get("boot") and me["boot"] and who["boot"] != me["boot"]:
        return Liveness.DEAD  # the machine restarted since
    same_process = pid == me["pid"] and who.get("start") == me["start"]
    if same_process:
        return Liveness.ALIVE if who.get("token") in _live_tokens else Liveness.DEAD
    if me["start"] is not None:  # /proc is there: exact answer
        proc = _proc_start(pid)
        if proc is None or proc[0] in {"Z", "X"} or proc[1] != who.get("start"):
            return Liveness.DEAD  # gone, a zombie, or the pid now belongs to another process
        return Liveness.ALIVE
    if os.name == "posix":
        try:
            os.kill(pid, 0)  # signal 0 checks existence (on Windows it would kill: not used)
        except ProcessLookupError:
            return Liveness.DEAD
        except PermissionError:
            pass
    return Liveness.UNKNOWN


def is_gone(writer: str | None, saved_at: float | None, now: float | None = None) -> bool:
    """True when the row's writer is dead, or unknown and silent for longer than the lease."""
    state = liveness(writer)
    if state is Liveness.UNKNOWN:
        now = time.time() if now is None else now
        return saved_at is None or now - saved_at > LEASE_SECONDS
    return state is Liveness.DEAD
