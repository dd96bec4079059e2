"""Saved KV states: a conversation reopened (after a switch or a restart) restores its cache
instead of reading its whole window again.

A state is keyed by the model's identity (file, size, modification time, context size,
adapter) and holds the exact token sequence it was computed for; the runtime checks those tokens
against the new prompt (`kv_reuse.plan_reuse`) before using it, so a state can only ever save
work, never change an answer. The last few states stay in memory; every saved state is also
written to disk (one file each, written atomically by a background thread, so saving never
delays the next token) within a size budget, least recently used evicted first. A damaged,
truncated or foreign file is ignored and removed.

File layout: MAGIC, a 4-byte header length, a JSON header (model key, label, token count, data
size, SHA-256 of tokens + data), the tokens (int32, little endian), then llama.cpp's state data.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

MAGIC = b"ASSISTANT-KV1\n"
SUFFIX = ".kvstate"
DEFAULT_BUDGET = 2 * 1024**3  # bytes on disk
MEMORY_ENTRIES = 3  # states kept in memory (the conversations used last)
MEMORY_BUDGET = 1024**3
_HEADER_MAX = 1 << 16


@dataclass
class SavedState:
    model_key: str
    label: str
    tokens: np.ndarray  # int64, the token sequence the state holds
    data: bytes | None  # llama.cpp's state (None: on disk only, read on demand)
    path: Path | None = None
    size: int = 0  # bytes of the file (or of the data, in memory)
    used: float = 0.0  # last use (time.time())


@dataclass(frozen=True)
class CacheEntryInfo:
    """One saved state, for `assistant cache list` and the Settings line."""

    label: str
    model_key: str
    tokens: int
    bytes: int
    used: float
    path: str


def model_key(path: Path, n_ctx: int, extra: str = "") -> str:
    """The identity a state is valid for: the model file (resolved path, size, modification
    time), the context size and anything else that changes the cache (an adapter)."""
    st = path.stat()
    ident = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{n_ctx}|{extra}"
    return hashlib.sha256(ident.encode()).hexdigest()[:32]


class StateCache:
    """Saved states of one folder, shared by every model (each state names its model key)."""

    def __init__(
        self,
        folder: Path | str,
        budget: int = DEFAULT_BUDGET,
        memory_entries: int = MEMORY_ENTRIES,
        memory_budget: int = MEMORY_BUDGET,
    ):
        self.folder = Path(folder)
        self.budget = budget
        self.memory_entries = memory_entries
        self.memory_budget = memory_budget
        self._memory: OrderedDict[tuple[str, str], SavedState] = OrderedDict()
        self._lock = threading.Lock()
        self._writes: dict[Path, threading.Thread] = {}
        # headers and tokens read from disk, by (size, mtime): a prompt looks through every
        # file, and re-reading them all each time would cost more than the restore saves
        self._headers: dict[Path, tuple[tuple[int, int], SavedState]] = {}

    # -- saving ------------------------------------------------------------------------------
    def put(self, key: str, label: str, tokens: np.ndarray, data: bytes) -> None:
        """Keep a state in memory at once and write it to disk in the background."""
        state = SavedState(key, label, np.asarray(tokens, dtype=np.int64), data, size=len(data))
        state.used = time.time()
        with self._lock:
            self._memory[(key, label)] = state
            self._memory.move_to_end((key, label))
            self._trim_memory()
        if len(data) > self.budget:  # it alone would push every other file out: memory only
            return
        path = self.folder / f"{_file_stem(key, label)}{SUFFIX}"
        state.path = path
        previous = self._writes.get(path)
        writer = threading.Thread(
            target=self._write, args=(path, state, previous), name="kv-state-writer", daemon=True
        )
        self._writes[path] = writer
        writer.start()

    def flush(self, timeout: float | None = None) -> None:
        """Wait for the background writes (at exit)."""
        for writer in list(self._writes.values()):
            writer.join(timeout)

    def _write(self, path: Path, state: SavedState, previous: threading.Thread | None) -> None:
        if previous is not None:
            previous.join()  # one writer per file at a time, in order
        tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            tokens = state.tokens.astype("<i4").tobytes()
            digest = _digest(tokens, state.data or b"")
            header = json.dumps(
                {
                    "model_key": state.model_key,
                    "label": state.label,
                    "n_tokens": len(state.tokens),
                    "data_bytes": len(state.data or b""),
                    "sha256": digest,
                }
            ).encode()
            with open(tmp, "wb") as f:
                f.write(MAGIC + struct.pack("<I", len(header)) + header + tokens)
                f.write(state.data or b"")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as exc:  # a full disk: the state is not kept, nothing else changes
            log.warning("Could not save the conversation cache %s: %s", path, exc)
            tmp.unlink(missing_ok=True)
            return
        self.evict()

    # -- finding -----------------------------------------------------------------------------
    def candidates(self, key: str) -> list[SavedState]:
        """This model's states, in memory first (newest first), then those only on disk."""
        with self._lock:
            found = [s for (k, _), s in reversed(self._memory.items()) if k == key]
        seen = {s.label for s in found}
        for state in self._scan():
            if state.model_key == key and state.label not in seen:
                found.append(state)
        return found

    def load(self, state: SavedState) -> bytes | None:
        """The state's data, read and checked if it is only on disk; None (and the file
        removed) when it is damaged."""
        if state.data is not None:
            state.used = time.time()
            return state.data
        assert state.path is not None
        checked = _read(state.path, with_data=True)
        if checked is None or checked.model_key != state.model_key:
            self._remove(state.path)
            return None
        if not np.array_equal(checked.tokens, state.tokens):
            return None  # a newer state of this conversation was written meanwhile: kept
        now = time.time()
        try:
            os.utime(state.path, (now, now))  # the file's mtime is its last use
        except OSError:
            pass
        return checked.data

    def forget(self, state: SavedState) -> None:
        """A state llama.cpp refused: drop it from memory and disk."""
        with self._lock:
            self._memory.pop((state.model_key, state.label), None)
        if state.path is not None:
            self._remove(state.path)

    # -- housekeeping ------------------------------------------------------------------------
    def entries(self) -> list[CacheEntryInfo]:
        return [
            CacheEntryInfo(s.label, s.model_key, len(s.tokens), s.size, s.used, str(s.path))
            for s in self._scan()
        ]

    def total_bytes(self) -> int:
        return sum(s.size for s in self._scan())

    def clear(self) -> int:
        """Remove every saved state; returns the bytes freed."""
        self.flush()
        with self._lock:
            self._memory.clear()
        freed = 0
        for path in self._files():
            try:
                freed += path.stat().st_size
                path.unlink()
            except OSError:
                pass
        return freed

    def evict(self) -> None:
        """Remove the least recently used files until the folder is within the budget."""
        states = sorted(self._scan(), key=lambda s: s.used)
        total = sum(s.size for s in states)
        for state in states:
            if total <= self.budget:
                break
            if state.path is not None:
                self._remove(state.path)
                total -= state.size

    def _trim_memory(self) -> None:
        while len(self._memory) > self.memory_entries or (
            len(self._memory) > 1
            and sum(len(s.data or b"") for s in self._memory.values()) > self.memory_budget
        ):
            self._memory.popitem(last=False)

    def _files(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        return sorted(self.folder.glob(f"*{SUFFIX}"))

    def _scan(self) -> list[SavedState]:
        found = []
        for path in self._files():
            try:
                st = path.stat()
            except OSError:
                continue  # removed meanwhile
            stamp = (st.st_size, st.st_mtime_ns)
            known = self._headers.get(path)
            if known is not None and known[0] == stamp:
                found.append(known[1])
                continue
            state = _read(path, with_data=False)
            if state is None:
                self._remove(path)
            else:
                self._headers[path] = (stamp, state)
                found.append(state)
        return found

    def _remove(self, path: Path) -> None:
        self._headers.pop(path, None)
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("Could not remove %s: %s", path, exc)


def _file_stem(key: str, label: str) -> str:
    return hashlib.sha256(f"{key}|{label}".encode()).hexdigest()[:40]


def _read(path: Path, *, with_data: bool) -> SavedState | None:
    """A state file's header and tokens (and data, checked against its digest); None for any
    file that is not a whole state written by this code."""
    try:
        st = path.stat()
        with open(path, "rb") as f:
            if f.read(len(MAGIC)) != MAGIC:
                return None
            (n,) = struct.unpack("<I", f.read(4))
            if n > _HEADER_MAX:
                return None
            header = json.loads(f.read(n))
            n_tokens, data_bytes = int(header["n_tokens"]), int(header["data_bytes"])
            key, label, digest = header["model_key"], header["label"], header["sha256"]
            if n_tokens < 0 or data_bytes < 0:
                return None
            if st.st_size != len(MAGIC) + 4 + n + 4 * n_tokens + data_bytes:
                return None  # truncated or padded
            raw = f.read(4 * n_tokens)
            tokens = np.frombuffer(raw, dtype="<i4").astype(np.int64)
            data = f.read(data_bytes) if with_data else None
    except (OSError, ValueError, KeyError, TypeError, struct.error):
        return None
    if not isinstance(key, str) or not isinstance(label, str):
        return None
    if data is not None and _digest(raw, data) != digest:
        return None
    return SavedState(key, label, tokens, data, path, st.st_size, st.st_mtime)


def saved_states(budget_mb: int) -> StateCache | None:
    """The user's saved-state folder with this budget (None when saving is turned off)."""
    from assistant import paths

    return StateCache(paths.kv_states_dir(), budget_mb * 1024**2) if budget_mb > 0 else None


def _digest(tokens: bytes, data: bytes) -> str:
    """SHA-256 over the tokens then the data, without joining them (a state is large)."""
    h = hashlib.sha256(tokens)
    h.update(data)
    return h.hexdigest()
