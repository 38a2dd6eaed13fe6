"""The OOD suite: AdvTest-style obfuscation on real standard-library functions (exact output,
untouched names, behaviour in a subprocess, survival rate), leakage checks with planted copies,
dataset cards, the distribution gap, and a small suite build from stdlib prefixes (no network)."""

from __future__ import annotations

import ast
import json
import subprocess
import symtable
import sys
import sysconfig
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from workbench import ood
from workbench.cards import (
    cards_table,
    dataset_card,
    distribution_gap,
    gap_figure,
    gap_projection,
    length_figure,
    source_table,
)
from workbench.corpus import CorpusSpec, mine_corpus_source, mine_source, normalize_query
from workbench.corpus.obfuscate import FAILURE_REASONS, obfuscate, obfuscate_frame, rename_back
from workbench.errors import ParameterError
from workbench.ood import OodGroup, build_ood_suite, leakage_report, load_ood_stats, ood_dir, suite_tasks

STDLIB = Path(sysconfig.get_paths()["stdlib"])


def mined(relpath: str) -> dict[str, str]:
    funcs, _ = mine_source((STDLIB / relpath).read_bytes(), relpath)
    return {f.func_name: f.code for f in funcs}


# ---------------------------------------------------------------- exact output on real functions

INDENT_ORIGINAL = '''def indent(text, prefix, predicate=None):
    if predicate is None:
        def predicate(line):
            return line.strip()

    def prefixed_lines():
        for line in text.splitlines(True):
            yield (prefix + line if predicate(line) else line)
    return ''.join(prefixed_lines())'''

# hand-checked: parameters first; ``predicate`` (parameter, then rebound by a nested def) is one
# variable; each nested function's ``line`` is its own variable; ``str.strip`` / ``splitlines`` /
# ``''.join`` are attributes and stay
INDENT_OBFUSCATED = '''def func(arg_0, arg_1, arg_2=None):
    if arg_2 is None:

        def arg_2(arg_3):
            return arg_3.strip()

    def arg_4():
        for arg_5 in arg_0.splitlines(True):
            yield (arg_1 + arg_5 if arg_2(arg_5) else arg_5)
    return ''.join(arg_4())'''

MULTIMODE_ORIGINAL = '''def multimode(data):
    counts = Counter(iter(data))
    if not counts:
        return []
    maxcount = max(counts.values())
    return [value for value, count in counts.items() if count == maxcount]'''

# comprehension variables are locals too; Counter (an imported global), iter and max stay
MULTIMODE_OBFUSCATED = '''def func(arg_0):
    arg_1 = Counter(iter(arg_0))
    if not arg_1:
        return []
    arg_2 = max(arg_1.values())
    return [arg_3 for arg_3, arg_4 in arg_1.items() if arg_4 == arg_2]'''


@pytest.mark.parametrize(
    "relpath, name, original, expected, mapping",
    [
        ("textwrap.py", "indent", INDENT_ORIGINAL, INDENT_OBFUSCATED,
         {"func": "indent", "arg_0": "text", "arg_1": "prefix", "arg_2": "predicate", "arg_3": "line",
          "arg_4": "prefixed_lines", "arg_5": "line"}),
        ("statistics.py", "multimode", MULTIMODE_ORIGINAL, MULTIMODE_OBFUSCATED,
         {"func": "multimode", "arg_0": "data", "arg_1": "counts", "arg_2": "maxcount", "arg_3": "value",
          "arg_4": "count"}),
    ],
)
def test_exact_output_on_real_functions(relpath, name, original, expected, mapping):
    code = mined(relpath)[name]
    if code != original:
        pytest.skip(f"{relpath}:{name} differs in this Python ({sys.version.split()[0]})")
    r = obfuscate(code)
    assert r.ok and r.reason is None
    assert r.code == expected
    assert r.mapping == mapping
    assert r.original == ast.unparse(ast.parse(code))
    assert ast.dump(rename_back(ast.parse(r.code), r.mapping)) == ast.dump(ast.parse(r.original))


# ---------------------------------------------------------------- what is renamed and what is not


def _scope_nodes(fn: ast.AST) -> set[int]:
    """ids of nodes inside nested scopes of fn (functions, lambdas, classes, comprehensions)."""
    inner: set[int] = set()
    for n in ast.walk(fn):
        if n is not fn and isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef,
                                           ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            inner.update(id(m) for m in ast.walk(n) if m is not n)
    return inner


def test_names_untouched_on_real_functions():
    """Position by position (the trees have the same shape): attributes, keyword names, imports
    and constants are equal; an identifier is either unchanged or renamed to func / arg_i and maps
    back; unchanged names directly in the function are globals, builtins or imports (symtable)."""
    n_funcs = n_kept_checked = n_comp = 0
    for rel in ("json/decoder.py", "json/encoder.py", "textwrap.py", "shlex.py", "difflib.py", "calendar.py",
                "statistics.py", "argparse.py", "pathlib.py", "email/message.py", "ipaddress.py", "fractions.py",
                "configparser.py", "tarfile.py"):
        for qual, code in mined(rel).items():
            r = obfuscate(code, method="." in qual)
            assert r.ok, (rel, qual, r.reason)
            orig, obf = ast.parse(r.original), ast.parse(r.code)
            fn = orig.body[0]
            table = next(t for t in symtable.symtable(r.original, "x", "exec").get_children()
                         if t.get_name() == fn.name)
            inner = _scope_nodes(fn)
            body = {id(m) for stmt in fn.body for m in ast.walk(stmt)}
            n_funcs += 1
            n_comp += any(isinstance(n, (ast.ListComp, ast.GeneratorExp, ast.DictComp, ast.SetComp))
                          for n in ast.walk(orig))
            for a, b in zip(ast.walk(orig), ast.walk(obf), strict=True):
                assert type(a) is type(b)
                if isinstance(a, ast.Attribute):
                    assert a.attr == b.attr
                elif isinstance(a, ast.keyword):
                    assert a.arg == b.arg
                elif isinstance(a, ast.alias):
                    assert (a.name, a.asname) == (b.name, b.asname)
                elif isinstance(a, ast.Constant):
                    assert a.value == b.value
                ident = {ast.Name: "id", ast.arg: "arg", ast.FunctionDef: "name", ast.ClassDef: "name"}.get(type(a))
                if ident is None:
                    continue
                old, new = getattr(a, ident), getattr(b, ident)
                if old == new and new not in r.mapping:
                    if isinstance(a, ast.Name) and id(a) in body and id(a) not in inner:
                        sym = table.lookup(old)
                        method_self_ref = "." in qual and old == qual.rsplit(".", 1)[1]
                        assert sym.is_global() or sym.is_imported() or method_self_ref, (qual, old)
                        n_kept_checked += 1
                else:
                    assert new == "func" or (new.startswith("arg_") and new[4:].isdigit()), (qual, new)
                    assert r.mapping[new] == old
    assert n_funcs > 250 and n_kept_checked > 500 and n_comp > 20


@pytest.mark.parametrize(
    "code, method, expected",
    [
        # recursion -> func; a keyword name at the call site and the global stay
        ("def fact(n, acc=1):\n    return acc if n <= 1 else fact(n - 1, acc=acc * n) + OFFSET",
         False, "def func(arg_0, arg_1=1):\n    return arg_1 if arg_0 <= 1 else func(arg_0 - 1, acc=arg_1 * arg_0) + OFFSET"),
        # in a method, the own name in the body is the module's global (here the builtin open)
        ("def open(self, mode):\n    fh = open(self.path, mode)\n    return fh",
         True, "def func(arg_0, arg_1):\n    arg_2 = open(arg_0.path, arg_1)\n    return arg_2"),
        # global declarations stay; nonlocal follows the variable; a new name skips names in use
        ("def f(x):\n    global arg_0\n    n = 0\n    def inc():\n        nonlocal n\n        n += x\n    inc()\n"
         "    arg_0 = func(n)\n    return n",
         False, "def func_1(arg_1):\n    global arg_0\n    arg_2 = 0\n\n    def arg_3():\n        nonlocal arg_2\n"
                "        arg_2 += arg_1\n    arg_3()\n    arg_0 = func(arg_2)\n    return arg_2"),
        # class-body names of a nested class are attributes and stay; the method's locals do not
        ("def make(v):\n    class Box:\n        value = v\n        def get(self):\n            return self.value + v\n"
         "    return Box",
         False, "def func(arg_0):\n\n    class arg_1:\n        value = arg_0\n\n        def get(arg_2):\n"
                "            return arg_2.value + arg_0\n    return arg_1"),
        # imports inside the function, except and walrus targets, lambda parameters
        ("def g(items):\n    import os.path as osp\n    try:\n        key = lambda s: s.lower()\n"
         "    except ValueError as err:\n        raise err\n    if (n := len(items)) > 1:\n        return osp.join(*items), n, key",
         False, "def func(arg_0):\n    import os.path as osp\n    try:\n        arg_1 = lambda arg_2: arg_2.lower()\n"
                "    except ValueError as arg_3:\n        raise arg_3\n    if (arg_4 := len(arg_0)) > 1:\n"
                "        return (osp.join(*arg_0), arg_4, arg_1)"),
    ],
)
def test_scoping_rules(code, method, expected):
    r = obfuscate(code, method=method)
    assert r.ok, r.reason
    assert r.code == expected


@pytest.mark.parametrize(
    "code, reason",
    [
        ("def f(:\n    pass", "syntax_error"),
        ("x = 1", "not_a_function"),
        ("def f():\n    pass\ndef g():\n    pass", "not_a_function"),
        ("def f(a):\n    b = a\n    return '{a}{b}'.format(**locals())", "dynamic_names"),
        ("def f(a):\n    return eval('a + 1')", "dynamic_names"),
        ("def f(a):\n    await a", "original_does_not_compile"),
    ],
)
def test_failures_are_named(code, reason):
    r = obfuscate(code)
    assert not r.ok and r.reason == reason and r.code is None and reason in FAILURE_REASONS


def test_indented_method_text_is_dedented():
    r = obfuscate("    def area(self):\n        w, h = self.size\n        return w * h", method=True)
    assert r.ok and r.code == "def func(arg_0):\n    arg_1, arg_2 = arg_0.size\n    return arg_1 * arg_2"


# ---------------------------------------------------------------- behaviour, in a subprocess

_HARNESS = r"""
import importlib, json, sys
out = []
for case in json.load(sys.stdin):
    mod = importlib.import_module(case["module"])
    results = []
    for variant in ("original", "obfuscated"):
        ns = dict(vars(mod))
        exec(case[variant], ns)
        fn = ns[case["name_" + variant]]
        calls = []
        for src in case["calls"]:
            args = eval(src, ns)
            try:
                result = fn(*args)  # lists passed in are compared after the call (in-place functions)
                calls.append(repr(result) + " | " + repr([a for a in args if isinstance(a, list)]))
            except Exception as exc:
                calls.append("raised " + type(exc).__name__)
        results.append(calls)
    out.append(results)
print(json.dumps(out))
"""

BEHAVIOUR_CASES = [
    ("textwrap.py", "textwrap", "indent", ["('a\\n\\nb\\n', '> ')", "(' x\\n\\ny', '# ', lambda s: True)", "('', '-')"]),
    ("posixpath.py", "posixpath", "split", ["('/usr/lib/x.py',)", "('x',)", "('//a//b',)", "(b'/tmp/f',)"]),
    ("statistics.py", "statistics", "median", ["([3, 1, 2],)", "([4, 1, 3, 2],)", "([],)"]),
    ("statistics.py", "statistics", "multimode", ["('aabbbbccddddeeffffgg',)", "([],)"]),
    ("difflib.py", "difflib", "_keep_original_ws", ["('a\\tb c', '++ ^ ')", "('  x', '^ +')"]),
    ("heapq.py", "heapq", "_siftdown_max", ["([9, 7, 8, 3, 10], 0, 4)", "([1], 0, 0)"]),
    ("calendar.py", "calendar", "Calendar.yeardayscalendar", ["(Calendar(), 2024, 4)", "(Calendar(6), 2023, 3)"]),
    ("fnmatch.py", "fnmatch", "filter", ["(['a.py', 'b.txt', 'c.py'], '*.py')", "([], '*')"]),
    ("shlex.py", "shlex", "quote", ["('',)", "('safe',)", "(\"it's\",)"]),
]


def test_behaviour_preserved_in_subprocess():
    cases = []
    for rel, module, qual, calls in BEHAVIOUR_CASES:
        code = mined(rel)[qual]
        r = obfuscate(code, method="." in qual)
        assert r.ok, (qual, r.reason)
        cases.append({"module": module, "original": code, "obfuscated": r.code,
                      "name_original": qual.rsplit(".", 1)[-1], "name_obfuscated": "func", "calls": calls})
    proc = subprocess.run([sys.executable, "-c", _HARNESS], input=json.dumps(cases), capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(proc.stdout)
    n_calls = 0
    for case, (orig, obf) in zip(cases, results):
        assert orig == obf, case["name_original"]
        n_calls += len(orig)
    assert n_calls >= 20
    assert "raised StatisticsError" in results[2][0][2]  # the error path is exercised too


# ---------------------------------------------------------------- survival on the standard library


def test_survival_rate_on_the_standard_library(tmp_path):
    df, _ = mine_corpus_source("stdlib", data_dir=tmp_path, progress=False)
    assert len(df) > 3000
    out, report = obfuscate_frame(df)
    assert report["n_input"] == len(df) and report["n_ok"] == len(out)
    assert report["survival_rate"] > 0.99, report["failures"]
    assert set(report["failures"]) <= set(FAILURE_REASONS)
    assert list(out.columns) == [*df.columns, "code_original", "obf_mapping"]
    assert out["code"].str.startswith(("def func", "async def func")).all()
    row = out.iloc[0]
    assert json.loads(row["obf_mapping"])["func"] == row["func_name"].rsplit(".", 1)[-1]
    assert "#" not in row["code_original"] or "#" in row["code"]  # comments dropped from both


# ---------------------------------------------------------------- leakage


def test_leakage_report_finds_planted_duplicates():
    train = pd.DataFrame([
        {"id": f"t{i}", "query": q, "code": c, "source": "stdlib"}
        for i, (q, c) in enumerate((f"query {k}", code) for k, code in mined("json/decoder.py").items())
    ] + [
        {"id": f"u{i}", "query": f"textwrap {k}", "code": c, "source": "stdlib"}
        for i, (k, c) in enumerate(mined("textwrap.py").items())
    ])
    clean = pd.DataFrame([
        {"id": f"s{i}", "query": f"shlex {k}", "code": c, "source": "stdlib"}
        for i, (k, c) in enumerate(mined("shlex.py").items())
    ])
    longest = train["code"].str.len().sort_values(ascending=False).index
    exact_copy = train.at[longest[0], "code"].replace("    ", "\t") + "  # a comment"  # same tokens, other layout
    near_copy = train.at[longest[1], "code"].replace("return", "return  0 or", 1)  # one edit in a long function
    planted = pd.concat([clean, pd.DataFrame([
        {"id": "p_exact", "query": "an unrelated query one", "code": exact_copy,
         "source": "stdlib"},
        {"id": "p_near", "query": "an unrelated query two", "code": near_copy, "source": "stdlib"},
        {"id": "p_query", "query": "QUERY  py_scanstring.", "code": "def zz(a):\n    b = a\n    return b * 3",
         "source": "stdlib"},
        {"id": "p_repeat", "query": clean["query"].iloc[0], "code": "def yy(a):\n    q = a\n    return q - 7",
         "source": "stdlib"},
    ])], ignore_index=True)
    report = leakage_report(train, {"clean": clean, "planted": planted})
    assert report.loc["clean"].drop(["n_pairs", "clean"]).sum() == 0 and report.loc["clean", "clean"]
    row = report.loc["planted"]
    assert not row["clean"]
    assert row["train_exact_code"] == 1 and row["train_near_code"] == 1
    assert row["train_query_overlap"] == 1 and row["repeated_queries"] == 1
    assert row["within_exact_code"] == 0 and row["within_near_code"] == 0


# ---------------------------------------------------------------- cards and the distribution gap


def _small_frame() -> pd.DataFrame:
    rows = []
    for rel, source in (("textwrap.py", "textwrap"), ("shlex.py", "shlex")):
        for qual, code in mined(rel).items():
            rows.append({"id": f"{source}:{qual}", "query": f"do the {qual} thing please", "code": code,
                         "source": source, "version": "3.x", "path": rel, "func_name": qual})
    return pd.DataFrame(rows)


def test_dataset_card_and_tables():
    df = _small_frame()
    card = dataset_card(df, "small", seed=1)
    assert card["name"] == "small" and card["n_pairs"] == len(df) and card["n_files"] == 2 and card["n_sources"] == 2
    assert sum(card["per_source"].values()) == len(df) and card["versions"] == {"textwrap": "3.x", "shlex": "3.x"}
    for key in ("query_words", "code_tokens"):
        q = card[key]
        assert q["min"] <= q["q10"] <= q["q25"] <= q["median"] <= q["q75"] <= q["q90"] <= q["max"]
    assert card["query_words"]["min"] >= 5 and 0 <= card["pct_code_over_512_tokens"] <= 100
    assert len(card["examples"]) == 5 and len({e["id"] for e in card["examples"]}) == 5
    assert set(card["examples"][0]) == {"id", "source", "path", "func_name", "query", "code"}
    assert dataset_card(df, "small", seed=1)["examples"] == card["examples"]
    assert dataset_card(df, "small", seed=2)["examples"] != card["examples"]
    json.dumps(card)  # serialisable as is

    sets = {"a": df, "b": df[df["source"] == "shlex"]}
    table = cards_table(sets)
    assert list(table.index) == ["a", "b"] and table.loc["b", "largest_source_pct"] == 100.0
    assert table.loc["a", "pairs"] == len(df)
    src = source_table(sets)
    assert src.loc[("a", "textwrap"), "pairs"] == (df["source"] == "textwrap").sum()
    fig = length_figure(sets)
    assert len(fig.data) == 4
    assert len(length_figure(sets, kind="histogram").data) == 4


def test_distribution_gap_two_sample_test():
    rng = np.random.default_rng(0)
    same_a, same_b = rng.normal(size=(600, 16)), rng.normal(size=(600, 16))
    far = rng.normal(size=(600, 16)) + 3.0
    gap = distribution_gap({"train": same_a, "same": same_b, "far": far, "small": far[:50]}, max_per_set=500, threads=1)
    assert list(gap.index) == ["same", "far", "small"]
    assert abs(gap.loc["same", "accuracy"] - 0.5) < 0.07 and gap.loc["same", "p_value"] > 0.01
    assert gap.loc["far", "accuracy"] > 0.98 and gap.loc["far", "p_value"] < 1e-10
    assert gap.loc["far", "n_per_class"] == 500 and gap.loc["small", "n_per_class"] == 50
    assert 0 <= gap.loc["same", "accuracy_std"] < 0.1
    pd.testing.assert_frame_equal(gap, distribution_gap({"train": same_a, "same": same_b, "far": far,
                                                         "small": far[:50]}, max_per_set=500, threads=1))
    with pytest.raises(ParameterError, match="reference"):
        distribution_gap({"a": same_a}, reference="train")

    proj = gap_projection({"train": same_a, "far": far}, method="pca", n_per_set=100, threads=1)
    assert list(proj.columns) == ["x", "y", "set", "index"] and len(proj) == 200
    assert proj.groupby("set")["x"].mean().abs().max() > 1.0  # the far set lies apart along PC1
    tsne = gap_projection({"train": same_a[:40], "far": far[:40]}, method="tsne", n_per_set=40, threads=1)
    assert len(tsne) == 80 and np.isfinite(tsne[["x", "y"]].to_numpy()).all()
    fig = gap_figure(proj.assign(text="q"), gap=gap)
    assert [t.name for t in fig.data] == ["train", f"far (C2ST acc {gap.loc['far', 'accuracy']:.2f})"]
    with pytest.raises(ParameterError, match="method"):
        gap_projection({"a": same_a}, method="lda")


# ---------------------------------------------------------------- the suite, on stdlib prefixes

IN_SPEC = "stdlib:json,email,http,urllib,logging,xml"
GROUPS = {
    "stdlib": OodGroup(("stdlib:textwrap.py,shlex.py,argparse.py,pathlib.py,datetime.py,fractions.py",)),
    # http/cookies.py is also in-distribution: its copies must go
    "web": OodGroup(("stdlib:wsgiref,http/cookies.py,html",), per_source_cap=25),
}


def test_build_ood_suite_small(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_DATA", str(tmp_path))
    spec = CorpusSpec(in_distribution=[IN_SPEC], ood=[], name="t")
    suite = build_ood_suite(spec, groups=GROUPS, progress=False)
    assert list(suite) == ["id_test", "stdlib", "web", "id_test_obf", "stdlib_obf"]
    assert all(len(df) > 0 for df in suite.values()) and len(suite["web"]) <= 25
    assert (suite["id_test"]["split"] == "test").all() and (suite["web"]["split"] == "ood").all()
    assert all((df["set"] == name).all() for name, df in suite.items())
    for name in ("id_test", "stdlib"):
        obf, base = suite[f"{name}_obf"], suite[name]
        assert set(obf["id"]) <= set(base["id"]) and len(obf) >= 0.9 * len(base)
        assert obf["code"].str.startswith("def func").all()
        joined = obf.merge(base[["id", "query"]], on="id", suffixes=("", "_base"))
        assert (joined["query"] == joined["query_base"]).all()

    from workbench.corpus import build_corpus

    corpus = build_corpus(spec, progress=False)
    train = corpus[corpus["split"] == "train"]
    report = leakage_report(train, suite)
    assert report["clean"].all(), report
    train_q = set(train["query"].map(normalize_query))
    assert all(not (set(df["query"].map(normalize_query)) & train_q) for df in suite.values())

    stats = load_ood_stats(spec, groups=GROUPS)
    assert stats["counts"] == {n: len(df) for n, df in suite.items()}
    assert stats["sets"]["web"]["dedup_removed"].get("exact_vs_in_distribution", 0) >= 3
    assert stats["obfuscation"]["stdlib_obf"]["survival_rate"] > 0.95
    assert all(r["clean"] for r in stats["leakage"])
    assert (ood_dir(spec, groups=GROUPS) / "stdlib_obf.parquet").exists()

    t0 = time.perf_counter()
    again = build_ood_suite(spec, groups=GROUPS)
    assert time.perf_counter() - t0 < 1.0
    for name in suite:
        pd.testing.assert_frame_equal(again[name], suite[name])

    tasks = suite_tasks(suite, max_queries=30, pool_size=60, cosqa=False)
    assert list(tasks) == list(suite)
    assert all(len(t.queries) <= 30 and len(t.corpus) <= 60 for t in tasks.values())
    assert set(tasks["stdlib_obf"].queries) <= set(tasks["stdlib"].queries)
    assert len(tasks["stdlib_obf"].queries) >= 25
    assert tasks["stdlib_obf"].corpus[next(iter(tasks["stdlib_obf"].qrels[next(iter(tasks["stdlib_obf"].queries))]))]\
        .startswith("def func")

    with pytest.raises(ParameterError, match="in-distribution source"):
        build_ood_suite(spec, groups={"x": [IN_SPEC]})
    with pytest.raises(ParameterError, match="identifier"):
        build_ood_suite(spec, groups={"id_test": ["stdlib:csv.py"]})


def test_suite_tasks_with_cosqa():
    from workbench.paths import cosqa_dir

    if not (cosqa_dir() / "cosqa-retrieval-dev-500.json").exists():
        pytest.skip("CoSQA dev is not in ../shared/data/cosqa")
    df = _small_frame()
    assert len(df) > 10
    tasks = suite_tasks({"small": df}, max_queries=10)
    assert list(tasks) == ["small", "cosqa_dev"]
    assert len(tasks["cosqa_dev"].queries) == 10 and len(tasks["cosqa_dev"].corpus) == 6267
    assert len(tasks["small"].queries) == 10 and len(tasks["small"].corpus) == len(df)


def test_all_sets_removes_crosslang_leaks():
    """A doc comment equal to a training query, and a near-copy inside a language set, are removed."""
    train = pd.DataFrame({
        "id": ["t1", "t2"], "query": ["Return the hash code of this object.", "Sort the list in place"],
        "code": ["def h(self):\n    x = 1\n    return hash(self.v) + x", "def s(xs):\n    xs.sort()\n    return xs"],
        "split": ["train", "train"],
    })
    go_a = "func Max(a, b int) int {\n\tif a > b {\n\t\treturn a\n\t}\n\treturn b\n}"
    xl = pd.DataFrame({
        "id": ["j1", "j2", "g1", "g2"],
        "query": ["Returns the hash code of this object", "Parses the given string as an integer value",
                  "Returns the larger of two integers", "Gives back the bigger of two ints"],
        "code": ["public int hashCode() {\n  int h = 7;\n  return h * 31;\n}", "int parse(String s) {\n  return Integer.parseInt(s);\n}",
                 go_a, go_a.replace("Max", "Maximum")],
        "language": ["java", "java", "go", "go"], "split": ["ood"] * 4,
    })
    xl.loc[0, "query"] = "Return the hash code of this object."  # identical after normalisation
    sets = ood.all_sets(train, {}, xl)
    assert list(sets["xl_java"]["id"]) == ["j2"] and sets["xl_java"].attrs["leakage_removed"] == 1
    assert list(sets["xl_go"]["id"]) == ["g1"] and sets["xl_go"].attrs["leakage_removed"] == 1
    report = ood.leakage_report(sets["train"], {n: d for n, d in sets.items() if n != "train"})
    assert report["clean"].all()
