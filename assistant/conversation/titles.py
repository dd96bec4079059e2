"""A conversation's title from its first message: plain words, not Markdown."""

from __future__ import annotations

import re

NEW_TITLE = "New chat"
TITLE_CHARS = 60
_MARKDOWN_LEAD = re.compile(r"^\s*(?:#{1,6}\s+|>\s*|[-*+]\s+|\d+[.)]\s+|```\w*|~~~\w*)+")
_MARKDOWN_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_MARKDOWN_MARKS = re.compile(r"(\*\*|__|\*|`|~~)")


def title_from(text: str) -> str:
    """The first line with words in it, without Markdown marks (headings, emphasis, code,
    links, quotes, list bullets), cut at TITLE_CHARS ("# Minutes of…" is "Minutes of…")."""
    lines = [_plain(line) for line in text.strip().splitlines()]
    first_line = next((line for line in lines if line), "") or NEW_TITLE
    return first_line[:TITLE_CHARS] + ("…" if len(first_line) > TITLE_CHARS else "")


def _plain(line: str) -> str:
    line = _MARKDOWN_LEAD.sub("", line)
    line = _MARKDOWN_LINK.sub(r"\1", line)
    return " ".join(_MARKDOWN_MARKS.sub("", line).split())
