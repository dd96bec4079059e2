"""Which language to ask a summary in, when the script of the text tells it."""

from __future__ import annotations

SCRIPTS = [
    ("Chinese", "\u4e00", "\u9fff"),
    ("Japanese", "\u3040", "\u30ff"),
    ("Korean", "\uac00", "\ud7af"),
    ("Russian", "\u0400", "\u04ff"),
    ("Arabic", "\u0600", "\u06ff"),
    ("Greek", "\u0370", "\u03ff"),
    ("Hebrew", "\u0590", "\u05ff"),
    ("Hindi", "\u0900", "\u097f"),
    ("Thai", "\u0e00", "\u0e7f"),
]


def detect_language(text: str) -> str | None:
    """A language name when the script tells it (Chinese, Japanese, ...); None for Latin script,
    where the prompt asks for 'the same language as the text'."""
    sample = text[:20000]
    letters = [ch for ch in sample if ch.isalpha()]
    if not letters:
        return None
    counts = {name: sum(lo <= ch <= hi for ch in letters) for name, lo, hi in SCRIPTS}
    if counts["Japanese"] > 0.05 * len(letters):
        return "Japanese"
    name, count = max(counts.items(), key=lambda kv: kv[1])
    return name if count > 0.3 * len(letters) else None


def is_cjk(word: str) -> bool:
    """Whether a word is written in Chinese, Japanese or Korean script (no spaces between words)."""
    return any("\u3040" <= ch <= "\u9fff" or "\uac00" <= ch <= "\ud7af" for ch in word)
