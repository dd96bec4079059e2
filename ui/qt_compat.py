"""Work around a PySide6 bug that can crash the interpreter on Python 3.11.

PySide6 6.12.0 drops one reference to None each time a Qt method that returns nothing is called
(`setText`, `processEvents`, ...), and one to False when a signal fails to disconnect. From
Python 3.12 on these singletons are immortal and this is harmless; on 3.11 None's count reaches
zero after a few thousand calls and CPython aborts ("deallocating None"). Versions up to 6.11.3
are not affected. When the leak is detected, None, True and False get reference counts that no
run can exhaust, which is what 3.12 does by design.
"""

from __future__ import annotations

import ctypes
import sys

_HEADROOM = 1 << 48


def none_leaks() -> bool:
    """Whether calling a void Qt method loses a reference to None (measured, not guessed)."""
    from PySide6.QtCore import QObject

    probe = QObject()
    before = sys.getrefcount(None)
    for _ in range(64):
        probe.setObjectName("")
    return sys.getrefcount(None) <= before - 64


def guard_none_refcount() -> bool:
    """Apply the workaround where needed; True if it was applied."""
    if sys.version_info >= (3, 12) or not none_leaks():
        return False
    for singleton in (None, True, False):
        ctypes.c_ssize_t.from_address(id(singleton)).value += _HEADROOM
    return True
