"""Code-block syntax highlighting as Qt rich text (Pygments when installed, plain otherwise)."""

from __future__ import annotations

import html

try:  # Pygments is optional: without it code blocks are shown unhighlighted
    from pygments import highlight as _highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import get_lexer_by_name, guess_lexer
    from pygments.styles import get_style_by_name
    from pygments.util import ClassNotFound
except ImportError:  # pragma: no cover - depends on the environment
    _highlight = None

LIGHT_STYLE, DARK_STYLE = "default", "github-dark"
_formatters: dict[str, object] = {}


def background(dark: bool) -> str:
    """The code block's background colour for the theme."""
    if _highlight is None:
        return "#2b2b2b" if dark else "#f5f5f5"
    color = get_style_by_name(DARK_STYLE if dark else LIGHT_STYLE).background_color
    return color or ("#2b2b2b" if dark else "#f8f8f8")


def code_html(code: str, language: str, dark: bool) -> str:
    """`code` as one <pre> block of inline-styled spans; wraps long lines."""
    body = _spans(code, language, dark) if _highlight is not None else html.escape(code)
    color = "#e6e6e6" if dark else "#1f1f1f"
    return f'<pre style="white-space: pre-wrap; margin: 0; color: {color};">{body}</pre>'


def _spans(code: str, language: str, dark: bool) -> str:
    lexer = None
    if language:
        try:
            lexer = get_lexer_by_name(language.lower())
        except ClassNotFound:
            lexer = None
    if lexer is None:
        if len(code) < 20:
            return html.escape(code)
        try:
            lexer = guess_lexer(code)
        except ClassNotFound:
            return html.escape(code)
    style = DARK_STYLE if dark else LIGHT_STYLE
    formatter = _formatters.get(style)
    if formatter is None:
        formatter = _formatters[style] = HtmlFormatter(style=style, noclasses=True, nowrap=True)
    out = _highlight(code, lexer, formatter)
    return out[:-1] if out.endswith("\n") and not code.endswith("\n") else out
