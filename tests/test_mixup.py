"""Representation-level MixUp (Select then MixUp step 4): the plan, the loss, both mixing points, training."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from stdlib_pairs import mine_stdlib_pairs

from workbench.errors import ParameterError
from workbench.runtime import set_threads
from workbench.training import TrainConfig, train
from workbench.training.mixup import (
    MixPlan,
    encoder_layers,
    mix_plan,
    mix_rows,
    mixup_embed,
    mixup_loss,
    mixup_targets,
)


@pytest.fixture(scope="module")
def pairs() -> pd.DataFrame:
    return mine_stdlib_pairs(
        ("textwrap.py", "shlex.py", "fnmatch.py", "bisect.py", "heapq.py", "base64.py"), 16
    )[["id", "query", "code"]]


def test_plan_draws_other_rows_and_beta_coefficients():
    plan = mix_plan(8, alpha=0.4, fraction=0.5, seed=3)
    assert len(plan) == 4 and len(set(plan.anchors)) == 4
    assert (plan.anchors != plan.partners).all() and plan.partners.max() < 8
    assert ((plan.lam > 0) & (plan.lam < 1)).all()
    again = mix_plan(8, alpha=0.4, fraction=0.5, seed=3)
    assert np.array_equal(plan.partners, again.partners) and np.array_equal(plan.lam, again.lam)
    assert len(mix_plan(8, 1.0, 0.0)) == 0 and len(mix_plan(8, 1.0, 0.01)) == 1
    # Beta(alpha, alpha) with small alpha piles up near 0 and 1; its mean is 1/2
    lam = mix_plan(4000, alpha=0.2, fraction=1.0, seed=0).lam
    assert abs(lam.mean() - 0.5) < 0.03 and ((lam < 0.1) | (lam > 0.9)).mean() > 0.5
    for bad in (dict(alpha=0), dict(alpha=float("nan")), dict(alpha=1, fraction=1.5)):
        with pytest.raises(ParameterError, match="mixup"):
            mix_plan(8, **{"fraction": 1.0, **bad})
    with pytest.raises(ParameterError, match="batch_size"):
        mix_plan(1, 1.0)


def test_mixing_and_targets_by_hand():
    h = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0]])
    plan = MixPlan(
        anchors=np.array([0, 2]), partners=np.array([1, 0]), lam=np.array([0.25, 0.5]), batch_size=3
    )
    torch.testing.assert_close(mix_rows(h, plan), torch.tensor([[0.25, 0.75], [1.5, 1.0]]))
    torch.testing.assert_close(mixup_targets(plan), torch.tensor([[0.25, 0.75, 0.0], [0.5, 0.0, 0.5]]))


def test_loss_matches_hand_computation():
    q = F.normalize(torch.tensor([[1.0, 0.2], [0.1, 1.0], [-1.0, 0.3]]), dim=-1)
    c = F.normalize(torch.tensor([[0.9, 0.1], [0.0, 1.0], [-0.8, 0.5]]), dim=-1)
    plan = MixPlan(anchors=np.array([1]), partners=np.array([2]), lam=np.array([0.7]), batch_size=3)
    qm = F.normalize(0.7 * q[1] + 0.3 * q[2], dim=-1)[None]
    cm = F.normalize(0.7 * c[1] + 0.3 * c[2], dim=-1)[None]
    tau = 0.1

    def ce(x, others):
        logits = [float(x @ o) / tau for o in others]
        lse = np.log(np.sum(np.exp(logits)))
        return -(0.7 * (logits[1] - lse) + 0.3 * (logits[2] - lse))

    expected = 0.5 * (ce(qm[0], c) + ce(cm[0], q))
    got = mixup_loss(q, c, qm, cm, plan, temperature=tau)
    assert got.item() == pytest.approx(expected, rel=1e-5)
    empty = MixPlan(np.array([], int), np.array([], int), np.array([]), 3)
    assert mixup_loss(q, c, qm[:0], cm[:0], empty).item() == 0.0


def test_pooled_mixing_interpolates_before_normalising(minilm):
    texts = ["sort a list in place", "read a file line by line", "parse json from a string", "sum of squares"]
    plan = MixPlan(
        anchors=np.array([0, 1]), partners=np.array([2, 3]), lam=np.array([1.0, 0.5]), batch_size=4
    )
    with torch.no_grad():
        emb, mixed = mixup_embed(minilm, texts, "query", plan)
        feats = minilm.tokenize(texts, "query")
        pooled = minilm.pooled_features(feats)
    torch.testing.assert_close(emb, F.normalize(pooled, dim=-1))
    torch.testing.assert_close(mixed[0], emb[0], atol=1e-6, rtol=1e-5)  # lambda = 1: the anchor itself
    torch.testing.assert_close(mixed[1], F.normalize(0.5 * pooled[1] + 0.5 * pooled[3], dim=-1))


def test_hidden_layer_mixing(minilm):
    texts = [
        "def add(a, b):\n    return a + b",
        "x",
        "def read(path):\n    with open(path) as f:\n        return f.read().splitlines()",
        "import os",
    ]
    n_blocks = len(encoder_layers(minilm.model))
    assert n_blocks == 6
    with torch.no_grad():
        alone = minilm.embed(texts, "code")
        # lambda = 1 with a shorter partner: the mixed row is exactly its anchor
        plan = MixPlan(anchors=np.array([2]), partners=np.array([1]), lam=np.array([1.0]), batch_size=4)
        emb, mixed = mixup_embed(minilm, texts, "code", plan, layer=3)
        torch.testing.assert_close(emb, alone, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(mixed[0], alone[2], atol=1e-5, rtol=1e-4)
        # a real mixture differs from both ends and from mixing the pooled vectors
        half = MixPlan(anchors=np.array([0]), partners=np.array([2]), lam=np.array([0.5]), batch_size=4)
        _, m_layer = mixup_embed(minilm, texts, "code", half, layer=2)
        _, m_pooled = mixup_embed(minilm, texts, "code", half)
    cos = lambda a, b: float(a @ b)  # noqa: E731
    assert cos(m_layer[0], alone[0]) < 0.999 and cos(m_layer[0], alone[2]) < 0.999
    assert cos(m_layer[0], m_pooled[0]) < 0.9999
    assert cos(m_layer[0], alone[0]) > 0.3 and cos(m_layer[0], alone[2]) > 0.3
    with pytest.raises(ParameterError, match=r"mixup layer.*\[1, 5\]"):
        mixup_embed(minilm, texts, "code", half, layer=6)
    # the hooks are removed afterwards: a plain forward is unchanged
    with torch.no_grad():
        torch.testing.assert_close(minilm.embed(texts, "code"), alone)


def test_training_with_mixup_runs_resumes_and_keeps_old_keys(minilm, pairs, tmp_path):
    set_threads(2)
    base = dict(epochs=1, batch_size=8, lr=1e-4, warmup_ratio=0.0, seed=7, save_every_steps=1)
    plain = train(copy.deepcopy(minilm), pairs, TrainConfig(**base), tmp_path / "plain", show_progress=False)
    assert "mixup_alpha" not in plain.meta["config"]  # runs without MixUp keep their earlier cache keys
    cfg = TrainConfig(**base, mixup_alpha=0.4, mixup_fraction=0.5, mixup_layer=2)
    enc = copy.deepcopy(minilm)
    res = train(enc, pairs, cfg, tmp_path / "mix", show_progress=False)
    assert res.meta["config"]["mixup_alpha"] == 0.4 and res.meta["key"] != plain.meta["key"]
    assert np.isfinite(res.history["loss"]).all()
    # the mixed term adds to the loss: the first step's loss is larger than without MixUp
    assert res.history["loss"].iloc[0] > plain.history["loss"].iloc[0]
    # the dynamics still score the original pairs only
    assert set(res.dynamics["pair_id"]) == set(pairs["id"])
    a = {k: v.clone() for k, v in enc.state_dict().items()}
    again = copy.deepcopy(minilm)
    train(again, pairs, cfg, tmp_path / "mix", show_progress=False)  # finished run: loaded, not retrained
    assert all(torch.equal(a[k], again.state_dict()[k]) for k in a)
    with pytest.raises(ParameterError, match="mixup_alpha"):
        TrainConfig(**base, mixup_alpha=-1.0)
    with pytest.raises(ParameterError, match="mixup_fraction"):
        TrainConfig(**base, mixup_alpha=1.0, mixup_fraction=2)


@pytest.mark.parametrize("layer", [None, 2])
def test_mixup_under_bf16_autocast(minilm, pairs, tmp_path, layer, monkeypatch):
    """The GPU preset trains in bf16: both mixing points must work under autocast (CPU autocast here)."""
    monkeypatch.setenv("WORKBENCH_BF16", "force")  # bf16 even on a CPU that is slow at it
    cfg = TrainConfig(epochs=1, batch_size=8, max_steps=1, bf16=True, mixup_alpha=0.4, mixup_layer=layer)
    res = train(copy.deepcopy(minilm), pairs, cfg, tmp_path / "bf16", show_progress=False)
    assert res.config.bf16 and res.steps == 1 and np.isfinite(res.history["loss"]).all()
