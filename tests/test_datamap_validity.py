"""The data map's validity check (Swayamdipta et al. 2020, section 5): corrupt known pairs, see
whether low confidence flags them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from workbench import cartography
from workbench import datamap_validity as dv
from workbench.config import resolve
from workbench.errors import ParameterError


def _frame(n: int = 200, distinct: int = 50) -> pd.DataFrame:
    """``n`` pairs over ``distinct`` code texts (so identical code texts exist), 10 files in 4 packages."""
    return pd.DataFrame({
        "id": [f"p{i:04d}" for i in range(n)],
        "query": [f"query {i}" for i in range(n)],
        "code": [f"def f{i % distinct}():\n    return {i % distinct}" for i in range(n)],
        "source": [f"pkg{i % 4}" for i in range(n)],
        "path": [f"mod{i % 10}.py" for i in range(n)],
        "split": "train",
    })


# ------------------------------------------------------------------------------------ corrupt_pairs
@pytest.mark.parametrize("kind", dv.KINDS)
@pytest.mark.parametrize("fraction", [0.05, 0.123, 0.5])
def test_corrupt_pairs_replaces_exactly_the_rounded_share_never_with_the_same_code(kind, fraction):
    pairs = _frame()
    bad, corrupted = dv.corrupt_pairs(pairs, fraction, kind, seed=3)
    k = round(fraction * len(pairs))
    assert len(corrupted) == k and corrupted["pair_id"].is_unique
    assert list(corrupted.columns) == dv.CORRUPTION_COLUMNS and set(corrupted["kind"]) == {kind}
    # same ids, same order, same other columns; only the chosen rows' code differs, and never to the same text
    assert bad["id"].tolist() == pairs["id"].tolist()
    assert bad.drop(columns="code").equals(pairs.drop(columns="code"))
    changed = bad["code"] != pairs["code"]
    assert changed.sum() == k and set(bad.loc[changed, "id"]) == set(corrupted["pair_id"])
    assert pairs["code"].tolist() == _frame()["code"].tolist()  # the input is left alone
    # the new code is the donor's
    code_of = dict(zip(pairs["id"], pairs["code"]))
    new_of = dict(zip(bad["id"], bad["code"]))
    for pid, donor in zip(corrupted["pair_id"], corrupted["donor_id"]):
        assert donor != pid and new_of[pid] == code_of[donor] != code_of[pid]
    assert sum(corrupted.attrs["fallback_counts"].values()) == k
    if kind == "random_swap":
        assert set(corrupted["fallback"]) == {"random"}


def test_corrupt_pairs_is_deterministic_given_the_seed():
    pairs = _frame()
    a_pairs, a = dv.corrupt_pairs(pairs, 0.1, "near_miss", seed=7)
    b_pairs, b = dv.corrupt_pairs(pairs, 0.1, "near_miss", seed=7)
    assert a.equals(b) and a_pairs.equals(b_pairs)
    _, c = dv.corrupt_pairs(pairs, 0.1, "near_miss", seed=8)
    assert set(c["pair_id"]) != set(a["pair_id"])


def test_near_misses_come_from_the_same_file_then_package_then_anywhere():
    pairs = pd.DataFrame({
        "id": ["a1", "a2", "a3", "b1", "c1", "d1"],
        "query": ["q"] * 6,
        "code": ["def a1(): 1", "def a2(): 2", "def a3(): 3", "def b1(): 4", "def c1(): 5", "def d1(): 6"],
        "source": ["pkgA", "pkgA", "pkgA", "pkgA", "pkgB", "pkgC"],
        "path": ["x.py", "x.py", "x.py", "y.py", "z.py", "w.py"],
    })
    for seed in range(5):
        bad, corrupted = dv.corrupt_pairs(pairs, 0.99, "near_miss", seed=seed)  # round(5.94) = all 6 pairs
        level = dict(zip(corrupted["pair_id"], corrupted["fallback"]))
        donor = dict(zip(corrupted["pair_id"], corrupted["donor_id"]))
        assert level == {"a1": "file", "a2": "file", "a3": "file", "b1": "package", "c1": "random", "d1": "random"}
        assert all(donor[p] in {"a1", "a2", "a3"} - {p} for p in ("a1", "a2", "a3"))  # same file, another function
        assert donor["b1"] in {"a1", "a2", "a3"}  # y.py has no other function: the same package
        assert donor["c1"] != "c1" and donor["d1"] != "d1"
        assert corrupted.attrs["fallback_counts"] == {"file": 3, "package": 1, "random": 2}


def test_a_file_whose_other_function_has_the_same_text_falls_back_to_the_package():
    pairs = pd.DataFrame({
        "id": ["a1", "a2", "b1"], "query": ["q"] * 3, "code": ["same", "same", "other"],
        "source": ["pkgA"] * 3, "path": ["x.py", "x.py", "y.py"],
    })
    bad, corrupted = dv.corrupt_pairs(pairs, 0.34, "near_miss", seed=0)  # one pair
    row = corrupted.iloc[0]
    if row["pair_id"] in ("a1", "a2"):
        assert row["fallback"] == "package" and row["donor_id"] == "b1"
    else:
        assert row["fallback"] == "package" and row["donor_id"] in ("a1", "a2")
    assert (bad["code"] != pairs["code"]).sum() == 1


def test_donors_can_be_a_larger_table():
    pairs = _frame(40)
    donors = pd.concat([pairs, _frame(400, distinct=400).assign(id=lambda d: "x" + d["id"])], ignore_index=True)
    bad, corrupted = dv.corrupt_pairs(pairs, 0.25, "random_swap", seed=1, donors=donors)
    assert len(corrupted) == 10 and set(corrupted["donor_id"]) <= set(donors["id"])
    assert bad["id"].tolist() == pairs["id"].tolist()


@pytest.mark.parametrize("kwargs, fragment", [
    ({"fraction": 0}, "strictly between 0 and 1"),
    ({"fraction": 1.0}, "strictly between 0 and 1"),
    ({"fraction": -0.1}, "strictly between 0 and 1"),
    ({"fraction": True}, "strictly between 0 and 1"),
    ({"fraction": "0.1"}, "strictly between 0 and 1"),
    ({"fraction": 0.001}, "rounds to no pair"),
    ({"kind": "flip"}, "kind must be one of"),
    ({"seed": 1.5}, "seed must be an integer"),
])
def test_corrupt_pairs_refuses_bad_parameters(kwargs, fragment):
    with pytest.raises(ParameterError, match=fragment):
        dv.corrupt_pairs(_frame(), **{"fraction": 0.05, "kind": "random_swap", **kwargs})


def test_corrupt_pairs_names_the_missing_column():
    with pytest.raises(ParameterError, match="missing column 'path'"):
        dv.corrupt_pairs(_frame().drop(columns="path"), 0.1, "near_miss")
    dv.corrupt_pairs(_frame().drop(columns=["path", "source"]), 0.1, "random_swap")  # random swaps need neither
    with pytest.raises(ParameterError, match="missing column 'code'"):
        dv.corrupt_pairs(_frame().drop(columns="code"), 0.1, "random_swap")
    with pytest.raises(ParameterError, match="donors: missing column 'source'"):
        dv.corrupt_pairs(_frame(), 0.1, "near_miss", donors=_frame().drop(columns="source"))
    with pytest.raises(ParameterError, match="appears twice"):
        dv.corrupt_pairs(pd.concat([_frame(10), _frame(10)]), 0.1)
    one_code = _frame(20).assign(code="the same")
    with pytest.raises(ParameterError, match="no donor"):
        dv.corrupt_pairs(one_code, 0.1)


# --------------------------------------------------------------------------------- flag_auc & co
def _map(conf) -> pd.DataFrame:
    conf = np.asarray(conf, dtype=float)
    return pd.DataFrame({"pair_id": [f"p{i}" for i in range(len(conf))], "confidence": conf,
                         "variability": np.full(len(conf), 0.1)})


def test_flag_auc_is_one_when_the_corrupted_pairs_are_the_least_confident():
    dmap = _map(np.linspace(0.1, 1.0, 10))
    r = dv.flag_auc(dmap, ["p0", "p1"])
    assert r["auc"] == 1.0 and r["precision_at_rate"] == 1.0
    assert r["n"] == 10 and r["n_corrupted"] == 2 and r["rate"] == 0.2 and r["n_missing"] == 0
    assert r["median_corrupted"] == pytest.approx(0.15) and r["median_clean"] == pytest.approx(0.65)
    assert dv.flag_auc(dmap, ["p8", "p9"])["auc"] == 0.0  # the most confident: low confidence flags nothing


def test_flag_auc_by_hand_and_against_sklearn():
    conf = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    corrupted = pd.DataFrame({"pair_id": ["p0", "p4", "nowhere"], "kind": "random_swap"})  # a table works too
    r = dv.flag_auc(_map(conf), corrupted)
    # p0 (0.1) is below all 8 clean pairs, p4 (0.5) below 5 of them: (8 + 5) / 16
    assert r["auc"] == pytest.approx(13 / 16)
    assert r["auc"] == pytest.approx(roc_auc_score([1, 0, 0, 0, 1, 0, 0, 0, 0, 0], -np.asarray(conf)))
    assert r["precision_at_rate"] == 0.5  # the 2 least confident: p0 (corrupted) and p1 (clean)
    assert r["n_corrupted"] == 2 and r["n_missing"] == 1


def test_flag_auc_is_about_one_half_for_unrelated_confidence_and_ties_count_fairly():
    rng = np.random.default_rng(0)
    dmap = _map(rng.uniform(size=2000))
    ids = rng.choice(dmap["pair_id"], size=100, replace=False)
    r = dv.flag_auc(dmap, ids)
    assert abs(r["auc"] - 0.5) < 0.08 and r["precision_at_rate"] < 0.2
    flat = dv.flag_auc(_map(np.full(20, 0.7)), ["p3", "p9", "p15", "p19"])
    assert flat["auc"] == 0.5 and flat["precision_at_rate"] == pytest.approx(4 / 20)  # all tied: the expected share


def test_flag_auc_refuses_unusable_inputs():
    dmap = _map([0.1, 0.2, 0.3])
    with pytest.raises(ParameterError, match="none of the 1 corrupted ids"):
        dv.flag_auc(dmap, ["elsewhere"])
    with pytest.raises(ParameterError, match="every pair"):
        dv.flag_auc(dmap, ["p0", "p1", "p2"])
    with pytest.raises(ParameterError, match="missing column 'correctness'"):
        dv.flag_auc(dmap, ["p0"], score="correctness")
    with pytest.raises(ParameterError, match="one string"):
        dv.flag_auc(dmap, "p0")


def test_saturation():
    dmap = _map([0.5, 0.91, 0.9, 0.99])
    assert dv.saturation(dmap) == 0.5  # strictly above 0.9
    assert dv.saturation(dmap, threshold=0.4) == 1.0
    assert np.isnan(dv.saturation(_map([])))
    with pytest.raises(ParameterError, match="threshold"):
        dv.saturation(dmap, threshold=2)


def test_region_profile_by_hand():
    dmap = pd.DataFrame({
        "pair_id": ["a", "b", "c", "d", "e", "f"],
        "confidence": [0.95, 0.9, 0.5, 0.4, 0.1, 0.05],
        "variability": [0.01, 0.02, 0.3, 0.25, 0.02, 0.01],
        "category": pd.Categorical(["easy-to-learn", "easy-to-learn", "ambiguous", "ambiguous", "hard-to-learn",
                                    "hard-to-learn"], categories=list(cartography.CATEGORIES)),
    })
    pairs = pd.DataFrame({"id": list("abcdef"), "query": ["q" * n for n in (1, 3, 5, 7, 9, 11)],
                          "code": ["c" * n for n in (10, 20, 30, 40, 50, 60)]})
    corrupted = pd.DataFrame({"pair_id": ["e", "f", "c"], "kind": ["random_swap", "near_miss", "near_miss"]})
    ranks = pd.Series([1, 2, 3, 4, 100, 200], index=list("abcdef"))
    prof = dv.region_profile(dmap, pairs, corrupted, ranks)
    assert prof.index.tolist() == [*cartography.CATEGORIES, "all"]
    assert prof["pairs"].tolist() == [2, 2, 2, 6]
    hard = prof.loc["hard-to-learn"]
    assert hard["confidence min"] == 0.05 and hard["confidence max"] == 0.1 and hard["confidence median"] == pytest.approx(0.075)
    assert hard["query chars (median)"] == 10 and hard["code chars (median)"] == 55
    assert hard["corrupted: random_swap"] == 0.5 and hard["corrupted: near_miss"] == 0.5
    assert prof.loc["ambiguous", "corrupted: near_miss"] == 0.5 and prof.loc["easy-to-learn", "corrupted: near_miss"] == 0
    assert prof.loc["all", "corrupted: near_miss"] == pytest.approx(2 / 6)
    assert hard["zero-shot gold rank (median)"] == 150 and prof.loc["easy-to-learn", "zero-shot gold rank (median)"] == 1.5
    plain = dv.region_profile(dmap, pairs)
    assert not any(c.startswith("corrupted") or c.startswith("zero-shot") for c in plain.columns)
    empty = dv.region_profile(dmap.assign(category=pd.Categorical(["ambiguous"] * 6, categories=list(cartography.CATEGORIES))), pairs)
    assert empty.loc["easy-to-learn", "pairs"] == 0 and np.isnan(empty.loc["easy-to-learn", "confidence median"])
    with pytest.raises(ParameterError, match="no 'category' column"):
        dv.region_profile(dmap.drop(columns="category"), pairs)
    with pytest.raises(ParameterError, match="not in pairs"):
        dv.region_profile(dmap, pairs.iloc[:3])


def test_marked_map_and_figure():
    dmap = _map([0.1, 0.5, 0.9])
    corrupted = pd.DataFrame({"pair_id": ["p0"], "kind": ["near_miss"]})
    assert dv.marked_map(dmap, corrupted)["corruption"].tolist() == ["near_miss", "clean", "clean"]
    pairs = pd.DataFrame({"id": ["p0", "p1", "p2"], "query": ["a <b>", "c", "d"], "code": ["x", "y", "z"]})
    fig = dv.corruption_figure(dmap, corrupted, pairs)
    assert [t.name for t in fig.data] == ["clean (2)", "near_miss (1)"]
    assert "a &lt;b&gt;" in fig.data[1].text[0]


def test_file_neighbours_pool_holds_the_other_functions_of_the_sample_files():
    from workbench.experiment import pool_codes

    corpus = _frame(200, distinct=200).assign(split=["train"] * 180 + ["test"] * 20)
    sample = corpus.iloc[[0, 1, 13]]  # files (pkg0, mod0), (pkg1, mod1), (pkg1, mod3): i = 0 / 1 / 13 mod 20
    assert pool_codes(corpus, sample, resolve("cpu")) is None  # the default: the sample's codes only
    extra = pool_codes(corpus, sample, resolve("cpu", {"datamap_pool": "file_neighbours"}))
    ids = [i for i in range(180) if i % 20 in (0, 1, 13) and i not in (0, 1, 13)]  # same file, train split
    assert extra == sorted(corpus["code"].iloc[ids]) and len(extra) == 3 * 8
    # a near miss's right function is among the candidates of its corrupted run
    train = corpus.iloc[:180]
    bad, corrupted = dv.corrupt_pairs(sample, 0.34, "near_miss", seed=0, donors=train)
    assert corrupted["fallback"].tolist() == ["file"]
    i = int(np.flatnonzero(bad["code"].to_numpy() != sample["code"].to_numpy())[0])
    assert sample["code"].iloc[i] in pool_codes(corpus, bad, resolve("cpu", {"datamap_pool": "file_neighbours"}))
    with pytest.raises(ParameterError, match="datamap_pool"):
        resolve("cpu", {"datamap_pool": "corpus"})


def test_the_parameters_of_the_check():
    from workbench.config import VALIDITY_KINDS

    assert VALIDITY_KINDS == dv.KINDS
    assert resolve("cpu").datamap_validity is True and resolve("cpu").validity_fraction == 0.05
    assert resolve("cpu").validity_kinds == tuple(dv.KINDS)
    smoke = resolve("smoke")
    assert smoke.validity_kinds == ("random_swap",) and smoke.validity_modes == ("in_batch",)
    for bad, fragment in [({"validity_fraction": 0}, "validity_fraction"), ({"validity_fraction": 1}, "validity_fraction"),
                          ({"validity_kinds": "random_swap,flip"}, "validity_kinds"), ({"validity_kinds": ""}, "validity_kinds"),
                          ({"validity_modes": "both"}, "validity_modes")]:
        with pytest.raises(ParameterError, match=fragment):
            resolve("cpu", bad)


# ------------------------------------------------------------------------------ a real training run
@pytest.mark.slow
def test_validity_check_end_to_end_on_the_smoke_corpus(tmp_path):
    """Random swaps of 15% of the smoke data-map run's 96 pairs, two epochs, in-batch dynamics: low
    confidence finds them (a run that ignored the corruption, or scored the wrong pairs, sits near
    AUC 0.5: its null spread with 14 of 96 pairs corrupted is about 0.08)."""
    from workbench.corpus import build_corpus
    from workbench.experiment import training_sample

    pairs = build_corpus("smoke", progress=False)
    params = resolve("smoke")
    assert params.datamap_pairs == 96 and params.datamap_epochs == 2
    table = dv.validity_check(pairs, params, tmp_path, kinds=["random_swap"], fraction=0.15, show_progress=False,
                              modes=["in_batch"])
    assert table[["kind", "mode"]].values.tolist() == [["random_swap", "in_batch"]]
    row = table.iloc[0]
    assert row["n_pairs"] == 96 and row["n_corrupted"] == round(0.15 * 96) == row["donor_random"]
    assert row["auc"] > 0.8 and row["precision_at_rate"] > 0.5
    assert row["median_conf_corrupted"] < row["median_conf_clean"]
    assert 0 <= row["saturation"] <= 1
    # the run is read back from disk, and a re-run reuses it (same numbers, no training)
    saved = dv.saved_run(pairs, params, tmp_path, "random_swap", 0.15)
    assert saved is not None and saved.corrupted.equals(pd.read_parquet(tmp_path / "random_swap" / "corruption.parquet"))
    clean = training_sample(pairs, params.datamap_pairs, params.seed)
    assert saved.pairs["id"].tolist() == clean["id"].tolist() and (saved.pairs["code"] != clean["code"]).sum() == 14
    again = dv.validity_check(pairs, params, tmp_path, kinds="random_swap", fraction=0.15, show_progress=False,
                              modes="in_batch")
    pd.testing.assert_frame_equal(again, table)
    assert dv.saved_run(pairs, params, tmp_path, "near_miss", 0.15) is None
    m = cartography.categorize(saved.data_map("in_batch"))
    prof = dv.region_profile(m, saved.pairs, saved.corrupted)
    assert prof.loc["all", "pairs"] == 96 and prof.loc["all", "corrupted: random_swap"] == pytest.approx(14 / 96)
