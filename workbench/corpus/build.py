"""Build the corpus of (query, code) pairs from named sources: mine, de-duplicate, cap, split.

``build_corpus(spec)`` returns a DataFrame with exactly :data:`PAIR_COLUMNS` and caches it under
``<data>/corpus/<key>/`` (``pairs.parquet``, ``pairs.arrow`` and ``stats.json``; the frame is the
Arrow file memory-mapped, which ``datasets.Dataset.from_file`` opens too), the key holding the spec, the miner
version and the Python version. Each source is mined once into
``<data>/corpus/sources/<name>-<version>-<key>.parquet`` (+ ``.json``), so adding a source to a
spec does not re-mine the others. Conventions follow CodeSearchNet and ``shared/docs/offline.md``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import platform
import re
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ParameterError, reject_unknown_fields
from ..faultpoints import pause_point
from ..paths import data_dir as default_data_dir
from ..paths import user_path
from ..store import (
    atomic_write_arrow,
    atomic_write_json,
    atomic_write_parquet,
    build_lock,
    cache_key,
    read_arrow_frame,
    read_json,
)
from .dedup import deduplicate
from .foreign_mining import FOREIGN_MINER_VERSION, extract_functions, grammar_versions
from .mining import MAX_FILE_BYTES, MINER_VERSION, mine_source
from .sources import SourceRef, iter_folder_files, iter_source_files, open_source, parse_source
from .splits import (
    DEFAULT_FRACTIONS,
    SPLITS,
    cap_split,
    check_fractions,
    leakage_report,
    split_corpus,
    stable_unit,
)

PAIR_COLUMNS = ["id", "query", "code", "language", "source", "version", "path", "func_name", "python_version", "split"]
IMPORTER_VERSION = "2"  # workbench.corpus.imported: joins the cache keys of dir: and pairs: sources only
_MINED_COLUMNS = [c for c in PAIR_COLUMNS if c != "split"] + ["lineno"]


def pair_id(source: str, path: str, func_name: str, lineno: int) -> str:
    """First 16 hex chars of ``sha256(f"{source}|{path}|{func_name}|{lineno}")``."""
    return hashlib.sha256(f"{source}|{path}|{func_name}|{lineno}".encode()).hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class CorpusSpec:
    """What goes into a corpus. Every field except ``name`` is part of the cache key.

    ``in_distribution`` / ``ood``: source strings (``"stdlib"``, ``"name==version"``, optionally
    ``":prefix,..."``, see :mod:`workbench.corpus.sources`). ``per_source_cap``: at most this many
    pairs per source after de-duplication (a deterministic sample by hash of the id).
    ``max_pairs``: optional caps per split (``{"train": 2000, "test": 300, ...}``), applied last.
    ``fractions``: train/valid/test shares of the in-distribution files. A source may not be both
    in-distribution and OOD (every OOD copy would be removed as a duplicate): to hold out part of
    one source, select disjoint parts with ``":prefix"`` (``"stdlib:json"`` / ``"stdlib:email"``).
    """

    in_distribution: Sequence[str]
    ood: Sequence[str] = ("stdlib",)
    per_source_cap: int | None = None
    max_pairs: Mapping[str, int] | None = None
    fractions: Sequence[float] = DEFAULT_FRACTIONS
    seed: int = 0
    dedup_threshold: float = 0.8
    name: str = "custom"

    def __post_init__(self) -> None:
        for fld in ("in_distribution", "ood"):
            value = getattr(self, fld)
            if isinstance(value, str) or not isinstance(value, Sequence):
                raise ParameterError(f"corpus.{fld}: expected a list of source strings, got {value!r}")
            refs = [parse_source(s) for s in value]
            object.__setattr__(self, fld, tuple(dict.fromkeys(r.spec for r in refs)))
        if not self.in_distribution:
            raise ParameterError("corpus.in_distribution: give at least one source")
        both = sorted(set(self.in_distribution) & set(self.ood))
        if both:
            raise ParameterError(
                f"corpus.ood: {both} also in corpus.in_distribution; select disjoint parts with ':prefix'"
            )
        if self.per_source_cap is not None and (not isinstance(self.per_source_cap, int) or self.per_source_cap < 1):
            raise ParameterError(f"corpus.per_source_cap: expected a positive int or None, got {self.per_source_cap!r}")
        if self.max_pairs is not None:
            bad = {k: v for k, v in dict(self.max_pairs).items() if k not in SPLITS or not isinstance(v, int) or v < 0}
            if bad:
                raise ParameterError(f"corpus.max_pairs: expected {{split: int >= 0}} with split in {SPLITS}, got {bad}")
            object.__setattr__(self, "max_pairs", dict(sorted(dict(self.max_pairs).items())))
        try:
            object.__setattr__(self, "fractions", check_fractions(self.fractions))
        except ParameterError as exc:
            raise ParameterError(f"corpus.{exc}") from None
        if not 0.0 < float(self.dedup_threshold) <= 1.0:
            raise ParameterError(f"corpus.dedup_threshold: expected a number in (0, 1], got {self.dedup_threshold!r}")

    def key_params(self) -> dict[str, Any]:
        params = dataclasses.asdict(self)
        params.pop("name")
        params["in_distribution"] = list(self.in_distribution)
        params["ood"] = list(self.ood)
        params["fractions"] = list(self.fractions)
        return params

    def to_dict(self) -> dict[str, Any]:
        return {**self.key_params(), "name": self.name}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CorpusSpec:
        reject_unknown_fields(cls, d, "corpus")
        return cls(**dict(d))


# Small pinned pure-python wheels (2.3 MB in all; networkx is also a torch dependency, so usually
# installed already): about 1,700 mined pairs, mined in about 2 s.
SMOKE_SPEC = CorpusSpec(
    name="smoke",
    in_distribution=("networkx==3.6.1", "more-itertools==11.2.1", "boltons==26.2.0"),
    ood=("stdlib",),
    per_source_cap=None,
    max_pairs={"train": 1000, "valid": 200, "test": 200, "ood": 300},
)

# The scientific / math stack of offline.md, capped per source so no package dominates.
CPU_SPEC = CorpusSpec(
    name="cpu",
    in_distribution=(
        "numpy==2.4.6", "scipy==1.17.1", "scikit-learn==1.9.1", "pandas==3.1.1", "sympy==1.14.0",
        "networkx==3.6.1",
    ),
    ood=("stdlib",),
    per_source_cap=2500,
)

NAMED_SPECS: dict[str, CorpusSpec] = {"smoke": SMOKE_SPEC, "cpu": CPU_SPEC}


def spec_from_path(target: str) -> CorpusSpec:
    """The corpus of a user's data: ``target`` is a pair dataset (a file, or a ``datasets`` folder;
    optionally ``PATH#query=COL,code=COL,...``), a folder of code (mined), or an explicit ``pairs:`` /
    ``dir:`` source string; in distribution, with the standard library as the OOD source."""
    if target.startswith(("pairs:", "dir:")):
        source = target
    else:
        path = user_path(target.partition("#")[0])
        from .imported import is_datasets_folder

        source = f"dir:{target}" if path.is_dir() and not is_datasets_folder(path) else f"pairs:{target}"
    ref = parse_source(source)
    return CorpusSpec(in_distribution=(ref.spec,), ood=("stdlib",), name=ref.name)


def named_spec(name: str) -> CorpusSpec:
    """The spec a preset names (``"smoke"`` or ``"cpu"``), or a user's data: a path to a pair dataset or
    a folder of code, or a ``pairs:`` / ``dir:`` source string (:func:`spec_from_path`)."""
    if name in NAMED_SPECS:
        return NAMED_SPECS[name]
    if name.startswith(("pairs:", "dir:")) or user_path(name.partition("#")[0]).exists():
        return spec_from_path(name)
    raise ParameterError(f"corpus: {name!r} is neither a named spec ({sorted(NAMED_SPECS)}) nor an existing file or "
                         "folder (a pair dataset, or code to mine; a relative path is looked up in the current "
                         "folder, the project's root and the data folder)")


# ---------------------------------------------------------------- per-source mining (cached)


def _root(data_dir: str | os.PathLike | None) -> Path:
    return Path(data_dir) if data_dir is not None else default_data_dir()


def source_cache_paths(ref: SourceRef, data_dir: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """``(parquet, json)`` of one source's mined pairs."""
    parts: dict[str, Any] = {
        "name": ref.name, "version": ref.version, "prefixes": list(ref.prefixes), "miner": MINER_VERSION,
        "python": platform.python_version(), "max_bytes": MAX_FILE_BYTES,
    }
    if ref.kind != "mined":  # only then: the keys of mined sources are unchanged
        parts.update(kind=ref.kind, location=ref.location, mapping=[list(m) for m in ref.mapping],
                     importer=IMPORTER_VERSION)
    if ref.kind == "dir":
        parts.update(languages=list(ref.languages), foreign_miner=FOREIGN_MINER_VERSION, grammars=grammar_versions())
    key = cache_key(parts)
    slug = re.sub(r"[^A-Za-z0-9.+-]+", "_", f"{ref.name}-{ref.version}")
    folder = _root(data_dir) / "corpus" / "sources"
    return folder / f"{slug}-{key}.parquet", folder / f"{slug}-{key}.json"


def mine_corpus_source(
    spec: str | SourceRef, data_dir: str | os.PathLike | None = None, force: bool = False, progress: bool = True
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Mine one source (cached): its pairs (:data:`PAIR_COLUMNS` without ``split``, plus ``lineno``)
    and stats (``provenance``, ``filters`` = outcome counts by reason, ``n_pairs``, ``elapsed_s``)."""
    ref = parse_source(spec) if isinstance(spec, str) else spec
    pq, js = source_cache_paths(ref, data_dir)
    if pq.exists() and js.exists() and not force:
        return pd.read_parquet(pq), read_json(js)
    t0 = time.perf_counter()
    if ref.kind == "pairs":
        df, stats = _read_pairs_source(ref)
        stats["elapsed_s"] = round(time.perf_counter() - t0, 2)
        atomic_write_parquet(pq, df)
        atomic_write_json(js, stats)
        return pd.read_parquet(pq), stats
    src = open_source(ref, data_dir=_root(data_dir))
    pyver = platform.python_version()
    counts: Counter = Counter()
    rows: list[tuple] = []
    files = iter_folder_files(src, counts, progress=progress) if ref.kind == "dir" else (
        ("python", rel, data) for rel, data in iter_source_files(src, counts, progress=progress))
    for language, rel, data in files:
        if data is None:
            counts["file:too_large"] += 1
            continue
        if language == "python":
            funcs, st = mine_source(data, rel)
        else:
            funcs, st = extract_functions(data, language, rel)
        counts.update(st)
        for f in funcs:
            rows.append((
                pair_id(ref.name, rel, f.func_name, f.lineno), f.query, f.code, language, ref.name, ref.version,
                rel, f.func_name, pyver if language == "python" else "", f.lineno,
            ))
    df = pd.DataFrame(rows, columns=_MINED_COLUMNS).astype({"lineno": "int64"})
    stats = {
        "provenance": src.provenance(),
        "filters": dict(sorted(counts.items())),
        "n_pairs": len(df),
        "elapsed_s": round(time.perf_counter() - t0, 2),
        "miner_version": MINER_VERSION,
    }
    if ref.kind == "dir":
        stats["languages"] = {str(k): int(v) for k, v in df["language"].value_counts().sort_index().items()}
        stats["foreign_miner_version"] = FOREIGN_MINER_VERSION
    atomic_write_parquet(pq, df)
    atomic_write_json(js, stats)  # written last: its presence marks a complete cache entry
    pause_point("corpus.source")
    return pd.read_parquet(pq), stats


def _read_pairs_source(ref: SourceRef) -> tuple[pd.DataFrame, dict[str, Any]]:
    """A ``pairs:`` source's rows in the mined sources' columns: ``source`` is the dataset's source
    column (e.g. CodeSearchNet's repo) or the source's name; ``path`` its path column, else one unit per
    row (``row<n>``), so splits assign files or rows; ids are the dataset's (unique) or hashed."""
    from .imported import PairFileError, read_pair_rows

    counts: Counter = Counter()
    rows = read_pair_rows(Path(ref.location), dict(ref.mapping), counts)
    pyver = platform.python_version()
    seen: dict[str, int] = {}
    out = []
    for r in rows:
        source = r["source"] or ref.name
        path = r["path"] or f"row{r['lineno']}"
        rid = r["id"] or pair_id(ref.name, path, r["func_name"], r["lineno"])
        if rid in seen:
            raise PairFileError(f"{ref.location}, line {r['lineno']}: id {rid!r} repeats line {seen[rid]}; ids must "
                                "be unique (map another column with '#id=COLUMN', or none to hash them)")
        seen[rid] = r["lineno"]
        out.append((rid, r["query"], r["code"], r["language"], source, ref.version, path, r["func_name"], pyver,
                    r["lineno"]))
    df = pd.DataFrame(out, columns=_MINED_COLUMNS).astype({"lineno": "int64"})
    provenance = {"spec": ref.spec, "source": ref.name, "version": ref.version, "origin": "pairs",
                  "location": ref.location, "sha256_prefix": ref.version, "mapping": dict(ref.mapping),
                  "python_version": pyver}
    return df, {"provenance": provenance, "filters": dict(sorted(counts.items())), "n_pairs": len(df),
                "miner_version": MINER_VERSION}


# ---------------------------------------------------------------- the corpus


def corpus_key(spec: CorpusSpec) -> str:
    parts: dict[str, Any] = {"spec": spec.key_params(), "miner": MINER_VERSION, "python": platform.python_version()}
    local = [parse_source(s) for s in [*spec.in_distribution, *spec.ood] if s.startswith(("dir:", "pairs:"))]
    if local:  # only then (mined keys unchanged): a local source's content digest, so an edit rebuilds
        parts["local"] = {r.spec: r.version for r in local}
        parts["importer"] = IMPORTER_VERSION
    return cache_key(parts)


def corpus_dir(spec: CorpusSpec, data_dir: str | os.PathLike | None = None) -> Path:
    """``<data>/corpus/<key>/``, where ``build_corpus(spec)`` writes ``pairs.parquet``, ``pairs.arrow`` and
    ``stats.json``."""
    return _root(data_dir) / "corpus" / corpus_key(spec)


def _sample_cap(df: pd.DataFrame, cap: int | None, seed: int) -> pd.DataFrame:
    if cap is None or len(df) <= cap:
        return df
    u = np.array([stable_unit(seed, "source_cap", i) for i in df["id"]])
    return df.iloc[np.sort(np.argsort(u, kind="stable")[:cap])]


def build_corpus(
    spec: CorpusSpec | str, data_dir: str | os.PathLike | None = None, force: bool = False, progress: bool = True
) -> pd.DataFrame:
    """The corpus of ``spec`` (a :class:`CorpusSpec` or a named spec), built or loaded from cache.

    Steps: mine each source (cached per source); de-duplicate all pairs together, in-distribution
    sources first so an OOD copy of in-distribution code is the one dropped; cap each source; split
    in-distribution files by path hash, give OOD sources ``split="ood"``; keep one function per
    query in valid/test/ood and drop queries seen in train; cap each split (``max_pairs``).
    """
    if isinstance(spec, str):
        spec = named_spec(spec)
    out_dir = corpus_dir(spec, data_dir)
    pairs_path, stats_path = out_dir / "pairs.parquet", out_dir / "stats.json"
    if pairs_path.exists() and stats_path.exists() and not force:
        return _open_pairs(out_dir)

    with build_lock(out_dir):  # a second process building the same entry waits, then loads it
        if pairs_path.exists() and stats_path.exists() and not force:
            return _open_pairs(out_dir, locked=True)
        t0 = time.perf_counter()
        order = list(dict.fromkeys([*spec.in_distribution, *spec.ood]))
        mined: dict[str, pd.DataFrame] = {}
        source_stats: dict[str, Any] = {}
        for s in order:
            df, st = mine_corpus_source(s, data_dir=data_dir, force=force, progress=progress)
            mined[s], source_stats[s] = df, st

        frames = []
        for group, specs in (("in", spec.in_distribution), ("ood", spec.ood)):
            for rank, s in enumerate(specs):
                frames.append(mined[s].assign(_group=group, _g=int(group == "ood"), _spec=s, _rank=rank))
        allp = pd.concat(frames, ignore_index=True)
        allp = allp.sort_values(["_g", "_rank", "path", "lineno"], kind="stable").reset_index(drop=True)

        dd = deduplicate(allp["code"].tolist(), threshold=spec.dedup_threshold, seed=spec.seed)
        removed = dd.removed.assign(_spec=allp["_spec"].to_numpy()[dd.removed["index"].to_numpy()]) if len(dd.removed) else None
        dedup_stats = {
            **dd.summary,
            "removed_by_source": (
                {k: g["kind"].value_counts().to_dict() for k, g in removed.groupby("_spec")} if removed is not None else {}
            ),
            "examples": [
                {
                    "removed": f"{allp.at[r.index, '_spec']}:{allp.at[r.index, 'path']}:{allp.at[r.index, 'func_name']}",
                    "kept": f"{allp.at[r.duplicate_of, '_spec']}:{allp.at[r.duplicate_of, 'path']}:"
                            f"{allp.at[r.duplicate_of, 'func_name']}",
                    "kind": r.kind, "jaccard": r.jaccard,
                }
                for r in (dd.removed.head(20).itertuples() if len(dd.removed) else [])
            ],
        }
        allp = allp[dd.keep]

        capped = [
            _sample_cap(allp[allp["_spec"] == s], spec.per_source_cap, spec.seed) for s in dict.fromkeys(allp["_spec"])
        ]
        allp = pd.concat(capped) if capped else allp
        cap_stats = {s: int((allp["_spec"] == s).sum()) for s in order}

        in_dist = allp[allp["_group"] == "in"]
        ood = allp[allp["_group"] == "ood"]
        split_df, split_report = split_corpus(in_dist.reset_index(), ood.reset_index(), spec.fractions, spec.seed)
        parts = []
        for name in SPLITS:
            part = split_df[split_df["split"] == name]
            parts.append(cap_split(part, (spec.max_pairs or {}).get(name), spec.seed))
        final = pd.concat(parts, ignore_index=True)
        split_rank = {n: i for i, n in enumerate(SPLITS)}
        final = final.assign(_split_rank=final["split"].map(split_rank)).sort_values(
            ["_split_rank", "_g", "_rank", "path", "lineno"], kind="stable"
        )
        leak = leakage_report(final, code_keys=[dd.keys[i] for i in final["index"]])
        final = final[PAIR_COLUMNS].reset_index(drop=True)

        stats = {
            "name": spec.name,
            "key": out_dir.name,
            "spec": spec.to_dict(),
            "miner_version": MINER_VERSION,
            "python_version": platform.python_version(),
            "counts": {
                "split": final["split"].value_counts().reindex(list(SPLITS), fill_value=0).to_dict(),
                "source": final["source"].value_counts().to_dict(),
                "split_source": {k: g["source"].value_counts().to_dict() for k, g in final.groupby("split")},
                "total": len(final),
            },
            "sources": source_stats,
            "dedup": dedup_stats,
            "after_source_cap": cap_stats,
            "splits": split_report,
            "leakage": leak,
            "elapsed_s": round(time.perf_counter() - t0, 2),
        }
        atomic_write_parquet(pairs_path, final)
        atomic_write_arrow(out_dir / "pairs.arrow", final)
        atomic_write_json(stats_path, stats)  # written last: its presence marks a complete cache entry
        return _open_pairs(out_dir)  # the same frame as a later cached load


def _open_pairs(out_dir: Path, locked: bool = False) -> pd.DataFrame:
    """A built corpus, memory-mapped from ``pairs.arrow`` (:func:`~workbench.store.read_arrow_frame`):
    docs/performance.md measured it at 0.05 s and a few MiB for the cpu corpus and 0.01 s for a million
    pairs, where ``read_parquet`` takes 0.4 s and 10 s and holds every text in memory. An entry built
    before the Arrow copy existed gets it on its first load, under the build lock (``locked``: the
    caller holds it already)."""
    arrow = out_dir / "pairs.arrow"
    if not arrow.exists():
        with contextlib.nullcontext() if locked else build_lock(out_dir):
            if not arrow.exists():
                atomic_write_arrow(arrow, pd.read_parquet(out_dir / "pairs.parquet"))
    return read_arrow_frame(arrow)


def load_corpus_stats(spec: CorpusSpec | str, data_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """The ``stats.json`` of a built corpus (builds it first if needed)."""
    if isinstance(spec, str):
        spec = named_spec(spec)
    path = corpus_dir(spec, data_dir) / "stats.json"
    if not path.exists():
        build_corpus(spec, data_dir=data_dir)
    return read_json(path)


def load_pairs(
    spec: CorpusSpec | str, split: str | Sequence[str] | None = None, data_dir: str | os.PathLike | None = None
) -> pd.DataFrame:
    """The pairs of one split (or several, or all), building the corpus if needed."""
    df = build_corpus(spec, data_dir=data_dir)
    if split is None:
        return df
    wanted = [split] if isinstance(split, str) else list(split)
    bad = [s for s in wanted if s not in SPLITS]
    if bad:
        raise ParameterError(f"split: unknown {bad}; known: {list(SPLITS)}")
    return df[df["split"].isin(wanted)].reset_index(drop=True)


_TOKEN_RE = re.compile(r"\w+|[^\w\s]")


def corpus_stats(df: pd.DataFrame) -> pd.DataFrame:
    """Per (split, source): pairs, files, median query words, median code tokens (regex ``\\w+|[^\\w\\s]``
    tokens, comments included) and the share of code over 512 such tokens; an ``all`` row per split."""
    q_words = df["query"].str.split().str.len()
    c_tokens = df["code"].map(lambda c: len(_TOKEN_RE.findall(c)))
    work = df.assign(_qw=q_words, _ct=c_tokens)

    def summarise(g: pd.DataFrame) -> dict[str, Any]:
        return {
            "pairs": len(g),
            "files": g[["source", "path"]].drop_duplicates().shape[0],
            "median_query_words": float(g["_qw"].median()) if len(g) else float("nan"),
            "median_code_tokens": float(g["_ct"].median()) if len(g) else float("nan"),
            "pct_code_over_512_tokens": round(100.0 * float((g["_ct"] > 512).mean()), 2) if len(g) else float("nan"),
        }

    rows = []
    for split in [s for s in SPLITS if s in set(work["split"])]:
        g = work[work["split"] == split]
        for source, gs in g.groupby("source", sort=True):
            rows.append({"split": split, "source": source, **summarise(gs)})
        rows.append({"split": split, "source": "all", **summarise(g)})
    return pd.DataFrame(rows).set_index(["split", "source"])
