"""Bring your own data (issue 26): a pair dataset or a folder of code as the training corpus.

Every input is real code in a real layout: functions of the running Python's standard library,
mined by the workbench, written out as CodeSearchNet's release files (``*.jsonl.gz`` with
``docstring_tokens`` / ``code_tokens`` / ``original_string``, the docstring inside the code as in
the release), as a ``datasets`` folder (``save_to_disk``) with renamed columns, as CSV; and a copy
of a real package folder (the stdlib's ``json``) mined as a ``dir:`` source.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pandas as pd
import pytest
from stdlib_pairs import mine_stdlib_pairs

from workbench.cli import main
from workbench.corpus import PAIR_COLUMNS, build_corpus
from workbench.corpus.build import corpus_dir, mine_corpus_source, named_spec, spec_from_path
from workbench.corpus.crosslang import mine_foreign_source
from workbench.corpus.foreign_sources import ForeignSource, open_foreign_source
from workbench.corpus.imported import PairFileError, strip_docstring
from workbench.corpus.mining import with_docstring
from workbench.errors import ParameterError

FILES = ("textwrap.py", "shlex.py", "string.py", "fnmatch.py", "glob.py", "bisect.py", "heapq.py", "calendar.py",
         "base64.py", "tokenize.py", "posixpath.py", "genericpath.py", "colorsys.py", "ftplib.py", "imaplib.py",
         "smtplib.py", "difflib.py", "argparse.py", "configparser.py")


@pytest.fixture(scope="module")
def mined() -> pd.DataFrame:
    return mine_stdlib_pairs(FILES, 240)


def _csn_rows(df: pd.DataFrame) -> list[dict]:
    """CodeSearchNet's release layout: the code keeps its docstring, the query is its tokens."""
    rows = []
    for i, r in enumerate(df.itertuples()):
        code = with_docstring(r.code, r.query)
        rows.append({"repo": "python/cpython", "path": f"Lib/{FILES[i % len(FILES)]}", "func_name": r.func_name,
                     "original_string": code, "language": "python", "code": code, "code_tokens": code.split(),
                     "docstring": r.query, "docstring_tokens": r.query.split(), "sha": "0" * 40,
                     "url": f"https://github.com/python/cpython/blob/main/Lib/x.py#L{i}", "partition": "train"})
    return rows


def _write_jsonl_gz(path: Path, rows: list[dict]) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")
    return path


def test_a_codesearchnet_release_file_is_a_corpus(mined, tmp_path):
    path = _write_jsonl_gz(tmp_path / "python_train_0.jsonl.gz", _csn_rows(mined))
    spec = spec_from_path(str(path))
    assert spec.in_distribution == (f"pairs:{path}",) and spec.ood == ("stdlib",)
    df = build_corpus(str(path), data_dir=tmp_path / "data", progress=False)
    assert list(df.columns) == PAIR_COLUMNS
    mine = df[df["split"] != "ood"]
    assert 200 <= len(mine) <= 240 and set(mine["split"]) == {"train", "valid", "test"}
    assert set(mine["source"]) == {"python/cpython"}  # CodeSearchNet's repo is the source
    for row in mine.itertuples():  # id: the url; query: the joined docstring tokens; code: without its docstring
        original = mined.iloc[int(row.id.rsplit("#L", 1)[1])]
        assert row.query == " ".join(original["query"].split()) and row.code == original["code"]
    stats = json.loads((corpus_dir(spec, tmp_path / "data") / "stats.json").read_text())
    assert stats["sources"][spec.in_distribution[0]]["filters"]["row:docstring_removed"] == 240
    assert stats["leakage"]["clean"]
    # the stdlib copies of the user's functions are the OOD copies de-duplication drops
    assert stats["dedup"]["removed_by_source"]["stdlib"]["exact"] >= 200
    # the same file again: the cache; an edited file: a new corpus
    again = build_corpus(str(path), data_dir=tmp_path / "data", progress=False)
    pd.testing.assert_frame_equal(again, df)
    _write_jsonl_gz(path, _csn_rows(mined.iloc[:120]))
    edited = build_corpus(str(path), data_dir=tmp_path / "data", progress=False)
    assert len(edited[edited["split"] != "ood"]) < len(mine)


def test_an_advtest_train_file_is_a_corpus(mined, tmp_path):
    """AdvTest's ``train.jsonl`` layout (url, idx, docstring_tokens, function_tokens, function): the
    query is the joined tokens, the code the ``function`` text, the id the url."""
    path = _write_advtest(tmp_path / "train.jsonl", mined)
    df = build_corpus(str(path), data_dir=tmp_path / "data", progress=False)
    mine = df[df["split"] != "ood"]
    assert len(mine) >= 200 and mine["id"].str.startswith("https://github.com/python/cpython#adv").all()
    for row in mine.itertuples():
        original = mined.iloc[int(row.id.rsplit("#adv", 1)[1])]
        assert row.query == " ".join(original["query"].split()) and row.code == original["code"]


def test_a_datasets_folder_with_its_own_column_names(mined, tmp_path):
    import datasets

    folder = tmp_path / "my-pairs"
    datasets.Dataset.from_pandas(pd.DataFrame({
        "ticket": [f"T-{i}" for i in range(len(mined))], "question_text": mined["query"], "body": mined["code"],
    })).save_to_disk(str(folder))
    with pytest.raises(PairFileError, match=r"no query column found among \['ticket', 'question_text', 'body'\]"):
        build_corpus(str(folder), data_dir=tmp_path / "data", progress=False)
    spec = f"{folder}#query=question_text,code=body,id=ticket"
    df = build_corpus(spec, data_dir=tmp_path / "data", progress=False)
    mine = df[df["split"] != "ood"]
    assert set(mine["id"]) <= {f"T-{i}" for i in range(len(mined))} and len(mine) >= 200
    assert named_spec(spec).in_distribution == (f"pairs:{folder}#code=body,id=ticket,query=question_text",)
    with pytest.raises(PairFileError, match="'nope', which the file does not have"):
        build_corpus(f"{folder}#query=nope", data_dir=tmp_path / "data", progress=False)


def test_a_folder_of_code_is_mined_without_following_links(tmp_path):
    src = Path(sysconfig.get_paths()["stdlib"]) / "json"
    folder = tmp_path / "checkout"
    shutil.copytree(src, folder / "json", ignore=shutil.ignore_patterns("__pycache__"))
    (folder / ".git").mkdir()
    (folder / ".git" / "hook.py").write_text('def f(x):\n    """Return x twice, a git hook."""\n    return x * 2\n\n')
    os.symlink(Path(sysconfig.get_paths()["stdlib"]) / "email", folder / "linked")
    df = build_corpus(str(folder), data_dir=tmp_path / "data", progress=False)
    mine = df[df["split"] != "ood"]
    assert len(mine) > 0 and mine["path"].str.startswith("json/").all()
    spec = named_spec(str(folder))
    stats = json.loads((corpus_dir(spec, tmp_path / "data") / "stats.json").read_text())
    assert stats["sources"][f"dir:{folder}"]["filters"]["path:symlink"] == 1



# real Go, PHP and TypeScript packages (small Debian packages and an npm tarball, as in test_crosslang)
POLYGLOT = {
    "go": ForeignSource("debian", "golang-github-pkg-errors-dev", root="usr/share/gocode/src/github.com/pkg/errors"),
    "php": ForeignSource("debian", "php-psr-log", root="usr/share/php/Psr/Log"),
    "typescript": ForeignSource("npm", "tiny-invariant", "1.3.3", root="package"),
}


@pytest.mark.network
def test_a_folder_of_several_languages_is_mined_with_ast_and_tree_sitter(tmp_path):
    """A checkout holding Python, Go, PHP and TypeScript: each language mined as the workbench mines
    it elsewhere (Python as the wheels, the others exactly as the cross-language set mines the same
    files), tests, vendored code, build copies and declarations skipped and counted; ``#languages=``
    keeps some of them, and an unknown language is named in the error."""
    folder = tmp_path / "checkout"
    shutil.copytree(Path(sysconfig.get_paths()["stdlib"]) / "json", folder / "json",
                    ignore=shutil.ignore_patterns("__pycache__"))
    expected = {}
    for lang, source in POLYGLOT.items():
        opened = open_foreign_source(source)  # default data dir: <repo>/data, cached after the first run
        for rel, _size in opened.list_files():
            (folder / lang / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / lang / rel).write_bytes(opened.read(rel))
        pairs, _ = mine_foreign_source(source, lang)
        expected[lang] = sorted(zip(pairs["func_name"], pairs["query"], pairs["code"], strict=True))
    (folder / "node_modules" / "left-pad").mkdir(parents=True)
    (folder / "node_modules" / "left-pad" / "index.ts").write_bytes((folder / "typescript" / "src" / "tiny-invariant.ts").read_bytes())
    (folder / "README.md").write_text("# a polyglot checkout\n")
    bad = folder / "bad"  # files that do not fit: counted and skipped, never raised
    bad.mkdir()
    (bad / "Blob.java").write_bytes(b"/** Returns a. */\npublic int a() {\x00 return 1; }\n")
    (bad / "latin.rb").write_bytes("# Returns the caf\xe9 name.\ndef cafe\n  1\nend\n".encode("latin-1"))
    (bad / "huge.js").write_text("// filler\n" * 120_000)
    (bad / "broken.go").write_text("package bad\n\n// Broken is not Go.\nfunc Broken( {\n")

    df, stats = mine_corpus_source(f"dir:{folder}", data_dir=tmp_path / "data", progress=False)
    assert set(df["language"]) == {"python", "go", "php", "typescript"}
    for lang, want in expected.items():
        got = df[df["language"] == lang]
        assert want and got["path"].str.startswith(f"{lang}/").all()
        assert sorted(zip(got["func_name"], got["query"], got["code"], strict=True)) == want, lang
    assert (df.loc[df["language"] == "python", "python_version"] != "").all()
    assert (df.loc[df["language"] != "python", "python_version"] == "").all()
    f = stats["filters"]
    assert f["path:tests"] >= 2 and f["path:vendored"] == 1 and f["path:build_copy"] >= 1 and f["path:declaration"] >= 1
    assert f["path:other_language"] >= 1  # README.md, package.json, ...
    assert f["file:binary"] == 1 and f["file:not_utf8"] == 1 and f["file:too_large"] == 1
    assert not df["path"].str.startswith("bad/").any()
    assert stats["languages"] == {k: int((df["language"] == k).sum()) for k in sorted(set(df["language"]))}

    go_only, go_stats = mine_corpus_source(f"dir:{folder}#languages=go", data_dir=tmp_path / "data", progress=False)
    assert set(go_only["language"]) == {"go"} and len(go_only) == len(expected["go"])
    assert go_stats["filters"]["path:language_not_chosen"] > 0
    with pytest.raises(ParameterError, match=r"unknown language\(s\) \['cobol'\]; known: \['python', 'go'"):
        mine_corpus_source(f"dir:{folder}#languages=go,cobol", data_dir=tmp_path / "data", progress=False)
    with pytest.raises(ParameterError, match="after '#' a folder takes 'languages="):
        mine_corpus_source(f"dir:{folder}#lang=go", data_dir=tmp_path / "data", progress=False)

    corpus = build_corpus(f"dir:{folder}#languages=go,php,python", data_dir=tmp_path / "data", progress=False)
    mine = corpus[corpus["split"] != "ood"]
    assert set(mine["language"]) == {"python", "go", "php"} and set(mine["split"]) >= {"train"}


@pytest.mark.parametrize("content, message", [
    ('{"query": "a b c", "code": "def f(): pass"}\n{"query": "x y z", "code": \n', r"line 2: not JSON"),
    ('{"query": "a b c", "code": "def f(): pass"}\n{"query": "x y z"}\n', r"line 2: missing field code"),
    ('{"query": ["ok", 3], "code": "def f(): pass"}\n', r"line 1, field 'query': expected a string or a list"),
    ('{"id": "a", "query": "q one two", "code": "def f():\\n    return 1\\n"}\n'
     '{"id": "a", "query": "q three four", "code": "def g():\\n    return 2\\n"}\n', r"line 2: id 'a' repeats line 1"),
])
def test_a_bad_pair_file_names_the_file_line_and_field(tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(PairFileError, match=message) as info:
        build_corpus(str(path), data_dir=tmp_path / "data", progress=False)
    assert str(path) in str(info.value)


def test_bad_paths_and_kinds_get_a_clear_error(tmp_path):
    (tmp_path / "pairs.txt").write_text("query\tcode\n")
    with pytest.raises(PairFileError, match="unknown pair file type"):
        build_corpus(str(tmp_path / "pairs.txt"), data_dir=tmp_path / "data", progress=False)
    with pytest.raises(ParameterError, match="neither a named spec"):
        named_spec(str(tmp_path / "missing.jsonl"))
    with pytest.raises(ParameterError, match="column mapping 'question'"):
        named_spec(f"{tmp_path / 'pairs.txt'}#question")
    (tmp_path / "gz.jsonl.gz").write_text("not gzip")
    with pytest.raises(PairFileError, match="cannot be read as gzip-compressed"):
        build_corpus(str(tmp_path / "gz.jsonl.gz"), data_dir=tmp_path / "data", progress=False)


def test_strip_docstring_keeps_code_that_has_none_or_does_not_parse():
    code = 'def f(x):\n    """Twice x.\n\n    Longer.\n    """\n    return 2 * x\n'
    assert strip_docstring(code) == "def f(x):\n    return 2 * x\n"
    assert strip_docstring('def g():\n    """Only a docstring."""\n') == "def g():\n    pass\n"
    assert strip_docstring("def h(:\n    pass") == "def h(:\n    pass"
    assert strip_docstring("def k():\n    return 1\n") == "def k():\n    return 1\n"


def test_corpus_from_the_command_line_with_a_csv(mined, tmp_path, capsys, monkeypatch):
    path = tmp_path / "pairs.csv"
    mined.rename(columns={"query": "summary", "code": "source_code"})[["summary", "source_code"]].to_csv(path, index=False)
    monkeypatch.setenv("WORKBENCH_DATA", str(tmp_path / "data"))
    assert main(["corpus", "--from", str(path), "--query-column", "summary", "--code-column", "source_code"]) == 0
    out = capsys.readouterr().out
    assert f"--set corpus={path}#query=summary,code=source_code" in out and "train" in out


def _write_advtest(path: Path, df: pd.DataFrame) -> Path:
    """CodeXGLUE AdvTest's ``test.jsonl`` layout (url, idx, docstring_tokens, function_tokens, function)."""
    with open(path, "w", encoding="utf-8") as fh:
        for i, r in enumerate(df.itertuples()):
            fh.write(json.dumps({"url": f"https://github.com/python/cpython#adv{i}", "idx": i,
                                 "docstring_tokens": r.query.split(), "function": r.code,
                                 "function_tokens": r.code.split()}) + "\n")
    return path


def test_users_test_sets_join_every_comparison(mined, tmp_path):
    from workbench import experiment
    from workbench.config import resolve

    adv = _write_advtest(tmp_path / "test.jsonl", mined.iloc[:60])
    params = resolve("smoke", {"test_sets": f"advtest=advtest:{adv},cosqa_full=cosqa:dev", "suite_queries": 40,
                               "suite_pool": 50})
    tasks = experiment.user_tasks(params)
    assert list(tasks) == ["advtest", "cosqa_full"]
    assert len(tasks["advtest"].queries) == 40 and len(tasks["advtest"].corpus) == 50  # sized as the OOD sets
    assert len(tasks["cosqa_full"].queries) == 40 and len(tasks["cosqa_full"].corpus) == 50
    for bad, message in (("advtest", "expected NAME=LOADER:LOCATION"), ("x=nope:y", "expected NAME=LOADER"),
                         ("x=xlcost:/data", "needs a language"), ("cosqa_dev=cosqa:dev", "already name a test set"),
                         (f"a=advtest:{tmp_path / 'missing.jsonl'}", "missing.jsonl")):
        p = resolve("smoke", {"test_sets": bad})
        with pytest.raises(Exception, match=message):
            experiment.comparison_tasks({}, p) if bad.startswith("cosqa_dev") else experiment.user_tasks(p)


@pytest.mark.slow
def test_the_quickstart_runs_on_a_users_corpus_and_test_set(mined, tmp_path):
    """Chapter 00 on the smoke preset with ``--set corpus=<a CodeSearchNet file>`` and an AdvTest-layout
    test set: it trains and scores on the user's pairs, and reports the user's test set too."""
    path = _write_jsonl_gz(tmp_path / "python_train_0.jsonl.gz", _csn_rows(mined))
    adv = _write_advtest(tmp_path / "test.jsonl", mine_stdlib_pairs(("email/message.py", "email/utils.py"), 40))
    runs = tmp_path / "runs"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WORKBENCH_RUNS": str(runs)}
    proc = subprocess.run([sys.executable, "-m", "workbench", "run", "--preset", "smoke", "--notebooks", "00",
                           "--set", f"corpus={path}", "--set", f"test_sets=advtest=advtest:{adv}", "--quiet"],
                          capture_output=True, text=True, env=env, timeout=1200)
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    (run,) = list(runs.iterdir())
    m = json.loads((run / "metrics.json").read_text())["00_quickstart"]
    assert "id_test MRR (zero-shot -> fine-tuned)" in m["headline"] and "advtest MRR (zero-shot -> fine-tuned)" in m["headline"]
    assert str(path) in (run / "params.yaml").read_text()

    # what the run wrote opens with `datasets`: its tables with load_dataset("parquet"), the corpus's
    # Arrow copy with Dataset.from_file, each with the rows pandas reads
    import datasets

    corpus = corpus_dir(named_spec(str(path)))
    tables = [*run.rglob("*.parquet"), corpus / "pairs.parquet"]
    assert len(tables) >= 3 and any(t.name == "dynamics.parquet" for t in tables)
    for table in tables:
        ds = datasets.load_dataset("parquet", data_files=str(table), split="train", cache_dir=str(tmp_path / "hf"))
        assert ds.num_rows == len(pd.read_parquet(table)) and ds.column_names == list(pd.read_parquet(table).columns)
    assert datasets.Dataset.from_file(str(corpus / "pairs.arrow"))["id"] == pd.read_parquet(corpus / "pairs.parquet")["id"].tolist()


def test_cosqas_judged_non_matches_are_left_out(tmp_path):
    """CoSQA's own file (``cosqa-dev.json``: ``doc`` / ``code`` / ``label``): label-0 rows are not pairs."""
    from workbench.paths import cosqa_dir

    rows = json.loads((cosqa_dir() / "cosqa-dev.json").read_text())
    df = build_corpus(str(cosqa_dir() / "cosqa-dev.json"), data_dir=tmp_path / "data", progress=False)
    spec = named_spec(str(cosqa_dir() / "cosqa-dev.json"))
    filters = json.loads((corpus_dir(spec, tmp_path / "data") / "stats.json").read_text())["sources"][
        spec.in_distribution[0]]["filters"]
    assert filters["row:label_0"] == sum(int(r["label"]) == 0 for r in rows) > 0
    assert filters["row:read"] == len(rows) and 0 < len(df[df["split"] != "ood"]) <= filters["row:read"] - filters["row:label_0"]


def test_relative_paths_are_found_under_the_data_folder(mined, tmp_path, monkeypatch):
    """Notebooks run in ``notebooks/``: a relative path is looked up in the current folder, the
    project's root and the data folder, so ``own/...`` under the data folder is found from anywhere."""
    monkeypatch.setenv("WORKBENCH_DATA", str(tmp_path / "data"))
    own = tmp_path / "data" / "own"
    own.mkdir(parents=True)
    path = _write_jsonl_gz(own / "train.jsonl.gz", _csn_rows(mined.iloc[:50]))
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert named_spec("own/train.jsonl.gz").in_distribution == (f"pairs:{path}",)


def test_the_papers_protocol_preset_reads_the_users_files(mined, tmp_path, monkeypatch):
    """The ``protocol`` preset (the Select then MixUp paper's protocol): CodeSearchNet's Python train
    split as the corpus, CoSQA test, AdvTest test and XLCoST's Python test as test sets, each read from
    where the README says to put it (``data/own/...``), in the release layouts."""
    from workbench import experiment
    from workbench.config import resolve
    from workbench.paths import cosqa_dir

    monkeypatch.setenv("WORKBENCH_DATA", str(tmp_path / "data"))
    own = tmp_path / "data" / "own"
    params = resolve("protocol")
    with pytest.raises(ParameterError, match="own/codesearchnet/python/train.jsonl"):
        named_spec(params.corpus)
    (own / "codesearchnet" / "python").mkdir(parents=True)
    with open(own / "codesearchnet" / "python" / "train.jsonl", "w") as fh:  # GraphCodeBERT's filtered train.jsonl
        fh.writelines(json.dumps(r) + "\n" for r in _csn_rows(mined))
    (own / "cosqa").mkdir()
    shutil.copy(cosqa_dir() / "code_idx_map.txt", own / "cosqa")
    shutil.copy(cosqa_dir() / "cosqa-retrieval-dev-500.json", own / "cosqa" / "cosqa-retrieval-test-500.json")
    (own / "advtest").mkdir()
    _write_advtest(own / "advtest" / "test.jsonl", mine_stdlib_pairs(("email/message.py",), 30))
    (own / "xlcost" / "python").mkdir(parents=True)
    with open(own / "xlcost" / "python" / "test.jsonl", "w") as fh:
        for i, r in enumerate(mine_stdlib_pairs(("email/utils.py",), 12).itertuples()):
            fh.write(json.dumps({"url": f"{i}-Python-1", "docstring_tokens": r.query.split(),
                                 "code_tokens": r.code.split()}) + "\n")
    spec = named_spec(params.corpus)
    assert spec.in_distribution == (f"pairs:{own / 'codesearchnet' / 'python' / 'train.jsonl'}",)
    tasks = experiment.user_tasks(params)
    assert {n: len(t.queries) for n, t in tasks.items()} == {"cosqa_test": 500, "advtest": 30, "xlcost": 12}
