"""Alignment and uniformity (Wang & Isola 2020) against brute-force loops and closed forms."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from workbench.errors import ParameterError
from workbench.geometry import (
    alignment,
    alignment_uniformity,
    au_figure,
    au_table,
    correlation_with,
    uniformity,
)


def _unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.normal(size=(n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_alignment_matches_a_python_loop():
    rng = np.random.default_rng(0)
    x, y = _unit(rng, 40, 8), _unit(rng, 40, 8)
    for alpha in (1.0, 2.0, 3.0):
        brute = sum(math.sqrt(sum((a - b) ** 2 for a, b in zip(xi, yi))) ** alpha for xi, yi in zip(x, y)) / len(x)
        assert alignment(x, y, alpha) == pytest.approx(brute, rel=1e-10)
    # identical pairs are perfectly aligned; antipodal unit pairs are at squared distance 4
    assert alignment(x, x) == 0.0
    assert alignment(x, -x) == pytest.approx(4.0)


def test_uniformity_matches_a_double_loop():
    rng = np.random.default_rng(1)
    x = _unit(rng, 30, 5)
    for t in (0.5, 2.0):
        terms = [math.exp(-t * float(((x[i] - x[j]) ** 2).sum())) for i in range(len(x)) for j in range(i + 1, len(x))]
        assert uniformity(x, t) == pytest.approx(math.log(sum(terms) / len(terms)), rel=1e-10)


def test_uniformity_closed_forms():
    # orthonormal vectors: every pair at squared distance 2, so log E exp(-2 * 2) = -4
    assert uniformity(np.eye(6), t=2.0) == pytest.approx(-4.0)
    # a collapsed representation (all points equal) is the worst possible: log 1 = 0
    assert uniformity(np.ones((5, 3)) / math.sqrt(3)) == pytest.approx(0.0)
    # spreading points out lowers the loss
    rng = np.random.default_rng(2)
    spread, bunched = _unit(rng, 200, 16), _unit(rng, 200, 16) * 0.1 + np.array([1.0] + [0.0] * 15)
    bunched /= np.linalg.norm(bunched, axis=1, keepdims=True)
    assert uniformity(spread) < uniformity(bunched)


def test_uniformity_is_stable_where_a_naive_mean_underflows():
    # far-apart points with a large t: exp(-t d^2) underflows to 0 in float64, log-sum-exp does not
    x = np.array([[0.0, 0.0], [30.0, 0.0], [0.0, 30.0]])
    got = uniformity(x, t=2.0)
    d2 = np.array([900.0, 900.0, 1800.0])
    expected = -2 * 900.0 + math.log((2 + math.exp(-2 * 900.0)) / 3)
    assert np.isfinite(got) and got == pytest.approx(expected)
    with np.errstate(divide="ignore"):
        assert np.log(np.exp(-2 * d2).mean()) == -np.inf  # what the naive formula gives


def test_uniformity_subsamples_reproducibly():
    x = _unit(np.random.default_rng(3), 500, 8)
    a, b = uniformity(x, max_points=100, seed=7), uniformity(x, max_points=100, seed=7)
    assert a == b and a != uniformity(x, max_points=100, seed=8)
    assert abs(a - uniformity(x, max_points=None)) < 0.1


def test_alignment_uniformity_and_the_table():
    rng = np.random.default_rng(4)
    q, c = _unit(rng, 20, 4), _unit(rng, 20, 4)
    r = alignment_uniformity(q, c)
    assert r["align"] == pytest.approx(alignment(q, c))
    assert r["uniform"] == pytest.approx(uniformity(np.concatenate([q, c])))
    assert r["uniform_query"] == pytest.approx(uniformity(q)) and r["pairs"] == 20
    table = au_table({"m1": {"a": (q, c), "b": (q, q)}, "m2": {"a": (c, q)}})
    assert list(table["task"]) == ["a", "b", "mean", "a", "mean"]
    m1 = table[(table.model == "m1") & (table.task == "mean")].iloc[0]
    assert m1["align"] == pytest.approx((alignment(q, c) + 0.0) / 2) and m1["pairs"] == 40
    fig = au_figure(table, "mean", highlight=("m2",))
    assert [tr.name for tr in fig.data] == ["m1", "m2"]
    assert fig.data[1].marker.size > fig.data[0].marker.size
    with pytest.raises(ParameterError, match="no rows for task 'zz'"):
        au_figure(table, "zz")


def test_correlation_with_a_score():
    table = pd.DataFrame({"model": list("abcd"), "task": "mean", "align": [1.0, 2.0, 3.0, 4.0],
                          "uniform": [-1.0, -2.0, -3.0, -4.0], "uniform_query": 0.0, "uniform_code": 0.0, "pairs": 10})
    corr = correlation_with(table, {"a": 4.0, "b": 3.0, "c": 2.0, "d": 1.0, "zero-shot": None})
    assert corr.loc["align", "spearman"] == -1.0 and corr.loc["uniform", "spearman"] == 1.0
    assert corr.loc["align", "models"] == 4


def test_bad_inputs_are_clear_errors():
    x = np.eye(3)
    with pytest.raises(ParameterError, match="same shape"):
        alignment(x, x[:2])
    with pytest.raises(ParameterError, match="alpha must be > 0"):
        alignment(x, x, alpha=0)
    with pytest.raises(ParameterError, match="at least 2"):
        uniformity(x[:1])
    with pytest.raises(ParameterError, match="NaN"):
        uniformity(np.array([[np.nan, 0.0], [1.0, 0.0]]))
