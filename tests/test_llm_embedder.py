"""workbench.llm.embedder: a generative LLM (the real SmolLM2-135M GGUF, in llama.cpp) as a zero-shot
bi-encoder behind the workbench's Encoder contract."""

from __future__ import annotations

import numpy as np
import pytest
from stdlib_pairs import mine_stdlib_pairs

from workbench.errors import ModelNotFoundError, ParameterError
from workbench.evaluation import evaluate
from workbench.llm import LLMEmbedder
from workbench.tasks import task_from_pairs

pytestmark = pytest.mark.slow

CODE = "def add(a, b):\n    '''Add two numbers.'''\n    return a + b"
QUERY = "add two numbers"


@pytest.fixture(scope="module")
def embedder():
    emb = LLMEmbedder("smollm2-135m", max_query_tokens=32, max_code_tokens=48, n_threads=2)
    yield emb
    emb.close()


def test_rows_are_unit_norm_float32_in_input_order(embedder):
    texts = [CODE, "import os\nprint(os.getcwd())", "", "x = 1"]
    out = embedder.encode(texts, kind="code", batch_size=2, show_progress=False)
    assert out.dtype == np.float32 and out.shape == (4, embedder.dim) and embedder.dim == 576
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert np.abs(out[0] - out[1]).max() > 1e-3  # different texts, different vectors
    assert "smollm2-135m" in embedder.name and embedder.describe()["pooling"] == "mean"


def test_deterministic_and_independent_of_the_batch(embedder):
    alone = embedder.encode([CODE], kind="code", show_progress=False)[0]
    again = embedder.encode([CODE], kind="code", show_progress=False)[0]
    among = embedder.encode(["def f():\n    pass", CODE, "y = [i for i in range(9)]"], kind="code",
                            batch_size=3, show_progress=True)[1]
    assert np.array_equal(alone, again) and np.array_equal(alone, among)
    q = embedder.encode([QUERY], kind="query", show_progress=False)[0]
    assert np.array_equal(q, embedder.encode(["other query", QUERY], kind="query", batch_size=1,
                                             show_progress=False)[1])


def test_long_texts_are_cut_to_the_token_limit_of_their_kind(embedder):
    head = "def long_function(x):\n" + "".join(f"    x = x + {i}\n" for i in range(40))
    one, two = head + "    return 'a'\n" * 3000, head + "    raise ValueError('b')\n" * 3000  # ~40k chars
    assert len(embedder.tokens(one, "code")) == 48 and len(embedder.tokens(one, "query")) == 32
    assert one.startswith(embedder.truncated(one, "code")) and len(embedder.truncated(one, "code")) < 300
    a, b = embedder.encode([one, two], kind="code", show_progress=False)
    assert np.array_equal(a, b)  # they differ only after the first 48 tokens
    np.testing.assert_allclose(np.linalg.norm(a), 1.0, atol=1e-5)
    short = embedder.encode([head[:40], head[:60]], kind="code", show_progress=False)
    assert not np.array_equal(short[0], short[1])


def test_prompt_prefix_comes_first_and_changes_the_vector(embedder):
    prefixed = LLMEmbedder("smollm2-135m", max_query_tokens=32, max_code_tokens=48, n_threads=2,
                           query_prefix="Search query: ")
    try:
        plain = embedder.tokens(QUERY, "query")
        tokens = prefixed.tokens(QUERY, "query")
        assert tokens[-len(plain):] == plain and len(tokens) > len(plain)
        assert prefixed.tokens(CODE, "code") == embedder.tokens(CODE, "code")  # no code prefix
        q0 = embedder.encode([QUERY], kind="query", show_progress=False)[0]
        q1 = prefixed.encode([QUERY], kind="query", show_progress=False)[0]
        assert not np.allclose(q0, q1) and prefixed.describe()["query_prefix"] == "Search query: "
    finally:
        prefixed.close()


def test_bad_arguments_are_named(embedder):
    with pytest.raises(ParameterError, match="kind"):
        embedder.encode(["x"], kind="doc")
    with pytest.raises(ParameterError, match="max_code_tokens"):
        LLMEmbedder("smollm2-135m", max_code_tokens=0)
    with pytest.raises(ModelNotFoundError):
        LLMEmbedder("no-such-llm")


def test_evaluate_scores_it_on_a_real_task(embedder):
    pairs = mine_stdlib_pairs(["textwrap.py", "shlex.py", "fnmatch.py", "glob.py", "heapq.py"], 30)
    task = task_from_pairs(pairs, "stdlib_tiny")
    res = evaluate(embedder, task, k=1000, batch_size=8, n_boot=50, show_progress=False)
    assert len(res.per_query) == len(task.queries) == 30 and res.meta["dim"] == embedder.dim
    assert 0.0 <= res.metrics["mrr"] <= 100.0 and res.model == embedder.name
    # no floor on the MRR: how weak zero-shot LLM embeddings are is what tools/llm_retriever.py measures
    assert set(res.per_query["rank"]) <= set(range(0, len(task.corpus) + 1))
