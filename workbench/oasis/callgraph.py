"""The static call graph of a package, for OASIS step 1 (``shared/papers/001`` section 3.1: "program
analysis at the repository level, where information about the function's callers and callees is
extracted"): every ``.py`` file is parsed with :mod:`ast` (never imported or run) and each function
is linked to the package functions it calls (:func:`call_graph` -> :class:`CallGraph`).

**How a call is resolved** (a name is linked only when one definition of the package fits; a call
to the standard library, a builtin or another distribution gives no edge):

1. ``f(...)``: a function nested in the caller (or in a function enclosing it), then ``f`` as the
   file binds it: a module-level ``def``, a class (its ``__init__``, inherited ones included), or an
   import of a package module (``from .util import f``, followed through re-exports up to 4 hops).
   An import from outside the package, a builtin name, or a parameter / local variable of the caller
   (``key(x)``) gives no edge. An unknown name (a star import) goes to the unique module-level
   function (else class) of that name in the package.
2. ``self.f(...)`` / ``cls.f(...)``: the methods of the caller's class, then of its base classes
   (breadth first; a base is found in the same file, through the file's imports, else as the unique
   class of that name in the package); ``super().f(...)`` looks in the base classes only. Not found:
   rule 4 restricted to methods.
3. ``mod.f(...)`` / ``Cls.f(...)`` where the receiver is a package module or class the file names
   (imports and dotted paths followed): that module's ``f`` or that class's method. A receiver from
   outside the package gives no edge. A package module without ``f`` (re-exported by a star
   import): the unique module-level ``f`` of the package.
4. ``obj.f(...)`` on anything else: the definition named ``f`` in the caller's file if there is
   exactly one; with none there, the unique one in the package. An **ambiguous** name (two or more
   in the caller's file, or none there and two or more in the package) gives no edge. Names of
   builtin-type methods (``get``, ``append``, ``items``, ``join``, ...) give no edge here, so a
   ``dict.get`` call never links to a package method ``get``.

Definitions sharing a ``(path, qualified name)`` (a property's getter and setter, ``if``/``else``
variants) are one node: the first one's source, the calls of all. A function calling itself has no
self-edge. Qualified names are spelled as :func:`workbench.corpus.mining.iter_functions` spells the
corpus' ``func_name`` (``Class.method``, ``outer.<locals>.inner``), paths as the source lists them.
"""

from __future__ import annotations

import ast
import builtins
import os
import time
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..corpus.mining import decode_source, parse_source

__all__ = ["CallGraph", "FuncKey", "FunctionInfo", "call_graph", "source_call_graph"]

FuncKey = tuple[str, str]
"""``(path, qualified name)``: a function of the package, as the corpus names it (``path``, ``func_name``)."""

_BUILTIN_NAMES = frozenset(dir(builtins))
_BUILTIN_METHODS = frozenset(
    n for t in (dict, list, str, set, frozenset, bytes, bytearray, tuple, int, float, complex, object)
    for n in dir(t) if not n.startswith("_")
) | {"read", "write", "close", "flush", "readline", "readlines", "seek", "tell"}
"""Attribute names never resolved by name alone (rule 4): the methods of builtin types and files."""
_SELF = frozenset({"self", "cls"})
_MAX_HOPS = 4
_LEAVES = (ast.expr_context, ast.operator, ast.cmpop, ast.unaryop, ast.boolop, ast.Constant)


# ------------------------------------------------------------------------------ the call graph
@dataclass(frozen=True)
class FunctionInfo:
    """One function definition: ``class_name`` is the qualified class it is a method of (else None),
    ``source`` its text from ``def`` (decorators left out) to its end, dedented."""

    path: str
    qualname: str
    name: str
    lineno: int
    class_name: str | None
    nested: bool
    source: str

    @property
    def key(self) -> FuncKey:
        return (self.path, self.qualname)


@dataclass
class _Class:
    bases: list[str]
    methods: dict[str, FuncKey] = field(default_factory=dict)


@dataclass
class _Module:
    path: str
    name: str
    funcs: dict[str, FuncKey] = field(default_factory=dict)  # module-level functions
    imports: dict[str, tuple[str, ...]] = field(default_factory=dict)  # bound name -> ("module", m) | ("from", m, n)


@dataclass
class CallGraph:
    """Functions of a package (:class:`FunctionInfo` by ``(path, qualname)``) and the resolved calls.

    ``stats``: ``files`` (``.py`` files given), ``unparsable_files`` (undecodable or not parsing),
    ``functions``, ``calls`` (call sites in functions) split into ``resolved`` / ``external`` (a
    builtin, the standard library, another distribution) / ``ambiguous`` / ``unresolved``,
    ``edges`` (distinct caller -> callee links) and ``seconds``.
    """

    functions: dict[FuncKey, FunctionInfo]
    stats: dict[str, Any]
    _callees: dict[FuncKey, tuple[FuncKey, ...]]
    _callers: dict[FuncKey, tuple[FuncKey, ...]]

    def callees(self, key: FuncKey) -> list[FuncKey]:
        """The package functions ``key`` calls, in the order of their first call in its body."""
        return list(self._callees.get(tuple(key), ()))  # type: ignore[arg-type]

    def callers(self, key: FuncKey) -> list[FuncKey]:
        """The package functions that call ``key``: same file first, then by path and line."""
        return list(self._callers.get(tuple(key), ()))  # type: ignore[arg-type]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, tuple) and key in self.functions

    def __len__(self) -> int:
        return len(self.functions)

    def edges(self) -> list[tuple[FuncKey, FuncKey]]:
        """Every ``(caller, callee)`` link, in caller order."""
        return [(a, b) for a, bs in self._callees.items() for b in bs]


def _module_name(path: str) -> str:
    parts = path[:-3].split("/")
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _dotted(node: ast.AST) -> str | None:
    """``a.b.c`` for a chain of attributes on a name, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def _segment(lines: list[str], node: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    seg = lines[node.lineno - 1 : (node.end_lineno or node.lineno)]
    indent = node.col_offset
    out = [ln[indent:] if not ln[:indent].strip() else ln.lstrip() for ln in seg]
    return "\n".join(out).rstrip()


def _relative_base(module: str, is_package: bool, level: int) -> str | None:
    parts = module.split(".") if module else []
    if not is_package:
        parts = parts[:-1]
    if level - 1 > len(parts):
        return None
    return ".".join(parts[: len(parts) - (level - 1)])


def _scan_file(path: str, tree: ast.Module, lines: list[str], functions: dict[FuncKey, FunctionInfo],
               classes: dict[tuple[str, str], _Class], raw_calls: dict[FuncKey, list[tuple]],
               local_names: dict[FuncKey, set[str]]) -> _Module:
    """One walk of a module: definitions, classes, imports, and the call sites of every function."""
    mod = _Module(path=path, name=_module_name(path))
    is_package = path.endswith("/__init__.py") or path == "__init__.py"
    # stack items: node, qualname prefix, the function whose body this is (or None)
    stack: list[tuple[ast.AST, str, FuncKey | None]] = [(tree, "", None)]
    while stack:
        node, prefix, func = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            qual = f"{prefix}{node.name}"
            key = (path, qual)
            owner = prefix[:-1] if prefix and not prefix.endswith(".<locals>.") else None
            nested = ".<locals>." in qual
            if key not in functions:
                functions[key] = FunctionInfo(path, qual, node.name, node.lineno, owner, nested,
                                              _segment(lines, node))
                raw_calls[key] = []
                local_names[key] = set()
            a = node.args
            local_names[key].update(x.arg for x in [*a.posonlyargs, *a.args, *a.kwonlyargs,
                                                    *([a.vararg] if a.vararg else []), *([a.kwarg] if a.kwarg else [])])
            if owner is not None and (path, owner) in classes:
                classes[(path, owner)].methods.setdefault(node.name, key)
            elif not prefix:
                mod.funcs.setdefault(node.name, key)
            outer = [*node.decorator_list, node.args, *([node.returns] if node.returns else [])]
            stack.extend((c, f"{qual}.<locals>.", key) for c in reversed(node.body))
            stack.extend((c, prefix, func) for c in reversed(outer))
            continue
        if isinstance(node, ast.ClassDef):
            qual = f"{prefix}{node.name}"
            bases = [d for d in (_dotted(b) for b in node.bases) if d]
            classes.setdefault((path, qual), _Class(bases=bases))
            outer = [*node.decorator_list, *node.bases, *node.keywords]
            stack.extend((c, f"{qual}.", func) for c in reversed(node.body))
            stack.extend((c, prefix, func) for c in reversed(outer))
            continue
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname:
                    mod.imports.setdefault(a.asname, ("module", a.name))
                else:
                    top = a.name.split(".")[0]
                    mod.imports.setdefault(top, ("module", top))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                rb = _relative_base(mod.name, is_package, node.level)
                base = None if rb is None else ".".join(p for p in (rb, node.module) if p)
            if base is not None:
                for a in node.names:
                    if a.name != "*":
                        mod.imports.setdefault(a.asname or a.name, ("from", base, a.name))
        elif isinstance(node, ast.Call) and func is not None:
            f = node.func
            if isinstance(f, ast.Name):
                raw_calls[func].append(("name", f.id, None))
            elif isinstance(f, ast.Attribute):
                v = f.value
                if isinstance(v, ast.Name) and v.id in _SELF:
                    raw_calls[func].append(("self", f.attr, v.id))
                elif isinstance(v, ast.Call) and isinstance(v.func, ast.Name) and v.func.id == "super":
                    raw_calls[func].append(("super", f.attr, None))
                else:
                    raw_calls[func].append(("attr", f.attr, _dotted(v)))
            else:
                raw_calls[func].append(("other", "", None))
        kids = []
        for c in ast.iter_child_nodes(node):
            if isinstance(c, ast.Name):  # a leaf: only a store matters (a local name of the function)
                if func is not None and not isinstance(c.ctx, ast.Load):
                    local_names[func].add(c.id)
            elif not isinstance(c, _LEAVES):
                kids.append((c, prefix, func))
        stack.extend(reversed(kids))
    return mod


class _Resolver:
    """The resolution rules of the module docstring, over the indexes of one package."""

    def __init__(self, functions: dict[FuncKey, FunctionInfo], classes: dict[tuple[str, str], _Class],
                 modules: dict[str, _Module]) -> None:
        self.functions, self.classes, self.modules = functions, classes, modules
        self.by_module = {m.name: m for m in modules.values()}
        self.internal = set(self.by_module)
        for name in self.by_module:  # namespace packages (no __init__.py) are still the package's
            parts = name.split(".")
            self.internal.update(".".join(parts[:i]) for i in range(1, len(parts)))
        self.top_funcs: dict[str, list[FuncKey]] = {}
        self.named: dict[str, list[FuncKey]] = {}  # every non-nested definition by simple name
        self.methods: dict[str, list[FuncKey]] = {}
        for key, info in functions.items():
            if info.nested:
                continue
            self.named.setdefault(info.name, []).append(key)
            if info.class_name is None:
                self.top_funcs.setdefault(info.name, []).append(key)
            else:
                self.methods.setdefault(info.name, []).append(key)
        self.class_names: dict[str, list[tuple[str, str]]] = {}
        for ckey in classes:
            if ".<locals>." not in ckey[1]:
                self.class_names.setdefault(ckey[1].rsplit(".", 1)[-1], []).append(ckey)

    # --- names as a file binds them: ("func", key) | ("class", ckey) | ("module", name) | ("external",) | None
    def symbol(self, path: str, name: str, hops: int = 0) -> tuple | None:
        mod = self.modules[path]
        if name in mod.funcs:
            return ("func", mod.funcs[name])
        if (path, name) in self.classes:
            return ("class", (path, name))
        imp = mod.imports.get(name)
        if imp is None:
            return None
        if imp[0] == "module":
            return ("module", imp[1]) if imp[1] in self.internal else ("external",)
        base, attr = imp[1], imp[2]
        if f"{base}.{attr}" in self.internal:
            return ("module", f"{base}.{attr}")
        if base not in self.internal:
            return ("external",)
        target = self.by_module.get(base)
        if target is None or hops >= _MAX_HOPS:
            return None
        return self.symbol(target.path, attr, hops + 1)

    def dotted_symbol(self, path: str, dotted: str) -> tuple | None:
        first, *rest = dotted.split(".")
        sym = self.symbol(path, first)
        for part in rest:
            if sym is None or sym[0] != "module":
                return sym if sym is not None and sym[0] == "external" else None
            sub = f"{sym[1]}.{part}"
            if sub in self.internal:
                sym = ("module", sub)
            elif sym[1] in self.by_module:
                sym = self.symbol(self.by_module[sym[1]].path, part)
            else:
                return None
        return sym

    def module_attr(self, module: str, attr: str) -> tuple | None:
        m = self.by_module.get(module)
        return None if m is None else self.symbol(m.path, attr)

    # --- classes
    def base_classes(self, ckey: tuple[str, str]) -> list[tuple[str, str]]:
        path, qual = ckey
        out = []
        for base in self.classes[ckey].bases:
            scope = qual.rsplit(".", 1)[0] + "." if "." in qual else ""
            if "." not in base and (path, scope + base) in self.classes:
                out.append((path, scope + base))
                continue
            sym = self.dotted_symbol(path, base)
            if sym is not None and sym[0] == "class":
                out.append(sym[1])
            elif sym is None:
                named = self.class_names.get(base.rsplit(".", 1)[-1], [])
                if len(named) == 1:
                    out.append(named[0])
        return out

    def method(self, ckey: tuple[str, str], name: str, skip_own: bool = False) -> FuncKey | None:
        """``name`` in the class or (breadth first) its bases; ``skip_own`` starts at the bases."""
        queue: deque[tuple[str, str]] = deque(self.base_classes(ckey) if skip_own else [ckey])
        seen: set[tuple[str, str]] = set()
        while queue and len(seen) < 64:
            c = queue.popleft()
            if c in seen or c not in self.classes:
                continue
            seen.add(c)
            if name in self.classes[c].methods:
                return self.classes[c].methods[name]
            queue.extend(self.base_classes(c))
        return None

    def owner_class(self, caller: FunctionInfo) -> tuple[str, str] | None:
        """The class of the method ``caller`` is, or is nested in (a closure using ``self``)."""
        if caller.class_name is not None:
            return (caller.path, caller.class_name)
        parts = caller.qualname.split(".<locals>.")
        for i in range(len(parts) - 1, 0, -1):
            outer = self.functions.get((caller.path, ".<locals>.".join(parts[:i])))
            if outer is not None and outer.class_name is not None:
                return (caller.path, outer.class_name)
        return None

    # --- the rules
    @staticmethod
    def _pick(cands: list[FuncKey], path: str) -> tuple[str, FuncKey | None]:
        if not cands:
            return "unresolved", None
        same = [k for k in cands if k[0] == path]
        if len(same) == 1:
            return "resolved", same[0]
        if len(same) == 0 and len(cands) == 1:
            return "resolved", cands[0]
        return "ambiguous", None

    def _by_name(self, name: str, path: str) -> tuple[str, FuncKey | None]:
        """A name no import explains (a star import): the module-level function, else the class, of that name."""
        status, key = self._pick(self.top_funcs.get(name, []), path)
        if status == "unresolved":
            named = self.class_names.get(name, [])
            if len(named) == 1:
                return self._from_symbol(("class", named[0]))
            if len(named) > 1:
                return "ambiguous", None
        return status, key

    def _from_symbol(self, sym: tuple, attr: str | None = None) -> tuple[str, FuncKey | None]:
        kind = sym[0]
        if kind == "external":
            return "external", None
        if kind == "func" and attr is None:
            return "resolved", sym[1]
        if kind == "class":
            m = self.method(sym[1], "__init__" if attr is None else attr)
            return ("resolved", m) if m is not None else ("unresolved", None)
        return "unresolved", None

    def resolve(self, caller: FunctionInfo, kind: str, name: str, receiver: str | None) -> tuple[str, FuncKey | None]:
        path = caller.path
        if kind == "name":
            parts = caller.qualname.split(".<locals>.")
            for i in range(len(parts), 0, -1):  # functions nested in the caller or in its enclosing functions
                key = (path, ".<locals>.".join(parts[:i]) + f".<locals>.{name}")
                if key in self.functions:
                    return "resolved", key
            sym = self.symbol(path, name)
            if sym is not None:
                return self._from_symbol(sym)
            if name in _BUILTIN_NAMES:
                return "external", None
            return self._by_name(name, path)
        if kind in ("self", "super"):
            owner = self.owner_class(caller)
            if owner is None:  # ``self`` outside a method: an ordinary receiver
                return self.resolve(caller, "attr", name, receiver) if kind == "self" else ("unresolved", None)
            if owner in self.classes:
                m = self.method(owner, name, skip_own=kind == "super")  # type: ignore[arg-type]
                if m is not None:
                    return "resolved", m
            if name in _BUILTIN_METHODS:
                return "external", None
            return self._pick(self.methods.get(name, []), path)
        if kind == "attr":
            sym = self.dotted_symbol(path, receiver) if receiver else None
            if sym is not None:
                if sym[0] == "module":
                    inner = self.module_attr(sym[1], name)
                    if inner is not None:
                        return self._from_symbol(inner)
                    return self._by_name(name, path)
                if sym[0] in ("external", "class"):
                    return self._from_symbol(sym, name)
                return "external", None  # an attribute of a function (``f.cache_clear()``)
            if name in _BUILTIN_METHODS:
                return "external", None
            return self._pick(self.named.get(name, []), path)
        return "unresolved", None


def call_graph(files: Iterable[tuple[str, bytes | str | None]]) -> CallGraph:
    """The call graph of a package from its ``(relative_path, content)`` files (OASIS, papers/001).

    Only ``.py`` files are parsed (others, and ``None`` contents, are skipped); undecodable or
    unparsable files are counted in ``stats["unparsable_files"]`` and left out. Pure: parses, never
    imports or runs the code. Resolution rules: the module docstring.
    """
    t0 = time.perf_counter()
    functions: dict[FuncKey, FunctionInfo] = {}
    classes: dict[tuple[str, str], _Class] = {}
    raw_calls: dict[FuncKey, list[tuple]] = {}
    local_names: dict[FuncKey, set[str]] = {}
    modules: dict[str, _Module] = {}
    counts: Counter = Counter()
    for path, data in files:
        path = str(path).replace("\\", "/")
        if not path.endswith(".py") or data is None:
            counts["skipped_files"] += 1
            continue
        counts["files"] += 1
        text, _ = decode_source(data)
        tree = parse_source(text, path)[0] if text is not None else None
        if tree is None or text is None:
            counts["unparsable_files"] += 1
            continue
        try:
            modules[path] = _scan_file(path, tree, text.split("\n"), functions, classes, raw_calls,
                                         local_names)
        except (RecursionError, MemoryError):  # pragma: no cover - defensive
            counts["unparsable_files"] += 1

    res = _Resolver(functions, classes, modules)
    nested_names = {(k[0], info.name) for k, info in functions.items() if info.nested}
    memo: dict[tuple, tuple[str, FuncKey | None]] = {}
    callees: dict[FuncKey, tuple[FuncKey, ...]] = {}
    for key, calls in raw_calls.items():
        info = functions[key]
        out: dict[FuncKey, None] = {}
        for kind, name, receiver in calls:
            counts["calls"] += 1
            if kind == "name" and name in local_names[key] and (info.path, name) not in nested_names:
                counts["unresolved"] += 1  # a parameter or local variable called (``key(x)``, ``func()``)
                continue
            # the caller matters through its path and class, and for a bare name through its nested functions
            if kind == "name":
                scope = info.qualname if (info.path, name) in nested_names else ""
            else:
                scope = "" if kind == "attr" else (info.class_name or info.qualname)
            mk = (info.path, scope, kind, name, receiver)
            if mk not in memo:
                memo[mk] = res.resolve(info, kind, name, receiver)
            status, target = memo[mk]
            counts[status] += 1
            if target is not None and target != key:
                out.setdefault(target, None)
        if out:
            callees[key] = tuple(out)
    rev: dict[FuncKey, list[FuncKey]] = {}
    for a, bs in callees.items():
        for b in bs:
            rev.setdefault(b, []).append(a)
    callers = {
        b: tuple(sorted(a_s, key=lambda a, b=b: (a[0] != b[0], a[0], functions[a].lineno, a[1])))
        for b, a_s in rev.items()
    }
    stats: dict[str, Any] = {
        "files": counts["files"], "unparsable_files": counts["unparsable_files"],
        "skipped_files": counts["skipped_files"], "functions": len(functions), "classes": len(classes),
        "calls": counts["calls"], "resolved": counts["resolved"], "external": counts["external"],
        "ambiguous": counts["ambiguous"], "unresolved": counts["unresolved"],
        "edges": sum(len(v) for v in callees.values()), "seconds": round(time.perf_counter() - t0, 3),
    }
    return CallGraph(functions=functions, stats=stats, _callees=callees, _callers=callers)


def source_call_graph(source: str, version: str, data_dir: str | os.PathLike | None = None) -> CallGraph:
    """The call graph of a corpus source (``source``/``version`` as in the pairs; ``"stdlib"`` is the
    running Python's standard library), over the files the miner reads (tests and vendored code left out)."""
    from ..corpus.sources import iter_source_files, open_source

    spec = "stdlib" if source == "stdlib" else f"{source}=={version}"
    src = open_source(spec, data_dir=data_dir)
    return call_graph(iter_source_files(src))
