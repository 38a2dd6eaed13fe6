"""ChatDANCE (papers/002): prompt schema, extraction and validation of LLM rewrites, Algorithm 1 on
a hand-computed example, the statistics, and one end-to-end run against a real llama.cpp server."""

from __future__ import annotations

import dataclasses
import math
import re

import numpy as np
import pandas as pd
import pytest

from workbench.augment import stats
from workbench.augment.chatdance import ablation_sets, build_augmented, memoize_scorer, rewrite_queries
from workbench.augment.prompts import (
    ALL_TECHNIQUES,
    CODE_EXAMPLES,
    CODE_PROMPT,
    QUERY_EXAMPLES,
    QUERY_PROMPT,
    build_code_requests,
    build_query_requests,
    query_length_bounds,
)
from workbench.augment.rewrites import (
    CODE_REASONS,
    QUERY_REASONS,
    RewriteLog,
    check_code,
    example_function_names,
    extract_code_blocks,
    extract_queries,
    normalized_dump,
    query_reject_reason,
    rejection_counts,
)
from workbench.errors import ParameterError
from workbench.llm.replies import looks_like_code

# ----------------------------------------------------------------------------- prompts and requests

PAIRS = pd.DataFrame({
    "id": ["p1", "p2"],
    "query": ["Return the number of lines in a text file.", "Reverse the order of characters in a string."],
    "code": ["def count_lines(path):\n    with open(path) as f:\n        return sum(1 for _ in f)",
             "def reverse(s):\n    return s[::-1]"],
    "source": ["stdlib", "stdlib"],
})


def test_query_prompt_renders_the_five_parts_in_order():
    text = QUERY_PROMPT.render(query="Open a gzip file", count="3 rewritten queries", length=4, max_length=6)
    assert text.startswith("Given a query, your task is to reformulate the query")
    assert "You must generate 3 rewritten queries." in text
    assert "between 4 and 6 words" in text
    assert text.index("Original Query: Open a gzip file") < text.index("Rewritten Queries:")
    assert text.endswith("Rewritten Queries:")
    assert "\n\n\n" not in text  # the empty prior-knowledge part leaves no gap


def test_prompt_schema_edits_one_part_and_names_missing_fields():
    edited = dataclasses.replace(QUERY_PROMPT, prior_knowledge="Queries come from Python docstrings.")
    fields = dict(query="q", count="1 rewritten query", length=1, max_length=2)
    assert "Queries come from Python docstrings." in edited.render(**fields)
    assert "Queries come from" not in QUERY_PROMPT.render(**fields)
    with pytest.raises(dataclasses.FrozenInstanceError):
        QUERY_PROMPT.emphasis = "x"  # type: ignore[misc]
    with pytest.raises(ParameterError, match=r"task_input.*'query'"):
        QUERY_PROMPT.render(count="1", length=1, max_length=2)
    assert CODE_PROMPT.fields() == {"count", "technique", "code"}


def test_single_mode_requests_have_system_examples_and_distinct_seeds():
    reqs = build_query_requests(PAIRS, n=3, mode="single", seed=7)
    assert len(reqs) == 6 and [r.index for r in reqs] == [0, 1, 2, 0, 1, 2]
    msgs = reqs[0].messages
    assert [m["role"] for m in msgs] == ["system"] + ["user", "assistant"] * len(QUERY_EXAMPLES) + ["user"]
    assert "1 rewritten query" in msgs[0]["content"] and "between L and 1.6 L words" in msgs[0]["content"]
    # the system prompt and example turns are the same for every pair (prompt-cache friendly)
    assert reqs[3].messages[:-1] == msgs[:-1]
    assert msgs[2]["content"] == QUERY_EXAMPLES[0].rewrite
    assert msgs[-1]["content"] == "Original Query: Return the number of lines in a text file.\n\nRewritten Queries:"
    seeds = [r.sampling.seed for r in reqs]
    assert len(set(seeds)) == 6
    assert {r.sampling.temperature for r in reqs} == {0.9}
    again = build_query_requests(PAIRS, n=3, mode="single", seed=7)
    assert again == reqs  # deterministic
    # a pair's requests do not depend on the other pairs (cache entries survive a bigger subset)
    assert build_query_requests(PAIRS.iloc[1:], n=3, seed=7) == reqs[3:]
    assert build_query_requests(PAIRS, n=3, seed=8)[0].sampling.seed != seeds[0]


def test_batched_and_code_requests():
    (b1, b2) = build_query_requests(PAIRS, n=15, mode="batched")
    assert b1.n_expected == 15 and len(b1.messages) == 1 and b1.messages[0]["role"] == "user"
    assert "You must generate 15 rewritten queries." in b1.messages[0]["content"]
    assert "between 9 and 14 words" in b1.messages[0]["content"]  # L = 9, floor(1.6 L) = 14
    code = build_code_requests(PAIRS, per_technique=2, mode="single")
    assert len(code) == 2 * 5 * 2
    # technique-major order: all pairs for one technique, then the next
    assert [r.technique for r in code[:4]] == ["rename_method"] * 4
    assert [r.technique for r in code[::4]] == list(ALL_TECHNIQUES)
    sys_prompt = code[0].messages[0]["content"]
    assert "Rewriting Technique: Rename the method without changing the function names it calls" in sys_prompt
    assert code[0].messages[-1]["content"].startswith("Original Code:\n```python\ndef count_lines(path):")
    batched = build_code_requests(PAIRS, techniques=["simplify"], per_technique=3, mode="batched")
    assert len(batched) == 2 and batched[0].n_expected == 3
    assert "You must generate 3 rewritten codes." in batched[0].messages[0]["content"]
    with pytest.raises(ParameterError, match="unknown.*'inline'"):
        build_code_requests(PAIRS, techniques=["inline"])
    with pytest.raises(ParameterError, match="mode='many'"):
        build_query_requests(PAIRS, mode="many")  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match=r"missing column\(s\) \['code'\]"):
        build_query_requests(PAIRS.drop(columns="code"))


# ----------------------------------------------------------------------------- query extraction

def test_extract_queries_from_chatty_numbered_answers():
    answer = ('Sure! Here are 3 rewritten queries:\n\n1. "Count the lines of a text file"\n'
              "2) Number of lines in a text file\n3. **Get the line count of a text file**\n\n"
              "I hope this helps!")
    assert extract_queries(answer) == ["Count the lines of a text file", "Number of lines in a text file",
                                       "Get the line count of a text file"]
    single = 'Rewritten query: "Find how many lines a text file has"\nThis keeps the meaning.'
    assert extract_queries(single, single=True) == ["Find how many lines a text file has"]
    assert extract_queries("- open a gzip file\n* read a gzip file\n") == ["open a gzip file", "read a gzip file"]
    assert extract_queries("Rewritten Queries:\n\n") == []
    echo = "**Original Query**: Count lines in a file.\n\nRewritten Queries: Tally the lines of a file"
    assert extract_queries(echo) == ["Tally the lines of a file"]


def test_query_validation_reasons():
    orig = "Return the number of lines in a text file."  # L = 9 words
    assert query_length_bounds(orig) == (5, 16)  # ceil(0.5 * 9) = 5; floor(1.6 * 9) + 2 = 16
    assert query_length_bounds("Reverse a string") == (3, 6)  # never more than L: min(3, max(3, 2))
    ok = "Count how many lines a text file contains"
    assert query_reject_reason(ok, orig) is None
    assert query_reject_reason("  ", orig) == "empty"
    assert query_reject_reason("...", orig) == "empty"
    assert query_reject_reason("RETURN the number of lines in a text file", orig) == "same_as_original"
    assert query_reject_reason("Count lines", orig) == "too_short"
    long = " ".join(["count"] * 17)
    assert query_reject_reason(long, orig) == "too_long"
    assert query_reject_reason(" ".join(["count"] * 16), orig) is None
    assert query_reject_reason("count how many lines a text file contains!", orig, [ok]) == "duplicate"
    assert query_reject_reason("```python\nsum(1 for _ in open(path))\n```", orig) == "not_a_query"
    assert query_reject_reason("len(open(path).readlines())", orig) == "not_a_query"
    assert query_reject_reason("def count_lines(path): return 1", orig) == "not_a_query"
    # a code-like original may have code-like rewrites
    assert looks_like_code("np.linalg.norm(x)") and not looks_like_code("norm of a vector")
    assert query_reject_reason("numpy.linalg.norm(vector, 2)", "np.linalg.norm(x, ord=2)") is None
    assert tuple(QUERY_REASONS) == ("empty", "not_a_query", "same_as_original", "too_short", "too_long",
                                    "duplicate")


# ----------------------------------------------------------------------------- code extraction

ORIG = '''def _count_lines(path):
    with open(path) as f:
        n = 0
        for line in f:
            n += 1
    return n'''

ANSWER = '''Here are the rewritten codes:

Code 1
```python
def count_file_lines(path):
    with open(path) as f:
        n = 0
        for line in f:
            n += 1
    return n
```

Code 2
```
def _count_lines(path):
    with open(path) as handle:
        return sum(1 for _ in handle)
```

Code 3
```python
def _count_lines(path:
    return len(open(path).readlines())
```
Each version keeps the behaviour.'''


def test_extract_numbered_fenced_blocks():
    blocks = extract_code_blocks(ANSWER)
    assert len(blocks) == 3
    assert blocks[0].startswith("def count_file_lines(path):") and blocks[0].endswith("return n")
    assert blocks[1].startswith("def _count_lines(path):\n    with open(path) as handle:")
    assert extract_code_blocks(ANSWER, single=True) == blocks[:1]
    cut = "```python\ndef f(x):\n    return x +"  # max_tokens cut the answer inside the block
    assert extract_code_blocks(cut) == ["def f(x):\n    return x +"]
    bare = "Sure, here it is:\ndef f(x):\n    return x"
    assert extract_code_blocks(bare) == ["def f(x):\n    return x"]
    assert extract_code_blocks("I cannot rewrite this code.") == []


def test_code_validation_reasons():
    blocks = extract_code_blocks(ANSWER)
    first = check_code(blocks[0], ORIG)
    assert first.reason is None
    assert check_code(blocks[1], ORIG, [first.dump]).reason is None
    assert check_code(blocks[2], ORIG).reason == "syntax_error"
    # formatting-only: other indentation, a comment, redundant parentheses, blank lines
    reformatted = ("    def _count_lines(path):  # count them\n\n        with open(path) as f:\n"
                   "            n = (0)\n            for line in f:\n                n += 1\n        return (n)\n")
    assert check_code(reformatted, ORIG).reason == "same_as_original"
    assert check_code(blocks[0], ORIG, [first.dump]).reason == "duplicate"
    two = "def a(path):\n    return 1\n\ndef b(path):\n    return 2"
    assert check_code(two, ORIG).reason == "not_a_function"
    assert check_code("x = count_lines('a.txt')\nprint(x)", ORIG).reason == "not_a_function"
    with_import = "import itertools\n\ndef _count_lines(path):\n    with open(path) as f:\n        return sum(1 for _ in f)"
    chk = check_code(with_import, ORIG)
    assert chk.reason is None and chk.code.startswith("def _count_lines(path):")  # the import is dropped
    assert check_code(with_import, ORIG, keep_imports=True).code == with_import
    assert check_code("from os import path as p\n\n" + ORIG, ORIG).reason == "same_as_original"
    long = "def _count_lines(path):\n" + "    n = 0\n" * 30 + "    return n"
    assert check_code(long, ORIG).reason == "too_long"
    assert check_code("   \n", ORIG).reason == "no_code_block"
    # the few-shot example's name on the original's body (seen with Qwen2.5-Coder-0.5B)
    names = example_function_names(CODE_EXAMPLES)
    assert {"count_words", "word_frequencies", "file_sha256", "is_expired", "has_expired"} <= names
    copied = blocks[1].replace("def _count_lines(path)", "def is_expired(path)")
    assert check_code(copied, ORIG, example_names=names).reason == "copied_example"
    assert check_code(blocks[1], ORIG, example_names=names).reason is None


def test_added_docstring_is_removed_before_comparing():
    doc = '''def _count_lines(path):
    """Return the number of lines in a text file."""
    with open(path) as f:
        n = 0
        for line in f:
            n += 1
    return n'''
    assert check_code(doc, ORIG).reason == "same_as_original"
    doc2 = doc.replace("n = 0", "total = 0").replace("n += 1", "total += 1").replace("return n", "return total")
    chk = check_code(doc2, ORIG)
    assert chk.reason is None and '"""' not in chk.code and chk.code.startswith("def _count_lines(path):\n    with")
    assert normalized_dump("  x = 1\n") == normalized_dump("x=1  # c") and normalized_dump("def (") is None
    assert tuple(CODE_REASONS) == ("no_code_block", "syntax_error", "not_a_function", "copied_example",
                                   "same_as_original", "too_long", "duplicate")


def test_rewrite_log_counts_add_up():
    log = RewriteLog()
    log.add("llm_code", "simplify", "p1", 0, 0, "a", None, "x1")
    log.add("llm_code", "simplify", "p1", 1, 0, "b", "syntax_error")
    log.add("llm_code", "rename_method", "p1", 0, 0, "c", "same_as_original")
    log.add("llm_query", "paraphrase", "p2", 0, 0, "", "empty")
    counts = log.counts().set_index("aug_op")
    assert counts.loc["simplify", ["candidates", "accepted", "rejected", "syntax_error"]].tolist() == [2, 1, 1, 1]
    assert counts.loc["simplify", "acceptance"] == 0.5
    assert counts.loc["rename_method", "same_as_original"] == 1 and counts.loc["paraphrase", "empty"] == 1
    assert (counts["candidates"] == counts["accepted"] + counts["rejected"]).all()
    assert log.rejected() == {"syntax_error": 1, "same_as_original": 1, "empty": 1}
    assert rejection_counts(log.to_frame()).equals(log.counts())


# ----------------------------------------------------------------------------- Algorithm 1

def overlap_scorer(queries: list[str], codes: list[str]) -> np.ndarray:
    """|words(q) & words(c)| / |words(q)| with words = lowercase letter runs (a real, deterministic scorer)."""
    out = []
    for q, c in zip(queries, codes):
        wq, wc = set(re.findall(r"[a-z]+", q.lower())), set(re.findall(r"[a-z]+", c.lower()))
        out.append(len(wq & wc) / len(wq))
    return np.array(out)


D = pd.DataFrame({
    "id": ["p1", "p2"],
    "query": ["count lines file", "reverse a string"],
    "code": ["def count_lines(file):\n    return len(open(file).readlines())", "def reverse(s):\n    return s[::-1]"],
    "split": ["train", "train"],
})
CODE_CANDS = pd.DataFrame({
    "id": ["cc1a", "cc1b"], "aug_of": ["p1", "p1"], "query": ["count lines file"] * 2,
    # words: {def,count,lines,file,return,sum,for,in,open} -> 3/3 = 1.0; {def,f,x,return,len,open,readlines} -> 0
    "code": ["def count_lines(file):\n    return sum(1 for _ in open(file))", "def f(x):\n    return len(open(x).readlines())"],
    "aug_kind": "llm_code", "aug_op": ["same_semantics", "rename_variables"],
})
QUERY_CANDS = pd.DataFrame({
    "id": ["qc1a", "qc1b", "qc1c", "qc2a", "qc2b"], "aug_of": ["p1", "p1", "p1", "p2", "p2"],
    # scored against the ORIGINAL code: 3/6 = 0.5, 1.0, 1.0, {reverse} of {reverse,string} = 0.5, 1.0
    "query": ["count the lines of a file", "file lines count", "lines count file", "reverse string", "reverse"],
    "code": [D.code[0]] * 3 + [D.code[1]] * 2, "aug_kind": "llm_query", "aug_op": "paraphrase",
})


def test_algorithm1_hand_computed():
    d_aug, dec = build_augmented(D, QUERY_CANDS, CODE_CANDS, overlap_scorer, theta_q=0.95, theta_c=0.75, seed=0)
    assert dec.set_index("id")["score"].to_dict() == {"cc1a": 1.0, "cc1b": 0.0, "qc1a": 0.5, "qc1b": 1.0,
                                                      "qc1c": 1.0, "qc2a": 0.5, "qc2b": 1.0}
    # D first, then per pair: kept code rewrites, then kept query rewrites (Algorithm 1's loop order)
    assert d_aug["id"].tolist() == ["p1", "p2", "cc1a", "qc1b", "qc1c", "qc2b"]
    assert d_aug["aug_kind"].tolist() == ["original", "original", "llm_code", "llm_query", "llm_query", "llm_query"]
    assert d_aug.set_index("id").loc["cc1a", "query"] == "count lines file"  # (q, c_aug)
    # code_list of p1 = [c1, cc1a]; random.Random(0).choice on two items gives the 2nd, then the 2nd again
    # (CPython's Mersenne Twister: [r.choice("ab") for _ in range(2)] == ["b", "b"] for seed 0)
    assert d_aug.set_index("id").loc[["qc1b", "qc1c"], "code_from"].tolist() == ["cc1a", "cc1a"]
    assert d_aug.set_index("id").loc["qc1b", "code"] == CODE_CANDS.code[0]
    # p2 kept no code rewrite: its query rewrite is paired with the original code
    assert d_aug.set_index("id").loc["qc2b", ["code_from", "code"]].tolist() == ["p2", D.code[1]]
    assert d_aug["split"].tolist() == ["train"] * 6  # D's columns copied
    assert dec.set_index("id")["kept"].to_dict() == {"cc1a": True, "cc1b": False, "qc1a": False, "qc1b": True,
                                                     "qc1c": True, "qc2a": False, "qc2b": True}
    # seed 1: [r.choice("ab") for _ in range(2)] == ["a", "a"] -> both paired with p1's original code
    d1, _ = build_augmented(D, QUERY_CANDS, CODE_CANDS, overlap_scorer, 0.95, 0.75, seed=1)
    assert d1.set_index("id").loc[["qc1b", "qc1c"], "code_from"].tolist() == ["p1", "p1"]


def test_algorithm1_without_filter_and_thresholds():
    d_aug, dec = build_augmented(D, QUERY_CANDS, CODE_CANDS, None, filter=False, seed=0)
    assert len(d_aug) == 2 + 2 + 5 and dec["kept"].all() and dec["score"].isna().all()
    # p1's code_list = [c1, cc1a, cc1b]: every query is paired with one of them
    assert set(d_aug.set_index("id").loc[["qc1a", "qc1b", "qc1c"], "code_from"]) <= {"p1", "cc1a", "cc1b"}
    low, _ = build_augmented(D, QUERY_CANDS, CODE_CANDS, overlap_scorer, theta_q=0.5, theta_c=0.0)
    assert len(low) == 2 + 2 + 5  # thresholds are inclusive (score >= theta)
    with pytest.raises(ParameterError, match="scorer is needed"):
        build_augmented(D, QUERY_CANDS, CODE_CANDS, None)
    bad = QUERY_CANDS.assign(aug_of=["p1", "p1", "p1", "p2", "p9"])
    with pytest.raises(ParameterError, match="'p9'"):
        build_augmented(D, bad, CODE_CANDS, overlap_scorer)
    with pytest.raises(ParameterError, match=r"in \[0, 1\]"):
        build_augmented(D, QUERY_CANDS, CODE_CANDS, lambda q, c: np.full(len(q), 1.5))


def test_ablation_sets_score_each_pair_once():
    calls: list[int] = []

    def counting(q, c):
        calls.append(len(q))
        return overlap_scorer(q, c)

    sets, dec = ablation_sets(D, QUERY_CANDS, CODE_CANDS, counting, theta_q=0.95, theta_c=0.75, seed=0)
    assert sum(calls) == 7  # 2 code + 5 query candidates, scored once across the four sets
    assert sets["llm_query"]["id"].tolist() == ["p1", "p2", "qc1b", "qc1c", "qc2b"]
    assert set(sets["llm_query"]["code_from"][2:]) == {"p1", "p2"}  # no code rewrites: original code
    assert sets["llm_code"]["id"].tolist() == ["p1", "p2", "cc1a"]
    assert sets["llm_both"]["id"].tolist() == ["p1", "p2", "cc1a", "qc1b", "qc1c", "qc2b"]
    assert len(sets["llm_nofilter"]) == 9 and len(dec) == 7
    memo = memoize_scorer(overlap_scorer)
    assert memo(["a b", "a b"], ["a", "a"]).tolist() == [0.5, 0.5]


# ----------------------------------------------------------------------------- statistics

STATS_D = pd.DataFrame({"id": ["p1"], "query": ["count lines file"], "code": ["def f(x):\n    return x"]})
STATS_CANDS = pd.DataFrame({
    "id": ["q1", "q2", "c1"], "aug_of": ["p1"] * 3,
    "query": ["count lines in file", "count lines of file", "count lines file"],
    "code": ["def f(x):\n    return x"] * 2 + ["def g(x):\n    y = x\n    return y"],
    "aug_kind": ["llm_query", "llm_query", "llm_code"], "aug_op": ["paraphrase", "paraphrase", "same_semantics"],
})


def test_stats_hand_computed():
    enc = lambda texts, kind: np.array([[len(t.split()), 1.0] for t in texts])  # noqa: E731
    m = stats.candidate_metrics(STATS_CANDS, STATS_D, enc).set_index("id")
    assert m.loc["q1", "len_change"] == 1 and m.loc["q1", "diversity"] == pytest.approx(0.25)  # 1 - 3/4
    # code tokens: def f ( x ) : return x (8) -> def g ( x ) : y = x return y (11); sets 7 and 9, 6 shared
    assert m.loc["c1", "len_change"] == 3 and m.loc["c1", "lines_change"] == 1
    assert m.loc["c1", "diversity"] == pytest.approx(1 - 6 / 10)
    assert m.loc["q1", "similarity"] == pytest.approx(13 / math.sqrt(10 * 17))  # (4,1).(3,1)
    assert m.loc["c1", "similarity"] == pytest.approx(29 / math.sqrt(50 * 17))  # (7,1).(4,1)
    # distinct-2 over q1, q2: bigrams {count lines, lines in, in file} + {count lines, lines of, of file}
    assert stats.distinct_n(["count lines in file", "count lines of file"], "query") == pytest.approx(5 / 6)

    log = pd.DataFrame({"aug_kind": ["llm_query"] * 4 + ["llm_code"] * 2,
                        "aug_op": ["paraphrase"] * 4 + ["same_semantics"] * 2,
                        "reason": [None, None, "too_short", "duplicate", None, "syntax_error"]})
    dec = pd.DataFrame({"aug_kind": ["llm_query", "llm_query", "llm_code"],
                        "aug_op": ["paraphrase", "paraphrase", "same_semantics"], "kept": [True, False, False]})
    t = stats.technique_table(STATS_CANDS, STATS_D, log, dec, enc).set_index("aug_op")
    assert t.loc["paraphrase", ["candidates", "accepted", "kept"]].tolist() == [4, 2, 1]
    assert t.loc["paraphrase", "acceptance"] == 0.5 and t.loc["paraphrase", "keep_rate"] == 0.5
    assert t.loc["paraphrase", "len_ratio"] == pytest.approx(4 / 3)
    assert t.loc["paraphrase", "distinct_2"] == pytest.approx(5 / 6)
    assert t.loc["same_semantics", ["candidates", "accepted", "kept"]].tolist() == [2, 1, 0]
    assert np.isnan(t.loc["same_semantics", "distinct_2"])  # one rewrite: nothing to compare
    # without a log (e.g. QRA / NatGen candidates) candidates = accepted
    t2 = stats.technique_table(STATS_CANDS, STATS_D).set_index("aug_op")
    assert t2.loc["paraphrase", ["candidates", "accepted"]].tolist() == [2, 2] and np.isnan(t2["similarity"]).all()
    ex = stats.examples(STATS_CANDS, STATS_D, k=1)
    assert len(ex) == 2 and ex.set_index("aug_op").loc["same_semantics", "original"] == "def f(x):\n    return x"
    with pytest.raises(ParameterError, match="'p7'"):
        stats.candidate_metrics(STATS_CANDS.assign(aug_of="p7"), STATS_D)


# ----------------------------------------------------------------------------- end to end (real LLM)

@pytest.mark.slow
def test_rewrite_queries_against_a_real_server(llm_server, tmp_path):
    from stdlib_pairs import mine_stdlib_pairs

    from workbench.llm import CachedLLM, OpenAIBackend

    pairs = mine_stdlib_pairs(["textwrap.py", "shlex.py", "fnmatch.py"], 3)
    identity = {"kind": "llama_cpp_server", "model": llm_server.model_path.name}
    llm = CachedLLM(OpenAIBackend(llm_server.base_url, llm_server.model, api_key="", identity=identity), tmp_path)
    cands, log = rewrite_queries(llm, pairs, n=2, mode="single", seed=0, show_progress=False)
    assert log.requests == 6 and llm.stats()["misses"] == 6
    assert list(cands.columns[:7]) == ["id", "aug_of", "query", "code", "aug_kind", "aug_op", "raw"]
    assert "func_name" in cands.columns  # the pair's other columns are copied
    counts = log.counts()
    assert counts["candidates"].sum() == counts["accepted"].sum() + counts["rejected"].sum() >= 6
    assert counts["accepted"].sum() == len(cands)
    assert set(cands["aug_of"]) <= set(pairs["id"]) and (cands["aug_kind"] == "llm_query").all()
    by_id = pairs.set_index("id")
    for _, row in cands.iterrows():
        assert row["code"] == by_id.loc[row["aug_of"], "code"] and row["query"] in row["raw"]
        assert query_reject_reason(row["query"], by_id.loc[row["aug_of"], "query"]) is None
    again, log2 = rewrite_queries(llm, pairs, n=2, mode="single", seed=0, show_progress=False)
    pd.testing.assert_frame_equal(cands, again)
    assert log2.to_frame().equals(log.to_frame()) and log2.llm_stats["hits"] == 6 and log2.llm_stats["misses"] == 0


def test_every_preset_names_known_code_techniques():
    """The presets' ``aug_code_techniques`` are techniques the code prompt knows (a typo here used to
    fail only after the query rewrites of a cpu run)."""
    from workbench.augment.pipeline import code_techniques
    from workbench.augment.prompts import TECHNIQUES
    from workbench.config import PRESETS, resolve

    for preset in PRESETS:
        names = code_techniques(resolve(preset))
        assert names and set(names) <= set(TECHNIQUES), (preset, names)
