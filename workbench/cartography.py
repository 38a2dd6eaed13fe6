"""Dataset cartography over the training-dynamics table (Swayamdipta et al. 2020, section 2).

For pair i with gold probabilities p_gold(i, e) at checkpoints e = 1..E (``workbench.training.dynamics``):

- confidence  mu_i    = 1/E * sum_e p_gold(i, e)                      (eq. 1)
- variability sigma_i = sqrt(1/E * sum_e (p_gold(i, e) - mu_i)^2)     (eq. 2; population std,
  ddof=0, as ``np.std`` in the cartography code)
- correctness         = fraction of checkpoints where the gold is ranked first
- forgetfulness       = number of correct -> incorrect transitions in checkpoint order
  (forgetting events, Toneva et al. 2019)

Step 3 of Select then MixUp (methods.md section 1; papers/000) then keeps the ambiguous and
hard-to-learn pairs; ``categorize`` assigns the regions (two rules: quantiles of the map itself,
or absolute thresholds), ``rule_counts`` shows where each rule setting puts the pairs,
``compare_modes`` compares the data maps of the two dynamics modes of one run, and ``select`` /
``subset_pairs`` turn categories back into training pairs.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from workbench.errors import ParameterError

__all__ = [
    "MAP_COLUMNS",
    "CATEGORIES",
    "RULE_DEFAULTS",
    "data_map",
    "MapTimeline",
    "map_over_time",
    "categorize",
    "category_counts",
    "rule_counts",
    "ModeComparison",
    "compare_modes",
    "select",
    "subset_pairs",
]

MAP_COLUMNS = ["pair_id", "confidence", "variability", "correctness", "forgetfulness", "n_checkpoints"]
CATEGORIES = ("easy-to-learn", "ambiguous", "hard-to-learn")
# the parameters of each categorisation rule and their defaults (see ``categorize``)
RULE_DEFAULTS: dict[str, dict[str, float | None]] = {
    "quantile": {"easy_q": 0.5, "hard_q": None, "ambiguous_q": 2 / 3},
    "threshold": {"conf_hi": 0.75, "conf_lo": 0.25, "var_hi": 0.2},
}


def _one_mode(dynamics: pd.DataFrame, mode: str | None) -> pd.DataFrame:
    """The rows of one dynamics mode, after checking the columns every map needs."""
    need = {"pair_id", "checkpoint", "p_gold"}
    missing = sorted(need - set(dynamics.columns))
    if missing:
        raise ParameterError(f"dynamics: missing column(s) {missing}; have {list(dynamics.columns)}")
    if "rank" not in dynamics.columns and "correct" not in dynamics.columns:
        raise ParameterError("dynamics: needs a 'rank' or a 'correct' column")
    if mode is not None:
        return dynamics[dynamics["mode"] == mode]
    if "mode" in dynamics.columns and dynamics["mode"].nunique() > 1:
        raise ParameterError(f"dynamics: several modes {sorted(dynamics['mode'].unique())}; pass mode=...")
    return dynamics


def data_map(dynamics: pd.DataFrame, mode: str | None = None) -> pd.DataFrame:
    """One row per ``pair_id`` (sorted) with confidence, variability, correctness, forgetfulness, n_checkpoints.

    ``dynamics`` holds the columns ``pair_id``, ``checkpoint``, ``p_gold`` and ``rank`` (or
    ``correct``). A table mixing modes must be filtered with ``mode``. A pair recorded twice at
    the same checkpoint is an error.
    """
    df = _one_mode(dynamics, mode)
    if len(df) == 0:
        return pd.DataFrame(
            {
                c: pd.Series([], dtype=t)
                for c, t in zip(MAP_COLUMNS, (object, "float64", "float64", "float64", "int64", "int64"))
            }
        )
    dup = df.duplicated(["pair_id", "checkpoint"])
    if dup.any():
        row = df[dup].iloc[0]
        raise ParameterError(
            f"dynamics: pair {row['pair_id']!r} has two rows for checkpoint {row['checkpoint']}"
        )
    correct = (df["rank"] == 1) if "rank" in df.columns else df["correct"].astype(bool)
    d = pd.DataFrame(
        {
            "pair_id": df["pair_id"].to_numpy(),
            "checkpoint": df["checkpoint"].to_numpy(),
            "p": df["p_gold"].astype("float64").to_numpy(),
            "c": correct.to_numpy(dtype=bool),
        }
    )
    d = d.sort_values(["pair_id", "checkpoint"], kind="stable").reset_index(drop=True)
    g = d.groupby("pair_id", sort=True)
    prev = g["c"].shift(1)
    forgot = (prev.eq(True) & ~d["c"]).groupby(d["pair_id"], sort=True).sum()
    out = pd.DataFrame(
        {
            "confidence": g["p"].mean(),
            "variability": g["p"].std(ddof=0),
            "correctness": g["c"].mean(),
            "forgetfulness": forgot.astype("int64"),
            "n_checkpoints": g.size().astype("int64"),
        }
    )
    out.index.name = "pair_id"
    return out.reset_index()[MAP_COLUMNS]


@dataclass(frozen=True)
class MapTimeline:
    """The data map after each checkpoint: row t of ``confidence`` / ``variability`` / ``correctness``
    is eq. 1 / eq. 2 / correctness over the checkpoints up to ``checkpoints[t]`` (a pair not yet
    recorded at t is NaN). The last row is :func:`data_map`."""

    pair_ids: np.ndarray  # (n,) sorted, as data_map
    checkpoints: np.ndarray  # (T,)
    confidence: np.ndarray  # (T, n)
    variability: np.ndarray  # (T, n)
    correctness: np.ndarray  # (T, n)
    p_gold: np.ndarray  # (T, n) the probability at each checkpoint itself (NaN where not recorded)

    def at(self, t: int) -> pd.DataFrame:
        """The map after checkpoint index ``t`` (negative counts from the end): pair_id, confidence,
        variability, correctness."""
        if not -len(self.checkpoints) <= t < len(self.checkpoints):
            raise ParameterError(f"MapTimeline.at: checkpoint index {t} out of range for {len(self.checkpoints)}")
        return pd.DataFrame({"pair_id": self.pair_ids, "confidence": self.confidence[t],
                             "variability": self.variability[t], "correctness": self.correctness[t]})


def map_over_time(dynamics: pd.DataFrame, mode: str | None = None) -> MapTimeline:
    """Confidence, variability and correctness of every pair as training goes on: the running eq. 1
    and eq. 2 of Swayamdipta et al. 2020 over the first t checkpoints, for each t (what the explorer's
    slider over checkpoints shows: pairs being learnt, and forgotten). Vectorised: a (T, n) pivot and
    cumulative sums, so 250,000 pairs x 10 checkpoints take well under a second."""
    df = _one_mode(dynamics, mode)
    if len(df) == 0:
        raise ParameterError("map_over_time: no dynamics recorded" + (f" for mode {mode!r}" if mode else ""))
    if df.duplicated(["pair_id", "checkpoint"]).any():
        row = df[df.duplicated(["pair_id", "checkpoint"])].iloc[0]
        raise ParameterError(f"dynamics: pair {row['pair_id']!r} has two rows for checkpoint {row['checkpoint']}")
    correct = (df["rank"] == 1) if "rank" in df.columns else df["correct"].astype(bool)
    pid = pd.Categorical(df["pair_id"])
    ck = np.sort(df["checkpoint"].unique())
    col = pid.codes
    row = np.searchsorted(ck, df["checkpoint"].to_numpy())
    T, n = len(ck), len(pid.categories)
    p = np.full((T, n), np.nan)
    c = np.full((T, n), np.nan)
    p[row, col] = df["p_gold"].to_numpy(dtype=float)
    c[row, col] = correct.to_numpy(dtype=float)
    seen = np.cumsum(~np.isnan(p), axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.cumsum(np.nan_to_num(p), axis=0) / seen
        sq = np.cumsum(np.nan_to_num(p) ** 2, axis=0) / seen
        var = np.sqrt(np.clip(sq - mean**2, 0.0, None))
        corr = np.cumsum(np.nan_to_num(c), axis=0) / seen
    return MapTimeline(pair_ids=np.asarray(pid.categories, dtype=object), checkpoints=ck,
                       confidence=mean, variability=var, correctness=corr, p_gold=p)


def _number(what: str, name: str, v: object, lo: float, hi: float) -> float:
    if not isinstance(v, (int, float, np.integer, np.floating)) or isinstance(v, (bool, np.bool_)):
        raise ParameterError(f"{what}: {name} must be a number in [{lo:g}, {hi:g}], got {v!r}")
    if not lo <= float(v) <= hi:
        raise ParameterError(f"{what}: {name} must be a number in [{lo:g}, {hi:g}], got {v!r}")
    return float(v)


def _rule_params(rule: str, given: Mapping[str, object], what: str = "categorize") -> dict[str, float]:
    """Check ``given`` against ``rule``'s parameters; returns them all, defaults filled in."""
    if rule not in RULE_DEFAULTS:
        raise ParameterError(f"{what}: rule must be one of {list(RULE_DEFAULTS)}, got {rule!r}")
    set_ = {k: v for k, v in given.items() if v is not None}
    foreign = sorted(k for k in set_ if k not in RULE_DEFAULTS[rule])
    if foreign:
        raise ParameterError(
            f"{what}: {foreign} do not apply to rule={rule!r}; its parameters are {list(RULE_DEFAULTS[rule])}"
        )
    p = {**RULE_DEFAULTS[rule], **set_}
    if rule == "quantile":
        p["easy_q"] = _number(what, "easy_q", p["easy_q"], 0, 1)
        p["hard_q"] = p["easy_q"] if p["hard_q"] is None else _number(what, "hard_q", p["hard_q"], 0, 1)
        p["ambiguous_q"] = _number(what, "ambiguous_q", p["ambiguous_q"], 0, 1)
        if p["hard_q"] > p["easy_q"]:
            raise ParameterError(f"{what}: hard_q ({p['hard_q']}) must be <= easy_q ({p['easy_q']})")
    else:
        p["conf_hi"] = _number(what, "conf_hi", p["conf_hi"], 0, 1)
        p["conf_lo"] = _number(what, "conf_lo", p["conf_lo"], 0, 1)
        p["var_hi"] = _number(what, "var_hi", p["var_hi"], 0, 0.5)
        if not p["conf_lo"] < p["conf_hi"]:
            raise ParameterError(f"{what}: conf_lo ({p['conf_lo']}) must be < conf_hi ({p['conf_hi']})")
    return p  # type: ignore[return-value]


def categorize(
    map_df: pd.DataFrame,
    rule: str = "quantile",
    easy_q: float | None = None,
    hard_q: float | None = None,
    ambiguous_q: float | None = None,
    *,
    conf_hi: float | None = None,
    conf_lo: float | None = None,
    var_hi: float | None = None,
) -> pd.DataFrame:
    """Add a ``category`` column in ``CATEGORIES`` (a copy; counts in ``.attrs["category_counts"]``).

    Swayamdipta et al. 2020 (section 2, Figure 1) name three regions of the data map but draw them
    by eye; two explicit rules are offered.

    ``rule="quantile"`` (default; relative to the map itself, so every run gets all three regions):

    1. ambiguous: variability strictly above its ``ambiguous_q`` quantile (default 2/3: the top
       third by variability);
    2. of the rest, easy-to-learn: confidence strictly above the ``easy_q`` quantile of *their*
       confidence (default the median); hard-to-learn: confidence at or below the ``hard_q``
       quantile (default ``hard_q = easy_q``). When ``hard_q < easy_q``, pairs with confidence in
       between are labelled ambiguous too (the middle of the data map).

    ``rule="threshold"`` (absolute; comparable across runs, a region may be empty):

    1. ambiguous: variability strictly above ``var_hi`` (default 0.2; the population std of
       probabilities is at most 0.5);
    2. of the rest, easy-to-learn: confidence >= ``conf_hi`` (default 0.75); hard-to-learn:
       confidence <= ``conf_lo`` (default 0.25); in between: ambiguous.

    Passing a parameter of the other rule is an error.
    """
    p = _rule_params(
        rule,
        {
            "easy_q": easy_q,
            "hard_q": hard_q,
            "ambiguous_q": ambiguous_q,
            "conf_hi": conf_hi,
            "conf_lo": conf_lo,
            "var_hi": var_hi,
        },
    )
    missing = [c for c in ("confidence", "variability") if c not in map_df.columns]
    if missing:
        raise ParameterError(f"categorize: map_df lacks column(s) {missing}; build it with data_map()")
    out = map_df.copy()
    cat = np.full(len(out), "ambiguous", dtype=object)
    if len(out):
        var = out["variability"].to_numpy(dtype=float)
        conf = out["confidence"].to_numpy(dtype=float)
        if rule == "quantile":
            rest = var <= np.quantile(var, p["ambiguous_q"])
            if rest.any():
                hi = np.quantile(conf[rest], p["easy_q"])
                lo = np.quantile(conf[rest], p["hard_q"])
                cat[rest & (conf > hi)] = "easy-to-learn"
                cat[rest & (conf <= lo)] = "hard-to-learn"
        else:
            rest = var <= p["var_hi"]
            cat[rest & (conf >= p["conf_hi"])] = "easy-to-learn"
            cat[rest & (conf <= p["conf_lo"])] = "hard-to-learn"
    out["category"] = pd.Categorical(cat, categories=list(CATEGORIES))
    out.attrs["category_counts"] = category_counts(out).to_dict()
    out.attrs["category_rule"] = {"rule": rule, **p}
    return out


def category_counts(map_df: pd.DataFrame) -> pd.Series:
    """Number of pairs per category, in ``CATEGORIES`` order (zeros included)."""
    if "category" not in map_df.columns:
        raise ParameterError("category_counts: no 'category' column; call categorize() first")
    return (
        map_df["category"].astype(str).value_counts().reindex(list(CATEGORIES), fill_value=0).astype("int64")
    )


def rule_counts(map_df: pd.DataFrame, rules: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """How many pairs each named rule setting puts in each category.

    ``rules`` maps a display name to ``categorize`` keyword arguments, e.g.
    ``{"median split": {}, "wide middle": {"easy_q": 0.75, "hard_q": 0.25},
    "absolute": {"rule": "threshold"}}``. Returns one row per name (index ``rule``), one column
    per category (``CATEGORIES`` order).
    """
    if not rules:
        raise ParameterError("rule_counts: rules is empty; give {name: categorize keyword arguments}")
    rows = {}
    for name, params in rules.items():
        if not isinstance(params, Mapping):
            raise ParameterError(
                f"rule_counts: rule {name!r} must be a dict of categorize arguments, got {params!r}"
            )
        params = dict(params)
        rule = params.pop("rule", "quantile")
        allowed = [k for d in RULE_DEFAULTS.values() for k in d]
        unknown = sorted(k for k in params if k not in allowed)
        if unknown:
            raise ParameterError(
                f"rule_counts: rule {name!r} has unknown parameter(s) {unknown}; allowed: 'rule' and {allowed}"
            )
        try:
            rows[name] = category_counts(categorize(map_df, rule=rule, **params))
        except ParameterError as e:
            raise ParameterError(f"rule_counts: rule {name!r}: {e}") from e
    out = pd.DataFrame(rows).T.reindex(columns=list(CATEGORIES)).astype("int64")
    out.index.name = "rule"
    out.columns.name = "category"
    return out


@dataclass
class ModeComparison:
    """How far the data maps of two dynamics modes agree on the same pairs (``compare_modes``)."""

    n_pairs: int  # pairs in both maps (the inner join on pair_id)
    n_only: dict[str, int]  # pairs in one map only, per mode
    spearman_confidence: float  # Spearman rank correlation of confidence (nan if undefined)
    spearman_variability: float
    agreement: float  # fraction of joined pairs with the same category
    kappa: float  # Cohen's kappa of the categories (nan when both maps use one category only)
    confusion: pd.DataFrame  # 3x3 counts: rows = first mode's category, columns = second mode's
    joined: pd.DataFrame = field(repr=False)  # pair_id + <column>_<mode> for each map column
    modes: tuple[str, str] = ("in_batch", "fixed_pool")

    def summary(self) -> pd.DataFrame:
        """The scalar results as a one-column table, for a notebook cell."""
        a, b = self.modes
        return pd.DataFrame(
            {
                "value": [
                    self.n_pairs,
                    self.n_only.get(a, 0),
                    self.n_only.get(b, 0),
                    self.spearman_confidence,
                    self.spearman_variability,
                    self.agreement,
                    self.kappa,
                ]
            },
            index=[
                "pairs in both maps",
                f"only in {a}",
                f"only in {b}",
                "Spearman rho, confidence",
                "Spearman rho, variability",
                "category agreement",
                "Cohen's kappa",
            ],
            dtype=object,
        )


def _as_map(x: pd.DataFrame, mode: str, what: str) -> pd.DataFrame:
    if not isinstance(x, pd.DataFrame):
        raise ParameterError(f"{what}: expected a DataFrame (data map or dynamics), got {type(x).__name__}")
    if {"confidence", "variability", "pair_id"} <= set(x.columns):
        return x
    if {"p_gold", "checkpoint", "pair_id"} <= set(x.columns):
        if "mode" in x.columns and (x["mode"] == mode).any():
            return data_map(x, mode=mode)
        return data_map(x)
    raise ParameterError(
        f"{what}: neither a data map (pair_id, confidence, variability) nor a dynamics table "
        f"(pair_id, checkpoint, p_gold); columns are {list(x.columns)}"
    )


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    if len(a) < 2 or np.all(a == a[0]) or np.all(b == b[0]):
        return float("nan")  # undefined for constant input (scipy would warn)
    return float(spearmanr(a, b).statistic)


def compare_modes(
    first: pd.DataFrame,
    second: pd.DataFrame | None = None,
    *,
    modes: tuple[str, str] = ("in_batch", "fixed_pool"),
    rule: str = "quantile",
    **rule_params: float,
) -> ModeComparison:
    """Compare the data maps of two dynamics modes over the pairs both recorded.

    ``first`` alone: a dynamics table holding both ``modes`` (a run with ``dynamics="both"``).
    ``first`` and ``second``: the two data maps (or dynamics tables) for ``modes[0]`` and
    ``modes[1]``. Maps without a ``category`` column are categorised with ``rule`` and
    ``rule_params`` (see ``categorize``; each map on its own, since the quantiles are relative).

    Swayamdipta et al. 2020 build one map per run; recording two candidate sets in one run asks
    whether the regions depend on the candidates. Reported: Spearman's rho of confidence and of
    variability (``scipy.stats.spearmanr``), the fraction of pairs whose category agrees, Cohen's
    kappa (``sklearn.metrics.cohen_kappa_score``, chance-corrected agreement) and the 3x3
    confusion table of categories (rows ``modes[0]``, columns ``modes[1]``).
    """
    if len(modes) != 2 or modes[0] == modes[1]:
        raise ParameterError(f"compare_modes: modes must be two different names, got {modes!r}")
    a_name, b_name = modes
    if second is None:
        if not isinstance(first, pd.DataFrame) or "mode" not in first.columns:
            raise ParameterError(
                "compare_modes: with one argument, pass a dynamics table with a 'mode' column holding "
                f"both {list(modes)}; or pass the two data maps"
            )
        have = sorted(map(str, first["mode"].unique()))
        lacking = [m for m in modes if m not in have]
        if lacking:
            raise ParameterError(
                f"compare_modes: the dynamics table has mode(s) {have}, not {lacking}; "
                "record both (dynamics mode 'both') or pass two tables"
            )
        a, b = data_map(first, mode=a_name), data_map(first, mode=b_name)
    else:
        a = _as_map(first, a_name, f"compare_modes ({a_name})")
        b = _as_map(second, b_name, f"compare_modes ({b_name})")
    if "category" not in a.columns:
        a = categorize(a, rule=rule, **rule_params)
    if "category" not in b.columns:
        b = categorize(b, rule=rule, **rule_params)
    for name, m in ((a_name, a), (b_name, b)):
        if m["pair_id"].duplicated().any():
            dup = m.loc[m["pair_id"].duplicated(), "pair_id"].iloc[0]
            raise ParameterError(f"compare_modes: the {name} map lists pair {dup!r} twice")
    cols = [
        c
        for c in ("confidence", "variability", "correctness", "forgetfulness", "category")
        if c in a and c in b
    ]
    joined = a[["pair_id", *cols]].merge(
        b[["pair_id", *cols]], on="pair_id", how="inner", suffixes=(f"_{a_name}", f"_{b_name}")
    )
    if len(joined) == 0:
        ex_a, ex_b = list(a["pair_id"][:3]), list(b["pair_id"][:3])
        raise ParameterError(
            f"compare_modes: the {a_name} map ({len(a)} pairs, e.g. {ex_a}) and the {b_name} map "
            f"({len(b)} pairs, e.g. {ex_b}) share no pair_id; were they recorded on the same training pairs?"
        )
    ca = joined[f"category_{a_name}"].astype(str).to_numpy()
    cb = joined[f"category_{b_name}"].astype(str).to_numpy()
    confusion = (
        pd.crosstab(
            pd.Categorical(ca, categories=list(CATEGORIES)),
            pd.Categorical(cb, categories=list(CATEGORIES)),
            dropna=False,
        )
        .reindex(index=list(CATEGORIES), columns=list(CATEGORIES), fill_value=0)
        .astype("int64")
    )
    confusion.index.name, confusion.columns.name = a_name, b_name
    if len(set(ca) | set(cb)) < 2:
        kappa = float("nan")  # both maps put every pair in one category: chance agreement is 1
    else:
        from sklearn.metrics import cohen_kappa_score

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            kappa = float(cohen_kappa_score(ca, cb, labels=list(CATEGORIES)))
    n_common = len(joined)
    return ModeComparison(
        n_pairs=n_common,
        n_only={a_name: int(len(a) - n_common), b_name: int(len(b) - n_common)},
        spearman_confidence=_spearman(
            joined[f"confidence_{a_name}"].to_numpy(float), joined[f"confidence_{b_name}"].to_numpy(float)
        ),
        spearman_variability=_spearman(
            joined[f"variability_{a_name}"].to_numpy(float), joined[f"variability_{b_name}"].to_numpy(float)
        ),
        agreement=float(np.mean(ca == cb)),
        kappa=kappa,
        confusion=confusion,
        joined=joined,
        modes=(a_name, b_name),
    )


def _check_categories(categories: str | Iterable[str], what: str) -> list[str]:
    cats = [categories] if isinstance(categories, str) else list(categories)
    if not cats:
        raise ParameterError(f"{what}: no categories given; choose from {list(CATEGORIES)}")
    unknown = [c for c in cats if c not in CATEGORIES]
    if unknown:
        raise ParameterError(
            f"{what}: unknown categor{'y' if len(unknown) == 1 else 'ies'} {unknown}; choose from {list(CATEGORIES)}"
        )
    return list(dict.fromkeys(cats))


def select(
    map_df: pd.DataFrame, categories: str | Iterable[str] = ("ambiguous", "hard-to-learn")
) -> list[str]:
    """The ``pair_id`` of the pairs in ``categories`` (map order).

    The default is what Select then MixUp keeps: the ambiguous and hard-to-learn pairs.
    """
    cats = _check_categories(categories, "select")
    if "category" not in map_df.columns:
        raise ParameterError("select: map_df has no 'category' column; call categorize() first")
    return map_df.loc[map_df["category"].astype(str).isin(cats), "pair_id"].tolist()


def subset_pairs(
    pairs: pd.DataFrame,
    map_df: pd.DataFrame,
    categories: str | Iterable[str] = ("ambiguous", "hard-to-learn"),
) -> pd.DataFrame:
    """The rows of ``pairs`` (on ``id == pair_id``) in ``categories``, with the map columns joined.

    Keeps the order of ``pairs``; adds confidence, variability, correctness, forgetfulness,
    n_checkpoints and category (map values win over same-named columns of ``pairs``).
    ``.attrs["n_unmatched"]`` counts selected map pairs missing from ``pairs``.
    """
    ids = set(select(map_df, categories))
    if "id" not in pairs.columns:
        raise ParameterError(f"subset_pairs: pairs has no 'id' column; columns are {list(pairs.columns)}")
    map_cols = [c for c in (*MAP_COLUMNS, "category") if c in map_df.columns]
    m = map_df.loc[map_df["pair_id"].isin(ids), map_cols].drop_duplicates("pair_id")
    left = pairs.drop(columns=[c for c in map_cols if c in pairs.columns and c != "pair_id"])
    left = left.drop(columns=["pair_id"], errors="ignore")
    out = left.merge(m.rename(columns={"pair_id": "id"}), on="id", how="inner", sort=False).reset_index(
        drop=True
    )
    out.attrs["n_unmatched"] = int(len(ids - set(out["id"])))
    return out
