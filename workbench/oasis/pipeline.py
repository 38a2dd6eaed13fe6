"""OASIS label construction driven by run parameters (``workbench.config.Params``): one call builds,
refines and caches the order labels a notebook shows and the OASIS training variants use
(``shared/papers/001``; ``docs/methods.md`` section 3).

Steps: ``oasis_pairs`` training pairs, the first ``oasis_llm_queries`` with an LLM docstring as query
(:mod:`.docstrings`); K = ``oasis_negatives`` repository negatives each from the
train split (:mod:`.negatives`); annotator cosines as labels (:mod:`.labels`); the GMM crossing s*,
threshold and AST candidates, the LLM judge and ``label * (1 + delta_s)`` (:mod:`.refine`). Everything
is written under ``data/oasis/<key>/`` (parquet + json, atomically; the judge's replies are in the LLM
cache), so 02 and 04 share one build and a re-run costs nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..config import Params
from ..paths import data_dir
from ..store import atomic_write_json, atomic_write_parquet, build_lock, cache_key, read_json
from . import refine
from .docstrings import llm_docstrings
from .labels import similarity_labels
from .negatives import repository_negatives

__all__ = ["STRATEGIES", "OrderLabels", "judge_controls", "order_labels"]

STRATEGIES = ("none", "threshold", "ast", "both")
"""Which refinement candidates go to the judge: the variants of the OASIS ablation."""
FORMAT_VERSION = 1


@dataclass(frozen=True)
class OrderLabels:
    """The built labels: ``train`` (the labelled pairs), ``codes`` (id -> code of every labelled code),
    ``candidates`` (one row per negative: sim_raw, TED, the strategy flags, the judge's verdict) and the
    refined label frames per strategy, with the fit and timings in ``summary``."""

    train: pd.DataFrame
    codes: dict[str, str]
    candidates: pd.DataFrame
    labels: dict[str, pd.DataFrame]
    summary: dict[str, Any]

    @property
    def fit(self) -> refine.GaussianMixtureFit:
        f = self.summary["gmm"]
        return refine.GaussianMixtureFit(tuple(f["weights"]), tuple(f["means"]), tuple(f["stds"]), f["crossing"])

    def refined_fractions(self) -> pd.DataFrame:
        """Per strategy: candidates, confirmed by the judge, and the refined share of all negatives."""
        n = int((self.candidates["kind"] == "negative").sum())
        rows = []
        for s in STRATEGIES[1:]:
            cand = self.candidates[f"{s}_candidate"]
            conf = cand & (self.candidates["judge"] == True)  # noqa: E712 (None = unparsable)
            rows.append({"strategy": s, "negatives": n, "candidates": int(cand.sum()),
                         "judged": int((cand & self.candidates["judge"].notna()).sum()),
                         "confirmed": int(conf.sum()), "refined_fraction": float(conf.sum()) / n if n else 0.0})
        return pd.DataFrame(rows)


def _key(params: Params, train_ids: list[str], llm_identity: str) -> str:
    return cache_key({"v": FORMAT_VERSION, "corpus": params.corpus, "pairs": params.oasis_pairs, "seed": params.seed,
                      "k": params.oasis_negatives, "annotator": params.oasis_annotator, "annotator_bf16": params.oasis_annotator_bf16,
                      "delta_s": params.oasis_delta_s,
                      "ast": params.oasis_ast_threshold, "max_nodes": params.oasis_max_nodes,
                      "judge_max": params.oasis_judge_max, "llm_queries": params.oasis_llm_queries,
                      "llm": llm_identity, "ids": train_ids})


def _raw_key(params: Params, train_ids: list[str], llm_identity: str) -> str:
    # the LLM writes the queries of the first oasis_llm_queries pairs, so it is part of the key then
    writer = {"llm_queries": params.oasis_llm_queries, "llm": llm_identity} if params.oasis_llm_queries else {}
    return cache_key({"v": FORMAT_VERSION, "corpus": params.corpus, "seed": params.seed, "k": params.oasis_negatives,
                      "annotator": params.oasis_annotator, "annotator_bf16": params.oasis_annotator_bf16,
                      "max_query_len": params.max_query_len, "max_code_len": params.max_code_len,
                      "ids": train_ids, **writer})


def _load(folder: Path) -> OrderLabels | None:
    done = folder / "summary.json"
    if not done.exists():
        return None
    summary = read_json(done)
    train = pd.read_parquet(folder / "train.parquet")
    codes_df = pd.read_parquet(folder / "codes.parquet")
    cands = pd.read_parquet(folder / "candidates.parquet")
    labels = {s: pd.read_parquet(folder / f"labels-{s}.parquet") for s in STRATEGIES}
    return OrderLabels(train, dict(zip(codes_df["id"], codes_df["code"])), cands, labels, {**summary, "from_cache": True})


def order_labels(pairs: pd.DataFrame, params: Params, llm: Any, show_progress: bool = True,
                 out_root: str | Path | None = None) -> OrderLabels:
    """Build (or load) the OASIS labels of ``oasis_pairs`` training pairs of ``pairs`` (the mined corpus).

    ``llm`` is a :class:`workbench.llm.CachedLLM` (``chat_many``) used as the binary judge.
    """
    from ..experiment import load_model, training_sample

    train = training_sample(pairs, params.oasis_pairs, params.seed)[["id", "query", "code", "source", "path"]]
    train_ids = train["id"].astype(str).tolist()
    llm_query_ids = train_ids[: params.oasis_llm_queries]
    identity = getattr(llm, "identity", None)  # CachedLLM: the backend's public description
    llm_identity = cache_key(identity or repr(llm))
    folder = Path(out_root or data_dir() / "oasis") / _key(params, train_ids, llm_identity)
    cached = _load(folder)
    if cached is not None:
        return cached
    with build_lock(folder):  # a second process building the same entry waits, then loads it
        cached = _load(folder)
        if cached is not None:
            return cached
        timings: dict[str, float] = {}

        pool = pairs[pairs["split"] == "train"][["id", "query", "code", "source", "path"]].reset_index(drop=True)
        docstrings = None
        if llm_query_ids:  # OASIS step 1: the LLM's docstrings (from the code, its callers and callees) as queries
            t0 = time.perf_counter()
            docstrings = llm_docstrings(pairs, llm, llm_query_ids, show_progress=show_progress)
            written = dict(zip(docstrings.loc[docstrings["valid"], "id"], docstrings.loc[docstrings["valid"], "query_llm"]))
            train = train.assign(query_mined=train["query"], query=train["id"].map(written).fillna(train["query"]),
                                 query_by=np.where(train["id"].isin(written), "llm", "mined"))
            pool = pool.assign(query=pool["id"].map(written).fillna(pool["query"]))
            timings["docstrings_seconds"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        negs = repository_negatives(pool, params.oasis_negatives, params.seed, query_ids=train_ids)
        timings["negatives_seconds"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        used = pool[pool["id"].isin(set(train_ids) | set(negs["code_id"]))].reset_index(drop=True)
        # the annotator's labels are cached apart from the refinement, which has more knobs to turn
        raw_file = folder.parent / "annotated" / f"{_raw_key(params, train_ids, llm_identity)}.parquet"
        if raw_file.exists():
            raw = pd.read_parquet(raw_file)
            timings["annotator_cached"] = 1.0
        else:
            annotator = load_model(params.oasis_annotator, params)
            encode = lambda texts, side: annotator.encode(list(texts), kind=side,  # noqa: E731
                                                          show_progress=show_progress, bf16=params.oasis_annotator_bf16)
            raw = similarity_labels(used, negs, encode, query_ids=train_ids)
            raw_file.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_parquet(raw_file, raw)
        timings["annotator_seconds"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        fit = refine.gmm_crossing(raw["sim_raw"].to_numpy(), seed=params.seed)
        cands = raw.copy()
        cands["threshold_candidate"] = refine.threshold_candidates(raw, fit.crossing)
        codes = dict(zip(used["id"].astype(str), used["code"]))
        dist, ast_counts = refine.ast_candidates(raw, codes, params.oasis_ast_threshold, params.oasis_max_nodes,
                                                 show_progress=show_progress)
        cands["ted"] = dist
        cands["ast_candidate"] = (dist < params.oasis_ast_threshold).fillna(False).astype(bool)
        cands["both_candidate"] = cands["threshold_candidate"] | cands["ast_candidate"]
        timings["candidates_seconds"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        to_judge = cands.index[cands["both_candidate"]]
        if params.oasis_judge_max is not None and len(to_judge) > params.oasis_judge_max:
            rng = np.random.default_rng(params.seed)
            to_judge = pd.Index(np.sort(rng.choice(to_judge.to_numpy(), params.oasis_judge_max, replace=False)))
        query_text = dict(zip(train["id"].astype(str), train["query"]))
        requests = refine.judge_requests([query_text[q] for q in cands.loc[to_judge, "query_id"]],
                                         [codes[c] for c in cands.loc[to_judge, "code_id"]])
        replies = llm.chat_many(requests, desc="LLM judge", show_progress=show_progress) if requests else []
        cands["judge"] = pd.Series([None] * len(cands), index=cands.index, dtype=object)
        cands["judge_reply"] = pd.Series([None] * len(cands), index=cands.index, dtype=object)
        for i, reply in zip(to_judge, replies):
            cands.at[i, "judge"] = refine.parse_judgement(reply)
            cands.at[i, "judge_reply"] = reply
        timings["judge_seconds"] = time.perf_counter() - t0

        confirmed = cands["judge"].map(lambda v: v is True).astype(bool)
        labels = {"none": raw.assign(refined=False)}
        for s in STRATEGIES[1:]:
            labels[s] = refine.apply_refinement(raw, confirmed & cands[f"{s}_candidate"], params.oasis_delta_s)

        verdicts = cands.loc[to_judge, "judge"]
        summary = {
            "format_version": FORMAT_VERSION,
            "pairs": len(train), "negatives": int(len(negs)), "shortfall": int(negs.attrs.get("shortfall", 0)),
            "pairs_without_negatives": int(negs.attrs.get("pairs_without_negatives", 0)),
            "gmm": {"weights": list(fit.weights), "means": list(fit.means), "stds": list(fit.stds), "crossing": fit.crossing},
            "ast": ast_counts,
            "judge": {"sent": int(len(to_judge)), "yes": int((verdicts == True).sum()),  # noqa: E712
                      "no": int((verdicts == False).sum()), "unparsable": int(verdicts.isna().sum())},  # noqa: E712
            "timings": {k: round(v, 2) for k, v in timings.items()},
        }
        if docstrings is not None:
            a = docstrings.attrs
            summary["llm_queries"] = {"requested": len(docstrings), "valid": int(docstrings["valid"].sum()),
                                      "rejected": dict(a.get("rejected", {})), "with_callers": a.get("with_callers"),
                                      "with_callees": a.get("with_callees"), "functions_found": a.get("functions_found"),
                                      "seconds_graph": a.get("seconds_graph"), "seconds_llm": a.get("seconds_llm")}
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_parquet(folder / "train.parquet", train)
        atomic_write_parquet(folder / "codes.parquet", pd.DataFrame({"id": list(codes), "code": list(codes.values())}))
        out_cands = cands.assign(judge=cands["judge"].map(lambda v: None if v is None else bool(v)).astype("boolean"))
        atomic_write_parquet(folder / "candidates.parquet", out_cands)
        for s, frame in labels.items():
            atomic_write_parquet(folder / f"labels-{s}.parquet", frame)
        atomic_write_json(folder / "summary.json", summary)  # written last: marks the build complete
        return OrderLabels(train, codes, out_cands, labels, {**summary, "from_cache": False})


def judge_controls(built: OrderLabels, pairs: pd.DataFrame, llm: Any, n: int, seed: int = 0,
                   show_progress: bool = True) -> dict[str, Any]:
    """How far the judge's "yes" can be trusted: the same binary question for the first ``n`` labelled
    queries with their own (gold) code and with a random function of **another** package (almost
    surely wrong). A judge that says yes to most random functions confirms candidates by bias, not by
    reading them. Returns the yes rates, the unparsable count and ``n``; replies go through the cache."""
    rows = built.train.head(int(n))
    if rows.empty:
        return {"n": 0, "gold_yes_rate": None, "random_yes_rate": None, "unparsable": 0}
    pool = pairs[pairs["split"] == "train"]
    rng = np.random.default_rng(seed)
    randoms = []
    for src in rows["source"]:
        other = pool.index[pool["source"].to_numpy() != src]
        randoms.append(str(pool.at[other[rng.integers(len(other))], "code"]) if len(other) else "")
    queries = rows["query"].tolist()
    requests = refine.judge_requests(queries + queries, rows["code"].tolist() + randoms)
    verdicts = [refine.parse_judgement(r) for r in
                llm.chat_many(requests, desc="judge controls", show_progress=show_progress)]
    gold, rand = verdicts[: len(rows)], verdicts[len(rows):]
    rate = lambda v: sum(x is True for x in v) / len(v)  # noqa: E731
    return {"n": len(rows), "gold_yes_rate": rate(gold), "random_yes_rate": rate(rand),
            "unparsable": sum(x is None for x in verdicts)}
