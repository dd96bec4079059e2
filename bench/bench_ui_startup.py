"""Time from launching the app to a window ready for input, and to the model being loaded.

Each run starts a fresh Python process that opens the app as `assistant` does (`run_app`); the
child reports when its event loop first runs with the window shown and the message box focused
("ready for input"), and when the model, loading on the worker thread, is ready. Times are
measured from just before the process is spawned. The issue's target: ready in under 2 s.

Usage: python bench/bench_ui_startup.py [--runs 3]
Runs offscreen unless DISPLAY is set (or QT_QPA_PLATFORM says otherwise).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def child() -> int:
    """Runs in the spawned process: open the app, print READY and MODEL times, then quit."""
    sys.path.insert(0, str(ROOT))
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from ui.app import make_application, run_app

    app = make_application()

    def ready() -> None:
        window = next(w for w in QApplication.topLevelWidgets() if hasattr(w, "model_ready"))
        focused = window.focusWidget() is window.input  # where typing goes
        print(f"READY {time.time():.6f} {int(focused)}", flush=True)
        if window.info is not None or window.model_label.text() == "No model loaded":
            done()
        else:
            window.model_ready.connect(done)

    def done() -> None:
        print(f"MODEL {time.time():.6f}", flush=True)
        QTimer.singleShot(0, app.closeAllWindows)

    QTimer.singleShot(0, ready)
    return run_app()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child()
    env = dict(os.environ)
    if not env.get("DISPLAY"):
        env.setdefault("QT_QPA_PLATFORM", "offscreen")
    ready_s, model_s = [], []
    for run in range(args.runs):
        env["ASSISTANT_HOME"] = tempfile.mkdtemp(prefix="bench-startup-")
        start = time.time()
        out = subprocess.run(
            [sys.executable, __file__, "--child"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        times = {
            line.split()[0]: line.split()[1:]
            for line in out.stdout.splitlines()
            if line.startswith(("READY", "MODEL"))
        }
        if "READY" not in times:
            print(f"run {run + 1}: the app did not start (exit {out.returncode})\n{out.stderr}")
            return 1
        ready = float(times["READY"][0]) - start
        model = float(times["MODEL"][0]) - start if "MODEL" in times else float("nan")
        focused = times["READY"][1] == "1"
        ready_s.append(ready)
        model_s.append(model)
        print(
            f"run {run + 1}: window ready for input {ready:.2f} s"
            f"{'' if focused else ' (input not focused!)'}, model loaded {model:.2f} s"
        )
    print(
        f"median: ready {statistics.median(ready_s):.2f} s (target < 2 s), "
        f"model loaded {statistics.median(model_s):.2f} s "
        f"[{env.get('QT_QPA_PLATFORM', 'xcb')}]"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
