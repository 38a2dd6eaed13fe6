"""NatGen-style semantics-preserving code transforms (Chakraborty et al. 2022), the code baseline of
ChatDANCE (papers/002, section IV-B: the first five of NatGen's six transforms, each used three times
for 15 rewrites per code; ``docs/methods.md`` section 2). Pure ``ast`` on Python source; the
transformed code is never executed here (``workbench.sandbox`` checks equivalence in a subprocess).

Each transform is ``(source, rng) -> str | None``: the source (one function as the corpus stores it,
dedented, docstring removed; or any module text) is parsed with :func:`ast.parse`, ONE random site is
rewritten, and the result is returned as :func:`ast.unparse` text (comments and formatting are lost);
``None`` when the transform has no site, the source does not parse or compile, or the result would not
compile or equal the original (``ast.dump``). The rules, and what each assumes:

- ``loop_transformation``: ``for T in E: B`` without ``else`` (not ``async for``, not in a class body,
  ``T`` made of names / tuples / lists / starred) becomes ``_it = iter(E)`` then ``while True:
  try: T = next(_it) except StopIteration: break`` followed by ``B``. ``break`` and ``continue`` in
  ``B`` keep their meaning (``continue`` returns to the ``next`` call). Skipped when the code binds
  ``iter`` / ``next`` / ``StopIteration`` (shadowing them); assumes module globals do not shadow them
  either. The iterator stays bound to ``_it`` after the loop, so a generator being iterated is
  finalised when the function returns rather than when the loop ends.
- ``dead_code_insertion``: at a random statement position inside a function (not before a docstring),
  insert ``if False: S`` or ``while False: S`` where ``S`` is a copy of a simple statement of the same
  scope (assignment, augmented assignment, expression, ``return``, ``raise``, ``assert``; none with
  ``yield`` / ``await`` / ``:=`` / ``lambda`` / comprehensions / ``break`` / ``continue``, so the scope's
  names and kind (generator or not) do not change), or an unused assignment ``var_N = <constant>`` to a
  fresh name (not when the code reads ``locals()`` / ``vars()`` / ``eval`` / ``exec`` / frames).
- ``operand_swap``: one single-comparator comparison ``a OP b`` with OP in ``< > <= >= == !=`` becomes
  ``b OP' a`` (``<``/``>`` and ``<=``/``>=`` mirrored, ``==`` / ``!=`` kept); never ``in`` / ``is`` or chains.
  Python evaluates ``b`` before ``a`` afterwards, so the swap is made only when that cannot matter:
  one operand is a constant, or neither calls anything but side-effect-free builtins (``len``,
  ``isinstance``, ``abs``, ...) and neither contains ``yield`` / ``await`` / ``:=``. Assumes ``__lt__``
  / ``__gt__`` (etc.) of the types involved are mirror images, as Python's reflected operators do.
- ``block_swap``: ``if C: A else: B`` (both branches present; an ``elif`` chain's tail is a branch like
  any other) becomes ``if not C: B else: A``; ``not X`` is unwrapped to ``X`` and ``is`` / ``in`` become
  ``is not`` / ``not in`` (and back), which the language defines as exact negations. ``==`` / ``<`` are
  never inverted (NaN, numpy, custom ``__eq__``).
- ``variable_renaming``: a random non-empty subset of the renamable variables of a top-level function
  become fresh ``var_0``, ``var_1``, ... everywhere they occur in that function. Renamable (checked with
  :mod:`symtable`): a local that is assigned (not imported, not a nested ``def`` / ``class`` name, not
  declared ``global`` / ``nonlocal``, not starting with ``__``) and that no nested scope (function,
  lambda, comprehension, class) mentions at all, so closures and shadowing are untouched; parameters
  only when callers cannot pass them by keyword: positional-only ones and ``*args`` / ``**kwargs``
  (``self`` / ``cls`` never). Attributes, keyword names at call sites, strings, defaults and
  annotations of the function's own signature (evaluated outside it) are left alone. Skipped when the
  function reads its locals by name (``locals()``, ``vars()``, ``eval``, ``exec``, frame access).

Why one module of this size: the five transforms share the AST helpers that make each of them
semantics-preserving (parsing and unparsing, statement lists, bound and fresh names, which
expressions are free of side effects and safe to reorder, symbol tables).
"""

from __future__ import annotations

import ast
import copy
import functools
import math
import symtable
import textwrap
import time
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from ..errors import ParameterError
from .qra import as_rng, augment_frame

TransformFn = Callable[[str, np.random.Generator], "str | None"]

_FUNC = (ast.FunctionDef, ast.AsyncFunctionDef)
_SCOPE = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
_COMPS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
_MIRROR: dict[type, type] = {
    ast.Lt: ast.Gt,
    ast.Gt: ast.Lt,
    ast.LtE: ast.GtE,
    ast.GtE: ast.LtE,
    ast.Eq: ast.Eq,
    ast.NotEq: ast.NotEq,
}
_NEGATE: dict[type, type] = {ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.In: ast.NotIn, ast.NotIn: ast.In}
PURE_BUILTINS = frozenset(
    {
        "len",
        "isinstance",
        "issubclass",
        "type",
        "abs",
        "min",
        "max",
        "ord",
        "chr",
        "bool",
        "int",
        "float",
        "str",
        "repr",
        "tuple",
        "list",
        "set",
        "frozenset",
        "dict",
        "range",
        "sorted",
        "sum",
        "any",
        "all",
        "round",
        "divmod",
        "hasattr",
        "getattr",
        "callable",
        "id",
    }
)
"""Builtins whose call an operand swap treats as free of side effects (assumes they are not shadowed)."""
_DEAD_CONSTANTS = (0, 1, None, "", False)


# ---------------------------------------------------------------- helpers


@functools.lru_cache(maxsize=1024)
def _canonical(text: str) -> str | None:
    """``ast.unparse`` of the text if it parses and compiles, else None (cached: every transform of a
    code starts from the same text)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SyntaxWarning on odd escapes in mined code
            tree = ast.parse(text)
            compile(tree, "<natgen>", "exec")
            return ast.unparse(tree)
    except (SyntaxError, ValueError, RecursionError, MemoryError, TypeError):
        return None


def _parse(source: str) -> ast.Module | None:
    """A fresh tree of the dedented source, or None when it does not parse or compile."""
    text = textwrap.dedent(source)
    if _canonical(text) is None:
        return None
    try:
        return ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):  # pragma: no cover - _canonical parsed it
        return None


def _finish(tree: ast.Module, source: str) -> str | None:
    """Unparse ``tree``; None unless the text compiles and differs from the (unparsed) original."""
    try:
        ast.fix_missing_locations(tree)
        new = ast.unparse(tree)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compile(new, "<natgen>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError, TypeError):
        return None
    return None if new == _canonical(textwrap.dedent(source)) else new


def code_fingerprint(source: str) -> str | None:
    """The code as ``ast.unparse`` writes it (formatting and comments ignored; two texts with the same
    tree get the same fingerprint), None when it does not parse or compile."""
    return _canonical(textwrap.dedent(source))


def _stmt_lists(tree: ast.AST) -> list[tuple[list[ast.stmt], ast.AST]]:
    """Every statement list (bodies, ``else``, ``finally``, handler and case bodies) with the scope
    node (Module, function or class) its statements run in."""
    out: list[tuple[list[ast.stmt], ast.AST]] = []
    stack: list[tuple[ast.AST, ast.AST]] = [(tree, tree)]
    while stack:
        node, scope = stack.pop()
        for _, value in ast.iter_fields(node):
            if isinstance(value, list) and value and isinstance(value[0], ast.stmt):
                out.append((value, scope))
        for child in ast.iter_child_nodes(node):
            stack.append((child, child if isinstance(child, _SCOPE) else scope))
    out.reverse()
    return out


def _identifiers(tree: ast.AST) -> set[str]:
    """Every identifier spelled in the code (names, parameters, attributes, keywords, imports, ...)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        for attr in ("id", "arg", "name", "attr", "asname", "rest"):
            value = getattr(node, attr, None)
            if isinstance(value, str):
                names.add(value)
        if isinstance(node, (ast.Global, ast.Nonlocal)):
            names.update(node.names)
        if isinstance(node, ast.alias):
            names.add(node.name.split(".")[0])
    return names


def _bound_names(tree: ast.AST) -> set[str]:
    """The names the code binds anywhere (assignments, parameters, ``def`` / ``class``, imports,
    ``except ... as``, ``global`` / ``nonlocal``, match captures)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            names.add(node.id)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif (
            isinstance(
                node,
                (
                    ast.FunctionDef,
                    ast.AsyncFunctionDef,
                    ast.ClassDef,
                    ast.ExceptHandler,
                    ast.MatchAs,
                    ast.MatchStar,
                ),
            )
            and node.name
        ):
            names.add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            names.add(node.rest)
        elif isinstance(node, ast.alias):
            names.add(node.asname or node.name.split(".")[0])
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            names.update(node.names)
    return names


def _fresh(stem: str, used: set[str], numbered: bool = True) -> str:
    """The first of ``stem0, stem1, ...`` (or ``stem, stem1, ...``) not in ``used``; added to ``used``."""
    k = 0
    while True:
        name = f"{stem}{k}" if numbered or k else stem
        if name not in used:
            used.add(name)
            return name
        k += 1


def _uses_dynamic_names(tree: ast.AST) -> bool:
    """True when the code may read local variables by name (renaming or new locals would show)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id in ("locals", "eval", "exec") or (
                node.func.id in ("vars", "dir") and not node.args
            ):
                return True
        if isinstance(node, ast.Attribute) and node.attr in ("_getframe", "currentframe", "f_locals"):
            return True
    return False


def _is_docstring(stmt: ast.stmt) -> bool:
    return (
        isinstance(stmt, ast.Expr)
        and isinstance(stmt.value, ast.Constant)
        and isinstance(stmt.value.value, str)
    )


def _pick(rng: np.random.Generator, items: Sequence):
    return items[int(rng.integers(len(items)))]


# ---------------------------------------------------------------- transforms


def _simple_target(target: ast.expr) -> bool:
    if isinstance(target, ast.Name):
        return True
    if isinstance(target, ast.Starred):
        return _simple_target(target.value)
    if isinstance(target, (ast.Tuple, ast.List)):
        return all(_simple_target(e) for e in target.elts)
    return False


def loop_transformation(source: str, rng: np.random.Generator) -> str | None:
    """A ``for`` loop without ``else`` as ``while True`` with an explicit iterator (module docstring)."""
    tree = _parse(source)
    if tree is None or _uses_dynamic_names(tree):
        return None
    used = _identifiers(tree)
    if _bound_names(tree) & {"iter", "next", "StopIteration"}:
        return None
    sites = [
        (body, i)
        for body, scope in _stmt_lists(tree)
        if not isinstance(scope, ast.ClassDef)
        for i, s in enumerate(body)
        if isinstance(s, ast.For) and not s.orelse and _simple_target(s.target)
    ]
    if not sites:
        return None
    body, i = _pick(as_rng(rng), sites)
    loop: ast.For = body[i]  # type: ignore[assignment]
    it = _fresh("_it", used, numbered=False)
    init = ast.Assign(
        targets=[ast.Name(it, ast.Store())], value=ast.Call(ast.Name("iter", ast.Load()), [loop.iter], [])
    )
    fetch = ast.Try(
        body=[
            ast.Assign(
                targets=[loop.target],
                value=ast.Call(ast.Name("next", ast.Load()), [ast.Name(it, ast.Load())], []),
            )
        ],
        handlers=[
            ast.ExceptHandler(type=ast.Name("StopIteration", ast.Load()), name=None, body=[ast.Break()])
        ],
        orelse=[],
        finalbody=[],
    )
    new_loop = ast.While(test=ast.Constant(True), body=[fetch, *loop.body], orelse=[])
    body[i : i + 1] = [ast.copy_location(init, loop), ast.copy_location(new_loop, loop)]
    return _finish(tree, source)


_NOT_COPYABLE = (
    ast.Yield,
    ast.YieldFrom,
    ast.Await,
    ast.NamedExpr,
    ast.Lambda,
    *_COMPS,
    ast.Break,
    ast.Continue,
    ast.Global,
    ast.Nonlocal,
)


def _copyable(stmt: ast.stmt) -> bool:
    if not isinstance(stmt, (ast.Assign, ast.AugAssign, ast.Expr, ast.Return, ast.Raise, ast.Assert)):
        return False
    if _is_docstring(stmt):
        return False
    return not any(isinstance(n, _NOT_COPYABLE) for n in ast.walk(stmt))


def dead_code_insertion(source: str, rng: np.random.Generator) -> str | None:
    """An unreachable ``if False:`` / ``while False:`` block or an unused assignment (module docstring)."""
    tree = _parse(source)
    if tree is None:
        return None
    gen = as_rng(rng)
    lists = _stmt_lists(tree)
    sites = []
    for body, scope in lists:
        if not isinstance(scope, _FUNC):
            continue
        start = 1 if body is scope.body and _is_docstring(body[0]) else 0
        sites.extend((body, pos, scope) for pos in range(start, len(body) + 1))
    if not sites:
        return None
    body, pos, scope = _pick(gen, sites)
    copyable = [s for b, sc in lists if sc is scope for s in b if _copyable(s)]
    kinds = (["if_false", "while_false"] if copyable else []) + (
        [] if _uses_dynamic_names(tree) else ["unused_assign"]
    )
    if not kinds:
        return None
    kind = _pick(gen, kinds)
    if kind == "unused_assign":
        name = _fresh("var_", _identifiers(tree))
        stmt: ast.stmt = ast.Assign(
            targets=[ast.Name(name, ast.Store())], value=ast.Constant(_pick(gen, _DEAD_CONSTANTS))
        )
    else:
        inner = copy.deepcopy(_pick(gen, copyable))
        block = ast.If if kind == "if_false" else ast.While
        stmt = block(test=ast.Constant(False), body=[inner], orelse=[])
    body.insert(pos, stmt)
    return _finish(tree, source)


def _is_constant(e: ast.expr) -> bool:
    return isinstance(e, ast.Constant) or (isinstance(e, ast.UnaryOp) and isinstance(e.operand, ast.Constant))


def _effect_free(e: ast.expr) -> bool:
    for n in ast.walk(e):
        if isinstance(n, ast.Call) and not (isinstance(n.func, ast.Name) and n.func.id in PURE_BUILTINS):
            return False
        if isinstance(n, (ast.Await, ast.Yield, ast.YieldFrom, ast.NamedExpr, *_COMPS)):
            return False
    return True


def _reorder_safe(a: ast.expr, b: ast.expr) -> bool:
    if any(
        isinstance(n, (ast.Await, ast.Yield, ast.YieldFrom, ast.NamedExpr))
        for side in (a, b)
        for n in ast.walk(side)
    ):
        return False
    return _is_constant(a) or _is_constant(b) or (_effect_free(a) and _effect_free(b))


def operand_swap(source: str, rng: np.random.Generator) -> str | None:
    """``a < b`` -> ``b > a`` (and the other mirrored operators) at one safe comparison (module docstring)."""
    tree = _parse(source)
    if tree is None:
        return None
    sites = [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Compare)
        and len(n.ops) == 1
        and type(n.ops[0]) in _MIRROR
        and _reorder_safe(n.left, n.comparators[0])
    ]
    if not sites:
        return None
    node = _pick(as_rng(rng), sites)
    node.left, node.comparators = node.comparators[0], [node.left]
    node.ops = [_MIRROR[type(node.ops[0])]()]
    return _finish(tree, source)


def _negate(test: ast.expr) -> ast.expr:
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        return test.operand
    if isinstance(test, ast.Compare) and len(test.ops) == 1 and type(test.ops[0]) in _NEGATE:
        return ast.Compare(left=test.left, ops=[_NEGATE[type(test.ops[0])]()], comparators=test.comparators)
    return ast.UnaryOp(op=ast.Not(), operand=test)


def block_swap(source: str, rng: np.random.Generator) -> str | None:
    """``if c: A else: B`` -> ``if not c: B else: A`` at one ``if`` with both branches (module docstring)."""
    tree = _parse(source)
    if tree is None:
        return None
    sites = [n for n in ast.walk(tree) if isinstance(n, ast.If) and n.orelse]
    if not sites:
        return None
    node = _pick(as_rng(rng), sites)
    node.test = _negate(node.test)
    node.body, node.orelse = node.orelse, node.body
    return _finish(tree, source)


def _descendant_names(table: symtable.SymbolTable) -> set[str]:
    names: set[str] = set()
    stack = list(table.get_children())
    while stack:
        t = stack.pop()
        names.update(t.get_identifiers())
        stack.extend(t.get_children())
    return names


def renamable_variables(
    func: ast.FunctionDef | ast.AsyncFunctionDef, table: symtable.SymbolTable
) -> list[str]:
    """The variables of ``func`` that :func:`variable_renaming` may rename (module docstring), in
    order of first appearance."""
    nested = _descendant_names(table)
    args = func.args
    keyword_free = {a.arg for a in args.posonlyargs} | {
        a.arg for a in (args.vararg, args.kwarg) if a is not None
    }
    ok: set[str] = set()
    for sym in table.get_symbols():
        name = sym.get_name()
        if name in nested or name.startswith(("__", ".")) or name in ("self", "cls"):
            continue
        if not sym.is_local() or sym.is_global() or sym.is_nonlocal() or sym.is_free():
            continue
        if sym.is_imported() or sym.is_namespace():
            continue
        if sym.is_parameter() and name not in keyword_free:
            continue
        if not sym.is_parameter() and not sym.is_assigned():
            continue
        ok.add(name)
    order: list[str] = []
    for a in (*args.posonlyargs, *args.args, args.vararg, *args.kwonlyargs, args.kwarg):
        if a is not None and a.arg in ok and a.arg not in order:
            order.append(a.arg)
    for stmt in func.body:
        for n in ast.walk(stmt):
            name = n.id if isinstance(n, ast.Name) else getattr(n, "name", None)
            if isinstance(name, str) and name in ok and name not in order:
                order.append(name)
    return order


def _function_tables(
    text: str, tree: ast.Module
) -> list[tuple[ast.FunctionDef | ast.AsyncFunctionDef, symtable.SymbolTable]]:
    top = symtable.symtable(text, "<natgen>", "exec")
    children = {(t.get_name(), t.get_lineno()): t for t in top.get_children() if t.get_type() == "function"}
    out = []
    for node in tree.body:
        if isinstance(node, _FUNC):
            lineno = node.decorator_list[0].lineno if node.decorator_list else node.lineno
            table = children.get((node.name, node.lineno)) or children.get((node.name, lineno))
            if table is not None:
                out.append((node, table))
    return out


def _rename(func: ast.FunctionDef | ast.AsyncFunctionDef, mapping: dict[str, str]) -> None:
    args = func.args
    for a in (*args.posonlyargs, *args.args, args.vararg, *args.kwonlyargs, args.kwarg):
        if a is not None and a.arg in mapping:
            a.arg = mapping[a.arg]
    for stmt in func.body:
        for n in ast.walk(stmt):
            if isinstance(n, ast.Name) and n.id in mapping:
                n.id = mapping[n.id]
            elif isinstance(n, (ast.ExceptHandler, ast.MatchAs, ast.MatchStar)) and n.name in mapping:
                n.name = mapping[n.name]
            elif isinstance(n, ast.MatchMapping) and n.rest in mapping:
                n.rest = mapping[n.rest]


def variable_renaming(source: str, rng: np.random.Generator) -> str | None:
    """Rename a random subset of one function's safely renamable variables to ``var_N`` (module docstring)."""
    tree = _parse(source)
    if tree is None or _uses_dynamic_names(tree):
        return None
    try:
        pairs = _function_tables(textwrap.dedent(source), tree)
    except (SyntaxError, ValueError, RecursionError):
        return None
    options = [(f, names) for f, t in pairs if (names := renamable_variables(f, t))]
    if not options:
        return None
    gen = as_rng(rng)
    func, names = _pick(gen, options)
    k = int(gen.integers(1, len(names) + 1))
    chosen = sorted(gen.choice(len(names), size=k, replace=False).tolist())
    used = _identifiers(tree)
    mapping = {names[i]: _fresh("var_", used) for i in chosen}
    _rename(func, mapping)
    return _finish(tree, source)


TRANSFORMS: dict[str, TransformFn] = {
    "loop_transformation": loop_transformation,
    "dead_code_insertion": dead_code_insertion,
    "operand_swap": operand_swap,
    "block_swap": block_swap,
    "variable_renaming": variable_renaming,
}
ALL = tuple(TRANSFORMS)


def _check_transforms(transforms: Sequence[str]) -> list[str]:
    names = list(dict.fromkeys(transforms))
    bad = [t for t in names if t not in TRANSFORMS]
    if bad or not names:
        raise ParameterError(
            f"transforms: expected a non-empty subset of {list(ALL)}, got {list(transforms)}"
        )
    return names


def natgen_augment(
    code: str, n: int, rng: np.random.Generator | int, transforms: Sequence[str] = ALL
) -> list[tuple[str, str]]:
    """Up to ``n`` transformed versions of ``code`` as ``(transform name, new code)``: each compiles,
    differs from the original and from the others (as :func:`code_fingerprint`). Each version is ONE
    transform of the original. Transforms take turns in a random order each round, each giving at most
    ``ceil(n / len(transforms))`` versions (ChatDANCE: five transforms x 3 = 15); one that does not
    apply, or keeps repeating itself, drops out, so fewer than ``n`` come back when transforms are
    missing (e.g. no ``for`` loop, no ``if``/``else``)."""
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
        raise ParameterError(f"n: expected a non-negative int, got {n!r}")
    names = _check_transforms(transforms)
    gen = as_rng(rng)
    base = code_fingerprint(code)
    if base is None or n == 0:
        return []
    seen = {base}
    out: list[tuple[str, str]] = []
    tries, nones, repeats, made = (dict.fromkeys(names, 0) for _ in range(4))
    cap = math.ceil(n / len(names))
    active = list(names)
    while len(out) < n and active:
        for k in gen.permutation(len(active)).tolist():
            name = active[k]
            tries[name] += 1
            new = TRANSFORMS[name](code, gen)  # already canonical: ast.unparse text
            if new is None:
                nones[name] += 1
            elif new in seen:
                repeats[name] += 1
            else:
                seen.add(new)
                out.append((name, new))
                made[name] += 1
                if len(out) == n:
                    break
        # a None from any transform but dead-code insertion means it has no site: drop it at once
        active = [
            t
            for t in active
            if made[t] < cap
            and tries[t] < cap + 3
            and repeats[t] < 3
            and nones[t] < (2 if t == "dead_code_insertion" else 1)
        ]
    return out


def augment_code(
    pairs: pd.DataFrame, per_pair: int, seed: int, progress: bool = True, transforms: Sequence[str] = ALL
) -> pd.DataFrame:
    """NatGen rows for every pair: up to ``per_pair`` transformed codes each, paired with the original
    query; same columns as :func:`workbench.augment.qra.augment_queries` with ``aug_kind="natgen"`` and
    ``aug_op`` the transform name."""
    names = _check_transforms(transforms)
    return augment_frame(
        pairs,
        per_pair,
        seed,
        "natgen",
        "code",
        lambda c, n, rng: natgen_augment(c, n, rng, names),
        progress=progress,
    )


def transform_stats(codes: Sequence[str], seed: int = 0, transforms: Sequence[str] = ALL) -> pd.DataFrame:
    """Applicability and cost of each transform on ``codes``: one row per transform with ``n_codes``,
    ``applied`` (codes where it returned a new version), ``rate`` and ``ms_per_code`` (mean time of one call,
    parsing and compiling the original and the result included)."""
    names = _check_transforms(transforms)
    rows = []
    for name in names:
        fn, gen, applied = TRANSFORMS[name], np.random.default_rng(seed), 0
        _canonical.cache_clear()  # every transform pays for parsing and compiling the original
        t0 = time.perf_counter()
        for code in codes:
            applied += fn(code, gen) is not None
        dt = time.perf_counter() - t0
        rows.append(
            {
                "transform": name,
                "n_codes": len(codes),
                "applied": applied,
                "rate": applied / len(codes) if codes else float("nan"),
                "ms_per_code": 1000 * dt / len(codes) if codes else float("nan"),
            }
        )
    return pd.DataFrame(rows)
