"""The ChatDANCE cross-encoder filter: metrics by hand, CoSQA parsing, and a real (small) training run."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from workbench.augment.filtering import (
    binary_metrics,
    load_cosqa_labelled,
    pairwise_accuracy,
    score_figure,
    strip_docstring,
    threshold_table,
    validate_cosqa,
    validate_pairs,
)
from workbench.errors import InputFormatError, ParameterError, WorkbenchError
from workbench.models.cross_encoder import (
    CONFIG_NAME,
    CrossEncoderFilter,
    mine_negatives,
    pair_examples,
    train_cross_encoder,
)

# ------------------------------------------------------------------------------ metrics (pure)
SCORES = [0.9, 0.8, 0.6, 0.4, 0.3, 0.1]
LABELS = [1, 0, 1, 0, 1, 0]


def test_binary_metrics_hand_computed():
    m = binary_metrics(SCORES, LABELS, thresholds=(0.5, 0.75, 0.95, 0.6))
    # AUC: of the 9 (positive, negative) pairs the positive wins 0.9>all 3, 0.6>0.4,0.1, 0.3>0.1 = 6
    assert m["roc_auc"] == pytest.approx(6 / 9)
    assert (m["n"], m["positives"]) == (6, 3)
    assert m["mean_score_pos"] == pytest.approx(0.6) and m["mean_score_neg"] == pytest.approx(1.3 / 3)
    t = {r["threshold"]: r for r in m["thresholds"]}
    # 0.5 keeps 0.9 (pos), 0.8 (neg), 0.6 (pos): 4 of 6 right
    assert t[0.5]["accuracy"] == pytest.approx(4 / 6)
    assert t[0.5]["precision"] == pytest.approx(2 / 3) and t[0.5]["recall"] == pytest.approx(2 / 3)
    assert t[0.5]["kept_fraction"] == pytest.approx(0.5) and t[0.5]["kept"] == 3
    # 0.75 keeps 0.9, 0.8: right on 0.9, 0.4, 0.1
    assert t[0.75]["accuracy"] == pytest.approx(3 / 6)
    assert t[0.75]["precision"] == pytest.approx(1 / 2) and t[0.75]["recall"] == pytest.approx(1 / 3)
    # 0.95 keeps nothing: precision undefined, recall 0
    assert t[0.95]["precision"] is None and t[0.95]["recall"] == 0.0 and t[0.95]["kept"] == 0
    # score == threshold is kept (ChatDANCE keeps score >= theta)
    assert t[0.6]["kept"] == 3 and t[0.6]["recall"] == pytest.approx(2 / 3)
    table = threshold_table(m)
    assert list(table["threshold"]) == [0.5, 0.75, 0.95, 0.6] and (table["roc_auc"] == m["roc_auc"]).all()
    json.dumps(m)  # JSON-clean (None, not NaN)


def test_binary_metrics_ties_one_class_and_errors():
    assert binary_metrics([0.5, 0.5], [1, 0])["roc_auc"] == pytest.approx(0.5)
    assert binary_metrics([0.2, 0.9], [1, 1])["roc_auc"] is None
    with pytest.raises(ParameterError, match="3 scores but 2 labels"):
        binary_metrics([0.1, 0.2, 0.3], [0, 1])
    with pytest.raises(ParameterError, match="0 or 1"):
        binary_metrics([0.1, 0.2], [0, 2])
    with pytest.raises(ParameterError, match="no scores"):
        binary_metrics([], [])
    with pytest.raises(ParameterError, match="thresholds"):
        binary_metrics([0.1, 0.2], [0, 1], thresholds=(1.5,))
    assert pairwise_accuracy([0.9, 0.5, 0.1], [0.1, 0.5, 0.9]) == pytest.approx(0.5)
    assert pairwise_accuracy([0.9, 0.8], [0.1, 0.2]) == 1.0


def test_score_figure_has_both_classes_and_threshold_lines():
    fig = score_figure(SCORES, LABELS, thresholds=(0.75, 0.95))
    assert [t.name for t in fig.data] == ["positives (3)", "negatives (3)"]
    lines = [s for s in fig.layout.shapes if s.type == "line"]
    assert sorted(s.x0 for s in lines) == [0.75, 0.95]
    assert any("keeps 33% pos / 33% neg" in a.text for a in fig.layout.annotations)


# ------------------------------------------------------------------------------ CoSQA parsing
def test_load_cosqa_labelled_real_file():
    df = load_cosqa_labelled()
    assert len(df) == 604 and int(df["label"].sum()) == 313
    assert list(df.columns) == ["idx", "query", "code", "label"]
    assert df.loc[0, "idx"] == "cosqa-dev-0" and df.loc[0, "query"] == "python check relation is symmetric"


def _write(path: Path, records) -> Path:
    path.write_text(json.dumps(records, indent=1))
    return path


def test_malformed_cosqa_names_file_index_and_field(tmp_path):
    good = {"idx": "a", "doc": "sort a list", "code": "def f(x):\n    return sorted(x)", "label": 1}
    bad_label = _write(tmp_path / "bad_label.json", [good, {**good, "idx": "b"}, {**good, "idx": "c", "label": "yes"}])
    with pytest.raises(InputFormatError) as e:
        load_cosqa_labelled(bad_label)
    msg = str(e.value)
    assert str(bad_label) in msg and "record 2" in msg and "'c'" in msg and "label" in msg and e.value.field == "label"
    no_doc = _write(tmp_path / "no_doc.json", [good, {"idx": "b", "code": "def g(): pass", "label": 0}])
    with pytest.raises(InputFormatError, match=r"record 1 \(idx 'b'\): missing") as e:
        load_cosqa_labelled(no_doc)
    assert e.value.field == "doc"
    truncated = tmp_path / "truncated.json"
    truncated.write_text(json.dumps([good, good])[:-5])
    with pytest.raises(InputFormatError, match="truncated"):
        load_cosqa_labelled(truncated)


def test_strip_docstring_matches_the_corpus_convention():
    code = 'def f(x):\n    """Sort it.\n\n    More.\n    """\n\n    return sorted(x)'
    assert strip_docstring(code) == "def f(x):\n    return sorted(x)"
    assert strip_docstring("def f(:") == "def f(:"  # unparsable: unchanged


# ------------------------------------------------------------------------------ inputs
def test_train_rejects_bad_pairs_and_foreign_out_dir(tmp_path):
    with pytest.raises(ParameterError, match=r"missing column\(s\) \['id', 'code'\]"):
        train_cross_encoder(pd.DataFrame({"query": ["a", "b"]}), tmp_path / "ce")
    with pytest.raises(ParameterError, match="no pairs"):
        train_cross_encoder(pd.DataFrame(columns=["id", "query", "code"]), tmp_path / "ce")
    with pytest.raises(ParameterError, match="empty or non-text values at rows \\[1\\]"):
        train_cross_encoder(pd.DataFrame({"id": ["1", "2"], "query": ["a", " "], "code": ["x", "y"]}), tmp_path / "ce")
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    pairs = pd.DataFrame({"id": ["1", "2"], "query": ["a b", "c d"], "code": ["def f(): pass", "def g(): pass"]})
    with pytest.raises(ParameterError, match="refusing to replace"):
        train_cross_encoder(pairs, foreign)
    with pytest.raises(ParameterError, match=r"head: expected one of \['segment_cosine', 'classifier'\]"):
        train_cross_encoder(pairs, tmp_path / "ce", head="cls")
    with pytest.raises(ParameterError, match="class_balanced"):
        train_cross_encoder(pairs, tmp_path / "ce", class_balanced="yes")
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_random_negatives_never_gold_text_nor_same_query():
    pairs = pd.DataFrame(
        {
            "query": ["sort a list", "sort a list", "parse json", "read file", "write file"],
            "code": ["def a(): 1", "def b(): 2", "def c(): 3", "def a(): 1", "def e(): 5"],
        }
    )
    negs = mine_negatives(pairs, None, hard=0, random=2, seed=0)
    assert (negs["kind"] == "random").all() and (negs.groupby("row").size() == 2).all()
    for r, j in zip(negs["row"], negs["neg_row"]):
        assert pairs.at[j, "code"] != pairs.at[r, "code"] and pairs.at[j, "query"] != pairs.at[r, "query"]
    assert negs.equals(mine_negatives(pairs, None, hard=0, random=2, seed=0))  # seeded
    ex = pair_examples(pairs, negs)
    assert len(ex) == 5 + 10 and ex["label"].sum() == 5
    assert list(ex.loc[ex["row"] == 0, "kind"]) == ["gold", "random", "random"]
    with pytest.raises(ParameterError, match="need a bi-encoder"):
        mine_negatives(pairs, None, hard=1)


# ------------------------------------------------------------------------------ a real training run
N_TRAIN, MAX_LEN = 128, 64


@pytest.fixture(scope="module")
def smoke_pairs():
    from workbench.corpus import build_corpus

    df = build_corpus("smoke")  # cached under data/corpus after the first build (~2 s to mine)
    train = df[df["split"] == "train"].sample(N_TRAIN, random_state=0).reset_index(drop=True)
    heldout = df[df["split"] == "test"].sample(96, random_state=1).reset_index(drop=True)
    return train, heldout


@pytest.fixture(scope="module")
def trained(smoke_pairs, tmp_path_factory):
    out = tmp_path_factory.mktemp("ce") / "filter"
    t0 = time.perf_counter()
    filt = train_cross_encoder(smoke_pairs[0], out, negatives=1, max_length=MAX_LEN, show_progress=False)
    return filt, out, time.perf_counter() - t0


@pytest.mark.slow
def test_training_writes_a_complete_folder(trained):
    filt, out, _ = trained
    assert not filt.from_cache
    info = json.loads((out / CONFIG_NAME).read_text())
    assert info["params"]["lr"] == 2e-5 and info["params"]["weight_decay"] == 0.01
    assert info["params"]["head"] == "segment_cosine" and info["params"]["class_balanced"] is True
    n_neg = info["examples"]["hard"] + info["examples"]["random"]
    assert info["pos_weight"] == pytest.approx(n_neg / N_TRAIN)
    cal = info["calibration"]  # bias starts at -scale * midpoint of the positives' and negatives' cosines
    assert cal["n"] == 96 and cal["bias"] == pytest.approx(-20.0 * (cal["cos_pos"] + cal["cos_neg"]) / 2, rel=1e-5)
    assert info["params"]["n_pairs"] == N_TRAIN and info["params"]["max_length"] == MAX_LEN
    assert info["examples"]["gold"] == N_TRAIN and info["examples"]["random"] == N_TRAIN
    assert 0 < info["examples"]["hard"] <= N_TRAIN
    assert info["loss_last_tenth"] < info["loss_first_tenth"]
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temp folder left


@pytest.mark.slow
def test_trained_filter_beats_untrained_head_on_heldout_hard_negatives(trained, smoke_pairs, minilm):
    filt, _, _ = trained
    heldout = smoke_pairs[1]
    negs = mine_negatives(heldout, minilm, hard=2, random=0, show_progress=False)
    ex = pair_examples(heldout, negs)
    assert len(ex) > 250 and (ex.groupby("row")["label"].sum() == 1).all()
    gold = ex[ex["label"] == 1].set_index("row")
    neg = ex[ex["label"] == 0]
    untrained = CrossEncoderFilter.from_base("minilm", max_length=MAX_LEN, seed=0)  # the head training starts from

    def pair_acc(f):
        sg = pd.Series(f.score(gold["query"].tolist(), gold["code"].tolist()), index=gold.index)
        return pairwise_accuracy(sg.loc[neg["row"]].to_numpy(), f.score(neg["query"].tolist(), neg["code"].tolist()))

    after, before = pair_acc(filt), pair_acc(untrained)
    # gold outscores its own hard negatives more often than not, and clearly more than before training
    assert after > 0.58, (after, before)
    assert after > before + 0.05, (after, before)


@pytest.mark.slow
def test_validate_pairs_counts_and_pair_accuracy(trained, smoke_pairs, minilm):
    filt, _, _ = trained
    h = smoke_pairs[1].head(24)
    res = validate_pairs(filt, h, negatives="hard", n_negatives=2, miner=minilm)
    ex = pair_examples(h, mine_negatives(h, minilm, hard=2, random=0, show_progress=False))
    s = filt.score(ex["query"].tolist(), ex["code"].tolist())
    assert (res["n"], res["positives"], res["queries"]) == (len(ex), 24, 24) and res["labels"] == ex["label"].tolist()
    np.testing.assert_allclose(res["scores"], s, atol=1e-6)
    by_row = dict(zip(ex.loc[ex["label"] == 1, "row"], s[ex["label"].to_numpy() == 1]))
    negs = ex["label"].to_numpy() == 0
    expect = np.mean([float(by_row[r] > x) + 0.5 * float(by_row[r] == x) for r, x in zip(ex["row"][negs], s[negs])])
    assert res["pair_accuracy"] == pytest.approx(expect)
    rnd = validate_pairs(filt, h, negatives="random", n_negatives=1)
    assert rnd["n"] == 48 and set(rnd["kinds"]) == {"gold", "random"}
    with pytest.raises(ParameterError, match="'hard' or 'random'"):
        validate_pairs(filt, h, negatives="easy")


@pytest.mark.slow
def test_scores_shape_range_order_and_errors(trained, smoke_pairs):
    filt, _, _ = trained
    h = smoke_pairs[1].head(20)
    s = filt.score(h["query"].tolist(), h["code"].tolist(), batch_size=7)
    assert s.shape == (20,) and s.dtype == np.float32 and ((s >= 0) & (s <= 1)).all()
    rev = filt.score(h["query"].tolist()[::-1], h["code"].tolist()[::-1], batch_size=3)
    np.testing.assert_allclose(rev[::-1], s, atol=1e-5)
    with pytest.raises(ParameterError, match="2 queries but 1 codes"):
        filt.score(["a", "b"], ["c"])
    with pytest.raises(ParameterError, match="empty input"):
        filt.score([], [])


@pytest.mark.slow
def test_cache_reuse_and_reload(trained, smoke_pairs):
    filt, out, first_s = trained
    weights = out / "model.safetensors"
    mtime = weights.stat().st_mtime_ns
    t0 = time.perf_counter()
    again = train_cross_encoder(smoke_pairs[0], out, negatives=1, max_length=MAX_LEN, show_progress=False)
    took = time.perf_counter() - t0
    assert again.from_cache and weights.stat().st_mtime_ns == mtime
    assert took < first_s / 3, (took, first_s)
    h = smoke_pairs[1].head(12)
    q, c = h["query"].tolist(), h["code"].tolist()
    np.testing.assert_allclose(again.score(q, c), filt.score(q, c), atol=1e-6)
    np.testing.assert_allclose(CrossEncoderFilter.load(out).score(q, c), filt.score(q, c), atol=1e-6)


@pytest.mark.slow
def test_classifier_head_folder_loads_in_sentence_transformers(smoke_pairs, tmp_path):
    # head="classifier" (the HF [CLS] head) still saves a folder CrossEncoder(path) scores identically;
    # the default segment-cosine folder is read by CrossEncoderFilter.load only.
    from sentence_transformers import CrossEncoder

    filt = CrossEncoderFilter.from_base("minilm", max_length=MAX_LEN, seed=3, head="classifier")
    out = filt.save(tmp_path / "cls", {"head": "classifier"})
    h = smoke_pairs[1].head(12)
    ce = CrossEncoder(str(out), device="cpu")
    st = ce.predict(list(zip(h["query"], h["code"])), batch_size=5, show_progress_bar=False)
    np.testing.assert_allclose(np.asarray(st, dtype=np.float32), filt.score(h["query"].tolist(), h["code"].tolist()),
                               atol=1e-5)
    np.testing.assert_allclose(CrossEncoderFilter.load(out).score(h["query"].tolist(), h["code"].tolist()),
                               filt.score(h["query"].tolist(), h["code"].tolist()), atol=1e-6)


@pytest.mark.slow
def test_segment_cosine_folder_round_trip_and_malformed_head(trained, tmp_path):
    filt, out, _ = trained
    cfg = json.loads((out / "config.json").read_text())
    head = cfg["workbench_head"]
    assert head["type"] == "segment_cosine"
    assert (head["scale"], head["bias"]) == pytest.approx((filt.model.scale.item(), filt.model.bias.item()))
    bad = tmp_path / "bad"
    bad.mkdir()
    for f in out.iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    (bad / "config.json").write_text(json.dumps({**cfg, "workbench_head": {"type": "segment_cosine", "scale": 20.0}}))
    with pytest.raises(WorkbenchError, match="workbench_head"):
        CrossEncoderFilter.load(bad)


@pytest.mark.slow
def test_validate_cosqa_on_a_small_labelled_file(trained, tmp_path):
    filt, _, _ = trained
    recs = [
        {"idx": "p0", "doc": "python sort list", "code": "def sort_list(x):\n    return sorted(x)", "label": 1},
        {"idx": "n0", "doc": "python sort list", "code": "def read(p):\n    return open(p).read()", "label": 0},
        {"idx": "p1", "doc": "python read file", "code": "def read(p):\n    return open(p).read()", "label": 1},
        {"idx": "n1", "doc": "python read file", "code": "def add(a, b):\n    return a + b", "label": 0},
    ]
    path = _write(tmp_path / "cosqa-dev.json", recs)
    res = validate_cosqa(filt, path=path, thresholds=(0.5, 0.75))
    s = filt.score([r["doc"] for r in recs], [r["code"] for r in recs])
    ref = binary_metrics(s, [r["label"] for r in recs], (0.5, 0.75))
    assert (res["n"], res["positives"], res["path"]) == (4, 2, str(path))
    assert res["roc_auc"] == pytest.approx(ref["roc_auc"]) and res["thresholds"] == ref["thresholds"]
    np.testing.assert_allclose(res["scores"], s, atol=1e-6)
