"""Mining Go, Java, Ruby, PHP, JavaScript and TypeScript files with tree-sitter: the (doc comment,
function) pairs of one file, CodeSearchNet-style, as :mod:`workbench.corpus.mining` does for Python.

Functions are found with tree-sitter (``tree-sitter`` and the per-language grammar wheels; nothing
is downloaded at run time). Used by the cross-language set (:mod:`workbench.corpus.crosslang`) and by
a user's ``dir:`` source (:mod:`workbench.corpus.build`). A pair is
kept when a doc comment lies *directly* above the function: only whitespace, at most one line
break, between the comment's end and the function (or the decorators / ``export`` / ``private``
that introduce it). The doc comments that count:

=============  ==========================================================================
go             a block of ``//`` lines (or one ``/* */``), directives (``//go:...``) removed
java, php      ``/** ... */`` (Javadoc, PHPDoc)
javascript,    ``/** ... */`` (JSDoc) above a function declaration, a method, a
typescript     ``const f = function/arrow``, ``a.b = function``, an object's ``key: function``
ruby           a block of ``#`` lines (or ``=begin``/``=end``) above ``def``
=============  ==========================================================================

The query is the comment's description, cleaned by :mod:`workbench.corpus.doc_comments`.

Dropped, and counted by reason (:data:`FUNCTION_REASONS`): functions without a body (interface and
abstract methods, TypeScript overload signatures, Go assembly stubs, Java ``native``), names
starting a word with "test", PHP magic methods (``__construct``), no doc comment, a doc comment
without description, queries under 3 words or boiler-plate ("Deprecated ...", "See ...",
"@inheritDoc", "TODO", ...), code under 3 non-blank, non-comment lines. Files: tests
(``test/``, ``tests/``, ``__tests__/``, ``spec/``, ``testdata/``, ``*_test.go``, ``*Test.java``,
``*_spec.rb``, ``*.test.js``, ...), vendored code (``vendor/``, ``node_modules/``), build copies
(``dist/``, ``*.min.js``, minified text), TypeScript declarations (``.d.ts``); files over 1 MB,
binary or non-UTF-8 files are counted and skipped, never raised. A file with syntax errors is
still mined, minus the functions that contain an error.

``code`` is the function's source text from its first token (Java annotations and modifiers
included; a JavaScript ``export`` keyword and TypeScript decorators left out; for
``const f = ...`` the whole declaration) to its end, comments inside kept, re-indented to column 0.

Why one module of this size: the six grammars' node rules (where a function starts, its name, its
body, its doc comment) are read by one walk of the tree; the comment text itself is cleaned in
:mod:`workbench.corpus.doc_comments`.
"""

from __future__ import annotations

import bisect
import importlib
import importlib.metadata as importlib_metadata
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import PurePosixPath
from typing import Any

from ..errors import ParameterError, WorkbenchError
from .doc_comments import (
    GO_DIRECTIVE,
    doc_block_query,
    go_doc_query,
    is_foreign_boilerplate,
    mask_leading_name,
    ruby_doc_query,
)
from .mining import MIN_CODE_LINES, MIN_QUERY_WORDS, is_test_name

FOREIGN_MINER_VERSION = "2"
"""Bump when an extractor or a filter changes: it is part of every cache key of mined foreign code."""

LANGUAGES = ("go", "java", "ruby", "php", "javascript", "typescript")
MAX_FOREIGN_FILE_BYTES = 1024 * 1024
GRAMMAR_PACKAGES = {
    "go": "tree-sitter-go", "java": "tree-sitter-java", "ruby": "tree-sitter-ruby", "php": "tree-sitter-php",
    "javascript": "tree-sitter-javascript", "typescript": "tree-sitter-typescript",
}
EXTENSIONS: Mapping[str, tuple[str, ...]] = {
    "go": (".go",), "java": (".java",), "ruby": (".rb",), "php": (".php",),
    "javascript": (".js", ".mjs", ".cjs", ".jsx"), "typescript": (".ts", ".mts", ".cts", ".tsx"),
}

FUNCTION_REASONS = (
    "func:parse_error",
    "func:no_body",
    "func:test_name",
    "func:magic_method",
    "func:no_doc",
    "func:no_description",
    "func:short_query",
    "func:boilerplate_query",
    "func:short_code",
)


# ---------------------------------------------------------------- paths

TEST_DIRS = frozenset({
    "test", "tests", "__tests__", "testdata", "testing", "__mocks__", "__fixtures__", "fixtures", "e2e",
    "benchmark", "benchmarks",
})
SPEC_DIRS = frozenset({"spec", "specs"})
"""Test folders in Ruby (RSpec) and JavaScript (Jasmine, Mocha) only: ``java/security/spec`` is code."""
VENDORED_DIRS = frozenset({"vendor", "vendored", "node_modules", "bower_components", "third_party", "third-party"})
BUILD_DIRS = frozenset({"dist", "umd", "bundles", "esm5", "esm2015", "cjs", "min"})
_TEST_FILE = re.compile(
    r"(_test\.go|Tests?\.java|TestCase\.java|Test\.php|_test\.rb|_spec\.rb|^test_[^/]*\.rb"
    r"|\.(test|spec)\.[cm]?[jt]sx?)$"
)


def language_for_path(path: str) -> str | None:
    """The language of a file from its extension (``.d.ts`` declarations are TypeScript too)."""
    for lang, exts in EXTENSIONS.items():
        if path.endswith(exts):
            return lang
    return None


def skip_foreign_path_reason(path: str) -> str | None:
    """Why a file is not mined (``"path:..."``), or None: not a source file of a known language,
    tests, vendored code, build copies and minified files, TypeScript declarations. Folder names
    are compared in lower case; ``spec/`` is a test folder for Ruby and JavaScript/TypeScript only."""
    parts = PurePosixPath(path.replace("\\", "/")).parts
    if not parts:
        return "path:empty"
    dirs, name = parts[:-1], parts[-1]
    if language_for_path(name) is None:
        return "path:other_language"
    if ".." in parts or any(d.startswith(".") for d in dirs):
        return "path:outside"
    if any(d in VENDORED_DIRS for d in dirs):
        return "path:vendored"
    lang = language_for_path(name)
    tests = TEST_DIRS | SPEC_DIRS if lang in ("ruby", "javascript", "typescript") else TEST_DIRS
    if any(d.lower() in tests for d in dirs) or _TEST_FILE.search(name):
        return "path:tests"
    if name.endswith((".d.ts", ".d.mts", ".d.cts")):
        return "path:declaration"
    if any(d in BUILD_DIRS for d in dirs) or re.search(r"[.-]min\.[cm]?js$|\.bundle\.[cm]?js$", name):
        return "path:build_copy"
    return None


# ---------------------------------------------------------------- tree-sitter


def grammar_versions() -> dict[str, str]:
    """Installed versions of ``tree-sitter`` and the grammar wheels (part of the cache keys)."""
    out = {}
    for pkg in ("tree-sitter", *GRAMMAR_PACKAGES.values()):
        try:
            out[pkg] = importlib_metadata.version(pkg)
        except importlib_metadata.PackageNotFoundError:
            out[pkg] = "missing"
    return out


_GRAMMAR_MODULES = {
    "go": ("tree_sitter_go", "language"), "java": ("tree_sitter_java", "language"),
    "ruby": ("tree_sitter_ruby", "language"), "php": ("tree_sitter_php", "language_php"),
    "javascript": ("tree_sitter_javascript", "language"), "typescript": ("tree_sitter_typescript", "language_typescript"),
}


def _language_capsule(language: str) -> Any:
    if language not in _GRAMMAR_MODULES:
        raise ParameterError(f"language {language!r}: expected one of {LANGUAGES}")
    module, function = _GRAMMAR_MODULES[language]
    try:
        return getattr(importlib.import_module(module), function)()
    except ImportError as exc:
        raise WorkbenchError(
            f"the tree-sitter grammar for {language} is not installed ({exc}); "
            f"pip install tree-sitter==0.26.1 {GRAMMAR_PACKAGES[language]}"
        ) from exc


_FUNC_WRAPPED = "[(function_expression) (arrow_function) (generator_function)]"
_JS_FUNCTIONS = f"""
(function_declaration) @f
(generator_function_declaration) @f
(method_definition) @f
(variable_declarator value: {_FUNC_WRAPPED}) @f
(assignment_expression right: {_FUNC_WRAPPED}) @f
(pair value: {_FUNC_WRAPPED}) @f
"""
_QUERIES = {
    "go": "(function_declaration) @f (method_declaration) @f (comment) @c",
    "java": "(method_declaration) @f (constructor_declaration) @f (compact_constructor_declaration) @f "
            "(block_comment) @c (line_comment) @c",
    "ruby": "(method) @f (singleton_method) @f (comment) @c",
    "php": "(function_definition) @f (method_declaration) @f (comment) @c",
    "javascript": _JS_FUNCTIONS + f"(field_definition value: {_FUNC_WRAPPED}) @f (comment) @c",
    "typescript": _JS_FUNCTIONS + f"(public_field_definition value: {_FUNC_WRAPPED}) @f "
                  "(function_signature) @f (method_signature) @f (abstract_method_signature) @f (comment) @c",
}


@cache
def _tools(language: str) -> tuple[Any, Any]:
    import tree_sitter as ts

    lang = ts.Language(_language_capsule(language))
    return ts.Parser(lang), ts.Query(lang, _QUERIES[language])


def parse(source: bytes, language: str) -> Any:
    """The tree-sitter tree of ``source`` (bytes, UTF-8) in ``language``."""
    if language not in LANGUAGES:
        raise ParameterError(f"language {language!r}: expected one of {LANGUAGES}")
    return _tools(language)[0].parse(source)


# ---------------------------------------------------------------- extraction

_COMMENT_PREFIXES: Mapping[str, tuple[str, ...]] = {
    "go": ("//", "/*"), "java": ("//", "/*", "*"), "php": ("//", "#", "/*", "*"), "ruby": ("#",),
    "javascript": ("//", "/*", "*"), "typescript": ("//", "/*", "*"),
}
_SIGNATURES = frozenset({"function_signature", "method_signature", "abstract_method_signature"})
_CLASS_LIKE: Mapping[str, frozenset[str]] = {
    "java": frozenset({"class_declaration", "interface_declaration", "enum_declaration", "record_declaration",
                       "annotation_type_declaration"}),
    "php": frozenset({"class_declaration", "interface_declaration", "trait_declaration", "enum_declaration"}),
    "ruby": frozenset({"class", "module"}),
    "javascript": frozenset({"class_declaration", "class"}),
    "typescript": frozenset({"class_declaration", "class", "abstract_class_declaration", "interface_declaration"}),
    "go": frozenset(),
}
def count_code_lines(code: str, language: str) -> int:
    """Lines that are neither blank nor comment-only (by the language's comment prefixes)."""
    prefixes = _COMMENT_PREFIXES[language]
    return sum(1 for ln in code.split("\n") if ln.strip() and not ln.lstrip().startswith(prefixes))


@dataclass(frozen=True)
class ForeignVerdict:
    """One function seen in a file: ``reason`` None when kept, else a ``func:`` key.
    ``tokens``: the code's tokens (comments left out), space-joined, for de-duplication."""

    func_name: str
    lineno: int
    reason: str | None
    query: str
    code: str
    doc: str = ""
    tokens: str = ""
    masked: bool = False


def _text(src: bytes, start: int, end: int) -> str:
    return src[start:end].decode("utf-8", "replace")


def _node_text(src: bytes, node: Any) -> str:
    return _text(src, node.start_byte, node.end_byte)


def _name_of(node: Any, src: bytes, field_name: str = "name") -> str:
    n = node.child_by_field_name(field_name)
    return _node_text(src, n) if n is not None else ""


def _js_target(node: Any, src: bytes) -> tuple[Any, Any, str]:
    """``(code node, anchor node, name)`` of a JavaScript/TypeScript function capture."""
    t = node.type
    code = node
    if t == "variable_declarator":
        name = _name_of(node, src)
        parent = node.parent
        if parent is not None and parent.type in ("lexical_declaration", "variable_declaration") and \
                parent.named_child_count == 1:
            code = parent
    elif t == "assignment_expression":
        name = _node_text(src, node.child_by_field_name("left")).replace(".prototype.", ".")
        name = re.sub(r"\s+", "", name)
        parent = node.parent
        if parent is not None and parent.type == "expression_statement":
            code = parent
    elif t == "pair":
        name = _name_of(node, src, "key").strip("'\"`")
    elif t in ("generator_function_declaration", "function_declaration", "function_signature"):
        name = _name_of(node, src) or "default"
    else:  # method_definition, field definitions, method signatures
        name = _name_of(node, src) or _name_of(node, src, "property")
    anchor = code
    while anchor.parent is not None and anchor.parent.type == "export_statement":
        anchor = anchor.parent
    return code, anchor, name


def _qualifiers(node: Any, src: bytes, language: str) -> list[str]:
    """Names of the enclosing classes / modules (outermost first)."""
    names: list[str] = []
    cls = _CLASS_LIKE[language]
    p = node.parent
    while p is not None:
        if p.type in cls:
            n = p.child_by_field_name("name")
            names.append(_node_text(src, n) if n is not None else "<anonymous>")
        elif language == "java" and p.type == "object_creation_expression":
            names.append("<anonymous>")
        elif language in ("javascript", "typescript") and p.type == "object":
            holder = p.parent
            if holder is not None and holder.type == "variable_declarator":
                names.append(_name_of(holder, src))
            elif holder is not None and holder.type == "pair":
                names.append(_name_of(holder, src, "key").strip("'\"`"))
        p = p.parent
    return list(reversed(names))


def _go_receiver(node: Any, src: bytes) -> str:
    recv = node.child_by_field_name("receiver")
    if recv is None:
        return ""
    m = re.search(r"\*?\s*([A-Za-z_]\w*)\s*(?:\[[^\]]*\])?\s*\)\s*$", _node_text(src, recv))
    return m.group(1) if m else ""


def _has_body(node: Any, language: str) -> bool:
    t = node.type
    if t in _SIGNATURES:
        return False
    if language in ("go", "java", "php"):
        if t in ("constructor_declaration", "compact_constructor_declaration"):
            return True
        return node.child_by_field_name("body") is not None
    if language == "ruby":
        return node.child_by_field_name("body") is not None or any(
            c.is_named and c.type not in ("identifier", "method_parameters", "comment", "self", "constant",
                                          "operator", "setter")
            for c in node.children if c.start_byte > (node.child_by_field_name("name") or node).end_byte
        )
    return True


def _dedent(src: bytes, start: int, end: int) -> str:
    """The text of ``[start, end)`` re-indented: the first line's indentation removed from every line."""
    line_start = src.rfind(b"\n", 0, start) + 1
    indent = src[line_start:start]
    if indent.strip():  # code before it on its line: no indentation to remove
        indent = b""
    lines = src[start:end].split(b"\n")
    out = [lines[0]]
    for ln in lines[1:]:
        if indent and ln.startswith(indent):
            out.append(ln[len(indent) :])
        elif not ln.strip():
            out.append(b"")
        else:
            k = len(ln) - len(ln.lstrip(b" \t"))
            out.append(ln[min(k, len(indent)) :])
    while out and not out[-1].strip():
        out.pop()
    return b"\n".join(x.rstrip() for x in out).decode("utf-8", "replace")


_TOKEN_RE = re.compile(rb"\w+|[^\w\s]")


def _tokens(src: bytes, start: int, end: int, comments: Sequence[tuple[int, int]]) -> str:
    """Space-joined tokens (``\\w+`` or one symbol) of ``[start, end)`` with comments cut out."""
    pieces, pos = [], start
    for cs, ce in comments:
        if ce <= start or cs >= end:
            continue
        pieces.append(src[pos:max(cs, pos)])
        pos = max(pos, min(ce, end))
    pieces.append(src[pos:end])
    return " ".join(t.decode("utf-8", "replace") for t in _TOKEN_RE.findall(b" ".join(pieces)))


def _own_line(src: bytes, start: int) -> bool:
    line_start = src.rfind(b"\n", 0, start) + 1
    return not src[line_start:start].strip()


def _doc_comments(
    src: bytes, anchor_start: int, comments: list[tuple[int, int, Any]], ends: list[int], language: str
) -> list[str]:
    """The comment(s) directly above ``anchor_start``: the last comment before it with only
    whitespace and at most one line break between; for ``//`` and ``#`` styles the whole block of
    consecutive full-line comments. [] when there is none or it is not a doc comment."""
    k = bisect.bisect_right(ends, anchor_start) - 1
    if k < 0:
        return []
    cs, ce, _ = comments[k]
    gap = src[ce:anchor_start]
    if gap.strip() or gap.count(b"\n") > 1:
        return []
    first = _text(src, cs, ce)
    if language in ("java", "php", "javascript", "typescript"):
        return [first] if first.startswith("/**") and not first.startswith("/**/") else []
    if language == "go" and first.startswith("/*"):
        return [first] if _own_line(src, cs) else []
    marker = "//" if language == "go" else "#"
    if language == "ruby" and first.startswith("=begin"):
        return [first]
    if not first.startswith(marker) or not _own_line(src, cs):
        return []
    block = [first]
    while k > 0:
        ps, pe, _ = comments[k - 1]
        between = src[pe:cs]
        text = _text(src, ps, pe)
        if between.strip() or between.count(b"\n") != 1 or not text.startswith(marker) or not _own_line(src, ps):
            break
        block.append(text)
        k, cs = k - 1, ps
    if language == "go" and all(GO_DIRECTIVE.match(c) for c in block):
        return []  # only directives (//go:nosplit): not a doc comment
    return list(reversed(block))


def _query_of(docs: list[str], language: str) -> str:
    if language == "go":
        return go_doc_query(docs)
    if language == "ruby":
        return ruby_doc_query(docs)
    return doc_block_query(docs[0], markdown=True)


def _decode(data: str | bytes, max_bytes: int) -> tuple[bytes | None, str | None]:
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    if len(data) > max_bytes:
        return None, "file:too_large"
    if b"\x00" in data:
        return None, "file:binary"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return None, "file:not_utf8"
    data = data.removeprefix(b"\xef\xbb\xbf")
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return data, None


def is_minified(data: bytes) -> bool:
    """Minified or generated one-line text: a line over 5,000 characters, or a mean line over 300."""
    lines = data.count(b"\n") + 1
    return len(data) > 2000 and (len(data) / lines > 300 or max(map(len, data.split(b"\n"))) > 5000)


def explain_foreign(
    source: str | bytes, language: str, path: str = "<string>", *, max_bytes: int = MAX_FOREIGN_FILE_BYTES
) -> tuple[list[ForeignVerdict], Counter]:
    """Every function of one file with its verdict, and a Counter of outcomes (``file:ok`` or one
    ``file:<reason>``, ``file:partial_parse``, ``func:seen``, ``func:kept``, ``func:<reason>``,
    ``query:name_masked``). Never raises on bad input."""
    if language not in LANGUAGES:
        raise ParameterError(f"language {language!r}: expected one of {LANGUAGES}")
    stats: Counter = Counter()
    src, reason = _decode(source, max_bytes)
    if src is None:
        stats[reason] += 1  # type: ignore[index]
        return [], stats
    if language in ("javascript", "typescript") and is_minified(src):
        stats["file:minified"] += 1
        return [], stats
    parser, query = _tools(language)
    try:
        tree = parser.parse(src)
        import tree_sitter as ts

        caps = ts.QueryCursor(query).captures(tree.root_node)
    except (ValueError, RuntimeError, MemoryError, RecursionError):  # pragma: no cover - defensive
        stats["file:parse_failed"] += 1
        return [], stats
    if tree.root_node.has_error:
        stats["file:partial_parse"] += 1
    comments = sorted({(c.start_byte, c.end_byte, c.id) for c in caps.get("c", [])})
    comment_list = [(s, e, None) for s, e, _ in comments]
    ends = [e for _, e, _ in comment_list]
    spans = [(s, e) for s, e, _ in comment_list]
    funcs = sorted({n.id: n for n in caps.get("f", [])}.values(), key=lambda n: (n.start_byte, n.end_byte))
    verdicts: list[ForeignVerdict] = []
    for node in funcs:
        verdicts.append(_verdict(node, src, language, comment_list, ends, spans))
    stats["file:ok"] += 1
    stats["func:seen"] += len(verdicts)
    stats.update(v.reason or "func:kept" for v in verdicts)
    stats["query:name_masked"] += sum(1 for v in verdicts if v.masked and v.reason is None)
    if not stats["query:name_masked"]:
        del stats["query:name_masked"]
    return verdicts, stats


def _overload_head(anchor: Any, name: str, src: bytes) -> Any:
    """The first of the TypeScript overload signatures right before an implementation (comments
    between them allowed), or ``anchor`` itself when there are none: its doc comment describes
    the function."""
    head, prev = anchor, anchor.prev_named_sibling
    while prev is not None:
        inner = prev.child_by_field_name("declaration") if prev.type == "export_statement" else prev
        if prev.type == "comment":
            prev = prev.prev_named_sibling
            continue
        if inner is None or inner.type not in ("function_signature", "method_signature") or \
                _name_of(inner, src) != name:
            break
        head, prev = prev, prev.prev_named_sibling
    return head


def _verdict(
    node: Any, src: bytes, language: str, comments: list[tuple[int, int, Any]], ends: list[int],
    spans: list[tuple[int, int]],
) -> ForeignVerdict:
    code_node, anchor, name, qual = node, node, "", ""
    if language in ("javascript", "typescript"):
        code_node, anchor, name = _js_target(node, src)
        if language == "typescript" and node.type in ("method_definition", "public_field_definition"):
            prev = anchor.prev_named_sibling
            while prev is not None and prev.type == "decorator":
                anchor, prev = prev, prev.prev_named_sibling
    elif language == "go":
        name = _name_of(node, src)
        recv = _go_receiver(node, src)
        qual = f"{recv}.{name}" if recv else name
    elif language == "ruby":
        name = _name_of(node, src)
        p = node.parent
        if p is not None and p.type == "argument_list" and p.parent is not None and p.parent.type == "call":
            anchor = p.parent  # private def foo / module_function def foo
    else:
        name = _name_of(node, src) or ("<init>" if "constructor" in node.type else "")
    if language != "go":
        quals = [q for q in _qualifiers(node, src, language) if q]
        qual = ".".join([*quals, name]) if name else ".".join(quals)
        if language == "ruby" and node.type == "singleton_method":
            qual = ".".join([*quals, name]) if quals else f"self.{name}"
    lineno = node.start_point[0] + 1

    def drop(reason: str, query: str = "", doc: str = "", code: str = "") -> ForeignVerdict:
        return ForeignVerdict(qual, lineno, reason, query, code, doc)

    if node.has_error:
        return drop("func:parse_error")
    if not _has_body(node, language):
        return drop("func:no_body")
    if is_test_name(qual):
        return drop("func:test_name")
    if language == "php" and name.startswith("__"):
        return drop("func:magic_method")
    docs = _doc_comments(src, anchor.start_byte, comments, ends, language)
    if not docs and language == "typescript":
        head = _overload_head(anchor, name, src)
        if head is not anchor:
            docs = _doc_comments(src, head.start_byte, comments, ends, language)
    if not docs:
        return drop("func:no_doc")
    doc = "\n".join(docs)
    query = _query_of(docs, language)
    masked = False
    if language == "go":
        query, masked = mask_leading_name(query, name)
    if not query:
        return drop("func:no_description", doc=doc)
    if len(query.split()) < MIN_QUERY_WORDS:
        return drop("func:short_query", query, doc)
    if is_foreign_boilerplate(query):
        return drop("func:boilerplate_query", query, doc)
    code = _dedent(src, code_node.start_byte, code_node.end_byte)
    if count_code_lines(code, language) < MIN_CODE_LINES:
        return drop("func:short_code", query, doc, code)
    tokens = _tokens(src, code_node.start_byte, code_node.end_byte, spans)
    return ForeignVerdict(qual, lineno, None, query, code, doc, tokens, masked)


def extract_functions(
    source: str | bytes, language: str, path: str = "<string>", *, max_bytes: int = MAX_FOREIGN_FILE_BYTES
) -> tuple[list[ForeignVerdict], Counter]:
    """The kept functions of one file (see :func:`explain_foreign`) and the outcome Counter."""
    verdicts, stats = explain_foreign(source, language, path, max_bytes=max_bytes)
    return [v for v in verdicts if v.reason is None], stats


