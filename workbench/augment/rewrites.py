"""Reading ChatDANCE's answers (papers/002; methods.md section 2): the rewrites extracted from an
answer (:func:`extract_queries`, :func:`extract_code_blocks`), each rejected by reason or accepted
(:func:`query_reject_reason`, :func:`check_code`), and the :class:`RewriteLog` that counts them.

Generated code is data: it is parsed with :mod:`ast` and tokenised, never executed.
"""

from __future__ import annotations

import ast
import re
import textwrap
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ..corpus.dedup import code_tokens
from ..corpus.mining import function_code
from ..llm.replies import looks_like_code, norm_words, strip_quotes
from .prompts import CodeExample, query_length_bounds, word_count

#: rejection reasons, in the order they are checked
QUERY_REASONS = ("empty", "not_a_query", "same_as_original", "too_short", "too_long", "duplicate")
CODE_REASONS = ("no_code_block", "syntax_error", "not_a_function", "copied_example", "same_as_original", "too_long",
                "duplicate")


# --------------------------------------------------------------------------------------------
# Extraction and validation (pure)

_NUMBERING = re.compile(r"^\s*(?:\(?\d{1,3}\s*[.):\]-]|\d{1,3}\s+-|[-*\u2022+>]|#{1,6})\s*")
_LABEL = re.compile(
    r"^\s*(?:(?:rewritten|reformulated|augmented|paraphrased|new|alternative)\s+)?(?:query|queries|rewrite)"
    r"\s*\d*\s*[:.)-]\s+", re.I)
_HEADER_WORDS = re.compile(
    r"\b(here|sure|certainly|rewritten|reformulated|rewrites?|quer(y|ies)|following|below|versions?|"
    r"paraphrases?|alternatives?|options?)\b", re.I)
_CHATTER = re.compile(r"^\s*(note\b|i hope\b|hope this\b|let me know\b|feel free\b|these (queries|rewrites)\b|"
                      r"i have\b|i've\b|explanation\b)", re.I)
_ECHO = re.compile(r"^[\s*#>\d.():-]*original\s+(query|queries|code)\b", re.I)


def clean_query_line(line: str) -> str:
    """One answer line without numbering, bullets, a ``Query 1:`` label or surrounding quotes."""
    s = line.strip()
    for _ in range(3):
        before = s
        s = strip_quotes(_LABEL.sub("", _NUMBERING.sub("", s, count=1), count=1))
        if s == before:
            break
    return s.strip()


def _is_header(line: str) -> bool:
    s = line.strip().rstrip("*").strip()
    return s.endswith(":") and bool(_HEADER_WORDS.search(s))


def extract_queries(text: str, single: bool = False) -> list[str]:
    """The rewritten queries in an LLM answer: one per line, numbering/bullets/quotes stripped,
    header lines (``Here are 3 rewritten queries:``), echoes of the input (``**Original Query**: ...``)
    and chatter (``Note: ...``) dropped.

    ``single=True`` (the single mode) returns only the first such line. A line that is a code
    fence is kept as a candidate (rejected later as ``not_a_query``)."""
    out: list[str] = []
    for raw in str(text).splitlines():
        if not raw.strip() or _is_header(raw) or _CHATTER.match(raw) or _ECHO.match(raw):
            continue
        s = clean_query_line(raw)
        if not s:
            continue
        out.append(s)
        if single:
            break
    return out


def query_reject_reason(
    candidate: str,
    original: str,
    accepted: Sequence[str] = (),
    alpha: float = 1.6,
    min_ratio: float = 0.5,
    min_words: int = 3,
    slack: int = 2,
    bounds: tuple[int, int] | None = None,
) -> str | None:
    """Why a rewritten query is rejected (one of :data:`QUERY_REASONS`), or None to accept it.

    ``accepted`` holds the rewrites of the same original accepted so far (duplicates compared
    case- and punctuation-insensitively). ``not_a_query`` applies only when the original does not
    itself look like code. Length bounds: :func:`query_length_bounds`, or ``bounds`` = (fewest,
    most) words whatever the original's length (web-style queries are shorter than docstrings).
    """
    norm = norm_words(candidate)
    if not norm:
        return "empty"
    if looks_like_code(candidate) and not looks_like_code(original):
        return "not_a_query"
    if norm == norm_words(original):
        return "same_as_original"
    low, high = bounds if bounds is not None else query_length_bounds(original, alpha, min_ratio, min_words, slack)
    n = word_count(candidate)
    if n < low:
        return "too_short"
    if n > high:
        return "too_long"
    if norm in {norm_words(a) for a in accepted}:
        return "duplicate"
    return None


_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+#.-]*)[^\n]*\n(.*?)(?:```|\Z)", re.S)
_BARE_START = re.compile(r"^(?:@\w|def\s|async\s+def\s|import\s|from\s+[\w.]+\s+import\s)", re.M)


def extract_code_blocks(text: str, single: bool = False) -> list[str]:
    """The code blocks of an LLM answer: fenced ```` ```python ... ``` ```` or ```` ``` ... ``` ```` blocks
    in order (the paper's regular-expression extraction; an unterminated last block, cut by
    ``max_tokens``, counts too). Without any fence, the text from the first line starting with
    ``def``/``import``/a decorator to the end is one block. ``single=True`` keeps the first block."""
    text = str(text)
    blocks = [m.group(2).rstrip() for m in _FENCE.finditer(text)]
    if not blocks:
        m = _BARE_START.search(text)
        if m:
            blocks = [text[m.start():].rstrip()]
    return blocks[:1] if single else blocks


@dataclass(frozen=True)
class CodeCheck:
    """The verdict on one code block: ``reason`` (None when accepted), the cleaned code (dedented,
    a docstring the rewrite added removed, as in the corpus) and its normalised ``ast.dump``."""

    reason: str | None
    code: str
    dump: str


def _top_defs(tree: ast.Module) -> list[ast.stmt]:
    return [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


def _shape(tree: ast.Module) -> list[str]:
    return [type(n).__name__ for n in tree.body]


def _strip_docstring(code: str, tree: ast.Module) -> str:
    """Remove the docstring of the single top-level function (the corpus's code has none); what
    comes before the ``def`` (imports, decorators) is kept."""
    defs = _top_defs(tree)
    if len(defs) != 1:
        return code
    node = defs[0]
    body = node.body  # type: ignore[attr-defined]
    if not (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)) or len(body) == 1:
        return code
    lines = code.split("\n")
    head = lines[: node.lineno - 1]
    return "\n".join([*head, function_code(lines, node)]).strip("\n")  # type: ignore[arg-type]


def normalized_dump(code: str) -> str | None:
    """``ast.dump`` of the dedented code (formatting and comments do not change it), None when it does not parse."""
    try:
        return ast.dump(ast.parse(textwrap.dedent(str(code)).strip("\n")))
    except (SyntaxError, ValueError):
        return None


def check_code(candidate: str, original: str, accepted_dumps: Sequence[str] = (), max_ratio: float = 3.0,
               example_names: Collection[str] = (), keep_imports: bool = False) -> CodeCheck:
    """Validate one rewritten code block against its original (reasons: :data:`CODE_REASONS`).

    ``syntax_error``: ``ast.parse`` fails after ``textwrap.dedent``. ``not_a_function``: the
    top level is not exactly one function (imports before it allowed) and not the original's
    shape. ``copied_example``: the function is named like one of the few-shot examples
    (``example_names``) and the original is not (Qwen 0.5B once wrote the original's body under
    the example's ``def is_expired(self, now=None)``). Unless ``keep_imports``, imports before the
    function are dropped (the corpus's code is the function alone; Qwen 0.5B added imports to 32
    of 57 accepted rewrites, often unused). ``same_as_original``: equal normalised ``ast.dump`` (formatting-only rewrites).
    ``too_long``: more than ``max_ratio`` times the original's tokens. ``duplicate``: the dump of
    an earlier accepted rewrite of the same original. The code is parsed, never run.
    """
    text = textwrap.dedent(str(candidate)).strip("\n")
    if not text.strip():
        return CodeCheck("no_code_block", text, "")
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return CodeCheck("syntax_error", text, "")
    defs = _top_defs(tree)
    others = [n for n in tree.body if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Import,
                                                         ast.ImportFrom))]
    try:
        orig_tree: ast.Module | None = ast.parse(textwrap.dedent(str(original)).strip("\n"))
    except (SyntaxError, ValueError):
        orig_tree = None
    single_function = len(defs) == 1 and not others
    if not single_function and (orig_tree is None or _shape(tree) != _shape(orig_tree)):
        return CodeCheck("not_a_function", text, "")
    orig_names = {n.name for n in _top_defs(orig_tree)} if orig_tree is not None else set()
    if any(d.name in set(example_names) - orig_names for d in defs):  # type: ignore[attr-defined]
        return CodeCheck("copied_example", text, "")
    if single_function and not keep_imports and len(tree.body) > 1:
        node = defs[0]
        start = min([node.lineno, *(d.lineno for d in node.decorator_list)])  # type: ignore[attr-defined]
        text = "\n".join(text.split("\n")[start - 1:])
        tree = ast.parse(text)
    text = _strip_docstring(text, tree)
    dump = normalized_dump(text) or ""
    orig_dump = ast.dump(orig_tree) if orig_tree is not None else None
    if dump == orig_dump:
        return CodeCheck("same_as_original", text, dump)
    if len(code_tokens(text)) > float(max_ratio) * max(1, len(code_tokens(str(original)))):
        return CodeCheck("too_long", text, dump)
    if dump in set(accepted_dumps):
        return CodeCheck("duplicate", text, dump)
    return CodeCheck(None, text, dump)


def example_function_names(examples: Sequence[CodeExample]) -> set[str]:
    """The function names defined by the few-shot examples and their rewrites."""
    names: set[str] = set()
    for ex in examples:
        for code in (ex.code, *ex.rewrites.values()):
            try:
                names |= {n.name for n in _top_defs(ast.parse(code))}  # type: ignore[attr-defined]
            except SyntaxError:
                continue
    return names


# --------------------------------------------------------------------------------------------
# The rewrite log


@dataclass
class RewriteLog:
    """Every extracted (or missing) rewrite and its verdict: one row per candidate with
    ``aug_kind``, ``aug_op``, ``aug_of``, ``request`` (rewrite index of the request), ``item``
    (position in the answer), ``text``, ``reason`` (None = accepted), ``id`` (accepted only) and
    ``raw`` (the whole LLM answer it came from).
    An answer with nothing extractable counts as one candidate rejected as ``empty`` (queries) or
    ``no_code_block`` (code). ``llm_stats`` holds the LLM's stats() change over the call."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    requests: int = 0
    llm_stats: dict[str, Any] = field(default_factory=dict)

    def add(self, aug_kind: str, aug_op: str, aug_of: str, request: int, item: int, text: str,
            reason: str | None, cand_id: str | None = None, raw: str = "") -> None:
        self.rows.append({"aug_kind": aug_kind, "aug_op": aug_op, "aug_of": aug_of, "request": request,
                          "item": item, "text": text, "reason": reason, "id": cand_id, "raw": raw})

    def to_frame(self) -> pd.DataFrame:
        cols = ["aug_kind", "aug_op", "aug_of", "request", "item", "text", "reason", "id", "raw"]
        return pd.DataFrame(self.rows, columns=cols)

    def counts(self) -> pd.DataFrame:
        """Per (aug_kind, aug_op): ``candidates``, ``accepted``, ``rejected``, ``acceptance`` and
        one column per rejection reason (zero-filled)."""
        return rejection_counts(self.to_frame())

    def rejected(self) -> dict[str, int]:
        """Rejections by reason over every technique."""
        f = self.to_frame()
        return {str(k): int(v) for k, v in f["reason"].dropna().value_counts().items()}

    def merge(self, other: RewriteLog) -> RewriteLog:
        stats = {k: self.llm_stats.get(k, 0) + other.llm_stats.get(k, 0)
                 for k in set(self.llm_stats) | set(other.llm_stats)
                 if isinstance(self.llm_stats.get(k, 0), (int, float))
                 and isinstance(other.llm_stats.get(k, 0), (int, float))}
        return RewriteLog([*self.rows, *other.rows], self.requests + other.requests, stats)


def rejection_counts(log_frame: pd.DataFrame) -> pd.DataFrame:
    """The counts table of a log frame (:meth:`RewriteLog.counts`)."""
    reasons = list(dict.fromkeys([*QUERY_REASONS, *CODE_REASONS]))
    rows = []
    for (kind, op), g in log_frame.groupby(["aug_kind", "aug_op"], sort=True):
        r = {"aug_kind": kind, "aug_op": op, "candidates": len(g), "accepted": int(g["reason"].isna().sum())}
        r["rejected"] = r["candidates"] - r["accepted"]
        r["acceptance"] = r["accepted"] / r["candidates"] if r["candidates"] else float("nan")
        vc = g["reason"].value_counts()
        for reason in reasons:
            r[reason] = int(vc.get(reason, 0))
        rows.append(r)
    cols = ["aug_kind", "aug_op", "candidates", "accepted", "rejected", "acceptance", *reasons]
    return pd.DataFrame(rows, columns=cols)


