"""OASIS order labels: repository negatives, annotator labels, GMM crossing point, AST distances,
the LLM judge's parsing, refinement and the CoSENT objective (papers/001)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
import torch

from workbench.errors import ParameterError
from workbench.oasis.labels import similarity_labels
from workbench.oasis.negatives import repository_negatives
from workbench.oasis.refine import (
    apply_refinement,
    ast_candidates,
    crossing_point,
    gmm_crossing,
    judge_requests,
    normalized_tree_edit_distance,
    parse_judgement,
    threshold_candidates,
)
from workbench.training.losses import cosent


def _corpus() -> pd.DataFrame:
    rows = []
    # package "a": 3 functions in a/x.py, 3 in a/y.py; package "b": 2 functions
    for i in range(3):
        rows.append((f"ax{i}", f"query ax{i}", f"def ax{i}():\n    return {i}", "a", "a/x.py"))
    for i in range(3):
        rows.append((f"ay{i}", f"query ay{i}", f"def ay{i}():\n    return {i} + 1", "a", "a/y.py"))
    rows.append(("b0", "query b0", "def b0():\n    pass", "b", "b/z.py"))
    rows.append(("b1", "query b1", "def b1():\n    pass", "b", "b/w.py"))
    return pd.DataFrame(rows, columns=["id", "query", "code", "source", "path"])


# ------------------------------------------------------------------------------ negatives
def test_repository_negatives_take_the_same_module_first_and_never_leave_the_package():
    df = _corpus()
    neg = repository_negatives(df, k=4, seed=1)
    pkg = dict(zip(df["id"], df["source"]))
    path = dict(zip(df["id"], df["path"]))
    assert (neg["query_id"] != neg["code_id"]).all()
    assert all(pkg[q] == pkg[c] for q, c in zip(neg["query_id"], neg["code_id"]))
    for q, g in neg.groupby("query_id"):
        g = g.sort_values("rank")
        assert g["rank"].tolist() == list(range(len(g)))
        if pkg[q] == "a":  # 2 others in the same file, then 2 of the other file
            assert len(g) == 4
            assert g["same_module"].tolist() == [True, True, False, False]
            assert all(path[c] == path[q] for c in g["code_id"].head(2))
        else:  # package b has one other function
            assert g["code_id"].tolist() == ["b1" if q == "b0" else "b0"]
    assert neg.attrs["shortfall"] == 2 * 3  # b0 and b1 each miss 3
    assert neg.attrs["pairs_without_negatives"] == 0


def test_repository_negatives_do_not_depend_on_row_order_and_change_with_the_seed():
    df = _corpus()
    a = repository_negatives(df, k=3, seed=7)
    b = repository_negatives(df.sample(frac=1.0, random_state=3), k=3, seed=7)
    key = ["query_id", "rank"]
    pd.testing.assert_frame_equal(a.sort_values(key).reset_index(drop=True), b.sort_values(key).reset_index(drop=True))
    seeds = {tuple(repository_negatives(df, k=3, seed=s).sort_values(key)["code_id"]) for s in range(6)}
    assert len(seeds) > 1


def test_repository_negatives_skip_copies_of_the_gold_code_or_query():
    df = _corpus()
    df.loc[df["id"] == "ax1", "code"] = df.loc[df["id"] == "ax0", "code"].iloc[0]  # the same function mined twice
    df.loc[df["id"] == "ax2", "query"] = "query ax0"  # an overload with the same docstring
    neg = repository_negatives(df, k=5, seed=0)
    assert set(neg.loc[neg["query_id"] == "ax0", "code_id"]).isdisjoint({"ax1", "ax2"})


def test_repository_negatives_name_the_missing_column_and_bad_k():
    with pytest.raises(ParameterError, match="path"):
        repository_negatives(_corpus().drop(columns=["path"]))
    with pytest.raises(ParameterError, match="k: expected"):
        repository_negatives(_corpus(), k=0)
    dup = pd.concat([_corpus(), _corpus().head(1)])
    with pytest.raises(ParameterError, match="duplicate id"):
        repository_negatives(dup)


def test_similarity_labels_are_the_annotators_cosines_with_positives_at_one(minilm):
    df = _corpus()
    neg = repository_negatives(df, k=2, seed=0)
    encode = lambda texts, side: minilm.encode(list(texts), kind=side, show_progress=False)  # noqa: E731
    labels = similarity_labels(df, neg, encode)
    assert len(labels) == len(df) + len(neg)
    pos = labels[labels["kind"] == "positive"]
    assert (pos["label"] == 1.0).all() and len(pos) == len(df)
    # rows come query by query, the positive first
    assert labels.groupby("query_id", sort=False)["kind"].first().eq("positive").all()
    q = dict(zip(df["id"], encode(df["query"].tolist(), "query")))
    c = dict(zip(df["id"], encode(df["code"].tolist(), "code")))
    for _, r in labels.iterrows():
        expected = float(q[r["query_id"]] @ c[r["code_id"]])
        assert r["sim_raw"] == pytest.approx(expected, abs=1e-5)
        if r["kind"] == "negative":
            assert r["label"] == pytest.approx(min(max(expected, 0.0), 1.0), abs=1e-5) and 0 <= r["label"] < 1
    seen = []
    some = similarity_labels(df, neg, lambda texts, side: seen.append((side, len(texts))) or encode(texts, side),
                             query_ids=["ax0", "b1"])
    assert set(some["query_id"]) == {"ax0", "b1"} and len(some) == 2 + 3  # ax0: 2 negatives, b1: 1
    assert seen == [("query", 2), ("code", 5)]  # only what these queries need is embedded
    pd.testing.assert_frame_equal(some.reset_index(drop=True),
                                  labels[labels["query_id"].isin(["ax0", "b1"])].reset_index(drop=True))


# ------------------------------------------------------------------------------ GMM crossing point
def test_crossing_point_of_known_mixtures():
    # equal weights and widths: the midpoint
    assert crossing_point((0.5, 0.5), (0.2, 0.6), (0.1, 0.1)) == pytest.approx(0.4)
    # unequal weights, equal widths: x = mid + s^2 ln(w1/w2) / (m2 - m1)
    x = crossing_point((0.8, 0.2), (0.2, 0.6), (0.1, 0.1))
    assert x == pytest.approx(0.4 + 0.01 * math.log(4) / 0.4)
    # unequal widths: the weighted densities are equal at the returned point, which lies between the means
    w, m, s = (0.7, 0.3), (0.25, 0.7), (0.08, 0.15)
    x = crossing_point(w, m, s)
    dens = [wi * math.exp(-0.5 * ((x - mi) / si) ** 2) / si for wi, mi, si in zip(w, m, s)]
    assert m[0] < x < m[1] and dens[0] == pytest.approx(dens[1], rel=1e-9)


def test_gmm_crossing_recovers_the_crossing_of_the_generating_mixture():
    rng = np.random.default_rng(0)
    scores = np.concatenate([rng.normal(0.25, 0.08, 7000), rng.normal(0.7, 0.15, 3000)])
    fit = gmm_crossing(scores, seed=0)
    truth = crossing_point((0.7, 0.3), (0.25, 0.7), (0.08, 0.15))
    assert fit.means == pytest.approx((0.25, 0.7), abs=0.02)
    assert fit.crossing == pytest.approx(truth, abs=0.02)
    a, b = fit.density(np.array([fit.crossing]))
    assert a[0] == pytest.approx(b[0], rel=1e-6)
    with pytest.raises(ParameterError, match="all scores are equal"):
        gmm_crossing([0.3] * 10)


def test_threshold_candidates_above_the_positive_or_above_s_star():
    labels = pd.DataFrame({
        "query_id": ["q1", "q1", "q1", "q2", "q2"],
        "code_id": ["q1", "n1", "n2", "q2", "n3"],
        "kind": ["positive", "negative", "negative", "positive", "negative"],
        "sim_raw": [0.30, 0.35, 0.20, 0.80, 0.50],
    })
    assert threshold_candidates(labels, None).tolist() == [False, True, False, False, False]
    assert threshold_candidates(labels, 0.45).tolist() == [False, True, False, False, True]


# ------------------------------------------------------------------------------ tree edit distance
def test_normalized_tree_edit_distance_on_small_asts():
    f = "def f(x):\n    return x"
    # renaming costs nothing (labels are node types), identical code is 0
    assert normalized_tree_edit_distance(f, "def g(y):\n    return y") == 0.0
    # Module FunctionDef arguments arg Return Name (6) vs ... Return BinOp(Name Add Constant) (9): 3 inserts
    assert normalized_tree_edit_distance(f, "def f(x):\n    return x + 1") == pytest.approx(3 / 15)
    # one extra statement: Expr(Call(Name, Constant)) is 4 inserts; sizes 6 and 10
    assert normalized_tree_edit_distance(f, "def f(x):\n    print('hi')\n    return x") == pytest.approx(4 / 16)
    assert normalized_tree_edit_distance(f, "def f(:") is None
    big = "def f(x):\n" + "".join(f"    x = x + {i}\n" for i in range(60)) + "    return x"
    assert normalized_tree_edit_distance(f, big, max_nodes=100) is None
    assert 0 < normalized_tree_edit_distance(f, big, max_nodes=None) <= 1


def test_ast_candidates_prune_by_size_and_skip_large_trees():
    codes = {"q": "def f(x):\n    return x", "near": "def g(y):\n    return y + 1",
             "far": "def h(a, b):\n    for i in range(a):\n        b = b * i - a\n    print(b)\n    return [a, b]",
             "bad": "def (:"}
    labels = pd.DataFrame({"query_id": ["q"] * 4, "code_id": ["q", "near", "far", "bad"],
                           "kind": ["positive", "negative", "negative", "negative"]})
    dist, counts = ast_candidates(labels, codes, show_progress=False)
    assert dist[1] == pytest.approx(3 / 15)
    assert np.isnan(dist[0]) and np.isnan(dist[3])
    assert counts["unparsable"] == 1 and counts["computed"] + counts["pruned"] == 2
    assert (dist < 0.25).tolist() == [False, True, False, False]


# ------------------------------------------------------------------------------ judge and refinement
@pytest.mark.parametrize("reply,expected", [
    ("yes", True), ("Yes.", True), (" YES, it does", True), ("no", False), ("No, it sorts", False),
    ("maybe", None), ("", None), ("```", None),
])
def test_parse_judgement(reply, expected):
    assert parse_judgement(reply) is expected


def test_judge_requests_are_greedy_binary_questions():
    reqs = judge_requests(["sort a list"], ["def f(x):\n    return sorted(x)"])
    (messages, sampling), = reqs
    assert sampling.temperature == 0.0 and sampling.max_tokens <= 4
    assert "sort a list" in messages[-1]["content"] and "sorted(x)" in messages[-1]["content"]
    with pytest.raises(ParameterError):
        judge_requests(["a", "b"], ["c"])
    long = "def f(x):\n" + "".join(f"    x = x + {i}\n" for i in range(400))
    (msgs, _), = judge_requests(["q"], [long], max_code_chars=200)
    body = msgs[-1]["content"]
    assert "# ... (truncated)" in body and len(body) < 400 and "x = x + 399" not in body


def test_apply_refinement_scales_confirmed_negatives_and_keeps_them_below_the_positive():
    labels = pd.DataFrame({"kind": ["positive", "negative", "negative", "negative"], "label": [1.0, 0.5, 0.95, 0.3]})
    out = apply_refinement(labels, pd.Series([True, True, True, False]), delta_s=0.1)
    assert out["label"].iloc[0] == 1.0  # a positive is never changed
    assert out["label"].iloc[1] == pytest.approx(0.55)
    assert 0.99 < out["label"].iloc[2] < 1.0
    assert out["label"].iloc[3] == 0.3
    assert out["refined"].tolist() == [False, True, True, False]
    assert labels["label"].tolist() == [1.0, 0.5, 0.95, 0.3]  # the input is not modified


# ------------------------------------------------------------------------------ CoSENT
def _cosent_brute(cos, labels, tau, groups=None):
    total = 1.0
    for a in range(len(cos)):
        for b in range(len(cos)):
            if labels[a] > labels[b] and (groups is None or groups[a] == groups[b]):
                total += math.exp((cos[b] - cos[a]) / tau)
    return math.log(total)


def test_cosent_equals_a_brute_force_computation():
    assert float(cosent(torch.tensor([0.5, 0.7]), torch.tensor([1.0, 0.0]))) == pytest.approx(math.log(1 + math.exp(4)), rel=1e-6)
    rng = np.random.default_rng(0)
    cos = rng.uniform(-1, 1, 12)
    labels = rng.choice([0.0, 0.2, 0.45, 1.0], 12)  # ties contribute nothing
    groups = rng.integers(0, 3, 12)
    for tau in (0.05, 0.5):
        got = cosent(torch.tensor(cos, dtype=torch.float64), torch.tensor(labels), tau)
        assert float(got) == pytest.approx(_cosent_brute(cos, labels, tau), rel=1e-9)
        got_g = cosent(torch.tensor(cos, dtype=torch.float64), torch.tensor(labels), tau, torch.tensor(groups))
        assert float(got_g) == pytest.approx(_cosent_brute(cos, labels, tau, groups), rel=1e-9)
    # correctly ordered and well separated: close to 0; reversed: large
    assert float(cosent(torch.tensor([0.9, 0.1]), torch.tensor([1.0, 0.0]))) < 1e-6
    assert float(cosent(torch.tensor([0.1, 0.9]), torch.tensor([1.0, 0.0]))) > 15


def test_cosent_gradients_are_correct():
    rng = np.random.default_rng(1)
    cos = torch.tensor(rng.uniform(-1, 1, 8), dtype=torch.float64, requires_grad=True)
    labels = torch.tensor(rng.uniform(0, 1, 8), dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda c: cosent(c, labels, 0.3), (cos,))
    # the gradient pushes a higher-labelled pair's cosine up and a lower one's down
    c2 = torch.tensor([0.2, 0.4], dtype=torch.float64, requires_grad=True)
    cosent(c2, torch.tensor([1.0, 0.0], dtype=torch.float64), 0.05).backward()
    assert c2.grad[0] < 0 < c2.grad[1]


def test_cosent_rejects_bad_shapes_and_temperature():
    with pytest.raises(ParameterError, match="same shape"):
        cosent(torch.zeros(3), torch.zeros(4))
    with pytest.raises(ParameterError, match="temperature"):
        cosent(torch.zeros(3), torch.zeros(3), 0.0)


# ------------------------------------------------------------------------------ the training objective
def _labels_frame() -> tuple[pd.DataFrame, dict[str, str]]:
    df = _corpus()
    neg = repository_negatives(df, k=2, seed=0)
    q = pd.DataFrame({"query_id": df["id"], "code_id": df["id"], "kind": "positive", "label": 1.0})
    n = neg.assign(kind="negative", label=np.linspace(0.1, 0.6, len(neg)))[["query_id", "code_id", "kind", "label"]]
    return pd.concat([q, n], ignore_index=True), dict(zip(df["id"], df["code"]))


def test_order_label_hook_gives_each_batch_row_its_negatives_and_labels():
    from workbench.oasis.objective import OrderLabelHook

    labels, codes = _labels_frame()
    ids = list(codes)
    hook = OrderLabelHook(ids, labels, codes)
    out = hook(np.array([6, 0]), step=1, progress=0.0)  # b0 (one negative), ax0 (two)
    assert out.rows.tolist() == [0, 1, 1]
    assert out.texts[0] == codes["b1"]
    expected = labels[(labels["kind"] == "negative") & (labels["query_id"] == "ax0")]
    assert out.texts[1:] == [codes[c] for c in expected["code_id"]]
    assert out.labels.tolist() == pytest.approx([*labels.loc[(labels["query_id"] == "b0") & (labels["kind"] == "negative"), "label"],
                                                 *expected["label"]])
    assert out.positive_labels.tolist() == [1.0, 1.0]
    assert OrderLabelHook(ids, labels, codes).key == hook.key
    changed = labels.copy()
    changed.loc[changed["kind"] == "negative", "label"] += 0.01  # a refinement changes the resume key
    assert OrderLabelHook(ids, changed, codes).key != hook.key
    with pytest.raises(ParameterError, match="no positive row"):
        OrderLabelHook([*ids, "zz"], labels, codes)


def test_order_loss_is_cosent_over_positives_and_labelled_negatives():
    import torch.nn.functional as F

    from workbench.training.step import order_loss
    from workbench.training.train_config import LabelledNegatives, TrainConfig

    g = torch.Generator().manual_seed(0)
    q, c, neg = (F.normalize(torch.randn(n, 8, generator=g), dim=-1) for n in (3, 3, 4))
    order = LabelledNegatives(["a", "b", "c", "d"], np.array([0, 0, 1, 2]), np.array([0.3, 0.5, 0.2, 0.9]),
                              np.ones(3))
    got = order_loss(q, c, neg, order, TrainConfig(order_weight=0.02, contrastive_weight=0.98))
    cos = [float(q[i] @ c[i]) for i in range(3)] + [float(q[r] @ neg[k]) for k, r in enumerate([0, 0, 1, 2])]
    assert float(got) == pytest.approx(_cosent_brute(cos, [1, 1, 1, 0.3, 0.5, 0.2, 0.9], 0.05), rel=1e-5)


def test_training_with_order_labels_runs_and_needs_a_labelled_hook(minilm, tmp_path):
    import copy

    from workbench.oasis.objective import OrderLabelHook
    from workbench.training import TrainConfig, train

    labels, codes = _labels_frame()
    pairs = _corpus()[["id", "query", "code"]]
    cfg = TrainConfig(batch_size=4, epochs=1, contrastive_weight=0.98, order_weight=0.02, dynamics_mode="none", seed=3)
    with pytest.raises(ParameterError, match="order labels"):
        train(copy.deepcopy(minilm), pairs, cfg, out_dir=tmp_path / "none", show_progress=False)
    enc = copy.deepcopy(minilm)
    before = [p.detach().clone() for p in enc.parameters()][:4]
    result = train(enc, pairs, cfg, out_dir=tmp_path / "oasis", show_progress=False,
                   negatives=OrderLabelHook(pairs["id"], labels, codes))
    assert len(result.history) == 2 and np.isfinite(result.history["loss"]).all()
    assert any(not torch.equal(a, b) for a, b in zip(before, list(enc.parameters())[:4]))
    with pytest.raises(ParameterError, match="contrastive_weight"):
        TrainConfig(contrastive_weight=0.0, order_weight=0.0)


# ------------------------------------------------------------------------------ the whole label build
def test_order_labels_build_refine_and_cache_on_the_mined_corpus(llm_server, tmp_path):
    """Real corpus, real annotator (mpnet), real judge (SmolLM2 behind llama_cpp.server): every
    negative is labelled, the strategies refine only judged-yes candidates, and a second call loads
    the same labels from disk without asking the LLM again."""
    from workbench import config
    from workbench.corpus import build_corpus
    from workbench.llm import CachedLLM, OpenAIBackend
    from workbench.oasis.pipeline import STRATEGIES, order_labels

    P = config.resolve("smoke", {"oasis_pairs": 24, "oasis_negatives": 3, "oasis_judge_max": 12, "oasis_llm_queries": 3})
    pairs = build_corpus(P.corpus)
    llm = CachedLLM(OpenAIBackend(llm_server.base_url, llm_server.model, api_key=""), tmp_path / "llm")
    built = order_labels(pairs, P, llm, show_progress=False, out_root=tmp_path / "oasis")
    assert not built.summary["from_cache"] and len(built.train) == 24
    # the first 3 pairs asked the LLM for a docstring (from the code, its callers and callees)
    written = built.summary["llm_queries"]
    assert written["requested"] == 3 and written["valid"] + sum(written["rejected"].values()) == 3
    by_llm = built.train["query_by"] == "llm"
    assert int(by_llm.sum()) == written["valid"] and not by_llm.iloc[3:].any()
    assert (built.train.loc[by_llm, "query"] != built.train.loc[by_llm, "query_mined"]).all()
    assert (built.train.loc[~by_llm, "query"] == built.train.loc[~by_llm, "query_mined"]).all()
    none = built.labels["none"]
    assert (none.loc[none["kind"] == "positive", "label"] == 1.0).all()
    negs = none[none["kind"] == "negative"]
    assert len(negs) == built.summary["negatives"] > 0 and negs["label"].between(0, 1, inclusive="left").all()
    src = dict(zip(pairs["id"], pairs["source"]))
    assert all(src[q] == src[c] for q, c in zip(negs["query_id"], negs["code_id"]))
    judged = built.candidates["judge"].notna()
    assert built.summary["judge"]["sent"] == min(12, int(built.candidates["both_candidate"].sum()))
    assert not (judged & ~built.candidates["both_candidate"]).any()  # only candidates are judged
    for s in STRATEGIES[1:]:
        lab = built.labels[s]
        expect = (built.candidates[f"{s}_candidate"] & (built.candidates["judge"] == True)).fillna(False)  # noqa: E712
        assert lab["refined"].tolist() == expect.tolist()
        assert np.allclose(lab.loc[lab["refined"], "label"],
                           np.minimum(none.loc[lab["refined"], "label"] * (1 + P.oasis_delta_s), 1.0), atol=1e-6)
    fr = built.refined_fractions()
    assert set(fr["strategy"]) == {"threshold", "ast", "both"} and (fr["refined_fraction"] <= 1).all()
    from workbench.oasis.pipeline import judge_controls

    controls = judge_controls(built, pairs, llm, 3, seed=0, show_progress=False)
    assert controls["n"] == 3 and 0 <= controls["gold_yes_rate"] <= 1 and 0 <= controls["random_yes_rate"] <= 1
    assert controls["unparsable"] <= 6
    requests, misses = llm.stats()["requests"], llm.stats()["misses"]
    again = order_labels(pairs, P, llm, show_progress=False, out_root=tmp_path / "oasis")
    assert again.summary["from_cache"] and llm.stats()["requests"] == requests
    pd.testing.assert_frame_equal(again.labels["both"], built.labels["both"])
    # another delta_s is a new build, but the annotator's labels and the judge's replies are reused
    bigger = order_labels(pairs, dataclasses.replace(P, oasis_delta_s=0.2), llm, show_progress=False,
                          out_root=tmp_path / "oasis")
    assert not bigger.summary["from_cache"] and bigger.summary["timings"]["annotator_cached"] == 1.0
    assert llm.stats()["misses"] == misses  # docstrings and verdicts came from the LLM cache
    pd.testing.assert_series_equal(bigger.labels["none"]["sim_raw"], built.labels["none"]["sim_raw"])
    moved = bigger.labels["both"]["refined"]
    assert np.allclose(bigger.labels["both"].loc[moved, "label"],
                       np.minimum(none.loc[moved, "label"] * 1.2, 1.0), atol=1e-6)


def test_oasis_variants_parse_and_map_to_the_ablations_weights():
    from workbench import config
    from workbench.oasis.variants import VARIANTS, _weights, parse_variants

    P = config.resolve("cpu")
    assert parse_variants(P.oasis_variants) == list(VARIANTS)
    with pytest.raises(ParameterError, match="unknown variant"):
        parse_variants("full,bogus")
    assert _weights(VARIANTS["full"].weights, P) == {"contrastive_weight": 0.98, "order_weight": 0.02}
    assert _weights(VARIANTS["only_order"].weights, P) == {"contrastive_weight": 0.0, "order_weight": 1.0}
    assert _weights(VARIANTS["only_contrastive"].weights, P) == {"contrastive_weight": 1.0, "order_weight": 0.0}
    assert VARIANTS["infonce"].labels is None and VARIANTS["no_refinement"].labels == "none"
    assert {VARIANTS[n].labels for n in ("ast_only", "threshold_only", "full")} == {"ast", "threshold", "both"}


def test_oasis_variants_train_and_score_on_built_labels(tmp_path):
    """The ablation's training path end to end on a tiny labelled set: plain InfoNCE (no hook) and
    the full objective (labelled hook, 0.98 / 0.02) each train, are scored, and come back in the
    shapes the seed table takes; the full variant's resume key carries its order weights."""
    import json

    from workbench import config
    from workbench.oasis.pipeline import OrderLabels
    from workbench.oasis.variants import train_variants
    from workbench.tasks import task_from_pairs

    df = _corpus()
    labels, codes = _labels_frame()
    built = OrderLabels(df, codes, labels, {s: labels for s in ("none", "threshold", "ast", "both")}, {})
    P = config.resolve("smoke", {"batch_size": 4})
    tasks = {"id_test": task_from_pairs(df, "id_test")}
    summaries, per_query = train_variants(built, ["infonce", "full"], [5], tasks, P, tmp_path)
    assert sorted(summaries["model"]) == ["InfoNCE", "OASIS (full)"] and (summaries["seed"] == 5).all()
    assert set(per_query) == {"InfoNCE", "OASIS (full)"} and len(per_query["OASIS (full)"]["id_test"]) == 1
    full = json.loads((tmp_path / "full-seed5" / "train_config.json").read_text())
    plain = json.loads((tmp_path / "infonce-seed5" / "train_config.json").read_text())
    assert full["config"]["order_weight"] == 0.02 and full["config"]["contrastive_weight"] == 0.98
    assert full["negatives"].startswith("oasis-")
    assert "order_weight" not in plain["config"] and "negatives" not in plain  # keys of plain runs unchanged
