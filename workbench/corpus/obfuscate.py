"""AdvTest-style identifier obfuscation of one Python function, with ``ast`` and ``symtable``.

CodeXGLUE's AdvTest renames a function's name to ``func`` and its variables to ``arg_i`` so that a
retriever cannot match query words against identifiers. :func:`obfuscate` does this for one
function (the mined code: a single ``def``, dedented, decorators and docstring already removed):

- the function's own name -> ``func``, and recursive references to it (a global name inside the
  body) -> ``func`` too; for a method (``method=True``) a body reference to that name is a module
  global or builtin in the original file, so it is left alone (only the ``def`` is renamed);
- parameters and locals of the function -> ``arg_0``, ``arg_1``, ... in order of first appearance
  in the source (so parameters come first). Locals of nested scopes are renamed as well: nested
  functions and lambdas (their parameters and locals) and comprehension variables. Each variable
  gets its own number, so two nested functions' parameters both called ``line`` become two
  different names (the mapping then sends both back to ``line``). The names of
  nested ``def`` / ``class`` statements inside the function are locals bound by that statement and
  get an ``arg_i`` too (a descriptive helper name would give the answer away);
- comprehension variables are merged into the scope that holds the comprehension: ``x`` in
  ``[x for x in xs]`` gets the same new name as a local ``x`` of that function. Python 3.12+
  (PEP 709) reports list/set/dict comprehensions inlined into the function's symbol table while
  3.11 gives them their own tables; merging makes the output the same on every version and keeps
  behaviour (the shadowing structure is unchanged);
- left untouched: globals and builtins, names declared ``global`` (a ``nonlocal`` name follows the
  variable it refers to), imported names (``import os.path`` cannot be renamed without rewriting the
  import), attributes (``obj.attr``), keyword names at call sites (``f(key=...)``), class-body names
  of a nested class (they are class attributes: renaming them changes behaviour), string contents.

``symtable`` (run on the function's source) classifies every name; the ``ast`` walk follows the
compiler's scope-visiting order so each nested scope is paired with its symbol table (checked by
name, line and parameters; a mismatch fails the function rather than guessing). A new name never
equals a name left untouched (``arg_3`` in use as a global is skipped; ``func`` becomes
``func_1``), so renaming back is unambiguous.

Checks (a failure sets ``ok=False`` and names the ``reason``): the original compiles; the result
compiles (``compile(..., "exec")``, never executed); renaming the result back with the inverse
mapping gives the same tree (``ast.dump``) as the original parsed and unparsed; the function does
not read its locals by name (``locals()``, ``vars()``, one-argument ``eval`` / ``exec``), which
renaming would break. ``ast.unparse`` drops comments and reformats, so compare the result with
``ObfuscationResult.original`` (the unparsed, un-renamed code), not with the mined text.
"""

from __future__ import annotations

import ast
import json
import symtable
import textwrap
import warnings
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

OBFUSCATOR_VERSION = "1"
"""Bump when the renaming rules change: it is part of the OOD suite's cache key."""

FUNC_NAME = "func"
ARG_PREFIX = "arg_"

FAILURE_REASONS = (
    "syntax_error",  # the code does not parse
    "not_a_function",  # the code is not exactly one def / async def
    "original_does_not_compile",
    "unsupported_syntax",  # PEP 695 type parameters (3.12+)
    "symtable_mismatch",  # a nested scope could not be paired with its symbol table
    "dynamic_names",  # locals() / vars() / one-argument eval or exec
    "too_deep",  # RecursionError while walking, unparsing or compiling
    "compile_error",  # the obfuscated code does not compile
    "roundtrip_mismatch",  # renaming back does not give the original tree
)

_COMP_TABLES = frozenset({"listcomp", "setcomp", "dictcomp", "genexpr"})
_COMP_NODES = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
_FUNC_NODES = (ast.FunctionDef, ast.AsyncFunctionDef)
_SCOPE_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_TYPE_PARAM_NODES = tuple(getattr(ast, n) for n in ("TypeVar", "ParamSpec", "TypeVarTuple", "TypeAlias") if hasattr(ast, n))
_FUNC_KEY = ("<func>",)
_DYNAMIC = frozenset({"locals", "vars", "eval", "exec"})


@dataclass(frozen=True)
class ObfuscationResult:
    """``code``: the obfuscated function (``ast.unparse``), None when not ``ok``; ``mapping``: new
    name -> original name; ``reason``: why it failed (one of :data:`FAILURE_REASONS`), None when ok;
    ``original``: the original parsed and unparsed (same formatting as ``code``, comments dropped)."""

    code: str | None
    mapping: dict[str, str]
    ok: bool
    reason: str | None
    original: str | None = None


class _Fail(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class _Frame:
    kind: str  # "module" | "function" | "class" | "comp"
    key: int
    table: Any = None
    children: list = field(default_factory=list)
    pos: int = 0
    bindings: frozenset = frozenset()  # function: names bound in its own body; comp: generator targets
    name: str = ""  # class name (private-name mangling)
    owner: int = 0  # comp: key of the nearest enclosing non-comprehension frame


def _table_type(t: symtable.SymbolTable) -> str:
    return str(t.get_type()).lower().rsplit(".", 1)[-1]


def _flat_children(table: symtable.SymbolTable) -> list[symtable.SymbolTable]:
    """The nested scopes of ``table`` in visiting order, comprehension tables replaced by their own
    nested scopes (3.11 has them, 3.12+ inlines list/set/dict comprehensions), annotation scopes
    (3.13+, lazily evaluated annotations) left out: names in annotations are never renamed."""
    out: list[symtable.SymbolTable] = []
    for c in table.get_children():
        kind = _table_type(c)
        if kind == "function" and c.get_name() in _COMP_TABLES:
            out.extend(_flat_children(c))
        elif kind == "annotation":
            continue
        else:
            out.append(c)
    return out


def _store_names(target: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}


def _all_args(args: ast.arguments) -> list[ast.arg]:
    return [a for a in (*args.posonlyargs, *args.args, args.vararg, *args.kwonlyargs, args.kwarg) if a is not None]


def _own_bindings(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> frozenset[str]:
    """Names bound in the function's own scope (parameters, assignments, ``del``, loop / with /
    except / match targets, imports, nested def and class names, walrus targets in its
    comprehensions), minus names declared ``global`` / ``nonlocal``. Comprehension targets and
    nested scopes' bodies are not counted."""
    names = {a.arg for a in _all_args(node.args)}
    declared: set[str] = set()
    stack: list[ast.AST] = [node.body] if isinstance(node, ast.Lambda) else list(node.body)
    while stack:
        n = stack.pop()
        if isinstance(n, _SCOPE_DEFS):
            names.add(n.name)
            stack.extend(n.decorator_list)
            if isinstance(n, ast.ClassDef):
                stack.extend([*n.bases, *(k.value for k in n.keywords)])
            else:
                stack.extend([*n.args.defaults, *(d for d in n.args.kw_defaults if d is not None)])
                stack.extend(a.annotation for a in _all_args(n.args) if a.annotation is not None)
                if n.returns is not None:
                    stack.append(n.returns)
            continue
        if isinstance(n, ast.Lambda):
            stack.extend([*n.args.defaults, *(d for d in n.args.kw_defaults if d is not None)])
            continue
        if isinstance(n, _COMP_NODES):  # targets are the comprehension's; a walrus inside binds here
            for g in n.generators:
                stack.extend([g.iter, *g.ifs])
            stack.extend([n.key, n.value] if isinstance(n, ast.DictComp) else [n.elt])
            continue
        if isinstance(n, ast.Name) and isinstance(n.ctx, (ast.Store, ast.Del)):
            names.add(n.id)
        elif isinstance(n, ast.ExceptHandler) and n.name:
            names.add(n.name)
        elif isinstance(n, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in n.names if a.name != "*")
        elif isinstance(n, (ast.Global, ast.Nonlocal)):
            declared.update(n.names)
        elif isinstance(n, (ast.MatchAs, ast.MatchStar)) and n.name:
            names.add(n.name)
        elif isinstance(n, ast.MatchMapping) and n.rest:
            names.add(n.rest)
        stack.extend(ast.iter_child_nodes(n))
    return frozenset(names - declared)


class _Analyzer:
    """Walks the tree in the symbol-table builder's order and records every identifier in a
    variable position with its binding: ``None`` (left alone), :data:`_FUNC_KEY`, or
    ``(frame key, name)`` for a renamed local."""

    def __init__(self, own_name: str, method: bool):
        self.own_name = own_name
        self.method = method
        self.frames: list[_Frame] = []
        self.n_frames = 0
        self.occ: list[tuple[tuple[int, int, int], ast.AST, str, int | None, str, Any]] = []
        self.dynamic = False

    # ---------------------------------------------------------------- frames and tables

    def _push(self, kind: str, table: Any = None, **kw: Any) -> _Frame:
        self.n_frames += 1
        fr = _Frame(kind=kind, key=self.n_frames, table=table,
                    children=_flat_children(table) if table is not None else [], **kw)
        self.frames.append(fr)
        return fr

    def _pop(self) -> None:
        fr = self.frames.pop()
        if fr.table is not None and fr.pos != len(fr.children):
            raise _Fail("symtable_mismatch")

    def _scope_frame(self) -> _Frame:
        return next(f for f in reversed(self.frames) if f.kind != "comp")

    def _next_table(self, node: ast.AST, kind: str, name: str) -> symtable.SymbolTable:
        fr = self._scope_frame()
        if fr.pos >= len(fr.children):
            raise _Fail("symtable_mismatch")
        t = fr.children[fr.pos]
        fr.pos += 1
        if _table_type(t) != kind or t.get_name() != name or t.get_lineno() != node.lineno:
            raise _Fail("symtable_mismatch")
        if kind == "function":
            params = {a.arg for a in _all_args(node.args)}  # type: ignore[attr-defined]
            if set(t.get_parameters()) != params:
                raise _Fail("symtable_mismatch")
        return t

    # ---------------------------------------------------------------- name resolution

    def _mangled(self, name: str) -> str | None:
        if not name.startswith("__") or name.endswith("__"):
            return None
        for fr in reversed(self.frames):
            if fr.kind == "class":
                cls = fr.name.lstrip("_")
                return f"_{cls}{name}" if cls else None
        return None

    def _lookup(self, fr: _Frame, name: str) -> symtable.Symbol | None:
        for n in (name, self._mangled(name)):
            if n is None:
                continue
            try:
                return fr.table.lookup(n)
            except KeyError:
                continue
        return None

    def _global(self, name: str) -> Any:
        return _FUNC_KEY if name == self.own_name and not self.method else None

    def resolve(self, name: str) -> Any:
        """The binding of ``name`` as seen from the innermost frame."""
        direct = True
        for fr in reversed(self.frames):
            if fr.kind == "comp":
                if name in fr.bindings:
                    return (fr.owner, name)
                direct = False
                continue
            if fr.kind == "module":
                return self._global(name)
            if fr.kind == "class":
                if not direct:  # class scopes are invisible to nested functions and comprehensions
                    continue
                direct = False
                sym = self._lookup(fr, name)
                if sym is None:
                    raise _Fail("symtable_mismatch")
                if sym.is_declared_global() or (sym.is_global() and not sym.is_local()):
                    return self._global(name)
                if sym.is_free() and not sym.is_local():
                    continue
                return None  # bound in the class body: a class attribute
            sym = self._lookup(fr, name)  # a function or lambda
            if sym is None:
                if direct:
                    raise _Fail("symtable_mismatch")
                continue
            direct = False
            if sym.is_declared_global():
                return self._global(name)
            if sym.is_free() or sym.is_nonlocal():
                continue
            if sym.is_parameter() or (sym.is_local() and name in fr.bindings):
                return None if sym.is_imported() else (fr.key, name)
            if sym.is_local():  # 3.12+: bound only by an inlined comprehension
                continue
            return self._global(name)
        return self._global(name)

    # ---------------------------------------------------------------- recording

    def _record(self, node: ast.AST, attr: str, name: str, index: int | None = None, pos: ast.AST | None = None,
                binding: Any = "resolve") -> None:
        if binding == "resolve":
            binding = self.resolve(name)
        p = pos or node
        self.occ.append(((getattr(p, "lineno", 0), getattr(p, "col_offset", 0), len(self.occ)), node, attr, index,
                         name, binding))

    # ---------------------------------------------------------------- the walk

    def run(self, module_table: symtable.SymbolTable, fn: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self._push("module", module_table)
        self._def(fn, top=True)
        self._pop()

    def visit(self, node: ast.AST) -> None:
        if isinstance(node, _FUNC_NODES):
            self._def(node)
        elif isinstance(node, ast.Lambda):
            self._lambda(node)
        elif isinstance(node, ast.ClassDef):
            self._class(node)
        elif isinstance(node, _COMP_NODES):
            self._comp(node)
        elif isinstance(node, ast.Name):
            self._record(node, "id", node.id)
        elif isinstance(node, _TYPE_PARAM_NODES):
            raise _Fail("unsupported_syntax")
        else:
            if isinstance(node, ast.Call):
                self._check_dynamic(node)
            if isinstance(node, ast.ExceptHandler) and node.name:
                self._record(node, "name", node.name)
            elif isinstance(node, (ast.Global, ast.Nonlocal)):
                for i, n in enumerate(node.names):
                    self._record(node, "names", n, index=i)
            elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
                self._record(node, "name", node.name)
            elif isinstance(node, ast.MatchMapping) and node.rest:
                self._record(node, "rest", node.rest)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                for a in node.names:  # recorded as kept: a new name must not collide with them
                    if a.name != "*":
                        self._record(a, "asname" if a.asname else "name", (a.asname or a.name).split(".")[0],
                                     pos=node, binding=None)
                return
            for child in ast.iter_child_nodes(node):
                self.visit(child)

    def _check_dynamic(self, node: ast.Call) -> None:
        f = node.func
        if not isinstance(f, ast.Name) or f.id not in _DYNAMIC or self.resolve(f.id) is not None:
            return
        n_args = len(node.args) + len(node.keywords)
        if f.id == "locals" or (f.id == "vars" and n_args == 0) or (f.id in ("eval", "exec") and n_args == 1):
            self.dynamic = True

    def _def(self, node: ast.FunctionDef | ast.AsyncFunctionDef, top: bool = False) -> None:
        if getattr(node, "type_params", None):
            raise _Fail("unsupported_syntax")
        a = node.args
        for d in (*a.defaults, *(d for d in a.kw_defaults if d is not None)):
            self.visit(d)
        for arg in _all_args(a):
            if arg.annotation is not None:
                self.visit(arg.annotation)
        if node.returns is not None:
            self.visit(node.returns)
        for d in node.decorator_list:
            self.visit(d)
        if top:
            self._record(node, "name", node.name, binding=_FUNC_KEY)
        else:
            self._record(node, "name", node.name)
        table = self._next_table(node, "function", node.name)
        self._push("function", table, bindings=_own_bindings(node))
        for arg in _all_args(a):
            self._record(arg, "arg", arg.arg)
        for stmt in node.body:
            self.visit(stmt)
        self._pop()

    def _lambda(self, node: ast.Lambda) -> None:
        a = node.args
        for d in (*a.defaults, *(d for d in a.kw_defaults if d is not None)):
            self.visit(d)
        table = self._next_table(node, "function", "lambda")
        self._push("function", table, bindings=_own_bindings(node))
        for arg in _all_args(a):
            self._record(arg, "arg", arg.arg)
        self.visit(node.body)
        self._pop()

    def _class(self, node: ast.ClassDef) -> None:
        if getattr(node, "type_params", None):
            raise _Fail("unsupported_syntax")
        for e in (*node.bases, *node.keywords, *node.decorator_list):
            self.visit(e)
        self._record(node, "name", node.name)
        table = self._next_table(node, "class", node.name)
        self._push("class", table, name=node.name)
        for stmt in node.body:
            self.visit(stmt)
        self._pop()

    def _comp(self, node: ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp) -> None:
        gens = node.generators
        self.visit(gens[0].iter)  # the outermost iterable is evaluated in the enclosing scope
        bound = frozenset().union(*(_store_names(g.target) for g in gens))
        self._push("comp", bindings=bound, owner=self._scope_frame().key)
        for i, g in enumerate(gens):
            self.visit(g.target)
            if i:
                self.visit(g.iter)
            for cond in g.ifs:
                self.visit(cond)
        if isinstance(node, ast.DictComp):
            self.visit(node.value)  # the symbol-table builder's order: value, then key
            self.visit(node.key)
        else:
            self.visit(node.elt)
        self.frames.pop()


def _set(node: ast.AST, attr: str, index: int | None, value: str) -> None:
    if index is None:
        setattr(node, attr, value)
    else:
        getattr(node, attr)[index] = value


def rename_back(tree: ast.AST, mapping: dict[str, str]) -> ast.AST:
    """Rename every identifier in a variable position (names, parameters, def / class names, except
    / match targets, global / nonlocal lists) that is a key of ``mapping`` to its value, in place.
    Attributes, keywords and imports are never touched (the obfuscator does not rename them)."""
    for n in ast.walk(tree):
        if isinstance(n, ast.Name) and n.id in mapping:
            n.id = mapping[n.id]
        elif isinstance(n, ast.arg) and n.arg in mapping:
            n.arg = mapping[n.arg]
        elif isinstance(n, (*_SCOPE_DEFS, ast.ExceptHandler, ast.MatchAs, ast.MatchStar)):
            if getattr(n, "name", None) in mapping:
                n.name = mapping[n.name]  # type: ignore[union-attr]
        elif isinstance(n, (ast.Global, ast.Nonlocal)):
            n.names = [mapping.get(x, x) for x in n.names]
        elif isinstance(n, ast.MatchMapping) and n.rest in mapping:
            n.rest = mapping[n.rest]
    return tree


def _parse(code: str) -> ast.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # invalid escape sequences in old code
        return ast.parse(code)


def _compile(src: str | ast.AST, name: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compile(src, name, "exec", dont_inherit=True)


def obfuscate(code: str, method: bool = False) -> ObfuscationResult:
    """Rename the function's name to ``func`` and its parameters and locals to ``arg_i`` (see the
    module docstring for the rules). ``method``: the function is a method, so a body reference to
    its own name is a module global, not a recursive call. Never executes the code."""
    try:
        return _obfuscate(code, method)
    except _Fail as f:
        return ObfuscationResult(None, {}, False, f.reason)
    except (RecursionError, MemoryError):
        return ObfuscationResult(None, {}, False, "too_deep")


def _obfuscate(code: str, method: bool) -> ObfuscationResult:
    if code[:1].isspace():
        code = textwrap.dedent(code)
    try:
        tree = _parse(code)
    except (SyntaxError, ValueError):
        raise _Fail("syntax_error") from None
    if len(tree.body) != 1 or not isinstance(tree.body[0], _FUNC_NODES):
        raise _Fail("not_a_function")
    fn = tree.body[0]
    own_name = fn.name
    original = ast.unparse(tree)
    try:
        _compile(tree, "<original>")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table = symtable.symtable(code, "<original>", "exec")
    except (SyntaxError, ValueError):
        raise _Fail("original_does_not_compile") from None

    an = _Analyzer(own_name, method)
    an.run(table, fn)
    if an.dynamic:
        raise _Fail("dynamic_names")

    kept = {name for _, _, _, _, name, b in an.occ if b is None}
    first: dict[Any, tuple[int, int, int]] = {}
    for pos, _, _, _, _, b in an.occ:
        if b is not None and b != _FUNC_KEY and (b not in first or pos < first[b]):
            first[b] = pos
    new: dict[Any, str] = {}
    i = 0
    for b in sorted(first, key=first.__getitem__):
        while f"{ARG_PREFIX}{i}" in kept:
            i += 1
        new[b] = f"{ARG_PREFIX}{i}"
        i += 1
    func = FUNC_NAME
    j = 0
    while func in kept:
        j += 1
        func = f"{FUNC_NAME}_{j}"
    new[_FUNC_KEY] = func

    mapping: dict[str, str] = {func: own_name}
    for _, node, attr, index, _name, b in an.occ:
        if b is None:
            continue
        _set(node, attr, index, new[b])
        mapping[new[b]] = own_name if b == _FUNC_KEY else b[1]

    obf = ast.unparse(tree)
    try:
        _compile(obf, "<obfuscated>")
        back = rename_back(_parse(obf), mapping)
    except (SyntaxError, ValueError):
        raise _Fail("compile_error") from None
    if ast.dump(back) != ast.dump(_parse(original)):
        raise _Fail("roundtrip_mismatch")
    return ObfuscationResult(obf, dict(sorted(mapping.items(), key=_mapping_order)), True, None, original)


def _mapping_order(item: tuple[str, str]) -> tuple[int, int, str]:
    new = item[0]
    if new.startswith(ARG_PREFIX) and new[len(ARG_PREFIX):].isdigit():
        return (1, int(new[len(ARG_PREFIX):]), new)
    return (0, 0, new)


def obfuscate_frame(
    df: Any, code_column: str = "code", method_column: str | None = "func_name"
) -> tuple[Any, dict[str, Any]]:
    """Obfuscate every row's code. Returns the surviving rows (original order and columns, ``code``
    replaced by the obfuscated code; ``code_original`` = the original parsed and unparsed, i.e.
    without comments; ``obf_mapping`` = the new -> old mapping as JSON) and a report: ``n_input``,
    ``n_ok``, ``survival_rate`` (a fraction), ``failures`` (reason -> count), ``failed_examples``
    (up to 20 ``{id, func_name, reason}``), ``mean_renamed`` (identifiers renamed per function,
    the function name included) and ``n_name_only`` (functions where only the name changed).

    A row is a method when ``method_column`` (a qualified name such as ``Class.method``) has a dot.
    """
    ok_mask, codes, originals, mappings, reasons = [], [], [], [], Counter()
    failed: list[dict[str, Any]] = []
    quals = df[method_column].tolist() if method_column and method_column in df.columns else [None] * len(df)
    ids = df["id"].tolist() if "id" in df.columns else list(range(len(df)))
    for code, qual, pid in zip(df[code_column].tolist(), quals, ids):
        r = obfuscate(code, method=bool(qual) and "." in str(qual))
        ok_mask.append(r.ok)
        if r.ok:
            codes.append(r.code)
            originals.append(r.original)
            mappings.append(json.dumps(r.mapping, sort_keys=True))
        else:
            reasons[r.reason] += 1
            if len(failed) < 20:
                failed.append({"id": pid, "func_name": qual, "reason": r.reason})
    out = df.loc[ok_mask].copy()
    out[code_column] = codes
    out["code_original"] = originals
    out["obf_mapping"] = mappings
    n_renamed = [len(json.loads(m)) for m in mappings]
    report = {
        "n_input": len(df),
        "n_ok": len(out),
        "survival_rate": round(len(out) / len(df), 6) if len(df) else float("nan"),
        "failures": dict(sorted(reasons.items())),
        "failed_examples": failed,
        "mean_renamed": round(sum(n_renamed) / len(n_renamed), 3) if n_renamed else 0.0,
        "n_name_only": sum(1 for n in n_renamed if n == 1),
        "obfuscator_version": OBFUSCATOR_VERSION,
    }
    return out, report
