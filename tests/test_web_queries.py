"""Web-style query rewrites (workbench.augment.web_queries): the requests (worked examples as turns,
temperature 0.7, the code in the prompt), validation with fixed word bounds, rejections counted by
reason, determinism through the on-disk cache, and one run of the real SmolLM2 in-process."""

from __future__ import annotations

import pandas as pd
import pytest

from workbench.augment.prompts import PARAPHRASE, build_query_requests
from workbench.augment.rewrites import query_reject_reason, rejection_counts
from workbench.augment.web_queries import (
    WEB_CODE_CHARS,
    WEB_QUERY,
    WEB_QUERY_BOUNDS,
    WEB_QUERY_EXAMPLES,
    sample_pairs,
    web_query_pairs,
    web_query_requests,
)
from workbench.errors import ParameterError
from workbench.llm import CachedLLM

LONG_CODE = "def parse_rows(path):\n" + "".join(f"    row_{i} = read_line(path, {i})\n" for i in range(80)) + \
    "    return rows"
PAIRS = pd.DataFrame({
    "id": ["p1", "p2", "p3"],
    "query": ["Read a CSV file into a list of dictionaries, one per row.", "Reverse the order of characters in a string.",
              "Parse every row of a file."],
    "code": ["def read_rows(path):\n    with open(path) as f:\n        return list(csv.DictReader(f))",
             "def reverse(s):\n    return s[::-1]", LONG_CODE],
    "source": ["stdlib", "stdlib", "pandas"],
    "split": ["train"] * 3,
})


def test_requests_show_the_examples_as_turns_and_the_code():
    reqs = web_query_requests(PAIRS, seed=7)
    assert len(reqs) == 3 and {r.n_expected for r in reqs} == {1} and {r.technique for r in reqs} == {WEB_QUERY}
    msgs = reqs[0].messages
    assert [m["role"] for m in msgs] == ["system"] + ["user", "assistant"] * len(WEB_QUERY_EXAMPLES) + ["user"]
    assert len(WEB_QUERY_EXAMPLES) == 2
    assert "web search engine" in msgs[0]["content"] and "lowercase" in msgs[0]["content"]
    for k, ex in enumerate(WEB_QUERY_EXAMPLES):
        assert ex.code in msgs[1 + 2 * k]["content"] and ex.query in msgs[1 + 2 * k]["content"]
        assert msgs[2 + 2 * k]["content"] == ex.rewrite and ex.rewrite.startswith("python ")
    last = msgs[-1]["content"]
    assert PAIRS["query"][0] in last and PAIRS["code"][0] in last and last.endswith("Web search query:")
    assert reqs[1].messages[:-1] == msgs[:-1]  # one shared prefix (llama.cpp reuses its evaluation)
    assert {r.sampling.temperature for r in reqs} == {0.7} and reqs[0].sampling.stop == ("\n",)
    assert len({r.sampling.seed for r in reqs}) == 3 and web_query_requests(PAIRS, seed=7) == reqs
    paraphrase = build_query_requests(PAIRS, n=1, seed=7)
    assert paraphrase[0].technique == PARAPHRASE and paraphrase[0].sampling.seed != reqs[0].sampling.seed
    # a long function is cut at a line end in the prompt
    shown = reqs[2].messages[-1]["content"]
    assert LONG_CODE not in shown and "    # ...\n```" in shown and len(shown) < WEB_CODE_CHARS + 200
    assert LONG_CODE in web_query_requests(PAIRS, code_chars=None)[2].messages[-1]["content"]


def test_web_queries_are_validated_with_fixed_bounds():
    doc = PAIRS["query"][0]  # 12 words: the docstring-relative bounds would reject a 4-word query
    assert query_reject_reason("python read csv file", doc) == "too_short"

    def reason(text, accepted=()):
        return query_reject_reason(text, doc, accepted, bounds=WEB_QUERY_BOUNDS)

    assert WEB_QUERY_BOUNDS == (2, 12)
    assert reason("python read csv file") is None
    assert reason("python read csv") is None and reason("csv") == "too_short"
    assert reason(" ".join(["python", "read", "csv", "file"] * 5)) == "too_long"  # 20 words
    assert reason("csv.DictReader(open(path))") == "not_a_query"
    assert reason("```python\nlist(csv.DictReader(f))\n```") == "not_a_query"
    assert reason("read a csv file into a list of dictionaries one per row") == "same_as_original"
    assert reason("Python read CSV file!", ["python read csv file"]) == "duplicate"
    assert reason("   ") == "empty"


class ScriptedBackend:
    """A deterministic chat backend: answers by the docstring in the last user turn, counts its calls."""

    ANSWERS = {"Read a CSV": "python read csv file into dict",
               "Reverse the": "s[::-1]",
               "Parse every": " ".join(["python parse rows"] * 7)}

    def __init__(self) -> None:
        self.calls = 0

    def describe(self) -> dict:
        return {"kind": "scripted", "model": "test"}

    def chat(self, messages, sampling) -> str:
        self.calls += 1
        last = messages[-1]["content"]
        return next(a for k, a in self.ANSWERS.items() if k in last)


def test_pairs_log_counts_and_the_cache(tmp_path):
    backend = ScriptedBackend()
    llm = CachedLLM(backend, tmp_path)
    out, log = web_query_pairs(llm, PAIRS, n=None, seed=3, show_progress=False)
    assert list(out.columns) == [*PAIRS.columns, "aug_of", "aug_kind", "aug_op"]
    assert len(out) == 1 and out.loc[0, "query"] == "python read csv file into dict"
    row = out.iloc[0]
    assert row["aug_of"] == "p1" and row["code"] == PAIRS["code"][0] and row["source"] == "stdlib"
    assert row["aug_op"] == WEB_QUERY and row["aug_kind"] == "llm_query"
    assert len(row["id"]) == 16 and row["id"] not in set(PAIRS["id"])
    assert log.set_index("aug_of")["reason"].fillna("accepted").to_dict() == {"p1": "accepted", "p2": "not_a_query", "p3": "too_long"}
    counts = rejection_counts(log).iloc[0]
    assert counts[["candidates", "accepted", "rejected", "not_a_query", "too_long"]].tolist() == [3, 1, 2, 1, 1]
    # a re-run is answered from the cache: same frames, no new call
    again, log2 = web_query_pairs(llm, PAIRS, n=None, seed=3, show_progress=False)
    assert backend.calls == 3 and llm.stats()["hits"] == 3
    pd.testing.assert_frame_equal(out, again)
    pd.testing.assert_frame_equal(log, log2)
    # n pairs drawn reproducibly; another seed asks other requests
    assert sample_pairs(PAIRS, 2, 0).equals(sample_pairs(PAIRS, 2, 0)) and len(sample_pairs(PAIRS, 2, 0)) == 2
    assert sample_pairs(PAIRS, 10, 0).equals(PAIRS)
    part, part_log = web_query_pairs(llm, PAIRS, n=2, seed=4, show_progress=False)
    assert len(part_log) == 2 and backend.calls == 5
    with pytest.raises(ParameterError, match="n=0"):
        web_query_pairs(llm, PAIRS, n=0)


@pytest.mark.slow
def test_real_small_model_in_process(tmp_path):
    from stdlib_pairs import mine_stdlib_pairs

    from workbench.llm import make_backend

    pairs = mine_stdlib_pairs(["textwrap.py", "shlex.py", "fnmatch.py"], 4).assign(source="stdlib", split="train")
    backend = make_backend("local", "smollm2-135m", n_ctx=2048, n_threads=2)
    try:
        llm = CachedLLM(backend, tmp_path)
        out, log = web_query_pairs(llm, pairs, n=None, seed=0, show_progress=False)
        assert list(out.columns) == [*pairs.columns, "aug_of", "aug_kind", "aug_op"]
        assert len(log) == 4 and llm.stats()["misses"] == 4
        counts = rejection_counts(log)
        assert counts["candidates"].sum() == 4 == counts["accepted"].sum() + counts["rejected"].sum()
        assert counts["accepted"].sum() == len(out) and log["reason"].notna().sum() == counts["rejected"].sum()
        by_id = pairs.set_index("id")
        for _, row in out.iterrows():
            assert row["code"] == by_id.loc[row["aug_of"], "code"]
            assert WEB_QUERY_BOUNDS[0] <= len(row["query"].split()) <= WEB_QUERY_BOUNDS[1]
        again, log2 = web_query_pairs(llm, pairs, n=None, seed=0, show_progress=False)
        pd.testing.assert_frame_equal(out, again)
        assert log2.equals(log) and llm.stats()["hits"] == 4
    finally:
        backend.close()
