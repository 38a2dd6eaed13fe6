"""2-D projections (UMAP, t-SNE, MDS, PCA), their cache, and the paper figures built on them."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.errors import ParameterError
from workbench.projection import (
    METHODS,
    neighbourhood_figure,
    neighbourhood_frame,
    pairs_figure,
    pairs_frame,
    project,
    side_by_side,
)


def _clusters(n: int = 30, d: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two well-separated clusters of unit vectors."""
    rng = np.random.default_rng(seed)
    centres = np.zeros((2, d))
    centres[0, 0], centres[1, 1] = 1.0, 1.0
    labels = np.repeat([0, 1], n // 2)
    x = centres[labels] + 0.05 * rng.normal(size=(n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True), labels


@pytest.mark.parametrize("method", METHODS)
def test_every_method_separates_two_clusters_reproducibly(method, tmp_path):
    x, labels = _clusters()
    xy = project(x, method, seed=3, threads=1)
    assert xy.shape == (len(x), 2) and np.isfinite(xy).all()
    assert np.array_equal(xy, project(x, method, seed=3, threads=1))  # seeded
    # each point is nearer its own cluster's centre than the other's
    c0, c1 = xy[labels == 0].mean(axis=0), xy[labels == 1].mean(axis=0)
    own = np.where(labels[:, None] == 0, np.linalg.norm(xy - c0, axis=1)[:, None], np.linalg.norm(xy - c1, axis=1)[:, None])
    other = np.where(labels[:, None] == 0, np.linalg.norm(xy - c1, axis=1)[:, None], np.linalg.norm(xy - c0, axis=1)[:, None])
    assert (own < other).mean() > 0.9


def test_the_cache_returns_the_stored_projection(tmp_path):
    x, _ = _clusters()
    first = project(x, "tsne", seed=0, cache_dir=tmp_path)
    files = list(tmp_path.glob("proj-tsne-*.npy"))
    assert len(files) == 1
    np.save(files[0], first + 100.0)  # tamper: a cache hit must return what is on disk
    assert np.allclose(project(x, "tsne", seed=0, cache_dir=tmp_path), first + 100.0)
    project(x, "tsne", seed=1, cache_dir=tmp_path)  # another seed is another entry
    assert len(list(tmp_path.glob("proj-tsne-*.npy"))) == 2


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ParameterError, match="must be one of"):
        project(np.eye(4), "lda")
    with pytest.raises(ParameterError, match="at least 3 rows"):
        project(np.eye(2), "pca")
    with pytest.raises(ParameterError, match="NaN"):
        project(np.full((4, 2), np.nan), "pca")


def test_pairs_frame_and_figure_draw_one_line_per_pair():
    x, _ = _clusters(20)
    q, c = x[:10], x[10:]
    df = pairs_frame(q, c, [f"query {i}" for i in range(10)], [f"code {i}" for i in range(10)], method="pca")
    assert len(df) == 20 and set(df["kind"]) == {"query", "code"}
    assert np.allclose(df["distance"].iloc[:10], np.linalg.norm(q - c, axis=1))
    fig = pairs_figure(df)
    lines = fig.data[0]
    assert lines.mode == "lines" and len(lines.x) == 30  # query, code, gap for each pair
    assert [t.name for t in fig.data] == ["query–code pair", "query", "code"]
    with pytest.raises(ParameterError, match="must all match"):
        pairs_frame(q, c[:5], ["q"] * 10, ["c"] * 5)


def test_neighbourhood_frame_ranks_candidates_and_keeps_the_gold():
    rng = np.random.default_rng(1)
    corpus = rng.normal(size=(40, 8))
    corpus /= np.linalg.norm(corpus, axis=1, keepdims=True)
    query = corpus[5] + 0.01
    sims = corpus @ query
    gold = int(np.argsort(-sims)[30])  # a gold ranked 31st: outside the top 10
    df = neighbourhood_frame(query, corpus, [f"def f{i}(): pass" for i in range(40)], gold, "find f", k=10, method="mds")
    assert df["role"].tolist().count("query") == 1 and df["role"].tolist().count("gold") == 1
    assert len(df) == 1 + 10 + 1
    assert df.loc[df.role == "gold", "rank"].item() == 31
    cand = df[df.role == "candidate"]
    assert cand["rank"].tolist() == list(range(1, 11)) and cand["similarity"].is_monotonic_decreasing
    fig = neighbourhood_figure(df, cmin=0, cmax=1)
    assert "gold rank 31" in fig.layout.title.text
    both = side_by_side({"model A": fig, "model B": neighbourhood_figure(df)})
    assert len(both.data) == 4 and both.data[2].marker.showscale is False  # one colour bar
