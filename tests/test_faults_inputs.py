"""Reliability (issue 10): bad input files, untrusted source code, bad notebook parameters and seeded
determinism, each fault tried for real (files in tmp_path, the real loaders, miner, CLI and trainer)
and recorded in the fault ledger (tests/faults.py)."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import zipfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import torch
from faults import fault
from stdlib_pairs import mine_stdlib_pairs

from workbench.config import resolve
from workbench.corpus import mine_corpus_source, mine_source, parse_source
from workbench.corpus.sources import InstalledSource, StdlibSource, iter_source_files
from workbench.errors import InputFormatError, ParameterError
from workbench.evaluation import evaluate
from workbench.runs import open_run, run_notebooks
from workbench.runtime import seed_everything, set_threads
from workbench.sweep import load_sweep
from workbench.tasks import (
    LONG_CODE_CHARS,
    load_advtest,
    load_beir,
    load_cosqa,
    load_csn,
    load_xlcost,
    task_from_pairs,
)
from workbench.training import TrainConfig, train
from workbench.viz import load_subset

# ---------------------------------------------------------------------------------------------- files


def jsonl(path: Path, rows: list[dict | str | bytes]) -> Path:
    """One row per line: a dict is dumped as JSON, a str / bytes is written as it is."""
    path.parent.mkdir(parents=True, exist_ok=True)
    parts = [r if isinstance(r, bytes) else (r if isinstance(r, str) else json.dumps(r)).encode() for r in rows]
    path.write_bytes(b"".join(p + b"\n" for p in parts))
    return path


def cut(row: dict, before: str) -> str:
    """``row`` as a JSON line truncated just after the text ``before`` (a file cut mid-record)."""
    text = json.dumps(row)
    return text[: text.index(before) + len(before)]


def cosqa_files(
    d: Path, items: list[dict | str | bytes], pool: dict[str, int] | str | None = None, close: bool = True
) -> Path:
    """The CoSQA layout, one query object per line (item k on line k + 2) and one code per line of the
    map (code k on line k + 2); ``close=False`` leaves the list unclosed (a file cut mid-item)."""
    d.mkdir(parents=True, exist_ok=True)
    if pool is None:
        pool = {f"def f{i}(x):\n    return x + {i}": i for i in range(3)}
    if isinstance(pool, dict):
        pool = "{\n" + ",\n".join(f"{json.dumps(c)}: {i}" for c, i in pool.items()) + "\n}\n"
    (d / "code_idx_map.txt").write_text(pool, encoding="utf-8")
    body = [i if isinstance(i, bytes) else (i if isinstance(i, str) else json.dumps(i)).encode() for i in items]
    (d / "cosqa-retrieval-dev-500.json").write_bytes(b"[\n" + b",\n".join(body) + (b"\n]\n" if close else b""))
    return d / "cosqa-retrieval-dev-500.json"


def cq(i: int, **kw) -> dict:
    return {"idx": f"q{i}", "doc": f"add {i} to a number", "retrieval_idx": i, **kw}


def csn(url: str, **kw) -> dict:
    return {"url": url, "docstring_tokens": ["Add", "one", url], "code_tokens": ["def", "f", "(", url, ")"], **kw}


def csn_files(root: Path, codebase: list, test: list | None = None) -> Path:
    jsonl(root / "python" / "codebase.jsonl", codebase)
    jsonl(root / "python" / "test.jsonl", test if test is not None else [csn("u0"), csn("u1")])
    return root


def adv(i: int, **kw) -> dict:
    return {"url": f"https://g/{i}", "idx": i, "docstring_tokens": ["Open", "it", str(i)],
            "function_tokens": ["def", "func", "(", ")"], **kw}


def xl(url: str, **kw) -> dict:
    return {"idx": url, "url": url, "docstring_tokens": ["Sort", "it", url], "code_tokens": ["void", url], **kw}


QRELS = "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\n"


def beir_files(f: Path, corpus: list | None = None, queries: list | None = None, qrels: str | bytes = QRELS) -> Path:
    jsonl(f / "corpus.jsonl", corpus if corpus is not None else
          [{"_id": "d1", "title": "a.py", "text": "def a(): pass"}, {"_id": "d2", "text": "def b(): pass"}])
    jsonl(f / "queries.jsonl", queries if queries is not None else
          [{"_id": "q1", "text": "find a"}, {"_id": "q2", "text": "find b"}])
    (f / "qrels").mkdir(parents=True, exist_ok=True)
    (f / "qrels" / "test.tsv").write_bytes(qrels if isinstance(qrels, bytes) else qrels.encode())
    return f


def subset_file(path: Path, rows: dict) -> Path:
    pd.DataFrame(rows).to_parquet(path)
    return path


# ----------------------------------------------------------------------------------- bad input files


@dataclass
class Bad:
    """One malformed file: ``make(tmp)`` writes it and returns ``(load, the bad file)``; the error must
    name the file, ``line`` (None: the whole file) and ``field`` (None: no field applies) and hold ``text``."""

    name: str
    make: Callable[[Path], tuple[Callable[[], object], Path]]
    line: int | None
    field: str | None
    text: str


def _cosqa(items, pool=None, close=True):
    def make(t: Path):
        path = cosqa_files(t, items, pool, close)
        return (lambda: load_cosqa(t)), path
    return make


def _cosqa_map(pool: dict | str):
    def make(t: Path):
        cosqa_files(t, [cq(0)], pool)
        return (lambda: load_cosqa(t)), t / "code_idx_map.txt"
    return make


def _csn(codebase=None, test=None, bad="codebase"):
    def make(t: Path):
        csn_files(t, codebase if codebase is not None else [csn("u0"), csn("u1"), csn("u2")], test)
        return (lambda: load_csn(t, "python")), t / "python" / f"{bad}.jsonl"
    return make


def _adv(rows):
    def make(t: Path):
        path = jsonl(t / "test.jsonl", rows)
        return (lambda: load_advtest(t)), path
    return make


def _xl(rows):
    def make(t: Path):
        path = jsonl(t / "Java" / "test.jsonl", rows)
        return (lambda: load_xlcost(t, "Java")), path
    return make


def _beir(bad: str, **files):
    def make(t: Path):
        beir_files(t, **files)
        return (lambda: load_beir(t)), t / bad
    return make


def _subset(rows: dict | None = None, raw: bytes | None = None):
    def make(t: Path):
        path = t / "pick.parquet"
        if raw is not None:
            path.write_bytes(raw)
        else:
            subset_file(path, rows)
        return (lambda: load_subset(path)), path
    return make


OK3 = [cq(0), cq(1), cq(2)]
BAD_INPUT = [
    # CoSQA: the query file (JSON list) and the pool (JSON object code -> index)
    Bad("cosqa: truncated json", _cosqa([cq(0), cq(1), cut(cq(2), '"retrieval_idx":')], close=False), 4, "retrieval_idx",
        "truncated"),
    Bad("cosqa: malformed json (missing comma)", _cosqa([cq(0), json.dumps(cq(1)).replace(", ", " ", 1)]), 3,
        "idx", "invalid JSON"),
    Bad("cosqa: wrong type (str gold)", _cosqa([cq(0), cq(1, retrieval_idx="1")]), 3, "retrieval_idx",
        "expected an integer, got str"),
    Bad("cosqa: wrong type (float gold)", _cosqa([cq(0), cq(1, retrieval_idx=1.0)]), 3, "retrieval_idx",
        "expected an integer, got float"),
    Bad("cosqa: missing field", _cosqa([cq(0), {"idx": "q1", "retrieval_idx": 1}]), 3, "doc", "missing"),
    Bad("cosqa: duplicate id", _cosqa([cq(0), cq(1), cq(0)]), 4, "idx", "duplicate id 'q0' (first on line 2)"),
    Bad("cosqa: empty query", _cosqa([cq(0), cq(1, doc=" \t ")]), 3, "doc", "empty text"),
    Bad("cosqa: non-UTF-8 bytes", _cosqa([cq(0), b'{"idx": "q1", "doc": "caf\xe9 au lait", "retrieval_idx": 1}']),
        3, "doc", "not valid UTF-8 (byte 0xe9"),
    Bad("cosqa: gold id absent from the pool", _cosqa([cq(0), cq(1), cq(7)]), 4, "retrieval_idx",
        "retrieval_idx 7 is not in the pool"),
    Bad("cosqa: empty query file", _cosqa([]), None, None, "no records: the file is empty"),
    Bad("cosqa pool: empty corpus", _cosqa_map({}), 1, None, "empty pool"),
    Bad("cosqa pool: truncated json", _cosqa_map('{\n"def a():\\n    return 1": 0,\n"def b():\\n   '), 3, None,
        "truncated"),
    Bad("cosqa pool: index not an integer", _cosqa_map('{\n"def a(): return 1": 0,\n"def b(): return 2": "1"\n}'),
        3, None, "must be an integer, got '1'"),
    Bad("cosqa pool: duplicate index", _cosqa_map({"def a(): return 1": 0, "def b(): return 2": 0}), 3, None,
        "duplicate index 0 (first on line 2)"),
    Bad("cosqa pool: duplicate code", _cosqa_map('{\n"def a(): pass": 0,\n"def a(): pass": 1\n}'), 3, None,
        "duplicate key"),
    Bad("cosqa pool: empty code", _cosqa_map({"def a(): return 1": 0, "   ": 1}), 3, None, "empty code text"),
    # CodeSearchNet (GraphCodeBERT): codebase.jsonl pool + test.jsonl queries
    Bad("csn: truncated jsonl", _csn([csn("u0"), csn("u1"), cut(csn("u2"), '"code_tokens": ["def", "f')]), 3,
        "code_tokens", "the line looks truncated"),
    Bad("csn: malformed line (not an object)", _csn([csn("u0"), "[1, 2]"]), 2, None, "expected a JSON object, found list"),
    Bad("csn: wrong type (int code)", _csn([csn("u0"), csn("u1", code_tokens=5)]), 2, "code_tokens",
        "expected a string or a list of strings, got int"),
    Bad("csn: wrong type (int in token list)", _csn([csn("u0"), csn("u1", code_tokens=["def", 3])]), 2,
        "code_tokens", "token list holds a int"),
    Bad("csn: wrong type (list id)", _csn([csn("u0"), csn(["u1"])]), 2, "url", "expected a string or integer id"),
    Bad("csn: missing field", _csn(test=[csn("u0"), {"docstring_tokens": ["x", "y"]}], bad="test"), 2, "url",
        "missing (present: docstring_tokens)"),
    Bad("csn: duplicate id", _csn([csn("u0"), csn("u1"), csn("u1")]), 3, "url", "duplicate id 'u1' (first on line 2)"),
    Bad("csn: empty code", _csn([csn("u0"), csn("u1", code_tokens=[])]), 2, "code_tokens", "empty text"),
    Bad("csn: empty query", _csn(test=[csn("u0"), csn("u1", docstring_tokens=["", " "])], bad="test"), 2,
        "docstring_tokens", "empty text"),
    Bad("csn: non-UTF-8 bytes", _csn(test=[csn("u0"), b'{"url": "u1", "docstring_tokens": ["caf\xe9"]}'], bad="test"),
        2, "docstring_tokens", "not valid UTF-8"),
    Bad("csn: gold id absent from the pool", _csn(test=[csn("u0"), csn("u9")], bad="test"), 2, "url",
        "url 'u9' has no code in"),
    Bad("csn: empty corpus", _csn(["", "  "]), None, None, "no records: the file is empty"),
    # AdvTest: test.jsonl is queries and pool
    Bad("advtest: truncated jsonl", _adv([adv(0), cut(adv(1), '"function_tokens": [')]), 2, "function_tokens",
        "truncated"),
    Bad("advtest: duplicate idx", _adv([adv(0), adv(1), adv(1, url="https://g/x")]), 3, "idx", "duplicate id '1'"),
    Bad("advtest: wrong type (bool idx)", _adv([adv(0), adv(1, idx=True)]), 2, "idx", "got bool"),
    Bad("advtest: empty file", _adv(["", ""]), None, None, "no records"),
    # XLCoST
    Bad("xlcost: duplicate id", _xl([xl("1-Java-1"), xl("1-Java-2"), xl("1-Java-1")]), 3, "url",
        "duplicate id '1-Java-1' (first on line 1)"),
    Bad("xlcost: empty query", _xl([xl("1-Java-1"), xl("1-Java-2", docstring_tokens="   ")]), 2,
        "docstring_tokens", "empty text"),
    Bad("xlcost: missing code", _xl([xl("1-Java-1"), {"url": "1-Java-2", "docstring_tokens": ["a"]}]), 2,
        "code_tokens", "missing"),
    # BEIR / CoIR: corpus.jsonl, queries.jsonl, qrels/test.tsv
    Bad("beir corpus: truncated jsonl", _beir("corpus.jsonl", corpus=[{"_id": "d1", "text": "x"}, '{"_id": "d2", "te']),
        2, None, "Unterminated string"),
    Bad("beir corpus: wrong type (list text)", _beir("corpus.jsonl", corpus=[{"_id": "d1", "text": "x"},
                                                                          {"_id": "d2", "text": ["y"]}]),
        2, "text", "expected a string, got list"),
    Bad("beir corpus: every document empty", _beir("corpus.jsonl", corpus=[{"_id": "d1", "text": ""},
                                                                        {"_id": "d2", "title": "", "text": None}]),
        1, "text", "empty text and title in every document"),
    Bad("beir corpus: empty corpus", _beir("corpus.jsonl", corpus=[]), None, None, "no records"),
    Bad("beir queries: empty query", _beir("queries.jsonl", queries=[{"_id": "q1", "text": "a"},
                                                                   {"_id": "q2", "text": ""}]),
        2, "text", "empty text"),
    Bad("beir qrels: missing column", _beir("qrels/test.tsv", qrels="query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\n"),
        3, "score", "expected 3 tab-separated columns, found 2"),
    Bad("beir qrels: wrong type (float score)",
        _beir("qrels/test.tsv", qrels="query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t0.5\n"), 3, "score",
        "expected an integer, got '0.5'"),
    Bad("beir qrels: gold id absent from the pool",
        _beir("qrels/test.tsv", qrels="query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td7\t1\n"), 3, "corpus-id",
        "corpus id 'd7' is not in"),
    Bad("beir qrels: non-UTF-8 bytes",
        _beir("qrels/test.tsv", qrels=b"query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td\xff2\t1\n"), 3, "corpus-id",
        "not valid UTF-8 (byte 0xff"),
    Bad("beir qrels: neither header nor judgement", _beir("qrels/test.tsv", qrels="q1\td1\tyes\n"), 1, None,
        "expected the header 'query-id<TAB>corpus-id<TAB>score'"),
    Bad("beir qrels: duplicate judgement",
        _beir("qrels/test.tsv", qrels="query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td1\t2\n"), 3, None,
        "duplicate judgement ('q1', 'd1') (first on line 2)"),
    # a training subset exported by the 03 explorer (subset_file=), read by 04
    Bad("subset parquet: not parquet", _subset(raw=b"PAR1 this is not parquet"), None, None,
        "not a readable parquet file"),
    Bad("subset parquet: missing column", _subset({"id": ["a"], "code": ["def f(): pass"]}), None, "query",
        "missing column(s) ['query']"),
    Bad("subset parquet: empty query", _subset({"id": ["a", "b"], "query": ["sort it", " "], "code": ["x", "y"]}),
        None, "query", "row 1 (0-based) has an empty query"),
    Bad("subset parquet: wrong type (null code)",
        _subset({"id": ["a", "b"], "query": ["sort it", "find it"], "code": ["x", None]}), None, "code",
        "row 1 (0-based) has a missing code"),
    Bad("subset parquet: wrong type (float id)",
        _subset({"id": [1.5, 2.5], "query": ["q1", "q2"], "code": ["x", "y"]}), None, "id",
        "row 0 (0-based) has a non-string id (1.5)"),
    Bad("subset parquet: duplicate id", _subset({"id": ["a", "a"], "query": ["q1", "q2"], "code": ["x", "y"]}),
        None, "id", "id 'a' is on rows [0, 1]"),
    Bad("subset parquet: empty", _subset({"id": [], "query": [], "code": []}), None, None, "no rows"),
]


@pytest.mark.parametrize("case", BAD_INPUT, ids=[c.name for c in BAD_INPUT])
def test_bad_input_file_names_file_line_and_field(case: Bad, tmp_path: Path) -> None:
    load, path = case.make(tmp_path)
    with fault("bad input", case.name) as f:
        with pytest.raises(InputFormatError) as e:
            load()
        msg = f.saw(e.value)
        where = f"{path}:{case.line}: " if case.line is not None else f"{path}: "
        assert msg.startswith(where), msg
        assert (e.value.path, e.value.line, e.value.field) == (str(path), case.line, case.field), msg
        if case.field:
            assert f"field '{case.field}'" in msg, msg
        assert case.text in msg, msg


def test_long_code_is_kept_whole_and_counted(tmp_path: Path) -> None:
    """The documented policy: a 1 MB code string is accepted as it is, and the summary shows it."""
    huge = "def big():\n    return [" + "1, " * 333_333 + "]"
    assert len(huge) > 1_000_000
    csn_files(tmp_path, [csn("u0"), csn("u1", code_tokens=huge.split(" "))])
    with fault("bad input", "1 MB code string (CSN codebase)") as f:
        task = load_csn(tmp_path, "python", code_field="code_tokens")
        s = task.summary()
        f.saw(f"summary: max_code_chars={s['max_code_chars']}, n_code_over_100k_chars={s['n_code_over_100k_chars']}")
        assert task.corpus["u1"] == huge and s["max_code_chars"] == len(huge)
        assert s["n_code_over_100k_chars"] == 1 and LONG_CODE_CHARS == 100_000
        f.keep(len(task.corpus))


def test_broken_sweep_file_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "grid.yaml"
    path.write_text("notebooks: [01]\ngrid: {lr: [0.1, 0.2}\n")
    with fault("bad input", "malformed sweep YAML") as f:
        with pytest.raises(ParameterError) as e:
            load_sweep(path)
        msg = f.saw(e.value)
        assert msg.startswith(f"{path}: not valid YAML") and "line 2, column 21" in msg


# ------------------------------------------------------------------------------- untrusted source

GOOD = '''def add_all(xs):
    """Add all the numbers in the list together."""
    total = 0
    for x in xs:
        total += x
    return total
'''


def evil_source(marker: Path) -> str:
    """Source whose top level writes ``marker`` and exits if it is ever imported or executed."""
    return (f"import pathlib\npathlib.Path({str(marker)!r}).write_text('executed')\n"
            "raise SystemExit('mined code was executed')\n\n\n"
            + GOOD.replace("add_all", "sum_rows").replace("numbers in the list", "rows of the table"))


def make_wheel(folder: Path, name: str, files: dict[str, str | bytes]) -> str:
    """A wheel ``<name>-1.0`` in ``folder/wheels`` holding ``files`` under the package ``name``; its spec."""
    (folder / "wheels").mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(folder / "wheels" / f"{name}-1.0-py3-none-any.whl", "w", zipfile.ZIP_DEFLATED) as zf:
        for rel, data in files.items():
            zf.writestr(f"{name}/{rel}", data)
        zf.writestr(f"{name}-1.0.dist-info/METADATA", f"Name: {name}\nVersion: 1.0\n")
    return f"{name.replace('_', '-')}==1.0"


ONE_BAD_FUNCTION = GOOD + '''

def broken(xs):
    """Return the numbers the caller asked for."""
    return [x for x in xs if x >]
'''

UNTRUSTED = [
    ("file that does not parse", "def (:\n    pass\n", "file:syntax_error"),
    ("deeply nested parentheses (5,000)", "x = " + "(" * 5000 + ")" * 5000 + "\n", "file:syntax_error"),
    ("deeply nested brackets (100,000)", "x = " + "[" * 100_000 + "]" * 100_000 + "\n", "file:syntax_error"),
    ("deep expression (RecursionError in ast.parse)", "x = " + "1+" * 100_000 + "1\n", "file:too_deep"),
    ("deep unary chain (MemoryError in ast.parse)", "x = " + "not " * 100_000 + "1\n", "file:memory_error"),
    ("huge file (30 MB)", GOOD + "#" * (30 * 1024 * 1024), "file:too_large"),
    ("binary file named .py", b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 64, "file:binary"),
    ("non-UTF-8 file", ("# caf\xe9\n" + GOOD).encode("latin-1"), "file:not_utf8"),
]


@pytest.mark.parametrize("name,data,reason", UNTRUSTED, ids=[u[0] for u in UNTRUSTED])
def test_untrusted_file_is_skipped_and_counted(name: str, data: str | bytes, reason: str, tmp_path: Path) -> None:
    """Mined through the real corpus pipeline (a wheel read as a zip): the bad file is skipped under its
    reason in the source's stats, the good file of the same package is kept."""
    pkg = "fault_" + "".join(c for c in reason if c.isalnum())
    spec = make_wheel(tmp_path, pkg, {"good.py": GOOD, "bad.py": data})
    with fault("untrusted source", name) as f:
        df, stats = mine_corpus_source(spec, data_dir=tmp_path, progress=False)
        filters = stats["filters"]
        f.saw(f"stats['filters']: {filters}")
        assert filters[reason] == 1 and filters["file:ok"] == 1, filters
        assert df["path"].tolist() == [f"{pkg}/good.py"] and df["func_name"].tolist() == ["add_all"]
        f.keep(len(df))
        f.lost = 1 - int((df["func_name"] == "add_all").sum())  # the good file's one function
        assert f.lost == 0


def test_one_broken_function_costs_only_its_block(tmp_path: Path) -> None:
    """A file whose one function has a syntax error keeps its other functions (at their own line
    numbers): the file is counted under file:partial and the broken block under block:syntax_error."""
    spec = make_wheel(tmp_path, "fault_partial", {"good.py": GOOD, "mixed.py": ONE_BAD_FUNCTION.replace(
        "add_all", "add_every").replace("Add all the numbers", "Sum every number")})
    with fault("untrusted source", "syntax error in only one function") as f:
        df, stats = mine_corpus_source(spec, data_dir=tmp_path, progress=False)
        filters = stats["filters"]
        f.saw(f"stats['filters']: {filters}; mined {sorted(zip(df['path'], df['func_name'], strict=True))}")
        assert filters["file:ok"] == 1 and filters["file:partial"] == 1 and filters["block:syntax_error"] == 1
        assert "file:syntax_error" not in filters
        assert sorted(zip(df["path"], df["func_name"], strict=True)) == [
            ("fault_partial/good.py", "add_all"), ("fault_partial/mixed.py", "add_every")]
        f.keep(len(df))
        f.lost = 2 - len(df)
        assert f.lost == 0

def test_mined_code_is_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "EXECUTED"
    src = evil_source(marker)
    spec = make_wheel(tmp_path, "fault_evil", {"__init__.py": src, "setup.py": src, "worker.py": src})
    with fault("untrusted source", "top level writes a marker and raises SystemExit") as f:
        df, stats = mine_corpus_source(spec, data_dir=tmp_path, progress=False)
        funcs, one = mine_source(src.encode(), "worker.py")
        f.saw(f"mined {sorted(df['path'])} (functions {sorted(set(df['func_name']))}); marker written: {marker.exists()}")
        assert not marker.exists(), "mined source was executed"
        # parsed, not executed: the function after the SystemExit is mined from both files
        assert sorted(df["path"]) == ["fault_evil/__init__.py", "fault_evil/worker.py"]
        assert set(df["func_name"]) == {"sum_rows"} and [fn.func_name for fn in funcs] == ["sum_rows"]
        assert stats["filters"]["path:setup_or_conftest"] == 1 and one["file:ok"] == 1
        f.keep(len(df))


def test_symlink_loop_in_a_source_folder_is_skipped_and_counted(tmp_path: Path) -> None:
    """The stdlib walker over a folder holding a directory link to itself, a self-referencing file link,
    and a file link: none is followed, each is counted, the real file is mined."""
    root = tmp_path / "lib"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "good.py").write_text(GOOD)
    (root / "pkg" / "loop").symlink_to(root / "pkg", target_is_directory=True)
    (root / "pkg" / "self.py").symlink_to(root / "pkg" / "self.py")
    (root / "pkg" / "alias.py").symlink_to(root / "pkg" / "good.py")
    source = StdlibSource(ref=parse_source("stdlib"), origin="stdlib", location=str(root))
    with fault("untrusted source", "symlink loop in a source folder") as f:
        stats: Counter = Counter()
        mined = {rel: mine_source(data, rel)[0] for rel, data in iter_source_files(source, stats)}
        f.saw(f"skipped: {dict(stats)}")
        assert stats["path:symlink"] == 3 and list(mined) == ["pkg/good.py"]
        assert [fn.func_name for fn in mined["pkg/good.py"]] == ["add_all"]
        f.keep(1)



def test_symlinks_in_an_installed_distribution_are_skipped_and_counted(tmp_path: Path) -> None:
    """An installed distribution (read through its RECORD, as ``open_source`` does when the pinned
    version is installed) whose RECORD lists a file link, a file under a folder link that loops, and
    a link to a file outside the installation: the same rule as the stdlib walker, none followed,
    each counted, the real file mined."""
    import importlib.metadata as md

    site = tmp_path / "site-packages"
    (site / "pkg").mkdir(parents=True)
    (site / "pkg" / "good.py").write_text(GOOD)
    (site / "pkg" / "alias.py").symlink_to(site / "pkg" / "good.py")
    (site / "pkg" / "loop").symlink_to(site / "pkg", target_is_directory=True)
    outside = tmp_path / "elsewhere.py"
    outside.write_text(GOOD.replace("add_all", "add_outside"))
    (site / "pkg" / "out.py").symlink_to(outside)
    info = site / "pkg-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pkg\nVersion: 1.0\n")
    listed = ["pkg/good.py", "pkg/alias.py", "pkg/loop/good.py", "pkg/out.py", "pkg-1.0.dist-info/METADATA"]
    (info / "RECORD").write_text("".join(f"{p},,\n" for p in listed))
    dist = md.PathDistribution(info)
    source = InstalledSource(ref=parse_source("pkg==1.0"), origin="installed", location=str(dist.locate_file("")),
                             dist=dist)
    with fault("untrusted source", "symlinks in an installed distribution's RECORD") as f:
        stats: Counter = Counter()
        mined = {rel: mine_source(data, rel)[0] for rel, data in iter_source_files(source, stats)}
        f.saw(f"skipped: {dict(stats)}")
        assert stats["path:symlink"] == 3 and list(mined) == ["pkg/good.py"]
        assert [fn.func_name for fn in mined["pkg/good.py"]] == ["add_all"]
        f.keep(1)

# --------------------------------------------------------------------------- notebook parameters

BAD_PARAMS = [
    ("unknown name", "epochz", 1, "epochz=1", "unknown parameter 'epochz'"),
    ("wrong type: str for int", "epochs", "two", "epochs=two", "parameter 'epochs' must be of type int, got 'two'"),
    ("wrong type: float for int", "batch_size", 8.5, "batch_size=8.5", "parameter 'batch_size' must be of type int"),
    ("wrong type: list for str", "model", ["minilm"], None, "parameter 'model' must be of type str"),
    ("wrong type: bool for int", "epochs", True, "epochs=true", "parameter 'epochs' must be of type int, got "),
    ("out of range: epochs=0", "epochs", 0, "epochs=0", "parameter 'epochs' must be >= 1, got 0"),
    ("out of range: theta_q=1.5", "theta_q", 1.5, "theta_q=1.5", "parameter 'theta_q' must be in [0, 1]"),
    ("not a choice: device=tpu", "device", "tpu", "device=tpu", "parameter 'device' must be one of"),
]
# the command line reads a value by the parameter's type, so "model=[minilm]" is the string "[minilm]"
# (a model path, checked when loaded): that case has no command-line form
CLI_BAD_PARAMS = [b for b in BAD_PARAMS if b[3] is not None]


@pytest.mark.parametrize("case,name,value,cli,expected", BAD_PARAMS, ids=[b[0] for b in BAD_PARAMS])
def test_bad_parameter_fails_before_any_work_api(case, name, value, cli, expected, tmp_path: Path) -> None:
    """Through the Python API the notebooks call (``open_run``) and the runner (``run_notebooks``)."""
    with fault("notebook parameters", f"python API: {case}") as f:
        with pytest.raises(ParameterError) as e:
            open_run("01_curation", "smoke", {name: value}, run_dir=str(tmp_path / "nb-run"))
        msg = f.saw(e.value)
        assert expected in msg and f"'{name}'" in msg
        with pytest.raises(ParameterError, match=expected.replace("[", r"\[").replace("]", r"\]")):
            run_notebooks("smoke", ["01"], {name: value}, run_dir=tmp_path / "cli-run", log_output=False)
        assert not (tmp_path / "nb-run").exists() and not (tmp_path / "cli-run").exists()


def _cli(args: list[str], runs: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "WORKBENCH_RUNS": str(runs), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "workbench", *args], capture_output=True, text=True, env=env,
                          timeout=120)


@pytest.mark.parametrize("case,name,value,cli,expected", CLI_BAD_PARAMS, ids=[b[0] for b in CLI_BAD_PARAMS])
def test_bad_parameter_fails_before_any_work_cli(case, name, value, cli, expected, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    with fault("notebook parameters", f"CLI --set {cli}") as f:
        proc = _cli(["run", "--preset", "smoke", "--notebooks", "01", "--set", cli], runs)
        msg = f.saw(proc.stderr.strip())
        assert proc.returncode == 2 and msg.startswith("error: ") and expected in msg, proc.stderr
        assert "Traceback" not in proc.stderr and "[workbench] running" not in proc.stdout
        assert not runs.exists() or list(runs.iterdir()) == []


def test_cli_assignment_without_a_value(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    with fault("notebook parameters", "CLI --set without '='") as f:
        proc = _cli(["run", "--preset", "smoke", "--notebooks", "01", "--set", "epochs"], runs)
        msg = f.saw(proc.stderr.strip())
        assert proc.returncode == 2 and msg == "error: expected name=value, got 'epochs'"
        assert not runs.exists() or list(runs.iterdir()) == []


def test_valid_overrides_still_resolve() -> None:
    """The counterpart of the cases above: the same names with good values pass."""
    p = resolve("smoke", {"epochs": 3, "batch_size": 8, "model": "minilm", "theta_q": 0.5, "device": "cpu"})
    assert (p.epochs, p.batch_size, p.theta_q, p.device) == (3, 8, 0.5, "cpu")


# ------------------------------------------------------------------------------------ determinism

STDLIB_FILES = ("textwrap.py", "shlex.py", "string.py", "fnmatch.py", "glob.py", "bisect.py", "heapq.py",
                "calendar.py", "colorsys.py", "posixpath.py", "genericpath.py", "base64.py", "tokenize.py")


def _train_and_score(minilm, train_df: pd.DataFrame, task, out: Path) -> tuple[dict, bytes, dict]:
    """Fine-tune a fresh copy of MiniLM (seed 7, 2 steps), score it; (results, saved weights, state)."""
    set_threads(2)
    enc = copy.deepcopy(minilm)
    cfg = TrainConfig(epochs=1, batch_size=8, lr=1e-4, warmup_ratio=0.0, seed=7)
    train(enc, train_df, cfg, out, show_progress=False)  # saves the final model in out/model
    result = evaluate(enc, task, k=100, batch_size=32, n_boot=50, seed=0, show_progress=False)
    d = result.to_dict()
    scores = {"metrics": d["metrics"], "ci": d["ci"], "per_query": result.per_query.to_dict("list")}
    return scores, (out / "model" / "model.safetensors").read_bytes(), enc.state_dict()


def test_same_seed_gives_identical_metrics_and_weights_on_cpu(minilm, tmp_path: Path) -> None:
    pairs = mine_stdlib_pairs(STDLIB_FILES, 40)
    train_df, test_df = pairs.iloc[:16][["id", "query", "code"]], pairs.iloc[16:]
    task = task_from_pairs(test_df, "stdlib-24")
    with fault("determinism", "two CPU runs, same seed: metrics and saved weights") as f:
        a, wa, state = _train_and_score(minilm, train_df, task, tmp_path / "a")
        b, wb, _ = _train_and_score(minilm, train_df, task, tmp_path / "b")
        f.saw(f"mrr {a['metrics']['mrr']:.4f} vs {b['metrics']['mrr']:.4f}; saved weights equal: {wa == wb}")
        assert a == b and wa == wb
        f.keep(2)
    # not vacuous: training moved the weights away from the shared base model
    base = minilm.state_dict()
    assert any(not torch.equal(v, base[k]) for k, v in state.items())


def test_gpu_non_determinism_is_documented() -> None:
    with fault("determinism", "GPU non-determinism documented (seed_everything)") as f:
        doc = " ".join((seed_everything.__doc__ or "").split())
        f.saw(doc[doc.index("What is and is not reproducible"):])
        assert "On a GPU, ``workbench run`` (``open_run``) seeds with the default ``deterministic=False``" in doc
        assert "index_add" in doc and "cuBLAS" in doc and "thread count" in doc
