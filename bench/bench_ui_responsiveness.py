"""Longest stall of the Qt event loop while the window loads the model and streams a reply.

A QTimer probe fires every few milliseconds on the GUI thread; a stall is how much later than
due a tick arrives (the GUI could not react for that long). The model (the embedded one unless
--model is given) loads and generates on the worker thread; replies are regenerated until at
least --tokens tokens have streamed. Prints figures only; the issue's target is under 50 ms.

Usage: python bench/bench_ui_responsiveness.py [--tokens 200] [--threads N] [--model PATH]
Runs offscreen unless DISPLAY is set (or QT_QPA_PLATFORM says otherwise).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PROBE_MS = 5


class StallProbe:
    """Records how late each tick of a fast timer arrives."""

    def __init__(self) -> None:
        from PySide6.QtCore import QTimer

        self.gaps: list[float] = []
        self._last = time.perf_counter()
        self._timer = QTimer(interval=PROBE_MS)
        self._timer.timeout.connect(self._tick)

    def start(self) -> None:
        self.gaps.clear()
        self._last = time.perf_counter()
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    def _tick(self) -> None:
        now = time.perf_counter()
        self.gaps.append((now - self._last) * 1000 - PROBE_MS)
        self._last = now

    def summary(self) -> str:
        if not self.gaps:
            return "no ticks"
        gaps = sorted(self.gaps)
        p99 = gaps[min(len(gaps) - 1, int(len(gaps) * 0.99))]
        over = sum(1 for g in gaps if g > 50)
        return (
            f"longest stall {gaps[-1]:.1f} ms, p99 {p99:.1f} ms, {over} of {len(gaps)} "
            "ticks over 50 ms"
        )


def wait(app, condition, timeout_s: float = 600) -> None:
    """Run the event loop (sleeping between events) until `condition()`."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    check = QTimer(interval=2)
    check.timeout.connect(lambda: condition() and loop.quit())
    check.start()
    QTimer.singleShot(int(timeout_s * 1000), loop.quit)
    loop.exec()
    check.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--threads", type=int, default=None, help="default: automatic")
    parser.add_argument("--model", default="")
    args = parser.parse_args()
    os.environ.setdefault("ASSISTANT_HOME", tempfile.mkdtemp(prefix="bench-ui-"))
    if not os.environ.get("DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    from assistant.settings import Settings
    from assistant.types import SamplingOptions
    from ui.app import make_application
    from ui.main_window import MainWindow

    app = make_application()
    settings = Settings(model=args.model, n_ctx=2048, n_threads=args.threads)
    settings.sampling = SamplingOptions(max_tokens=args.tokens, seed=1).to_dict()
    window = MainWindow(settings)
    probe = StallProbe()
    ready: list[bool] = []
    window.model_ready.connect(lambda: ready.append(True))
    window.show()
    probe.start()
    window.start()
    wait(app, lambda: bool(ready))
    probe.stop()
    if window.info is None:
        print(f"error: {window.banner.label.text()}", file=sys.stderr)
        return 1
    print(f"model: {window.model_label.text()}  ({os.environ.get('QT_QPA_PLATFORM', 'xcb')})")
    print(f"while loading the model: {probe.summary()}")

    all_gaps: list[float] = []
    streamed = tokens_per_s = 0.0
    attempt = 0
    probe.start()
    while streamed < args.tokens and attempt < 6:
        window.input.setPlainText("Write a long, detailed story about a lighthouse keeper.")
        if attempt:
            window.regenerate()
        else:
            window.send()
        wait(app, lambda: not window.host.replying)
        reply = window.store.messages(window.conversation_id)[-1]
        streamed += reply.tokens or 0
        tokens_per_s = reply.stats.get("tokens_per_s", 0.0)
        attempt += 1
    probe.stop()
    all_gaps = probe.gaps
    print(
        f"while streaming {int(streamed)} tokens in {attempt} repl{'y' if attempt == 1 else 'ies'}"
        f" ({tokens_per_s:.1f} tokens/s): {probe.summary()}"
    )
    window.close()
    return 0 if all_gaps else 1


if __name__ == "__main__":
    sys.exit(main())
