"""Source code as syntax-highlighted HTML (pygments, inline styles) for the widget panels."""

from __future__ import annotations

__all__ = ["highlight_code"]


def highlight_code(code: str, language: str = "python", max_lines: int | None = None) -> str:
    """``code`` as a ``<pre>`` block with inline colours (no stylesheet needed in a widget), cut to
    ``max_lines`` with a "# ... N more lines" note; an unknown language is shown as plain text."""
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import PythonLexer, TextLexer, get_lexer_by_name
    from pygments.util import ClassNotFound

    try:
        lexer = PythonLexer() if language == "python" else get_lexer_by_name(language)
    except ClassNotFound:
        lexer = TextLexer()
    lines = str(code).splitlines()
    text = "\n".join(lines[:max_lines])
    if max_lines is not None and len(lines) > max_lines:
        text += f"\n# ... {len(lines) - max_lines} more lines"
    fmt = HtmlFormatter(noclasses=True, nowrap=False, style="default", prestyles="margin:0;font-size:12px")
    return highlight(text, lexer, fmt)
