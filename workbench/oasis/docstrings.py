"""OASIS step 1: LLM docstrings written from the code plus its callers and callees
(``shared/papers/001`` section 3.1; ``docs/methods.md`` section 3, step 1).

The paper starts with "program analysis at the repository level, where information about the
function's callers and callees is extracted", and puts that into the prompt with the code. Here:

- :func:`workbench.oasis.callgraph.call_graph` parses every ``.py`` file of a package with
  :mod:`ast` (never importing or running it) and links each function to the package functions it
  calls (how a call is resolved: that module's docstring);
- :func:`function_context` picks a few callers and callees of one mined function as short snippets
  (signature and first lines, their docstrings included);
- :func:`docstring_requests` / :func:`parse_docstring` are the chat prompt (a system prompt, one
  worked example turn, greedy decoding, 64 tokens) and the validation of its one-sentence answer,
  which also rejects a sentence copied from a caller's or callee's snippet (small models do that);
- :func:`llm_docstrings` does all of it for chosen pairs of a mined corpus (one graph per package).

Generated text is data: a reply is parsed as text (and with :mod:`ast`), never executed.
"""

from __future__ import annotations

import ast
import os
import re
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from ..errors import ParameterError, WorkbenchError
from ..llm.backends import Message, Sampling
from ..llm.replies import CODE_START, TRIPLE_QUOTES, looks_like_code, norm_words, strip_quotes
from .callgraph import CallGraph, FuncKey, source_call_graph

__all__ = [
    "DOCSTRING_REASONS",
    "DOCSTRING_SAMPLING",
    "docstring_reject_reason",
    "docstring_requests",
    "function_context",
    "llm_docstrings",
    "parse_docstring",
]


DOCSTRING_SAMPLING = Sampling(temperature=0.0, top_p=1.0, max_tokens=64, seed=0)
DOCSTRING_MAX_CODE_CHARS = 1600
MIN_WORDS, MAX_WORDS = 3, 40
DOCSTRING_REASONS = ("empty", "code", "refusal", "too_short", "too_long", "copied_example", "copied_context")
"""Why :func:`docstring_reject_reason` rejects a reply, in the order checked."""

_NOT_VERBS = frozenset({"is", "was", "has", "does", "takes", "uses", "this", "its", "as", "us"})


# ------------------------------------------------------------------------------ context and prompt
def _snippet(text: str, max_chars: int) -> str:
    """``text`` cut at a line end to at most ``max_chars`` characters, with a ``...`` line when cut."""
    if len(text) <= max_chars:
        return text
    marker = "\n    ..."
    if max_chars <= len(marker) + 10:
        return text[:max_chars]
    head = text[: max_chars - len(marker)]
    if "\n" in head:
        head = head.rsplit("\n", 1)[0]
    return head.rstrip() + marker


def _entry(graph: CallGraph, key: FuncKey, max_chars: int) -> dict[str, str]:
    info = graph.functions[key]
    return {"path": info.path, "func_name": info.qualname, "snippet": _snippet(info.source, max_chars)}


def function_context(graph: CallGraph | None, path: str, func_name: str, max_callers: int = 3,
                     max_callees: int = 3, max_chars: int = 300) -> dict[str, Any]:
    """Callers and callees of ``(path, func_name)`` as snippets (signature and first lines, at most
    ``max_chars`` each): callers same file first then by path and line, callees in call order.
    A function not in the graph (or no graph) gets empty lists and ``found=False``."""
    key = (path, func_name)
    found = graph is not None and key in graph
    callers = graph.callers(key) if found else []  # type: ignore[union-attr]
    callees = graph.callees(key) if found else []  # type: ignore[union-attr]
    return {
        "path": path, "func_name": func_name, "found": bool(found),
        "n_callers": len(callers), "n_callees": len(callees),
        "callers": [_entry(graph, k, max_chars) for k in callers[: max(0, max_callers)]],  # type: ignore[arg-type]
        "callees": [_entry(graph, k, max_chars) for k in callees[: max(0, max_callees)]],  # type: ignore[arg-type]
    }


DOCSTRING_SYSTEM = (
    "You write docstrings for Python functions. You are given a function and, as context, some functions "
    "of the same package that call it and that it calls. Reply with one sentence that says what the "
    "function does, the way a developer would describe it when searching for such code. "
    "Reply with the sentence only: no code, no quotes, no preamble."
)


def _clip(code: str, limit: int) -> str:
    if len(code) <= limit:
        return code
    return code[:limit].rsplit("\n", 1)[0] + "\n    # ... (truncated)"


_DEF_NAME = re.compile(r"^\s*(?:async\s+)?def\s+(\w+)", re.M)


def _simple_name(code: str, context: Mapping[str, Any] | None) -> str:
    if context and context.get("func_name"):
        return str(context["func_name"]).rsplit(".", 1)[-1]
    m = _DEF_NAME.search(code)
    return m.group(1) if m else "the function"


def _user_prompt(name: str, code: str, ctx: Mapping[str, Any] | None) -> str:
    parts = [f"Function `{name}`:\n```python\n{code}\n```"]
    for field_, title in (("callers", f"Functions that call `{name}`"), ("callees", f"Functions `{name}` calls")):
        items = list((ctx or {}).get(field_) or [])
        if items:
            body = "\n\n".join(str(it["snippet"]) for it in items)
            parts.append(f"{title}:\n```python\n{body}\n```")
    parts.append(f"Write a one-sentence docstring for `{name}`: what it does, in plain English, without code.")
    return "\n\n".join(parts)


_EXAMPLE_CODE = '''def read_settings(path, defaults=None):
    settings = dict(defaults or {})
    with open(path) as f:
        for line in f:
            if "=" in line and not line.lstrip().startswith("#"):
                key, value = line.split("=", 1)
                settings[key.strip()] = value.strip()
    return settings'''
_EXAMPLE_CONTEXT = {"callers": [{"snippet": "def load_app(root):\n    return App(read_settings(root / 'app.cfg', DEFAULTS))"}],
                    "callees": []}
_EXAMPLE_ANSWER = "Read key=value settings from a config file into a dict, on top of optional defaults."
_EXAMPLE_TURNS: list[Message] = [
    {"role": "user", "content": _user_prompt("read_settings", _EXAMPLE_CODE, _EXAMPLE_CONTEXT)},
    {"role": "assistant", "content": _EXAMPLE_ANSWER},
]
"""One worked example (a made-up function): small local models copy its plain one-sentence form."""


def docstring_requests(codes: Sequence[str], contexts: Sequence[Mapping[str, Any] | None],
                       max_code_chars: int = DOCSTRING_MAX_CODE_CHARS) -> list[tuple[list[Message], Sampling]]:
    """One chat request per function: a system prompt, one worked example turn, then the code (cut at a
    line end past ``max_code_chars``) and the caller / callee snippets of its context
    (:func:`function_context`; ``None`` or empty lists leave that part out), asking for a one-sentence
    docstring. Greedy decoding, :data:`DOCSTRING_SAMPLING`."""
    if len(codes) != len(contexts):
        raise ParameterError(f"docstring_requests: {len(codes)} codes but {len(contexts)} contexts")
    return [([{"role": "system", "content": DOCSTRING_SYSTEM}, *_EXAMPLE_TURNS,
              {"role": "user", "content": _user_prompt(_simple_name(code, ctx), _clip(str(code), max_code_chars), ctx)}],
             DOCSTRING_SAMPLING) for code, ctx in zip(codes, contexts)]


# ------------------------------------------------------------------------------ parsing replies
_FENCE = re.compile(r"```[^\n]*\n?(.*?)(?:```|\Z)", re.S)
_LABEL = re.compile(
    r"^\s*(?:[*_#>]+\s*)?(?:(?:one[- ]sentence\s+)?docstring|description|summary|answer|sentence|purpose|"
    r"explanation|output)\s*(?:[*_]+\s*)?[:\-\u2013\u2014]\s*(?:[*_]+\s*)?",
    re.I,
)
_REFUSAL = re.compile(r"^(?:i\s*(?:'m|am|cannot|can't|can not|do not|don't)\b|sorry\b|as an ai\b|unfortunately\b)", re.I)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z`\"'(\[*])")
_TRIPLE = re.compile(r"(?:\"\"\"|''')(.*?)(?:\"\"\"|'''|\Z)", re.S)


def _docstring_in_code(code: str) -> str | None:
    """The docstring of the first function / class (or of the module) in ``code``; for code that does
    not parse (a reply cut by ``max_tokens``), its first triple-quoted text."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError):
        m = _TRIPLE.search(code)
        return m.group(1) if m and m.group(1).strip() else None
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            doc = ast.get_docstring(node)
            if doc and doc.strip():
                return doc
    return None


def _is_header(line: str) -> bool:
    line = line.strip()
    return line.endswith(":") and len(line.split()) <= 12


def docstring_reject_reason(reply: str, func_name: str = "", context: Sequence[str] = ()) -> tuple[str, str | None]:
    """``(sentence, None)`` for a usable reply, else ``(cleaned text, reason)`` with the reason one of
    :data:`DOCSTRING_REASONS`.

    Cleaning: a fenced or bare function with a docstring gives that docstring (the first
    triple-quoted text when the code is cut off); other fences are dropped; a leading
    ``Docstring:`` / ``Description:`` label, header lines ending in ``:``, a ``func_name:`` prefix,
    triple quotes and surrounding quotes go; "The function `f` returns ..." becomes "Returns ...";
    the first paragraph's first sentence is kept. Rejected: empty, code-like, a refusal, under 3 or
    over 40 words, ``copied_example`` (the answer of the prompt's worked example, which a small model
    sometimes repeats), or ``copied_context``: the sentence occurs in one of the ``context`` texts (the
    caller / callee snippets of the prompt: a small model copies a callee's docstring).
    """
    text = str(reply or "").strip()
    fenced = _FENCE.findall(text)
    if fenced:  # prose around the code wins; else the docstring the model wrote into its code
        prose = [ln for ln in _FENCE.sub("\n\n", text).split("\n") if ln.strip() and not _is_header(ln)]
        inner = None if prose else next((d for d in map(_docstring_in_code, fenced) if d), None)
        text = inner if inner else "\n".join(prose).strip()
        if not text:
            return "", "code"
    elif CODE_START.match(text):
        inner = _docstring_in_code(text)
        if inner:
            text = inner
    text = text.replace('"""', "\n").replace("'''", "\n")
    lines = [ln.strip() for ln in text.split("\n")]
    while lines and (not lines[0] or _is_header(lines[0])):
        lines.pop(0)  # blank lines and headers such as "Here is the docstring:"
    para: list[str] = []
    for ln in lines:
        if not ln:
            break
        para.append(ln)
    s = " ".join(" ".join(para).split())
    name = re.escape(str(func_name).rsplit(".", 1)[-1]) if func_name else r"\w+"
    for _ in range(3):
        before = s
        s = _LABEL.sub("", s, count=1)
        s = re.sub(rf"^[`*]*{name}(?:\(\))?[`*]*\s*[:\-\u2013\u2014]\s+", "", s, count=1)
        s = strip_quotes(s, TRIPLE_QUOTES)
        if s == before:
            break
    subject = rf"^(?:the|this)\s+(?:function|method)(?:\s+[`*]*{name}(?:\(\))?[`*]*)?\s+"
    lead = re.match(subject + r"(?:is\s+(?:used|designed|meant|intended)\s+to|can\s+be\s+used\s+to|will|helps(?:\s+to)?)"
                    r"\s+([a-z]+)\b", s, re.I) or re.match(subject + r"([a-z]+s)\b", s, re.I)
    if lead and lead.group(1).lower() not in _NOT_VERBS:  # "This function returns x" -> "Returns x"
        s = lead.group(1).capitalize() + s[lead.end():]
    s = _SENTENCE_END.split(s, maxsplit=1)[0].strip() if s else s
    s = strip_quotes(s, TRIPLE_QUOTES)
    if not re.search(r"\w", s):
        return s, "empty"
    if looks_like_code(s) or re.search(r"\bdef\s+\w+\s*\(", s):
        return s, "code"
    if _REFUSAL.match(s):
        return s, "refusal"
    n = len(s.split())
    if n < MIN_WORDS:
        return s, "too_short"
    if n > MAX_WORDS:
        return s, "too_long"
    norm = norm_words(s)
    if norm == norm_words(_EXAMPLE_ANSWER):  # the worked example's answer, parroted
        return s, "copied_example"
    if any(norm in norm_words(c) for c in context):
        return s, "copied_context"
    return s, None


def parse_docstring(reply: str, func_name: str = "", context: Sequence[str] = ()) -> str | None:
    """The one-sentence docstring in an LLM reply, or None when it is empty, code, a refusal, under 3 /
    over 40 words, or copied from a ``context`` text (:func:`docstring_reject_reason`)."""
    s, reason = docstring_reject_reason(reply, func_name, context)
    return s if reason is None else None


# ------------------------------------------------------------------------------ the whole step
_NEEDED = ("id", "code", "source", "version", "path", "func_name")


def _label(entry: Mapping[str, Any]) -> str:
    return f"{entry['path']}::{entry['func_name']}"


def llm_docstrings(pairs: pd.DataFrame, llm: Any, ids: Iterable[str], data_dir: str | os.PathLike | None = None,
                   show_progress: bool = True, *, max_callers: int = 3, max_callees: int = 3,
                   max_chars: int = 300, max_code_chars: int = DOCSTRING_MAX_CODE_CHARS,
                   concurrency: int = 1) -> pd.DataFrame:
    """LLM docstrings for the pairs whose id is in ``ids`` (OASIS step 1, papers/001).

    Pairs are grouped by ``(source, version)``; each package is opened once
    (:func:`workbench.corpus.sources.open_source`) and its :func:`call_graph` built; each function gets
    :func:`function_context` (empty when it is not in the graph, or its package cannot be opened) and
    one :func:`docstring_requests` request, sent with ``llm.chat_many`` (a
    :class:`workbench.llm.CachedLLM`: a re-run asks nothing again) and parsed by
    :func:`docstring_reject_reason`.

    Returns one row per id, in the order of ``ids``: ``id``, ``query_llm`` (the docstring, missing (NA) when
    invalid), ``callers`` / ``callees`` (``"path::func_name"`` of those put in the prompt), ``reply``,
    ``valid``. ``df.attrs``: ``pairs``, ``functions_found``, ``with_callers``, ``with_callees``,
    ``unparsable_files``, ``graph_functions``, ``graph_edges``, ``seconds_graph``, ``seconds_llm``,
    ``valid``, ``rejected`` (by reason), ``sources`` (per package: files, functions, edges, seconds
    or the error), ``llm`` (the cache's request / hit / miss counts of this call).
    """
    missing = [c for c in _NEEDED if c not in pairs.columns]
    if missing:
        raise ParameterError(f"llm_docstrings: pairs lack column(s) {missing}")
    wanted = list(dict.fromkeys(str(i) for i in ids))
    by_id = pairs.drop_duplicates("id").set_index("id")
    unknown = [i for i in wanted if i not in by_id.index]
    if unknown:
        raise ParameterError(f"llm_docstrings: {len(unknown)} id(s) not in pairs, e.g. {unknown[:3]}")
    sel = by_id.loc[wanted].reset_index()

    t0 = time.perf_counter()
    contexts = [function_context(None, str(p), str(f)) for p, f in zip(sel["path"], sel["func_name"])]
    sources: dict[str, Any] = {}
    for (source, version), group in sel.groupby(["source", "version"], sort=True):
        spec = f"{source}=={version}" if source != "stdlib" else "stdlib"
        try:
            graph: CallGraph | None = source_call_graph(str(source), str(version), data_dir=data_dir)
            sources[spec] = {k: graph.stats[k] for k in ("files", "unparsable_files", "functions", "edges", "seconds")}  # type: ignore[union-attr]
        except WorkbenchError as exc:
            graph, sources[spec] = None, {"error": str(exc)}
        for i, path, fn in zip(group.index, group["path"], group["func_name"]):
            contexts[i] = function_context(graph, str(path), str(fn), max_callers, max_callees, max_chars)
    seconds_graph = time.perf_counter() - t0

    requests = docstring_requests(sel["code"].tolist(), contexts, max_code_chars=max_code_chars)
    before = llm.stats() if hasattr(llm, "stats") else {}
    t1 = time.perf_counter()
    replies = llm.chat_many(requests, concurrency=concurrency, desc="OASIS docstrings", show_progress=show_progress)
    seconds_llm = time.perf_counter() - t1
    after = llm.stats() if hasattr(llm, "stats") else {}

    rows, rejected = [], Counter()
    for pid, fn, ctx, reply in zip(sel["id"], sel["func_name"], contexts, replies):
        snippets = [str(e["snippet"]) for e in (*ctx["callers"], *ctx["callees"])]
        text, reason = docstring_reject_reason(reply, str(fn), snippets)
        if reason is not None:
            rejected[reason] += 1
        rows.append({"id": pid, "query_llm": text if reason is None else None,
                     "callers": [_label(e) for e in ctx["callers"]], "callees": [_label(e) for e in ctx["callees"]],
                     "reply": reply, "valid": reason is None})
    df = pd.DataFrame(rows, columns=["id", "query_llm", "callers", "callees", "reply", "valid"])
    df.attrs.update({
        "pairs": len(df),
        "functions_found": sum(bool(c["found"]) for c in contexts),
        "with_callers": sum(c["n_callers"] > 0 for c in contexts),
        "with_callees": sum(c["n_callees"] > 0 for c in contexts),
        "unparsable_files": sum(int(s.get("unparsable_files", 0)) for s in sources.values()),
        "graph_functions": sum(int(s.get("functions", 0)) for s in sources.values()),
        "graph_edges": sum(int(s.get("edges", 0)) for s in sources.values()),
        "seconds_graph": round(seconds_graph, 3),
        "seconds_llm": round(seconds_llm, 3),
        "valid": int(df["valid"].sum()),
        "rejected": {r: rejected[r] for r in DOCSTRING_REASONS if rejected[r]},
        "sources": sources,
        "llm": {k: after[k] - before.get(k, 0) for k in ("requests", "hits", "misses") if k in after},
    })
    return df
