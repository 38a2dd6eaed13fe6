"""Is the data map a trustworthy instrument? Corrupt known pairs and see whether low confidence flags them.

Dataset cartography (Swayamdipta et al. 2020, "Dataset Cartography", section 5: mislabelled
examples) checks its own map by flipping the labels of a known share of the training examples,
recording the training dynamics again and asking how well low confidence finds the flipped ones.
For code search the "label" of a pair is its code, so a corrupted pair is its query with the wrong
code; two kinds (``KINDS``):

- ``random_swap``: the query with the code of another, random pair (an easy mismatch);
- ``near_miss``: the query with a different function of the same file (same ``source`` and
  ``path``), else of the same package (``source``), else a random one; the level each pair fell
  back to is recorded (``fallback``: ``file`` / ``package`` / ``random``).

``corrupt_pairs`` makes the corrupted copy, ``flag_auc`` scores "low confidence flags corrupted"
(ROC-AUC, the medians, precision at the corruption rate), ``saturation`` is the share of pairs the
map calls near certain, ``region_profile`` describes each region of a categorised map, and
``corruption_run`` / ``validity_check`` train the data-map run of Select then MixUp
(``selection.datamap_training``'s recipe) on corrupted pairs and tabulate the check.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from . import cartography
from .config import as_names
from .errors import ParameterError

if TYPE_CHECKING:  # pragma: no cover
    import plotly.graph_objects as go

    from .config import Params

__all__ = [
    "KINDS",
    "LEVELS",
    "CORRUPTION_COLUMNS",
    "corrupt_pairs",
    "flag_auc",
    "saturation",
    "marked_map",
    "region_profile",
    "gold_ranks",
    "CorruptionRun",
    "corruption_run",
    "saved_run",
    "validity_table",
    "validity_check",
    "corruption_figure",
]

KINDS = ("random_swap", "near_miss")
LEVELS = ("file", "package", "random")  # where a near miss's code came from (random swaps: always random)
CORRUPTION_COLUMNS = ["pair_id", "kind", "fallback", "donor_id"]
MODES = ("in_batch", "fixed_pool")
_RANDOM_TRIES = 64


# ------------------------------------------------------------------------------------ corruption
def _check_kind(kind: object, what: str) -> str:
    if kind not in KINDS:
        raise ParameterError(f"{what}: kind must be one of {list(KINDS)}, got {kind!r}")
    return str(kind)


def _check_fraction(fraction: object, what: str) -> float:
    if (
        isinstance(fraction, (bool, np.bool_))
        or not isinstance(fraction, (int, float, np.integer, np.floating))
        or not 0 < float(fraction) < 1
    ):
        raise ParameterError(f"{what}: fraction must be a number strictly between 0 and 1, got {fraction!r}")
    return float(fraction)


def _require(df: object, columns: Sequence[str], what: str) -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame):
        raise ParameterError(f"{what}: expected a pandas DataFrame, got {type(df).__name__}")
    for c in columns:
        if c not in df.columns:
            raise ParameterError(f"{what}: missing column {c!r}; have {list(df.columns)}")
    return df


def corrupt_pairs(
    pairs: pd.DataFrame,
    fraction: float = 0.05,
    kind: str = "random_swap",
    seed: int = 0,
    donors: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A copy of ``pairs`` with the code of ``round(fraction * len(pairs))`` seeded rows replaced.

    The corruption check of Dataset Cartography (Swayamdipta et al. 2020, section 5) for pairs:
    the rows to corrupt are drawn uniformly without replacement (``numpy.random.default_rng(seed)``);
    each gets the code of a *donor* row of ``donors`` (default: ``pairs`` itself), never its own id
    and never a code text identical to its own:

    - ``kind="random_swap"``: a uniformly random donor (``fallback == "random"``);
    - ``kind="near_miss"``: a random donor of the same file (same ``source`` and ``path``); if the
      file has no other function, of the same package (``source``); else a random one. The level
      used is the ``fallback`` column (``"file"``, ``"package"``, ``"random"``).

    Only ``code`` changes: the ids, the other columns and the row order stay. Returns
    ``(corrupted_pairs, corrupted)``, where ``corrupted`` has one row per corrupted pair in row
    order (``CORRUPTION_COLUMNS``: ``pair_id``, ``kind``, ``fallback``, ``donor_id``: the id of the
    pair whose code was used) and ``.attrs["fallback_counts"]`` = ``{level: count}`` over ``LEVELS``.
    Deterministic given ``seed`` (and the inputs). Raises :class:`ParameterError` for a bad
    ``fraction`` or ``kind``, a missing column (named), duplicate ids, or no possible donor.
    """
    what = "corrupt_pairs"
    kind = _check_kind(kind, what)
    fraction = _check_fraction(fraction, what)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ParameterError(f"{what}: seed must be an integer, got {seed!r}")
    need = ["id", "code", *(["source", "path"] if kind == "near_miss" else [])]
    _require(pairs, need, f"{what}: pairs")
    donors = pairs if donors is None else donors
    _require(donors, need, f"{what}: donors")
    n = len(pairs)
    k = int(round(fraction * n))
    if k < 1:
        raise ParameterError(
            f"{what}: fraction {fraction:g} of {n} pairs rounds to no pair; use more pairs or a larger fraction"
        )
    if pairs["id"].duplicated().any():
        dup = pairs.loc[pairs["id"].duplicated(), "id"].iloc[0]
        raise ParameterError(f"{what}: pairs: id {dup!r} appears twice")
    if len(donors) == 0:
        raise ParameterError(f"{what}: donors is empty")

    ids = pairs["id"].to_numpy(dtype=object)
    codes = pairs["code"].to_numpy(dtype=object)
    d_ids = donors["id"].to_numpy(dtype=object)
    d_codes = donors["code"].to_numpy(dtype=object)
    groups: list[tuple[str, dict[Any, np.ndarray], list[np.ndarray]]] = []
    if kind == "near_miss":
        d_file = list(zip(donors["source"].tolist(), donors["path"].tolist()))
        d_src = donors["source"].tolist()
        by_file = {key: np.asarray(v, dtype=np.int64) for key, v in _positions(d_file).items()}
        by_src = {key: np.asarray(v, dtype=np.int64) for key, v in _positions(d_src).items()}
        keys_file = list(zip(pairs["source"].tolist(), pairs["path"].tolist()))
        keys_src = pairs["source"].tolist()
        groups = [("file", by_file, keys_file), ("package", by_src, keys_src)]  # type: ignore[list-item]

    rng = np.random.default_rng(int(seed))
    chosen = np.sort(rng.choice(n, size=k, replace=False))
    new_codes = codes.copy()
    rows = []
    for i in chosen:
        own_code, own_id = codes[i], ids[i]
        donor, level = -1, "random"
        for name, index, keys in groups:
            cands = index.get(keys[i])
            if cands is None:
                continue
            ok = cands[(d_codes[cands] != own_code) & (d_ids[cands] != own_id)]
            if len(ok):
                donor, level = int(ok[rng.integers(len(ok))]), name
                break
        if donor < 0:
            donor = _random_donor(rng, d_ids, d_codes, own_id, own_code)
        new_codes[i] = d_codes[donor]
        rows.append((ids[i], kind, level, d_ids[donor]))
    out = pairs.copy()
    out["code"] = new_codes
    corrupted = pd.DataFrame(rows, columns=CORRUPTION_COLUMNS)
    counts = corrupted["fallback"].value_counts()
    corrupted.attrs["fallback_counts"] = {lv: int(counts.get(lv, 0)) for lv in LEVELS}
    return out, corrupted


def _positions(keys: list[Any]) -> dict[Any, list[int]]:
    out: dict[Any, list[int]] = {}
    for j, key in enumerate(keys):
        out.setdefault(key, []).append(j)
    return out


def _random_donor(rng: np.random.Generator, d_ids: np.ndarray, d_codes: np.ndarray, own_id: Any, own_code: Any) -> int:
    """A uniformly random donor position whose id and code text differ from the pair's."""
    for _ in range(_RANDOM_TRIES):  # almost always the first draw
        j = int(rng.integers(len(d_ids)))
        if d_ids[j] != own_id and d_codes[j] != own_code:
            return j
    ok = np.flatnonzero((d_codes != own_code) & (d_ids != own_id))
    if len(ok) == 0:
        raise ParameterError(f"corrupt_pairs: no donor has a code different from pair {own_id!r}'s")
    return int(ok[rng.integers(len(ok))])


# ----------------------------------------------------------------------------------- scoring
def _ids(corrupted_ids: object, what: str) -> set[str]:
    if isinstance(corrupted_ids, pd.DataFrame):
        _require(corrupted_ids, ["pair_id"], what)
        values: Iterable[Any] = corrupted_ids["pair_id"].tolist()
    elif isinstance(corrupted_ids, str):
        raise ParameterError(f"{what}: corrupted_ids must be a collection of pair ids, not one string")
    elif isinstance(corrupted_ids, Iterable):
        values = corrupted_ids
    else:
        raise ParameterError(f"{what}: corrupted_ids must be pair ids or a corruption table, got {corrupted_ids!r}")
    return {str(v) for v in values}


def flag_auc(dmap: pd.DataFrame, corrupted_ids: Iterable[str] | pd.DataFrame, score: str = "confidence") -> dict[str, Any]:
    """How well a low ``score`` (default confidence) flags the corrupted pairs of a data map.

    Dataset Cartography's own check (Swayamdipta et al. 2020, section 5): mislabelled examples
    should sit at low confidence. ``corrupted_ids`` is an iterable of ``pair_id`` or the table of
    :func:`corrupt_pairs`. Returns a dict:

    - ``auc``: ``sklearn.metrics.roc_auc_score(is_corrupted, -score)`` (1.0: every corrupted pair
      below every clean one; 0.5: chance);
    - ``median_corrupted`` / ``median_clean``: the score's median in each group;
    - ``precision_at_rate``: of the ``n_corrupted`` pairs with the lowest score (the corruption
      rate of the map), the share that are corrupted; ties at the cut count with their expected
      share, so the value does not depend on the map's row order;
    - ``rate``, ``n`` (pairs in the map), ``n_corrupted`` (corrupted pairs found in it),
      ``n_missing`` (corrupted ids absent from it), ``score``.
    """
    from sklearn.metrics import roc_auc_score

    what = "flag_auc"
    _require(dmap, ["pair_id", score], f"{what}: dmap")
    ids = _ids(corrupted_ids, what)
    s = dmap[score].to_numpy(dtype=float)
    if np.isnan(s).any():
        raise ParameterError(f"{what}: column {score!r} has {int(np.isnan(s).sum())} NaN value(s)")
    map_ids = dmap["pair_id"].astype(str)
    y = map_ids.isin(ids).to_numpy()
    n, n_c = len(y), int(y.sum())
    if n_c == 0:
        raise ParameterError(
            f"{what}: none of the {len(ids)} corrupted ids is in the data map ({n} pairs, e.g. "
            f"{map_ids.head(3).tolist()}); were they recorded on the corrupted pairs?"
        )
    if n_c == n:
        raise ParameterError(f"{what}: every pair of the map is corrupted; the AUC needs clean pairs too")
    order = np.sort(s)
    cut = order[n_c - 1]
    below, tie = s < cut, s == cut
    expected = y[below].sum() + (n_c - below.sum()) * y[tie].mean()
    return {
        "auc": float(roc_auc_score(y, -s)),
        "median_corrupted": float(np.median(s[y])),
        "median_clean": float(np.median(s[~y])),
        "precision_at_rate": float(expected / n_c),
        "rate": n_c / n,
        "n": n,
        "n_corrupted": n_c,
        "n_missing": len(ids - set(map_ids)),
        "score": score,
    }


def saturation(dmap: pd.DataFrame, threshold: float = 0.9, column: str = "confidence") -> float:
    """The share of pairs whose ``column`` (confidence) is strictly above ``threshold``.

    A map where most pairs sit near confidence 1 cannot separate easy from ambiguous pairs any
    more (Swayamdipta et al. 2020 read their regions off the spread of the map); NaN for an empty map.
    """
    _require(dmap, [column], "saturation: dmap")
    if (
        isinstance(threshold, (bool, np.bool_))
        or not isinstance(threshold, (int, float, np.integer, np.floating))
        or not 0 <= threshold <= 1
    ):
        raise ParameterError(f"saturation: threshold must be a number in [0, 1], got {threshold!r}")
    if len(dmap) == 0:
        return float("nan")
    return float((dmap[column].to_numpy(dtype=float) > threshold).mean())


def marked_map(dmap: pd.DataFrame, corrupted: pd.DataFrame | None) -> pd.DataFrame:
    """A copy of ``dmap`` with a ``corruption`` column: the pair's corruption kind, or ``"clean"``."""
    _require(dmap, ["pair_id"], "marked_map: dmap")
    out = dmap.copy()
    kinds: dict[str, str] = {}
    if corrupted is not None:
        _require(corrupted, ["pair_id", "kind"], "marked_map: corrupted")
        kinds = dict(zip(corrupted["pair_id"].astype(str), corrupted["kind"].astype(str)))
    out["corruption"] = [kinds.get(str(p), "clean") for p in out["pair_id"]]
    return out


def region_profile(
    dmap_categorized: pd.DataFrame,
    pairs: pd.DataFrame,
    corrupted: pd.DataFrame | None = None,
    zero_shot_rank: pd.Series | None = None,
) -> pd.DataFrame:
    """One row per region of a categorised data map (``cartography.categorize``), plus ``all``.

    Columns: ``pairs`` (count), ``confidence min / median / max``, ``variability min / median /
    max``, ``query chars (median)`` and ``code chars (median)`` (of ``pairs``, joined on
    ``id == pair_id``: pass the pairs as trained, corrupted ones included), one ``corrupted:
    <kind>`` column per kind in ``corrupted`` (the share of the region's pairs corrupted that way)
    and ``zero-shot gold rank (median)`` when ``zero_shot_rank`` (a Series indexed by pair id,
    1-based ranks, e.g. :func:`gold_ranks`) is given. Empty regions have a count of 0 and NaN.
    Where do the corrupted pairs land (Swayamdipta et al. 2020 find mislabelled ones in the
    hard-to-learn region), and what else sets the regions apart?
    """
    what = "region_profile"
    _require(dmap_categorized, ["pair_id", "confidence", "variability"], f"{what}: dmap_categorized")
    if "category" not in dmap_categorized.columns:
        raise ParameterError(f"{what}: dmap_categorized has no 'category' column; call cartography.categorize()")
    _require(pairs, ["id", "query", "code"], f"{what}: pairs")
    text = pairs[["id", "query", "code"]].assign(id=pairs["id"].astype(str)).drop_duplicates("id")
    j = dmap_categorized.assign(pair_id=dmap_categorized["pair_id"].astype(str)).merge(
        text.rename(columns={"id": "pair_id"}), on="pair_id", how="left"
    )
    unmatched = int(j["query"].isna().sum())
    if unmatched:
        ex = j.loc[j["query"].isna(), "pair_id"].head(3).tolist()
        raise ParameterError(f"{what}: {unmatched} map pair(s) are not in pairs (e.g. {ex})")
    kinds: list[str] = []
    if corrupted is not None:
        _require(corrupted, ["pair_id", "kind"], f"{what}: corrupted")
        kind_of = dict(zip(corrupted["pair_id"].astype(str), corrupted["kind"].astype(str)))
        present = set(kind_of.values())
        kinds = [k for k in KINDS if k in present] + sorted(present - set(KINDS))
        j["_kind"] = j["pair_id"].map(kind_of)
    if zero_shot_rank is not None:
        if not isinstance(zero_shot_rank, pd.Series):
            raise ParameterError(f"{what}: zero_shot_rank must be a pandas Series indexed by pair id")
        ranks = pd.Series(zero_shot_rank.to_numpy(dtype=float), index=zero_shot_rank.index.astype(str))
        j["_rank"] = j["pair_id"].map(ranks)
    j["_region"] = j["category"].astype(str)
    rows = []
    for region in [*cartography.CATEGORIES, "all"]:
        g = j if region == "all" else j[j["_region"] == region]
        row: dict[str, Any] = {"region": region, "pairs": len(g)}
        for col in ("confidence", "variability"):
            v = g[col].astype(float)
            row[f"{col} min"], row[f"{col} median"], row[f"{col} max"] = v.min(), v.median(), v.max()
        row["query chars (median)"] = g["query"].str.len().median()
        row["code chars (median)"] = g["code"].str.len().median()
        for k in kinds:
            row[f"corrupted: {k}"] = float((g["_kind"] == k).mean()) if len(g) else float("nan")
        if zero_shot_rank is not None:
            row["zero-shot gold rank (median)"] = g["_rank"].median()
        rows.append(row)
    return pd.DataFrame(rows).set_index("region")


def gold_ranks(encoder: Any, pairs: pd.DataFrame, params: Params, show_progress: bool = False) -> pd.Series:
    """The rank of each pair's own code when its query searches all the pairs' code (1-based;
    beyond ``params.k`` counts as ``params.k + 1``), indexed by pair id: e.g. the zero-shot
    difficulty of the pairs of a data map, for :func:`region_profile`."""
    from .evaluation import evaluate
    from .tasks import task_from_pairs

    res = evaluate(encoder, task_from_pairs(pairs, "datamap_pairs"), k=params.k, batch_size=params.eval_batch_size,
                   bf16=params.bf16_eval, n_boot=0, seed=params.test_seed, show_progress=show_progress)
    pq = res.per_query
    rank = pq["rank"].to_numpy(dtype=np.int64)
    return pd.Series(np.where(rank == 0, params.k + 1, rank), index=pq["qid"].astype(str).to_numpy(), name="rank")


# ------------------------------------------------------------------------------ the training runs
@dataclass
class CorruptionRun:
    """The data-map run of one corruption kind: the pairs as trained, which were corrupted, the dynamics."""

    kind: str
    fraction: float
    pairs: pd.DataFrame  # the training sample with the corrupted codes
    corrupted: pd.DataFrame  # corrupt_pairs' table
    dynamics: pd.DataFrame
    out_dir: Path
    seconds: float = float("nan")  # training wall time (NaN when read back by saved_run)

    def data_map(self, mode: str = "in_batch") -> pd.DataFrame:
        """``cartography.data_map`` of this run's dynamics in ``mode``."""
        return cartography.data_map(self.dynamics, mode=mode)

    def summary(self, mode: str = "in_batch") -> dict[str, Any]:
        """One row of :func:`validity_table`."""
        dmap = self.data_map(mode)
        flags = flag_auc(dmap, self.corrupted)
        fb = self.corrupted.attrs.get("fallback_counts") or {
            lv: int((self.corrupted["fallback"] == lv).sum()) for lv in LEVELS
        }
        return {
            "kind": self.kind,
            "mode": mode,
            "auc": flags["auc"],
            "precision_at_rate": flags["precision_at_rate"],
            "median_conf_corrupted": flags["median_corrupted"],
            "median_conf_clean": flags["median_clean"],
            "median_confidence": float(dmap["confidence"].median()),
            "saturation": saturation(dmap),
            "n_pairs": flags["n"],
            "n_corrupted": flags["n_corrupted"],
            **{f"donor_{lv}": int(fb.get(lv, 0)) for lv in LEVELS},
        }


def _modes(modes: Sequence[str] | str | None, what: str) -> tuple[str, ...]:
    if isinstance(modes, str):
        modes = as_names(modes)
    ms = MODES if modes is None else tuple(modes)
    bad = [m for m in ms if m not in MODES]
    if bad or not ms:
        raise ParameterError(f"{what}: modes must be a non-empty selection of {list(MODES)}, got {modes!r}")
    return tuple(dict.fromkeys(ms))


def _dynamics_mode(modes: tuple[str, ...]) -> str:
    return modes[0] if len(modes) == 1 else "both"


def _corrupted_sample(
    pairs: pd.DataFrame, params: Params, kind: str, fraction: float
) -> tuple[pd.DataFrame, pd.DataFrame]:
    from .experiment import training_sample

    sample = training_sample(pairs, params.datamap_pairs, params.seed)
    donors = pairs[pairs["split"] == "train"] if "split" in pairs.columns else pairs
    return corrupt_pairs(sample, fraction, kind, seed=params.seed, donors=donors)


def corruption_run(
    pairs: pd.DataFrame,
    params: Params,
    out_dir: str | os.PathLike,
    kind: str = "random_swap",
    fraction: float = 0.05,
    modes: Sequence[str] | None = None,
    show_progress: bool = True,
) -> CorruptionRun:
    """Train the data-map run of ``selection.datamap_training`` on corrupted pairs, into ``out_dir/<kind>/``.

    The same ``params.datamap_pairs`` pairs (``experiment.training_sample`` with ``params.seed``),
    the same pre-trained encoder (``experiment.fresh_encoder``) and ``experiment.train_config``
    with ``epochs=params.datamap_epochs``; ``fraction`` of the pairs get a wrong code
    (:func:`corrupt_pairs` with ``params.seed``; donors from the corpus's whole train split, so a
    near miss finds a function of the same file more often than within the sample; the fixed pool's
    candidates as ``params.datamap_pool`` says, ``experiment.pool_codes``). ``modes``
    (default both ``in_batch`` and ``fixed_pool``) sets the dynamics recorded: one mode, or
    ``"both"`` as the data-map run does. ``training.train`` resumes an interrupted run and reuses
    a finished one (a different fraction, seed or mode in the same folder is a ParameterError:
    use another ``out_dir``). The corruption table is written to ``out_dir/<kind>/corruption.parquet``.
    """
    from .experiment import fresh_encoder, pool_codes, train_config
    from .store import atomic_write_parquet
    from .training import train

    kind = _check_kind(kind, "corruption_run")
    fraction = _check_fraction(fraction, "corruption_run")
    ms = _modes(modes, "corruption_run")
    bad_pairs, corrupted = _corrupted_sample(pairs, params, kind, fraction)
    folder = Path(out_dir) / kind
    cfg = train_config(params, epochs=params.datamap_epochs, dynamics_mode=_dynamics_mode(ms))
    extra = pool_codes(pairs, bad_pairs, params) if "fixed_pool" in ms else None
    result = train(fresh_encoder(params), bad_pairs, cfg, out_dir=folder, show_progress=show_progress, pool_codes=extra)
    atomic_write_parquet(folder / "corruption.parquet", corrupted)
    return CorruptionRun(kind, fraction, bad_pairs, corrupted, result.dynamics, folder, float(result.seconds))


def saved_run(
    pairs: pd.DataFrame, params: Params, out_dir: str | os.PathLike, kind: str = "random_swap", fraction: float = 0.05
) -> CorruptionRun | None:
    """The finished :func:`corruption_run` in ``out_dir/<kind>/``, read back without training (None when
    it is not there or not finished)."""
    kind = _check_kind(kind, "saved_run")
    fraction = _check_fraction(fraction, "saved_run")
    folder = Path(out_dir) / kind
    if not (folder / "dynamics.parquet").exists() or not (folder / "model" / "workbench_encoder.json").exists():
        return None
    bad_pairs, corrupted = _corrupted_sample(pairs, params, kind, fraction)
    return CorruptionRun(kind, fraction, bad_pairs, corrupted, pd.read_parquet(folder / "dynamics.parquet"), folder)


def validity_table(runs: Mapping[str, CorruptionRun] | Iterable[CorruptionRun], modes: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per (kind, mode): ``kind``, ``mode``, ``auc``, ``precision_at_rate``,
    ``median_conf_corrupted``, ``median_conf_clean``, ``median_confidence`` (all pairs),
    ``saturation`` (share with confidence > 0.9), ``n_pairs``, ``n_corrupted`` and ``donor_file``
    / ``donor_package`` / ``donor_random`` (where the corrupted codes came from). Modes a run did
    not record are skipped."""
    ms = _modes(modes, "validity_table")
    items = list(runs.values()) if isinstance(runs, Mapping) else list(runs)
    rows = []
    for r in items:
        have = set(r.dynamics["mode"].unique()) if "mode" in r.dynamics.columns else set(ms)
        rows += [r.summary(m) for m in ms if m in have]
    return pd.DataFrame(rows)


def validity_check(
    pairs: pd.DataFrame,
    params: Params,
    out_dir: str | os.PathLike,
    kinds: Sequence[str] = KINDS,
    fraction: float = 0.05,
    show_progress: bool = True,
    modes: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Dataset Cartography's mislabelled-examples check (Swayamdipta et al. 2020, section 5) on
    this workbench's data map: for each kind, corrupt ``fraction`` of the data-map run's pairs,
    train that run again (:func:`corruption_run`, into ``out_dir/<kind>/``; a re-run reuses it),
    and tabulate how well low confidence flags the corrupted pairs (:func:`validity_table`, one
    row per kind and mode). ``pairs`` is the corpus (``build_corpus``)."""
    if isinstance(kinds, str):
        kinds = list(as_names(kinds))
    if not kinds:
        raise ParameterError(f"validity_check: no kinds given; choose from {list(KINDS)}")
    for k in kinds:
        _check_kind(k, "validity_check")
    ms = _modes(modes, "validity_check")
    runs = {k: corruption_run(pairs, params, out_dir, k, fraction, ms, show_progress) for k in dict.fromkeys(kinds)}
    return validity_table(runs, ms)


# ------------------------------------------------------------------------------------------ figure
def corruption_figure(
    dmap: pd.DataFrame,
    corrupted: pd.DataFrame | None,
    pairs: pd.DataFrame | None = None,
    title: str | None = "Data map of the corrupted run",
    hover_chars: int = 80,
) -> go.Figure:
    """The data map (x = variability, y = confidence) with the clean pairs grey and the corrupted
    ones marked by kind; hovering shows the pair id and, with ``pairs``, the query and code."""
    import plotly.graph_objects as go

    m = marked_map(dmap, corrupted)
    if pairs is not None:
        _require(pairs, ["id", "query", "code"], "corruption_figure: pairs")
        text = pairs[["id", "query", "code"]].assign(id=pairs["id"].astype(str)).rename(columns={"id": "pair_id"})
        m = m.assign(pair_id=m["pair_id"].astype(str)).merge(text, on="pair_id", how="left")
    styles = {"clean": ("#9e9e9e", "circle", 5, 0.45), "random_swap": ("#d62728", "x", 8, 0.95),
              "near_miss": ("#ff7f0e", "diamond", 8, 0.95)}
    fig = go.Figure()
    for group in ["clean", *[k for k in KINDS if k in set(m["corruption"])],
                  *sorted(set(m["corruption"]) - {"clean", *KINDS})]:
        g = m[m["corruption"] == group]
        if g.empty:
            continue
        color, symbol, size, opacity = styles.get(group, ("#1f77b4", "square", 8, 0.95))
        hover = g["pair_id"].astype(str)
        for col in ("query", "code"):
            if col in g.columns:
                hover = hover + f"<br>{col}: " + g[col].fillna("").astype(str).str.slice(0, hover_chars).map(_escape)
        fig.add_trace(go.Scattergl(
            x=g["variability"], y=g["confidence"], mode="markers", name=f"{group} ({len(g)})",
            marker=dict(color=color, symbol=symbol, size=size, opacity=opacity),
            text=hover, hovertemplate="%{text}<br>variability %{x:.3f}, confidence %{y:.3f}<extra></extra>",
        ))
    fig.update_layout(title=title, xaxis_title="variability", yaxis_title="confidence", width=700, height=550,
                      template="plotly_white", legend_title_text="pair")
    fig.update_yaxes(range=[-0.02, 1.02])
    return fig


def _escape(s: str) -> str:
    import html

    return html.escape(s).replace("\n", "<br>")
