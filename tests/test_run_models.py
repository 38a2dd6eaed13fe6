"""The run registry of trained models, the embedding cache and layer-wise retrieval."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from stdlib_pairs import mine_stdlib_pairs

from workbench.embeddings import embed_task, task_pairs
from workbench.errors import WorkbenchError
from workbench.evaluation import evaluate
from workbench.layerwise import first_layer_reaching, layerwise_retrieval
from workbench.retrieval import embed_texts
from workbench.run_models import NoTrainedModelsError, default_pair, pick, require_trained, trained_models
from workbench.tasks import task_from_pairs


def _model(run, rel: str, n_pairs: int = 100, summary: dict | None = None, finished: bool = True) -> None:
    """A model folder as the trainer leaves it (only the files the registry reads)."""
    folder = run / "models" / rel
    (folder / "model").mkdir(parents=True)
    if finished:
        (folder / "model" / "workbench_encoder.json").write_text(json.dumps({"base_model": "minilm"}))
    (folder / "train_config.json").write_text(json.dumps({"n_pairs": n_pairs, "seconds": 12.5, "completed": finished}))
    if summary:
        (folder / "eval-abc").mkdir()
        pd.DataFrame({"task": list(summary), "MRR": list(summary.values())}).to_parquet(folder / "eval-abc" / "summary.parquet")


def test_registry_lists_finished_models_of_every_chapter(tmp_path):
    run = tmp_path / "run"
    _model(run, "select/ambiguous_hard-mixup-seed42", summary={"id_test": 80.0, "stdlib": 70.0, "web": 60.0})
    _model(run, "select/all-seed42", summary={"id_test": 82.0, "stdlib": 71.0, "web": 62.0})
    _model(run, "select/all-seed43")
    _model(run, "cornstack/curriculum")
    _model(run, "quickstart")
    _model(run, "datamap", finished=False)  # interrupted: not listed
    _model(run, "select/.all-seed44.tmp")  # a temporary folder: not listed
    m = trained_models(run)
    assert m["name"].tolist() == ["zero-shot", "quickstart", "cornstack/curriculum", "select/all-seed42",
                                  "select/all-seed43", "select/ambiguous_hard-mixup-seed42"]
    assert m["chapter"].tolist() == ["pre-trained", "00_quickstart", "01_data_curation", *["04_training"] * 3]
    labels = dict(zip(m["name"], m["label"]))
    assert labels["select/ambiguous_hard-mixup-seed42"] == "ambiguous+hard + MixUp"
    assert labels["select/all-seed42"] == "all (seed 42)" and labels["select/all-seed43"] == "all (seed 43)"
    assert labels["cornstack/curriculum"] == "CoRNStack: curriculum"
    row = pick(m, "select/all-seed42")
    assert row["OOD avg"] == pytest.approx(66.5) and row["id_test"] == 82.0 and row["train_pairs"] == 100
    assert pick(m, "ambiguous+hard + MixUp")["name"] == "select/ambiguous_hard-mixup-seed42"  # by label
    with pytest.raises(WorkbenchError, match="no model named 'nope'.*choose one of"):
        pick(m, "nope")
    assert default_pair(m) == ("select/all-seed42", "select/ambiguous_hard-mixup-seed42")
    assert default_pair(m, seed=43) == ("zero-shot", "select/all-seed42")  # best OOD average otherwise


def test_an_empty_run_says_what_to_run_first(tmp_path):
    m = trained_models(tmp_path / "empty")
    assert m["name"].tolist() == ["zero-shot"]
    with pytest.raises(NoTrainedModelsError, match=r"no trained model in .*empty/models.*--notebooks 04 --run-dir"):
        require_trained(m, tmp_path / "empty", "05_representation_analysis")


@pytest.fixture(scope="module")
def small_task():
    pairs = mine_stdlib_pairs(("textwrap.py", "shlex.py", "fnmatch.py", "heapq.py", "base64.py", "calendar.py"), 40)
    return task_from_pairs(pairs, "stdlib_small")


class _Counting:
    """The real encoder, counting how many texts it is asked to encode."""

    def __init__(self, encoder):
        self.encoder, self.texts = encoder, 0

    def __getattr__(self, name):  # name, max_len, state_dict, ...: the real encoder's
        return getattr(self.encoder, name)

    def encode(self, texts, **kw):
        self.texts += len(texts)
        return self.encoder.encode(texts, **kw)


def test_embeddings_are_cached_per_text_list(minilm, small_task, tmp_path):
    enc = _Counting(minilm)
    first = embed_task(enc, small_task, tmp_path, show_progress=False)
    n = enc.texts
    assert n == len(small_task.queries) + len(small_task.corpus)
    again = embed_task(enc, small_task, tmp_path, show_progress=False)
    assert enc.texts == n  # nothing re-encoded
    assert np.array_equal(first.queries, again.queries) and np.array_equal(first.corpus, again.corpus)
    # other texts, or bf16, are other cache entries
    embed_texts(enc, ["another query"], "query", tmp_path)
    assert enc.texts == n + 1
    qids, q, c = task_pairs(small_task, 10, seed=0)
    assert len(qids) == 10 and q == [small_task.queries[i] for i in qids]
    assert c == [small_task.corpus[next(iter(small_task.qrels[i]))] for i in qids]
    assert task_pairs(small_task, 10, seed=0) == (qids, q, c)
    gold = first.gold_rows()
    assert [first.cids[g] for g in gold] == [next(iter(small_task.qrels[q])) for q in first.qids]


def test_last_layer_reproduces_the_models_score(minilm, small_task, tmp_path):
    table = layerwise_retrieval(minilm, {"s": small_task}, cache_dir=tmp_path, show_progress=False)
    n_layers = minilm.model.config.num_hidden_layers
    assert table["layer"].tolist() == list(range(n_layers + 1))
    full = evaluate(minilm, small_task, n_boot=0, show_progress=False).metrics["mrr"]
    assert table["MRR"].iloc[-1] == pytest.approx(round(full, 2), abs=0.01)
    assert (table["MRR"] > 0).all()
    cached = layerwise_retrieval(minilm, {"s": small_task}, cache_dir=tmp_path, show_progress=False)
    pd.testing.assert_frame_equal(table, cached)
    first = first_layer_reaching(table.assign(model="minilm"), 0.9)
    row = first.loc[("minilm", "s")]
    assert row["last_layer"] == n_layers and row["its_MRR"] >= 0.9 * row["last_MRR"]
    earlier = table[table["layer"] < row["first_layer"]]
    assert (earlier["MRR"] < 0.9 * row["last_MRR"]).all()
