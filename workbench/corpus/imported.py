"""Pairs a user brings: a (query, code) dataset file or a folder of source code as a corpus source.

Two source strings join ``stdlib`` and ``name==version`` (:func:`workbench.corpus.sources.parse_source`),
so a :class:`~workbench.corpus.CorpusSpec` mixes them with mined sources and every later step
(de-duplication, per-source caps, splits by file, the leakage report, the OOD suite) runs as on the
mined corpus:

- ``"dir:PATH"``: a local folder or git checkout, mined like a wheel (Python files parsed with
  ``ast``; read as bytes, never imported or executed; symbolic links never followed; ``.git`` and
  the miner's test / vendored folders skipped).
- ``"pairs:PATH"`` (optionally ``"pairs:PATH#query=COL,code=COL,id=COL,language=COL,source=COL,path=COL"``):
  a dataset of pairs. ``PATH`` is a ``.jsonl`` / ``.jsonl.gz`` / ``.json`` / ``.parquet`` / ``.csv``
  file or a ``datasets`` folder written by ``Dataset.save_to_disk``. The layout is detected
  (:func:`detect_columns`) where it can be: CodeSearchNet's release files and the
  GraphCodeBERT-filtered ``train.jsonl`` (``docstring_tokens`` / ``code_tokens`` / ``original_string``),
  AdvTest (``docstring_tokens`` / ``function``), CoSQA (``doc`` / ``code``), and columns named
  ``query`` / ``code`` (or ``docstring``, ``nl``, ``text``); the mapping after ``#`` names them
  otherwise. A token-list column is joined with spaces (CodeSearchNet's convention for the query).
  A row whose ``label`` column is 0 (CoSQA's judged non-matches) is not a pair and is left out.
  Python code whose first statement is a docstring has it removed, as the miner does, because the
  docstring is the query; code that does not parse is kept as given.

The cache key of a ``dir:`` source holds each file's path, size and modification time; that of a
``pairs:`` source the sha256 of its bytes (of every file of a ``datasets`` folder), so editing the
data rebuilds the corpus. A row that does not fit stops the build with one error naming the file,
the line (row) and the field.
"""

from __future__ import annotations

import ast
import gzip
import hashlib
import json
import os
import re
import warnings
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import ParameterError, WorkbenchError

__all__ = ["MAPPING_FIELDS", "PairFileError", "detect_columns", "folder_digest", "parse_mapping", "path_digest",
           "read_pair_rows", "strip_docstring"]

MAPPING_FIELDS = ("query", "code", "id", "language", "source", "path", "func_name")
"""What a ``#`` mapping may name: the query and code columns (required, detected when absent) and
the optional id, language, source, path and function-name columns."""

_QUERY_NAMES = ("query", "docstring_tokens", "doc", "docstring", "nl", "text", "question")
_CODE_NAMES = ("code", "original_string", "function", "code_tokens", "function_tokens", "snippet")
_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".json.gz", ".parquet", ".csv")


class PairFileError(WorkbenchError):
    """A pair file that cannot be read as pairs: the message names the file, the line and the field."""


def parse_mapping(text: str, where: str) -> dict[str, str]:
    """``"query=doc,code=body"`` -> ``{"query": "doc", "code": "body"}`` (fields of :data:`MAPPING_FIELDS`)."""
    out: dict[str, str] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        field, sep, column = part.partition("=")
        field, column = field.strip(), column.strip()
        if not sep or field not in MAPPING_FIELDS or not column:
            raise ParameterError(f"{where}: column mapping {part!r}: expected FIELD=COLUMN with FIELD in {list(MAPPING_FIELDS)}")
        out[field] = column
    return out


def folder_digest(root: Path) -> str:
    """sha256 of every file's relative path, size and modification time under ``root`` (links not followed)."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != ".git" and not (Path(dirpath) / d).is_symlink())
        for fn in sorted(filenames):
            full = Path(dirpath) / fn
            if full.is_symlink() or not full.is_file():
                continue
            st = full.stat()
            h.update(f"{full.relative_to(root).as_posix()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def path_digest(path: Path) -> str:
    """sha256 of a file's bytes, or of every file of a folder (a ``datasets`` folder), in path order."""
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file() and not p.is_symlink())
    for f in files:
        h.update(f.relative_to(path).as_posix().encode() if f != path else b"")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def is_datasets_folder(path: Path) -> bool:
    return path.is_dir() and ((path / "dataset_info.json").exists() or (path / "state.json").exists()
                              or (path / "dataset_dict.json").exists())


def _records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line or row number, 1-based; record)`` of a pair file, in file order."""
    name = path.name.lower()
    if is_datasets_folder(path):
        import datasets

        ds = datasets.load_from_disk(str(path))
        if isinstance(ds, datasets.DatasetDict):
            raise PairFileError(f"{path}: a DatasetDict with splits {list(ds)}; point at one split's folder "
                                f"(e.g. {path / next(iter(ds))})")
        for i, row in enumerate(ds):
            yield i + 1, row
        return
    if path.is_dir():
        raise PairFileError(f"{path}: a folder that is not a `datasets` folder (no dataset_info.json / state.json); "
                            "use 'dir:PATH' to mine the code in it")
    if name.endswith((".jsonl", ".jsonl.gz")):
        opener = gzip.open if name.endswith(".gz") else open
        try:
            with opener(path, "rt", encoding="utf-8") as fh:
                for n, line in enumerate(fh, start=1):
                    if not line.strip():
                        continue
                    try:
                        rec = json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise PairFileError(f"{path}, line {n}: not JSON ({exc.msg} at column {exc.colno})") from None
                    if not isinstance(rec, dict):
                        raise PairFileError(f"{path}, line {n}: expected a JSON object, got {type(rec).__name__}")
                    yield n, rec
        except (OSError, EOFError, UnicodeDecodeError) as exc:
            raise PairFileError(f"{path}: cannot be read as {'gzip-compressed ' if name.endswith('.gz') else ''}"
                                f"UTF-8 JSON lines ({exc})") from None
        return
    if name.endswith((".json", ".json.gz")):
        opener = gzip.open if name.endswith(".gz") else open
        try:
            with opener(path, "rt", encoding="utf-8") as fh:
                data = json.load(fh)
        except json.JSONDecodeError as exc:
            raise PairFileError(f"{path}, line {exc.lineno}: not JSON ({exc.msg})") from None
        except (OSError, EOFError, UnicodeDecodeError) as exc:
            raise PairFileError(f"{path}: cannot be read as UTF-8 JSON ({exc})") from None
        if not isinstance(data, list):
            raise PairFileError(f"{path}: expected a JSON list of objects, got {type(data).__name__}")
        for i, rec in enumerate(data):
            if not isinstance(rec, dict):
                raise PairFileError(f"{path}, item {i + 1}: expected a JSON object, got {type(rec).__name__}")
            yield i + 1, rec
        return
    if name.endswith((".parquet", ".csv")):
        try:
            df = pd.read_parquet(path) if name.endswith(".parquet") else pd.read_csv(path, dtype=str, keep_default_na=False)
        except Exception as exc:  # pyarrow / pandas raise many types for a damaged file
            raise PairFileError(f"{path}: cannot be read as {'parquet' if name.endswith('.parquet') else 'CSV'} "
                                f"({type(exc).__name__}: {exc})") from None
        first = 2 if name.endswith(".csv") else 1  # a CSV's line 1 is its header
        for i, rec in enumerate(df.to_dict(orient="records")):
            yield i + first, rec
        return
    raise PairFileError(f"{path}: unknown pair file type; expected one of {list(_SUFFIXES)} or a `datasets` folder")


def detect_columns(columns: list[str], mapping: Mapping[str, str], where: str) -> dict[str, str]:
    """The columns to read: ``mapping`` where given, else the first known name present (CodeSearchNet,
    AdvTest, CoSQA, plain ``query`` / ``code``). Raises naming the columns the file has."""
    out = dict(mapping)
    for field, column in out.items():
        if column not in columns:
            raise PairFileError(f"{where}: field {field!r} is mapped to column {column!r}, which the file does not "
                                f"have (columns: {columns})")
    if "query" not in out:
        found = next((c for c in _QUERY_NAMES if c in columns), None)
        if found is not None:
            out["query"] = found
    if "code" not in out:
        found = next((c for c in _CODE_NAMES if c in columns), None)
        if found is not None:
            out["code"] = found
    for field in ("query", "code"):
        if field not in out:
            raise PairFileError(f"{where}: no {field} column found among {columns}; name it, e.g. "
                                f"'pairs:{where}#{field}=COLUMN'")
    for field, defaults in (("id", ("id", "url")), ("language", ("language",)), ("path", ("path",)),
                            ("func_name", ("func_name",)), ("source", ("source", "repo"))):
        found = next((c for c in defaults if c in columns), None)
        if field not in out and found is not None:
            out[field] = found
    return out


def _text(value: Any, where: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)) or (hasattr(value, "tolist") and not isinstance(value, (int, float))):
        items = value.tolist() if hasattr(value, "tolist") else value
        if all(isinstance(t, str) for t in items):
            return " ".join(items)
    if value is None:
        return ""
    raise PairFileError(f"{where}: expected a string or a list of tokens, got {type(value).__name__} {value!r:.80}")


def strip_docstring(code: str) -> str:
    """Python ``code`` holding one function with its docstring removed (the lines of the docstring
    statement), as the miner removes it; code that does not parse, or has none, is returned as is."""
    try:
        with warnings.catch_warnings():  # user code's invalid escapes etc. say nothing about the pair
            warnings.simplefilter("ignore")
            tree = ast.parse(code)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return code
    funcs = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    if len(funcs) != 1 or not funcs[0].body:
        return code
    first = funcs[0].body[0]
    if not (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str)):
        return code
    lines = code.splitlines(keepends=True)
    start, end = first.lineno - 1, (first.end_lineno or first.lineno)
    kept = lines[:start] + lines[end:]
    if len(funcs[0].body) == 1:  # only a docstring: keep a body
        indent = re.match(r"\s*", lines[start]).group(0)
        kept.insert(start, f"{indent}pass\n")
    return "".join(kept)


def read_pair_rows(path: Path, mapping: Mapping[str, str], counts: Counter) -> list[dict[str, Any]]:
    """Every row of the pair file as ``{query, code, id, language, source, path, func_name, lineno}``
    (``lineno``: the file's line or row number). Rows with an empty query or code are counted
    (``counts["row:empty_query"]``, ...) and left out; a value of the wrong type raises naming it."""
    rows: list[dict[str, Any]] = []
    cols: dict[str, str] | None = None
    for n, rec in _records(path):
        where = f"{path}, line {n}"
        if cols is None:
            cols = detect_columns(list(rec), mapping, str(path))
        missing = [f"{f} (column {c!r})" for f, c in cols.items() if c not in rec]
        if missing:
            raise PairFileError(f"{where}: missing field {', '.join(missing)}")
        query = _text(rec[cols["query"]], f"{where}, field {cols['query']!r}").strip()
        code = _text(rec[cols["code"]], f"{where}, field {cols['code']!r}")
        language = str(rec[cols["language"]]).strip().lower() if "language" in cols else "python"
        counts["row:read"] += 1
        if "label" in rec and str(rec["label"]).strip() in ("0", "0.0", "False", "false"):
            counts["row:label_0"] += 1  # CoSQA-style files hold judged non-matches: not pairs
            continue
        if not query:
            counts["row:empty_query"] += 1
            continue
        if not code.strip():
            counts["row:empty_code"] += 1
            continue
        if language == "python":
            stripped = strip_docstring(code)
            counts["row:docstring_removed" if stripped != code else "row:code_as_given"] += 1
            code = stripped
        rows.append({
            "query": " ".join(query.split()),
            "code": code,
            "id": str(rec[cols["id"]]) if "id" in cols else "",
            "language": language,
            "source": str(rec[cols["source"]]) if "source" in cols else "",
            "path": str(rec[cols["path"]]) if "path" in cols else "",
            "func_name": str(rec[cols["func_name"]]) if "func_name" in cols else "",
            "lineno": n,
        })
    if cols is None:
        raise PairFileError(f"{path}: no rows")
    return rows
