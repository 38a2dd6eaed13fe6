"""InfoNCE, the training-dynamics recorder and the trainer (real MiniLM on real stdlib pairs)."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from stdlib_pairs import mine_stdlib_pairs

from workbench.errors import ParameterError
from workbench.runtime import autocast_context, pick_device, seed_everything, set_threads
from workbench.training import (
    DYNAMICS_COLUMNS,
    DynamicsRecorder,
    TrainConfig,
    TrainingInterrupted,
    info_nce,
    train,
)
from workbench.training.dynamics import checkpoint_steps, score_logits

STDLIB_MODULES = (
    "textwrap.py",
    "shlex.py",
    "string.py",
    "fnmatch.py",
    "glob.py",
    "bisect.py",
    "heapq.py",
    "calendar.py",
    "colorsys.py",
    "posixpath.py",
    "genericpath.py",
    "base64.py",
    "tokenize.py",
)


@pytest.fixture(scope="module")
def pairs() -> pd.DataFrame:
    return mine_stdlib_pairs(STDLIB_MODULES, 16)[["id", "query", "code"]]


@pytest.fixture()
def encoder(minilm):
    """A private copy of the session's MiniLM (32 / 64 tokens): training must not change the shared one."""
    set_threads(2)
    return copy.deepcopy(minilm)


def fast_config(**kw) -> TrainConfig:
    base = dict(epochs=1, batch_size=8, lr=1e-4, warmup_ratio=0.0, seed=7)
    base.update(kw)
    return TrainConfig(**base)


# ----------------------------------------------------------------------------- pure functions
def test_info_nce_matches_hand_computation():
    q = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    c = torch.tensor([[0.8, 0.6], [0.0, 1.0]])
    tau = 0.5
    loss, logits = info_nce(q, c, temperature=tau)
    s = [[0.8, 0.0], [0.48 + 0.48, 0.8]]  # q @ c.T
    assert torch.allclose(logits, torch.tensor(s) / tau)
    l0 = -math.log(math.exp(0.8 / tau) / (math.exp(0.8 / tau) + math.exp(0.0 / tau)))
    l1 = -math.log(math.exp(0.8 / tau) / (math.exp(0.96 / tau) + math.exp(0.8 / tau)))
    assert loss.item() == pytest.approx((l0 + l1) / 2, rel=1e-6)

    # an extra negative code is appended as a column
    neg = torch.tensor([[1.0, 0.0]])
    loss2, logits2 = info_nce(q, c, temperature=tau, negatives=neg)
    assert logits2.shape == (2, 3)
    l0n = -math.log(math.exp(1.6) / (math.exp(1.6) + math.exp(0.0) + math.exp(2.0)))
    l1n = -math.log(math.exp(1.6) / (math.exp(1.92) + math.exp(1.6) + math.exp(1.2)))
    assert loss2.item() == pytest.approx((l0n + l1n) / 2, rel=1e-6)

    # one-hot soft targets equal hard labels; a mixed target is the expected cross-entropy
    onehot = torch.eye(2)
    assert info_nce(q, c, tau, soft_targets=onehot)[0].item() == pytest.approx(loss.item(), rel=1e-6)
    t = torch.tensor([[0.5, 0.5], [0.0, 1.0]])
    lp = torch.log_softmax(torch.tensor(s) / tau, dim=1)
    expect = -(0.5 * lp[0, 0] + 0.5 * lp[0, 1] + lp[1, 1]) / 2
    assert info_nce(q, c, tau, soft_targets=t)[0].item() == pytest.approx(expect.item(), rel=1e-6)
    with pytest.raises(ParameterError):
        info_nce(q, c, temperature=0.0)


def test_in_batch_scores_match_hand_computation_with_ties():
    logits = torch.tensor([[2.0, 1.0, 2.0], [0.0, 3.0, 1.0], [1.0, 2.0, 0.5]])
    p, rank, loss = score_logits(logits)
    e = math.exp
    p_hand = [e(2) / (e(2) + e(1) + e(2)), e(3) / (e(0) + e(3) + e(1)), e(0.5) / (e(1) + e(2) + e(0.5))]
    np.testing.assert_allclose(p, p_hand, rtol=1e-6)
    np.testing.assert_allclose(loss, -np.log(p_hand), rtol=1e-6)
    assert rank.tolist() == [1, 1, 3]  # a tie with the gold does not lower its rank

    rec = DynamicsRecorder("in_batch", temperature=0.05)
    rec.plan(steps_per_epoch=4, total_steps=8)
    rec.record_batch(logits, ["a", "b", "c"], step=6)
    df = rec.to_frame()
    assert list(df.columns) == DYNAMICS_COLUMNS
    assert df["checkpoint"].tolist() == [1, 1, 1] and df["epoch"].tolist() == [1.5] * 3
    assert df["step"].tolist() == [6] * 3 and set(df["mode"]) == {"in_batch"}
    assert df["correct"].tolist() == [True, True, False]
    np.testing.assert_allclose(df["p_gold"], p_hand, rtol=1e-6)


def test_fixed_pool_scores_exclude_the_gold_from_the_pool():
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    codes = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    # pair 0's gold is code 0, pair 1's gold is code 1; the pool holds codes 0 and 2
    p, rank, loss = DynamicsRecorder.score_pool(q, codes, np.array([0, 1]), np.array([0, 2]), temperature=1.0)
    e = math.exp
    p0 = e(1.0) / (e(1.0) + e(0.6))  # code 0 in the pool is pair 0's own code: excluded
    p1 = e(1.0) / (e(1.0) + e(0.0) + e(0.8))
    np.testing.assert_allclose(p, [p0, p1], rtol=1e-6)
    np.testing.assert_allclose(loss, [-math.log(p0), -math.log(p1)], rtol=1e-6)
    assert rank.tolist() == [1, 1]


def test_checkpoint_steps_are_evenly_spaced():
    assert checkpoint_steps("fixed_pool", 4, 8, 2) == [2, 4, 6, 8]
    assert checkpoint_steps("fixed_pool", 3, 6, 2) == [2, 3, 5, 6]
    assert checkpoint_steps("in_batch", 4, 8, 2) == [4, 8]
    assert checkpoint_steps("fixed_pool", 4, 5, 1) == [4, 5]  # max_steps mid-epoch: the last step too


def test_config_validation_names_the_field():
    for bad in (
        dict(lr=-1.0),
        dict(batch_size=1),
        dict(dynamics_mode="online"),
        dict(epochs=0),
        dict(warmup_ratio=1.5),
        dict(bf16="yes"),
        dict(max_steps=0),
    ):
        with pytest.raises(ParameterError, match=next(iter(bad))):
            TrainConfig(**bad)
    with pytest.raises(ParameterError, match="unknown"):
        TrainConfig.from_dict({"learning_rate": 1e-5})


def test_runtime_helpers(monkeypatch):
    monkeypatch.delenv("WORKBENCH_MAX_THREADS", raising=False)
    assert set_threads(2) == 2
    # $WORKBENCH_MAX_THREADS caps every thread count the workbench sets (jobs sharing one machine)
    monkeypatch.setenv("WORKBENCH_MAX_THREADS", "1")
    assert set_threads(2) == 1 and set_threads(None) == 1
    monkeypatch.setenv("WORKBENCH_MAX_THREADS", "two")
    with pytest.raises(ParameterError, match="WORKBENCH_MAX_THREADS"):
        set_threads(2)
    monkeypatch.setenv("WORKBENCH_MAX_THREADS", "")
    assert set_threads(2) == 2
    assert pick_device("cpu").type == "cpu"
    assert pick_device().type in ("cpu", "cuda")
    seed_everything(3)
    a = torch.rand(3)
    seed_everything(3)
    assert torch.equal(a, torch.rand(3))
    monkeypatch.setenv("WORKBENCH_BF16", "force")  # bf16 even on a CPU that is slow at it
    with autocast_context("cpu", True):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    with autocast_context("cpu", False):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32


def test_bf16_asked_for_on_a_cpu_slow_at_it_computes_and_records_fp32(encoder, pairs, tmp_path, monkeypatch):
    """Without fast bf16 (an AVX2-only CPU emulates it, about 30x slower than fp32), a bf16 request
    trains, encodes and keys its caches in fp32, and says so once; ``$WORKBENCH_BF16`` overrides."""
    from workbench import runtime
    from workbench.retrieval import encoder_key

    monkeypatch.delenv("WORKBENCH_BF16", raising=False)
    monkeypatch.setattr(runtime, "_device_has_bf16", lambda device_type, index: False)
    monkeypatch.setattr(runtime, "_warned", set())
    with pytest.warns(RuntimeWarning, match="fp32 instead"):
        with autocast_context("cpu", True):
            assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    res = train(encoder, pairs.iloc[:8], fast_config(max_steps=1, bf16=True), tmp_path / "run", show_progress=False)
    assert res.config.bf16 is False
    assert json.loads((tmp_path / "run" / "train_config.json").read_text())["config"]["bf16"] is False
    codes = pairs["code"].tolist()[:4]
    assert np.array_equal(encoder.encode(codes, "code", bf16=True, show_progress=False),
                          encoder.encode(codes, "code", show_progress=False))
    assert encoder_key(encoder, True) == encoder_key(encoder, False)
    monkeypatch.setenv("WORKBENCH_BF16", "force")
    assert runtime.bf16_supported("cpu") and encoder_key(encoder, True)["bf16"] is True
    monkeypatch.setattr(runtime, "_device_has_bf16", lambda device_type, index: True)
    assert runtime.effective_bf16("cpu", True)
    monkeypatch.setenv("WORKBENCH_BF16", "off")
    assert not runtime.effective_bf16("cpu", True)
    monkeypatch.setenv("WORKBENCH_BF16", "sometimes")
    with pytest.raises(ParameterError, match="WORKBENCH_BF16"):
        runtime.bf16_supported("cpu")


# ------------------------------------------------------------------------------- real training
def _batch_loss(enc, df: pd.DataFrame) -> float:
    enc.eval()
    with torch.no_grad():
        q = enc.embed(df["query"].tolist(), "query")
        c = enc.embed(df["code"].tolist(), "code")
        return info_nce(q, c, temperature=0.05)[0].item()


def test_a_few_steps_lower_the_loss_on_the_same_batch(encoder, pairs, tmp_path):
    batch = pairs.iloc[:8]
    before = _batch_loss(encoder, batch)
    res = train(
        encoder, batch, fast_config(epochs=3, save_every_steps=100), tmp_path / "run", show_progress=False
    )
    after = _batch_loss(encoder, batch)
    assert after < before
    assert res.history["step"].tolist() == [1, 2, 3]
    assert (res.model_dir / "modules.json").exists()
    assert (tmp_path / "run" / "dynamics.parquet").exists() and (
        tmp_path / "run" / "history.parquet"
    ).exists()
    saved = json.loads((tmp_path / "run" / "train_config.json").read_text())
    assert saved["config"]["epochs"] == 3 and saved["total_steps"] == 3


def test_extra_pool_codes_join_the_drawn_pool_whole_and_share_indices_with_equal_training_codes():
    rec = DynamicsRecorder("fixed_pool", pool_size=2, seed=0)
    codes = ["a", "b", "c", "d"]
    drawn = rec.setup_pool(["1", "2", "3", "4"], ["q1", "q2", "q3", "q4"], codes)
    assert len(drawn) == 2 and set(rec._uniq_codes[drawn]) <= set(codes)
    again = DynamicsRecorder("fixed_pool", pool_size=2, seed=0)
    pool = again.setup_pool(["1", "2", "3", "4"], ["q1", "q2", "q3", "q4"], codes, extra_codes=["x", "y", "a", "x"])
    names = set(again._uniq_codes[pool])
    assert names == set(rec._uniq_codes[drawn]) | {"x", "y", "a"}  # the same draw, plus every extra text once
    assert again._uniq_codes[again._code_index].tolist() == codes  # a training code equal to an extra is one code


def test_a_hard_negative_in_the_pool_lowers_a_mislabelled_pairs_confidence():
    """The near-miss case: the query's right function is an extra pool code, its labelled code is not."""
    q = torch.tensor([[1.0, 0.0]])
    codes = torch.tensor([[0.6, 0.8], [1.0, 0.0], [0.0, 1.0]])  # 0: labelled (wrong) code, 1: the right one
    without, _, _ = DynamicsRecorder.score_pool(q, codes, np.array([0]), np.array([0, 2]), temperature=0.1)
    with_, rank, _ = DynamicsRecorder.score_pool(q, codes, np.array([0]), np.array([0, 1, 2]), temperature=0.1)
    assert without[0] > 0.9 and with_[0] < 0.05 and rank.tolist() == [2]


def test_extra_pool_codes_are_scored_and_make_another_run(minilm, pairs, tmp_path):
    """``train(pool_codes=...)``: the resume key records the extra codes (a run without them has no
    such entry), and every pair's gold is scored against more candidates, so it is never likelier."""
    set_threads(2)
    cfg = fast_config(dynamics_mode="fixed_pool", checkpoints_per_epoch=1, fixed_pool_size=4)
    extra = [f"def unrelated_{i}(x):\n    return x * {i}" for i in range(8)] + pairs["code"].tolist()[:2]
    res = train(copy.deepcopy(minilm), pairs, cfg, tmp_path / "fp", show_progress=False, pool_codes=extra)
    saved = json.loads((tmp_path / "fp" / "train_config.json").read_text())
    assert "pool_codes" in saved and len(res.dynamics) == len(pairs)
    assert res.dynamics["rank"].between(1, 1 + 4 + 10).all()
    plain = train(copy.deepcopy(minilm), pairs, cfg, tmp_path / "plain", show_progress=False)
    assert "pool_codes" not in json.loads((tmp_path / "plain" / "train_config.json").read_text())
    # every pair has at least as many candidates with the extras, so its gold is never likelier
    both = res.dynamics.set_index("pair_id")["p_gold"].align(plain.dynamics.set_index("pair_id")["p_gold"])
    assert (both[0] <= both[1] + 1e-6).all() and (both[0] < both[1] - 1e-6).any()


def test_fixed_pool_dynamics_one_row_per_pair_per_checkpoint(encoder, pairs, tmp_path):
    cfg = fast_config(dynamics_mode="fixed_pool", checkpoints_per_epoch=2, fixed_pool_size=6)
    res = train(encoder, pairs, cfg, tmp_path / "fp", show_progress=False)
    dyn = res.dynamics
    assert list(dyn.columns) == DYNAMICS_COLUMNS and set(dyn["mode"]) == {"fixed_pool"}
    assert (dyn.groupby("pair_id").size() == 2).all() and set(dyn["pair_id"]) == set(pairs["id"])
    assert sorted(dyn["checkpoint"].unique()) == [0, 1]
    assert sorted(dyn["step"].unique()) == [1, 2] and sorted(dyn["epoch"].unique()) == [0.5, 1.0]
    assert dyn["rank"].between(1, 7).all() and dyn["p_gold"].between(0, 1).all()
    np.testing.assert_allclose(dyn["loss"], -np.log(dyn["p_gold"]), rtol=1e-9)


def test_in_batch_dynamics_and_exact_resume_after_interruption(minilm, pairs, tmp_path):
    set_threads(2)
    cfg = fast_config(epochs=2, save_every_steps=2)  # 16 pairs / 8 = 2 steps per epoch, 4 steps

    full = copy.deepcopy(minilm)
    ref = train(full, pairs, cfg, tmp_path / "full", show_progress=False)
    dyn = ref.dynamics
    assert list(dyn.columns) == DYNAMICS_COLUMNS and set(dyn["mode"]) == {"in_batch"}
    assert (dyn.groupby("pair_id").size() == 2).all() and set(dyn["pair_id"]) == set(pairs["id"])
    assert (dyn.groupby(["pair_id", "checkpoint"]).size() == 1).all()
    assert sorted(dyn["step"].unique()) == [1, 2, 3, 4]

    # crash after step 3: the checkpoint of step 2 survives, step 3 is redone on resume
    part = copy.deepcopy(minilm)
    with pytest.raises(TrainingInterrupted):
        train(part, pairs, cfg, tmp_path / "part", show_progress=False, stop_after_steps=3)
    state = json.loads((tmp_path / "part" / "checkpoint" / "state.json").read_text())
    assert state["step"] == 2
    resumed_enc = copy.deepcopy(minilm)  # a fresh process would load the base model again
    resumed = train(resumed_enc, pairs, cfg, tmp_path / "part", show_progress=False)
    assert resumed.resumed_from_step == 2

    a, b = full.state_dict(), resumed_enc.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ from the uninterrupted run"
    pd.testing.assert_frame_equal(ref.dynamics, resumed.dynamics)
    pd.testing.assert_frame_equal(
        ref.history[["step", "epoch", "loss", "lr"]], resumed.history[["step", "epoch", "loss", "lr"]]
    )

    # a different config on the same folder is refused, naming the field
    with pytest.raises(ParameterError, match=r"config\.lr"):
        train(
            copy.deepcopy(minilm),
            pairs,
            fast_config(epochs=2, save_every_steps=2, lr=5e-5),
            tmp_path / "part",
            show_progress=False,
        )

    # a finished run is not retrained: its weights are loaded and its tables returned
    again_enc = copy.deepcopy(minilm)
    again = train(again_enc, pairs, cfg, tmp_path / "full", show_progress=False)
    assert again.resumed_from_step == 4
    assert all(torch.equal(a[k], v) for k, v in again_enc.state_dict().items())
    pd.testing.assert_frame_equal(ref.dynamics, again.dynamics)


def test_both_modes_recorded_in_one_run(encoder, pairs, tmp_path):
    cfg = fast_config(epochs=2, dynamics_mode="both", checkpoints_per_epoch=2, fixed_pool_size=6)
    dyn = train(encoder, pairs, cfg, tmp_path / "both", show_progress=False).dynamics
    assert set(dyn["mode"]) == {"in_batch", "fixed_pool"}
    ib, fp = dyn[dyn["mode"] == "in_batch"], dyn[dyn["mode"] == "fixed_pool"]
    assert sorted(ib["checkpoint"].unique()) == [0, 1]  # one per epoch, read off the training logits
    assert sorted(fp["checkpoint"].unique()) == [0, 1, 2, 3] and sorted(fp["step"].unique()) == [1, 2, 3, 4]
    assert (fp.groupby("pair_id").size() == 4).all() and set(fp["pair_id"]) == set(ib["pair_id"])


def test_micro_batches_give_the_plain_embeddings_and_gradients(encoder, pairs):
    """Length-sorted micro-batches (TrainConfig.micro_batch) change the padding, not the result: same
    rows in input order and the same gradients (dropout off), and a bad value names the field."""
    from workbench.training.step import embed_sorted

    texts = pairs["code"].tolist()[:10]
    encoder.eval()  # no dropout: the two must agree up to float rounding
    grads = []
    for micro in (None, 3):
        encoder.zero_grad(set_to_none=True)
        emb = embed_sorted(encoder, texts, "code", micro)
        (emb @ emb[0].detach()).sum().backward()
        grads.append({n: p.grad.clone() for n, p in encoder.named_parameters() if p.grad is not None})
        if micro is None:
            plain = emb.detach()
        else:
            assert torch.allclose(emb.detach(), plain, atol=2e-6), (emb.detach() - plain).abs().max()
    assert grads[0].keys() == grads[1].keys()
    scale = max(float(g.abs().max()) for g in grads[0].values())
    worst = {n: float((grads[0][n] - grads[1][n]).abs().max()) for n in grads[0]}
    # relative to the largest gradient: the attention key biases' true gradient is 0 (softmax is shift
    # invariant), so theirs is rounding noise in both
    assert max(worst.values()) < 1e-5 * scale, sorted(worst.items(), key=lambda kv: -kv[1])[:3]
    with pytest.raises(ParameterError, match="micro_batch"):
        TrainConfig(micro_batch=0)
