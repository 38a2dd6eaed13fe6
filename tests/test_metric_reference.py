"""Our retrieval metrics against trec_eval (``pytrec_eval``), the reference BEIR and MTEB build on,
query by query: on the real CoSQA dev benchmark (one relevant code per query) and on a BEIR-layout
task with several relevant codes per query and graded judgements, where definitions differ most.

Embeddings are a TF-IDF + SVD projection of the real texts with a tiny random jitter (no tied scores:
trec_eval breaks ties by document id, our search by corpus row). Where a definition differs, the test
shows exactly how: nDCG@10 uses gains ``2**grade - 1`` (trec_eval: ``grade``), so with graded qrels it
equals trec_eval run on qrels whose grades are mapped to ``2**grade - 1``; with binary qrels it is equal
as is. MRR@1000 is trec_eval's ``recip_rank`` over a 1000-deep run, recall@k its ``recall_k`` (over all
relevant items), MAP its ``map`` (the same while a query's relevant set fits in the top 1000).
"""

from __future__ import annotations

import json
import sysconfig
from pathlib import Path

import numpy as np
import pytest

from workbench.corpus import mine_source
from workbench.evaluation import ranking_table
from workbench.tasks import load_beir, load_cosqa

pytrec_eval = pytest.importorskip("pytrec_eval")

MEASURES = {"recip_rank", "recall.1,5,10", "ndcg_cut.10", "map"}
OURS = {"rr": "recip_rank", "recall@1": "recall_1", "recall@5": "recall_5", "recall@10": "recall_10",
        "ndcg@10": "ndcg_cut_10", "ap": "map"}
K = 1000


def embed(task, dims: int = 128, seed: int = 0):
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    qids, cids = task.judged_queries(), list(task.corpus)
    texts = [task.queries[q] for q in qids] + [task.corpus[c] for c in cids]
    x = TfidfVectorizer(sublinear_tf=True, token_pattern=r"[A-Za-z_][A-Za-z0-9_]+").fit_transform(texts)
    z = TruncatedSVD(min(dims, x.shape[1] - 1), random_state=seed).fit_transform(x)
    z = z + np.random.default_rng(seed).normal(scale=1e-4, size=z.shape)  # no exact ties
    z = (z / np.linalg.norm(z, axis=1, keepdims=True)).astype(np.float32)
    return qids, cids, z[: len(qids)], z[len(qids):]


def trec(task, qids, cids, q, c, gain=lambda g: g) -> dict[str, dict[str, float]]:
    scores = q.astype(np.float64) @ c.astype(np.float64).T
    run = {}
    for i, qid in enumerate(qids):
        top = np.argsort(-scores[i], kind="stable")[:K]
        run[qid] = {cids[j]: float(scores[i, j]) for j in top}
    qrels = {qid: {cid: int(gain(g)) for cid, g in task.qrels[qid].items() if g > 0} for qid in qids}
    return pytrec_eval.RelevanceEvaluator(qrels, MEASURES).evaluate(run)


def compare(table, ref, metrics=OURS) -> None:
    for ours, theirs in metrics.items():
        a = table.set_index("qid")[ours]
        b = np.array([ref[qid][theirs] for qid in a.index])
        np.testing.assert_allclose(a.to_numpy(), b, rtol=0, atol=1e-9, err_msg=f"{ours} vs trec_eval {theirs}")


def test_cosqa_dev_metrics_equal_trec_eval():
    task = load_cosqa(split="dev")
    qids, cids, q, c = embed(task)
    table = ranking_table(task, q, c, qids, cids, k=K)
    assert len(table) == 500 and 0 < (table["rank"] == 1).mean() < 1 and (table["rank"] > 10).any()
    compare(table, trec(task, qids, cids, q, c))


def graded_beir_folder(folder: Path) -> Path:
    """Real stdlib functions in the BEIR layout: each query (a docstring) has its own function at grade
    2 and every other mined function of the same file at grade 1."""
    root = Path(sysconfig.get_paths()["stdlib"])
    corpus, queries, qrels = [], [], ["query-id\tcorpus-id\tscore"]
    for name in ("textwrap.py", "shlex.py", "fnmatch.py", "bisect.py", "colorsys.py", "calendar.py", "glob.py"):
        kept, _ = mine_source((root / name).read_bytes(), name)
        ids = [f"{name}:{f.func_name}" for f in kept]
        corpus += [{"_id": i, "title": "", "text": f.code} for i, f in zip(ids, kept, strict=True)]
        for i, f in zip(ids, kept, strict=True):
            queries.append({"_id": f"q-{i}", "text": f.query})
            qrels += [f"q-{i}\t{j}\t{2 if j == i else 1}" for j in ids]
    folder.mkdir(parents=True)
    (folder / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in corpus))
    (folder / "queries.jsonl").write_text("".join(json.dumps(r) + "\n" for r in queries))
    (folder / "qrels").mkdir()
    (folder / "qrels" / "test.tsv").write_text("\n".join(qrels) + "\n")
    return folder


def test_graded_beir_task_with_several_relevant_codes(tmp_path):
    task = load_beir(graded_beir_folder(tmp_path / "stdlib-graded"))
    qids, cids, q, c = embed(task, dims=64)
    table = ranking_table(task, q, c, qids, cids, k=K)
    assert (table["n_relevant"] > 1).mean() > 0.9 and table["n_relevant"].max() >= 5
    linear = trec(task, qids, cids, q, c)
    compare(table, linear, {k: v for k, v in OURS.items() if k != "ndcg@10"})  # rank-based: equal as is
    # nDCG@10: our exponential gains (2**g - 1) are trec_eval's linear gains on the mapped grades ...
    compare(table, trec(task, qids, cids, q, c, gain=lambda g: 2**g - 1), {"ndcg@10": "ndcg_cut_10"})
    # ... and differ from trec_eval's own definition once grades exceed 1
    diff = table.set_index("qid")["ndcg@10"] - np.array([linear[x]["ndcg_cut_10"] for x in table["qid"]])
    assert (diff.abs() > 1e-6).mean() > 0.5
    # with binary grades the two definitions agree
    binary = load_beir(tmp_path / "stdlib-graded")
    binary.qrels = {x: dict.fromkeys(r, 1) for x, r in binary.qrels.items()}
    table = ranking_table(binary, q, c, qids, cids, k=K)
    compare(table, trec(binary, qids, cids, q, c))
