"""A conversation title for a document: its first heading, else its file name, else its first
words (never "Summary: pasted text" for every paste)."""

from __future__ import annotations

import re

TITLE_CHARS = 60
GENERIC_NAMES = {"", "pasted text", "standard input", "dropped text"}
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$")
_SENTENCE_END = re.compile(r"[.!?。！？;；,，:：]$")


def document_title(name: str, text: str) -> str:
    head = text[:8000]
    lines = head.splitlines()
    for line in lines[:60]:  # a Markdown heading near the top
        match = _HEADING.match(line)
        if match and _clean(match.group(1)):
            return _cut(_clean(match.group(1)))
    first = _first_paragraph(head)
    if first and "\n" not in first and len(first) <= 80 and not _SENTENCE_END.search(first):
        return _cut(first)  # a short first line standing alone: the document's title
    if name.strip().lower() not in GENERIC_NAMES:
        return _cut(name.strip())
    words = " ".join(head.split()[:12])
    return _cut(words) if words else name


def _first_paragraph(text: str) -> str:
    for block in re.split(r"\n[ \t]*\n", text):
        if block.strip():
            return block.strip()
    return ""


def _clean(text: str) -> str:
    return " ".join(re.sub(r"(\*\*|__|\*|`)", "", text).split())


def _cut(text: str) -> str:
    return text[:TITLE_CHARS] + ("…" if len(text) > TITLE_CHARS else "")
