"""Longest stall of the Qt event loop while the window loads the model, streams a reply, and the
user switches chats and opens the model picker meanwhile.

A QTimer probe fires every few milliseconds on the GUI thread; a stall is how much later than
due a tick arrives (the GUI could not react for that long). The model (the embedded one unless
--model is given) loads and generates on the worker thread; replies are regenerated until at
least --tokens tokens have streamed, while every 300 ms the user opens the other chat, comes
back (the reply goes on in the background), or opens and closes the model picker. Prints
figures only (medians, p90, p99, max); the target is no stall over 50 ms.

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

        def pct(q: float) -> float:
            return gaps[min(len(gaps) - 1, int(len(gaps) * q))]

        over = sum(1 for g in gaps if g > 50)
        return (
            f"longest stall {gaps[-1]:.1f} ms, median {pct(0.5):.1f} ms, p90 {pct(0.9):.1f} ms, "
            f"p99 {pct(0.99):.1f} ms, {over} of {len(gaps)} ticks over 50 ms"
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

    window.input.setPlainText("Say hi.")  # a second chat to switch to while streaming
    window.send()
    wait(app, lambda: not window.host.replying)
    other = window.conversation_id
    window.new_chat()

    probe.start()  # the picker on its own: open, then close it
    for _ in range(5):
        window.model_picker.showPopup()
        wait(app, lambda: False, 0.15)
        window.model_picker.hidePopup()
        wait(app, lambda: False, 0.15)
    probe.stop()
    print(f"opening and closing the model picker 5 times: {probe.summary()}")

    actions = {"switches": 0, "picker": 0}
    home: list[int | None] = [None]

    def poke() -> None:
        """What a user does while a reply streams: look at the other chat, come back, or
        open the model picker."""
        step = sum(actions.values()) % 3
        if step == 0 and home[0] is not None:
            window.select_conversation(other)
            actions["switches"] += 1
        elif step == 1 and home[0] is not None:
            window.select_conversation(home[0])
            actions["switches"] += 1
        else:
            picker = window.model_picker
            picker.hidePopup() if picker.view().isVisible() else picker.showPopup()
            actions["picker"] += 1

    from PySide6.QtCore import QTimer

    user = QTimer(interval=300)
    user.timeout.connect(poke)

    window.input.setPlainText("Write a long, detailed story about a lighthouse keeper.")
    probe.start()  # the same kind of reply, the user only watching: the baseline, same run
    window.send()
    home[0] = window.conversation_id
    wait(app, lambda: not window.host.replying)
    probe.stop()
    quiet = window.store.messages(home[0])[-1].tokens or 0
    print(f"while streaming {quiet} tokens, the user only watching: {probe.summary()}")

    all_gaps: list[float] = []
    streamed = tokens_per_s = 0.0
    attempt = 1
    probe.start()
    user.start()
    while streamed < args.tokens and attempt < 7:
        if home[0] is not None:
            window.select_conversation(home[0])
        window.input.setPlainText("Write a long, detailed story about a lighthouse keeper.")
        window.regenerate()
        wait(app, lambda: not window.host.replying)
        reply = window.store.messages(home[0])[-1]
        streamed += reply.tokens or 0
        tokens_per_s = reply.stats.get("tokens_per_s", 0.0)
        attempt += 1
    probe.stop()
    user.stop()
    window.model_picker.hidePopup()
    all_gaps = probe.gaps
    print(
        f"while streaming {int(streamed)} tokens in {attempt - 1} "
        f"repl{'y' if attempt == 2 else 'ies'}"
        f" ({tokens_per_s:.1f} tokens/s), with {actions['switches']} chat switches and "
        f"{actions['picker']} picker opens/closes: {probe.summary()}"
    )
    window.close()
    return 0 if all_gaps else 1


if __name__ == "__main__":
    sys.exit(main())
