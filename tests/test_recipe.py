"""The baseline recipe's levers: in-batch false-negative masking, WiSE-FT weight interpolation, the
validation sets choices are made on, and the recipe applied by ``experiment.train_and_evaluate``
(real MiniLM, real stdlib pairs, the real CoSQA files)."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from stdlib_pairs import mine_stdlib_pairs

from workbench import experiment, validation
from workbench.config import resolve
from workbench.errors import ParameterError
from workbench.models.interpolation import interpolate, interpolate_state, soup, soup_state
from workbench.runtime import set_threads
from workbench.tasks import load_cosqa, load_cosqa_pairs, task_from_pairs
from workbench.training import TrainConfig, train
from workbench.training.losses import duplicate_mask, info_nce


@pytest.fixture(scope="module")
def pairs():
    return mine_stdlib_pairs(("textwrap.py", "shlex.py", "string.py", "fnmatch.py", "glob.py", "bisect.py",
                              "heapq.py", "calendar.py", "base64.py", "tokenize.py", "posixpath.py", "genericpath.py", "colorsys.py"), 96)[["id", "query", "code"]]


@pytest.fixture()
def encoder(minilm):
    set_threads(2)
    return copy.deepcopy(minilm)


# ----------------------------------------------------------------------------- duplicate masking
def test_duplicate_mask_marks_copies_of_the_gold_and_identical_queries():
    m = duplicate_mask(["a", "b", "a"], ["x", "x", "y"], ["x", "z"])
    # row 0 (a, x): column 1 is a copy of x, column 2 answers the same query, negative 0 is x
    # row 1 (b, x): column 0 is a copy of x, negative 0 is x
    # row 2 (a, y): column 0 answers the same query a
    assert m.tolist() == [[False, True, True, True, False],
                          [True, False, False, True, False],
                          [True, False, False, False, False]]
    assert not duplicate_mask(["a", "b"], ["x", "y"]).any()
    with pytest.raises(ParameterError, match="2 queries but 1 codes"):
        duplicate_mask(["a", "b"], ["x"])


def test_masked_columns_leave_the_softmax_and_get_no_gradient():
    torch.manual_seed(0)
    q = torch.nn.functional.normalize(torch.randn(3, 8), dim=-1)
    c = torch.nn.functional.normalize(torch.randn(3, 8), dim=-1).requires_grad_(True)
    ignore = torch.tensor([[False, True, False], [False, False, False], [False, False, False]])
    loss, logits = info_nce(q, c, temperature=0.1, ignore=ignore, reduction="none")
    # row 0 by hand: the softmax over columns 0 and 2 only
    s = (q[0] @ c.detach().T) / 0.1
    expected = -(s[0] - torch.logsumexp(s[[0, 2]], dim=0))
    assert float(loss[0].detach()) == pytest.approx(float(expected), rel=1e-5)
    assert torch.isinf(logits[0, 1]) and logits[0, 1] < 0
    loss[0].backward()
    assert torch.all(c.grad[1] == 0) and c.grad[0].abs().sum() > 0
    with pytest.raises(ParameterError, match="boolean mask of shape"):
        info_nce(q, c.detach(), ignore=torch.zeros(3, 2, dtype=torch.bool))


def test_training_with_masked_duplicates_differs_only_when_a_batch_repeats_a_text(encoder, pairs, tmp_path):
    base = dict(epochs=2, batch_size=8, lr=1e-4, warmup_ratio=0.0, seed=3)
    windows = [pairs.iloc[i:i + 8] for i in range(0, len(pairs) - 7, 8)]
    # real stdlib duplicates: bisect.insort_left / insort_right (and bisect_left / bisect_right) share a docstring
    dup = next(w for w in windows if w["query"].duplicated().any())
    clean = next(w for w in windows if not w["query"].duplicated().any() and not w["code"].duplicated().any())
    a = train(copy.deepcopy(encoder), dup, TrainConfig(**base), tmp_path / "plain", show_progress=False)
    b = train(copy.deepcopy(encoder), dup, TrainConfig(**base, mask_duplicates=True), tmp_path / "masked",
              show_progress=False)
    assert b.history["loss"].iloc[0] < a.history["loss"].iloc[0] - 1e-3  # the false negatives left the softmax
    assert json.loads((tmp_path / "masked" / "train_config.json").read_text())["config"]["mask_duplicates"] is True
    # without a repeated code or query the mask is empty: the same losses as the plain run
    c = train(copy.deepcopy(encoder), clean, TrainConfig(**base), tmp_path / "c1", show_progress=False)
    d = train(copy.deepcopy(encoder), clean, TrainConfig(**base, mask_duplicates=True), tmp_path / "c2",
              show_progress=False)
    assert c.history["loss"].tolist() == pytest.approx(d.history["loss"].tolist(), rel=1e-5)
    with pytest.raises(ParameterError, match="mask_duplicates"):
        TrainConfig(mask_duplicates="yes")


# ----------------------------------------------------------------------------- WiSE-FT
def test_wise_interpolation_endpoints_and_midpoint(encoder, pairs, tmp_path):
    pre = copy.deepcopy(encoder)
    train(encoder, pairs.iloc[:24], TrainConfig(epochs=1, batch_size=8, lr=3e-4, warmup_ratio=0.0, seed=1),
          tmp_path / "ft", show_progress=False)
    texts = pairs["query"].tolist()[:6]
    e_pre = pre.encode(texts, "query", show_progress=False)
    e_ft = encoder.encode(texts, "query", show_progress=False)
    assert not np.allclose(e_pre, e_ft, atol=1e-3)  # the fine-tune moved the embeddings
    np.testing.assert_allclose(interpolate(pre, encoder, 0.0).encode(texts, "query", show_progress=False), e_pre, atol=1e-5)
    np.testing.assert_allclose(interpolate(pre, encoder, 1.0).encode(texts, "query", show_progress=False), e_ft, atol=1e-5)
    half = interpolate(pre, encoder, 0.5)
    w0, w1 = pre.model.state_dict(), encoder.model.state_dict()
    name = next(k for k, v in w1.items() if v.is_floating_point() and not torch.equal(v, w0[k]))
    torch.testing.assert_close(half.model.state_dict()[name], (w0[name] + w1[name]) / 2)
    # the inputs are unchanged
    np.testing.assert_allclose(encoder.encode(texts, "query", show_progress=False), e_ft, atol=1e-6)
    with pytest.raises(ParameterError, match="alpha must be a number in"):
        interpolate(pre, encoder, 1.5)
    with pytest.raises(ParameterError, match="different weights"):
        interpolate_state({"a": torch.zeros(2)}, {"b": torch.zeros(2)}, 0.5)


def test_a_soup_averages_the_weights_of_several_fine_tunes(encoder, pairs, tmp_path):
    pre = copy.deepcopy(encoder)
    fts = []
    for seed in (1, 2):
        ft = copy.deepcopy(pre)
        train(ft, pairs.iloc[:24], TrainConfig(epochs=1, batch_size=8, lr=3e-4, warmup_ratio=0.0, seed=seed),
              tmp_path / f"ft{seed}", show_progress=False)
        fts.append(ft)
    texts = pairs["query"].tolist()[:6]
    # a soup of one model is that model; a soup of two is their WiSE-FT midpoint
    np.testing.assert_allclose(soup([fts[0]]).encode(texts, "query", show_progress=False),
                               fts[0].encode(texts, "query", show_progress=False), atol=1e-6)
    two = soup(fts)
    np.testing.assert_allclose(two.encode(texts, "query", show_progress=False),
                               interpolate(fts[0], fts[1], 0.5).encode(texts, "query", show_progress=False), atol=1e-5)
    w = [f.model.state_dict() for f in fts]
    name = next(k for k, v in w[0].items() if v.is_floating_point() and not torch.equal(v, w[1][k]))
    torch.testing.assert_close(two.model.state_dict()[name], (w[0][name] + w[1][name]) / 2)
    with pytest.raises(ParameterError, match="no models"):
        soup([])
    with pytest.raises(ParameterError, match="different weights from model 0"):
        soup_state([{"a": torch.zeros(2)}, {"b": torch.zeros(2)}])
    with pytest.raises(ParameterError, match="integer buffer 'i' differs"):
        soup_state([{"i": torch.tensor([1])}, {"i": torch.tensor([2])}])


# ----------------------------------------------------------------------------- validation sets
def test_cosqa_validation_is_disjoint_from_the_reported_dev_queries():
    val = validation.cosqa_validation()
    reported = {" ".join(q.lower().split()) for q in load_cosqa(split="dev").queries.values()}
    labelled = load_cosqa_pairs()
    assert len(val.queries) == 299 and len(val.corpus) == 6267 and labelled["code"].nunique() == 552
    assert len(validation.cosqa_validation(pool_size=2000).corpus) == 2000
    assert set(labelled["code"]) <= set(val.corpus.values()) <= set(load_cosqa(split="dev").corpus.values())
    assert not {" ".join(q.lower().split()) for q in val.queries.values()} & reported
    for qid, rel in val.qrels.items():  # each query's gold is the code it was labelled 1 with
        row = labelled[labelled["idx"].astype(str) == qid[1:]].iloc[0]
        assert row["label"] == 1 and val.corpus[next(iter(rel))] == row["code"]


def test_mined_validation_excludes_every_reported_pair(pairs):
    reported = task_from_pairs(pairs.iloc[:40], "id_test")
    val = validation.mined_validation(pairs, "v", [reported], max_queries=20, pool_size=50, seed=0)
    assert len(val.queries) == 20 and len(val.corpus) <= 50
    assert not set(val.queries) & set(reported.queries)
    assert not set(val.corpus.values()) & set(reported.corpus.values())
    with pytest.raises(ParameterError, match="only 0 pairs are left"):
        validation.mined_validation(pairs.iloc[:40], "v", [reported])


def test_recipe_applies_wise_and_keeps_the_fine_tune(pairs, tmp_path):
    params = resolve("smoke", {"wise_alpha": 0.5, "epochs": 1, "batch_size": 8, "max_query_len": 32,
                               "max_code_len": 64, "train_max_code_len": 64, "n_boot": 50})
    tasks = {"v": task_from_pairs(pairs.iloc[60:90], "v")}
    summary, per_query = experiment.train_and_evaluate("half", pairs.iloc[:24], tasks, params, tmp_path / "m")
    assert json.loads((tmp_path / "m" / "wise.json").read_text())["alpha"] == 0.5
    saved = experiment.load_model(tmp_path / "m" / "model", params)
    pre = experiment.fresh_encoder(params)
    fine = experiment.fresh_encoder(params)
    train(fine, pairs.iloc[:24], experiment.train_config(params), out_dir=tmp_path / "m", show_progress=False)
    texts = pairs["query"].tolist()[60:66]
    expected = interpolate(pre, fine, 0.5).encode(texts, "query", show_progress=False)
    np.testing.assert_allclose(saved.encode(texts, "query", show_progress=False), expected, atol=1e-5)
    assert summary["train_pairs"].iloc[0] == 24 and set(per_query) == {"v"}
    with pytest.raises(ParameterError, match="wise_alpha"):
        resolve("smoke", {"wise_alpha": 1.5})


def test_wise_alpha_is_chosen_by_the_worst_validation_gain(tmp_path):
    import pandas as pd

    def summary(mrr):
        return pd.DataFrame({"task": list(validation.VALIDATION_SETS), "MRR": mrr})

    # the fine-tune (1.0) gains most on average but loses 2 points on web queries; 0.5 gains everywhere
    known = {0.0: summary([60.0, 70.0, 50.0]), 0.5: summary([64.0, 72.0, 51.0]), 1.0: summary([70.0, 76.0, 48.0])}
    tasks = {n: None for n in validation.VALIDATION_SETS}
    params = resolve("smoke")
    alpha, table = validation.choose_wise_alpha(None, params, tasks, tmp_path, grid=(0.5, 1.0), known=known)
    assert alpha == 0.5
    assert table["worst gain"].tolist() == [0.0, 1.0, -2.0]
    assert table["validation mean"].tolist() == [60.0, 62.33, 64.67]
    alpha, _ = validation.choose_wise_alpha(None, params, tasks, tmp_path, grid=(0.5, 1.0), known=known, criterion="mean")
    assert alpha == 1.0
    with pytest.raises(ParameterError, match="criterion"):
        validation.choose_wise_alpha(None, params, tasks, tmp_path, known=known, criterion="best")


def test_comparison_params_score_in_the_comparison_precision_and_change_nothing_else():
    """Chapters 02 and 04-06 score every compared model under ``select_bf16_eval``; 00 and 01 under
    ``bf16_eval``; set apart here, so taking one for the other shows."""
    import dataclasses

    p = resolve("cpu", {"bf16_eval": False, "select_bf16_eval": True})
    pe = experiment.comparison_params(p)
    assert (p.bf16_eval, pe.bf16_eval) == (False, True)
    assert dataclasses.replace(pe, bf16_eval=False) == p


def test_a_scored_model_leaves_its_embeddings_where_the_analysis_chapters_read_them(pairs, tmp_path, monkeypatch):
    """``train_and_evaluate`` keeps the embeddings it scored with beside the model; loading that model
    from its folder for an analysis (``embeddings.by_model`` + ``embed_task``, as 05 and 06 do) reads
    them back without encoding a text, and they are the rows the evaluation ranked."""
    from workbench import embeddings
    from workbench.models import BiEncoder

    params = resolve("smoke", {"epochs": 1, "batch_size": 8, "max_query_len": 32, "max_code_len": 64,
                               "train_max_code_len": 64, "n_boot": 20})
    tasks = {"v": task_from_pairs(pairs.iloc[60:90], "v")}
    experiment.train_and_evaluate("m", pairs.iloc[:24], tasks, params, tmp_path / "m")
    assert len(list((tmp_path / "m" / "embeddings").glob("*.npy"))) == 2  # the queries and the pool
    assert embeddings.model_cache_dir(tmp_path / "m" / "model", "m", tmp_path / "a") == tmp_path / "m" / "embeddings"
    assert embeddings.model_cache_dir(params.model, "zero-shot", tmp_path / "a") == tmp_path / "a" / "zero-shot"

    def refuse(*args, **kwargs):
        raise AssertionError("encoded again")

    monkeypatch.setattr(BiEncoder, "encode", refuse)
    got = embeddings.by_model({"under another label": str(tmp_path / "m" / "model")},
                              lambda enc, c: embeddings.embed_task(enc, tasks["v"], c, bf16=params.bf16_eval,
                                                                   show_progress=False),
                              params, tmp_path / "a", show_progress=False)
    emb = got["under another label"]
    monkeypatch.undo()
    fresh = experiment.load_model(tmp_path / "m" / "model", params)
    np.testing.assert_array_equal(emb.corpus, fresh.encode([tasks["v"].corpus[c] for c in emb.cids], "code",
                                                           bf16=params.bf16_eval, show_progress=False))
