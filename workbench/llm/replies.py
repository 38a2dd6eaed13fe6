"""Reading what a chat model answers, shared by every method that asks one (ChatDANCE's rewrites, OASIS's
docstrings and judge, the web-style queries of the baseline recipe): quotes around an answer, text
normalised for comparison, and whether an answer is code rather than prose. Pure functions."""

from __future__ import annotations

import ast
import re

__all__ = ["QUOTES", "TRIPLE_QUOTES", "strip_quotes", "norm_words", "looks_like_code"]

#: the quote pairs a chat model puts around a one-line answer (markdown emphasis included)
QUOTES = (('"', '"'), ("'", "'"), ("\u201c", "\u201d"), ("\u2018", "\u2019"), ("`", "`"), ("**", "**"), ("*", "*"))
#: the same with Python's triple quotes first (answers that are docstrings)
TRIPLE_QUOTES = (('"""', '"""'), ("'''", "'''"), ('"', '"'), ("'", "'"), ("\u201c", "\u201d"), ("`", "`"),
                 ("**", "**"), ("*", "*"))


def strip_quotes(s: str, quotes: tuple[tuple[str, str], ...] = QUOTES) -> str:
    """``s`` without surrounding quote pairs (any of ``quotes``, repeatedly, the first that fits)."""
    s = s.strip()
    changed = True
    while changed and len(s) >= 2:
        changed = False
        for a, b in quotes:
            if len(s) > len(a) + len(b) and s.startswith(a) and s.endswith(b):
                s, changed = s[len(a):-len(b)].strip(), True
                break
    return s


def norm_words(text: str) -> str:
    """Lower-cased words joined by single spaces: two answers that differ only in case, spacing or
    punctuation compare equal."""
    return " ".join(re.findall(r"\w+", str(text).lower()))


CODE_START = re.compile(r"^\s*(?:def|class|import|return|lambda|async\s+def|from\s+[\w.]+\s+import|>>>|@\w+)\b")
_CODE_NODES = (ast.Call, ast.Attribute, ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Subscript, ast.Lambda,
               ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom, ast.Return)


def looks_like_code(text: str) -> bool:
    """A fenced block, a line starting like a statement (``def``, ``import``, ``return`` ...), or
    text that parses as Python containing a call, attribute, assignment or subscript."""
    s = str(text).strip()
    if "```" in s or CODE_START.match(s):
        return True
    try:
        tree = ast.parse(s)
    except (SyntaxError, ValueError, RecursionError):
        return False
    return any(isinstance(node, _CODE_NODES) for node in ast.walk(tree))
