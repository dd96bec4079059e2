"""`assistant` with no command: open the desktop app (the only core module importing ui/)."""

from __future__ import annotations

import argparse
import sys


def open_desktop(args: argparse.Namespace) -> int:
    try:
        from ui.app import run_app
    except ImportError as exc:
        print(
            f"error: the desktop app is unavailable ({exc}); try `assistant chat`.", file=sys.stderr
        )
        return 1
    return run_app(model=getattr(args, "model", None))
