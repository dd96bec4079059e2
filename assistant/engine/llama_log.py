"""Capture llama.cpp's log: `Llama(...)` only says "failed to load"; the reason is in the log."""

from __future__ import annotations

import ctypes
import os
import re
import sys
import threading
from collections import deque

import llama_cpp

# ggml_log_level: NONE 0, DEBUG 1, INFO 2, WARN 3, ERROR 4, CONT 5
_LEVEL_WARN, _LEVEL_ERROR, _LEVEL_CONT = 3, 4, 5
_GENERIC = ("failed to load model", "error loading model")
# A warning that reads like a failure. Only warnings are searched: the information lines of a
# load mention "unknown" and "error" harmlessly (`tokenizer.ggml.unknown_token_id`,
# `rope_finetuned = unknown`), and picking one of them named the wrong reason.
_FAILURE = re.compile(
    r"\b(error|fail(ed|s|ure)?|invalid|cannot|unable|out of memory|not enough)\b", re.I
)
_lines: deque[tuple[int, int, str]] = deque(maxlen=400)  # (sequence number, level, text)
_lock = threading.Lock()
_seq = 0
_echo = bool(os.environ.get("ASSISTANT_DEBUG"))


@llama_cpp.llama_log_callback
def _callback(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    global _seq
    message = text.decode("utf-8", errors="replace")
    if _echo:
        sys.stderr.write(message)
    with _lock:
        if level == _LEVEL_CONT and _lines:
            seq, old_level, old = _lines.pop()
            _lines.append((seq, old_level, old + message))
            return
        _seq += 1
        _lines.append((_seq, level, message))


def install() -> None:
    """Route llama.cpp's log here (idempotent; replaces llama-cpp-python's printer)."""
    llama_cpp.llama_log_set(_callback, ctypes.c_void_p(0))


def mark() -> int:
    """A position in the log; `reason_since` looks only at lines after it."""
    with _lock:
        return _seq


def lines_since(marker: int) -> list[tuple[int, str]]:
    with _lock:
        return [(level, text) for seq, level, text in _lines if seq > marker]


def reason_since(marker: int) -> str:
    """The most telling error lines llama.cpp logged after `marker`, as one sentence."""
    lines = lines_since(marker)
    errors = [t.strip() for lvl, t in lines if lvl == _LEVEL_ERROR and t.strip()]
    if not errors:
        errors = [t.strip() for lvl, t in lines if lvl == _LEVEL_WARN and _FAILURE.search(t)]
    if not errors:
        return ""
    # Drop the "function_name: " prefixes and generic lines; keep the specific reasons.
    clean: list[str] = []
    for line in errors:
        head, _, rest = line.partition(": ")
        text = rest if rest and " " not in head else line
        text = text.removeprefix("error loading model: ")
        if text not in clean and not text.lower().startswith(_GENERIC):
            clean.append(text)
    return "; ".join(clean[:3]) or errors[0]


install()
