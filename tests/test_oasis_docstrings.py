"""OASIS step 1 (papers/001): the package call graph, caller / callee context, the docstring prompt,
the parsing of its answer, and LLM docstrings for mined pairs against a real SmolLM2 server."""

from __future__ import annotations

import ast
import time

import pandas as pd
import pytest

from workbench.corpus.mining import iter_functions
from workbench.errors import ParameterError
from workbench.oasis.callgraph import call_graph, source_call_graph
from workbench.oasis.docstrings import (
    DOCSTRING_SAMPLING,
    docstring_reject_reason,
    docstring_requests,
    function_context,
    llm_docstrings,
    parse_docstring,
)

UTIL = '''import os


def helper(x):
    return os.path.join(x, "a")


def run(x):
    return helper(x)


def process(items):
    return sorted(items)


def key(x):
    return x


class Base:
    def __init__(self):
        self.items = []

    def setup(self):
        return self.prepare()

    def prepare(self):
        data = {}
        return data.get("x")

    def get(self, name):
        return name
'''

CORE = '''import json

from . import util
from .util import Base, helper


def process(data):
    return json.dumps(data)


def load(path):
    value = helper(path)
    util.run(path)
    return process(value)


def outer(n):
    def inner(k):
        return k + 1
    return inner(n)


def countdown(n):
    return countdown(n - 1) if n else 0


class Engine(Base):
    def start(self):
        self.setup()
        return self.step()

    def step(self):
        return super().setup()

    def setup(self):
        return 1

    def handle(self, obj):
        return obj.process()
'''

OTHER = '''from pkg import exported_helper

from .util import process as clean


def tidy(items):
    return exported_helper(clean(items))


def use(obj, key):
    obj.process()
    obj.prepare()
    key()
    return make_engine()


def make_engine():
    from .core import Engine
    return Engine()


class First:
    def reset(self):
        return 1


class Second:
    def reset(self):
        return 2


def reset_all(objs):
    for obj in objs:
        obj.reset()
'''

FILES = [
    ("pkg/__init__.py", "from .util import helper as exported_helper\n"),
    ("pkg/util.py", UTIL.encode()),  # bytes and str are both accepted
    ("pkg/core.py", CORE),
    ("pkg/other.py", OTHER),
    ("pkg/broken.py", "def broken(:\n    pass\n"),
    ("README.md", "# not python"),
]


@pytest.fixture(scope="module")
def graph():
    return call_graph(FILES)


def U(q):
    return ("pkg/util.py", q)


def C(q):
    return ("pkg/core.py", q)


def O(q):  # noqa: E743
    return ("pkg/other.py", q)


# ------------------------------------------------------------------------------ the call graph
def test_call_graph_records_every_definition_as_the_miner_names_it(graph):
    assert graph.stats["unparsable_files"] == 1 and graph.stats["files"] == 5 and graph.stats["skipped_files"] == 1
    for path, text in FILES[1:4]:
        text = text.decode() if isinstance(text, bytes) else text
        expected = {(path, q) for _, q, _ in iter_functions(ast.parse(text))}
        assert expected == {k for k in graph.functions if k[0] == path}
    info = graph.functions[C("Engine.start")]
    assert (info.name, info.class_name, info.lineno, info.nested) == ("start", "Engine", 28, False)
    assert info.source.startswith("def start(self):\n    self.setup()")  # dedented, from ``def``
    assert graph.functions[C("outer.<locals>.inner")].nested
    assert not any(k[0] == "pkg/broken.py" for k in graph.functions)


def test_call_graph_resolves_names_imports_self_super_and_modules(graph):
    assert graph.callees(U("run")) == [U("helper")]  # a name in the same file
    assert graph.callees(O("tidy")) == [U("helper"), U("process")]  # a re-export through pkg/__init__, an alias
    assert graph.callees(C("load")) == [U("helper"), U("run"), C("process")]  # from-import, module attribute, own file
    assert graph.callees(C("outer")) == [C("outer.<locals>.inner")]  # a nested function
    assert graph.callees(C("countdown")) == []  # no self-edge
    assert graph.callees(U("Base.setup")) == [U("Base.prepare")]  # self.f
    assert graph.callees(C("Engine.start")) == [C("Engine.setup"), C("Engine.step")]  # own class first
    assert graph.callees(C("Engine.step")) == [U("Base.setup")]  # super().f: a base class, from another file
    assert graph.callees(O("make_engine")) == [U("Base.__init__")]  # a class call is its (inherited) __init__
    assert graph.callees(U("helper")) == []  # os.path.join is outside the package
    assert graph.callees(U("Base.prepare")) == []  # dict.get never links to the package's Base.get
    assert graph.callees(("pkg/nowhere.py", "f")) == [] and graph.callers(("pkg/nowhere.py", "f")) == []


def test_call_graph_ambiguous_names_resolve_to_the_same_file_or_not_at_all(graph):
    # ``process`` is defined in util.py and core.py: obj.process() links to core's from core.py only
    assert C("process") in graph.callees(C("Engine.handle"))
    assert graph.callees(O("use")) == [U("Base.prepare"), O("make_engine")]  # unique ``prepare`` kept
    assert graph.callees(O("reset_all")) == []  # two ``reset`` in the caller's own file: dropped
    assert U("key") not in graph.callees(O("use"))  # ``key`` is a parameter there, not util.key
    assert graph.stats["ambiguous"] >= 1 and graph.stats["external"] >= 2


def test_callers_are_the_inverse_of_callees_in_a_fixed_order(graph):
    edges = graph.edges()
    assert len(edges) == graph.stats["edges"] == len(set(edges))
    for a, b in edges:
        assert a in graph.callers(b)
    assert sum(len(graph.callers(k)) for k in graph.functions) == len(edges)
    # same file first, then by path and line
    assert graph.callers(U("Base.prepare")) == [U("Base.setup"), O("use")]
    assert graph.callers(U("Base.setup")) == [C("Engine.step")]
    assert graph.callers(U("helper")) == [U("run"), C("load"), O("tidy")]


def test_function_context_snippets_are_short_and_deterministic(graph):
    ctx = function_context(graph, "pkg/util.py", "helper", max_callers=1, max_callees=1, max_chars=30)
    assert ctx["found"] and ctx["n_callers"] == 3 and ctx["n_callees"] == 0
    assert [c["func_name"] for c in ctx["callers"]] == ["run"]
    ctx = function_context(graph, "pkg/util.py", "Base.prepare", max_callers=2, max_callees=1, max_chars=30)
    assert ctx["found"] and ctx["n_callers"] == 2 and ctx["n_callees"] == 0
    assert [c["func_name"] for c in ctx["callers"]] == ["Base.setup", "use"]
    assert all(len(c["snippet"]) <= 30 for c in ctx["callers"])
    assert ctx["callers"][0]["snippet"].startswith("def setup(self):") and ctx["callers"][0]["snippet"].endswith("...")
    full = function_context(graph, "pkg/util.py", "Base.prepare", max_chars=300)
    assert full["callers"][0]["snippet"] == "def setup(self):\n    return self.prepare()"
    assert function_context(graph, "pkg/util.py", "Base.prepare", max_chars=30) == function_context(
        call_graph(FILES), "pkg/util.py", "Base.prepare", max_chars=30)
    missing = function_context(graph, "pkg/util.py", "nope")
    assert not missing["found"] and missing["callers"] == [] and missing["callees"] == []


def test_call_graph_of_mined_packages_finds_the_mined_functions():
    """The real smoke corpus: every mined (path, func_name) is a node of its package's graph, many
    have callers and callees, and a known networkx call is an edge."""
    from workbench.corpus import build_corpus

    pairs = build_corpus("smoke", progress=False)
    for source, version in [("more-itertools", "11.2.1"), ("boltons", "26.2.0"), ("networkx", "3.6.1")]:
        t0 = time.perf_counter()
        g = source_call_graph(source, version)
        seconds = time.perf_counter() - t0
        mined = pairs[pairs["source"] == source]
        keys = list(zip(mined["path"], mined["func_name"]))
        assert len(keys) > 50
        assert sum(k in g for k in keys) >= 0.98 * len(keys), source
        assert sum(bool(g.callers(k)) for k in keys) >= 0.1 * len(keys), source
        assert sum(bool(g.callees(k)) for k in keys) >= 0.1 * len(keys), source
        assert g.stats["unparsable_files"] == 0 and seconds < 60, (source, seconds)
    generic = "networkx/algorithms/shortest_paths/generic.py"
    assert (generic, "shortest_path") in g.callees((generic, "has_path"))


# ------------------------------------------------------------------------------ prompt and parsing
def test_docstring_requests_hold_the_code_and_its_context(graph):
    ctx = function_context(graph, "pkg/core.py", "load")
    code = graph.functions[C("load")].source
    (messages, sampling), (bare, _) = docstring_requests([code, "def f(x):\n" + "    x += 1\n" * 200], [ctx, None],
                                                        max_code_chars=200)
    assert sampling == DOCSTRING_SAMPLING and sampling.temperature == 0.0 and sampling.max_tokens <= 64
    user = messages[-1]["content"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]  # one worked example
    assert code in user and "`load`" in user and code not in messages[1]["content"]
    assert "def helper(x):" in user and "def run(x):" in user and "Functions that call" not in user  # no callers
    assert "# ... (truncated)" in bare[-1]["content"] and "Functions" not in bare[-1]["content"]
    assert "`f`" in bare[-1]["content"]
    with pytest.raises(ParameterError):
        docstring_requests(["def f(): pass"], [])


@pytest.mark.parametrize("reply, expected", [
    ("Return the sum of two numbers.", "Return the sum of two numbers."),
    ('Docstring: "Return the sum of two numbers."', "Return the sum of two numbers."),
    ('"""Return the sum of two numbers.\n\n    Args:\n        a: a number\n    """', "Return the sum of two numbers."),
    ("Here is a one-sentence docstring:\n\nReturn the sum of two numbers. It uses addition.",
     "Return the sum of two numbers."),
    ('```python\ndef add(a, b):\n    """Return the sum of two numbers."""\n    return a + b\n```',
     "Return the sum of two numbers."),
    ("`add`: Return the sum of two numbers.", "Return the sum of two numbers."),
    ("Compute the mean, e.g. of a list of values, ignoring NaN.", "Compute the mean, e.g. of a list of values, ignoring NaN."),
    ('```python\ndef add(a, b):\n    """Return the sum of two\n    numbers given.\n\n    More', "Return the sum of two numbers given."),  # cut off
    ('Add two numbers together.\n```python\ndef add(a, b):\n    """Something else entirely."""\n```',
     "Add two numbers together."),  # prose before the code wins over a docstring inside it
    ("This function returns the sum of two numbers.", "Returns the sum of two numbers."),
    ("The function `add` returns the sum of two numbers.", "Returns the sum of two numbers."),
    ("This function is designed to add two numbers together.", "Add two numbers together."),
    ("The function is a small helper that adds numbers.", "The function is a small helper that adds numbers."),
])
def test_parse_docstring_cleans_good_replies(reply, expected):
    assert parse_docstring(reply, "add") == expected


@pytest.mark.parametrize("reply, reason", [
    ("", "empty"),
    ("  \n ", "empty"),
    ("```python\nreturn a + b\n```", "code"),
    ("return a + b", "code"),
    ("x = add(1, 2)", "code"),
    ("I'm sorry, I cannot describe this function for you.", "refusal"),
    ("Adds numbers.", "too_short"),
    ("Return " + "the sum of the numbers and " * 10 + "more.", "too_long"),
])
def test_parse_docstring_rejects_bad_replies(reply, reason):
    assert parse_docstring(reply, "add") is None
    assert docstring_reject_reason(reply, "add")[1] == reason


def test_parse_docstring_rejects_a_sentence_copied_from_the_context():
    callee = 'def total(xs):\n    """Return the sum of all numbers in xs.\n\n    More text."""'
    assert docstring_reject_reason("Return the sum of all numbers in `xs`.", "add", [callee]) == (
        "Return the sum of all numbers in `xs`.", "copied_context")
    assert parse_docstring("Return the sum of two numbers.", "add", [callee]) == "Return the sum of two numbers."


def test_parse_docstring_rejects_the_worked_examples_answer():
    # seen with Qwen2.5-Coder-0.5B on pandas' non_reducing_slice: the example's answer, word for word
    reply = "Read key=value settings from a config file into a dict, on top of optional defaults."
    assert docstring_reject_reason(reply, "non_reducing_slice")[1] == "copied_example"
    assert parse_docstring("Read settings from a file into a dict.", "load") == "Read settings from a file into a dict."


# ------------------------------------------------------------------------------ end to end (real LLM)
def test_llm_docstrings_rejects_unknown_ids_and_missing_columns():
    pairs = pd.DataFrame({"id": ["a"], "code": ["def f(): pass"], "source": ["x"], "version": ["1"],
                          "path": ["x.py"], "func_name": ["f"]})
    with pytest.raises(ParameterError, match="not in pairs"):
        llm_docstrings(pairs, llm=None, ids=["a", "b"])
    with pytest.raises(ParameterError, match="column"):
        llm_docstrings(pairs.drop(columns="path"), llm=None, ids=["a"])


def test_llm_docstrings_on_mined_pairs_with_a_real_server_and_cache(llm_server, tmp_path):
    from workbench.corpus import build_corpus
    from workbench.llm import CachedLLM, OpenAIBackend

    pairs = build_corpus("smoke", progress=False)
    mi = pairs[pairs["source"] == "more-itertools"]
    g = source_call_graph("more-itertools", "11.2.1")
    with_callers = mi[[bool(g.callers(k)) for k in zip(mi["path"], mi["func_name"])]]
    ids = with_callers.assign(n=with_callers["code"].str.len()).sort_values(["n", "id"])["id"].head(3).tolist()[::-1]
    llm = CachedLLM(OpenAIBackend(llm_server.base_url, llm_server.model, api_key=""), tmp_path / "llm")
    kw = {"max_callers": 2, "max_callees": 2, "max_chars": 160, "max_code_chars": 600, "show_progress": False}
    df = llm_docstrings(pairs, llm, ids, **kw)
    assert df["id"].tolist() == ids and list(df.columns) == ["id", "query_llm", "callers", "callees", "reply", "valid"]
    a = df.attrs
    assert a["pairs"] == 3 and a["functions_found"] == 3 and a["with_callers"] == 3
    assert a["llm"] == {"requests": 3, "hits": 0, "misses": 3} and a["unparsable_files"] == 0
    assert a["valid"] + sum(a["rejected"].values()) == 3 and a["seconds_graph"] > 0 and a["seconds_llm"] > 0
    for row, fn in zip(df.itertuples(), with_callers.set_index("id").loc[ids, "func_name"]):
        assert 1 <= len(row.callers) <= 2 and all(c.startswith("more_itertools/") and "::" in c for c in row.callers)
        assert isinstance(row.reply, str) and row.reply.strip()
        if row.valid:  # the caller / callee snippets can only reject more
            assert row.query_llm == parse_docstring(row.reply, fn)
        else:
            assert pd.isna(row.query_llm)
    again = llm_docstrings(pairs, llm, ids, **kw)
    assert again.attrs["llm"] == {"requests": 3, "hits": 3, "misses": 0}
    pd.testing.assert_frame_equal(again, df)
