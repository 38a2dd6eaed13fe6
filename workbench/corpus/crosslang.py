"""Cross-language (XLCoST-like) out-of-distribution pairs: Go, Java, Ruby, PHP, JavaScript, TypeScript.

The pairs of the sources of :mod:`workbench.corpus.foreign_sources` (small Debian packages and npm
tarballs), each mined once per language with :mod:`workbench.corpus.foreign_mining` and cached, then
de-duplicated into one out-of-distribution set per language. Rows follow the Pair contract
(:data:`workbench.corpus.PAIR_COLUMNS`) with ``split="ood"`` and ``python_version=""``.
"""

from __future__ import annotations

import os
import re
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ParameterError
from ..paths import data_dir as default_data_dir
from ..store import atomic_write_json, atomic_write_parquet, build_lock, cache_key, read_json
from .build import PAIR_COLUMNS, pair_id
from .dedup import deduplicate
from .foreign_mining import (
    FOREIGN_MINER_VERSION,
    LANGUAGES,
    MAX_FOREIGN_FILE_BYTES,
    extract_functions,
    grammar_versions,
    language_for_path,
    skip_foreign_path_reason,
)
from .foreign_sources import CROSSLANG_SOURCES, ForeignSource, open_foreign_source
from .splits import one_per_query, stable_unit

DEFAULT_LANGUAGES = LANGUAGES

# ---------------------------------------------------------------- mining a source (cached)

_MINED_COLUMNS = [c for c in PAIR_COLUMNS if c != "split"] + ["lineno", "tokens", "masked"]


def _root(data_dir: str | os.PathLike | None) -> Path:
    return Path(data_dir) if data_dir is not None else default_data_dir()


def _source_key(source: ForeignSource, language: str) -> str:
    return cache_key({
        "source": source.key_params(), "language": language, "miner": FOREIGN_MINER_VERSION,
        "grammars": grammar_versions(), "max_bytes": MAX_FOREIGN_FILE_BYTES,
    })


def mine_foreign_source(
    source: ForeignSource, language: str, data_dir: str | os.PathLike | None = None, force: bool = False,
    progress: bool = False,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Mine one source for one language (cached under ``<data>/crosslang/sources/``): its pairs
    (Pair columns without ``split``, plus ``lineno``, ``tokens``, ``masked``) and stats
    (``provenance``, ``filters`` = outcome counts by reason, ``n_pairs``, ``elapsed_s``)."""
    slug = re.sub(r"[^A-Za-z0-9.+-]+", "_", f"{source.package}-{language}")
    key = _source_key(source, language)
    folder = _root(data_dir) / "crosslang" / "sources"
    pq, js = folder / f"{slug}-{key}.parquet", folder / f"{slug}-{key}.json"
    if pq.exists() and js.exists() and not force:
        return pd.read_parquet(pq), read_json(js)
    t0 = time.perf_counter()
    opened = open_foreign_source(source, data_dir=_root(data_dir))
    counts: Counter = Counter()
    rows: list[tuple] = []
    files = opened.list_files()
    it: Any = files
    if progress:
        from workbench.progress import tqdm

        it = tqdm(files, desc=f"mining {source.spec}", unit="file", leave=False)
    for rel, size in it:
        why = skip_foreign_path_reason(rel)
        if why is None and language_for_path(rel) != language:
            why = "path:other_language"
        if why is not None:
            counts[why] += 1
            continue
        if size > MAX_FOREIGN_FILE_BYTES:
            counts["file:too_large"] += 1
            continue
        try:
            data = opened.read(rel)
        except (OSError, KeyError, ValueError):
            counts["file:read_error"] += 1
            continue
        kept, st = extract_functions(data, language, rel)
        counts.update(st)
        for f in kept:
            rows.append((
                pair_id(source.package, rel, f.func_name, f.lineno), f.query, f.code, language, source.package,
                opened.version, rel, f.func_name, "", f.lineno, f.tokens, f.masked,
            ))
    df = pd.DataFrame(rows, columns=_MINED_COLUMNS).astype({"lineno": "int64", "masked": "bool"})
    stats = {
        "provenance": opened.provenance,
        "language": language,
        "filters": dict(sorted(counts.items())),
        "n_pairs": len(df),
        "elapsed_s": round(time.perf_counter() - t0, 2),
        "miner_version": FOREIGN_MINER_VERSION,
        "grammars": grammar_versions(),
    }
    atomic_write_parquet(pq, df)
    atomic_write_json(js, stats)  # written last: its presence marks a complete cache entry
    return pd.read_parquet(pq), stats


# ---------------------------------------------------------------- the cross-language set


def _dedup_text(tokens: str) -> str:
    """One Python-identifier-safe token per line, so :func:`workbench.corpus.dedup.code_tokens`
    reads back exactly these tokens (comments were removed with the tree)."""
    out = []
    for t in tokens.split():
        if t.isidentifier():
            out.append(t)
        elif t.isalnum() or "_" in t:
            out.append("n_" + t)
        else:
            out.append("p_" + "_".join(f"{ord(ch):x}" for ch in t))
    return "\n".join(out)


def _code_token_count(code: str) -> int:
    return len(re.findall(r"\w+|[^\w\s]", code))


def crosslang_key(
    languages: Sequence[str], per_language_cap: int | None, sources: Mapping[str, Sequence[ForeignSource]],
    seed: int = 0, dedup_threshold: float = 0.8,
) -> str:
    return cache_key({
        "languages": list(languages), "cap": per_language_cap, "seed": seed, "dedup_threshold": dedup_threshold,
        "sources": {lang: [s.key_params() for s in sources[lang]] for lang in languages},
        "miner": FOREIGN_MINER_VERSION, "grammars": grammar_versions(), "max_bytes": MAX_FOREIGN_FILE_BYTES,
    })


def crosslang_dir(
    languages: Sequence[str] = DEFAULT_LANGUAGES, per_language_cap: int | None = 2000,
    data_dir: str | os.PathLike | None = None, sources: Mapping[str, Sequence[ForeignSource]] | None = None,
    seed: int = 0, dedup_threshold: float = 0.8,
) -> Path:
    """``<data>/crosslang/<key>/``, where :func:`build_crosslang` writes ``pairs.parquet`` and ``stats.json``."""
    langs = _check_languages(languages)
    srcs = sources if sources is not None else CROSSLANG_SOURCES
    return _root(data_dir) / "crosslang" / crosslang_key(langs, per_language_cap, srcs, seed, dedup_threshold)


def _check_languages(languages: Sequence[str]) -> list[str]:
    if isinstance(languages, str):
        languages = [languages]
    langs = list(dict.fromkeys(languages))
    bad = [x for x in langs if x not in LANGUAGES]
    if bad or not langs:
        raise ParameterError(f"crosslang languages: unknown {bad}; known: {list(LANGUAGES)}")
    return langs


def build_crosslang(
    languages: Sequence[str] = DEFAULT_LANGUAGES,
    per_language_cap: int | None = 2000,
    data_dir: str | os.PathLike | None = None,
    force: bool = False,
    *,
    sources: Mapping[str, Sequence[ForeignSource]] | None = None,
    seed: int = 0,
    dedup_threshold: float = 0.8,
    progress: bool = False,
) -> pd.DataFrame:
    """The cross-language OOD pairs (:data:`PAIR_COLUMNS`, ``split="ood"``), built or loaded from cache.

    Per language: mine each source (cached per source; fetched once, see
    :mod:`workbench.corpus.foreign_sources`), de-duplicate exactly and near (token 3-gram Jaccard
    >= ``dedup_threshold``, :func:`workbench.corpus.dedup.deduplicate`, tokens from the tree with
    comments left out; the earlier source in the list keeps a copy), keep one function per
    normalised query (the smallest id), then keep at most ``per_language_cap`` pairs, a
    deterministic sample by hash of the id. Written to ``<data>/crosslang/<key>/pairs.parquet``
    with ``stats.json`` (counts per language and source, rejection reasons, de-duplication,
    provenance with download sizes, elapsed seconds). ``typescript`` (rxjs) is its own language.
    """
    langs = _check_languages(languages)
    if per_language_cap is not None and (not isinstance(per_language_cap, int) or per_language_cap < 1):
        raise ParameterError(f"per_language_cap: expected a positive int or None, got {per_language_cap!r}")
    srcs = dict(sources) if sources is not None else dict(CROSSLANG_SOURCES)
    missing = [x for x in langs if not srcs.get(x)]
    if missing:
        raise ParameterError(f"crosslang: no source for {missing}; give sources={{language: [ForeignSource, ...]}}")
    out_dir = _root(data_dir) / "crosslang" / crosslang_key(langs, per_language_cap, srcs, seed, dedup_threshold)
    pairs_path, stats_path = out_dir / "pairs.parquet", out_dir / "stats.json"
    if pairs_path.exists() and stats_path.exists() and not force:
        return pd.read_parquet(pairs_path)

    with build_lock(out_dir):  # a second process building the same entry waits, then loads it
        if pairs_path.exists() and stats_path.exists() and not force:
            return pd.read_parquet(pairs_path)
        t0 = time.perf_counter()
        parts: list[pd.DataFrame] = []
        lang_stats: dict[str, Any] = {}
        for lang in langs:
            frames, source_stats = [], {}
            for rank, src in enumerate(srcs[lang]):
                df, st = mine_foreign_source(src, lang, data_dir=data_dir, force=force, progress=progress)
                frames.append(df.assign(_rank=rank))
                source_stats[src.spec] = st
            allp = pd.concat(frames, ignore_index=True).sort_values(["_rank", "path", "lineno"], kind="stable")
            allp = allp.reset_index(drop=True)
            mined_counts = allp["source"].value_counts().to_dict()
            dd = deduplicate([_dedup_text(t) for t in allp["tokens"]], threshold=dedup_threshold, seed=seed)
            removed_by_source = (
                {k: g["kind"].value_counts().to_dict()
                 for k, g in dd.removed.assign(_s=allp["source"].to_numpy()[dd.removed["index"].to_numpy()]).groupby("_s")}
                if len(dd.removed) else {}
            )
            examples = [
                {"removed": f"{allp.at[r.index, 'source']}:{allp.at[r.index, 'path']}:{allp.at[r.index, 'func_name']}",
                 "kept": f"{allp.at[r.duplicate_of, 'source']}:{allp.at[r.duplicate_of, 'path']}:"
                         f"{allp.at[r.duplicate_of, 'func_name']}", "kind": r.kind, "jaccard": r.jaccard}
                for r in dd.removed.head(10).itertuples()
            ] if len(dd.removed) else []
            allp = allp[dd.keep]
            allp, query_rule = one_per_query(allp)
            n_unique = len(allp)
            if per_language_cap is not None and len(allp) > per_language_cap:
                u = np.array([stable_unit(seed, "crosslang_cap", lang, i) for i in allp["id"]])
                allp = allp.iloc[np.sort(np.argsort(u, kind="stable")[:per_language_cap])]
            parts.append(allp)
            lang_stats[lang] = {
                "sources": source_stats,
                "mined": mined_counts,
                "dedup": {**dd.summary, "removed_by_source": removed_by_source, "examples": examples},
                "one_per_query": query_rule,
                "after_dedup_and_query_rule": n_unique,
                "kept": len(allp),
                "kept_by_source": allp["source"].value_counts().to_dict(),
                "names_masked": int(allp["masked"].sum()),
                "query_mentions_name": int(sum(
                    bool(re.search(rf"\b{re.escape(f.rsplit('.', 1)[-1])}\b", q))
                    for f, q in zip(allp["func_name"], allp["query"]) if f
                )),
                "median_query_words": float(allp["query"].str.split().str.len().median()) if len(allp) else None,
                "median_code_tokens": float(allp["code"].map(_code_token_count).median()) if len(allp) else None,
                "pct_code_over_512_tokens": round(100.0 * float((allp["code"].map(_code_token_count) > 512).mean()), 2)
                if len(allp) else None,
            }
        final = pd.concat(parts, ignore_index=True).assign(split="ood")
        final = final.sort_values(["language", "_rank", "path", "lineno"], kind="stable",
                                  key=lambda s: s.map({x: i for i, x in enumerate(langs)}) if s.name == "language" else s)
        final = final[PAIR_COLUMNS].reset_index(drop=True)
        stats = {
            "key": out_dir.name,
            "languages": langs,
            "per_language_cap": per_language_cap,
            "seed": seed,
            "dedup_threshold": dedup_threshold,
            "miner_version": FOREIGN_MINER_VERSION,
            "grammars": grammar_versions(),
            "counts": {
                "language": final["language"].value_counts().reindex(langs, fill_value=0).to_dict(),
                "language_source": {k: g["source"].value_counts().to_dict() for k, g in final.groupby("language")},
                "total": len(final),
            },
            "per_language": lang_stats,
            "elapsed_s": round(time.perf_counter() - t0, 2),
        }
        atomic_write_parquet(pairs_path, final)
        atomic_write_json(stats_path, stats)  # written last: its presence marks a complete cache entry
        return pd.read_parquet(pairs_path)


def load_crosslang_stats(
    languages: Sequence[str] = DEFAULT_LANGUAGES, per_language_cap: int | None = 2000,
    data_dir: str | os.PathLike | None = None, **kwargs: Any,
) -> dict[str, Any]:
    """The ``stats.json`` of a built cross-language set (builds it first if needed)."""
    path = crosslang_dir(languages, per_language_cap, data_dir, **kwargs) / "stats.json"
    if not path.exists():
        build_crosslang(languages, per_language_cap, data_dir, **kwargs)
    return read_json(path)


def crosslang_tasks(df: pd.DataFrame, prefix: str = "crosslang") -> dict[str, Any]:
    """One :class:`~workbench.tasks.RetrievalTask` per language (``{prefix}-{language}``)."""
    from ..tasks import task_from_pairs

    if "language" not in df.columns:
        raise ParameterError(f"crosslang_tasks: no 'language' column (present: {list(df.columns)})")
    tasks = {}
    for lang in dict.fromkeys(df["language"]):
        part = df[df["language"] == lang]
        task = task_from_pairs(part, f"{prefix}-{lang}")
        task.meta.update({"language": lang, "sources": sorted(part["source"].unique().tolist())})
        tasks[lang] = task
    return tasks
