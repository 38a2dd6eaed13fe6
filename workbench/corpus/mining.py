"""CodeSearchNet-style (query, code) pairs from Python source text, with the stdlib ``ast`` only.

query = the first paragraph of the docstring, whitespace-normalised; code = the function source
(from ``def``, decorators left out) with the docstring statement removed, comments and formatting
kept. The filters are those measured in ``shared/docs/offline.md`` ("Real code corpora that can be
mined offline"); each is a small pure function so it can be tested alone. Mined code is parsed,
never imported or executed. Bad input (undecodable, binary, huge, unparsable, too deeply nested)
is skipped and counted by reason, never raised.
"""

from __future__ import annotations

import ast
import re
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath

MINER_VERSION = "2"  # 2: a file with a syntax error keeps its functions that parse
"""Bump when a filter or the extraction changes: it is part of every corpus cache key."""

MAX_FILE_BYTES = 2 * 1024 * 1024
MIN_QUERY_WORDS = 3
MIN_CODE_LINES = 3

TEST_DIRS = frozenset({"test", "tests", "testing", "_testing", "benchmarks", "benchmark", "asv_bench"})
SKIP_FILES = frozenset({"conftest.py", "setup.py"})
VENDORED_DIRS = frozenset(
    {"_vendor", "_vendored", "vendor", "vendored", "externals", "third_party", "_distutils",
     "array_api_compat", "array_api_extra"}
)
STDLIB_SKIP_DIRS = frozenset(
    {"site-packages", "dist-packages", "idlelib", "lib2to3", "turtledemo", "ensurepip", "__pycache__"}
)


@dataclass(frozen=True)
class MinedFunction:
    """One kept function: ``lineno`` is the line of its ``def`` (1-based) in the file."""

    func_name: str
    lineno: int
    query: str
    code: str


# ---------------------------------------------------------------- paths


def skip_path_reason(path: str, stdlib: bool = False) -> str | None:
    """Why a file is not mined (``"path:..."``), or None to mine it.

    Skips non-``.py`` files, test/benchmark folders, ``conftest.py``/``setup.py``/``test_*.py``,
    vendored copies, and for the standard library ``site-packages``, ``idlelib``, ``lib2to3``,
    ``turtledemo`` and ``ensurepip``.
    """
    parts = PurePosixPath(path.replace("\\", "/")).parts
    if not parts:
        return "path:empty"
    dirs, name = parts[:-1], parts[-1]
    if not name.endswith(".py"):
        return "path:not_python"
    if ".." in parts or any(d.startswith(".") for d in dirs):
        return "path:outside"
    if stdlib and any(d in STDLIB_SKIP_DIRS for d in dirs):
        return "path:stdlib_excluded"
    if any(d in VENDORED_DIRS for d in dirs):
        return "path:vendored"
    if any(d in TEST_DIRS for d in dirs) or name.startswith("test_") or name.endswith("_test.py"):
        return "path:tests"
    if name in SKIP_FILES:
        return "path:setup_or_conftest"
    return None


# ---------------------------------------------------------------- decoding and parsing


def decode_source(data: str | bytes, max_bytes: int = MAX_FILE_BYTES) -> tuple[str | None, str | None]:
    """``(text, None)`` for usable source, or ``(None, reason)``: too large, binary (NUL bytes), not UTF-8.

    Newlines are normalised to ``\\n`` so ``ast`` line numbers index ``text.split("\\n")``.
    """
    if isinstance(data, str):
        if len(data) > max_bytes and len(data.encode("utf-8", "surrogatepass")) > max_bytes:
            return None, "file:too_large"
        text = data
    else:
        if len(data) > max_bytes:
            return None, "file:too_large"
        if b"\x00" in data:
            return None, "file:binary"
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return None, "file:not_utf8"
    if "\x00" in text:
        return None, "file:binary"
    text = text.removeprefix("\ufeff")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text, None


def parse_source(text: str, path: str = "<string>") -> tuple[ast.Module | None, str | None]:
    """``(tree, None)`` or ``(None, reason)``; RecursionError/MemoryError from deep nesting are caught."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ast.parse(text, filename=path), None
    except (SyntaxError, ValueError):
        return None, "file:syntax_error"
    except RecursionError:
        return None, "file:too_deep"
    except MemoryError:
        return None, "file:memory_error"


# ---------------------------------------------------------------- names


def _name_words(name: str) -> list[str]:
    words: list[str] = []
    for part in re.split(r"[_.\W]+", name):
        words += re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+", part)
    return [w.lower() for w in words]


def is_test_name(qualname: str) -> bool:
    """True when a word of the qualified name starts with "test" (``test_x``, ``TestCase.run``, ``runTests``).

    CodeSearchNet dropped any name containing the substring "test"; splitting on ``_``, ``.`` and
    camelCase first keeps names such as ``get_latest`` or ``greatest_divisor``.
    """
    return any(w.startswith("test") for w in _name_words(qualname))


def is_dunder(name: str) -> bool:
    """True for ``__name__`` methods, ``__init__`` included (CodeSearchNet dropped them)."""
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


# ---------------------------------------------------------------- queries


def first_paragraph(docstring: str) -> str:
    """The docstring's first paragraph (up to the first blank line), whitespace-normalised."""
    head = re.split(r"\n[ \t]*\n", docstring.strip(), maxsplit=1)[0]
    return " ".join(head.split())


def query_too_short(query: str, min_words: int = MIN_QUERY_WORDS) -> bool:
    return len(query.split()) < min_words


_BOILERPLATE = [
    re.compile(r"^[A-Za-z_][\w.]*\(.*?\)\s*(->|-->|→|=>)"),  # D.get(k[,d]) -> D[k] if k in D ...
    re.compile(r"^[A-Za-z_][\w.]*\([^()]*\)\s*\.?$"),  # a bare signature: foo(a, b=1)
    re.compile(r"^\.\."),  # .. deprecated:: / .. versionadded::
    re.compile(r"^:[\w-]+(\s+[\w-]+)*:"),  # :meta private: / :param x: / :func:`...`
    re.compile(r"^(deprecated|see)\b", re.IGNORECASE),
    re.compile(r"^(an?\s+)?alias\b", re.IGNORECASE),
    re.compile(r"^same\s+as\b", re.IGNORECASE),
]


def is_boilerplate_query(query: str) -> bool:
    """Signature-like or boiler-plate first paragraphs: ``D.get(k[,d]) -> ...``, ``.. directive``,
    ``:role:`` at the start, "Deprecated...", "See ...", "Alias ...", "Same as ..."."""
    q = query.strip()
    return any(p.search(q) for p in _BOILERPLATE)


def normalize_query(query: str) -> str:
    """The key that matches queries across splits: lower case, quotes and backticks removed,
    whitespace collapsed, trailing ``.:;,`` dropped (operators kept: "a < b" is not "a > b")."""
    q = re.sub(r"[`'\"]", "", query.lower())
    return " ".join(q.split()).rstrip(" .:;,")


# ---------------------------------------------------------------- bodies


def _is_trivial_stmt(stmt: ast.stmt) -> bool:
    if isinstance(stmt, ast.Pass):
        return True
    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
        return stmt.value.value is Ellipsis or isinstance(stmt.value.value, str)
    if isinstance(stmt, ast.Return):
        return stmt.value is None or (isinstance(stmt.value, ast.Constant) and stmt.value.value is None)
    if isinstance(stmt, ast.Raise) and stmt.exc is not None:
        exc = stmt.exc.func if isinstance(stmt.exc, ast.Call) else stmt.exc
        return isinstance(exc, ast.Name) and exc.id in ("NotImplementedError", "NotImplemented")
    return False


def is_trivial_body(body: list[ast.stmt]) -> bool:
    """True when the statements after the docstring are empty or only ``pass``, ``...``,
    ``raise NotImplementedError[(...)]``, ``return`` / ``return None``."""
    return all(_is_trivial_stmt(s) for s in body)


def count_code_lines(code: str) -> int:
    """Lines that are neither blank nor comment-only."""
    return sum(1 for ln in code.split("\n") if ln.strip() and not ln.lstrip().startswith("#"))


def code_too_short(code: str, min_lines: int = MIN_CODE_LINES) -> bool:
    """True when the function, docstring removed and signature included, has under ``min_lines``
    non-blank, non-comment lines (CodeSearchNet: "functions shorter than three lines")."""
    return count_code_lines(code) < min_lines


# ---------------------------------------------------------------- extraction


def _char_col(line: str, byte_col: int) -> int:
    """``ast`` columns are UTF-8 byte offsets; convert to a character index in ``line``."""
    if line.isascii():
        return byte_col
    return len(line.encode("utf-8")[:byte_col].decode("utf-8", "ignore"))


def _is_docstring_stmt(stmt: ast.stmt) -> bool:
    return (
        isinstance(stmt, ast.Expr)
        and isinstance(stmt.value, ast.Constant)
        and isinstance(stmt.value.value, str)
    )


def function_code(lines: list[str], node: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    """The function's source from ``def`` (decorators excluded) to its end, the docstring statement
    removed (with the blank lines right after it), dedented by the ``def``'s column.

    ``lines`` is the file split on ``"\\n"`` (as :func:`decode_source` returns it). Comments and
    formatting are kept, a trailing comment on the last line included.
    """
    first, last = node.lineno - 1, node.end_lineno - 1  # type: ignore[operator]
    seg = list(lines[first : last + 1])
    # the end: keep a trailing comment, drop a statement that follows on the same line after ``;``
    end_col = _char_col(lines[last], node.end_col_offset)  # type: ignore[arg-type]
    rest = seg[-1][end_col:]
    if rest.strip() and not rest.lstrip().startswith("#"):
        seg[-1] = seg[-1][:end_col]
    seg[-1] = seg[-1].rstrip()

    if node.body and _is_docstring_stmt(node.body[0]):
        doc = node.body[0]
        d0, d1 = doc.lineno - 1 - first, doc.end_lineno - 1 - first  # type: ignore[operator]
        c0 = _char_col(lines[doc.lineno - 1], doc.col_offset)
        c1 = _char_col(lines[doc.end_lineno - 1], doc.end_col_offset)  # type: ignore[arg-type, operator]
        before, after = seg[d0][:c0], seg[d1][c1:]
        if not before.strip() and (not after.strip() or after.lstrip().startswith("#")):
            # the docstring has lines of its own: drop them and the blank lines right after
            stop = d1 + 1
            while stop < len(seg) and not seg[stop].strip():
                stop += 1
            seg = seg[:d0] + seg[stop:]
        else:
            # it shares a line (``def f(): "doc"; return 1``): cut the literal and its ``;``
            joined = (before + re.sub(r"^\s*;\s*", "", after)).rstrip()
            seg = seg[:d0] + ([joined] if joined.strip() else []) + seg[d1 + 1 :]

    indent = node.col_offset  # the indentation before ``def`` is ASCII: bytes == characters
    out = []
    for ln in seg:
        head = ln[:indent]
        out.append(ln[indent:] if not head.strip() else ln[len(head) - len(head.lstrip()) :])
    while out and not out[-1].strip():
        out.pop()
    return "\n".join(out)


FUNCTION_REASONS = (
    "func:nested",
    "func:dunder",
    "func:test_name",
    "func:no_docstring",
    "func:short_query",
    "func:boilerplate_query",
    "func:trivial_body",
    "func:short_code",
)
#: counted, not filters: extraction of one function failed (the file's other functions are kept)
EXTRACTION_FAILURES = ("func:too_deep", "func:memory_error", "func:extract_error")

_TOP_LEVEL_BLOCK = re.compile(r"^(?:@|def\s|async\s+def\s|class\s)")


def top_level_blocks(text: str) -> list[tuple[int, int]]:
    """``(first, stop)`` line ranges (0-based, stop exclusive) of the file's top-level ``def``,
    ``async def`` and ``class`` statements, decorators included: each runs to the next one."""
    lines = text.split("\n")
    starts: list[int] = []
    decorating = False  # the open block so far holds only decorators: its def or class belongs to it
    for i, line in enumerate(lines):
        if not _TOP_LEVEL_BLOCK.match(line):
            continue
        if not decorating:
            starts.append(i)
        decorating = line.startswith("@")
    return list(zip(starts, [*starts[1:], len(lines)], strict=False))


def parse_blocks(text: str, path: str = "<string>") -> tuple[list[ast.Module], int]:
    """The top-level blocks of a file that does not parse as a whole, each parsed alone at its own
    line numbers: ``(trees of the blocks that parse, number that do not)``. One broken function
    (Python 2 syntax, a merge conflict, a typo) then costs that block, not the whole file."""
    lines = text.split("\n")
    trees, failed = [], 0
    for a, b in top_level_blocks(text):
        tree, _ = parse_source("\n" * a + "\n".join(lines[a:b]), path)
        if tree is None:
            failed += 1
        else:
            trees.append(tree)
    return trees, failed


def with_docstring(code: str, docstring: str) -> str:
    """``code`` (a function as :func:`function_code` returns it: docstring removed, starting at its
    ``def``) with ``docstring`` put back as its first statement, on one line at the body's
    indentation: the format of CoSQA's code, which keeps each function's docstring.

    Raises ``ValueError`` when ``code`` does not parse as a function or its body starts on the
    ``def`` line (there is no line to put the docstring on).
    """
    try:
        tree = ast.parse(code)
    except SyntaxError as e:
        raise ValueError(f"the code does not parse: {e.msg} (line {e.lineno})") from None
    node = tree.body[0] if tree.body else None
    if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        raise ValueError("the code does not start with a function definition")
    first = node.body[0]
    if first.lineno == node.lineno:
        raise ValueError("the body starts on the def line")
    lines = code.split("\n")
    body_line = lines[first.lineno - 1]
    indent = body_line[: len(body_line) - len(body_line.lstrip())]
    at = first.lineno - 1  # before the comments that open the body, as a docstring is written
    while at - 1 >= node.lineno and lines[at - 1].lstrip().startswith("#"):
        at -= 1
    text = " ".join(docstring.split()).replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    if text.endswith('"'):
        text = text[:-1] + '\\"'
    return "\n".join(lines[:at] + [f'{indent}"""{text}"""'] + lines[at:])


def function_reject_reason(
    lines: list[str], node: ast.FunctionDef | ast.AsyncFunctionDef, qualname: str, nested: bool
) -> tuple[str | None, str, str]:
    """``(reason, query, code)``: the first filter (in :data:`FUNCTION_REASONS` order) that drops the
    function, or ``(None, query, code)`` when it is kept."""
    if nested:
        return "func:nested", "", ""
    if is_dunder(node.name):
        return "func:dunder", "", ""
    if is_test_name(qualname):
        return "func:test_name", "", ""
    doc = ast.get_docstring(node, clean=True)
    if not doc or not doc.strip():
        return "func:no_docstring", "", ""
    query = first_paragraph(doc)
    if query_too_short(query):
        return "func:short_query", query, ""
    if is_boilerplate_query(query):
        return "func:boilerplate_query", query, ""
    if is_trivial_body(node.body[1:]):
        return "func:trivial_body", query, ""
    code = function_code(lines, node)
    if code_too_short(code):
        return "func:short_code", query, code
    return None, query, code


def iter_functions(tree: ast.Module) -> Iterator[tuple[ast.FunctionDef | ast.AsyncFunctionDef, str, bool]]:
    """Yield ``(node, qualname, nested)`` for every function in the module, in source order.

    Only statements are visited (never expressions), iteratively, so deep expressions cannot
    overflow the stack here. ``nested`` is True inside another function (also for methods of a
    class defined in a function).
    """
    stack: list[tuple[ast.AST, str, bool]] = [(tree, "", False)]
    found: list[tuple[ast.FunctionDef | ast.AsyncFunctionDef, str, bool]] = []
    while stack:
        node, prefix, in_func = stack.pop()
        children = [
            c for c in ast.iter_child_nodes(node)
            if isinstance(c, (ast.stmt, ast.excepthandler, ast.match_case))
        ]
        for child in reversed(children):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                qual = f"{prefix}{child.name}"
                found.append((child, qual, in_func))
                stack.append((child, f"{qual}.<locals>.", True))
            elif isinstance(child, ast.ClassDef):
                stack.append((child, f"{prefix}{child.name}.", in_func))
            else:
                stack.append((child, prefix, in_func))
    found.sort(key=lambda t: (t[0].lineno, t[0].col_offset))
    yield from found


@dataclass(frozen=True)
class FunctionVerdict:
    """Why a function was kept (``reason`` None) or dropped (``reason`` = a ``func:`` key)."""

    func_name: str
    lineno: int
    reason: str | None
    query: str
    code: str


def explain_source(
    source: str | bytes, path: str = "<string>", *, max_bytes: int = MAX_FILE_BYTES
) -> tuple[list[FunctionVerdict], Counter]:
    """Every function of a file with its verdict, and the outcome Counter of :func:`mine_source`."""
    stats: Counter = Counter()
    text, reason = decode_source(source, max_bytes=max_bytes)
    if text is None:
        stats[reason] += 1  # type: ignore[index]
        return [], stats
    tree, reason = parse_source(text, path)
    trees = [tree] if tree is not None else []
    if tree is None and reason == "file:syntax_error":
        trees, failed = parse_blocks(text, path)
        if trees:  # some top-level blocks parse alone: keep their functions, count the others
            reason = "file:partial"
            stats["block:syntax_error"] += failed
    if not trees:
        stats[reason] += 1  # type: ignore[index]
        return [], stats
    lines = text.split("\n")
    verdicts: list[FunctionVerdict] = []
    for one in trees:
        for node, qual, nested in iter_functions(one):
            try:
                why, query, code = function_reject_reason(lines, node, qual, nested)
            except RecursionError:
                why, query, code = "func:too_deep", "", ""
            except MemoryError:
                why, query, code = "func:memory_error", "", ""
            except Exception:  # noqa: BLE001 - untrusted input: one function's failure never costs the file
                why, query, code = "func:extract_error", "", ""
            verdicts.append(FunctionVerdict(qual, node.lineno, why, query, code))
    stats["file:ok" if tree is not None else "file:partial"] += 1
    stats["func:seen"] += len(verdicts)
    stats.update(v.reason or "func:kept" for v in verdicts)
    return verdicts, stats


def mine_source(
    source: str | bytes, path: str = "<string>", *, max_bytes: int = MAX_FILE_BYTES
) -> tuple[list[MinedFunction], Counter]:
    """Mine one file. Returns the kept functions and a Counter of outcomes.

    Counter keys: ``file:ok`` or one ``file:<reason>`` (``too_large``, ``binary``, ``not_utf8``,
    ``syntax_error``, ``too_deep``, ``memory_error``), or ``file:partial`` for a file that does not
    parse as a whole but some of whose top-level blocks do (:func:`parse_blocks`; the others are
    counted under ``block:syntax_error``); ``func:seen``, ``func:kept`` and one ``func:<reason>`` per
    dropped function (see :data:`FUNCTION_REASONS`, and :data:`EXTRACTION_FAILURES` for a function
    whose extraction failed). Never raises on bad input.
    """
    verdicts, stats = explain_source(source, path, max_bytes=max_bytes)
    kept = [MinedFunction(v.func_name, v.lineno, v.query, v.code) for v in verdicts if v.reason is None]
    return kept, stats
