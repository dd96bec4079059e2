"""Explain, before Qt aborts, why the window cannot open on this Linux desktop.

Qt's xcb plugin calls qFatal (an abort with a terse message) when a system library is missing
or there is no display. Probing the libraries with dlopen costs microseconds, so it runs first.
"""

from __future__ import annotations

import ctypes
import os
import sys

# soname -> the Debian/Ubuntu package that provides it (what Qt 6's xcb plugin links)
XCB_LIBRARIES: dict[str, str] = {
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libX11-xcb.so.1": "libx11-xcb1",
}
ESSENTIAL_PACKAGES = ("libxcb-icccm4", "libxcb-keysyms1", "libxcb-cursor0", "libxkbcommon-x11-0")


def uses_xcb(env: dict[str, str] | None = None) -> bool:
    """Whether Qt will pick the X11 (xcb) platform plugin."""
    env = os.environ if env is None else env
    if not sys.platform.startswith("linux"):
        return False
    platform = env.get("QT_QPA_PLATFORM", "").split(":")[0].split(";")[0].strip()
    if platform:
        return platform == "xcb"
    wayland = env.get("WAYLAND_DISPLAY") and env.get("XDG_SESSION_TYPE") == "wayland"
    return not wayland


def missing_packages() -> list[str]:
    """Packages whose xcb libraries cannot be loaded (empty when all are there)."""
    missing = []
    for soname, package in XCB_LIBRARIES.items():
        try:
            ctypes.CDLL(soname)
        except OSError:
            missing.append(package)
    return missing


def display_problem(env: dict[str, str] | None = None) -> str | None:
    """A user-facing explanation of why the window cannot open, or None when it should."""
    env = os.environ if env is None else env
    if not uses_xcb(env):
        return None
    if not env.get("DISPLAY") and not env.get("WAYLAND_DISPLAY"):
        return (
            "No graphical display was found (DISPLAY is not set), so the desktop app cannot "
            "open a window. Use `assistant chat` in this terminal, or run the app under "
            "`xvfb-run assistant`."
        )
    missing = missing_packages()
    if missing:
        packages = " ".join(dict.fromkeys([*missing]))
        return (
            "The desktop app needs system libraries that Qt's X11 plugin loads, and some are "
            f"missing. On Debian or Ubuntu install them with:\n\n    sudo apt-get install "
            f"{packages}\n\n(the usual set is {' '.join(ESSENTIAL_PACKAGES)}). Meanwhile "
            "`assistant chat` works in a terminal."
        )
    return None
