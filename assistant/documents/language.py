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


# Short English words that say nothing about what a text is about (retrieval and sources
# ignore them).
STOPWORDS = frozenset(
    """a about above after again all also am an and any are as at be been before being below
    between both but by can could did do does doing down during each few for from further had
    has have having he her here hers herself him himself his how i if in into is it its itself
    just me more most my myself no nor not now of off on once only or other our ours out over
    own same she should so some such than that the their theirs them then there these they
    this those through to too under until up very was we were what when where which while who
    whom why will with would you your yours yourself tell say said please according document
    text one ones""".split()
)
