"""The PySide6 desktop app: a thin client of the `assistant` core."""

from .qt_compat import guard_none_refcount

guard_none_refcount()
