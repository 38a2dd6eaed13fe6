"""OASIS step 1: LLM docstrings written from the code plus its callers and callees
(``shared/papers/001`` section 3.1; ``docs/methods.md`` section 3, step 1).

The paper starts with "program analysis at the repository level, where information about the
function's callers and callees is extracted", and puts that into the prompt with the code. Here:

- :func:`call_graph` parses every ``.py`` file of a package with :mod:`ast` (never importing or
  running it) and links each function to the package functions it calls (:class:`CallGraph`);
- :func:`function_context` picks a few callers and callees of one mined function as short snippets
  (signature and first lines, their docstrings included);
- :func:`docstring_requests` / :func:`parse_docstring` are the chat prompt (a system prompt, one
  worked example turn, greedy decoding, 64 tokens) and the validation of its one-sentence answer,
  which also rejects a sentence copied from a caller's or callee's snippet (small models do that);
- :func:`llm_docstrings` does all of it for chosen pairs of a mined corpus (one graph per package).

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

Generated text is data: a reply is parsed as text (and with :mod:`ast`), never executed.
"""

from __future__ import annotations

import ast
import builtins
import os
import re
import time
from collections import Counter, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ..corpus.mining import decode_source, parse_source
from ..errors import ParameterError, WorkbenchError
from ..llm.backends import Message, Sampling
from ..llm.replies import CODE_START, TRIPLE_QUOTES, looks_like_code, norm_words, strip_quotes

__all__ = [
    "DOCSTRING_REASONS",
    "DOCSTRING_SAMPLING",
    "CallGraph",
    "FunctionInfo",
    "call_graph",
    "docstring_reject_reason",
    "docstring_requests",
    "function_context",
    "llm_docstrings",
    "parse_docstring",
    "source_call_graph",
]

FuncKey = tuple[str, str]
"""``(path, qualified name)``: a function of the package, as the corpus names it (``path``, ``func_name``)."""

DOCSTRING_SAMPLING = Sampling(temperature=0.0, top_p=1.0, max_tokens=64, seed=0)
DOCSTRING_MAX_CODE_CHARS = 1600
MIN_WORDS, MAX_WORDS = 3, 40
DOCSTRING_REASONS = ("empty", "code", "refusal", "too_short", "too_long", "copied_example", "copied_context")
"""Why :func:`docstring_reject_reason` rejects a reply, in the order checked."""

_BUILTIN_NAMES = frozenset(dir(builtins))
_BUILTIN_METHODS = frozenset(
    n for t in (dict, list, str, set, frozenset, bytes, bytearray, tuple, int, float, complex, object)
    for n in dir(t) if not n.startswith("_")
) | {"read", "write", "close", "flush", "readline", "readlines", "seek", "tell"}
"""Attribute names never resolved by name alone (rule 4): the methods of builtin types and files."""
_SELF = frozenset({"self", "cls"})
_NOT_VERBS = frozenset({"is", "was", "has", "does", "takes", "uses", "this", "its", "as", "us"})
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


# ------------------------------------------------------------------------------ context and prompt
def _snippet(text: str, max_chars: int) -> str:
    """``text`` cut at a line end to at most ``max_chars`` characters, with a ``...`` line when cut."""
    if len(text) <= max_chars:
        return text
    marker = "\n    ..."
    if max_chars <= len(marker) + 10:
        return text[:max_chars]
    head = text[: max_chars - len(marker)]
    if "\n" in head:
        head = head.rsplit("\n", 1)[0]
    return head.rstrip() + marker


def _entry(graph: CallGraph, key: FuncKey, max_chars: int) -> dict[str, str]:
    info = graph.functions[key]
    return {"path": info.path, "func_name": info.qualname, "snippet": _snippet(info.source, max_chars)}


def function_context(graph: CallGraph | None, path: str, func_name: str, max_callers: int = 3,
                     max_callees: int = 3, max_chars: int = 300) -> dict[str, Any]:
    """Callers and callees of ``(path, func_name)`` as snippets (signature and first lines, at most
    ``max_chars`` each): callers same file first then by path and line, callees in call order.
    A function not in the graph (or no graph) gets empty lists and ``found=False``."""
    key = (path, func_name)
    found = graph is not None and key in graph
    callers = graph.callers(key) if found else []  # type: ignore[union-attr]
    callees = graph.callees(key) if found else []  # type: ignore[union-attr]
    return {
        "path": path, "func_name": func_name, "found": bool(found),
        "n_callers": len(callers), "n_callees": len(callees),
        "callers": [_entry(graph, k, max_chars) for k in callers[: max(0, max_callers)]],  # type: ignore[arg-type]
        "callees": [_entry(graph, k, max_chars) for k in callees[: max(0, max_callees)]],  # type: ignore[arg-type]
    }


DOCSTRING_SYSTEM = (
    "You write docstrings for Python functions. You are given a function and, as context, some functions "
    "of the same package that call it and that it calls. Reply with one sentence that says what the "
    "function does, the way a developer would describe it when searching for such code. "
    "Reply with the sentence only: no code, no quotes, no preamble."
)


def _clip(code: str, limit: int) -> str:
    if len(code) <= limit:
        return code
    return code[:limit].rsplit("\n", 1)[0] + "\n    # ... (truncated)"


_DEF_NAME = re.compile(r"^\s*(?:async\s+)?def\s+(\w+)", re.M)


def _simple_name(code: str, context: Mapping[str, Any] | None) -> str:
    if context and context.get("func_name"):
        return str(context["func_name"]).rsplit(".", 1)[-1]
    m = _DEF_NAME.search(code)
    return m.group(1) if m else "the function"


def _user_prompt(name: str, code: str, ctx: Mapping[str, Any] | None) -> str:
    parts = [f"Function `{name}`:\n```python\n{code}\n```"]
    for field_, title in (("callers", f"Functions that call `{name}`"), ("callees", f"Functions `{name}` calls")):
        items = list((ctx or {}).get(field_) or [])
        if items:
            body = "\n\n".join(str(it["snippet"]) for it in items)
            parts.append(f"{title}:\n```python\n{body}\n```")
    parts.append(f"Write a one-sentence docstring for `{name}`: what it does, in plain English, without code.")
    return "\n\n".join(parts)


_EXAMPLE_CODE = '''def read_settings(path, defaults=None):
    settings = dict(defaults or {})
    with open(path) as f:
        for line in f:
            if "=" in line and not line.lstrip().startswith("#"):
                key, value = line.split("=", 1)
                settings[key.strip()] = value.strip()
    return settings'''
_EXAMPLE_CONTEXT = {"callers": [{"snippet": "def load_app(root):\n    return App(read_settings(root / 'app.cfg', DEFAULTS))"}],
                    "callees": []}
_EXAMPLE_ANSWER = "Read key=value settings from a config file into a dict, on top of optional defaults."
_EXAMPLE_TURNS: list[Message] = [
    {"role": "user", "content": _user_prompt("read_settings", _EXAMPLE_CODE, _EXAMPLE_CONTEXT)},
    {"role": "assistant", "content": _EXAMPLE_ANSWER},
]
"""One worked example (a made-up function): small local models copy its plain one-sentence form."""


def docstring_requests(codes: Sequence[str], contexts: Sequence[Mapping[str, Any] | None],
                       max_code_chars: int = DOCSTRING_MAX_CODE_CHARS) -> list[tuple[list[Message], Sampling]]:
    """One chat request per function: a system prompt, one worked example turn, then the code (cut at a
    line end past ``max_code_chars``) and the caller / callee snippets of its context
    (:func:`function_context`; ``None`` or empty lists leave that part out), asking for a one-sentence
    docstring. Greedy decoding, :data:`DOCSTRING_SAMPLING`."""
    if len(codes) != len(contexts):
        raise ParameterError(f"docstring_requests: {len(codes)} codes but {len(contexts)} contexts")
    return [([{"role": "system", "content": DOCSTRING_SYSTEM}, *_EXAMPLE_TURNS,
              {"role": "user", "content": _user_prompt(_simple_name(code, ctx), _clip(str(code), max_code_chars), ctx)}],
             DOCSTRING_SAMPLING) for code, ctx in zip(codes, contexts)]


# ------------------------------------------------------------------------------ parsing replies
_FENCE = re.compile(r"```[^\n]*\n?(.*?)(?:```|\Z)", re.S)
_LABEL = re.compile(
    r"^\s*(?:[*_#>]+\s*)?(?:(?:one[- ]sentence\s+)?docstring|description|summary|answer|sentence|purpose|"
    r"explanation|output)\s*(?:[*_]+\s*)?[:\-\u2013\u2014]\s*(?:[*_]+\s*)?",
    re.I,
)
_REFUSAL = re.compile(r"^(?:i\s*(?:'m|am|cannot|can't|can not|do not|don't)\b|sorry\b|as an ai\b|unfortunately\b)", re.I)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z`\"'(\[*])")
_TRIPLE = re.compile(r"(?:\"\"\"|''')(.*?)(?:\"\"\"|'''|\Z)", re.S)


def _docstring_in_code(code: str) -> str | None:
    """The docstring of the first function / class (or of the module) in ``code``; for code that does
    not parse (a reply cut by ``max_tokens``), its first triple-quoted text."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError):
        m = _TRIPLE.search(code)
        return m.group(1) if m and m.group(1).strip() else None
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            doc = ast.get_docstring(node)
            if doc and doc.strip():
                return doc
    return None


def _is_header(line: str) -> bool:
    line = line.strip()
    return line.endswith(":") and len(line.split()) <= 12


def docstring_reject_reason(reply: str, func_name: str = "", context: Sequence[str] = ()) -> tuple[str, str | None]:
    """``(sentence, None)`` for a usable reply, else ``(cleaned text, reason)`` with the reason one of
    :data:`DOCSTRING_REASONS`.

    Cleaning: a fenced or bare function with a docstring gives that docstring (the first
    triple-quoted text when the code is cut off); other fences are dropped; a leading
    ``Docstring:`` / ``Description:`` label, header lines ending in ``:``, a ``func_name:`` prefix,
    triple quotes and surrounding quotes go; "The function `f` returns ..." becomes "Returns ...";
    the first paragraph's first sentence is kept. Rejected: empty, code-like, a refusal, under 3 or
    over 40 words, ``copied_example`` (the answer of the prompt's worked example, which a small model
    sometimes repeats), or ``copied_context``: the sentence occurs in one of the ``context`` texts (the
    caller / callee snippets of the prompt: a small model copies a callee's docstring).
    """
    text = str(reply or "").strip()
    fenced = _FENCE.findall(text)
    if fenced:  # prose around the code wins; else the docstring the model wrote into its code
        prose = [ln for ln in _FENCE.sub("\n\n", text).split("\n") if ln.strip() and not _is_header(ln)]
        inner = None if prose else next((d for d in map(_docstring_in_code, fenced) if d), None)
        text = inner if inner else "\n".join(prose).strip()
        if not text:
            return "", "code"
    elif CODE_START.match(text):
        inner = _docstring_in_code(text)
        if inner:
            text = inner
    text = text.replace('"""', "\n").replace("'''", "\n")
    lines = [ln.strip() for ln in text.split("\n")]
    while lines and (not lines[0] or _is_header(lines[0])):
        lines.pop(0)  # blank lines and headers such as "Here is the docstring:"
    para: list[str] = []
    for ln in lines:
        if not ln:
            break
        para.append(ln)
    s = " ".join(" ".join(para).split())
    name = re.escape(str(func_name).rsplit(".", 1)[-1]) if func_name else r"\w+"
    for _ in range(3):
        before = s
        s = _LABEL.sub("", s, count=1)
        s = re.sub(rf"^[`*]*{name}(?:\(\))?[`*]*\s*[:\-\u2013\u2014]\s+", "", s, count=1)
        s = strip_quotes(s, TRIPLE_QUOTES)
        if s == before:
            break
    subject = rf"^(?:the|this)\s+(?:function|method)(?:\s+[`*]*{name}(?:\(\))?[`*]*)?\s+"
    lead = re.match(subject + r"(?:is\s+(?:used|designed|meant|intended)\s+to|can\s+be\s+used\s+to|will|helps(?:\s+to)?)"
                    r"\s+([a-z]+)\b", s, re.I) or re.match(subject + r"([a-z]+s)\b", s, re.I)
    if lead and lead.group(1).lower() not in _NOT_VERBS:  # "This function returns x" -> "Returns x"
        s = lead.group(1).capitalize() + s[lead.end():]
    s = _SENTENCE_END.split(s, maxsplit=1)[0].strip() if s else s
    s = strip_quotes(s, TRIPLE_QUOTES)
    if not re.search(r"\w", s):
        return s, "empty"
    if looks_like_code(s) or re.search(r"\bdef\s+\w+\s*\(", s):
        return s, "code"
    if _REFUSAL.match(s):
        return s, "refusal"
    n = len(s.split())
    if n < MIN_WORDS:
        return s, "too_short"
    if n > MAX_WORDS:
        return s, "too_long"
    norm = norm_words(s)
    if norm == norm_words(_EXAMPLE_ANSWER):  # the worked example's answer, parroted
        return s, "copied_example"
    if any(norm in norm_words(c) for c in context):
        return s, "copied_context"
    return s, None


def parse_docstring(reply: str, func_name: str = "", context: Sequence[str] = ()) -> str | None:
    """The one-sentence docstring in an LLM reply, or None when it is empty, code, a refusal, under 3 /
    over 40 words, or copied from a ``context`` text (:func:`docstring_reject_reason`)."""
    s, reason = docstring_reject_reason(reply, func_name, context)
    return s if reason is None else None


# ------------------------------------------------------------------------------ the whole step
_NEEDED = ("id", "code", "source", "version", "path", "func_name")


def _label(entry: Mapping[str, Any]) -> str:
    return f"{entry['path']}::{entry['func_name']}"


def llm_docstrings(pairs: pd.DataFrame, llm: Any, ids: Iterable[str], data_dir: str | os.PathLike | None = None,
                   show_progress: bool = True, *, max_callers: int = 3, max_callees: int = 3,
                   max_chars: int = 300, max_code_chars: int = DOCSTRING_MAX_CODE_CHARS,
                   concurrency: int = 1) -> pd.DataFrame:
    """LLM docstrings for the pairs whose id is in ``ids`` (OASIS step 1, papers/001).

    Pairs are grouped by ``(source, version)``; each package is opened once
    (:func:`workbench.corpus.sources.open_source`) and its :func:`call_graph` built; each function gets
    :func:`function_context` (empty when it is not in the graph, or its package cannot be opened) and
    one :func:`docstring_requests` request, sent with ``llm.chat_many`` (a
    :class:`workbench.llm.CachedLLM`: a re-run asks nothing again) and parsed by
    :func:`docstring_reject_reason`.

    Returns one row per id, in the order of ``ids``: ``id``, ``query_llm`` (the docstring, missing (NA) when
    invalid), ``callers`` / ``callees`` (``"path::func_name"`` of those put in the prompt), ``reply``,
    ``valid``. ``df.attrs``: ``pairs``, ``functions_found``, ``with_callers``, ``with_callees``,
    ``unparsable_files``, ``graph_functions``, ``graph_edges``, ``seconds_graph``, ``seconds_llm``,
    ``valid``, ``rejected`` (by reason), ``sources`` (per package: files, functions, edges, seconds
    or the error), ``llm`` (the cache's request / hit / miss counts of this call).
    """
    missing = [c for c in _NEEDED if c not in pairs.columns]
    if missing:
        raise ParameterError(f"llm_docstrings: pairs lack column(s) {missing}")
    wanted = list(dict.fromkeys(str(i) for i in ids))
    by_id = pairs.drop_duplicates("id").set_index("id")
    unknown = [i for i in wanted if i not in by_id.index]
    if unknown:
        raise ParameterError(f"llm_docstrings: {len(unknown)} id(s) not in pairs, e.g. {unknown[:3]}")
    sel = by_id.loc[wanted].reset_index()

    t0 = time.perf_counter()
    contexts = [function_context(None, str(p), str(f)) for p, f in zip(sel["path"], sel["func_name"])]
    sources: dict[str, Any] = {}
    for (source, version), group in sel.groupby(["source", "version"], sort=True):
        spec = f"{source}=={version}" if source != "stdlib" else "stdlib"
        try:
            graph: CallGraph | None = source_call_graph(str(source), str(version), data_dir=data_dir)
            sources[spec] = {k: graph.stats[k] for k in ("files", "unparsable_files", "functions", "edges", "seconds")}  # type: ignore[union-attr]
        except WorkbenchError as exc:
            graph, sources[spec] = None, {"error": str(exc)}
        for i, path, fn in zip(group.index, group["path"], group["func_name"]):
            contexts[i] = function_context(graph, str(path), str(fn), max_callers, max_callees, max_chars)
    seconds_graph = time.perf_counter() - t0

    requests = docstring_requests(sel["code"].tolist(), contexts, max_code_chars=max_code_chars)
    before = llm.stats() if hasattr(llm, "stats") else {}
    t1 = time.perf_counter()
    replies = llm.chat_many(requests, concurrency=concurrency, desc="OASIS docstrings", show_progress=show_progress)
    seconds_llm = time.perf_counter() - t1
    after = llm.stats() if hasattr(llm, "stats") else {}

    rows, rejected = [], Counter()
    for pid, fn, ctx, reply in zip(sel["id"], sel["func_name"], contexts, replies):
        snippets = [str(e["snippet"]) for e in (*ctx["callers"], *ctx["callees"])]
        text, reason = docstring_reject_reason(reply, str(fn), snippets)
        if reason is not None:
            rejected[reason] += 1
        rows.append({"id": pid, "query_llm": text if reason is None else None,
                     "callers": [_label(e) for e in ctx["callers"]], "callees": [_label(e) for e in ctx["callees"]],
                     "reply": reply, "valid": reason is None})
    df = pd.DataFrame(rows, columns=["id", "query_llm", "callers", "callees", "reply", "valid"])
    df.attrs.update({
        "pairs": len(df),
        "functions_found": sum(bool(c["found"]) for c in contexts),
        "with_callers": sum(c["n_callers"] > 0 for c in contexts),
        "with_callees": sum(c["n_callees"] > 0 for c in contexts),
        "unparsable_files": sum(int(s.get("unparsable_files", 0)) for s in sources.values()),
        "graph_functions": sum(int(s.get("functions", 0)) for s in sources.values()),
        "graph_edges": sum(int(s.get("edges", 0)) for s in sources.values()),
        "seconds_graph": round(seconds_graph, 3),
        "seconds_llm": round(seconds_llm, 3),
        "valid": int(df["valid"].sum()),
        "rejected": {r: rejected[r] for r in DOCSTRING_REASONS if rejected[r]},
        "sources": sources,
        "llm": {k: after[k] - before.get(k, 0) for k in ("requests", "hits", "misses") if k in after},
    })
    return df
