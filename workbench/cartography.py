"""Dataset cartography over the training-dynamics table (Swayamdipta et al. 2020, section 2).

For pair i with gold probabilities p_gold(i, e) at checkpoints e = 1..E (``workbench.training.dynamics``):

- confidence  mu_i    = 1/E * sum_e p_gold(i, e)                      (eq. 1)
- variability sigma_i = sqrt(1/E * sum_e (p_gold(i, e) - mu_i)^2)     (eq. 2; population std,
  ddof=0, as ``np.std`` in the cartography code)
- correctness         = fraction of checkpoints where the gold is ranked first
- forgetfulness       = number of correct -> incorrect transitions in checkpoint order
  (forgetting events, Toneva et al. 2019)

Step 3 of Select then MixUp (methods.md section 1; papers/000) then keeps the ambiguous and
hard-to-learn pairs; ``categorize`` assigns the regions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from workbench.errors import ParameterError

__all__ = ["MAP_COLUMNS", "CATEGORIES", "data_map", "categorize", "category_counts"]

MAP_COLUMNS = ["pair_id", "confidence", "variability", "correctness", "forgetfulness", "n_checkpoints"]
CATEGORIES = ("easy-to-learn", "ambiguous", "hard-to-learn")


def data_map(dynamics: pd.DataFrame, mode: str | None = None) -> pd.DataFrame:
    """One row per ``pair_id`` (sorted) with confidence, variability, correctness, forgetfulness, n_checkpoints.

    ``dynamics`` holds the columns ``pair_id``, ``checkpoint``, ``p_gold`` and ``rank`` (or
    ``correct``). A table mixing modes must be filtered with ``mode``. A pair recorded twice at
    the same checkpoint is an error.
    """
    need = {"pair_id", "checkpoint", "p_gold"}
    missing = sorted(need - set(dynamics.columns))
    if missing:
        raise ParameterError(f"dynamics: missing column(s) {missing}; have {list(dynamics.columns)}")
    if "rank" not in dynamics.columns and "correct" not in dynamics.columns:
        raise ParameterError("dynamics: needs a 'rank' or a 'correct' column")
    df = dynamics
    if mode is not None:
        df = df[df["mode"] == mode]
    elif "mode" in df.columns and df["mode"].nunique() > 1:
        raise ParameterError(f"dynamics: several modes {sorted(df['mode'].unique())}; pass mode=...")
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


def categorize(
    map_df: pd.DataFrame,
    rule: str = "quantile",
    easy_q: float = 0.5,
    hard_q: float | None = None,
    ambiguous_q: float = 2 / 3,
) -> pd.DataFrame:
    """Add a ``category`` column in ``CATEGORIES`` (a copy; counts in ``.attrs["category_counts"]``).

    Default rule ("quantile"), a partition in the spirit of Swayamdipta et al. 2020 section 2:

    1. ambiguous: variability strictly above its ``ambiguous_q`` quantile (default 2/3: the top
       third by variability);
    2. of the rest, easy-to-learn: confidence strictly above the ``easy_q`` quantile of *their*
       confidence (default the median); hard-to-learn: confidence at or below the ``hard_q``
       quantile (default ``hard_q = easy_q``). When ``hard_q < easy_q``, pairs with confidence in
       between are labelled ambiguous too (the middle of the data map).
    """
    if rule != "quantile":
        raise ParameterError(f"categorize: rule must be 'quantile', got {rule!r}")
    hard_q = easy_q if hard_q is None else hard_q
    for name, v in (("easy_q", easy_q), ("hard_q", hard_q), ("ambiguous_q", ambiguous_q)):
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0 <= v <= 1:
            raise ParameterError(f"categorize: {name} must be a number in [0, 1], got {v!r}")
    if hard_q > easy_q:
        raise ParameterError(f"categorize: hard_q ({hard_q}) must be <= easy_q ({easy_q})")
    missing = [c for c in ("confidence", "variability") if c not in map_df.columns]
    if missing:
        raise ParameterError(f"categorize: map_df lacks column(s) {missing}; build it with data_map()")
    out = map_df.copy()
    cat = np.full(len(out), "ambiguous", dtype=object)
    if len(out):
        var = out["variability"].to_numpy(dtype=float)
        conf = out["confidence"].to_numpy(dtype=float)
        rest = var <= np.quantile(var, ambiguous_q)
        if rest.any():
            hi = np.quantile(conf[rest], easy_q)
            lo = np.quantile(conf[rest], hard_q)
            cat[rest & (conf > hi)] = "easy-to-learn"
            cat[rest & (conf <= lo)] = "hard-to-learn"
    out["category"] = pd.Categorical(cat, categories=list(CATEGORIES))
    out.attrs["category_counts"] = category_counts(out).to_dict()
    out.attrs["category_rule"] = {
        "rule": rule,
        "easy_q": easy_q,
        "hard_q": hard_q,
        "ambiguous_q": ambiguous_q,
    }
    return out


def category_counts(map_df: pd.DataFrame) -> pd.Series:
    """Number of pairs per category, in ``CATEGORIES`` order (zeros included)."""
    if "category" not in map_df.columns:
        raise ParameterError("category_counts: no 'category' column; call categorize() first")
    return (
        map_df["category"].astype(str).value_counts().reindex(list(CATEGORIES), fill_value=0).astype("int64")
    )
