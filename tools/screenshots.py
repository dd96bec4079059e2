"""Save screenshots of the desktop app to docs/screenshots/ (for the README).

Starts the real app (model loading on its worker thread) in a throw-away ASSISTANT_HOME, and
saves: the empty window, a conversation with a Markdown reply (code block, list, table), and
the settings dialog. The conversation is written to the store first, so the pictures do not
depend on what the small embedded model happens to say. Without a DISPLAY the script re-runs
itself under `xvfb-run` (apt-get install xvfb); `--offscreen` uses Qt's offscreen platform.

Usage: python tools/screenshots.py [--out docs/screenshots] [--offscreen]
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

QUESTION = "How do I read a CSV file in Python and add up one column?"
ANSWER = """Use the standard library's `csv` module; no extra package is needed.

```python
import csv


def column_total(path: str, column: str) -> float:
    with open(path, newline="", encoding="utf-8") as handle:
        return sum(float(row[column]) for row in csv.DictReader(handle))


print(column_total("sales.csv", "amount"))
```

**How it works**

1. `csv.DictReader` reads each row as a dictionary keyed by the header line.
2. The generator turns the column into numbers and `sum` adds them up.

| Approach | Needs | Best for |
|---|---|---|
| `csv` module | nothing | small and medium files |
| `pandas` | `pip install pandas` | analysis and big files |
"""
STATS = {
    "prompt_tokens": 61,
    "cached_tokens": 0,
    "completion_tokens": 171,
    "ttft_s": 0.09,
    "tokens_per_s": 118.6,
    "total_s": 1.53,
    "finish_reason": "stop",
    "context": {
        "n_ctx": 4096,
        "used": 61,
        "reserve": 512,
        "dropped_messages": 0,
        "summarized_messages": 0,
    },
}
OTHER_CHATS = ("Plan a weekend in Lisbon", "Explain the difference between TCP and UDP")


def seed(store) -> int:
    for title in OTHER_CHATS:
        conv = store.create_conversation(title=title)
        store.add_message(conv.id, "user", title)
        store.add_message(conv.id, "assistant", "…")
    conv = store.create_conversation(title="Sum a CSV column in Python")
    store.add_message(conv.id, "user", QUESTION)
    store.add_message(conv.id, "assistant", ANSWER, tokens=171, stats=STATS)
    return conv.id


def settle(seconds: float = 0.4) -> None:
    """Let the window lay out and paint (and the worker report) for a moment."""
    from PySide6.QtCore import QEventLoop

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        QEventLoop().processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 10)
        time.sleep(0.01)


def shoot(out: Path) -> None:
    os.environ["ASSISTANT_HOME"] = tempfile.mkdtemp(prefix="screenshots-")
    sys.path.insert(0, str(ROOT))
    from ui.app import build_window, make_application
    from ui.settings_dialog import SettingsDialog

    make_application()
    window = build_window()
    window.resize(1200, 780)
    window.show()
    window.start()
    deadline = time.monotonic() + 120
    while window.info is None and time.monotonic() < deadline:
        settle(0.1)
    settle()
    out.mkdir(parents=True, exist_ok=True)
    saved = [out / "empty.png", out / "conversation.png", out / "settings.png"]
    window.grab().save(str(saved[0]))
    conversation_id = seed(window.store)
    window.open_conversation(conversation_id)
    settle()
    window.grab().save(str(saved[1]))
    window.open_settings()
    settle()
    dialog = window.findChild(SettingsDialog)
    dialog.grab().save(str(saved[2]))
    dialog.close()
    window.close()
    for path in saved:
        print(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--offscreen", action="store_true", help="use Qt's offscreen platform")
    args = parser.parse_args()
    if args.offscreen:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    elif not os.environ.get("DISPLAY") and not os.environ.get(MARKER):
        xvfb = shutil.which("xvfb-run")
        if xvfb is None:
            print(
                "error: no DISPLAY and no xvfb-run (apt-get install xvfb), or use --offscreen",
                file=sys.stderr,
            )
            return 1
        os.environ[MARKER] = "1"
        command = [
            xvfb,
            "-a",
            "-s",
            "-screen 0 1400x1000x24",
            sys.executable,
            __file__,
            "--out",
            str(args.out),
        ]
        os.execv(xvfb, command)
    shoot(args.out.resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
