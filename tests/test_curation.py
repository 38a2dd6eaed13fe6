"""CoRNStack curation (workbench.curation) on a small real corpus, against brute-force n x n numpy.

The corpus: ~300 (docstring, function) pairs mined with ``workbench.corpus.mine_source`` from
standard-library files, embedded with the real MiniLM at small max lengths. One exact duplicate
code is planted (a copy of pair 0's code and embedding) to exercise ties and the duplicate guard.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest
import torch
from stdlib_pairs import mine_stdlib_pairs

from workbench.curation import (
    NegativeSampler,
    calibrate_delta,
    consistency_filter,
    kept_fraction_figure,
    removed_examples,
    score_distribution_figure,
    suggest_delta,
)
from workbench.errors import InputFormatError, ParameterError, WorkbenchError
from workbench.retrieval import HardNegatives, embed_pairs, mine_hard_negatives, search, self_scores
from workbench.runtime import set_threads
from workbench.training import TrainConfig, TrainingInterrupted, train

STDLIB_FILES = (
    "textwrap.py", "shlex.py", "fnmatch.py", "glob.py", "heapq.py", "calendar.py", "posixpath.py",
    "genericpath.py", "base64.py", "tokenize.py", "inspect.py", "pathlib.py", "difflib.py",
    "configparser.py", "ftplib.py", "smtplib.py",
)
N_PAIRS = 300
DUP = N_PAIRS  # row of the planted duplicate of pair 0's code


def mine_pairs(n: int) -> pd.DataFrame:
    return mine_stdlib_pairs(STDLIB_FILES, n)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: on the shared, loaded 2-core box it is 3-5x faster than two (runtime.set_threads)."""
    before = torch.get_num_threads()
    set_threads(1)
    yield
    set_threads(before)


@pytest.fixture(scope="module")
def corpus(minilm, tmp_path_factory):
    """(df, Q, C): 300 real pairs + 1 planted duplicate code (another query, pair 0's code)."""
    df = mine_pairs(N_PAIRS + 1)
    df.loc[DUP, "code"] = df.loc[0, "code"]
    cache = tmp_path_factory.mktemp("emb")
    Q, C = embed_pairs(minilm, df, batch_size=64, cache_dir=cache, show_progress=False)
    C[DUP] = C[0]  # bit-identical, as an exact duplicate would be with a deterministic encoder
    # the cache is hit on a second call (no encoding: the files are read back)
    Q2, C2 = embed_pairs(minilm, df, batch_size=64, cache_dir=cache, show_progress=False)
    assert np.array_equal(Q, Q2) and sorted(f.name.split("-")[0] for f in cache.glob("*.npy")) == ["code", "query"]
    return df, Q, C


def brute_scores(Q: np.ndarray, C: np.ndarray) -> np.ndarray:
    """The full n x n S in float64, one row at a time (exact float32 products, summed along d)."""
    q64, c64 = Q.astype(np.float64), C.astype(np.float64)
    return np.stack([(c64 * q64[i]).sum(axis=1) for i in range(len(q64))])


# ----------------------------------------------------------------------------- consistency filter
def test_embeddings_are_normalised_and_cached(corpus):
    df, Q, C = corpus
    assert Q.dtype == np.float32 and Q.shape == C.shape == (len(df), 384)
    np.testing.assert_allclose(np.linalg.norm(Q, axis=1), 1.0, atol=1e-5)


def test_embed_pairs_resumes_from_saved_parts(minilm, corpus, tmp_path, monkeypatch):
    df, Q, C = corpus
    small = df.iloc[1:21].reset_index(drop=True)
    real = type(minilm).encode
    calls = []

    def flaky(self, texts, *a, **kw):
        calls.append(len(texts))
        if len(calls) == 5:
            raise KeyboardInterrupt("simulated interruption")
        return real(self, texts, *a, **kw)

    monkeypatch.setattr(type(minilm), "encode", flaky)
    with pytest.raises(KeyboardInterrupt):  # queries in parts of 8, 8, 4, codes 8, then the second code part fails
        embed_pairs(minilm, small, cache_dir=tmp_path, part_size=8, show_progress=False)
    # the queries are saved whole (their parts removed); of the codes, the first part is saved
    assert calls == [8, 8, 4, 8, 8] and len(list(tmp_path.glob("query-*.npy"))) == 1 and not list(tmp_path.glob("query-*.parts"))
    assert not list(tmp_path.glob("code-*.npy")) and len(list(tmp_path.glob("code-*.parts/*.npy"))) == 1
    q, c = embed_pairs(minilm, small, cache_dir=tmp_path, part_size=8, show_progress=False)
    assert calls[5:] == [8, 4]  # only the code parts not saved were encoded again
    assert not list(tmp_path.glob("*.parts"))  # removed once the whole result is saved
    np.testing.assert_allclose(q, Q[1:21], atol=1e-5)
    np.testing.assert_allclose(c, C[1:21], atol=1e-5)


def test_search_chunked_equals_numpy(corpus):
    _, Q, C = corpus
    s1, i1 = search(Q, C, 7, chunk_size=41)
    s2, i2 = search(Q, C, 7, chunk_size=100_000)
    assert np.array_equal(i1, i2) and np.array_equal(s1, s2)
    S = Q @ C.T
    ref = np.lexsort((np.broadcast_to(np.arange(len(C)), S.shape), -S), axis=-1)[:, :7]
    np.testing.assert_allclose(s1, np.take_along_axis(S, ref, axis=1), atol=1e-5)
    assert (np.diff(s1, axis=1) <= 0).all()
    assert search(Q[:3], C[:5], 50)[1].shape == (3, 5)  # k capped at the corpus size


@pytest.mark.parametrize("k", [1, 2, 5])
def test_consistency_filter_equals_brute_force(corpus, k):
    _, Q, C = corpus
    n = len(Q)
    S = brute_scores(Q, C)
    sii = np.diag(S)
    delta = float(np.median(sii))
    rank = 1 + (S > sii[:, None]).sum(axis=1)
    kept = (rank <= k) & (sii > delta)

    f = consistency_filter(Q, C, k=k, delta=delta, chunk_size=37)  # chunks smaller than n
    assert len(f) == n and f["row"].tolist() == list(range(n))
    assert np.array_equal(f["self_score"].to_numpy(), sii)  # same kernel: bit-equal
    np.testing.assert_allclose(f["self_score"], (Q * C).sum(axis=1), atol=1e-5)
    assert np.array_equal(f["self_rank"].to_numpy(), np.minimum(rank, k + 1))
    assert np.array_equal(f["kept"].to_numpy(), kept)
    assert set(f.loc[f["kept"], "row"]) == set(np.flatnonzero(kept))
    assert (f["reason"] == "not_top_k").sum() == (rank > k).sum()
    assert (f["reason"] == "below_delta").sum() == ((rank <= k) & (sii <= delta)).sum()
    best = np.lexsort((np.broadcast_to(np.arange(n), S.shape), -S), axis=-1)[:, 0]
    assert np.array_equal(f["top_index"].to_numpy(), best)
    assert f.attrs["k"] == k and f.attrs["delta"] == delta
    # the planted duplicate ties exactly with pair 0's own code: neither is pushed down by it
    assert S[0, DUP] == S[0, 0] and f.loc[0, "best_other_index"] == DUP
    # a shared search (as the notebook does for filter + mining) gives the same table
    shared = search(Q, C, 40, chunk_size=64)
    g = consistency_filter(Q, C, k=k, delta=delta, chunk_size=37, precomputed=shared)
    pd.testing.assert_frame_equal(f, g)


def test_consistency_filter_reasons_and_validation(corpus):
    df, Q, C = corpus
    f = consistency_filter(Q, C, k=2, delta=float(np.median(self_scores(Q, C))), ids=df["id"])
    assert set(f["reason"]) == {"kept", "not_top_k", "below_delta"}
    assert f["id"].tolist() == df["id"].tolist()
    assert ((f["reason"] == "kept") == f["kept"]).all()
    with pytest.raises(ParameterError, match="paired"):
        consistency_filter(Q, C[:-1])
    with pytest.raises(ParameterError, match="k"):
        consistency_filter(Q, C, k=0)
    with pytest.raises(ParameterError, match="delta"):
        consistency_filter(Q, C, delta=float("nan"))


def test_calibrate_delta_is_monotone_and_suggestions_are_sane(corpus):
    df, Q, C = corpus
    f = consistency_filter(Q, C, k=2, delta=0.5)
    cal = calibrate_delta(f)
    assert list(cal.columns[:3]) == ["delta", "kept_fraction", "kept"] and len(cal) == 13
    np.testing.assert_allclose(cal["delta"], np.linspace(0.3, 0.9, 13))
    assert (np.diff(cal["kept"]) <= 0).all() and (np.diff(cal["kept_fraction"]) <= 0).all()
    low = calibrate_delta(f, deltas=[-1.0])
    assert low["kept"].iloc[0] == f["in_top_k"].sum()
    assert calibrate_delta(f, deltas=[0.5])["kept"].iloc[0] == f["kept"].sum()
    arr = calibrate_delta(f["self_score"].to_numpy(), deltas=[0.0, 0.5, 2.0])
    assert arr["kept"].tolist()[-1] == 0 and arr["kept"].iloc[0] >= arr["kept"].iloc[1]
    for rule in ("youden", "knee"):
        s = suggest_delta(f, rule)
        assert f["self_score"].min() - 0.01 <= s["delta"] <= f["self_score"].max() + 0.01
    s = suggest_delta(f, "fraction", keep_fraction=0.3)
    assert abs(s["kept_fraction"] - 0.3) < 0.02
    fig = score_distribution_figure(f, delta=s["delta"])
    assert len(fig.data) == 2 and sum(len(t.x) for t in fig.data) == len(f)
    assert len(kept_fraction_figure(cal).data) == 1
    ex = removed_examples(df, f, n=5)
    assert len(ex) == 5 and (~f.loc[ex["row"], "kept"]).all()
    assert ex["self_score"].is_monotonic_increasing and {"query", "code", "preferred_code"} <= set(ex.columns)


# ----------------------------------------------------------------------------- hard negatives
def brute_hard_negatives(S, codes, M, gamma, depth):
    n = len(S)
    out = []
    for i in range(n):
        order = np.lexsort((np.arange(n), -S[i]))[:depth]
        keep = [
            j for j in order
            if j != i and codes[j] != codes[i] and not S[i, j] > gamma * S[i, i]
        ]
        out.append(keep[:M])
    return out


@pytest.mark.parametrize("depth", [None, 24])
def test_hard_negatives_equal_brute_force(corpus, depth):
    df, Q, C = corpus
    M, gamma = 8, 0.95
    codes = df["code"].tolist()
    S = brute_scores(Q, C)
    hard = mine_hard_negatives(Q, C, M=M, gamma=gamma, chunk_size=37, codes=codes, depth=depth)
    ref = brute_hard_negatives(S, codes, M, gamma, depth or M + 1)
    n = len(Q)
    assert hard.indices.shape == (n, M) and hard.indices.dtype == np.int32 and hard.scores.dtype == np.float32
    for i in range(n):
        v = hard.valid[i]
        got = hard.indices[i][v].tolist()
        assert got == [int(j) for j in ref[i]], i
        assert v.tolist() == [True] * len(got) + [False] * (M - len(got))  # valid first
        assert i not in got and (hard.indices[i][~v] == -1).all()
        assert np.array_equal(hard.scores[i][v], S[i, got].astype(np.float32))
        assert (hard.scores[i][v] <= gamma * hard.self_scores[i] + 1e-6).all()
        assert (np.diff(hard.scores[i][v]) <= 0).all()
    assert DUP not in hard.indices[0] and 0 not in hard.indices[DUP]
    assert hard.params["dropped"]["self"] > 0 and hard.params["M"] == M
    if depth is None:  # the default pool is top-(M+1): the guard leaves some rows short
        assert (hard.n_valid <= M).all()
    else:  # a deeper pool refills them
        assert hard.n_valid.mean() >= mine_hard_negatives(Q, C, M=M, gamma=gamma, codes=codes).n_valid.mean()


def test_hard_negatives_save_load_round_trip(corpus, tmp_path):
    _, Q, C = corpus
    hard = mine_hard_negatives(Q, C, M=6, gamma=0.9)
    path = hard.save(tmp_path / "hn.npz")
    back = HardNegatives.load(path)
    for name in ("indices", "scores", "valid", "self_scores"):
        a, b = getattr(hard, name), getattr(back, name)
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert back.params == json.loads(json.dumps(hard.params)) and back.fingerprint() == hard.fingerprint()
    with np.load(path, allow_pickle=False) as z:  # nothing pickled
        assert sorted(z.files) == ["indices", "params", "scores", "self_scores", "valid"]
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(WorkbenchError):
        HardNegatives.load(tmp_path / "bad.npz")


# ----------------------------------------------------------------------------- sampler
@pytest.fixture(scope="module")
def hard(corpus):
    _, Q, C = corpus
    return mine_hard_negatives(Q, C, M=16, gamma=0.95, depth=40)


def test_temperature_schedule(hard):
    cur = NegativeSampler(hard, 2, "curriculum")
    assert cur.tau(0.0) == pytest.approx(0.05)
    assert cur.tau(0.5) == pytest.approx(0.0255)
    assert cur.tau(1.0) == pytest.approx(0.001)
    assert cur.tau(-1) == pytest.approx(0.05) and cur.tau(2) == pytest.approx(0.001)  # clipped
    taus = [cur.tau(p) for p in np.linspace(0, 1, 11)]
    assert np.allclose(np.diff(taus), (0.001 - 0.05) / 10)  # linear
    soft = NegativeSampler(hard, 2, "softmax", tau_start=0.05)
    assert {soft.tau(p) for p in (0.0, 0.3, 1.0)} == {0.05}
    assert NegativeSampler(hard, 2, "topk").tau(0.5) == 0.0
    with pytest.raises(ParameterError, match="strategy"):
        NegativeSampler(hard, 2, "hardest")
    with pytest.raises(ParameterError, match="tau_end"):
        NegativeSampler(hard, 2, "curriculum", tau_end=0.0)


def test_topk_sampling_is_the_first_valid_candidates(hard):
    s = NegativeSampler(hard, 3, "topk")
    rows = np.arange(len(hard))
    out = s.sample(rows, 0.2, step=1)
    assert out.shape == (len(rows), 3) and out.dtype == np.int64
    exp = np.where(hard.valid[:, :3], hard.indices[:, :3], -1)
    assert np.array_equal(out, exp)
    assert np.array_equal(out, s.sample(rows, 0.9, step=7))


def test_softmax_sampling_reproducible_and_without_replacement(hard):
    rows = np.arange(0, len(hard), 3)
    s = NegativeSampler(hard, 4, "curriculum", seed=3)
    a, b = s.sample(rows, 0.5, step=11), s.sample(rows, 0.5, step=11)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, s.sample(rows, 0.5, step=12))
    assert not np.array_equal(a, NegativeSampler(hard, 4, "curriculum", seed=4).sample(rows, 0.5, step=11))
    for r, row in zip(rows, a):
        got = row[row >= 0]
        assert len(set(got.tolist())) == len(got) == min(4, hard.n_valid[r])
        assert set(got.tolist()) <= set(hard.indices[r][hard.valid[r]].tolist())
    p = s.probabilities(rows, 1.0)  # tau = 0.001: stable, no NaN
    assert np.isfinite(p).all()
    np.testing.assert_allclose(p.sum(axis=1)[hard.n_valid[rows] > 0], 1.0)


def test_tiny_tau_is_top_k_and_large_tau_is_uniform(hard):
    rows = np.flatnonzero(hard.n_valid == hard.indices.shape[1])
    top = NegativeSampler(hard, 2, "topk").sample(rows, 0.0)
    cold = NegativeSampler(hard, 2, "curriculum").sample(rows, 1.0, step=5)  # tau' = 0.001
    assert np.isin(cold, [-1], invert=True).all()
    agree = np.mean([set(a) == set(b) for a, b in zip(cold.tolist(), top.tolist())])
    assert agree > 0.85, agree  # 0.93-0.97 over seeds 0-4: the median gap of adjacent candidates is ~0.01 = 10 tau
    frozen = NegativeSampler(hard, 2, "softmax", tau_start=1e-7).sample(rows, 0.0, step=5)
    assert np.mean([set(a) == set(b) for a, b in zip(frozen.tolist(), top.tolist())]) > 0.98

    # tau = 1000: every candidate about equally likely (chi-square over 2,000 draws, fixed seed)
    hot = NegativeSampler(hard, 1, "softmax", tau_start=1000.0, seed=0)
    r = rows[:1]
    m = hard.indices.shape[1]
    pos = {int(j): p for p, j in enumerate(hard.indices[r[0]])}
    counts = np.zeros(m)
    for step in range(2000):
        counts[pos[int(hot.sample(r, 0.0, step=step)[0, 0])]] += 1
    expected = 2000 / m
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 37.7, (chi2, counts)  # 99.9% quantile of chi-square with 15 degrees of freedom
    # and at tau = 0.05 the best candidate is drawn more often than the worst
    warm = NegativeSampler(hard, 1, "softmax", tau_start=0.05, seed=0)
    draws = np.array([warm.sample(r, 0.0, step=s)[0, 0] for s in range(400)])
    assert (draws == hard.indices[r[0], 0]).sum() > (draws == hard.indices[r[0], -1]).sum()


def test_batch_negatives_exclude_batch_positives_and_padding(hard, corpus):
    df, _, _ = corpus
    s = NegativeSampler(hard, 4, "softmax", seed=1)
    rows = np.arange(40)
    neg = s.batch_negatives(rows, 0.0, step=2)
    assert len(np.unique(neg)) == len(neg) and not np.isin(neg, rows).any() and (neg >= 0).all()
    hook = s.trainer_hook(df["code"].tolist())
    texts = hook(rows, 2, 0.0)
    gold = set(df["code"].iloc[rows])
    assert texts and not gold & set(texts) and texts == hook(rows, 2, 0.0)
    assert hook.key == s.trainer_hook(df["code"].tolist()).key != NegativeSampler(hard, 4, "topk").trainer_hook(
        df["code"].tolist()
    ).key
    with pytest.raises(ParameterError, match="codes"):
        s.trainer_hook(df["code"].tolist()[:-1])


# ----------------------------------------------------------------------------- trainer hook
def test_trainer_negatives_change_the_loss_and_resume_exactly(minilm, corpus, tmp_path):
    df, _, _ = corpus
    pairs = df.iloc[1:17].reset_index(drop=True)  # 16 real pairs
    Q, C = embed_pairs(minilm, pairs, show_progress=False)
    hard = mine_hard_negatives(Q, C, M=4, gamma=0.95, codes=pairs["code"].tolist())
    hook = NegativeSampler(hard, 2, "curriculum", seed=0).trainer_hook(pairs["code"].tolist())
    cfg = TrainConfig(
        epochs=2, batch_size=8, lr=1e-4, warmup_ratio=0.0, seed=7, save_every_steps=2,
        max_query_len=32, max_code_len=48,
    )
    calls = []

    def spy(rows, step, progress):
        calls.append((step, progress))
        return hook(rows, step, progress)

    full = copy.deepcopy(minilm)
    ref = train(full, pairs, cfg, tmp_path / "full", show_progress=False, negatives=spy, negatives_key=hook.key)
    assert [s for s, _ in calls] == [1, 2, 3, 4] and [p for _, p in calls] == pytest.approx([0, 1 / 3, 2 / 3, 1])
    assert ref.meta["negatives"] == hook.key
    plain = train(
        copy.deepcopy(minilm), pairs, TrainConfig(**{**cfg.to_dict(), "max_steps": 1}),
        tmp_path / "plain", show_progress=False,
    )
    # step 1 sees the same weights, batch and dropout: extra negatives only add to the denominator
    assert ref.history["loss"].iloc[0] > plain.history["loss"].iloc[0] + 1e-4
    assert "negatives" not in plain.meta  # runs without negatives keep their old resume keys
    dyn = ref.dynamics
    assert dyn["rank"].between(1, 8).all()  # in_batch dynamics: the batch's 8 codes only

    part = copy.deepcopy(minilm)
    with pytest.raises(TrainingInterrupted):
        train(part, pairs, cfg, tmp_path / "part", show_progress=False, negatives=hook, stop_after_steps=3)
    resumed_enc = copy.deepcopy(minilm)
    resumed = train(resumed_enc, pairs, cfg, tmp_path / "part", show_progress=False, negatives=hook)
    assert resumed.resumed_from_step == 2
    a, b = full.state_dict(), resumed_enc.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ from the uninterrupted run"
    pd.testing.assert_frame_equal(ref.dynamics, resumed.dynamics)
    pd.testing.assert_series_equal(ref.history["loss"], resumed.history["loss"])

    other = NegativeSampler(hard, 2, "topk").trainer_hook(pairs["code"].tolist())
    with pytest.raises(ParameterError, match="negatives"):
        train(copy.deepcopy(minilm), pairs, cfg, tmp_path / "part", show_progress=False, negatives=other)
    with pytest.raises(ParameterError, match="negatives_key"):
        train(copy.deepcopy(minilm), pairs, cfg, tmp_path / "x", show_progress=False, negatives=lambda r, s, p: [])


def test_ablation_arms_follow_table_5(corpus):
    from workbench.curation import ABLATION_ARMS, ablation_arms

    df, Q, C = corpus
    arms = ablation_arms(df, Q, C, k=2, delta=0.4, M=8, n_per_query=2, depth=16)
    assert tuple(a.name for a in arms) == ABLATION_ARMS
    assert len(arms[0].pairs) == len(df) and arms[0].negatives is None and arms[1].negatives is None
    kept = consistency_filter(Q, C, k=2, delta=0.4)["kept"]
    assert arms[1].pairs["id"].tolist() == df["id"][kept.to_numpy()].tolist()
    assert all(a.pairs is arms[1].pairs for a in arms[2:])
    keys = {a.negatives.key for a in arms[2:]}
    assert len(keys) == 3 and [a.negatives.sampler.strategy for a in arms[2:]] == ["topk", "softmax", "curriculum"]
    ex = removed_examples(df, consistency_filter(Q, C, k=2, delta=0.4), n=3, order="highest", reason="below_delta")
    assert (ex["reason"] == "below_delta").all() and ex["self_score"].is_monotonic_decreasing


def test_ablation_arms_can_be_chosen_and_keep_the_baseline(corpus):
    from workbench.curation import ablation_arms

    df, Q, C = corpus
    arms = ablation_arms(df, Q, C, k=2, delta=0.4, M=8, n_per_query=2, depth=16, names=("curriculum", "filtering"))
    assert [a.name for a in arms] == ["none", "filtering", "curriculum"]  # the table's order, "none" always
    with pytest.raises(ParameterError, match="unknown arm.*'hardest'"):
        ablation_arms(df, Q, C, names=("none", "hardest"))


def test_the_default_arms_are_table_5():
    from workbench.config import Params
    from workbench.curation import ABLATION_ARMS

    assert Params().ablation_arms == ABLATION_ARMS


def test_an_unknown_arm_is_refused_before_any_work():
    from workbench.config import resolve

    assert resolve("tour").ablation_arms == ("none", "filtering", "curriculum")
    with pytest.raises(ParameterError, match="'ablation_arms' must be a list of.*'hardest'"):
        resolve("cpu", {"ablation_arms": "none,hardest"})


def test_false_negatives_marked_in_the_explorer_are_never_mined(corpus, tmp_path):
    from workbench.curation import ablation_arms
    from workbench.viz.explorer import DataMapExplorer, load_false_negatives

    df, Q, C = corpus
    arms = ablation_arms(df, Q, C, k=2, delta=0.4, M=8, n_per_query=2, depth=16, names=("topk",))
    kept = arms[1].pairs.reset_index(drop=True)
    hard = arms[-1].negatives.sampler.hard
    # mark, for three queries, their hardest mined negative: the code a person found to answer them too
    rows = [r for r in range(len(kept)) if hard.valid[r, 0]][:3]
    marks = [(kept["id"][r], kept["id"][int(hard.indices[r, 0])]) for r in rows]
    dmap = pd.DataFrame({"pair_id": kept["id"], "confidence": 0.5, "variability": 0.1, "correctness": 0.5})
    ex = DataMapExplorer(dmap, kept, out_dir=tmp_path)
    for q, c in marks:
        ex.mark_false_negative(c, query_pair_id=q)
    ex.select([q for q, _ in marks])
    ex.export("marked")
    back = load_false_negatives("marked", tmp_path)
    assert back.values.tolist() == [list(m) for m in marks]
    again = ablation_arms(df, Q, C, k=2, delta=0.4, M=8, n_per_query=2, depth=16, names=("topk",), false_negatives=back)
    hard2 = again[-1].negatives.sampler.hard
    assert hard2.params["dropped"]["marked"] == 3
    for r, (_, c) in zip(rows, marks):
        code_row = int(kept.index[kept["id"] == c][0])
        assert code_row not in hard2.indices[r][hard2.valid[r]].tolist()  # gone from that query's negatives
        assert hard2.indices[r, 0] == hard.indices[r, 1]  # the next candidate moved up
    other = [r for r in range(len(kept)) if r not in rows]
    assert np.array_equal(hard2.indices[other], hard.indices[other])  # every other query untouched
    with pytest.raises(InputFormatError, match="no such training subset"):
        load_false_negatives("missing", tmp_path)
