"""The package's layering (docs/architecture.md, "Module map"), read from the imports of every file:
no import cycle, no method importing another method's modules, and nothing of the shared layers
importing a method. A change that breaks it fails here, naming the two modules."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "workbench"
METHODS = {  # module prefix -> the paper it implements
    "cartography": "Select then MixUp", "selection": "Select then MixUp", "datamap_validity": "Select then MixUp",
    "viz.explorer": "Select then MixUp", "augment": "ChatDANCE", "oasis": "OASIS", "curation": "CoRNStack",
}
SHARED = ("paths", "store", "errors", "config", "runtime", "threads", "peak_memory", "progress", "faultpoints", "pairs", "corpus", "tasks",
          "models", "retrieval", "evaluation", "compare", "llm", "training", "ood", "experiment", "validation", "sandbox")


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _method(module: str) -> str | None:
    return next((paper for prefix, paper in METHODS.items() if _within(module, prefix)), None)


def imports() -> dict[str, set[str]]:
    """``{module: {workbench modules it imports}}`` (dotted names without ``workbench.``), at any depth
    of the file (imports inside functions count)."""
    modules = {".".join(f.relative_to(PACKAGE).with_suffix("").parts).removesuffix(".__init__"): f
               for f in PACKAGE.rglob("*.py")}
    modules.pop("", None)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        out = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here[: len(here) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                elif (node.module or "").split(".")[0] == "workbench":
                    target = node.module.removeprefix("workbench").lstrip(".")
                else:
                    continue
                for alias in node.names:  # `from . import x` names a module
                    sub = f"{target}.{alias.name}".strip(".")
                    out.add(sub if sub in modules else target)
            elif isinstance(node, ast.Import):
                out |= {a.name.removeprefix("workbench.") for a in node.names if a.name.startswith("workbench.")}
        graph[name] = {t for t in out if t and t in modules and t != name}
    return graph


def test_no_method_imports_another_method_and_no_shared_module_imports_a_method():
    wrong = []
    for src, targets in imports().items():
        for dst in targets:
            ms, md = _method(src), _method(dst)
            if md and ms and ms != md:
                wrong.append(f"{src} ({ms}) imports {dst} ({md})")
            if md and any(_within(src, s) for s in SHARED):
                wrong.append(f"shared module {src} imports {dst} ({md})")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle():
    graph = imports()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_the_check_sees_imports():
    graph = imports()
    assert "retrieval" in graph["curation"] and "compare" in graph["report"]
    assert "errors" in graph["llm.backends"]
