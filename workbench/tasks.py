"""Retrieval tasks (the BEIR shape) and loaders for the benchmarks the workbench evaluates on.

A :class:`RetrievalTask` holds ``queries`` (qid -> text), ``corpus`` (cid -> code text) and ``qrels``
(qid -> {cid: grade}, grade > 0 = relevant). Every loader returns a validated task; malformed input
raises :class:`~workbench.errors.InputFormatError` naming the file, the 1-based line and the field.

Formats (see ``docs/methods.md``, "The task and how we score it"):

- CoSQA retrieval (CodeXGLUE): ``cosqa-retrieval-{split}-500.json`` (list of objects: ``idx`` ->
  qid, ``doc`` -> query, ``retrieval_idx`` -> gold) against the pool ``code_idx_map.txt``
  (JSON object ``{code text: int index}``; cid = ``str(index)``, text = the key verbatim).
- CodeSearchNet, GraphCodeBERT-filtered: ``{lang}/test.jsonl`` (queries) and ``{lang}/codebase.jsonl``
  (pool), matched by ``url`` (qid = cid = url).
- AdvTest (CodeXGLUE): ``test.jsonl`` is queries and pool; qid = ``url``, cid = ``str(idx)``, gold by url.
- XLCoST code search: ``{split}.jsonl``; each line's query -> its own code; identical code texts are
  one corpus item.
- BEIR / CoIR: ``corpus.jsonl``, ``queries.jsonl``, ``qrels/{split}.tsv`` (header
  ``query-id, corpus-id, score``); rows with score <= 0 are not relevant and are ignored, and only
  queries with at least one relevant row are kept (as BEIR evaluates).

Queries and codes given as token lists (``docstring_tokens``, ``code_tokens``) are joined with one
space, as CodeXGLUE / GraphCodeBERT do; a missing ``code_tokens`` falls back to ``function_tokens``
(the AdvTest release spells it so).

Long code is kept whole: no loader truncates or drops a code text for its length (a 1 MB function is
accepted as it is); the encoder reads only its first ``max_code_len`` tokens, so only that beginning
is searched. :meth:`RetrievalTask.summary` shows ``max_code_chars`` and ``n_code_over_100k_chars``
so such outliers are visible.

Why one module of this size: it is the one place that knows the published formats (CoSQA, CodeSearchNet,
AdvTest, XLCoST, BEIR / CoIR), each loader a few dozen lines sharing the record reader and the
error rules (file, line, field); split per format they would share more than they keep apart.
"""

from __future__ import annotations

import inspect
import json
import os
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from workbench import paths
from workbench.errors import InputFormatError, ParameterError, WorkbenchError

__all__ = [
    "MissingDataError",
    "RetrievalTask",
    "TaskError",
    "TASK_LOADERS",
    "load_advtest",
    "load_beir",
    "load_cosqa",
    "load_cosqa_pairs",
    "load_csn",
    "load_task",
    "load_xlcost",
    "read_json",
    "read_json_records",
    "read_jsonl",
    "task_from_pairs",
]

PathLike = str | os.PathLike

LONG_CODE_CHARS = 100_000
"""Codes longer than this are counted in :meth:`RetrievalTask.summary` (they are kept whole)."""


class MissingDataError(WorkbenchError, FileNotFoundError):
    """A benchmark file is not where it should be; the message says where to put it."""


class TaskError(WorkbenchError, ValueError):
    """A RetrievalTask is inconsistent (empty, dangling qrels, empty text); names the task and the id."""


# --------------------------------------------------------------------------------------------------
# RetrievalTask


@dataclass
class RetrievalTask:
    """Queries, a corpus (pool) and relevance judgements, in the BEIR shape.

    ``qrels[qid][cid]`` is an integer grade; grade > 0 means relevant (graded gains feed NDCG).
    """

    name: str
    queries: dict[str, str]
    corpus: dict[str, str]
    qrels: dict[str, dict[str, int]]
    meta: dict = field(default_factory=dict)

    def validate(self) -> RetrievalTask:
        """Check the task is usable; raise :class:`TaskError` naming the task and the offending id."""
        where = f"task '{self.name}'" + (f" ({self.meta['path']})" if self.meta.get("path") else "")
        if not self.queries:
            raise TaskError(f"{where}: no queries")
        if not self.corpus:
            raise TaskError(f"{where}: empty corpus (no code to search)")
        for kind, items in (("query", self.queries), ("corpus", self.corpus)):
            for key, text in items.items():
                if not isinstance(key, str):
                    raise TaskError(f"{where}: {kind} id {key!r} is a {type(key).__name__}, expected str")
                if not isinstance(text, str) or not text.strip():
                    raise TaskError(f"{where}: {kind} id {key!r} has empty or non-string text {text!r:.40}")
        for qid, rels in self.qrels.items():
            if qid not in self.queries:
                raise TaskError(f"{where}: qrels query id {qid!r} is not in queries")
            if not isinstance(rels, dict):
                raise TaskError(f"{where}: qrels of query {qid!r} is a {type(rels).__name__}, expected dict")
            for cid, grade in rels.items():
                if cid not in self.corpus:
                    raise TaskError(
                        f"{where}: qrels of query {qid!r} name corpus id {cid!r}, not in the corpus"
                    )
                if isinstance(grade, bool) or not isinstance(grade, int) or grade < 0:
                    raise TaskError(f"{where}: qrels[{qid!r}][{cid!r}] = {grade!r}, expected an int >= 0")
        return self

    def judged_queries(self) -> list[str]:
        """Query ids that have at least one relevant code (grade > 0), in query order: the queries
        an evaluation asks (as BEIR does)."""
        return [q for q in self.queries if any(g > 0 for g in self.qrels.get(q, {}).values())]

    @property
    def n_relevant(self) -> int:
        """Number of (query, code) pairs with grade > 0."""
        return sum(1 for rels in self.qrels.values() for g in rels.values() if g > 0)

    def summary(self) -> dict[str, Any]:
        """Counts: queries, corpus items, relevant pairs, queries that have a relevant item, and the
        longest code (characters) with the number of codes over :data:`LONG_CODE_CHARS` (kept whole)."""
        judged = len(self.judged_queries())
        return {
            "name": self.name,
            "n_queries": len(self.queries),
            "n_corpus": len(self.corpus),
            "n_relevant": self.n_relevant,
            "n_queries_judged": judged,
            "relevant_per_query": round(self.n_relevant / judged, 3) if judged else 0.0,
            "max_code_chars": max(map(len, self.corpus.values()), default=0),
            "n_code_over_100k_chars": sum(len(c) > LONG_CODE_CHARS for c in self.corpus.values()),
            **({"notes": list(self.meta["notes"])} if self.meta.get("notes") else {}),
        }

    def __repr__(self) -> str:
        return (
            f"RetrievalTask(name={self.name!r}, queries={len(self.queries)}, corpus={len(self.corpus)}, "
            f"relevant={self.n_relevant})"
        )

    def subset(self, n_queries: int, seed: int = 0) -> RetrievalTask:
        """A task with ``n_queries`` queries drawn at random (seeded; original order kept), whole corpus."""
        if n_queries < 1:
            raise TaskError(f"task '{self.name}': subset needs n_queries >= 1, got {n_queries}")
        qids = list(self.queries)
        if n_queries >= len(qids):
            keep = set(qids)
        else:
            keep = set(random.Random(seed).sample(qids, n_queries))
        queries = {q: t for q, t in self.queries.items() if q in keep}
        qrels = {q: dict(r) for q, r in self.qrels.items() if q in keep}
        meta = {**self.meta, "subset": {"n_queries": len(queries), "seed": seed, "of": len(qids)}}
        name = self.name if len(queries) == len(qids) else f"{self.name}-n{len(queries)}-seed{seed}"
        return RetrievalTask(name, queries, dict(self.corpus), qrels, meta)


# --------------------------------------------------------------------------------------------------
# Robust JSON / JSONL reading


class _DuplicateKey(Exception):
    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicate_keys)
_WS = re.compile(r"[ \t\n\r]*")


def _field_at(text: str, start: int, end: int) -> str | None:
    """The member name whose value holds ``text[end]``, scanning the JSON from ``start``; None when
    ``end`` is not inside a member's value (or inside a member name).

    Used to name the field of a syntax error or a bad byte. With nested objects the outermost
    member wins (the record's field, not a key inside its value).
    """
    depth, keys = 0, {}
    i, end = start, min(end, len(text))
    while i < end:
        ch = text[i]
        if ch == '"':
            j = i + 1
            while j < len(text) and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            if j >= end:  # ``end`` lies inside this string
                break
            k = _WS.match(text, j + 1).end()
            if text.startswith(":", k):
                keys[depth] = text[i + 1 : j]
                i = k + 1
            else:
                i = j + 1
            continue
        if ch in "[{":
            depth += 1
        elif ch in "]},":
            keys = {d: v for d, v in keys.items() if d < depth}
            depth -= ch != ","
        i += 1
    return keys[min(keys)] if keys else None


def _read_text(path: Path, tsv_columns: tuple[str, ...] = ()) -> str:
    """The file as text; non-UTF-8 bytes raise InputFormatError with the line and field they are on
    (the JSON member, or for a TSV file the column named by ``tsv_columns``)."""
    if not path.is_file():
        raise MissingDataError(f"{path}: no such file")
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        first = data.rfind(b"\n", 0, e.start) + 1
        last = data.find(b"\n", e.start)
        text = data[first : last if last >= 0 else len(data)].decode("utf-8", "replace")
        if tsv_columns:
            col = data.count(b"\t", first, e.start)
            field = tsv_columns[col] if col < len(tsv_columns) else None
        else:
            field = _field_at(text, 0, len(data[first : e.start].decode("utf-8", "replace")))
        where = f", in field '{field}'" if field else ""
        err = InputFormatError(
            path,
            f"not valid UTF-8 (byte 0x{data[e.start]:02x} at offset {e.start}{where}); save the file as UTF-8",
            line=line,
        )
        err.field = field
        raise err from None


def _decode_value(path: Path, text: str, pos: int, line: int) -> tuple[Any, int]:
    try:
        return _DECODER.raw_decode(text, pos)
    except _DuplicateKey as e:
        raise InputFormatError(path, f"duplicate key {e.key!r} in one object", line=line) from None
    except json.JSONDecodeError as e:
        end = text.rstrip()[-1:]
        hint = (
            f" (the file looks truncated: it ends with {end!r}, not ']' or '}}')"
            if end not in ("]", "}")
            else ""
        )
        raise InputFormatError(
            path,
            f"invalid JSON: {e.msg} (column {e.colno}){hint}",
            line=e.lineno,
            field=_field_at(text, pos, e.pos),
        ) from None


def _scan_json(path: Path) -> tuple[str, list[tuple[int, Any, Any]]]:
    """Parse a JSON file entry by entry: ``("list"|"dict"|"scalar", [(line, key, value), ...])``.

    For a top-level array the key is the 0-based item index; for an object it is the member name.
    The line is where the entry starts, so later checks can point at it. Duplicate member names
    (at any depth) are errors rather than silently overwritten.
    """
    text = _read_text(path)
    line, last = 1, 0

    def line_at(pos: int) -> int:
        nonlocal line, last
        line += text.count("\n", last, pos)
        last = pos
        return line

    pos = _WS.match(text, 0).end()
    if pos >= len(text):
        raise InputFormatError(path, "empty file, expected JSON", line=1)
    opener = text[pos]
    if opener not in "[{":
        value, end = _decode_value(path, text, pos, line_at(pos))
        if _WS.match(text, end).end() != len(text):
            raise InputFormatError(path, "extra data after the JSON value", line=line_at(end))
        return "scalar", [(line_at(pos), None, value)]
    closer = "]" if opener == "[" else "}"
    entries: list[tuple[int, Any, Any]] = []
    seen: dict[str, int] = {}
    pos = _WS.match(text, pos + 1).end()
    if text.startswith(closer, pos):
        pos += 1
    else:
        while True:
            start_line = line_at(pos)
            if opener == "{":
                if not text.startswith('"', pos):
                    raise InputFormatError(path, "expected a quoted member name", line=start_line)
                key, pos = _decode_value(path, text, pos, start_line)
                if key in seen:
                    raise InputFormatError(
                        path, f"duplicate key {key!r:.80} (first on line {seen[key]})", line=start_line
                    )
                seen[key] = start_line
                pos = _WS.match(text, pos).end()
                if not text.startswith(":", pos):
                    raise InputFormatError(path, "expected ':' after a member name", line=line_at(pos))
                pos = _WS.match(text, pos + 1).end()
            else:
                key = len(entries)
            value, pos = _decode_value(path, text, pos, start_line)
            entries.append((start_line, key, value))
            pos = _WS.match(text, pos).end()
            if pos >= len(text):
                raise InputFormatError(
                    path,
                    f"unexpected end of file, expected ',' or '{closer}' (truncated?)",
                    line=line_at(pos),
                )
            if text[pos] == ",":
                pos = _WS.match(text, pos + 1).end()
                continue
            if text[pos] == closer:
                pos += 1
                break
            raise InputFormatError(
                path, f"expected ',' or '{closer}', found {text[pos]!r}", line=line_at(pos)
            )
    if _WS.match(text, pos).end() != len(text):
        raise InputFormatError(path, "extra data after the JSON value", line=line_at(pos))
    return ("list" if opener == "[" else "dict"), entries


def read_json(path: PathLike) -> Any:
    """Read a JSON file strictly: UTF-8, no duplicate keys; errors name the file and line."""
    kind, entries = _scan_json(Path(path))
    if kind == "list":
        return [v for _, _, v in entries]
    if kind == "dict":
        return {k: v for _, k, v in entries}
    return entries[0][2]


def read_json_records(path: PathLike) -> list[tuple[int, dict]]:
    """A JSON file holding a list of objects, as ``(line, object)`` pairs (line where the object starts)."""
    path = Path(path)
    kind, entries = _scan_json(path)
    if kind != "list":
        raise InputFormatError(
            path,
            f"expected a JSON list of objects, found a {'object' if kind == 'dict' else 'scalar'}",
            line=entries[0][0] if entries else 1,
        )
    for line, i, value in entries:
        if not isinstance(value, dict):
            raise InputFormatError(
                path, f"item {i} is a {type(value).__name__}, expected an object", line=line
            )
    return [(line, value) for line, _, value in entries]


def read_jsonl(path: PathLike) -> list[tuple[int, dict]]:
    """A JSON-lines file as ``(line, object)`` pairs; blank lines are skipped.

    Errors (InputFormatError) name ``file:line``: invalid or truncated JSON, a line that is not an
    object, duplicate keys, non-UTF-8 bytes.
    """
    path = Path(path)
    text = _read_text(path)
    out: list[tuple[int, dict]] = []
    # split on "\n" only: str.splitlines would also split on U+2028 etc. inside JSON strings
    for i, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip():
            continue
        try:
            obj = _DECODER.decode(raw)
        except _DuplicateKey as e:
            raise InputFormatError(path, f"duplicate key {e.key!r} in one object", line=i) from None
        except json.JSONDecodeError as e:
            hint = " (the line looks truncated)" if not raw.rstrip().endswith("}") else ""
            raise InputFormatError(
                path, f"invalid JSON: {e.msg} (column {e.colno}){hint}", line=i, field=_field_at(raw, 0, e.pos)
            ) from None
        if not isinstance(obj, dict):
            raise InputFormatError(path, f"expected a JSON object, found {type(obj).__name__}", line=i)
        out.append((i, obj))
    return out


# --------------------------------------------------------------------------------------------------
# Field access with errors that name file, line and field

_MISSING = object()


def _get(path: Path, line: int, rec: dict, name: str, alt: tuple[str, ...] = ()) -> Any:
    for key in (name, *alt):
        if key in rec:
            return rec[key]
    keys = ", ".join(sorted(map(str, rec))) or "none"
    raise InputFormatError(path, f"missing (present: {keys})", line=line, field=name)


def _get_text(path: Path, line: int, rec: dict, name: str, alt: tuple[str, ...] = ()) -> str:
    """A non-empty text field: a string, or a list of string tokens joined with one space."""
    value = _get(path, line, rec, name, alt)
    if isinstance(value, list):
        bad = next((t for t in value if not isinstance(t, str)), _MISSING)
        if bad is not _MISSING:
            raise InputFormatError(
                path, f"token list holds a {type(bad).__name__} ({bad!r:.40})", line=line, field=name
            )
        value = " ".join(value)
    elif not isinstance(value, str):
        raise InputFormatError(
            path, f"expected a string or a list of strings, got {type(value).__name__}", line=line, field=name
        )
    if not value.strip():
        raise InputFormatError(path, "empty text", line=line, field=name)
    return value


def _get_id(path: Path, line: int, rec: dict, name: str) -> str:
    value = _get(path, line, rec, name)
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InputFormatError(
            path, f"expected a string or integer id, got {type(value).__name__}", line=line, field=name
        )
    value = str(value)
    if not value.strip():
        raise InputFormatError(path, "empty id", line=line, field=name)
    return value


def _get_int(path: Path, line: int, rec: dict, name: str) -> int:
    value = _get(path, line, rec, name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputFormatError(
            path, f"expected an integer, got {type(value).__name__} {value!r:.40}", line=line, field=name
        )
    return value


def _unique(path: Path, seen: dict[str, int], key: str, line: int, name: str) -> None:
    if key in seen:
        raise InputFormatError(
            path, f"duplicate id {key!r} (first on line {seen[key]})", line=line, field=name
        )
    seen[key] = line


def _records(path: Path, reader: Callable[[PathLike], list[tuple[int, dict]]]) -> list[tuple[int, dict]]:
    """Read ``path`` with ``reader``; an empty file (no records) is an error."""
    rows = reader(path)
    if not rows:
        raise InputFormatError(path, "no records: the file is empty")
    return rows


def _code_alt(code_field: str) -> tuple[str, ...]:
    return ("function_tokens",) if code_field == "code_tokens" else ()


def _require_file(path: Path, what: str, hint: str = "") -> Path:
    if not path.is_file():
        raise MissingDataError(f"{what} not found: {path} does not exist.{(' ' + hint) if hint else ''}")
    return path


# --------------------------------------------------------------------------------------------------
# Loaders


def load_cosqa(data_dir: PathLike | None = None, split: str = "dev") -> RetrievalTask:
    """CoSQA retrieval as CodeXGLUE evaluates it: 500 queries against one pool of 6,267 functions.

    qid = item ``idx``, query = ``doc``, cid = ``str(index)`` from ``code_idx_map.txt``, code = the map
    key verbatim, qrels ``{qid: {str(retrieval_idx): 1}}``. Default folder: ``paths.cosqa_dir()``.
    """
    folder = Path(data_dir) if data_dir is not None else paths.cosqa_dir()
    qfile = folder / f"cosqa-retrieval-{split}-500.json"
    mfile = folder / "code_idx_map.txt"
    _require_file(
        qfile,
        f"CoSQA {split} split",
        f"Put cosqa-retrieval-{split}-500.json (the CoSQA release, as in CodeXGLUE) in {folder}, "
        "or point WORKBENCH_COSQA (or data_dir) at the folder that holds it.",
    )
    _require_file(
        mfile,
        "CoSQA retrieval pool",
        f"Put code_idx_map.txt (the CoSQA pool, JSON {{code: index}}) in {folder}.",
    )

    kind, entries = _scan_json(mfile)
    if kind != "dict":
        raise InputFormatError(mfile, "expected a JSON object {code text: integer index}", line=1)
    if not entries:
        raise InputFormatError(mfile, "empty pool: no code in the map", line=1)
    by_index: dict[int, tuple[int, str]] = {}
    for line, code, index in entries:
        if isinstance(index, bool) or not isinstance(index, int):
            raise InputFormatError(
                mfile, f"the index of a code must be an integer, got {index!r:.40}", line=line
            )
        if not code.strip():
            raise InputFormatError(mfile, f"empty code text (index {index})", line=line)
        if index in by_index:
            raise InputFormatError(
                mfile, f"duplicate index {index} (first on line {by_index[index][0]})", line=line
            )
        by_index[index] = (line, code)
    corpus = {str(i): by_index[i][1] for i in sorted(by_index)}

    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    seen: dict[str, int] = {}
    for item, (line, rec) in enumerate(_records(qfile, read_json_records)):
        qid = _get_id(qfile, line, rec, "idx")
        _unique(qfile, seen, qid, line, "idx")
        queries[qid] = _get_text(qfile, line, rec, "doc")
        gold = _get_int(qfile, line, rec, "retrieval_idx")
        if str(gold) not in corpus:
            raise InputFormatError(
                qfile,
                f"item {item} ({qid}): retrieval_idx {gold} is not in the pool {mfile} "
                f"({len(corpus)} functions)",
                line=line,
                field="retrieval_idx",
            )
        qrels[qid] = {str(gold): 1}
    meta = {"source": "cosqa", "split": split, "path": str(qfile), "pool_path": str(mfile)}
    return RetrievalTask(f"cosqa-{split}", queries, corpus, qrels, meta).validate()


def load_cosqa_pairs(data_dir: PathLike | None = None) -> pd.DataFrame:
    """``cosqa-dev.json`` as a DataFrame (idx, query, code, label 0/1) for validating classifiers."""
    folder = Path(data_dir) if data_dir is not None else paths.cosqa_dir()
    path = _require_file(folder / "cosqa-dev.json", "CoSQA dev pairs", f"Put cosqa-dev.json in {folder}.")
    rows, seen = [], {}
    for line, rec in _records(path, read_json_records):
        idx = _get_id(path, line, rec, "idx")
        _unique(path, seen, idx, line, "idx")
        label = _get(path, line, rec, "label")
        if label not in (0, 1, "0", "1") or isinstance(label, bool):
            raise InputFormatError(path, f"expected 0 or 1, got {label!r:.40}", line=line, field="label")
        rows.append(
            {
                "idx": idx,
                "query": _get_text(path, line, rec, "doc"),
                "code": _get_text(path, line, rec, "code"),
                "label": int(label),
            }
        )
    df = pd.DataFrame(rows, columns=["idx", "query", "code", "label"])
    df["label"] = df["label"].astype("int64")
    return df


def load_csn(data_dir: PathLike, language: str, code_field: str = "code_tokens") -> RetrievalTask:
    """CodeSearchNet as GraphCodeBERT filters it: ``{lang}/test.jsonl`` queries, ``{lang}/codebase.jsonl`` pool.

    Matched by ``url`` (qid = cid = url). Query = ``' '.join(docstring_tokens)``; code =
    ``' '.join(code_tokens)`` (default) or the raw ``original_string`` (``code_field="original_string"``).
    """
    base = Path(data_dir) / language
    hint = f"Expected the GraphCodeBERT CodeSearchNet layout {base}/test.jsonl and {base}/codebase.jsonl."
    qfile = _require_file(base / "test.jsonl", f"CodeSearchNet {language} queries", hint)
    cfile = _require_file(base / "codebase.jsonl", f"CodeSearchNet {language} codebase", hint)
    corpus: dict[str, str] = {}
    seen: dict[str, int] = {}
    for line, rec in _records(cfile, read_jsonl):
        url = _get_id(cfile, line, rec, "url")
        _unique(cfile, seen, url, line, "url")
        corpus[url] = _get_text(cfile, line, rec, code_field, _code_alt(code_field))
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    seen = {}
    for line, rec in _records(qfile, read_jsonl):
        url = _get_id(qfile, line, rec, "url")
        _unique(qfile, seen, url, line, "url")
        if url not in corpus:
            raise InputFormatError(qfile, f"url {url!r} has no code in {cfile}", line=line, field="url")
        queries[url] = _get_text(qfile, line, rec, "docstring_tokens")
        qrels[url] = {url: 1}
    meta = {
        "source": "codesearchnet",
        "language": language,
        "code_field": code_field,
        "path": str(qfile),
        "pool_path": str(cfile),
    }
    return RetrievalTask(f"csn-{language}", queries, corpus, qrels, meta).validate()


def load_advtest(path: PathLike, code_field: str = "code_tokens") -> RetrievalTask:
    """CodeXGLUE AdvTest: ``test.jsonl`` (or a folder holding it) is both the queries and the pool.

    qid = ``url``, cid = ``str(idx)``, gold = the code(s) with the query's url. Query =
    ``' '.join(docstring_tokens)``; code = ``' '.join(code_tokens)`` (``function_tokens`` in the
    release) or the raw ``function`` (``code_field="function"``).
    """
    path = Path(path)
    if path.is_dir():
        path = path / "test.jsonl"
    _require_file(path, "AdvTest test set", "Expected CodeXGLUE's NL-code-search-Adv dataset/test.jsonl.")
    queries: dict[str, str] = {}
    corpus: dict[str, str] = {}
    by_url: dict[str, list[str]] = {}
    seen_q: dict[str, int] = {}
    seen_c: dict[str, int] = {}
    for line, rec in _records(path, read_jsonl):
        url = _get_id(path, line, rec, "url")
        cid = _get_id(path, line, rec, "idx")
        _unique(path, seen_q, url, line, "url")
        _unique(path, seen_c, cid, line, "idx")
        queries[url] = _get_text(path, line, rec, "docstring_tokens")
        corpus[cid] = _get_text(path, line, rec, code_field, _code_alt(code_field))
        by_url.setdefault(url, []).append(cid)
    qrels = {url: {cid: 1 for cid in by_url[url]} for url in queries}
    meta = {"source": "advtest", "code_field": code_field, "path": str(path)}
    return RetrievalTask("advtest", queries, corpus, qrels, meta).validate()


_DEV_NAMES = ("valid", "val", "dev")


def load_xlcost(
    data_dir: PathLike, language: str, split: str = "test", code_field: str = "code_tokens"
) -> RetrievalTask:
    """XLCoST code search: ``{data_dir}/{language}/{split}.jsonl`` (or ``{data_dir}/{split}.jsonl``);
    for the dev split (``valid``, ``val`` or ``dev``) any of those names, as the release calls it ``val.jsonl``.

    qid = ``url`` (e.g. ``9359-C++-3``); each line's query -> its own code. Identical code texts
    collapse into one corpus item (cid = the url of its first line) and every such query points to it.
    """
    data_dir = Path(data_dir)
    # the release names its snippet-level dev split val.jsonl: asked for valid, dev or val, take any of them
    names = [split, *(n for n in _DEV_NAMES if n != split)] if split in _DEV_NAMES else [split]
    candidates = [d / f"{n}.jsonl" for n in names for d in (data_dir / language, data_dir)]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise MissingDataError(
            f"XLCoST {language} {split} not found: tried {', '.join(map(str, candidates))}."
        )
    queries: dict[str, str] = {}
    corpus: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    cid_of_code: dict[str, str] = {}
    seen: dict[str, int] = {}
    for line, rec in _records(path, read_jsonl):
        url = _get_id(path, line, rec, "url")
        _unique(path, seen, url, line, "url")
        queries[url] = _get_text(path, line, rec, "docstring_tokens")
        code = _get_text(path, line, rec, code_field, _code_alt(code_field))
        cid = cid_of_code.setdefault(code, url)
        corpus.setdefault(cid, code)
        qrels[url] = {cid: 1}
    meta = {
        "source": "xlcost",
        "language": language,
        "split": split,
        "code_field": code_field,
        "path": str(path),
        "n_collapsed": len(queries) - len(corpus),
    }
    return RetrievalTask(f"xlcost-{language}-{split}", queries, corpus, qrels, meta).validate()


def _read_qrels_tsv(path: Path) -> tuple[list[tuple[int, str, str, int]], bool]:
    """BEIR qrels: a header ``query-id<TAB>corpus-id<TAB>score`` then one row per judgement; ``(rows,
    has_header)``. A file without the header line whose first line is a judgement (three columns, an
    integer score) is read as data from its first line, as BEIR's loader does."""
    text = _read_text(path, tsv_columns=("query-id", "corpus-id", "score"))
    rows: list[tuple[int, str, str, int]] = []
    header_seen = has_header = False
    for i, raw in enumerate(text.split("\n"), start=1):
        raw = raw.rstrip("\r")
        if not raw.strip():
            continue
        cols = raw.split("\t")
        if not header_seen:
            header_seen = True
            if [c.strip().lower() for c in cols] == ["query-id", "corpus-id", "score"]:
                has_header = True
                continue
            if len(cols) != 3 or not re.fullmatch(r"[+-]?\d+", cols[2].strip()):
                raise InputFormatError(
                    path, f"expected the header 'query-id<TAB>corpus-id<TAB>score' (or a first judgement: "
                          f"three tab-separated columns, an integer score), found {raw!r:.80}", line=i
                )
        if len(cols) != 3:
            raise InputFormatError(
                path,
                f"expected 3 tab-separated columns, found {len(cols)}",
                line=i,
                field=("query-id", "corpus-id", "score")[len(cols)] if len(cols) < 3 else None,
            )
        qid, cid, score = (c.strip() for c in cols)
        try:
            grade = int(score)
        except ValueError:
            raise InputFormatError(
                path, f"expected an integer, got {score!r:.40}", line=i, field="score"
            ) from None
        rows.append((i, qid, cid, grade))
    if not header_seen:
        raise InputFormatError(path, "empty qrels file", line=1)
    return rows, has_header


def load_beir(folder: PathLike, split: str = "test") -> RetrievalTask:
    """A BEIR / CoIR folder: ``corpus.jsonl`` (_id, title, text), ``queries.jsonl`` (_id, text), ``qrels/{split}.tsv``.

    Corpus text = ``title + "\\n" + text`` when a title exists. Qrels rows with score <= 0 are
    ignored (not relevant); only queries with at least one relevant row are kept, as BEIR evaluates.
    Read as BEIR's own loader reads the published folders: a document with empty text and title is
    skipped (BEIR keeps it as an empty string; there is nothing to embed) with the judgements naming
    it, and a qrels file without its header line is read from its first line; both are counted in
    ``meta`` and said in ``meta["notes"]`` (and :meth:`RetrievalTask.summary`).
    """
    folder = Path(folder)
    hint = f"Expected a BEIR folder: {folder}/corpus.jsonl, queries.jsonl, qrels/{split}.tsv."
    cfile = _require_file(folder / "corpus.jsonl", "BEIR corpus", hint)
    qfile = _require_file(folder / "queries.jsonl", "BEIR queries", hint)
    rfile = _require_file(folder / "qrels" / f"{split}.tsv", f"BEIR qrels ({split})", hint)

    corpus: dict[str, str] = {}
    empty: list[str] = []  # documents with empty text and title: skipped and counted
    empty_line = 0
    seen: dict[str, int] = {}
    for line, rec in _records(cfile, read_jsonl):
        cid = _get_id(cfile, line, rec, "_id")
        _unique(cfile, seen, cid, line, "_id")
        title = rec.get("title") or ""
        if not isinstance(title, str):
            raise InputFormatError(
                cfile, f"expected a string, got {type(title).__name__}", line=line, field="title"
            )
        body = _get(cfile, line, rec, "text")
        if body is None:
            body = ""
        if not isinstance(body, str):
            raise InputFormatError(
                cfile, f"expected a string, got {type(body).__name__}", line=line, field="text"
            )
        text = f"{title}\n{body}" if title.strip() else body
        if not text.strip():  # BEIR keeps it, but an empty document has nothing to embed or search
            empty.append(cid)
            empty_line = empty_line or line
            continue
        corpus[cid] = text
    if not corpus:
        raise InputFormatError(cfile, "empty text and title in every document: nothing to search", line=empty_line,
                               field="text")
    all_queries: dict[str, str] = {}
    seen = {}
    for line, rec in _records(qfile, read_jsonl):
        qid = _get_id(qfile, line, rec, "_id")
        _unique(qfile, seen, qid, line, "_id")
        all_queries[qid] = _get_text(qfile, line, rec, "text")
    qrels: dict[str, dict[str, int]] = {}
    first: dict[tuple[str, str], int] = {}
    skipped = set(empty)
    dropped = 0  # judgements of a skipped (empty) document
    rows, has_header = _read_qrels_tsv(rfile)
    for line, qid, cid, grade in rows:
        if qid not in all_queries:
            raise InputFormatError(rfile, f"query id {qid!r} is not in {qfile}", line=line, field="query-id")
        if cid in skipped:
            dropped += 1
            continue
        if cid not in corpus:
            raise InputFormatError(
                rfile, f"corpus id {cid!r} is not in {cfile}", line=line, field="corpus-id"
            )
        if (qid, cid) in first:
            raise InputFormatError(
                rfile, f"duplicate judgement ({qid!r}, {cid!r}) (first on line {first[qid, cid]})", line=line
            )
        first[qid, cid] = line
        if grade > 0:
            qrels.setdefault(qid, {})[cid] = grade
    queries = {q: t for q, t in all_queries.items() if q in qrels}
    if not queries:
        raise InputFormatError(rfile, "no relevant judgement (score > 0): nothing to evaluate")
    notes = []
    if empty:
        notes.append(f"{len(empty)} document(s) of {cfile.name} with empty text and title skipped (nothing to "
                     f"embed; BEIR's loader keeps them as empty strings), with the {dropped} judgement(s) naming them")
    if not has_header:
        notes.append(f"{rfile.name} has no header line: its first line was read as a judgement")
    meta = {
        "source": "beir",
        "split": split,
        "path": str(folder),
        "n_queries_without_qrels": len(all_queries) - len(queries),
        "n_empty_documents_skipped": len(empty),
        "n_judgements_of_skipped_documents": dropped,
        "qrels_header": has_header,
        "notes": notes,
    }
    return RetrievalTask(f"beir-{folder.name}-{split}", queries, corpus, qrels, meta).validate()


def task_from_pairs(df: pd.DataFrame, name: str) -> RetrievalTask:
    """A task from mined pairs (columns ``id``, ``query``, ``code``): each query's gold is its own code.

    qid = cid = ``id``; identical code texts collapse into one corpus item (the first id keeps it)
    and every query with that code points to the kept id.
    """
    missing = [c for c in ("id", "query", "code") if c not in df.columns]
    if missing:
        raise TaskError(f"pairs '{name}': missing column(s) {missing} (present: {list(df.columns)})")
    queries: dict[str, str] = {}
    corpus: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    cid_of_code: dict[str, str] = {}
    for pid, query, code in zip(df["id"].tolist(), df["query"].tolist(), df["code"].tolist()):
        pid = str(pid)
        if pid in queries:
            raise TaskError(f"pairs '{name}': duplicate id {pid!r}")
        for col, text in (("query", query), ("code", code)):
            if not isinstance(text, str) or not text.strip():
                raise TaskError(f"pairs '{name}': id {pid!r} has an empty {col}")
        queries[pid] = query
        cid = cid_of_code.setdefault(code, pid)
        corpus.setdefault(cid, code)
        qrels[pid] = {cid: 1}
    meta = {"source": "pairs", "n_collapsed": len(queries) - len(corpus)}
    return RetrievalTask(name, queries, corpus, qrels, meta).validate()


TASK_LOADERS: dict[str, Callable[..., RetrievalTask]] = {
    "cosqa": load_cosqa,
    "csn": load_csn,
    "advtest": load_advtest,
    "xlcost": load_xlcost,
    "beir": load_beir,
}


def task_from_spec(spec: str) -> tuple[str, RetrievalTask]:
    """A user's test set named in a parameter (``test_sets``): ``"NAME=LOADER:LOCATION[@ARG]"`` ->
    ``(NAME, task)``. ``cosqa:SPLIT[@DIR]`` (CoSQA's dev or test files, ``paths.cosqa_dir()`` by
    default), ``advtest:PATH`` (CodeXGLUE AdvTest's ``test.jsonl``), ``xlcost:DIR@LANGUAGE`` (XLCoST's
    code search test split), ``csn:DIR@LANGUAGE`` (GraphCodeBERT's CodeSearchNet test and codebase),
    ``beir:DIR``. Each loader's errors name the file it wanted and where it comes from."""
    name, eq, rest = spec.partition("=")
    loader, colon, location = rest.partition(":")
    name, loader, location = name.strip(), loader.strip(), location.strip()
    if not eq or not colon or not name.isidentifier() or loader not in TASK_LOADERS or not location:
        raise ParameterError(f"test set {spec!r}: expected NAME=LOADER:LOCATION[@ARG] with NAME an identifier and "
                             f"LOADER one of {sorted(TASK_LOADERS)} (e.g. advtest=advtest:data/advtest/test.jsonl)")
    where, at, arg = location.partition("@")
    if loader == "cosqa":
        task = load_cosqa(paths.user_path(arg) if arg else None, split=where)
    elif loader in ("xlcost", "csn"):
        if not at or not arg:
            raise ParameterError(f"test set {spec!r}: {loader} needs a language, {loader}:DIR@LANGUAGE")
        task = TASK_LOADERS[loader](paths.user_path(where), arg)
    else:
        task = TASK_LOADERS[loader](paths.user_path(where))
    return name, task


def load_task(name: str, **kwargs: Any) -> RetrievalTask:
    """Load a task by loader name (``cosqa``, ``csn``, ``advtest``, ``xlcost``, ``beir``) with its arguments."""
    try:
        loader = TASK_LOADERS[name]
    except KeyError:
        raise WorkbenchError(f"unknown task {name!r}; available: {', '.join(sorted(TASK_LOADERS))}") from None
    if "data_dir" in kwargs and "data_dir" not in inspect.signature(loader).parameters:
        # the CLI's --data-dir names the loader's location argument, whatever it is called
        first = next(iter(inspect.signature(loader).parameters))
        kwargs[first] = kwargs.pop("data_dir")
    try:
        inspect.signature(loader).bind(**kwargs)
    except TypeError as e:
        raise WorkbenchError(f"task {name!r}: {e}; signature: {name}{inspect.signature(loader)}") from None
    return loader(**kwargs)
