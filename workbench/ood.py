"""The out-of-distribution suite: in-distribution test, domain-shift sets, obfuscated identifiers.

``build_ood_suite(spec_name)`` returns named sets of mined (query, code) pairs, each one function
per query and none sharing a query with, or copying code of, the in-distribution training split:

- ``id_test``: the test split of the corpus ``spec_name`` builds (``workbench.corpus``: pinned
  scientific and math packages, files split by path hash, a per-package cap);
- ``stdlib``, ``web``, ``tooling`` (:data:`OOD_GROUPS`): the running Python's standard library
  (capped at 2,500 before the query rules, as the cpu corpus caps it: the set is then the cpu
  corpus's ``ood`` split); web frameworks (django, flask, werkzeug, jinja2, click); developer
  tooling (IPython, docutils, prompt_toolkit, pytest, pip, setuptools), each a pinned version read
  from its wheel, capped per package (600) so django or IPython does not make up the whole set;
- ``id_test_obf``, ``stdlib_obf``: the same functions with identifiers obfuscated AdvTest-style
  (:mod:`workbench.corpus.obfuscate`); ids are the originals' ids, so per-query results pair up.

How a domain-shift set is made: each source is mined with the corpus miner (cached per source);
all in-distribution pairs (train, valid, test) and the domain-shift pairs go through one
exact + near-duplicate pass (token 3-gram Jaccard >= the spec's threshold, 0.8), in-distribution
first, then the sets in :data:`OOD_GROUPS` order, so a copy is dropped from the later set; then
the per-package cap; then queries seen in train are dropped and one function is kept per query
(:func:`workbench.corpus.splits.one_per_query`). :func:`leakage_report` then checks every set
independently against train (query overlap, exact code, MinHash near duplicates, and repeats
inside the set); the build removes any offender it finds, records how many, and refuses to write
a suite whose report is not all zero.

Cached under ``<data>/ood/<key>/`` (one parquet per set + ``stats.json``, written atomically,
``stats.json`` last); the key holds the corpus key, the groups, caps and miner / obfuscator versions.
"""

from __future__ import annotations

import hashlib
import os
import platform
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .corpus.build import PAIR_COLUMNS, CorpusSpec, build_corpus, corpus_dir, mine_corpus_source, named_spec
from .corpus.dedup import (
    code_tokens,
    deduplicate,
    jaccard,
    lsh_candidates,
    minhash_signatures,
    shingles,
)
from .corpus.mining import MINER_VERSION, normalize_query
from .corpus.obfuscate import OBFUSCATOR_VERSION, obfuscate_frame
from .corpus.sources import parse_source
from .corpus.splits import one_per_query, stable_unit
from .errors import ParameterError, WorkbenchError
from .paths import data_dir as default_data_dir
from .store import atomic_write_json, atomic_write_parquet, build_lock, cache_key, read_json
from .tasks import RetrievalTask, load_cosqa, task_from_pairs

__all__ = [
    "OOD_GROUPS",
    "OBFUSCATED_SETS",
    "SUITE_VERSION",
    "OodGroup",
    "build_ood_suite",
    "leakage_report",
    "load_ood_stats",
    "ood_dir",
    "suite_tasks",
]

SUITE_VERSION = "1"
"""Bump when the way the suite is assembled changes: it is part of the cache key."""


@dataclass(frozen=True)
class OodGroup:
    """A domain-shift set: source strings (``"stdlib"``, ``"name==version"``, optionally
    ``":prefix,..."``) and an optional cap on the pairs kept per source (None = all)."""

    sources: tuple[str, ...]
    per_source_cap: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.sources, str) or not isinstance(self.sources, Sequence) or not self.sources:
            raise ParameterError(f"ood group: expected a non-empty list of source strings, got {self.sources!r}")
        object.__setattr__(self, "sources", tuple(dict.fromkeys(parse_source(s).spec for s in self.sources)))
        cap = self.per_source_cap
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
            raise ParameterError(f"ood group: per_source_cap must be a positive int or None, got {cap!r}")

    def key_params(self) -> dict[str, Any]:
        return {"sources": list(self.sources), "per_source_cap": self.per_source_cap}


# Pinned with `pip download --no-deps --only-binary=:all: NAME==VER` (Python 3.11; the newest of
# each at the time). Unpinned counts mined (before de-duplication and caps): django 1,909, flask 153,
# werkzeug 285, jinja2 235, click 170; IPython 909, docutils 624, prompt_toolkit 572, pytest 556,
# pip 478 (its _vendor folder skipped), setuptools 319 (_vendor and _distutils skipped).
OOD_GROUPS: dict[str, OodGroup] = {
    # capped as CPU_SPEC caps every source: with the cpu corpus the set is exactly its ``ood`` split
    "stdlib": OodGroup(("stdlib",), per_source_cap=2500),
    "web": OodGroup(
        ("django==5.2.19", "flask==3.1.3", "werkzeug==3.1.9", "jinja2==3.1.6", "click==8.5.1"), per_source_cap=600
    ),
    "tooling": OodGroup(
        ("ipython==9.18.1", "docutils==0.23", "prompt_toolkit==3.0.53", "pytest==9.2.0", "pip==26.3",
         "setuptools==84.2.1"),
        per_source_cap=600,
    ),
}

OBFUSCATED_SETS = ("id_test", "stdlib")
"""The sets whose obfuscated copy (``<name>_obf``) the suite ships."""

_SET_COLUMNS = [*PAIR_COLUMNS, "set"]
_OBF_COLUMNS = [*_SET_COLUMNS, "code_original", "obf_mapping"]


def _root(data_dir: str | os.PathLike | None) -> Path:
    return Path(data_dir) if data_dir is not None else default_data_dir()


def _spec(spec_name: str | CorpusSpec) -> CorpusSpec:
    return named_spec(spec_name) if isinstance(spec_name, str) else spec_name


def _groups(groups: Mapping[str, OodGroup | Sequence[str]] | None) -> dict[str, OodGroup]:
    if groups is None:
        return dict(OOD_GROUPS)
    out: dict[str, OodGroup] = {}
    for name, g in groups.items():
        if not isinstance(name, str) or not name.isidentifier() or name == "id_test" or name.endswith("_obf"):
            raise ParameterError(f"ood group name {name!r}: use an identifier other than 'id_test' or '*_obf'")
        out[name] = g if isinstance(g, OodGroup) else OodGroup(tuple(g))
    if not out:
        raise ParameterError("ood groups: give at least one group")
    return out


def _suite_key(spec: CorpusSpec, groups: dict[str, OodGroup], obfuscated: Sequence[str]) -> str:
    return cache_key({
        "corpus": corpus_dir(spec).name,
        "groups": {k: g.key_params() for k, g in groups.items()},
        "obfuscated": list(obfuscated),
        "miner": MINER_VERSION,
        "obfuscator": OBFUSCATOR_VERSION,
        "suite": SUITE_VERSION,
        "python": platform.python_version(),
    })


def _obfuscated(obfuscated: Sequence[str] | None, groups: dict[str, OodGroup]) -> tuple[str, ...]:
    if obfuscated is None:
        return tuple(n for n in OBFUSCATED_SETS if n == "id_test" or n in groups)
    out = tuple(dict.fromkeys(obfuscated))
    bad = [n for n in out if n != "id_test" and n not in groups]
    if bad:
        raise ParameterError(f"obfuscated: {bad} are not sets of the suite (id_test, {', '.join(groups)})")
    return out


def ood_dir(
    spec_name: str | CorpusSpec = "cpu", data_dir: str | os.PathLike | None = None,
    groups: Mapping[str, OodGroup | Sequence[str]] | None = None,
    obfuscated: Sequence[str] | None = None,
) -> Path:
    """``<data>/ood/<key>/``, where :func:`build_ood_suite` writes ``<set>.parquet`` and ``stats.json``."""
    grp = _groups(groups)
    return _root(data_dir) / "ood" / _suite_key(_spec(spec_name), grp, _obfuscated(obfuscated, grp))


# ---------------------------------------------------------------- leakage


def _code_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in ("code", "code_original") if c in df.columns]


class _TrainIndex:
    """Train's normalised queries, exact code keys and MinHash signatures, computed once; tokens,
    keys, signatures and shingle sets of every code seen are memoised (a build checks the same
    code several times: before and after removals, original and obfuscated)."""

    def __init__(self, train: pd.DataFrame, threshold: float, seed: int):
        self.threshold, self.seed = threshold, seed
        self._tok: dict[str, list[str]] = {}
        self._key: dict[str, str] = {}
        self._sig: dict[str, np.ndarray] = {}
        self._sh: dict[str, set] = {}
        self.queries = set(train["query"].map(normalize_query))
        self.codes = train["code"].tolist()
        self.keys = {self.key(c) for c in self.codes}
        self.sig = self.signatures(self.codes)

    def tokens(self, code: str) -> list[str]:
        if code not in self._tok:
            self._tok[code] = code_tokens(code)
        return self._tok[code]

    def key(self, code: str) -> str:
        if code not in self._key:
            joined = "\x1f".join(self.tokens(code))  # equal keys = equal token sequences
            self._key[code] = hashlib.sha1(joined.encode("utf-8", "surrogatepass")).hexdigest()
        return self._key[code]

    def shingles(self, code: str) -> set:
        if code not in self._sh:
            self._sh[code] = shingles(self.tokens(code))
        return self._sh[code]

    def signatures(self, codes: Sequence[str]) -> np.ndarray:
        missing = list(dict.fromkeys(c for c in codes if c not in self._sig))
        if missing:
            sig = minhash_signatures([self.tokens(c) for c in missing], seed=self.seed)
            self._sig.update(zip(missing, sig))
        return np.stack([self._sig[c] for c in codes]) if codes else np.empty((0, 128), np.uint64)


def _near_pairs(ix: _TrainIndex, codes: Sequence[str]) -> tuple[dict[int, float], list[tuple[int, int, float]]]:
    """Rows of ``codes`` with a train near duplicate (row -> best Jaccard >= threshold), and the
    near-duplicate pairs inside ``codes`` (i < j, Jaccard >= threshold), from MinHash LSH candidates
    checked with the exact 3-gram Jaccard."""
    if not len(codes):
        return {}, []
    n_train = len(ix.codes)
    cand = lsh_candidates(np.concatenate([ix.sig, ix.signatures(codes)]), bands=32)
    cand = cand[cand[:, 1] >= n_train]  # pairs involving the set (train-train pairs are not asked about)
    cross: dict[int, float] = {}
    within: list[tuple[int, int, float]] = []
    for a, b in cand.tolist():
        jb = b - n_train
        if a < n_train:
            jac = jaccard(ix.shingles(ix.codes[a]), ix.shingles(codes[jb]))
            if jac >= ix.threshold:
                cross[jb] = max(cross.get(jb, 0.0), jac)
        else:
            jac = jaccard(ix.shingles(codes[a - n_train]), ix.shingles(codes[jb]))
            if jac >= ix.threshold:
                within.append((a - n_train, jb, jac))
    return cross, within


def _set_leakage(ix: _TrainIndex, df: pd.DataFrame) -> tuple[dict[str, int], dict[str, set]]:
    """Counts and offending ids for one set. Offenders of the "within" checks are the later rows
    (the first of a repeated query or duplicated code is not an offender)."""
    ids = df["id"].astype(str).tolist()
    norm = df["query"].map(normalize_query).tolist()
    off: dict[str, set] = {k: set() for k in (
        "train_query_overlap", "repeated_queries", "train_exact_code", "train_near_code", "within_exact_code",
        "within_near_code")}
    seen_q: set[str] = set()
    for pid, q in zip(ids, norm):
        if q in ix.queries:
            off["train_query_overlap"].add(pid)
        if q in seen_q:
            off["repeated_queries"].add(pid)
        seen_q.add(q)
    for col in _code_columns(df):
        codes = df[col].tolist()
        keys = [ix.key(c) for c in codes]
        seen_k: set[str] = set()
        for pid, k in zip(ids, keys):
            if k in ix.keys:
                off["train_exact_code"].add(pid)
            if k in seen_k:
                off["within_exact_code"].add(pid)
            seen_k.add(k)
        cross, within = _near_pairs(ix, codes)
        off["train_near_code"].update(ids[j] for j in cross if ids[j] not in off["train_exact_code"])
        off["within_near_code"].update(ids[j] for _, j, _ in within if ids[j] not in off["within_exact_code"])
    counts = {"n_pairs": len(df), **{k: len(v) for k, v in off.items()}}
    return counts, off


def _leakage(ix: _TrainIndex, sets: Mapping[str, pd.DataFrame]) -> tuple[pd.DataFrame, dict[str, set]]:
    rows, offenders = [], {}
    for name, df in sets.items():
        counts, off = _set_leakage(ix, df)
        rows.append({"set": name, **counts})
        offenders[name] = set().union(*off.values())
    table = pd.DataFrame(rows).set_index("set")
    checks = [c for c in table.columns if c != "n_pairs"]
    table["clean"] = (table[checks] == 0).all(axis=1)
    return table, offenders


def leakage_report(
    train_df: pd.DataFrame, sets: Mapping[str, pd.DataFrame], threshold: float = 0.8, seed: int = 0
) -> pd.DataFrame:
    """One row per set, each a count of rows (all zero for what the suite ships):

    - ``train_query_overlap``: the normalised query (``normalize_query``) also a train query;
    - ``repeated_queries``: the query repeats an earlier row's in the set (one function per query);
    - ``train_exact_code``: the code's token sequence (comments and layout ignored) equals a train code;
    - ``train_near_code``: not exact, but token 3-gram Jaccard >= ``threshold`` with a train code
      (MinHash LSH candidates, 128 permutations in 32 bands, each checked exactly);
    - ``within_exact_code`` / ``within_near_code``: the same inside the set (later rows counted);
    - ``clean``: all of the above zero.

    A set with a ``code_original`` column (an obfuscated set) is checked on both code columns.
    """
    return _leakage(_TrainIndex(train_df, threshold, seed), sets)[0]


# ---------------------------------------------------------------- the build


def _sample_cap(df: pd.DataFrame, cap: int | None, seed: int) -> pd.DataFrame:
    if cap is None or len(df) <= cap:
        return df
    u = np.array([stable_unit(seed, "source_cap", i) for i in df["id"]])  # as workbench.corpus.build
    return df.iloc[np.sort(np.argsort(u, kind="stable")[:cap])]


def _check_groups(spec: CorpusSpec, groups: dict[str, OodGroup]) -> None:
    def ident(s: str) -> tuple[str, str, tuple[str, ...]]:
        ref = parse_source(s)
        return ref.name, ref.version, ref.prefixes

    in_refs = {ident(s) for s in spec.in_distribution}
    seen: dict[Any, str] = {}
    for name, g in groups.items():
        for s in g.sources:
            ref = ident(s)
            if ref in in_refs:
                raise ParameterError(f"ood group {name!r}: {s!r} is an in-distribution source of corpus {spec.name!r}")
            if ref in seen:
                raise ParameterError(f"ood group {name!r}: {s!r} is also in group {seen[ref]!r}")
            seen[ref] = name


def _load(out: Path, names: Sequence[str]) -> dict[str, pd.DataFrame]:
    return {n: pd.read_parquet(out / f"{n}.parquet") for n in names}


def build_ood_suite(
    spec_name: str | CorpusSpec = "cpu",
    data_dir: str | os.PathLike | None = None,
    *,
    groups: Mapping[str, OodGroup | Sequence[str]] | None = None,
    obfuscated: Sequence[str] | None = None,
    force: bool = False,
    progress: bool = True,
) -> dict[str, pd.DataFrame]:
    """The suite for the corpus ``spec_name`` (a named spec or a :class:`CorpusSpec`), built or
    loaded from cache: ``{"id_test", *groups, *(f"{name}_obf" for name in obfuscated)}`` ->
    DataFrame with :data:`~workbench.corpus.PAIR_COLUMNS` plus ``set`` (``split`` is "test" for
    ``id_test``, "ood" otherwise); obfuscated sets add ``code_original`` and ``obf_mapping``.

    ``groups`` (default :data:`OOD_GROUPS`): name -> :class:`OodGroup` or a list of source strings.
    ``obfuscated``: the sets that get an obfuscated copy (default: those of :data:`OBFUSCATED_SETS`
    the suite has).
    See the module docstring for the steps and ``<data>/ood/<key>/stats.json`` for every count.
    """
    spec = _spec(spec_name)
    grp = _groups(groups)
    obfuscated = _obfuscated(obfuscated, grp)
    _check_groups(spec, grp)
    names = ["id_test", *grp, *(f"{n}_obf" for n in obfuscated)]
    out = _root(data_dir) / "ood" / _suite_key(spec, grp, obfuscated)
    if not force and (out / "stats.json").exists() and all((out / f"{n}.parquet").exists() for n in names):
        return _load(out, names)

    with build_lock(out):  # a second process building the same entry waits, then loads it
        if not force and (out / "stats.json").exists() and all((out / f"{n}.parquet").exists() for n in names):
            return _load(out, names)
        t0 = time.perf_counter()
        corpus = build_corpus(spec, data_dir=data_dir, progress=progress)
        train = corpus[corpus["split"] == "train"].reset_index(drop=True)
        in_dist = corpus[corpus["split"].isin(["train", "valid", "test"])].reset_index(drop=True)
        id_test = corpus[corpus["split"] == "test"].assign(set="id_test")[_SET_COLUMNS].reset_index(drop=True)

        # mine every source (cached per source), in group order
        frames, source_stats = [], {}
        for gi, (gname, g) in enumerate(grp.items()):
            for si, s in enumerate(g.sources):
                df, st = mine_corpus_source(s, data_dir=data_dir, progress=progress)
                source_stats[s] = {"group": gname, "provenance": st["provenance"], "n_mined": int(len(df)),
                                   "filters": st["filters"]}
                frames.append(df.assign(_set=gname, _g=gi, _spec=s, _rank=si))
        mined = pd.concat(frames, ignore_index=True)
        mined = mined.sort_values(["_g", "_rank", "path", "lineno"], kind="stable").reset_index(drop=True)

        # one de-duplication pass: the in-distribution corpus first, then the sets in order
        n_in = len(in_dist)
        dd = deduplicate([*in_dist["code"].tolist(), *mined["code"].tolist()],
                         threshold=spec.dedup_threshold, seed=spec.seed)
        origin = np.array(["in_distribution"] * n_in + mined["_set"].tolist(), dtype=object)
        removed: dict[str, Counter] = {g: Counter() for g in grp}
        for r in dd.removed.itertuples():
            if r.index < n_in:
                continue
            own, other = origin[r.index], origin[r.duplicate_of]
            where = "in_distribution" if other == "in_distribution" else "same_set" if other == own else "other_set"
            removed[own][f"{r.kind}_vs_{where}"] += 1
        mined = mined[dd.keep[n_in:]]

        train_queries = set(train["query"].map(normalize_query))
        sets: dict[str, pd.DataFrame] = {"id_test": id_test}
        set_stats: dict[str, Any] = {}
        for gname, g in grp.items():
            part = mined[mined["_set"] == gname]
            after_dedup = {s: int((part["_spec"] == s).sum()) for s in g.sources}
            part = pd.concat([_sample_cap(part[part["_spec"] == s], g.per_source_cap, spec.seed) for s in g.sources])
            after_cap = {s: int((part["_spec"] == s).sum()) for s in g.sources}
            part = part.sort_values(["_rank", "path", "lineno"], kind="stable")
            kept, qcounts = one_per_query(part, train_queries)
            sets[gname] = kept.assign(split="ood", set=gname)[_SET_COLUMNS].reset_index(drop=True)
            set_stats[gname] = {
                "sources": list(g.sources), "per_source_cap": g.per_source_cap,
                "dedup_removed": dict(sorted(removed[gname].items())),
                "after_dedup": after_dedup, "after_cap": after_cap, "query_rules": qcounts,
            }

        # independent leakage check of the plain sets; offenders (none expected) are removed
        timings = {"mine_and_dedup_s": round(time.perf_counter() - t0, 2)}
        t1 = time.perf_counter()
        ix = _TrainIndex(train, spec.dedup_threshold, spec.seed)
        before, offenders = _leakage(ix, sets)
        leakage_removed = {n: len(offenders[n]) for n in sets}
        sets = {n: df[~df["id"].isin(offenders[n])].reset_index(drop=True) for n, df in sets.items()}

        # obfuscated copies, then duplicates the renaming created inside a set are removed too
        timings["leakage_s"] = round(time.perf_counter() - t1, 2)
        t1 = time.perf_counter()
        obf_reports = {}
        for n in obfuscated:
            df, rep = obfuscate_frame(sets[n])
            df = df.assign(set=f"{n}_obf")[_OBF_COLUMNS].reset_index(drop=True)
            obf_reports[f"{n}_obf"] = rep
            sets[f"{n}_obf"] = df
        timings["obfuscation_s"] = round(time.perf_counter() - t1, 2)
        t1 = time.perf_counter()
        obf_sets = {f"{n}_obf": sets[f"{n}_obf"] for n in obfuscated}
        if obf_sets:
            obf_before, obf_off = _leakage(ix, obf_sets)
            before = pd.concat([before, obf_before])
            for n, off in obf_off.items():
                leakage_removed[n] = len(off)
                sets[n] = sets[n][~sets[n]["id"].isin(off)].reset_index(drop=True)

        final = _leakage(ix, sets)[0]
        timings["leakage_s"] += round(time.perf_counter() - t1, 2)
        if not final["clean"].all():  # pragma: no cover - the removal above makes this unreachable
            raise WorkbenchError(f"OOD suite: leakage remains after removing offenders:\n{final.to_string()}")

        stats = {
            "spec": spec.name, "corpus_key": corpus_dir(spec, data_dir).name, "key": out.name,
            "counts": {n: int(len(df)) for n, df in sets.items()},
            "per_source": {n: df["source"].value_counts().sort_index().to_dict() for n, df in sets.items()},
            "id_train_pairs": int(len(train)),
            "sets": set_stats,
            "sources": source_stats,
            "dedup": {k: v for k, v in dd.summary.items() if k != "elapsed_s"} | {"n_in_distribution": n_in},
            "obfuscation": obf_reports,
            "leakage_found": before.reset_index().to_dict(orient="records"),
            "leakage_removed": leakage_removed,
            "leakage": final.reset_index().to_dict(orient="records"),
            "versions": {"miner": MINER_VERSION, "obfuscator": OBFUSCATOR_VERSION, "suite": SUITE_VERSION,
                         "python": platform.python_version()},
            "timings": timings,
            "elapsed_s": round(time.perf_counter() - t0, 2),
        }
        for n in names:
            atomic_write_parquet(out / f"{n}.parquet", sets[n])
        atomic_write_json(out / "stats.json", stats)  # written last: its presence marks a complete suite
        return _load(out, names)


def load_ood_stats(
    spec_name: str | CorpusSpec = "cpu", data_dir: str | os.PathLike | None = None,
    groups: Mapping[str, OodGroup | Sequence[str]] | None = None,
    obfuscated: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The ``stats.json`` of a built suite (builds it first if needed)."""
    path = ood_dir(spec_name, data_dir, groups, obfuscated) / "stats.json"
    if not path.exists():
        build_ood_suite(spec_name, data_dir, groups=groups, obfuscated=obfuscated)
    return read_json(path)


# ---------------------------------------------------------------- tasks


def _chosen(df: pd.DataFrame, n: int | None, seed: int, what: str) -> set[str] | None:
    if n is None or n >= len(df):
        return None
    u = np.array([stable_unit(seed, what, i) for i in df["id"]])
    return set(df["id"].iloc[np.argsort(u, kind="stable")[:n]])


def suite_tasks(
    suite: Mapping[str, pd.DataFrame],
    max_queries: int | None = None,
    seed: int = 0,
    *,
    pool_size: int | None = None,
    cosqa: bool = True,
    cosqa_dir: str | os.PathLike | None = None,
) -> dict[str, RetrievalTask]:
    """A :class:`~workbench.tasks.RetrievalTask` per set (``task_from_pairs``: each query's
    gold is its own function, the pool is the set's code), plus ``cosqa_dev`` (``load_cosqa``).

    ``pool_size``: keep that many pairs per mined set (query and code both), so every set searches a
    pool of the same size and MRR is comparable across sets. ``max_queries``: then ask that many
    queries per set, the whole pool kept (CoSQA too: its 6,267-function pool is never shrunk).
    Samples are by a hash of ``(seed, id)``, and ``<name>_obf`` uses the ids drawn for ``<name>``,
    so an obfuscated set asks the same questions as its original (paired comparisons).
    """
    for arg, v in (("max_queries", max_queries), ("pool_size", pool_size)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise ParameterError(f"suite_tasks: {arg} must be a positive int or None, got {v!r}")
    tasks: dict[str, RetrievalTask] = {}
    pools: dict[str, set[str] | None] = {}
    asked: dict[str, set[str] | None] = {}
    for name, df in suite.items():
        base = name[: -len("_obf")] if name.endswith("_obf") and name[: -len("_obf")] in suite else None
        if base is not None and base in pools:
            pool, ask = pools[base], asked[base]
        else:
            pool = _chosen(df, pool_size, seed, "pool")
            sub = df if pool is None else df[df["id"].isin(pool)]
            ask = _chosen(sub, max_queries, seed, "queries")
            pools[name], asked[name] = pool, ask
        sub = df if pool is None else df[df["id"].isin(pool)]
        task = task_from_pairs(sub, name)
        if ask is not None:
            keep = [q for q in task.queries if q in ask]
            task = RetrievalTask(
                name, {q: task.queries[q] for q in keep}, task.corpus, {q: task.qrels[q] for q in keep},
                {**task.meta, "subset": {"n_queries": len(keep), "seed": seed, "of": len(sub)}},
            )
        task.meta.update({"set": name, "pool_size": len(task.corpus), "n_pairs": len(df)})
        tasks[name] = task.validate()
    if cosqa:
        task = load_cosqa(cosqa_dir, split="dev")
        if max_queries is not None and max_queries < len(task.queries):
            task = task.subset(max_queries, seed=seed)
        tasks["cosqa_dev"] = task
    return tasks


def remove_leaks(
    train_df: pd.DataFrame, sets: Mapping[str, pd.DataFrame], threshold: float = 0.8, seed: int = 0
) -> tuple[dict[str, pd.DataFrame], dict[str, int]]:
    """Drop every row :func:`leakage_report` would count (same checks), returning the clean sets and
    how many rows each lost; a second report on the result reads zero."""
    ix = _TrainIndex(train_df, threshold, seed)
    _, offenders = _leakage(ix, sets)
    clean = {n: df[~df["id"].astype(str).isin(offenders[n])].reset_index(drop=True) for n, df in sets.items()}
    return clean, {n: len(offenders[n]) for n in sets}


def all_sets(
    pairs: pd.DataFrame, suite: Mapping[str, pd.DataFrame], crosslang: pd.DataFrame | None = None, seed: int = 0
) -> dict[str, pd.DataFrame]:
    """Every set of the chapter in one mapping: ``train`` (in-distribution), the suite's sets, and one
    ``xl_<language>`` set per language of the cross-language frame. The cross-language sets get the
    suite's leakage checks here (a doc comment can equal a Python training query, and their own
    de-duplication tokenises differently): offenders are removed and counted in
    ``df.attrs["leakage_removed"]``."""
    train = pairs[pairs["split"] == "train"].reset_index(drop=True)
    sets = {"train": train, **dict(suite)}
    if crosslang is not None and len(crosslang):
        xl = {f"xl_{lang}": df.reset_index(drop=True) for lang, df in crosslang.groupby("language", sort=True)}
        xl, removed = remove_leaks(train, xl, seed=seed)
        for name, df in xl.items():
            df.attrs["leakage_removed"] = removed[name]
        sets.update(xl)
    return sets
