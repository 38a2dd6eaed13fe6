"""workbench.corpus: mining filters on real stdlib files and hand-written sources, robustness on bad
input, de-duplication, leakage-free splits, wheel reading and the cached build (no network)."""

from __future__ import annotations

import ast
import hashlib
import os
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import workbench.corpus.build as build_mod
import workbench.corpus.sources as sources_mod
from workbench.corpus import (
    PAIR_COLUMNS,
    CorpusSpec,
    build_corpus,
    code_tokens,
    corpus_dir,
    corpus_stats,
    deduplicate,
    leakage_report,
    mine_corpus_source,
    mine_source,
    parse_source,
    skip_path_reason,
    split_corpus,
    split_for_path,
)
from workbench.corpus.dedup import jaccard, shingles
from workbench.corpus.mining import (
    explain_source,
    first_paragraph,
    is_boilerplate_query,
    is_dunder,
    is_test_name,
    normalize_query,
    query_too_short,
    with_docstring,
)
from workbench.corpus.splits import assign_splits
from workbench.errors import ParameterError, WorkbenchError

STDLIB = Path(sysconfig.get_paths()["stdlib"])


def verdicts(source: str | bytes, path: str = "<string>") -> dict[str, str | None]:
    vs, _ = explain_source(source, path)
    return {v.func_name: v.reason for v in vs}


# ---------------------------------------------------------------- real standard-library files


def test_json_decoder_real_file():
    funcs, stats = mine_source((STDLIB / "json" / "decoder.py").read_bytes(), "json/decoder.py")
    by_name = {f.func_name: f for f in funcs}
    assert set(by_name) == {"py_scanstring", "JSONDecoder.decode", "JSONDecoder.raw_decode"}
    why = verdicts((STDLIB / "json" / "decoder.py").read_bytes())
    assert why["JSONDecoder.__init__"] == "func:dunder"
    assert why["JSONDecodeError.__reduce__"] == "func:dunder"
    assert why["JSONObject"] == "func:no_docstring"
    assert stats["file:ok"] == 1 and stats["func:kept"] == 3 and stats["func:seen"] == len(why)

    decode = by_name["JSONDecoder.decode"]
    assert decode.query == (
        "Return the Python representation of ``s`` (a ``str`` instance containing a JSON document)."
    )
    assert decode.code.startswith("def decode(self, s, _w=WHITESPACE.match):\n    obj, end = self.raw_decode(")
    assert '"""' not in decode.code and "Python representation" not in decode.code
    text = (STDLIB / "json" / "decoder.py").read_text(encoding="utf-8").split("\n")
    assert text[decode.lineno - 1].strip().startswith("def decode(")
    # the body is the file's own lines, dedented by the method's indentation
    body = decode.code.split("\n")[1:]
    start = text.index("        obj, end = self.raw_decode(s, idx=_w(s, 0).end())")
    assert body == [ln[4:] for ln in text[start : start + len(body)]]
    # a multi-line first paragraph is joined into one line
    assert by_name["py_scanstring"].query.startswith("Scan the string s for a JSON string. End is the index")
    assert "\n" not in by_name["py_scanstring"].query


def test_textwrap_real_file_signature_docstrings_and_nested():
    why = verdicts((STDLIB / "textwrap.py").read_bytes())
    for kept in ("wrap", "fill", "shorten", "dedent", "indent"):
        assert why[kept] is None, kept
    # "wrap(text : string) -> [string]" is the first paragraph of TextWrapper.wrap: signature-like
    assert why["TextWrapper.wrap"] == "func:boilerplate_query"
    assert why["TextWrapper._split"] == "func:boilerplate_query"
    assert why["indent.<locals>.predicate"] == "func:nested"
    assert why["TextWrapper.__init__"] == "func:dunder"


def test_shlex_real_file_short_code():
    why = verdicts((STDLIB / "shlex.py").read_bytes())
    assert why["join"] == "func:short_code"  # def + one return line once the docstring is gone
    assert why["quote"] is None and why["shlex.get_token"] is None
    assert why["shlex.read_token"] == "func:no_docstring"


# ---------------------------------------------------------------- each filter on hand-written source


def test_name_filters():
    assert is_test_name("test_parse") and is_test_name("TestCase.run") and is_test_name("runTests")
    assert is_test_name("Parser._testing_helper")
    assert not is_test_name("get_latest") and not is_test_name("greatest_divisor")
    assert is_dunder("__init__") and is_dunder("__eq__")
    assert not is_dunder("_private") and not is_dunder("__private") and not is_dunder("__")


def test_query_filters():
    assert first_paragraph("  Compute  the\n   mean.\n\n  Parameters\n  ----------\n") == "Compute the mean."
    assert query_too_short("Do it.") and not query_too_short("Do it now.")
    for q in [
        "D.get(k[,d]) -> D[k] if k in D, else d.",
        "wrap(text : string) -> [string]",
        "foo(a, b=1)",
        ".. deprecated:: 1.2 use bar",
        ":meta private: helper for the parser",
        ":func:`foo` with another name",
        "Deprecated, use bar instead.",
        "See `numpy.mean` for details.",
        "Alias for :func:`foo` kept for compatibility.",
        "An alias of the function above.",
        "Same as a + b.",
    ]:
        assert is_boilerplate_query(q), q
    for q in [
        "Return the sum of the given numbers.",
        "Seed the random number generator.",
        "Return (a // b, a % b) as a tuple.",
        "Deprecation warnings are collected here.",
    ]:
        assert not is_boilerplate_query(q), q
    assert normalize_query("Return  the `Sum`.") == normalize_query("return the sum")
    assert normalize_query("Return a < b.") != normalize_query("Return a > b.")


BODY = "    total = 0\n    for x in xs:\n        total += x\n    return total\n"


@pytest.mark.parametrize(
    ("source", "name", "reason"),
    [
        ("def add_all(xs):\n" + BODY, "add_all", "func:no_docstring"),
        ('def test_add(xs):\n    """Add all the numbers up."""\n' + BODY, "test_add", "func:test_name"),
        ('class A:\n    def __len__(self):\n        """Count all the items."""\n        return 1\n', "A.__len__",
         "func:dunder"),
        ('def f(xs):\n    """Sum."""\n' + BODY, "f", "func:short_query"),
        ('def f(xs):\n    """Same as sum(xs)."""\n' + BODY, "f", "func:boilerplate_query"),
        ('def f(xs):\n    """Compute the total here."""\n    pass\n', "f", "func:trivial_body"),
        ('def f(xs):\n    """Compute the total here."""\n    ...\n', "f", "func:trivial_body"),
        ('def f(xs):\n    """Compute the total here."""\n    raise NotImplementedError("abstract")\n', "f",
         "func:trivial_body"),
        ('def f(xs):\n    """Compute the total here."""\n    return None\n', "f", "func:trivial_body"),
        ('def f(xs):\n    """Compute the total here."""\n', "f", "func:trivial_body"),
        ('def f(xs):\n    """Compute the total here."""\n\n    # a comment\n    return sum(xs)\n', "f",
         "func:short_code"),
        ('def outer(xs):\n    def inner(y):\n        """Add the numbers up here."""\n' + BODY.replace("    ", "        ")
         + "    return inner(xs)\n", "outer.<locals>.inner", "func:nested"),
        ('def f(xs):\n    """Add all the numbers up."""\n' + BODY, "f", None),
    ],
)
def test_each_function_filter(source, name, reason):
    assert verdicts(source)[name] == reason


def test_docstring_removal_keeps_body_exactly():
    src = (
        "import functools\n\n"
        "class Outer:\n"
        "    class Inner:\n"
        "        @functools.lru_cache(maxsize=None)\n"
        "        async def fetch(self, url):  # keep me\n"
        '            """Fetch the résumé at a url.\n\n'
        "            More text that is not the query.\n"
        '            """\n\n'
        "            # leading comment survives\n"
        "            data = await get(url)   # odd  spacing é\n"
        '            text = """multi\n'
        'line string"""\n\n'
        "            return data, text  # the end\n"
        "x = 1\n"
    )
    (f,), _ = mine_source(src)
    assert f.func_name == "Outer.Inner.fetch" and f.lineno == 6
    assert f.query == "Fetch the résumé at a url."
    assert f.code == (
        "async def fetch(self, url):  # keep me\n"
        "    # leading comment survives\n"
        "    data = await get(url)   # odd  spacing é\n"
        '    text = """multi\n'
        'line string"""\n\n'
        "    return data, text  # the end"
    )
    tabs = 'def h(a):\n\t"""Tab indented function here."""\n\tb = a\n\tc = b\n\treturn c\n'
    (h,), _ = mine_source(tabs)
    assert h.code == "def h(a):\n\tb = a\n\tc = b\n\treturn c"
    # a docstring sharing the def line is cut out with its ";"
    one = verdicts('def g(x): "Add one to the number x."; y = x + 1; return y\n')
    assert one["g"] == "func:short_code"
    vs, _ = explain_source('def g(x): "Add one to the number x."; y = x + 1; return y\n')
    assert vs[0].code == "def g(x): y = x + 1; return y"



def test_docstring_put_back_round_trips_through_the_miner():
    """``with_docstring`` undoes the miner: every function of a real stdlib file, its docstring put
    back, mines again to the same (query, code), and the docstring is the first statement."""
    funcs = [f for name in ("shutil.py", "inspect.py") for f in mine_source((STDLIB / name).read_text(), name)[0]]
    assert len(funcs) >= 60
    for f in funcs:
        restored = with_docstring(f.code, f.query)
        assert ast.get_docstring(ast.parse(restored).body[0]) == f.query
        (again,), _ = mine_source(restored)
        assert (again.query, again.code) == (f.query, f.code)
    # leading comments stay after the docstring; quotes and backslashes survive; tabs are kept
    code = "def f(a,\n      b):\n    # note\n    return a + b"
    out = with_docstring(code, 'Add "two"  numbers\nwith a \\ backslash"')
    assert out.split("\n")[2:4] == ['    """Add "two" numbers with a \\\\ backslash\\""""', "    # note"]
    assert ast.get_docstring(ast.parse(out).body[0]) == 'Add "two" numbers with a \\ backslash"'
    assert with_docstring("def h(a):\n\tb = a\n\treturn b", "Tabs.").split("\n")[1] == '\t"""Tabs."""'
    for bad, why in (("def g(x): return x", "def line"), ("x = 1", "function"), ("def (", "parse")):
        with pytest.raises(ValueError, match=why):
            with_docstring(bad, "Doc.")


def test_a_syntax_error_in_one_function_keeps_the_rest_of_a_real_file():
    """A real stdlib file with Python 2 syntax put into one top-level function mines every other
    function exactly as the intact file does (same names, line numbers, queries and code)."""
    text = (STDLIB / "shutil.py").read_text()
    whole, stats = mine_source(text, "shutil.py")
    assert stats["file:ok"] == 1
    victim = next(f for f in whole if f.func_name == "copyfileobj")
    lines = text.split("\n")
    lines.insert(victim.lineno, '    print "python 2"')  # right after the def line
    broken, stats = mine_source("\n".join(lines), "shutil.py")
    assert stats["file:partial"] == 1 and stats["block:syntax_error"] == 1 and stats["file:ok"] == 0

    def key(fs, shift_after=None):
        return [(f.func_name, f.lineno - (1 if shift_after and f.lineno > shift_after else 0), f.query, f.code)
                for f in fs]

    expected = [f for f in whole if f.func_name != "copyfileobj"]
    assert len(expected) >= 30 and key(broken, shift_after=victim.lineno) == key(expected)

# ---------------------------------------------------------------- untrusted input


def test_bad_inputs_are_skipped_and_counted():
    good = 'def f(xs):\n    """Add all the numbers up."""\n' + BODY
    cases = {
        "file:syntax_error": "def f(:\n    pass\n",
        "file:binary": b"\x7fELF\x00\x01\x02def f(): pass",
        "file:not_utf8": ("# caf\xe9\n" + good).encode("latin-1"),
        "file:too_large": good + "#" * (2 * 1024 * 1024),
        "file:too_deep": "x = " + "1+" * 100_000 + "1\n",
    }
    for reason, data in cases.items():
        funcs, stats = mine_source(data, "bad.py")
        assert funcs == [] and stats[reason] == 1 and "file:ok" not in stats, reason
    funcs, stats = mine_source("x = " + "-" * 300_000 + "1\n")  # MemoryError inside the parser
    assert funcs == [] and (stats["file:memory_error"] == 1 or stats["file:too_deep"] == 1)
    # a BOM, CRLF newlines and a small max_bytes
    funcs, stats = mine_source(("\ufeff" + good).replace("\n", "\r\n").encode("utf-8"))
    assert [f.func_name for f in funcs] == ["f"] and "\r" not in funcs[0].code
    assert mine_source(good, max_bytes=10)[1]["file:too_large"] == 1


def test_skip_paths():
    assert skip_path_reason("pkg/core.py") is None
    assert skip_path_reason("pkg/tests/test_core.py") == "path:tests"
    assert skip_path_reason("pkg/testing/helpers.py") == "path:tests"
    assert skip_path_reason("pkg/benchmarks/bench_io.py") == "path:tests"
    assert skip_path_reason("pkg/conftest.py") == "path:setup_or_conftest"
    assert skip_path_reason("setup.py") == "path:setup_or_conftest"
    assert skip_path_reason("pip/_vendor/requests/api.py") == "path:vendored"
    assert skip_path_reason("sklearn/externals/_packaging/version.py") == "path:vendored"
    assert skip_path_reason("scipy/_lib/array_api_compat/numpy/linalg.py") == "path:vendored"
    assert skip_path_reason("setuptools/_distutils/core.py") == "path:vendored"
    assert skip_path_reason("pkg/data.json") == "path:not_python"
    assert skip_path_reason("idlelib/editor.py", stdlib=True) == "path:stdlib_excluded"
    assert skip_path_reason("idlelib/editor.py", stdlib=False) is None
    assert skip_path_reason("lib2to3/main.py", stdlib=True) == "path:stdlib_excluded"


# ---------------------------------------------------------------- dedup

FUNC_A = '''def moving_average(values, window):
    total = 0.0
    out = []
    for i, value in enumerate(values):
        total += value
        if i >= window:
            total -= values[i - window]
        if i >= window - 1:
            out.append(total / window)
    return out'''

FUNC_A_REFORMATTED = '''def moving_average(values,window):
    # a comment that does not count
    total=0.0
    out=[]
    for i,value in enumerate(values):


        total+=value
        if i>=window:
            total -= values[i-window]  # neither does this
        if i >= window-1:
            out.append(total/window)
    return out'''

FUNC_A_NEAR = FUNC_A.replace("    return out", "    out = list(out)\n    return out")

FUNC_B = '''def parse_header(line):
    key, _, value = line.partition(":")
    key = key.strip().lower()
    if not key:
        raise ValueError("empty header name")
    return key, value.strip()'''


def test_dedup_exact_and_near_duplicates():
    assert code_tokens(FUNC_A) == code_tokens(FUNC_A_REFORMATTED)
    sim = jaccard(shingles(code_tokens(FUNC_A)), shingles(code_tokens(FUNC_A_NEAR)))
    assert 0.8 <= sim < 1.0
    assert jaccard(shingles(code_tokens(FUNC_A)), shingles(code_tokens(FUNC_B))) < 0.2
    res = deduplicate([FUNC_A, FUNC_B, FUNC_A_REFORMATTED, FUNC_A_NEAR])
    assert res.keep.tolist() == [True, True, False, False]
    removed = res.removed.set_index("index")
    assert removed.loc[2, "kind"] == "exact" and removed.loc[2, "duplicate_of"] == 0
    assert removed.loc[3, "kind"] == "near" and removed.loc[3, "duplicate_of"] == 0
    assert removed.loc[3, "jaccard"] == pytest.approx(sim, abs=1e-4)
    assert res.summary["n_exact_removed"] == 1 and res.summary["n_near_removed"] == 1
    # the earlier row wins: reversed input keeps the near copy and drops the original
    rev = deduplicate([FUNC_A_NEAR, FUNC_A])
    assert rev.keep.tolist() == [True, False]


def test_dedup_keeps_distinct_real_functions():
    funcs, _ = mine_source((STDLIB / "textwrap.py").read_bytes())
    funcs2, _ = mine_source((STDLIB / "json" / "__init__.py").read_bytes())
    codes = [f.code for f in funcs + funcs2]
    res = deduplicate(codes)
    assert res.keep.all() and res.removed.empty
    res2 = deduplicate(codes + [codes[0]])
    assert res2.keep.tolist() == [True] * len(codes) + [False]


# ---------------------------------------------------------------- splits


def _frame(rows):
    df = pd.DataFrame(rows, columns=["source", "path", "func_name", "query", "code"])
    df["id"] = [hashlib.sha256(f"{r}".encode()).hexdigest()[:16] for r in df.itertuples()]
    return df


def test_split_by_path_hash_is_deterministic_and_file_level():
    rows = [("pkg", f"pkg/mod{i}.py", f"f{j}", f"query {i} {j} words", f"code {i} {j}") for i in range(400) for j in
            range(3)]
    df = _frame(rows)
    a = assign_splits(df)
    b = assign_splits(df.sample(frac=1.0, random_state=1)).loc[df.index]
    assert (a == b).all()
    assert df.assign(s=a).groupby("path")["s"].nunique().max() == 1
    share = a.groupby(df["path"]).first().value_counts(normalize=True)
    assert 0.74 < share["train"] < 0.86 and 0.05 < share["test"] < 0.15
    assert split_for_path("pkg", "pkg/mod0.py", seed=1) in {"train", "valid", "test"}
    assert [split_for_path("pkg", f"p{i}.py") for i in range(50)] == [split_for_path("pkg", f"p{i}.py") for i in
                                                                       range(50)]
    with pytest.raises(ParameterError):
        split_for_path("pkg", "x.py", fractions=(0.5, 0.2, 0.2))


def test_split_drops_test_queries_seen_in_train_and_repeats():
    train_path = next(f"a{i}.py" for i in range(1000) if split_for_path("pkg", f"a{i}.py") == "train")
    test_path = next(f"b{i}.py" for i in range(1000) if split_for_path("pkg", f"b{i}.py") == "test")
    rows = [
        ("pkg", train_path, "f", "Return the sum of values.", "def f(): return 1"),
        ("pkg", test_path, "g", "Return the  SUM of values", "def g(): return 2"),  # seen in train
        ("pkg", test_path, "h", "Open the file for reading.", "def h(): return 3"),
        ("pkg", test_path, "k", "Open the file for reading.", "def k(): return 4"),  # repeated
        ("pkg", test_path, "m", "Close the file after use.", "def m(): return 5"),
    ]
    ood = _frame([("stdlib", "x.py", "o", "Return the sum of values.", "def o(): return 6"),
                  ("stdlib", "y.py", "p", "Parse the header line.", "def p(): return 7")])
    out, report = split_corpus(_frame(rows), ood)
    test = out[out["split"] == "test"]
    assert sorted(test["func_name"]) in (["h", "m"], ["k", "m"])
    assert report["test"] == {"query_seen_in_train": 1, "repeated_query": 1}
    assert out[out["split"] == "ood"]["func_name"].tolist() == ["p"]
    leak = leakage_report(out)
    assert leak["clean"] and leak["train_test_query_overlap"] == 0
    # the report does see leakage when it is there
    bad = pd.concat([out, out.iloc[[0]].assign(split="test")], ignore_index=True)
    leak = leakage_report(bad)
    assert not leak["clean"] and leak["train_test_query_overlap"] == 1 and leak["cross_split_code_duplicates"] == 1


# ---------------------------------------------------------------- sources


def test_parse_source():
    assert parse_source("Scikit_Learn==1.9.1").name == "scikit-learn"
    ref = parse_source("stdlib:json,email/")
    assert ref.is_stdlib and ref.prefixes == ("email", "json")
    assert ref.selects("json/decoder.py") and ref.selects("email/utils.py") and not ref.selects("jsonx/a.py")
    for bad in ("numpy", "numpy>=1", "", "stdlib==2.7.18"):
        with pytest.raises(ParameterError):
            parse_source(bad)


def _fake_wheel(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "fakepkg_corpus-1.0-py3-none-any.whl"
    good = 'def add_all(xs):\n    """Add all the numbers up."""\n' + BODY
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("fakepkg_corpus/__init__.py", good)
        zf.writestr("fakepkg_corpus/tests/test_core.py", good)
        zf.writestr("fakepkg_corpus/_vendor/six.py", good)
        zf.writestr("fakepkg_corpus/latin.py", ("# caf\xe9\n" + good).encode("latin-1"))
        zf.writestr("fakepkg_corpus/broken.py", "def (:\n")
        zf.writestr("fakepkg_corpus-1.0.dist-info/METADATA", "Name: fakepkg-corpus\nVersion: 1.0\n")
    return path


def test_wheel_source_read_from_zip(tmp_path):
    wheel = _fake_wheel(tmp_path / "wheels")
    df, stats = mine_corpus_source("fakepkg-corpus==1.0", data_dir=tmp_path, progress=False)
    assert stats["provenance"]["origin"] == "wheel" and stats["provenance"]["location"] == str(wheel)
    assert df["path"].tolist() == ["fakepkg_corpus/__init__.py"] and df["func_name"].tolist() == ["add_all"]
    assert df["source"].tolist() == ["fakepkg-corpus"] and df["version"].tolist() == ["1.0"]
    f = stats["filters"]
    assert f["path:tests"] == 1 and f["path:vendored"] == 1 and f["file:not_utf8"] == 1
    assert f["file:syntax_error"] == 1 and f["path:not_python"] == 1


def test_failed_download_names_package_and_command(tmp_path, monkeypatch):
    def fake_run(cmd, **kw):
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution found for nopkg==9.9")

    monkeypatch.setattr(sources_mod.subprocess, "run", fake_run)
    with pytest.raises(WorkbenchError) as info:
        sources_mod.open_source("nopkg-corpus-test==9.9", data_dir=tmp_path)
    msg = str(info.value)
    assert "nopkg-corpus-test==9.9" in msg and "No matching distribution" in msg
    assert "-m pip download --no-deps --only-binary=:all:" in msg and str(tmp_path / "wheels") in msg


# ---------------------------------------------------------------- build and cache

IN_SPEC = "stdlib:json,email,http,urllib,logging,xml"
OOD_SPEC = "stdlib:textwrap.py,shlex.py,argparse.py,pathlib.py,datetime.py,ipaddress.py,fractions.py"


def test_build_corpus_round_trip_and_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_DATA", str(tmp_path))
    spec = CorpusSpec(in_distribution=[IN_SPEC], ood=[OOD_SPEC], max_pairs={"ood": 150})
    df = build_corpus(spec, progress=False)
    assert list(df.columns) == PAIR_COLUMNS
    assert set(df["split"]) == {"train", "valid", "test", "ood"}
    assert (df["split"] == "ood").sum() == 150
    assert df["id"].is_unique and df["id"].str.fullmatch(r"[0-9a-f]{16}").all()
    assert (df["language"] == "python").all() and (df["source"] == "stdlib").all()
    row = df.iloc[0]
    (lineno,) = [f.lineno for f in mine_source((STDLIB / row["path"]).read_bytes())[0] if f.func_name == row["func_name"]]
    assert row["id"] == hashlib.sha256(f"stdlib|{row['path']}|{row['func_name']}|{lineno}".encode()).hexdigest()[:16]
    assert df.groupby("path")["split"].nunique().max() == 1  # a file lies in one split
    assert leakage_report(df)["clean"]
    train_q = set(df.loc[df["split"] == "train", "query"].map(normalize_query))
    assert not train_q & set(df.loc[df["split"] != "train", "query"].map(normalize_query))

    out = corpus_dir(spec)
    assert out.parent == tmp_path / "corpus"
    stats = build_mod.read_json(out / "stats.json")
    assert stats["counts"]["split"] == df["split"].value_counts().reindex(["train", "valid", "test", "ood"]).to_dict()
    assert stats["leakage"]["clean"] and stats["sources"][IN_SPEC]["filters"]["func:kept"] > 500
    assert stats["dedup"]["n_input"] == sum(s["n_pairs"] for s in stats["sources"].values())
    assert len(list((tmp_path / "corpus" / "sources").glob("*.parquet"))) == 2

    t0 = time.perf_counter()
    again = build_corpus(spec)
    assert time.perf_counter() - t0 < 1.0
    pd.testing.assert_frame_equal(again, df)

    # the corpus is served memory-mapped from pairs.arrow: the parquet's rows, and a `datasets` table
    import datasets
    import pyarrow as pa

    pd.testing.assert_frame_equal(pd.read_parquet(out / "pairs.parquet"), df)
    ds = datasets.Dataset.from_file(str(out / "pairs.arrow"))
    assert ds.column_names == PAIR_COLUMNS and ds["id"] == df["id"].tolist()
    assert all(isinstance(c, pa.ChunkedArray) and c.num_chunks == 1 for c in ds.data.columns)
    (out / "pairs.arrow").unlink()  # an entry built before the Arrow copy existed: it gets one
    pd.testing.assert_frame_equal(build_corpus(spec), df)
    assert (out / "pairs.arrow").exists()

    # training pairs by position: exactly the rows DataFrame.sample draws from the train split
    from workbench.experiment import training_sample

    for n, seed in ((50, 0), (50, 7), (10**6, 0)):
        want = df[df["split"] == "train"]
        want = want if n >= len(want) else want.sample(n=n, random_state=seed)
        pd.testing.assert_frame_equal(training_sample(again, n, seed), want.reset_index(drop=True))

    # a new source mines only itself; the others come from the per-source cache
    opened = []
    real_open = build_mod.open_source
    monkeypatch.setattr(build_mod, "open_source", lambda ref, **kw: opened.append(ref.spec) or real_open(ref, **kw))
    spec2 = CorpusSpec(in_distribution=[IN_SPEC], ood=[OOD_SPEC, "stdlib:csv.py"], max_pairs={"ood": 150})
    df2 = build_corpus(spec2, progress=False)
    assert opened == ["stdlib:csv.py"]
    assert corpus_dir(spec2) != corpus_dir(spec)
    pd.testing.assert_frame_equal(df2[df2["split"] != "ood"].reset_index(drop=True),
                                  df[df["split"] != "ood"].reset_index(drop=True))

    table = corpus_stats(df)
    assert table.loc[("ood", "all"), "pairs"] == 150
    assert table.loc[("train", "stdlib"), "median_query_words"] >= 3


def test_source_cap_and_spec_validation(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_DATA", str(tmp_path))
    spec = CorpusSpec(in_distribution=["stdlib:json,textwrap.py,shlex.py"], ood=[], per_source_cap=10,
                      fractions=(0.6, 0.2, 0.2))
    df = build_corpus(spec, progress=False)
    assert 0 < len(df) <= 10 and "ood" not in set(df["split"])
    assert build_corpus(spec)["id"].tolist() == df["id"].tolist()
    with pytest.raises(ParameterError, match="fractions"):
        CorpusSpec(in_distribution=["stdlib"], ood=[], fractions=(0.9, 0.2, 0.1))
    with pytest.raises(ParameterError, match="pin a version"):
        CorpusSpec(in_distribution=["numpy"])
    with pytest.raises(ParameterError, match="max_pairs"):
        CorpusSpec(in_distribution=["stdlib"], ood=[], max_pairs={"training": 5})
    with pytest.raises(ParameterError, match="in_distribution"):
        CorpusSpec(in_distribution="stdlib")
    with pytest.raises(ParameterError, match="also in corpus.in_distribution"):
        CorpusSpec(in_distribution=["stdlib"], ood=["stdlib"])
    with pytest.raises(ParameterError, match="no file"):
        build_corpus(CorpusSpec(in_distribution=["stdlib:no_such_module_here"], ood=[]), progress=False)
    assert CorpusSpec.from_dict(spec.to_dict()).key_params() == spec.key_params()
    assert np.isclose(sum(spec.fractions), 1.0)


_BUILD_ONCE = """
import sys, time
from workbench.corpus import CorpusSpec, build as build_mod
real = build_mod.split_corpus
def counted(*a, **kw):
    print("BUILT", flush=True)
    time.sleep(1.0)  # hold the lock long enough for the other process to arrive
    return real(*a, **kw)
build_mod.split_corpus = counted
df = build_mod.build_corpus(CorpusSpec(in_distribution=[sys.argv[1]], ood=[], per_source_cap=40), progress=False)
print("ROWS", len(df), flush=True)
"""


def test_two_processes_building_one_corpus_build_it_once(tmp_path):
    """Two processes that miss the same cache entry at once (two notebooks of a sweep, two test
    workers): the second waits on the build lock (``store.build_lock``), then loads the first one's
    corpus instead of mining it again."""
    env = {**os.environ, "WORKBENCH_DATA": str(tmp_path)}
    procs = [subprocess.Popen([sys.executable, "-c", _BUILD_ONCE, "stdlib:json,textwrap.py,shlex.py"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e[-2000:] for _, e in outs]
    assert sum(o.count("BUILT") for o, _ in outs) == 1, outs
    rows = {line for o, _ in outs for line in o.splitlines() if line.startswith("ROWS")}
    assert len(rows) == 1 and rows != {"ROWS 0"}
    assert list((tmp_path / "corpus").glob("*.lock"))  # the lock file beside the entry
