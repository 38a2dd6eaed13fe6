"""Multi-process training (real gloo processes on 127.0.0.1), GradCache and the speed flags, on the real MiniLM.

Two processes are spawned once per module (``_spawned``); each joins a gloo group (a FileStore
rendezvous, gloo pinned to the loopback interface, so nothing listens beyond 127.0.0.1) with one
torch thread, and runs: the gather check against torch's own autograd all_gather, the trainer's
sharded step on a global batch of 8 real pairs (with and without extra negatives, plain and
GradCache) and ``train()`` itself (dropout off, and dropout on with an interruption and resume).
The parent compares with one process on the same global batches.

Dropout: MiniLM has ``hidden_dropout_prob = attention_probs_dropout_prob = 0.1``, active in train
mode. Two processes draw their masks from their own generators, so with dropout on a 2-process run
cannot equal a 1-process run; equality is tested with every ``nn.Dropout`` set to p = 0, and with
dropout on only 2-process-interrupted-and-resumed vs 2-process-uninterrupted (bit-identical).
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import os
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from stdlib_pairs import mine_stdlib_pairs

from workbench.errors import ParameterError
from workbench.runtime import set_threads
from workbench.training import TrainConfig, TrainingInterrupted, info_nce, train
from workbench.training import distributed as wd
from workbench.training.gradcache import grad_cache_backward

WORLD = 2
STDLIB = ("textwrap.py", "shlex.py", "string.py", "fnmatch.py", "glob.py", "bisect.py", "heapq.py")
NEG_TEXTS = ["def f(x):\n    return x + 1", "class A:\n    pass", "import os\nprint(os.getcwd())"]
GRAD_RTOL, GRAD_ATOL = 1e-5, 1e-6  # per element; MiniLM's gradients here reach ~0.7 in absolute value
LOSS_TOL = 1e-5
# Trained weights after 2 AdamW steps at lr 1e-4. The attention key biases have a gradient of exactly 0
# in exact arithmetic (softmax is shift-invariant), so theirs is ~1e-9 rounding noise that Adam's
# m / (sqrt(v) + 1e-8) turns into updates up to ~lr / 10: they may differ by up to 1e-5; every other
# parameter is held to 6e-6 (4% of the largest change training makes, ~1.5e-4): 3.19e-6 was measured
# on a machine whose CPU has AMX (other float32 kernels, other summation orders; 3e-6 was the bound before).
WEIGHT_ATOL, KEY_BIAS_ATOL = 6e-6, 1e-5


def _pairs() -> pd.DataFrame:
    return mine_stdlib_pairs(STDLIB, 16)[["id", "query", "code"]]


def _no_dropout(enc):
    for m in enc.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    return enc


def _config(**kw) -> TrainConfig:
    base = dict(epochs=1, batch_size=8, lr=1e-4, warmup_ratio=0.0, seed=7, save_every_steps=1)
    base.update(kw)
    return TrainConfig(**base)


def _grads(enc) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in enc.named_parameters() if p.grad is not None}


def _sharded_grads(enc, batch: pd.DataFrame, neg: list[str], chunk: int | None):
    """The trainer's own sharded step on this process's shard, then the gradient average."""
    from workbench.training.step import contrastive_step

    enc.zero_grad(set_to_none=True)
    enc.train()
    loss, square = contrastive_step(
        enc, batch["query"].tolist(), batch["code"].tolist(), neg, None, _config(grad_cache_chunk=chunk), enc.device,
        want_square=True,
    )
    wd.average_gradients(enc.parameters())
    return float(loss), square, _grads(enc)


def _worker(rank: int, world: int, store: str, out: str) -> None:
    os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", GLOO_SOCKET_IFNAME="lo",
                      TOKENIZERS_PARALLELISM="false")
    torch.set_num_threads(1)
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=120))
    res: dict = {"times": {}}
    t0 = time.perf_counter()

    def lap(name: str) -> None:
        res["times"][name] = round(time.perf_counter() - t0, 1)

    try:
        # 1. gather_with_grad == torch.distributed.nn.functional.all_gather (forward and backward)
        x = torch.arange(6.0).reshape(3, 2).add(10 * rank).requires_grad_(True)
        w = torch.linspace(-1, 1, 2 * 3 * world).reshape(3 * world, 2)
        g_ours = torch.autograd.grad((wd.gather_with_grad(x) * w).square().sum(), x)[0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # deprecated in torch 2.13
            from torch.distributed.nn.functional import all_gather

            g_torch = torch.autograd.grad((torch.cat(all_gather(x)) * w).square().sum(), x)[0]
        res["gather"] = (g_ours, g_torch, wd.gather_with_grad(x).detach())

        from workbench.models import BiEncoder

        base = BiEncoder.load("minilm", max_query_len=32, max_code_len=64)
        lap("load")
        pairs = _pairs()
        batch = pairs.iloc[:8]
        # 2. one sharded step (the trainer's contrastive_step) with dropout off
        enc = _no_dropout(copy.deepcopy(base))
        res["step"] = _sharded_grads(enc, batch, [], None)
        res["step_neg"] = _sharded_grads(enc, batch, NEG_TEXTS, None)
        res["step_neg_gc"] = _sharded_grads(enc, batch, NEG_TEXTS, 2)
        lap("steps")

        # 3. train() in two processes, dropout off
        out_dir = Path(out) / "train-nodrop"
        enc = _no_dropout(copy.deepcopy(base))
        r = train(enc, pairs, _config(), out_dir, show_progress=False)
        res["train"] = {"state": {k: v.clone() for k, v in enc.state_dict().items()},
                        "dynamics": r.dynamics, "history": r.history}
        lap("train")

        # 4. dropout on: interrupted after step 1 and resumed == uninterrupted (per-process RNG restored)
        full = copy.deepcopy(base)
        rf = train(full, pairs, _config(), Path(out) / "drop-full", show_progress=False)
        part = copy.deepcopy(base)
        with contextlib.suppress(TrainingInterrupted):
            train(part, pairs, _config(), Path(out) / "drop-part", show_progress=False, stop_after_steps=1)
        resumed = copy.deepcopy(base)
        rr = train(resumed, pairs, _config(), Path(out) / "drop-part", show_progress=False)
        res["resume"] = {
            "resumed_from": rr.resumed_from_step,
            "equal": all(torch.equal(a, b) for a, b in zip(full.state_dict().values(), resumed.state_dict().values())),
            "dyn_equal": rf.dynamics.equals(rr.dynamics),
        }

        lap("resume")
        # 5. what is single-process only is refused, on every process
        refused = []
        for bad in (dict(mixup_alpha=0.4), dict(dynamics_mode="fixed_pool")):
            try:
                train(copy.deepcopy(base), pairs, _config(**bad), Path(out) / "refused", show_progress=False)
            except ParameterError as e:
                refused.append(str(e))
        res["refused"] = refused
        res["world"] = (wd.rank(), wd.world_size())
    finally:
        torch.save(res, Path(out) / f"rank{rank}.pt")
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def spawned(tmp_path_factory):
    """Run ``_worker`` in 2 real gloo processes once; returns (per-rank results, seconds)."""
    import torch.multiprocessing as mp

    out = tmp_path_factory.mktemp("dist")
    t0 = time.perf_counter()
    ctx = mp.start_processes(_worker, args=(WORLD, str(out / "store"), str(out)), nprocs=WORLD, join=False,
                             start_method="spawn")
    deadline = time.monotonic() + 600
    while not ctx.join(timeout=5):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail("the 2-process run did not finish in 600 s")
    seconds = time.perf_counter() - t0
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(WORLD)], out, seconds


def _single_grads(enc, batch: pd.DataFrame, neg: list[str]):
    enc.zero_grad(set_to_none=True)
    enc.train()
    q = enc.embed(batch["query"].tolist(), "query")
    c = enc.embed(batch["code"].tolist(), "code")
    n = enc.embed(neg, "code") if neg else None
    loss, logits = info_nce(q, c, temperature=0.05, negatives=n)
    loss.backward()
    return float(loss.detach()), logits.detach()[:, : len(batch)], _grads(enc)


def _err(got: dict, want: dict) -> str:
    """The largest absolute gradient difference, and relative to the largest gradient entry."""
    diff = max(float((got[k] - want[k]).abs().max()) for k in want)
    scale = max(float(want[k].abs().max()) for k in want)
    return f"max |grad diff| {diff:.2e} (largest |grad| {scale:.2e}, ratio {diff / scale:.1e})"


def _close(got: dict, want: dict) -> None:
    """Every parameter's gradient: |got - want| <= GRAD_ATOL + GRAD_RTOL * |want| elementwise."""
    assert got.keys() == want.keys() and len(want) > 90
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=GRAD_RTOL, atol=GRAD_ATOL, msg=lambda m, k=k: f"{k}: {m}")


@pytest.fixture(scope="module")
def base(minilm):
    set_threads(1)
    return copy.deepcopy(minilm)


def test_train_gather_with_grad_matches_torch_all_gather(spawned):
    results, _, seconds = spawned
    print(f"2-process worker run: {seconds:.1f} s; rank 0 cumulative phases {results[0]['times']}")
    for r, res in enumerate(results):
        assert res["world"] == (r, WORLD)
        g_ours, g_torch, gathered = res["gather"]
        assert gathered.shape == (3 * WORLD, 2) and torch.equal(gathered[3 * r : 3 * r + 3], torch.arange(6.0).reshape(3, 2) + 10 * r)
        torch.testing.assert_close(g_ours, g_torch, rtol=0, atol=0)


@pytest.mark.parametrize("case, neg", [("step", []), ("step_neg", NEG_TEXTS), ("step_neg_gc", NEG_TEXTS)])
def test_train_step_two_processes_loss_and_gradients_equal_one_process(spawned, base, case, neg):
    results, _, _ = spawned
    batch = _pairs().iloc[:8]
    loss1, square1, grads1 = _single_grads(_no_dropout(copy.deepcopy(base)), batch, neg)
    for res in results:
        loss2, square2, grads2 = res[case]
        assert abs(loss2 - loss1) <= LOSS_TOL, (loss2, loss1)
        torch.testing.assert_close(square2, square1, rtol=1e-5, atol=1e-4)  # logits are cos / 0.05
        _close(grads2, grads1)
    print(f"{case}: loss 1p {loss1:.7f} 2p {results[0][case][0]:.7f}; {_err(results[0][case][2], grads1)}")
    # the two processes hold the same averaged gradient
    for k in results[0][case][2]:
        assert torch.equal(results[0][case][2][k], results[1][case][2][k])


def test_train_in_two_processes_matches_one_process(spawned, base, tmp_path):
    results, out, _ = spawned
    enc = _no_dropout(copy.deepcopy(base))
    ref = train(enc, _pairs(), _config(), tmp_path / "one", show_progress=False)
    got = results[0]["train"]
    want = enc.state_dict()
    diffs = {k: float((got["state"][k] - want[k]).abs().max()) for k in want}
    other = max(d for k, d in diffs.items() if not k.endswith("key.bias"))
    key_bias = max(d for k, d in diffs.items() if k.endswith("key.bias"))
    moved = max(float((want[k] - base.state_dict()[k]).abs().max()) for k in want)
    print(f"train 2p vs 1p: max |weight diff| {other:.2e}, key biases {key_bias:.2e} "
          f"(max weight change by training {moved:.2e})")
    assert other <= WEIGHT_ATOL and key_bias <= KEY_BIAS_ATOL and moved > 10 * KEY_BIAS_ATOL
    for r in range(WORLD):  # every process ends with the same weights
        assert all(torch.equal(results[r]["train"]["state"][k], got["state"][k]) for k in want)
    np.testing.assert_allclose(got["history"]["loss"], ref.history["loss"], rtol=0, atol=LOSS_TOL)
    dyn2, dyn1 = got["dynamics"], ref.dynamics
    assert len(dyn2) == len(dyn1) == 16 and set(dyn2["pair_id"]) == set(_pairs()["id"])
    pd.testing.assert_frame_equal(dyn2.drop(columns=["p_gold", "loss"]), dyn1.drop(columns=["p_gold", "loss"]))
    np.testing.assert_allclose(dyn2["p_gold"], dyn1["p_gold"], rtol=1e-4, atol=1e-6)
    # rank 0 wrote the outputs, atomically, and only once
    written = out / "train-nodrop"
    assert (written / "model" / "modules.json").exists() and (written / "checkpoint" / "state.json").exists()
    saved = pd.read_parquet(written / "dynamics.parquet")
    pd.testing.assert_frame_equal(saved, dyn2, check_dtype=False)  # pair_id: object -> parquet string
    import json

    assert json.loads((written / "train_config.json").read_text())["world_size"] == WORLD


def test_two_process_resume_is_exact_with_dropout(spawned):
    results, _, _ = spawned
    for res in results:
        assert res["resume"] == {"resumed_from": 1, "equal": True, "dyn_equal": True}


def test_train_refuses_single_process_only_features_in_two_processes(spawned):
    results, _, _ = spawned
    for res in results:
        assert len(res["refused"]) == 2
        assert "MixUp" in res["refused"][0] and "single-process only" in res["refused"][0]
        assert "fixed_pool" in res["refused"][1]


# ----------------------------------------------------------------------------------- GradCache
def test_train_step_grad_cache_equals_plain_step_without_dropout(base):
    batch = _pairs().iloc[:8]
    enc = _no_dropout(copy.deepcopy(base))
    loss1, _, grads1 = _single_grads(enc, batch, NEG_TEXTS)
    enc.zero_grad(set_to_none=True)
    inputs = [(batch["query"].tolist(), "query"), (batch["code"].tolist(), "code"), (NEG_TEXTS, "code")]
    loss2, _ = grad_cache_backward(enc, inputs, 4, lambda q, c, n: info_nce(q, c, 0.05, negatives=n))
    assert abs(float(loss2) - loss1) <= LOSS_TOL
    _close(_grads(enc), grads1)
    print(f"gradcache chunk 4 vs plain: loss {float(loss2):.7f} vs {loss1:.7f}, {_err(_grads(enc), grads1)}")


def test_train_step_grad_cache_replays_dropout(base):
    """Dropout on: the cached step's gradient equals that of one graph over the same chunks drawn from the
    same generator state (the second forward repeats the first's masks), and the generator ends where a
    single pass over the chunks leaves it."""
    batch = _pairs().iloc[:8]
    enc = copy.deepcopy(base).train()
    q_t, c_t = batch["query"].tolist(), batch["code"].tolist()

    torch.manual_seed(3)
    q = torch.cat([enc.embed(q_t[i : i + 4], "query") for i in (0, 4)])
    c = torch.cat([enc.embed(c_t[i : i + 4], "code") for i in (0, 4)])
    loss1, _ = info_nce(q, c, 0.05)
    loss1.backward()
    grads1, after1 = _grads(enc), torch.get_rng_state()

    enc.zero_grad(set_to_none=True)
    torch.manual_seed(3)
    loss2, _ = grad_cache_backward(enc, [(q_t, "query"), (c_t, "code")], 4, lambda q, c: info_nce(q, c, 0.05))
    assert torch.equal(torch.get_rng_state(), after1)
    assert abs(float(loss2) - float(loss1.detach())) <= LOSS_TOL
    _close(_grads(enc), grads1)


def test_train_with_grad_cache_matches_plain_training(base, tmp_path):
    pairs = _pairs()
    cfg = dict(save_every_steps=100)
    a = _no_dropout(copy.deepcopy(base))
    ra = train(a, pairs, _config(**cfg), tmp_path / "plain", show_progress=False)
    b = _no_dropout(copy.deepcopy(base))
    rb = train(b, pairs, _config(grad_cache_chunk=4, **cfg), tmp_path / "gc", show_progress=False)
    diffs = {k: float((a.state_dict()[k] - b.state_dict()[k]).abs().max()) for k in a.state_dict()}
    other = max(d for k, d in diffs.items() if not k.endswith("key.bias"))
    key_bias = max(d for k, d in diffs.items() if k.endswith("key.bias"))
    print(f"train gradcache vs plain: max |weight diff| {other:.2e}, key biases {key_bias:.2e}")
    assert other <= WEIGHT_ATOL and key_bias <= KEY_BIAS_ATOL
    np.testing.assert_allclose(rb.history["loss"], ra.history["loss"], rtol=0, atol=LOSS_TOL)
    assert len(rb.dynamics) == len(ra.dynamics) == 16
    # GradCache is in the resume key (its dropout draws differ); the speed flags are not
    with pytest.raises(ParameterError, match="grad_cache_chunk"):
        train(copy.deepcopy(base), pairs, _config(grad_cache_chunk=2, **cfg), tmp_path / "gc", show_progress=False)
    again = train(copy.deepcopy(base), pairs, _config(grad_cache_chunk=4, tf32=True, **cfg), tmp_path / "gc",
                  show_progress=False)
    assert again.resumed_from_step == 2


class _OrderHook:
    """Two labelled negatives per batch row (fixed texts, labels 0.3 / 0.6): an OASIS-style hook."""

    labelled = True
    key = "test-order-hook"

    def __call__(self, rows, step, progress):
        from workbench.training.train_config import LabelledNegatives

        n = len(rows)
        texts = [NEG_TEXTS[(i + step) % len(NEG_TEXTS)] + f"\n# {r}" for r in rows for i in range(2)]
        return LabelledNegatives(texts=texts, rows=np.repeat(np.arange(n), 2),
                                 labels=np.tile(np.asarray([0.3, 0.6], np.float32), n),
                                 positive_labels=np.ones(n, np.float32))


def test_train_with_grad_cache_and_cosent_matches_plain_training(base, tmp_path):
    """OASIS's loss (0.98 InfoNCE + 0.02 CoSENT over labelled negatives) through GradCache: the 16
    extra negatives of a batch of 8 go in chunks of 4, and 2 steps give the plain step's weights."""
    pairs = _pairs()
    cfg = dict(save_every_steps=100, contrastive_weight=0.98, order_weight=0.02)
    a = _no_dropout(copy.deepcopy(base))
    ra = train(a, pairs, _config(**cfg), tmp_path / "plain", show_progress=False, negatives=_OrderHook())
    b = _no_dropout(copy.deepcopy(base))
    rb = train(b, pairs, _config(grad_cache_chunk=4, **cfg), tmp_path / "gc", show_progress=False,
               negatives=_OrderHook())
    diffs = {k: float((a.state_dict()[k] - b.state_dict()[k]).abs().max()) for k in a.state_dict()}
    other = max(d for k, d in diffs.items() if not k.endswith("key.bias"))
    print(f"train gradcache + CoSENT vs plain: max |weight diff| {other:.2e}")
    assert other <= WEIGHT_ATOL and max(diffs.values()) <= KEY_BIAS_ATOL
    np.testing.assert_allclose(rb.history["loss"], ra.history["loss"], rtol=0, atol=LOSS_TOL)
    # the CoSENT term is in the loss: without it the loss differs
    c = _no_dropout(copy.deepcopy(base))
    rc = train(c, pairs, _config(save_every_steps=100, contrastive_weight=0.98), tmp_path / "info",
               show_progress=False, negatives=_OrderHook())
    assert abs(float(rc.history["loss"].iloc[0]) - float(ra.history["loss"].iloc[0])) > 1e-4


def test_a_step_that_fits_one_chunk_embeds_once(base):
    """GradCache only where a side exceeds the chunk: with every side within it the step embeds each
    side once (no second forward) and draws the plain step's dropout, so it equals it exactly."""
    from workbench.training.step import contrastive_step

    batch = _pairs().iloc[:8]
    q_t, c_t = batch["query"].tolist(), batch["code"].tolist()
    calls: list[int] = []

    def run(chunk):
        enc = copy.deepcopy(base).train()
        inner = enc.embed
        enc.embed = lambda texts, kind: (calls.append(len(texts)), inner(texts, kind))[1]
        calls.clear()
        torch.manual_seed(5)
        loss, _ = contrastive_step(enc, q_t, c_t, NEG_TEXTS, None, _config(grad_cache_chunk=chunk), enc.device,
                                   want_square=False)
        return float(loss), _grads(enc), list(calls)

    loss_plain, grads_plain, calls_plain = run(None)
    loss_fit, grads_fit, calls_fit = run(8)
    loss_gc, _, calls_gc = run(4)
    assert calls_plain == calls_fit == [8, 8, 3]
    assert loss_fit == loss_plain and all(torch.equal(grads_fit[k], grads_plain[k]) for k in grads_plain)
    assert calls_gc == [4, 4, 4, 4, 3, 4, 4, 4, 4, 3]  # two passes, chunks of 4
    assert abs(loss_gc - loss_plain) > 0  # other dropout draws: a different (valid) step


def test_a_chunk_no_step_exceeds_keeps_the_resume_key(base, tmp_path):
    """Batches of 8 without extra negatives never exceed a chunk of 32: a run made without the chunk is
    found finished (not retrained) when asked again with it; with extra negatives the chunk is in the key."""
    pairs = _pairs()
    first = train(copy.deepcopy(base), pairs, _config(save_every_steps=100), tmp_path / "run", show_progress=False)
    again = train(copy.deepcopy(base), pairs, _config(save_every_steps=100, grad_cache_chunk=32), tmp_path / "run",
                  show_progress=False)
    assert again.resumed_from_step == 2 and first.history["loss"].tolist() == again.history["loss"].tolist()
    cfg = dict(save_every_steps=100, contrastive_weight=0.98, order_weight=0.02, max_steps=1)
    train(copy.deepcopy(base), pairs, _config(**cfg), tmp_path / "neg", show_progress=False, negatives=_OrderHook())
    with pytest.raises(ParameterError, match="grad_cache_chunk"):
        train(copy.deepcopy(base), pairs, _config(grad_cache_chunk=32, **cfg), tmp_path / "neg", show_progress=False,
              negatives=_OrderHook())


def test_train_config_speed_flags_validation():
    for name, bad in (("tf32", 1), ("compile", "yes"), ("grad_cache_chunk", 0), ("grad_cache_chunk", 2.5)):
        with pytest.raises(ParameterError, match=f"TrainConfig.{name}"):
            TrainConfig(**{name: bad})
    with pytest.raises(ParameterError, match="MixUp"):
        TrainConfig(grad_cache_chunk=4, mixup_alpha=0.4)
    assert TrainConfig(tf32=True, compile=True, grad_cache_chunk=8).grad_cache_chunk == 8


def test_train_compile_keeps_parameter_names_and_is_undone(base):
    """compile=True uses nn.Module.compile, so state_dict names (checkpoints, model/) do not change.

    Not trained here: compiling MiniLM with inductor for 2 CPU steps took over 75 s on the 2-core box,
    beyond this file's budget; this checks the wrapping only (no forward, so nothing is compiled)."""
    from workbench.training.trainer import _uncompile

    enc = copy.deepcopy(base)
    keys = list(enc.state_dict())
    enc.model.compile()
    assert enc.model._compiled_call_impl is not None and list(enc.state_dict()) == keys
    _uncompile(enc.model)
    assert enc.model._compiled_call_impl is None
