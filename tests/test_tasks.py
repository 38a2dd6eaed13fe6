"""RetrievalTask and loaders: the real CoSQA files, each published format as small files, malformed input."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from workbench import paths
from workbench.errors import InputFormatError, WorkbenchError
from workbench.tasks import (
    MissingDataError,
    RetrievalTask,
    TaskError,
    load_advtest,
    load_beir,
    load_cosqa,
    load_cosqa_pairs,
    load_csn,
    load_task,
    load_xlcost,
    read_json,
    read_json_records,
    read_jsonl,
    task_from_pairs,
)

COSQA = paths.cosqa_dir()
needs_cosqa = pytest.mark.skipif(
    not (COSQA / "cosqa-retrieval-dev-500.json").is_file(), reason=f"CoSQA files not found in {COSQA}"
)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------- CoSQA


@pytest.fixture(scope="module")
def cosqa_dev() -> RetrievalTask:
    if not (COSQA / "cosqa-retrieval-dev-500.json").is_file():
        pytest.skip(f"CoSQA files not found in {COSQA}")
    return load_cosqa()


def test_cosqa_dev_counts_and_golds(cosqa_dev: RetrievalTask) -> None:
    t = cosqa_dev
    assert t.name == "cosqa-dev"
    assert len(t.queries) == 500
    assert len(t.corpus) == 6267
    assert set(t.corpus) == {str(i) for i in range(6267)}
    assert len(t.qrels) == 500
    for qid, rels in t.qrels.items():
        assert qid in t.queries
        assert len(rels) == 1 and all(c in t.corpus and g == 1 for c, g in rels.items())
    assert t.summary()["n_relevant"] == 500
    assert "queries=500" in repr(t) and "corpus=6267" in repr(t)


def test_cosqa_known_first_item(cosqa_dev: RetrievalTask) -> None:
    qid = next(iter(cosqa_dev.queries))
    assert qid == "cosqa-train-8333"
    assert cosqa_dev.queries[qid] == "python check if a variable is iterable"
    assert cosqa_dev.qrels[qid] == {"1640": 1}
    # the corpus text is the code_idx_map key verbatim
    pool = json.loads((COSQA / "code_idx_map.txt").read_text(encoding="utf-8"))
    code_1640 = next(code for code, i in pool.items() if i == 1640)
    assert cosqa_dev.corpus["1640"] == code_1640
    assert code_1640.startswith("def is_iterable_but_not_string(obj):")


@needs_cosqa
def test_cosqa_pairs() -> None:
    df = load_cosqa_pairs()
    assert list(df.columns) == ["idx", "query", "code", "label"]
    assert len(df) == 604
    assert df["label"].value_counts().to_dict() == {1: 313, 0: 291}
    assert df["idx"].is_unique
    assert df.loc[0, "idx"] == "cosqa-dev-0"
    assert df.loc[0, "query"] == "python check relation is symmetric"


@needs_cosqa
def test_load_task_dispatch_cosqa() -> None:
    t = load_task("cosqa", split="dev")
    assert len(t.queries) == 500


def test_load_task_unknown_lists_names() -> None:
    with pytest.raises(WorkbenchError, match="advtest, beir, cosqa, csn, xlcost"):
        load_task("nope")
    with pytest.raises(WorkbenchError, match="splt"):
        load_task("cosqa", splt="dev")


def make_cosqa(folder: Path, items: list[dict], pool: dict[str, int]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "code_idx_map.txt").write_text(json.dumps(pool, indent=1), encoding="utf-8")
    (folder / "cosqa-retrieval-dev-500.json").write_text(json.dumps(items, indent=1), encoding="utf-8")
    return folder


POOL = {"def a():\n    return 1": 0, "def b():\n    return 2": 1}


def test_cosqa_small_and_missing_test_split(tmp_path: Path) -> None:
    d = make_cosqa(tmp_path, [{"idx": "q0", "doc": "return one", "retrieval_idx": 0}], POOL)
    t = load_cosqa(d)
    assert t.corpus == {"0": "def a():\n    return 1", "1": "def b():\n    return 2"}
    assert t.qrels == {"q0": {"0": 1}}
    with pytest.raises(MissingDataError) as e:
        load_cosqa(d, split="test")
    assert "cosqa-retrieval-test-500.json" in str(e.value) and str(d) in str(e.value)
    assert isinstance(e.value, FileNotFoundError)


def test_cosqa_gold_absent_from_pool(tmp_path: Path) -> None:
    items = [{"idx": "q0", "doc": "one", "retrieval_idx": 0}, {"idx": "q1", "doc": "two", "retrieval_idx": 7}]
    d = make_cosqa(tmp_path, items, POOL)
    with pytest.raises(InputFormatError) as e:
        load_cosqa(d)
    msg = str(e.value)
    path = d / "cosqa-retrieval-dev-500.json"
    # indent=1: item 1 starts on line 7 ('[' on 1, item 0 on lines 2-6)
    assert f"{path}:7" in msg and "retrieval_idx" in msg and "item 1" in msg and "7 is not in the pool" in msg
    assert e.value.line == 7 and e.value.field == "retrieval_idx"


def test_cosqa_wrong_types_and_missing_fields(tmp_path: Path) -> None:
    d = make_cosqa(tmp_path, [{"idx": "q0", "doc": "one", "retrieval_idx": "0"}], POOL)
    with pytest.raises(InputFormatError, match="field 'retrieval_idx': expected an integer, got str"):
        load_cosqa(d)
    d = make_cosqa(tmp_path, [{"idx": "q0", "retrieval_idx": 0}], POOL)
    with pytest.raises(InputFormatError, match=r"field 'doc': missing \(present: idx, retrieval_idx\)"):
        load_cosqa(d)
    d = make_cosqa(tmp_path, [{"idx": "q0", "doc": "  ", "retrieval_idx": 0}], POOL)
    with pytest.raises(InputFormatError, match="field 'doc': empty text"):
        load_cosqa(d)


def test_cosqa_duplicate_query_ids_and_pool_indices(tmp_path: Path) -> None:
    items = [{"idx": "q0", "doc": "one", "retrieval_idx": 0}, {"idx": "q0", "doc": "two", "retrieval_idx": 1}]
    d = make_cosqa(tmp_path, items, POOL)
    with pytest.raises(InputFormatError, match=r":7: field 'idx': duplicate id 'q0' \(first on line 2\)"):
        load_cosqa(d)
    d = make_cosqa(tmp_path, items[:1], {"def a(): pass": 0, "def b(): pass": 0})
    with pytest.raises(InputFormatError, match=r"code_idx_map.txt:3: duplicate index 0 \(first on line 2\)"):
        load_cosqa(d)
    # the same code text twice in the JSON object: caught, not silently overwritten
    (d / "code_idx_map.txt").write_text('{\n "def a(): pass": 0,\n "def a(): pass": 1\n}\n', encoding="utf-8")
    with pytest.raises(InputFormatError, match=r"code_idx_map.txt:3: duplicate key"):
        load_cosqa(d)


def test_cosqa_truncated_json(tmp_path: Path) -> None:
    d = make_cosqa(tmp_path, [{"idx": "q0", "doc": "one", "retrieval_idx": 0}], POOL)
    f = d / "cosqa-retrieval-dev-500.json"
    f.write_text(f.read_text(encoding="utf-8")[:-12], encoding="utf-8")
    with pytest.raises(InputFormatError, match=rf"{f}:\d+: .*truncated"):
        load_cosqa(d)


def test_cosqa_empty_pool(tmp_path: Path) -> None:
    d = make_cosqa(tmp_path, [{"idx": "q0", "doc": "one", "retrieval_idx": 0}], {})
    with pytest.raises(InputFormatError, match="empty pool"):
        load_cosqa(d)


# ------------------------------------------------------------------------------------ JSON readers


def test_read_jsonl_malformed_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text('{"a": 1}\n{"a": 2}\n{"a": 3,\n{"a": 4}\n', encoding="utf-8")
    with pytest.raises(InputFormatError) as e:
        read_jsonl(path)
    assert f"{path}:3" in str(e.value) and "invalid JSON" in str(e.value)
    assert e.value.line == 3


def test_read_jsonl_lines_blank_lines_and_non_objects(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text('{"a": 1}\n\n{"a": "x\\u2028y"}\r\n', encoding="utf-8")
    assert read_jsonl(path) == [(1, {"a": 1}), (3, {"a": "x\u2028y"})]
    path.write_text('{"a": 1}\n[1, 2]\n', encoding="utf-8")
    with pytest.raises(InputFormatError, match=rf"{path}:2: expected a JSON object, found list"):
        read_jsonl(path)
    path.write_text('{"a": 1, "a": 2}\n', encoding="utf-8")
    with pytest.raises(InputFormatError, match=rf"{path}:1: duplicate key 'a'"):
        read_jsonl(path)


def test_non_utf8_bytes_named_with_line(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"a": "ok"}\n{"a": "caf\xe9"}\n')
    with pytest.raises(InputFormatError, match=rf"{path}:2: not valid UTF-8 \(byte 0xe9"):
        read_jsonl(path)
    path = tmp_path / "x.json"
    path.write_bytes(b'[\n {"a": "ok"},\n {"a": "\xff"}\n]')
    with pytest.raises(InputFormatError, match=rf"{path}:3: not valid UTF-8"):
        read_json(path)


def test_read_json_records_lines_and_shapes(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text(json.dumps([{"a": 1}, {"b": [1, 2]}], indent=2), encoding="utf-8")
    assert read_json_records(path) == [(2, {"a": 1}), (5, {"b": [1, 2]})]
    assert read_json(path) == [{"a": 1}, {"b": [1, 2]}]
    path.write_text('{"a": 1}', encoding="utf-8")
    with pytest.raises(InputFormatError, match="expected a JSON list of objects"):
        read_json_records(path)
    path.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(InputFormatError, match="item 0 is a int"):
        read_json_records(path)
    path.write_text('[{"a": 1}] extra', encoding="utf-8")
    with pytest.raises(InputFormatError, match="extra data"):
        read_json(path)
    path.write_text("", encoding="utf-8")
    with pytest.raises(InputFormatError, match="empty file"):
        read_json(path)
    with pytest.raises(MissingDataError):
        read_json(tmp_path / "absent.json")


# ------------------------------------------------------------------------ CodeSearchNet (GraphCodeBERT)


def csn_row(url: str, doc: list[str], code: list[str], original: str) -> dict:
    return {
        "repo": "o/r",
        "path": "m.py",
        "func_name": "f",
        "original_string": original,
        "language": "python",
        "code": original,
        "code_tokens": code,
        "docstring": " ".join(doc),
        "docstring_tokens": doc,
        "sha": "0" * 40,
        "url": url,
        "partition": "test",
    }


def make_csn(root: Path) -> Path:
    base = root / "python"
    rows = [
        csn_row(
            "u1",
            ["Add", "two", "numbers", "."],
            ["def", "add", "(", "a", ",", "b", ")", ":"],
            "def add(a, b):",
        ),
        csn_row("u2", ["Read", "a", "file"], ["def", "read", "(", "p", ")", ":"], "def read(p):"),
        csn_row("u3", ["Unused"], ["def", "other", "(", ")", ":"], "def other():"),
    ]
    write_jsonl(base / "codebase.jsonl", rows)
    write_jsonl(base / "test.jsonl", rows[:2])
    return root


def test_load_csn(tmp_path: Path) -> None:
    t = load_csn(make_csn(tmp_path), "python")
    assert t.name == "csn-python"
    assert t.queries == {"u1": "Add two numbers .", "u2": "Read a file"}
    assert t.corpus["u1"] == "def add ( a , b ) :" and len(t.corpus) == 3
    assert t.qrels == {"u1": {"u1": 1}, "u2": {"u2": 1}}
    t2 = load_task("csn", data_dir=tmp_path, language="python", code_field="original_string")
    assert t2.corpus["u2"] == "def read(p):"


def test_csn_query_without_code_and_missing_files(tmp_path: Path) -> None:
    make_csn(tmp_path)
    write_jsonl(
        tmp_path / "python" / "test.jsonl",
        [csn_row("u1", ["a"], ["b"], "c"), csn_row("u9", ["Lost"], ["x"], "x")],
    )
    with pytest.raises(InputFormatError, match=r"test.jsonl:2: field 'url': url 'u9' has no code"):
        load_csn(tmp_path, "python")
    with pytest.raises(MissingDataError, match="java/test.jsonl"):
        load_csn(tmp_path, "java")


def test_csn_empty_codebase(tmp_path: Path) -> None:
    make_csn(tmp_path)
    (tmp_path / "python" / "codebase.jsonl").write_text("\n", encoding="utf-8")
    with pytest.raises(InputFormatError, match="codebase.jsonl: no records"):
        load_csn(tmp_path, "python")


def test_csn_duplicate_urls_and_bad_tokens(tmp_path: Path) -> None:
    make_csn(tmp_path)
    rows = [csn_row("u1", ["a"], ["b"], "c"), csn_row("u1", ["a"], ["b"], "c")]
    write_jsonl(tmp_path / "python" / "codebase.jsonl", rows)
    with pytest.raises(
        InputFormatError, match=r"codebase.jsonl:2: field 'url': duplicate id 'u1' \(first on line 1\)"
    ):
        load_csn(tmp_path, "python")
    rows = [csn_row("u1", ["a"], ["b", 3], "c")]
    write_jsonl(tmp_path / "python" / "codebase.jsonl", rows)
    with pytest.raises(
        InputFormatError, match=r"codebase.jsonl:1: field 'code_tokens': token list holds a int"
    ):
        load_csn(tmp_path, "python")


# -------------------------------------------------------------------------------------------- AdvTest


def adv_row(
    idx: int, url: str, doc: list[str], tokens: list[str], function: str, key: str = "function_tokens"
) -> dict:
    return {
        "url": url,
        "idx": idx,
        "docstring_tokens": doc,
        key: tokens,
        "function": function,
        "func_name": "func",
        "original_string": function,
    }


def test_load_advtest(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "dataset" / "test.jsonl",
        [
            adv_row(
                0,
                "https://g/a#L1",
                ["Return", "the", "sum"],
                ["def", "func", "(", "arg_0", ")"],
                "def func(arg_0):",
            ),
            adv_row(1, "https://g/b#L9", ["Open", "it"], ["def", "func", "(", ")"], "def func():"),
        ],
    )
    t = load_advtest(path)
    assert t.queries == {"https://g/a#L1": "Return the sum", "https://g/b#L9": "Open it"}
    assert t.corpus == {"0": "def func ( arg_0 )", "1": "def func ( )"}
    assert t.qrels == {"https://g/a#L1": {"0": 1}, "https://g/b#L9": {"1": 1}}
    assert load_advtest(tmp_path / "dataset", code_field="function").corpus["0"] == "def func(arg_0):"
    # the code_tokens spelling works too
    path = write_jsonl(tmp_path / "t2.jsonl", [adv_row(5, "u", ["q", "x"], ["c"], "c", key="code_tokens")])
    assert load_task("advtest", path=path).corpus == {"5": "c"}


def test_advtest_missing_field(tmp_path: Path) -> None:
    row = adv_row(0, "u0", ["q"], ["c"], "c")
    bad = dict(adv_row(1, "u1", ["q"], ["c"], "c"))
    del bad["docstring_tokens"]
    path = write_jsonl(tmp_path / "test.jsonl", [row, row | {"url": "u2", "idx": 2}, bad])
    with pytest.raises(InputFormatError) as e:
        load_advtest(path)
    assert f"{path}:3" in str(e.value) and "field 'docstring_tokens': missing" in str(e.value)


# --------------------------------------------------------------------------------------------- XLCoST


def xl_row(url: str, doc: list[str], code: list[str]) -> dict:
    return {"idx": url, "url": url, "docstring_tokens": doc, "code_tokens": code}


def test_load_xlcost_both_layouts_and_collapse(tmp_path: Path) -> None:
    rows = [
        xl_row("9359-C++-3", ["Function", "to", "sort"], ["void", "sort", "(", ")", "{", "}"]),
        xl_row("9359-C++-4", ["Driver", "code"], ["int", "main", "(", ")", "{", "}"]),
        xl_row("7120-C++-2", ["Driver", "program"], ["int", "main", "(", ")", "{", "}"]),
    ]
    write_jsonl(tmp_path / "C++" / "test.jsonl", rows)
    t = load_xlcost(tmp_path, "C++")
    assert t.name == "xlcost-C++-test"
    assert len(t.queries) == 3 and len(t.corpus) == 2
    assert t.corpus == {"9359-C++-3": "void sort ( ) { }", "9359-C++-4": "int main ( ) { }"}
    assert t.qrels["7120-C++-2"] == {"9359-C++-4": 1}
    assert t.meta["n_collapsed"] == 1
    flat = tmp_path / "flat"
    write_jsonl(flat / "valid.jsonl", rows[:1])
    assert load_task("xlcost", data_dir=flat, language="C++", split="valid").qrels == {
        "9359-C++-3": {"9359-C++-3": 1}
    }
    with pytest.raises(MissingDataError, match="tried"):
        load_xlcost(tmp_path, "Java")
    # the release names its snippet-level dev split val.jsonl: asked for valid, it is found
    release = tmp_path / "release"
    write_jsonl(release / "C++" / "val.jsonl", rows[1:2])
    for split in ("valid", "val", "dev"):
        assert load_xlcost(release, "C++", split=split).queries == {"9359-C++-4": "Driver code"}


# ----------------------------------------------------------------------------------------------- BEIR


def make_beir(folder: Path, qrels: str) -> Path:
    write_jsonl(
        folder / "corpus.jsonl",
        [
            {"_id": "d1", "title": "sort.py", "text": "def sort(x): return sorted(x)"},
            {"_id": "d2", "title": "", "text": "def rev(x): return x[::-1]"},
            {"_id": 3, "text": "def first(x): return x[0]"},
        ],
    )
    write_jsonl(
        folder / "queries.jsonl",
        [
            {"_id": "q1", "text": "sort a list"},
            {"_id": "q2", "text": "reverse"},
            {"_id": "q3", "text": "unjudged"},
        ],
    )
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    (folder / "qrels" / "test.tsv").write_text(qrels, encoding="utf-8")
    return folder


def test_load_beir(tmp_path: Path) -> None:
    f = make_beir(
        tmp_path / "mini", "query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\t3\t1\nq2\td2\t1\nq2\td1\t0\n"
    )
    t = load_task("beir", folder=f)
    assert t.name == "beir-mini-test"
    assert t.corpus == {
        "d1": "sort.py\ndef sort(x): return sorted(x)",
        "d2": "def rev(x): return x[::-1]",
        "3": "def first(x): return x[0]",
    }
    assert t.queries == {"q1": "sort a list", "q2": "reverse"}  # q3 has no qrels: dropped
    assert t.qrels == {"q1": {"d1": 2, "3": 1}, "q2": {"d2": 1}}  # the score-0 row is ignored
    assert t.meta["n_queries_without_qrels"] == 1


def test_beir_bad_qrels(tmp_path: Path) -> None:
    f = make_beir(tmp_path / "a", "q1\td1\tone\n")  # neither the header nor a judgement
    with pytest.raises(InputFormatError, match=r"test.tsv:1: expected the header"):
        load_beir(f)
    f = make_beir(tmp_path / "b", "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\tzz\t1\n")
    with pytest.raises(InputFormatError, match=r"test.tsv:3: field 'corpus-id': corpus id 'zz' is not in"):
        load_beir(f)
    f = make_beir(tmp_path / "c", "query-id\tcorpus-id\tscore\nq1\td1\thigh\n")
    with pytest.raises(InputFormatError, match=r"test.tsv:2: field 'score': expected an integer"):
        load_beir(f)
    f = make_beir(tmp_path / "d", "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td1\t1\n")
    with pytest.raises(InputFormatError, match=r"test.tsv:3: duplicate judgement"):
        load_beir(f)
    with pytest.raises(MissingDataError, match="qrels/dev.tsv"):
        load_beir(f, split="dev")


# ------------------------------------------------------------------------------ pairs and validation


def test_task_from_pairs_collapses_identical_code() -> None:
    df = pd.DataFrame(
        {
            "id": ["a", "b", "c"],
            "query": ["x one", "y two", "z three"],
            "code": ["def f(): pass", "def g(): pass", "def f(): pass"],
            "split": ["test"] * 3,
        }
    )
    t = task_from_pairs(df, "mined-test")
    assert list(t.corpus) == ["a", "b"]
    assert t.qrels == {"a": {"a": 1}, "b": {"b": 1}, "c": {"a": 1}}
    with pytest.raises(TaskError, match="duplicate id 'a'"):
        task_from_pairs(pd.concat([df, df.iloc[:1]]), "dup")
    with pytest.raises(TaskError, match="missing column"):
        task_from_pairs(df.drop(columns="code"), "nocode")


def test_validate_errors_name_task_and_id() -> None:
    ok = dict(queries={"q": "find"}, corpus={"c": "def f(): pass"}, qrels={"q": {"c": 1}})
    RetrievalTask("ok", **ok).validate()
    with pytest.raises(TaskError, match="task 't': qrels query id 'zz' is not in queries"):
        RetrievalTask("t", ok["queries"], ok["corpus"], {"zz": {"c": 1}}).validate()
    with pytest.raises(TaskError, match="name corpus id 'nope'"):
        RetrievalTask("t", ok["queries"], ok["corpus"], {"q": {"nope": 1}}).validate()
    with pytest.raises(TaskError, match="empty corpus"):
        RetrievalTask("t", ok["queries"], {}, {}).validate()
    with pytest.raises(TaskError, match="no queries"):
        RetrievalTask("t", {}, ok["corpus"], {}).validate()
    with pytest.raises(TaskError, match="corpus id 'c' has empty"):
        RetrievalTask("t", ok["queries"], {"c": " "}, ok["qrels"]).validate()
    with pytest.raises(TaskError, match="expected an int >= 0"):
        RetrievalTask("t", ok["queries"], ok["corpus"], {"q": {"c": 1.5}}).validate()


def test_subset_is_seeded_and_keeps_corpus(cosqa_dev: RetrievalTask) -> None:
    a, b = cosqa_dev.subset(50, seed=3), cosqa_dev.subset(50, seed=3)
    assert list(a.queries) == list(b.queries) and len(a.queries) == 50
    assert set(a.qrels) == set(a.queries)
    assert a.corpus == cosqa_dev.corpus
    assert list(a.queries) != list(cosqa_dev.subset(50, seed=4).queries)
    order = list(cosqa_dev.queries)
    assert [order.index(q) for q in a.queries] == sorted(order.index(q) for q in a.queries)
    assert a.meta["subset"] == {"n_queries": 50, "seed": 3, "of": 500}
    assert len(cosqa_dev.subset(10_000).queries) == 500


def test_beir_as_its_own_loader_reads_it(tmp_path: Path) -> None:
    """Published BEIR folders hold documents with empty text and title (BEIR's loader keeps them) and
    qrels without a header line: both load, skipped or read with a count and a note."""
    f = make_beir(tmp_path / "a", "q1\td1\t1\nq2\td2\t1\n")  # no header: the first line is data
    t = load_beir(f)
    assert t.qrels == {"q1": {"d1": 1}, "q2": {"d2": 1}} and t.meta["qrels_header"] is False
    assert any("no header line" in n for n in t.summary()["notes"])
    with open(f / "corpus.jsonl", "a") as fh:
        fh.write(json.dumps({"_id": "empty", "title": "", "text": ""}) + "\n")
        fh.write(json.dumps({"_id": "blank", "title": "  ", "text": None}) + "\n")
    (f / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\tempty\t1\nq2\td2\t1\n")
    t = load_beir(f)
    assert "empty" not in t.corpus and "blank" not in t.corpus and t.qrels == {"q1": {"d1": 1}, "q2": {"d2": 1}}
    assert t.meta["n_empty_documents_skipped"] == 2 and t.meta["n_judgements_of_skipped_documents"] == 1
    assert t.meta["qrels_header"] is True
    assert any("2 document(s)" in n and "1 judgement(s)" in n for n in t.summary()["notes"])
