"""Rule-based augmentation baselines of ChatDANCE (papers/002): QRA query edits, NatGen-style
semantics-preserving code transforms, and the sandbox that checks equivalence.

The NatGen transforms are applied to real standard-library functions (docstrings stripped by the
corpus miner's own ``function_code``); every transformed variant is executed in the sandbox
subprocess, never in the test process, and must return the same values (or raise the same exception
types) as the original on concrete inputs."""

from __future__ import annotations

import ast
import importlib
import os
import socket
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from workbench.augment.natgen import (
    ALL,
    TRANSFORMS,
    augment_code,
    block_swap,
    code_fingerprint,
    dead_code_insertion,
    loop_transformation,
    natgen_augment,
    operand_swap,
    renamable_variables,
    transform_stats,
    variable_renaming,
)
from workbench.augment.qra import apply_op, augment_queries, candidates, qra_augment
from workbench.corpus.mining import function_code
from workbench.errors import ParameterError
from workbench.sandbox import (
    compare_behaviour,
    run_calls_in_sandbox,
    run_in_sandbox,
    run_programs_in_sandbox,
    same_behaviour,
)

# ---------------------------------------------------------------- real stdlib functions + inputs

# (module, function, call expressions): pure, deterministic functions with loops, comparisons and
# if/else; the calls cover normal paths, edge cases and error paths.
STDLIB_CASES: list[tuple[str, str, list[str]]] = [
    (
        "bisect",
        "bisect_right",
        [
            "bisect_right([1, 2, 2, 3, 5], 2)",
            "bisect_right([1, 2, 2, 3, 5], 0)",
            "bisect_right([1, 2, 2, 3, 5], 9)",
            "bisect_right([1, 2, 2, 3, 5], 2, 3)",
            "bisect_right([1, 2, 2, 3, 5], 2, 0, 2)",
            "bisect_right([], 1)",
            "bisect_right([(1, 'a'), (3, 'b'), (5, 'c')], 3, key=lambda t: t[0])",
            "bisect_right([1], 1, -1)",
        ],
    ),
    (
        "bisect",
        "bisect_left",
        [
            "bisect_left([1, 2, 2, 3, 5], 2)",
            "bisect_left([1, 2, 2, 3, 5], 6)",
            "bisect_left([1, 2, 2, 3, 5], 2, 2)",
            "bisect_left([(1, 'a'), (3, 'b')], 3, key=lambda t: t[0])",
            "bisect_left([1], 1, -2)",
        ],
    ),
    (
        "heapq",
        "nsmallest",
        [
            "nsmallest(3, [5, 1, 4, 1, 5, 9, 2, 6])",
            "nsmallest(1, [3, 1, 2])",
            "nsmallest(0, [1])",
            "nsmallest(10, [3, 1])",
            "nsmallest(2, [5, 1, 4, 7], key=lambda v: -v)",
            "nsmallest(2, iter([4, 3, 2, 1]))",
            "nsmallest(1, [], key=abs)",
            "nsmallest(3, 'hello world')",
            "nsmallest(2, [1, 'a'])",
        ],
    ),
    (
        "heapq",
        "nlargest",
        [
            "nlargest(3, [5, 1, 4, 1, 5, 9, 2, 6])",
            "nlargest(1, [3, 1, 2], key=lambda v: -v)",
            "nlargest(4, iter(range(9)))",
            "nlargest(5, [2, 1])",
            "nlargest(-1, [1])",
        ],
    ),
    (
        "heapq",
        "merge",
        [
            "list(merge([1, 3, 5], [2, 4, 6], [0]))",
            "list(merge([5, 3, 1], [4, 2], reverse=True))",
            "list(merge())",
            "list(merge(['dog', 'horse'], ['cat', 'fish', 'kangaroo'], key=len))",
            "list(merge([9, 1], [8], key=lambda v: -v))",
            "list(merge([1], [], [0, 2]))",
        ],
    ),
    (
        "heapq",
        "_siftup",
        [
            "(lambda h: (_siftup(h, 0), h)[1])([9, 1, 2, 3, 4, 5, 6])",
            "(lambda h: (_siftup(h, 1), h)[1])([0, 9, 2, 3, 4])",
            "(lambda h: (_siftup(h, 0), h)[1])([1])",
            "_siftup([], 0)",
        ],
    ),
    (
        "colorsys",
        "rgb_to_hls",
        [
            "rgb_to_hls(0.2, 0.4, 0.4)",
            "rgb_to_hls(1, 1, 1)",
            "rgb_to_hls(0, 0, 0)",
            "rgb_to_hls(0.9, 0.1, 0.3)",
            "rgb_to_hls(0.1, 0.9, 0.3)",
            "rgb_to_hls(0.5, 0.5, 0.7)",
        ],
    ),
    (
        "colorsys",
        "rgb_to_hsv",
        [
            "rgb_to_hsv(0.2, 0.4, 0.4)",
            "rgb_to_hsv(0, 0, 0)",
            "rgb_to_hsv(0.9, 0.1, 0.3)",
            "rgb_to_hsv(0.1, 0.9, 0.3)",
            "rgb_to_hsv(0.3, 0.1, 0.9)",
        ],
    ),
    (
        "colorsys",
        "hsv_to_rgb",
        [f"hsv_to_rgb({h / 6 + 0.01}, 0.5, 0.8)" for h in range(6)] + ["hsv_to_rgb(0.3, 0, 0.5)"],
    ),
    (
        "colorsys",
        "hls_to_rgb",
        ["hls_to_rgb(0.5, 0.3, 0.4)", "hls_to_rgb(0.1, 0.7, 0.4)", "hls_to_rgb(0.9, 0.5, 0.0)"],
    ),
    (
        "textwrap",
        "dedent",
        [
            "dedent('    a\\n      b\\n    c\\n')",
            "dedent('\\ta\\n\\tb')",
            "dedent('  a\\n\\n   b')",
            "dedent('no indent\\n  x')",
            "dedent('')",
            "dedent(' \\t x\\n \\t y')",
            "dedent('  a\\n\\tb')",
        ],
    ),
    (
        "fnmatch",
        "translate",
        [
            "translate('*.py')",
            "translate('[!a-c]?x')",
            "translate('[]')",
            "translate('a**b*')",
            "translate('[a-]')",
            "translate('[z-a]x')",
            "translate('[[]')",
            "translate('[a-c-e]')",
            "translate('x[!]y')",
            "translate('*a*b?')",
        ],
    ),
    (
        "genericpath",
        "commonprefix",
        [
            "commonprefix(['/usr/lib', '/usr/local', '/usr'])",
            "commonprefix([])",
            "commonprefix(['abc'])",
            "commonprefix([['a', 'b'], ['a', 'c']])",
            "commonprefix(['x', 'y'])",
        ],
    ),
    (
        "posixpath",
        "commonpath",
        [
            "commonpath(['/usr/lib', '/usr/local/lib'])",
            "commonpath(['a/b', 'a/c/d'])",
            "commonpath(['/a', 'b'])",
            "commonpath([])",
            "commonpath(['/a/./b/', '/a/b/c'])",
        ],
    ),
    ("statistics", "median", ["median([3, 1, 2])", "median([4, 1, 3, 2])", "median([])", "median([2.5])"]),
    ("statistics", "median_low", ["median_low([3, 1, 2])", "median_low([4, 1, 3, 2])", "median_low([])"]),
    (
        "statistics",
        "quantiles",
        [
            "quantiles([1, 2, 3, 4, 5, 6, 7, 8, 9], n=4)",
            "quantiles([1, 5], n=3, method='inclusive')",
            "quantiles([1, 2, 3], n=0)",
            "quantiles([1], n=4)",
            "quantiles([1, 2], method='nope')",
            "quantiles([2, 4, 6, 8, 10], n=10, method='inclusive')",
        ],
    ),
    (
        "difflib",
        "get_close_matches",
        [
            "get_close_matches('appel', ['ape', 'apple', 'peach', 'puppy'])",
            "get_close_matches('wheel', ['while', 'wheat'], n=1)",
            "get_close_matches('x', ['y'])",
            "get_close_matches('a', ['a'], n=0)",
            "get_close_matches('a', ['a'], cutoff=2)",
        ],
    ),
    (
        "urllib.parse",
        "parse_qsl",
        [
            "parse_qsl('a=1&b=2&a=3')",
            "parse_qsl('a=&b', keep_blank_values=True)",
            "parse_qsl('a=&b')",
            "parse_qsl('a=1;b=2', separator=';')",
            "parse_qsl('a=1&b', strict_parsing=True)",
            "parse_qsl('x=%41+b&y=%zz')",
            "parse_qsl('a=1&b=2&c=3', max_num_fields=2)",
            "parse_qsl(b'k=v')",
        ],
    ),
    (
        "json.encoder",
        "py_encode_basestring_ascii",
        [
            "py_encode_basestring_ascii('plain')",
            "py_encode_basestring_ascii('tab\\t\"q\"')",
            "py_encode_basestring_ascii('\\u00e9\\u4e2d')",
            "py_encode_basestring_ascii('\\U0001f600')",
        ],
    ),
    (
        "urllib.parse",
        "unquote",
        [
            "unquote('a%20b')",
            "unquote('%zz%4')",
            "unquote('caf%C3%A9+x')",
            "unquote('%E9', errors='replace')",
            "unquote('%e9', encoding='latin-1')",
            "unquote(b'%41')",
            "unquote('plain')",
            "unquote(None)",
        ],
    ),
    (
        "textwrap",
        "indent",
        [
            "indent('a\\n\\nb\\n', '> ')",
            "indent('a\\n  \\nb', '+', lambda line: True)",
            "indent('', 'x')",
        ],
    ),
]


def stdlib_function(module: str, name: str) -> str:
    """The function's code as the corpus stores it: from ``def``, docstring removed, dedented
    (the miner's own ``function_code``)."""
    path = Path(importlib.import_module(module).__file__)
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    for node in ast.parse(text).body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return function_code(lines, node)
    raise AssertionError(f"{module}.{name} not found in {path}")


def program(module: str, code: str) -> str:
    """The code run in the sandbox: the module's globals, then the (transformed) function over them."""
    return f"globals().update(vars(__import__('importlib').import_module({module!r})))\n{code}\n"


SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def stdlib_variants() -> list[tuple[str, str, str, list[str], list[tuple[str, str]]]]:
    """Per case: module, function, original code, calls, and the distinct (transform, code) variants from
    every transform with several seeds plus ``natgen_augment``."""
    out = []
    for module, name, calls in STDLIB_CASES:
        code = stdlib_function(module, name)
        assert '"""' not in code.split("\n", 2)[1], f"{module}.{name}: docstring not stripped"
        found: dict[str, str] = {}
        for tname, fn in TRANSFORMS.items():
            for seed in SEEDS:
                new = fn(code, np.random.default_rng(seed))
                if new is not None:
                    found.setdefault(new, tname)
        for tname, new in natgen_augment(code, 10, 7):
            found.setdefault(new, tname)
        out.append((module, name, code, calls, [(t, c) for c, t in found.items()]))
    return out


def test_stdlib_variants_parse_differ_and_cover_every_transform(stdlib_variants):
    per_transform = dict.fromkeys(ALL, 0)
    for module, name, code, _, variants in stdlib_variants:
        original = code_fingerprint(code)
        assert original is not None, f"{module}.{name} does not parse"
        for tname, new in variants:
            ast.parse(new)
            compile(new, f"<{module}.{name}:{tname}>", "exec")
            assert code_fingerprint(new) != original, (module, name, tname)
            per_transform[tname] += 1
        assert variants, f"no transform applies to {module}.{name}"
    # every transform rewrote several real functions (the equivalence test below is not vacuous)
    assert all(count >= 8 for count in per_transform.values()), per_transform
    assert sum(per_transform.values()) >= 200, per_transform


def test_stdlib_variants_behave_like_the_original_in_the_sandbox(stdlib_variants):
    programs, index = [], []
    for module, name, code, calls, variants in stdlib_variants:
        programs.append((program(module, code), calls))
        index.append((module, name, "original", code))
        for tname, new in variants:
            programs.append((program(module, new), calls))
            index.append((module, name, tname, new))
    t0 = time.perf_counter()
    results = run_programs_in_sandbox(programs, timeout=5.0, memory_mb=1024)
    assert time.perf_counter() - t0 < 60
    originals: dict[str, list] = {}
    checked = 0
    for (module, name, tname, new), res in zip(index, results):
        key = f"{module}.{name}"
        assert all(r.status in ("ok", "error") for r in res), (key, tname, [(r.call, r.status) for r in res])
        if tname == "original":
            # the inputs exercise real behaviour: most calls return, some raise (the error paths)
            assert sum(r.ok for r in res) >= len(res) - 3, (
                key,
                [(r.call, r.exc_type, r.exc_message) for r in res],
            )
            originals[key] = res
            continue
        for a, b in zip(originals[key], res):
            assert a.status == b.status, (key, tname, a.call, a, b, new)
            if a.ok:
                assert a.value_repr == b.value_repr, (key, tname, a.call, a.value_repr, b.value_repr, new)
            else:
                assert a.exc_type == b.exc_type, (key, tname, a.call, a.exc_type, b.exc_type, new)
        checked += 1
    assert checked >= 200


# ---------------------------------------------------------------- hand-made cases: exact outputs

LOOP = """\
def total(xs):
    s = 0
    for x in xs:  # comments are dropped by ast.unparse
        if x < 0:
            continue
        if x > 100:
            break
        s += x
    return s
"""

LOOP_EXPECTED = """\
def total(xs):
    s = 0
    _it = iter(xs)
    while True:
        try:
            x = next(_it)
        except StopIteration:
            break
        if x < 0:
            continue
        if x > 100:
            break
        s += x
    return s"""


def test_loop_transformation_exact_and_equivalent_with_break_and_continue():
    assert loop_transformation(LOOP, np.random.default_rng(0)) == LOOP_EXPECTED
    calls = [
        "total([1, -2, 3, 200, 5])",
        "total([])",
        "total(iter(range(5)))",
        "total([-1, -1])",
        "total([101, 1])",
        "total(None)",
        "total(x for x in [4, -4, 6])",
    ]
    cmp = same_behaviour(LOOP, LOOP_EXPECTED, calls, timeout=2)
    assert cmp, cmp.mismatches
    assert [r.value_repr for r in cmp.original[:5]] == ["4", "0", "10", "0", "0"]
    assert cmp.original[5].exc_type == "TypeError"


def test_loop_transformation_fresh_iterator_name_and_tuple_target():
    src = "def f(pairs):\n    _it = 0\n    for k, (a, *b) in pairs:\n        _it += a\n    return _it\n"
    out = loop_transformation(src, 0)
    assert "_it1 = iter(pairs)" in out and "k, (a, *b) = next(_it1)" in out


@pytest.mark.parametrize(
    "src",
    [
        "def f(xs):\n    for x in xs:\n        pass\n    else:\n        return 1\n",  # for-else
        "async def f(xs):\n    async for x in xs:\n        print(x)\n",  # async for
        "def f(o, xs):\n    for o.attr in xs:\n        print(o)\n",  # attribute target
        "def f(xs):\n    next = 1\n    for x in xs:\n        print(x, next)\n",  # next shadowed
        "def f(xs):\n    for x in xs:\n        print(locals())\n",  # reads its locals
        "def f(x):\n    return x\n",  # no loop
    ],
)
def test_loop_transformation_not_applicable(src):
    assert loop_transformation(src, np.random.default_rng(0)) is None


@pytest.mark.parametrize(
    "op, mirrored", [("<", ">"), (">", "<"), ("<=", ">="), (">=", "<="), ("==", "=="), ("!=", "!=")]
)
def test_operand_swap_exact(op, mirrored):
    assert (
        operand_swap(f"def f(a, b):\n    return a {op} b\n", 0) == f"def f(a, b):\n    return b {mirrored} a"
    )


def test_operand_swap_only_when_order_of_evaluation_cannot_matter():
    assert operand_swap("def f(g):\n    return g() < 3\n", 0) == "def f(g):\n    return 3 > g()"
    assert (
        operand_swap("def f(a, b):\n    return len(a) <= b.n\n", 0)
        == "def f(a, b):\n    return b.n >= len(a)"
    )
    for src in [
        "def f(a, b):\n    return a in b\n",
        "def f(a, b):\n    return a is b\n",
        "def f(a, b, c):\n    return a < b < c\n",
        "def f(g, h):\n    return g() < h()\n",
        "def f(g, x):\n    return x < g(x)\n",
        "def f(g):\n    return (n := g()) < 3\n",
        "def f(a):\n    return a\n",
    ]:
        assert operand_swap(src, np.random.default_rng(0)) is None, src


@pytest.mark.parametrize(
    "test, negated",
    [
        ("a", "not a"),
        ("not a", "a"),
        ("a is None", "a is not None"),
        ("a is not None", "a is None"),
        ("a in b", "a not in b"),
        ("a not in b", "a in b"),
        ("a == b", "not a == b"),
        ("a < b and b", "not (a < b and b)"),
    ],
)
def test_block_swap_exact(test, negated):
    src = f"def f(a, b):\n    if {test}:\n        return 1\n    else:\n        b = 2\n        return b\n"
    expected = (
        f"def f(a, b):\n    if {negated}:\n        b = 2\n        return b\n    else:\n        return 1"
    )
    assert block_swap(src, 0) == expected


def test_block_swap_elif_chain_keeps_semantics_and_needs_an_else():
    src = "def sign(x):\n    if x > 0:\n        return 1\n    elif x < 0:\n        return -1\n    else:\n        return 0\n"
    variants = {block_swap(src, np.random.default_rng(s)) for s in range(12)}
    assert variants == {
        "def sign(x):\n    if not x > 0:\n        if x < 0:\n            return -1\n        else:\n            return 0\n"
        "    else:\n        return 1",
        "def sign(x):\n    if x > 0:\n        return 1\n    elif not x < 0:\n        return 0\n    else:\n        return -1",
    }
    calls = ["sign(3)", "sign(-2)", "sign(0)", "sign(float('nan'))", "sign('a')"]
    for cmp in compare_behaviour(src, sorted(variants), calls, timeout=2):
        assert cmp, cmp.mismatches
    assert block_swap("def f(x):\n    if x:\n        return 1\n    return 2\n", 0) is None


def test_dead_code_insertion_forms():
    src = "def f(a):\n    b = a + 1\n    return b\n"
    body = ["b = a + 1", "return b"]
    seen_kinds = set()
    for seed in range(30):
        out = dead_code_insertion(src, np.random.default_rng(seed))
        lines = out.split("\n")
        assert lines[0] == "def f(a):"
        stmts = [ln[4:] for ln in lines[1:]]
        # exactly one top-level statement inserted, the original ones kept in order
        top = [s for s in stmts if not s.startswith(" ")]
        (pos,) = [i for i in range(len(top)) if top[:i] + top[i + 1 :] == body]
        inserted = top[pos]
        if inserted.startswith(("if False:", "while False:")):
            assert stmts[stmts.index(inserted) + 1] in ("    b = a + 1", "    return b")
            seen_kinds.add(inserted)
        else:
            assert inserted.split(" = ")[0] == "var_0" and inserted.split(" = ")[1] in (
                "0",
                "1",
                "None",
                "''",
                "False",
            )
            seen_kinds.add("assign")
    assert seen_kinds == {"if False:", "while False:", "assign"}
    assert dead_code_insertion(src, 3) == dead_code_insertion(src, np.random.default_rng(3))


def test_dead_code_insertion_never_turns_a_function_into_a_generator():
    src = "def gen(n):\n    x = yield n\n    return x\n"
    for seed in range(20):  # the only copyable statement is ``return x``; ``x = yield n`` is never copied
        out = dead_code_insertion(src, np.random.default_rng(seed))
        assert sum(isinstance(n, ast.Yield) for n in ast.walk(ast.parse(out))) == 1, out
    coro = "async def f(g):\n    v = await g()\n    return v\n"
    for seed in range(20):
        out = dead_code_insertion(coro, np.random.default_rng(seed))
        assert sum(isinstance(n, ast.Await) for n in ast.walk(ast.parse(out))) == 1, out
    assert dead_code_insertion("x = 1\n", 0) is None  # no function body
    assert dead_code_insertion("def f(:\n", 0) is None  # does not parse


def test_variable_renaming_rules():
    src = "def f(a, /, b, *rest, **kw):\n    total = a + b\n    for item in rest:\n        total += item\n    return (total, kw)\n"
    tree = ast.parse(src)
    import symtable

    table = symtable.symtable(src, "<t>", "exec").get_children()[0]
    # ``b`` can be passed by keyword: never renamed; positional-only and *args/**kwargs can
    assert renamable_variables(tree.body[0], table) == ["a", "rest", "kw", "total", "item"]
    everything = {variable_renaming(src, np.random.default_rng(s)) for s in range(40)}
    assert (
        "def f(var_0, /, b, *var_1, **var_2):\n    var_3 = var_0 + b\n    for var_4 in var_1:\n"
        "        var_3 += var_4\n    return (var_3, var_2)"
    ) in everything
    assert all(", /, b, *" in o for o in everything)

    assert (
        variable_renaming("def m(self):\n    v = self.x\n    return v\n", 0)
        == "def m(self):\n    var_0 = self.x\n    return var_0"
    )
    # keyword names at call sites and attributes stay; the default is evaluated outside the function
    assert (
        variable_renaming("def f(items):\n    key = len\n    return sorted(items, key=key)\n", 0)
        == "def f(items):\n    var_0 = len\n    return sorted(items, key=var_0)"
    )
    assert (
        variable_renaming("def f(a=size):\n    size = a * 2\n    return size.bit_length()\n", 0)
        == "def f(a=size):\n    var_0 = a * 2\n    return var_0.bit_length()"
    )
    # a fresh name never collides with one in use
    assert (
        variable_renaming("def f(var_0):\n    x = 2\n    return var_0 + x\n", 0)
        == "def f(var_0):\n    var_1 = 2\n    return var_0 + var_1"
    )


@pytest.mark.parametrize(
    "src",
    [
        "def f(xs):\n    n = 0\n    def g(y):\n        return y + n\n    return [g(x) for x in xs]\n",  # closure, comprehension
        "def f():\n    global counter\n    counter = 1\n    return counter\n",  # global
        "def f():\n    import os\n    return os.sep\n",  # imported
        "def f():\n    x = 1\n    return locals()\n",  # reads its locals
        "def f(a, b=2, *, c):\n    return a + b + c\n",  # only keyword-capable parameters
    ],
)
def test_variable_renaming_not_applicable(src):
    assert variable_renaming(src, np.random.default_rng(0)) is None


def test_variable_renaming_keeps_closures_working():
    src = (
        "def f(xs, /):\n    scale = 3\n    acc = []\n    for x in xs:\n        acc.append((lambda v: v * scale)(x))\n"
        "    return acc, [x + 1 for x in xs]\n"
    )
    outs = {variable_renaming(src, np.random.default_rng(s)) for s in range(20)}
    # ``scale`` (read in the lambda) and ``x`` (also the comprehension's variable) are never renamed;
    # ``xs`` is renamed in the comprehension's first iterable too, which runs in the function's scope
    body = "    for x in {xs}:\n        {acc}.append((lambda v: v * scale)(x))\n    return ({acc}, [x + 1 for x in {xs}])"
    head = "def f({xs}, /):\n    scale = 3\n    {acc} = []\n"
    assert outs == {
        (head + body).format(xs=xs, acc=acc)
        for xs, acc in [("var_0", "acc"), ("var_0", "var_1"), ("xs", "var_0")]
    }
    for cmp in compare_behaviour(src, sorted(outs), ["f([1, 2])", "f([])", "f(None)"], timeout=2):
        assert cmp, cmp.mismatches


def test_transforms_on_methods_and_bad_input():
    method = "def area(self, scale=1):\n    if self.w < 0:\n        raise ValueError(self.w)\n    else:\n        out = self.w * self.h\n    return out * scale\n"
    for name, fn in TRANSFORMS.items():
        new = fn(method, np.random.default_rng(0))
        if name != "loop_transformation":
            assert new is not None and "self" in new, name
            assert ast.parse(new).body[0].args.args[0].arg == "self"
    for fn in TRANSFORMS.values():
        assert fn("def f(:\n    pass\n", np.random.default_rng(0)) is None
        assert fn("def f():\n    nonlocal x\n", np.random.default_rng(0)) is None  # parses, does not compile


def test_natgen_augment_contract():
    code = stdlib_function("bisect", "bisect_right")
    out = natgen_augment(code, 15, 0)
    assert out == natgen_augment(code, 15, np.random.default_rng(0))
    fps = [code_fingerprint(c) for _, c in out]
    assert len(set(fps)) == len(out) and code_fingerprint(code) not in fps
    counts = pd.Series([t for t, _ in out]).value_counts()
    # four transforms apply (no for loop), at most 3 each as ChatDANCE's 5 x 3; only ``mid`` is
    # renamable (the other names can be passed by keyword), so renaming gives one version
    assert counts.to_dict() == {
        "dead_code_insertion": 3,
        "operand_swap": 3,
        "block_swap": 3,
        "variable_renaming": 1,
    }
    assert natgen_augment(code, 2, 0, transforms=["block_swap"])[0][0] == "block_swap"
    assert natgen_augment("def f(:", 5, 0) == []
    with pytest.raises(ParameterError, match="transforms"):
        natgen_augment(code, 3, 0, transforms=["nope"])
    with pytest.raises(ParameterError, match="n:"):
        natgen_augment(code, -1, 0)


# ---------------------------------------------------------------- frame level


def _pairs() -> pd.DataFrame:
    rows = []
    for module, name in [("bisect", "bisect_right"), ("heapq", "nsmallest"), ("textwrap", "dedent")]:
        rows.append(
            {
                "id": f"{module}.{name}",
                "query": f"the {name} function of {module}",
                "code": stdlib_function(module, name),
                "split": "train",
            }
        )
    return pd.DataFrame(rows)


def test_augment_code_and_queries_share_the_output_contract():
    pairs = _pairs()
    code_rows = augment_code(pairs, 5, seed=1, progress=False)
    query_rows = augment_queries(pairs, 4, seed=1, progress=False)
    for rows, kind, field, other in [
        (code_rows, "natgen", "code", "query"),
        (query_rows, "qra", "query", "code"),
    ]:
        assert list(rows.columns) == ["id", "query", "code", "split", "aug_of", "aug_kind", "aug_op"]
        assert (rows["aug_kind"] == kind).all() and rows["id"].is_unique
        assert rows["id"].str.fullmatch(r"[0-9a-f]{16}").all()
        merged = rows.merge(pairs, left_on="aug_of", right_on="id", suffixes=("", "_orig"))
        assert len(merged) == len(rows)
        assert (merged[other] == merged[f"{other}_orig"]).all() and (
            merged[field] != merged[f"{field}_orig"]
        ).all()
        assert (merged["split"] == "train").all()
    assert set(code_rows["aug_op"]) <= set(ALL) and set(query_rows["aug_op"]) <= {"delete", "copy", "swap"}
    # 5 per pair = at most one per transform: bisect_right has no for loop, nsmallest no if/else
    assert code_rows.groupby("aug_of").size().to_dict() == {
        "bisect.bisect_right": 4,
        "heapq.nsmallest": 4,
        "textwrap.dedent": 5,
    }
    # stable: same seed, shuffled rows -> the same rows; another seed -> other rows
    again = augment_code(pairs.iloc[::-1].reset_index(drop=True), 5, seed=1, progress=False)
    assert set(again["id"]) == set(code_rows["id"])
    assert set(augment_queries(pairs, 4, seed=2, progress=False)["id"]) != set(query_rows["id"])
    assert augment_queries(pairs.iloc[:0], 3, seed=0, progress=False).columns.tolist()[-3:] == [
        "aug_of",
        "aug_kind",
        "aug_op",
    ]
    with pytest.raises(ParameterError, match=r"missing column\(s\) \['code'\]"):
        augment_queries(pairs.drop(columns="code"), 2, seed=0)
    with pytest.raises(ParameterError, match="per_pair"):
        augment_code(pairs, -1, seed=0)


def test_transform_stats():
    codes = [stdlib_function("bisect", "bisect_right"), stdlib_function("textwrap", "dedent"), "def f(:"]
    st = transform_stats(codes, seed=0).set_index("transform")
    assert list(st.index) == list(ALL)
    assert st.loc["loop_transformation", "applied"] == 1 and st.loc["dead_code_insertion", "applied"] == 2
    assert (st["n_codes"] == 3).all() and (st["ms_per_code"] > 0).all()


# ---------------------------------------------------------------- QRA


def test_qra_operations_exact():
    assert apply_op("sort a list", "delete", 1) == "sort list"
    assert apply_op("sort a list", "copy", 2) == "sort a list list"
    assert apply_op("sort a list", "swap", 0, 2) == "list a sort"
    assert apply_op("  sort   a\tlist ", "copy", 0) == "sort sort a list"
    assert candidates("a a b", "delete") == ["a b", "a a"]
    assert candidates("a a b", "swap") == ["b a a", "a b a"]
    assert candidates("a a b", "copy") == ["a a a b", "a a b b"]
    with pytest.raises(ParameterError, match="op"):
        apply_op("a b", "shuffle", 0)
    with pytest.raises(ParameterError, match="outside"):
        apply_op("a b", "delete", 2)


def test_qra_augment_with_a_fixed_rng():
    q = "how to sort a list"
    out = qra_augment(q, 6, 0)
    assert out == qra_augment(q, 6, np.random.default_rng(0))
    assert out == [  # each round uses every operation once, in a random order
        ("swap", "list to sort a how"),
        ("delete", "to sort a list"),
        ("copy", "how how to sort a list"),
        ("delete", "how to sort a"),
        ("copy", "how to sort a a list"),
        ("swap", "how to sort list a"),
    ]
    for op, new in out:  # each is one edit of its kind
        words, orig = new.split(), q.split()
        assert len(words) == len(orig) + {"delete": -1, "copy": 1, "swap": 0}[op]
    assert [op for op, _ in qra_augment(q, 3, 5, ops=("swap",))] == ["swap"] * 3
    assert qra_augment(q, 3, 1) != qra_augment(q, 3, 2)


def test_qra_distinct_never_original_and_short_queries():
    q = "read a file line by line"
    out = qra_augment(q, 100, 3)
    texts = [t for _, t in out]
    assert len(texts) == len(set(texts)) and q not in texts and all(texts)
    # every distinct single edit, and nothing else: 6 deletions + 6 copies + swaps of different words
    expected = set(candidates(q, "delete")) | set(candidates(q, "copy")) | set(candidates(q, "swap"))
    assert set(texts) == expected and len(texts) == len(expected)
    assert qra_augment("sort", 5, 0) == [("copy", "sort sort")]
    assert sorted(qra_augment("go go", 5, 0)) == [("copy", "go go go"), ("delete", "go")]
    assert qra_augment("", 5, 0) == [] and qra_augment("   ", 2, 0) == []
    with pytest.raises(ParameterError, match="ops"):
        qra_augment(q, 2, 0, ops=("insert",))
    with pytest.raises(ParameterError, match="rng"):
        qra_augment(q, 2, "seed")


# ---------------------------------------------------------------- sandbox


def test_sandbox_values_errors_and_output():
    res = run_calls_in_sandbox(
        "import sys\ndef f(x):\n    print('hello', x)\n    return {'x': [x, x * 2]}\n",
        ["f(3)", "1 / 0", "f(None)", "sys.exit(4)", "undefined_name", "f('ab')"],
        timeout=2,
    )
    assert [r.status for r in res] == ["ok", "error", "error", "error", "error", "ok"]
    assert res[0].value_repr == "{'x': [3, 6]}" and res[5].value_repr == "{'x': ['ab', 'abab']}"
    assert (res[1].exc_type, res[1].exc_message) == ("ZeroDivisionError", "division by zero")
    assert (
        res[2].exc_type == "TypeError" and res[3].exc_type == "SystemExit" and res[4].exc_type == "NameError"
    )
    assert "hello 3" in res[0].stdout_tail and res[0].returncode == 0
    bad = run_calls_in_sandbox("def f(:\n", ["f()", "1"], timeout=2)
    assert [(r.status, r.exc_type) for r in bad] == [("error", "SyntaxError")] * 2
    assert bad[0].exc_message.startswith("source: ")
    with pytest.raises(ParameterError, match="timeout"):
        run_in_sandbox("", "1", timeout=0)


def test_sandbox_infinite_loop_times_out_and_leaves_no_process():
    t0 = time.perf_counter()
    res = run_calls_in_sandbox(
        "import os\ndef spin():\n    while True:\n        pass\n",
        ["os.getpid()", "spin()", "2 + 2"],
        timeout=0.5,
    )
    assert time.perf_counter() - t0 < 0.5 * 3 + 10
    assert [r.status for r in res] == ["ok", "timeout", "ok"] and res[2].value_repr == "4"
    assert 0.45 < res[1].seconds < 2
    # code that disables the per-call timer is killed with its process group at the batch deadline
    src = "import os, signal\ndef spin():\n    signal.signal(signal.SIGALRM, signal.SIG_IGN)\n    while True:\n        pass\n"
    t0 = time.perf_counter()
    res = run_calls_in_sandbox(src, ["os.getpid()", "spin()", "1"], timeout=0.5, grace_s=1.0)
    elapsed = time.perf_counter() - t0
    assert 2.4 < elapsed < 7, elapsed  # deadline = 0.5 s x 3 steps + 1 s grace
    assert [r.status for r in res] == ["ok", "timeout", "timeout"]
    pid = int(res[0].value_repr)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_sandbox_memory_limit_and_process_death():
    res = run_calls_in_sandbox(
        "",
        ["len(bytearray(1 << 31))", "len('x' * (1 << 33))", "len(bytearray(1 << 20))"],
        timeout=5,
        memory_mb=256,
    )
    assert [r.status for r in res] == ["error", "error", "ok"]
    assert res[0].exc_type == "MemoryError" and res[2].value_repr == str(1 << 20)
    died = run_calls_in_sandbox("import os\n", ["1", "os._exit(3)", "2"], timeout=2)
    assert [r.status for r in died] == ["ok", "killed", "killed"] and died[1].returncode == 3
    segv = run_in_sandbox("import signal\n", "signal.raise_signal(signal.SIGSEGV)", timeout=2)
    assert segv.status == "killed" and "SIGSEGV" in segv.exc_message


def test_sandbox_runs_in_a_temporary_folder_and_blocks_processes_and_sockets(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = run_calls_in_sandbox(
        "import os\n",
        [
            "open('marker.txt', 'w').write('x')",
            "os.getcwd()",
            "os.path.exists('marker.txt')",
            "__import__('subprocess').run(['true'])",
            "os.system('true')",
            "os.environ.get('HOME')",
        ],
        timeout=2,
    )
    assert [r.status for r in res[:3]] == ["ok"] * 3 and res[2].value_repr == "True"
    sandbox_cwd = eval(res[1].value_repr)
    assert sandbox_cwd != str(tmp_path) and not Path(sandbox_cwd).exists()  # removed afterwards
    assert not (tmp_path / "marker.txt").exists() and not Path("marker.txt").exists()
    assert res[3].exc_type == "PermissionError" and res[4].exc_type == "PermissionError"
    assert eval(res[5].value_repr) == sandbox_cwd
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        blocked = run_in_sandbox(
            "import socket\n", f"socket.create_connection(('127.0.0.1', {port}), timeout=1)", timeout=2
        )
    assert blocked.exc_type == "PermissionError" and "socket" in blocked.exc_message


def test_same_behaviour_detects_a_difference():
    original = "def f(x):\n    return x < 3\n"
    wrong = "def f(x):\n    return x <= 3\n"
    cmp = same_behaviour(original, wrong, ["f(1)", "f(3)", "f('a')"], timeout=2)
    assert not cmp and [m[0] for m in cmp.mismatches] == ["f(3)"]
    assert same_behaviour(original, operand_swap(original, 0), ["f(1)", "f(3)", "f('a')"], timeout=2)
    objs = "class A:\n    pass\ndef f():\n    return A()\n"  # reprs with addresses compare equal
    assert same_behaviour(objs, objs, ["f()"], timeout=2)
    slow = same_behaviour(
        "def f():\n    while True:\n        pass\n", "def f():\n    return 1\n", ["f()"], timeout=0.5
    )
    assert not slow and slow.mismatches[0][1].status == "timeout"
    with pytest.raises(ParameterError, match="calls"):
        same_behaviour(original, original, [])


def test_stdlib_helper_strips_docstrings_like_the_corpus():
    code = stdlib_function("colorsys", "rgb_to_hsv")
    assert (
        code.startswith("def rgb_to_hsv(r, g, b):\n") and '"""' not in code and textwrap.dedent(code) == code
    )
