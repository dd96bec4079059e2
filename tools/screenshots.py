"""Save screenshots of the desktop app to docs/screenshots/ (for the README).

Starts the real app in a throw-away ASSISTANT_HOME, asks the embedded model a few questions
through the window (real replies, streamed as a user would see them: nothing is written into
the store by hand), then saves the window at 1280×800 and 800×600, in the light and the dark
theme, and the settings dialog. Without a DISPLAY it uses Qt's offscreen platform (or
`--xvfb` re-runs it under `xvfb-run`, apt-get install xvfb).

Usage: python tools/screenshots.py [--out docs/screenshots] [--xvfb]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARKER = "ASSISTANT_SCREENSHOTS_UNDER_XVFB"

OTHER_CHATS = ("Give me three ideas for a rainy weekend.", "What is the capital of France?")
QUESTION = "How do I read a CSV file in Python? Show a short example with code."
SIZES = ((1280, 800), (800, 600))
THEMES = ("light", "dark")


def settle(seconds: float = 0.4) -> None:
    """Let the window lay out and paint (and the worker report) for a moment."""
    from PySide6.QtCore import QEventLoop

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        QEventLoop().processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 10)
        time.sleep(0.01)


def wait(condition, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the app did not get there in time")
        settle(0.05)


def ask(window, text: str) -> None:
    """Type a question and press Enter, as a user does; wait until the reply is saved."""
    window.input.setPlainText(text)
    window.send()
    wait(lambda: not window.host.replying)


def shoot(out: Path) -> list[Path]:
    os.environ["ASSISTANT_HOME"] = tempfile.mkdtemp(prefix="screenshots-")
    sys.path.insert(0, str(ROOT))
    from assistant.settings import Settings
    from assistant.types import SamplingOptions
    from ui.app import make_application
    from ui.main_window import MainWindow
    from ui.settings_dialog import SettingsDialog

    make_application()
    settings = Settings(n_ctx=2048)
    settings.sampling = SamplingOptions(max_tokens=200, temperature=0.3, seed=11).to_dict()
    settings.save()
    window = MainWindow(settings)
    window.resize(*SIZES[0])
    window.show()
    window.start()
    wait(lambda: window.info is not None)
    for text in OTHER_CHATS:
        ask(window, text)
        window.new_chat()
    ask(window, QUESTION)
    settle()
    out.mkdir(parents=True, exist_ok=True)
    saved = []
    for theme in THEMES:
        window.set_theme(theme)
        for width, height in SIZES:
            window.resize(width, height)
            window.chat.scroll_to_bottom()
            settle(0.6)
            path = out / f"app-{width}x{height}-{theme}.png"
            window.grab().save(str(path))
            saved.append(path)
    window.set_theme("light")
    window.open_settings()
    settle()
    dialog = window.findChild(SettingsDialog)
    path = out / "settings.png"
    dialog.grab().save(str(path))
    saved.append(path)
    dialog.close()
    window.close()
    return saved


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--xvfb", action="store_true", help="run under xvfb-run (a real X server)")
    args = parser.parse_args()
    if args.xvfb and not os.environ.get(MARKER):
        xvfb = shutil.which("xvfb-run")
        if xvfb is None:
            print("error: no xvfb-run (apt-get install xvfb); leave out --xvfb", file=sys.stderr)
            return 1
        os.environ[MARKER] = "1"
        screen = "-screen 0 1400x1000x24"
        command = [xvfb, "-a", "-s", screen, sys.executable, __file__, "--out", str(args.out)]
        os.execv(xvfb, command)
    if not os.environ.get(MARKER) and not os.environ.get("DISPLAY"):
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    for path in shoot(args.out.resolve()):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
