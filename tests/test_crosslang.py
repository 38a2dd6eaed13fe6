"""Cross-language mining: tree-sitter extractors on real files (small Debian packages and npm
tarballs, fetched once into the repository's ``data/sources/`` and then read offline), hand-written
edge cases per language, the fetch cache and its offline errors, and a small build.

Tests marked ``network`` fetch on their first run only. A failed fetch FAILS (with the error that
names the command to run by hand): CI reaches Debian's archive and npm.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from workbench.corpus import PAIR_COLUMNS
from workbench.corpus import foreign_sources as fs
from workbench.corpus.crosslang import build_crosslang, crosslang_tasks, load_crosslang_stats
from workbench.corpus.doc_comments import (
    doc_block_query,
    go_doc_query,
    mask_leading_name,
    resolve_inline_tags,
    ruby_doc_query,
)
from workbench.corpus.foreign_mining import explain_foreign, extract_functions, skip_foreign_path_reason
from workbench.corpus.foreign_sources import ForeignSource, open_foreign_source
from workbench.errors import WorkbenchError

# ---------------------------------------------------------------- real sources (small)

REAL = {
    # 13 KB: errors.go, stack.go, go113.go and their *_test.go files
    "go": ForeignSource("debian", "golang-github-pkg-errors-dev", root="usr/share/gocode/src/github.com/pkg/errors"),
    # 830 KB: BeanShell's sources, a tar.gz inside the package
    "java": ForeignSource(
        "debian", "bsh-src", root="usr/src/bsh-src/bsh.tar.gz", suffixes=(".java",),
        include=("src/bsh/CollectionManager.java", "src/bsh/ReflectManager.java", "src/bsh/BshIterator.java",
                 "tests/src/InheritanceTest"),
    ),
    # 140 KB: the rack gem (the version is part of the folder name, hence the glob)
    "ruby": ForeignSource(
        "debian", "ruby-rack", root="usr/share/rubygems-integration/all/gems/rack-*/lib",
        include=("rack/builder.rb", "rack/body_proxy.rb"),
    ),
    # 10 KB: PSR-3 logger interface, traits and tests
    "php": ForeignSource("debian", "php-psr-log", root="usr/share/php/Psr/Log"),
    # 320 KB: lodash's one-file build
    "javascript": ForeignSource("npm", "lodash", "4.18.1", root="package", include=("lodash.js",)),
    # 5 KB: TypeScript source plus its dist/ build copies and .d.ts declarations
    "typescript": ForeignSource("npm", "tiny-invariant", "1.3.3", root="package"),
}


@pytest.fixture(scope="session")
def real_files():
    """``{language: (OpenedSource, {path: verdicts}, stats per path)}``, fetched once into data/."""
    out = {}
    for lang, src in REAL.items():
        opened = open_foreign_source(src)  # default data dir: <repo>/data, cached after the first run
        verdicts, skipped = {}, {}
        for rel, _size in opened.list_files():
            why = skip_foreign_path_reason(rel)
            if why is not None:
                skipped[rel] = why
                continue
            lang_of = "typescript" if rel.endswith(".ts") else "javascript" if rel.endswith(".js") else lang
            verdicts[rel], _ = explain_foreign(opened.read(rel), lang_of, rel)
        out[lang] = (opened, verdicts, skipped)
    return out


def _by_name(verdicts):
    return {v.func_name: v for v in verdicts}


@pytest.mark.network
def test_real_go_pkg_errors(real_files):
    opened, verdicts, skipped = real_files["go"]
    assert opened.version and opened.provenance["deb_sha256"]
    assert skipped["errors_test.go"] == "path:tests" and skipped["stack_test.go"] == "path:tests"
    funcs = _by_name(verdicts["errors.go"])
    new = funcs["New"]
    assert new.reason is None and new.masked
    # "New returns an error ..." -> the leading name masked
    assert new.query == (
        "Returns an error with the supplied message. New also records the stack trace at the point it was called."
    )
    assert new.code.startswith("func New(message string) error {") and "// New returns" not in new.code
    assert funcs["Wrap"].query.startswith("Returns an error annotating err with a stack trace")
    stack = _by_name(verdicts["stack.go"])
    assert stack["Frame.line"].query == "Returns the line number of source code of the function for this Frame's pc."
    assert stack["funcname"].query == "Removes the path prefix component of a function's name reported by func.Name()."


@pytest.mark.network
def test_real_java_bsh(real_files):
    _, verdicts, skipped = real_files["java"]
    assert skipped["tests/src/InheritanceTest/A.java"] == "path:tests"
    cm = _by_name(verdicts["src/bsh/CollectionManager.java"])
    has_next = cm["CollectionManager.BasicBshIterator.hasNext"]
    # <code>next()</code> stripped, the @return block tag cut
    assert has_next.reason is None
    assert has_next.query == "Returns true if and only if there are more objects available via the next() method"
    assert has_next.code == "public boolean hasNext() {\n\treturn enumeration.hasMoreElements();\n}"
    assert cm["CollectionManager.BasicBshIterator.next"].query == "Fetch the next object in the iteration"
    rm = _by_name(verdicts["src/bsh/ReflectManager.java"])
    assert rm["ReflectManager.getReflectManager"].query == "Return the singleton bsh ReflectManager."
    assert rm["ReflectManager.setAccessible"].reason == "func:no_body"  # abstract
    assert {v.reason for v in verdicts["src/bsh/BshIterator.java"]} == {"func:no_body"}  # interface


@pytest.mark.network
def test_real_ruby_rack(real_files):
    opened, verdicts, _ = real_files["ruby"]
    assert opened.version.startswith("2.2.")
    builder = _by_name(verdicts["rack/builder.rb"])
    init = builder["Rack.Builder.initialize"]
    # +default_app+ / +run+ RDoc markup reduced to the words
    assert init.query == (
        "Initialize a new Rack::Builder instance. default_app specifies the default application if run is not "
        "called later. If a block is given, it is evaluted in the context of the instance."
    )
    assert init.code.startswith("def initialize(default_app = nil, &block)") and init.code.endswith("end")
    assert builder["Rack.Builder.new_from_string"].query == (
        "Evaluate the given builder_script string in the context of a Rack::Builder block, returning a Rack application."
    )
    proxy = _by_name(verdicts["rack/body_proxy.rb"])
    assert proxy["Rack.BodyProxy.closed?"].query == (
        "Whether the proxy is closed. The proxy starts as not closed, and becomes closed on the first call to close."
    )


@pytest.mark.network
def test_real_php_psr_log(real_files):
    _, verdicts, skipped = real_files["php"]
    assert skipped["Test/LoggerInterfaceTest.php"] == "path:tests" and "Test/TestLogger.php" in skipped
    assert {v.reason for v in verdicts["LoggerInterface.php"]} == {"func:no_body"}  # interface methods
    trait = _by_name(verdicts["LoggerTrait.php"])
    assert trait["LoggerTrait.log"].reason == "func:no_body"  # abstract
    assert trait["LoggerTrait.emergency"].query == "System is unusable."
    assert trait["LoggerTrait.info"].reason == "func:short_query"  # "Interesting events."
    null = _by_name(verdicts["NullLogger.php"])["NullLogger.log"]
    assert null.reason is None and null.query == "Logs with an arbitrary level."
    assert null.code.startswith("public function log($level, $message, array $context = array())")


@pytest.mark.network
def test_real_javascript_lodash(real_files):
    _, verdicts, _ = real_files["javascript"]
    funcs = _by_name(verdicts["lodash.js"])
    chunk = funcs["chunk"]
    assert chunk.query == (
        "Creates an array of elements split into groups the length of `size`. If `array` can't be split evenly, "
        "the final chunk will be the remaining elements."
    )
    assert chunk.code.startswith("function chunk(array, size, guard) {") and "@static" not in chunk.code
    kept = [v for v in verdicts["lodash.js"] if v.reason is None]
    assert 400 < len(kept) < 520  # functions nested in lodash's runInContext closure are found


@pytest.mark.network
def test_real_typescript_and_build_copies(real_files):
    _, verdicts, skipped = real_files["typescript"]
    assert skipped["dist/tiny-invariant.min.js"] == "path:build_copy"
    assert skipped["dist/tiny-invariant.cjs.js"] == "path:build_copy"
    assert skipped["dist/tiny-invariant.d.ts"] == "path:declaration"
    inv = _by_name(verdicts["src/tiny-invariant.ts"])["invariant"]
    # Markdown links reduced to their text; `export default` left out of the code
    assert inv.query == "`invariant` is used to assert that the `condition` is truthy."
    assert inv.code.startswith("function invariant(\n  condition: any,")


@pytest.mark.network
def test_cached_fetch_runs_no_command(real_files, monkeypatch):
    def boom(*a, **k):
        raise AssertionError("an external command ran although everything is cached")

    monkeypatch.setattr(fs.subprocess, "run", boom)
    for src in REAL.values():
        assert open_foreign_source(src).list_files()


@pytest.mark.network
def test_build_dedups_npm_build_copies(real_files, tmp_path):
    """lodash ships each function again as a module (chunk.js) and in core.js: exact copies go."""
    (tmp_path / "sources" / "npm").mkdir(parents=True)
    tarball = fs.fetch_npm("lodash", "4.18.1")  # cached by the fixture
    shutil.copy(tarball, tmp_path / "sources" / "npm" / tarball.name)
    sources = {"javascript": (
        REAL["javascript"],
        ForeignSource("npm", "lodash", "4.18.1", root="package", include=("chunk.js", "words.js", "core.js")),
    )}
    full = build_crosslang(["javascript"], per_language_cap=None, data_dir=tmp_path, sources=sources)
    assert "chunk" in set(full["func_name"]) and "chunk.js" not in set(full["path"])  # the module copy went
    assert set(full["path"]) <= {"lodash.js", "words.js", "core.js"}
    df = build_crosslang(["javascript"], per_language_cap=100, data_dir=tmp_path, sources=sources)
    assert list(df.columns) == PAIR_COLUMNS and len(df) == 100 and set(df["id"]) <= set(full["id"])
    assert set(df["split"]) == {"ood"} and set(df["language"]) == {"javascript"} and df["id"].is_unique
    assert df["query"].map(str.lower).is_unique
    stats = load_crosslang_stats(["javascript"], 100, tmp_path, sources=sources)
    dedup = stats["per_language"]["javascript"]["dedup"]
    assert dedup["n_exact_removed"] >= 2
    assert stats["per_language"]["javascript"]["kept"] == 100 and stats["counts"]["total"] == 100
    # cached: the same frame back without mining
    again = build_crosslang(["javascript"], per_language_cap=100, data_dir=tmp_path, sources=sources)
    pd.testing.assert_frame_equal(df, again)
    tasks = crosslang_tasks(df)
    assert set(tasks) == {"javascript"} and len(tasks["javascript"].queries) == 100


# ---------------------------------------------------------------- offline errors (no network)


def test_debian_unreachable_names_the_command(tmp_path, monkeypatch):
    monkeypatch.setattr(fs, "_run", lambda cmd, timeout, cwd=None: (False, "E: Failed to fetch ... Temporary failure"))
    with pytest.raises(WorkbenchError) as e:
        open_foreign_source(ForeignSource("debian", "golang-1.19-src", root="usr/share/go-1.19/src"), tmp_path)
    msg = str(e.value)
    assert "golang-1.19-src" in msg and "apt-get download golang-1.19-src" in msg
    assert str(tmp_path / "sources" / "debian" / "debs") in msg


def test_npm_unreachable_names_the_command(tmp_path, monkeypatch):
    monkeypatch.setattr(fs, "_run", lambda cmd, timeout, cwd=None: (False, "npm error code ENOTFOUND"))
    with pytest.raises(WorkbenchError) as e:
        open_foreign_source(ForeignSource("npm", "rxjs", "7.8.2", root="package"), tmp_path)
    msg = str(e.value)
    assert "npm pack rxjs@7.8.2 --pack-destination" in msg and "ENOTFOUND" in msg
    assert str(tmp_path / "sources" / "npm" / "rxjs-7.8.2.tgz") in msg
    assert "rxjs-7.8.2.tgz" in msg


def test_missing_tool_is_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # neither apt-get nor npm can be found
    with pytest.raises(WorkbenchError, match="'npm' is not installed here"):
        fs.fetch_npm("lodash", "4.18.1", tmp_path)


def test_source_selection():
    src = ForeignSource("debian", "golang-1.19-src", root="/usr/share/go-1.19/src/",
                        exclude=("cmd/", "testdata", "vendor"), suffixes=(".go",))
    assert src.root == "usr/share/go-1.19/src"
    assert src.selects("strings/compare.go")
    assert not src.selects("cmd/go/main.go") and src.selects("go/cmd/x.go")  # "cmd/" is a prefix
    assert not src.selects("image/testdata/x.go") and not src.selects("strings/README")
    lib = ForeignSource("npm", "axios", "1.21.1", root="package", include=("lib",))
    assert lib.selects("lib/core/Axios.js") and not lib.selects("dist/axios.js") and not lib.selects("libx.js")
    with pytest.raises(WorkbenchError):
        ForeignSource("npm", "lodash")  # npm needs a version
    assert fs.parse_deb_filename("libruby3.1_3.1.2-7%2bdeb12u1_amd64.deb") == ("libruby3.1", "3.1.2-7+deb12u1", "amd64")
    assert fs.npm_tarball_name("@scope/pkg", "1.0.0") == "scope-pkg-1.0.0.tgz"


# ---------------------------------------------------------------- paths


@pytest.mark.parametrize("path, reason", [
    ("strings/compare.go", None),
    ("strings/compare_test.go", "path:tests"),
    ("image/testdata/x.go", "path:tests"),
    ("java.base/java/security/spec/ECField.java", None),  # spec/ is code in Java
    ("src/FooTest.java", "path:tests"),
    ("lib/spec/foo.rb", "path:tests"),
    ("lib/foo_spec.rb", "path:tests"),
    ("src/__tests__/a.js", "path:tests"),
    ("src/a.test.ts", "path:tests"),
    ("Test/TestLogger.php", "path:tests"),
    ("vendor/pkg/a.go", "path:vendored"),
    ("node_modules/x/index.js", "path:vendored"),
    ("dist/lib.js", "path:build_copy"),
    ("lodash.min.js", "path:build_copy"),
    ("index.d.ts", "path:declaration"),
    ("README.md", "path:other_language"),
    ("src/internal/operators/map.ts", None),
])
def test_skip_foreign_path_reason(path, reason):
    assert skip_foreign_path_reason(path) == reason


# ---------------------------------------------------------------- query cleaning


def test_javadoc_cleaning():
    doc = """/**
     * Returns a {@link java.util.List List&lt;T&gt;} of {@code Map<K, V>} entries;
     * see {@link #foo(int)} and {@linkplain Bar#baz() the baz}. Uses <i>no</i> &amp; <b>HTML</b>.
     * <p>Second paragraph.
     * @param x the x
     * @return nothing
     */"""
    assert doc_block_query(doc) == (
        "Returns a List<T> of Map<K, V> entries; see foo and the baz. Uses no & HTML."
    )
    assert doc_block_query("/**\n * {@return the {@code char} at {@code index}}\n */") == (
        "Returns the char at index."
    )
    assert doc_block_query("/** {@inheritDoc} */") == "@inheritDoc"
    assert doc_block_query("/**\n * @return the value\n */") == ""
    assert resolve_inline_tags("{@link Foo#bar(int, {x})}") == "bar"


def test_jsdoc_summary_and_markdown():
    # date-fns puts the description in tags only
    doc = "/**\n * @name addDays\n * @category Day Helpers\n * @summary Add the specified number of days.\n *\n" \
          " * @description\n * Longer text.\n */"
    assert doc_block_query(doc) == "Add the specified number of days."
    doc = "/**\n * Applies `project` to each value.\n *\n * <span class=\"informal\">Like [map](https://x.y/map),</span>\n */"
    assert doc_block_query(doc) == "Applies `project` to each value."
    assert doc_block_query("/** Returns an `Observable<T>` ![](img.png) of [values](http://a.b). */") == (
        "Returns an `Observable<T>` of values."
    )


def test_go_and_ruby_cleaning():
    assert go_doc_query(["// Index returns the index of the first instance of [Reader] in s,",
                         "// or -1.", "//", "// More.", "//go:noinline"]) == \
        "Index returns the index of the first instance of Reader in s, or -1."
    assert mask_leading_name("Index returns the index.", "Index") == ("Returns the index.", True)
    assert mask_leading_name("The Index function returns x.", "Index") == ("Returns x.", True)
    assert mask_leading_name("Indexes are built here.", "Index") == ("Indexes are built here.", False)
    assert ruby_doc_query(["# call-seq:", "#   ary.each {|item| block} -> ary", "#", "# Calls the given",
                           "# +block+ once for *each* element.", "# @param x [Integer]"]) == \
        "Calls the given block once for each element."
    assert ruby_doc_query(["# :call-seq: foo(x) -> y", "#   foo(x, y)", "# Does the {foo}[http://x] thing."]) == \
        "Does the foo thing."


# ---------------------------------------------------------------- edge cases per language


def _verdicts(code: str, language: str) -> dict:
    verdicts, _ = explain_foreign(code, language)
    return {v.func_name: v for v in verdicts}


BODY3 = "{\n    int a = 1;\n    return a;\n}"


def test_go_snippets():
    src = """package p

// Sum returns the sum of a and b.
func Sum(a, b int) int {
	c := a + b
	return c
}

// Gap has a blank line below its comment.

func Gap() int {
	x := 1
	return x
}

// Asm is implemented in assembly elsewhere.
func Asm(x int) int

// Len returns how many items the list holds.
//
//go:nosplit
func (l *List[T]) Len() int {
	n := len(l.items)
	return n
}

//go:nosplit
func Directive() int {
	y := 2
	return y
}
"""
    v = _verdicts(src, "go")
    assert v["Sum"].query == "Returns the sum of a and b." and v["Sum"].code.startswith("func Sum(a, b int) int {")
    assert v["Gap"].reason == "func:no_doc"
    assert v["Asm"].reason == "func:no_body"
    assert v["List.Len"].query == "Returns how many items the list holds."
    assert v["Directive"].reason == "func:no_doc"


def test_java_snippets():
    src = f"""abstract class Shape {{
    /**
     * Computes the <em>area</em> of the shape in square units.
     */
    @Override
    @SuppressWarnings("x")
    public double area() {BODY3}

    /** Blank line between this comment and the method. */

    public int gap() {BODY3}

    /** Draws the shape on the canvas given. */
    abstract void draw(Canvas c);

    // A line comment is not Javadoc at all here.
    public int plain() {BODY3}

    /** Deprecated, use area instead please. */
    public int old() {BODY3}
}}
interface Drawable {{ /** Draws the thing on screen now. */ void draw(); }}
"""
    v = _verdicts(src, "java")
    area = v["Shape.area"]
    assert area.reason is None and area.query == "Computes the area of the shape in square units."
    assert area.code.startswith("@Override\n@SuppressWarnings(\"x\")\npublic double area() {")
    assert v["Shape.gap"].reason == "func:no_doc"
    assert v["Shape.draw"].reason == "func:no_body" and v["Drawable.draw"].reason == "func:no_body"
    assert v["Shape.plain"].reason == "func:no_doc"
    assert v["Shape.old"].reason == "func:boilerplate_query"


def test_ruby_snippets():
    src = """module M
  class C
    # Adds one to the given number +x+.
    def inc(x)
      x + 1
    end

    # Blank line between this comment and the method.

    def gap
      1
    end

    # Computes the private value of it.
    private def secret
      42
    end

    # Builds a new widget from the options.
    def self.build(opts)
      new(opts)
    end

    x = 1 # A trailing comment is not a doc comment.
    def trailing
      2
    end
  end
end
"""
    v = _verdicts(src, "ruby")
    assert v["M.C.inc"].query == "Adds one to the given number x."
    assert v["M.C.inc"].code == "def inc(x)\n  x + 1\nend"
    assert v["M.C.gap"].reason == "func:no_doc"
    assert v["M.C.secret"].query == "Computes the private value of it."
    assert v["M.C.build"].query == "Builds a new widget from the options."
    assert v["M.C.trailing"].reason == "func:no_doc"


def test_php_snippets():
    src = """<?php
/**
 * Formats the given amount as money.
 */
function money($x) {
    $y = round($x, 2);
    return "$" . $y;
}
abstract class Repo {
    /**
     * Finds the entity by its identifier.
     */
    #[Pure]
    public function find($id) {
        $row = $this->db->get($id);
        return $row;
    }
    /** Saves the entity to the storage now. */
    abstract public function save($e);
    /** Creates the repository with a database. */
    public function __construct($db) {
        $this->db = $db;
        $this->n = 0;
    }
}
"""
    v = _verdicts(src, "php")
    assert v["money"].query == "Formats the given amount as money."
    assert v["Repo.find"].query == "Finds the entity by its identifier."  # attribute between: kept
    assert v["Repo.find"].code.startswith("#[Pure]\npublic function find($id) {")
    assert v["Repo.save"].reason == "func:no_body"
    assert v["Repo.__construct"].reason == "func:magic_method"


def test_javascript_snippets():
    src = """/**
 * Adds two numbers and returns the sum.
 * @param {number} a
 */
export function add(a, b) {
  const c = a + b;
  return c;
}

/** Doubles every value of the array. */
export const double = (xs) => {
  return xs.map((x) => x * 2);
};

/** Gets the device info from the plugin. */
Device.prototype.getInfo = function (ok, fail) {
  exec(ok, fail);
  return this;
};

const utils = {
  /** Trims whitespace off both ends. */
  trim: function (s) {
    const t = s.trim();
    return t;
  },
};

/** Blank line between this comment and the function. */

function gap() {
  let x = 1;
  return x;
}

/* A plain block comment is not JSDoc here. */
function plain() {
  let y = 1;
  return y;
}
"""
    v = _verdicts(src, "javascript")
    assert v["add"].query == "Adds two numbers and returns the sum."
    assert v["add"].code.startswith("function add(a, b) {")  # export keyword left out
    assert v["double"].code.startswith("const double = (xs) => {")
    assert v["double"].query == "Doubles every value of the array."
    assert v["Device.getInfo"].query == "Gets the device info from the plugin."
    assert v["utils.trim"].query == "Trims whitespace off both ends."
    assert v["gap"].reason == "func:no_doc" and v["plain"].reason == "func:no_doc"


def test_typescript_snippets():
    src = """/**
 * Creates an observable from the given values.
 */
export function of<T>(a: T): Observable<T>;
/** @deprecated Use scheduled instead. */
export function of<T>(a: T, s: Scheduler): Observable<T>;
export function of<T>(...args: T[]): Observable<T> {
  const scheduler = popScheduler(args);
  return from(args, scheduler);
}

abstract class Base {
  /** Handles the incoming request for the route. */
  @Get('/x')
  handle(req: Request): Response {
    const r = new Response(req);
    return r;
  }
  /** Runs the job on the given scheduler. */
  abstract run(s: Scheduler): void;
}

interface Api { /** Fetches the resource by its URL. */ fetch(url: string): Promise<string>; }
"""
    v = {(k, x.lineno): x for k, x in [(x.func_name, x) for x in explain_foreign(src, "typescript")[0]]}
    names = {k: x for (k, _), x in v.items()}
    assert [x.reason for (k, _), x in sorted(v.items(), key=lambda kv: kv[0][1]) if k == "of"] == \
        ["func:no_body", "func:no_body", None]
    assert names["of"].query == "Creates an observable from the given values."
    assert names["Base.handle"].query == "Handles the incoming request for the route."  # decorator between
    assert names["Base.handle"].code.startswith("handle(req: Request): Response {")
    assert names["Base.run"].reason == "func:no_body" and names["Api.fetch"].reason == "func:no_body"


def test_bad_input_is_counted_not_raised():
    _, st = explain_foreign(b"\x00\x01binary", "go")
    assert st == {"file:binary": 1}
    _, st = explain_foreign(b"\xff\xfe caf\xe9", "java")
    assert st == {"file:not_utf8": 1}
    _, st = explain_foreign("x" * 2000, "ruby", max_bytes=1000)
    assert st == {"file:too_large": 1}
    _, st = explain_foreign("var a=1;" * 1000, "javascript")
    assert st == {"file:minified": 1}
    # broken syntax: the file is still mined, the broken function is not
    kept, st = extract_functions(
        "package p\n\n// Good returns one for the caller.\nfunc Good() int {\n\tx := 1\n\treturn x\n}\n\n"
        "// Bad is broken here.\nfunc Bad( {\n\treturn ]]\n}\n", "go")
    assert [f.func_name for f in kept] == ["Good"] and st["file:partial_parse"] == 1


def test_crosslang_tasks_one_per_language():
    df = pd.DataFrame({
        "id": ["a", "b", "c"], "query": ["q one two", "q three four", "q five six"],
        "code": ["func a() {}", "def b\nend", "func c() {}"], "language": ["go", "ruby", "go"],
        "source": ["s", "t", "s"],
    })
    tasks = crosslang_tasks(df)
    assert set(tasks) == {"go", "ruby"} and tasks["go"].name == "crosslang-go"
    assert len(tasks["go"].queries) == 2 and tasks["ruby"].qrels == {"b": {"b": 1}}


def test_defaults_cover_the_languages():
    assert set(fs.CROSSLANG_SOURCES) == {"go", "java", "ruby", "php", "javascript", "typescript"}
    for srcs in fs.CROSSLANG_SOURCES.values():
        for s in srcs:
            assert s.kind in fs.KINDS and (s.kind == "debian" or s.version)


def test_python_deb_reader(tmp_path):
    """The fallback for machines without dpkg-deb, on a hand-made .deb (ar + data.tar.xz)."""
    import io
    import tarfile

    payload = b"package p\n"
    tar_buf = io.BytesIO()
    with tarfile.open(fileobj=tar_buf, mode="w:xz") as tf:
        info = tarfile.TarInfo("./usr/share/x/a.go")
        info.size = len(payload)
        tf.addfile(info, io.BytesIO(payload))
    members = [("debian-binary", b"2.0\n"), ("control.tar.xz", b""), ("data.tar.xz", tar_buf.getvalue())]
    blob = b"!<arch>\n"
    for name, data in members:
        blob += f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode() + data
        blob += b"\n" if len(data) % 2 else b""
    deb = tmp_path / "x_1.0_all.deb"
    deb.write_bytes(blob)
    fs._extract_deb_python(deb, tmp_path / "out")
    assert (tmp_path / "out" / "usr/share/x/a.go").read_bytes() == payload
    assert Path(tmp_path / "out").is_dir()
