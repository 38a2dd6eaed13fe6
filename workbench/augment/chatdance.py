"""ChatDANCE (Wang et al., papers/002; methods.md section 2): LLM rewrites of queries and code, sent,
read and filtered by the cross-encoder (Algorithm 1).

Pipeline: the requests come from :mod:`workbench.augment.prompts` (a :class:`PromptSchema` with the
paper's five parts, Section III-A1, Tables I and II); :func:`rewrite_queries` / :func:`rewrite_code`
send them through any object with ``chat_many`` (``workbench.llm.CachedLLM``), read the answers
with :mod:`workbench.augment.rewrites` (extraction, rejection by reason, the :class:`RewriteLog`)
and return candidate pairs; then :func:`build_augmented` keeps those the scorer (the cross-encoder)
rates high enough (Algorithm 1), and :func:`ablation_sets` builds the paper's ablations.

Two prompting modes: ``"batched"`` is the paper's (one prompt asks for N rewrites; for capable
remote models) and ``"single"`` (default) asks for one rewrite per call with a system prompt, a few
example turns and a different seed per call, which works far better for small local models
(``shared/docs/offline.md``: Qwen2.5-Coder-0.5B repeats itself when asked for several at once).

Generated code is data: it is parsed with :mod:`ast` and tokenised, never executed (no ``exec``,
``eval`` or import of it anywhere in this package).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
import pandas as pd

from ..errors import ParameterError
from ..llm import Message, Sampling
from ..pairs import check_pairs
from .prompts import (
    ALL_TECHNIQUES,
    CODE_EXAMPLES,
    CODE_KIND,
    CODE_PROMPT,
    PARAPHRASE,
    QUERY_ANSWER_RULE,
    QUERY_EXAMPLES,
    QUERY_KIND,
    QUERY_PROMPT,
    CodeExample,
    Mode,
    PromptSchema,
    QueryExample,
    RewriteRequest,
    build_code_requests,
    build_query_requests,
)
from .qra import augmented_id
from .rewrites import (
    RewriteLog,
    check_code,
    example_function_names,
    extract_code_blocks,
    extract_queries,
    query_reject_reason,
)

CONTRACT_COLUMNS = ("id", "aug_of", "query", "code", "aug_kind", "aug_op", "raw")


# --------------------------------------------------------------------------------------------
# Generation


class ChatMany(Protocol):
    def chat_many(self, requests: list[tuple[list[Message], Sampling]], concurrency: int = 1,
                  desc: str = "llm", show_progress: bool = True) -> list[str]: ...

    def stats(self) -> dict: ...


#: a stable 16-hex id of a rewrite (the Pair id's length), shared by every augmenter
candidate_id = augmented_id


def _stats_delta(before: dict, after: dict) -> dict[str, Any]:
    return {k: after[k] - before.get(k, 0) for k in after
            if isinstance(after[k], (int, float)) and isinstance(before.get(k, 0), (int, float))}


def _send(llm: ChatMany, requests: list[RewriteRequest], concurrency: int, desc: str, show_progress: bool
          ) -> tuple[list[str], dict[str, Any]]:
    before = dict(llm.stats())
    texts = llm.chat_many([(list(r.messages), r.sampling) for r in requests], concurrency=concurrency,
                          desc=desc, show_progress=show_progress)
    if len(texts) != len(requests):
        raise ParameterError(f"llm.chat_many returned {len(texts)} answers for {len(requests)} requests")
    return texts, _stats_delta(before, dict(llm.stats()))


def _candidate_frame(rows: list[dict[str, Any]], pairs: pd.DataFrame) -> pd.DataFrame:
    extra = [c for c in pairs.columns if c not in CONTRACT_COLUMNS]
    cols = [*CONTRACT_COLUMNS, *extra]
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype=pairs[c].dtype if c in pairs.columns else object) for c in cols})
    meta = pairs.set_index(pairs["id"].astype(str))
    out = pd.DataFrame(rows)
    for c in extra:
        out[c] = meta.loc[out["aug_of"], c].to_numpy()
    return out[cols].reset_index(drop=True)


def _collect(
    llm: ChatMany, reqs: list[RewriteRequest], pairs: pd.DataFrame, concurrency: int, desc: str,
    show_progress: bool, extract: Callable[..., list[str]],
    judge: Callable[[str, str, str, list], tuple[str | None, str, Any]], empty_reason: str,
) -> tuple[pd.DataFrame, RewriteLog]:
    """Send ``reqs``, extract the items of each reply and judge each against its pair:
    ``judge(item, query, code, seen) -> (reason or None, cleaned text, what joins seen)``, where
    ``seen`` holds what was accepted for the same original (for duplicates). A query rewrite keeps
    the pair's code, a code rewrite its query. Returns the accepted candidates and the log."""
    texts, delta = _send(llm, reqs, concurrency, desc, show_progress)
    by_id = {str(i): (str(q), str(c)) for i, q, c in zip(pairs["id"], pairs["query"], pairs["code"])}
    log = RewriteLog(requests=len(reqs), llm_stats=delta)
    accepted: dict[str, list] = {}
    rows: list[dict[str, Any]] = []
    for req, raw in zip(reqs, texts):
        query, code = by_id[req.pair_id]
        items = extract(raw, single=req.n_expected == 1)
        if not items:
            log.add(req.aug_kind, req.technique, req.pair_id, req.index, 0, str(raw), empty_reason, raw=str(raw))
            continue
        seen = accepted.setdefault(req.pair_id, [])
        for j, item in enumerate(items):
            reason, text, key = judge(item, query, code, seen)
            cid = candidate_id(req.pair_id, req.aug_kind, req.technique, text) if reason is None else None
            log.add(req.aug_kind, req.technique, req.pair_id, req.index, j, text, reason, cid, str(raw))
            if reason is None:
                seen.append(key)
                new_q, new_c = (text, code) if req.aug_kind == QUERY_KIND else (query, text)
                rows.append({"id": cid, "aug_of": req.pair_id, "query": new_q, "code": new_c,
                             "aug_kind": req.aug_kind, "aug_op": req.technique, "raw": raw})
    return _candidate_frame(rows, pairs), log


def rewrite_queries(
    llm: ChatMany,
    pairs: pd.DataFrame,
    n: int = 5,
    mode: Mode = "single",
    schema: PromptSchema = QUERY_PROMPT,
    sampling: Sampling | None = None,
    concurrency: int = 1,
    seed: int = 0,
    alpha: float = 1.6,
    min_ratio: float = 0.5,
    min_words: int = 3,
    slack: int = 2,
    examples: Sequence[QueryExample] = QUERY_EXAMPLES,
    show_progress: bool = True,
    answer_rule: str = QUERY_ANSWER_RULE,
    technique: str = PARAPHRASE,
    bounds: tuple[int, int] | None = None,
    code_chars: int | None = None,
) -> tuple[pd.DataFrame, RewriteLog]:
    """LLM query rewrites of every pair (ChatDANCE query augmentation, Table I), validated.

    Returns the accepted candidates (columns ``id, aug_of, query, code, aug_kind="llm_query",
    aug_op=technique, raw`` + the pair's other columns; ``code`` is the original code) and the
    :class:`RewriteLog` of every candidate. ``seed`` seeds every request (:func:`request_seed`;
    the seed inside ``sampling`` is replaced). Another kind of query rewrite is another
    ``schema`` / ``examples`` / ``answer_rule`` under its own ``technique`` name, with fixed word
    ``bounds`` when the docstring-relative ones do not fit (``workbench.augment.web_queries``).
    """
    reqs = build_query_requests(pairs, n, mode, schema, sampling, seed, alpha, examples, answer_rule, technique,
                                code_chars)

    def judge(cand: str, query: str, code: str, seen: list[str]) -> tuple[str | None, str, str]:
        return query_reject_reason(cand, query, seen, alpha, min_ratio, min_words, slack, bounds), cand, cand

    desc = f"query rewrites ({mode})" if technique == PARAPHRASE else f"{technique} rewrites ({mode})"
    return _collect(llm, reqs, pairs, concurrency, desc, show_progress, extract_queries, judge, "empty")


def rewrite_code(
    llm: ChatMany,
    pairs: pd.DataFrame,
    techniques: Sequence[str] = ALL_TECHNIQUES,
    per_technique: int = 1,
    mode: Mode = "single",
    schema: PromptSchema = CODE_PROMPT,
    sampling: Sampling | None = None,
    concurrency: int = 1,
    seed: int = 0,
    max_ratio: float = 3.0,
    keep_imports: bool = False,
    examples: Sequence[CodeExample] = CODE_EXAMPLES,
    show_progress: bool = True,
) -> tuple[pd.DataFrame, RewriteLog]:
    """LLM code rewrites of every pair with each technique (ChatDANCE code augmentation, Table II),
    validated by :func:`check_code` (parsed only, never executed).

    Returns the accepted candidates (``aug_kind="llm_code"``, ``aug_op`` = the technique, ``query``
    the original query, ``code`` the cleaned rewrite) and the :class:`RewriteLog`. Duplicates are
    checked across techniques of the same original.
    """
    reqs = build_code_requests(pairs, techniques, per_technique, mode, schema, sampling, seed, examples)
    names = example_function_names(examples)

    def judge(block: str, query: str, code: str, seen: list[str]) -> tuple[str | None, str, str | None]:
        chk = check_code(block, code, seen, max_ratio, names, keep_imports)
        return chk.reason, chk.code, chk.dump

    return _collect(llm, reqs, pairs, concurrency, f"code rewrites ({mode})", show_progress,
                    extract_code_blocks, judge, "no_code_block")


# --------------------------------------------------------------------------------------------
# Algorithm 1: filtering with the cross-encoder

Scorer = Callable[[list[str], list[str]], np.ndarray]


def memoize_scorer(scorer: Scorer) -> Scorer:
    """Wrap ``scorer`` so each distinct (query, code) is scored once (the ablation sets share scores)."""
    memo: dict[tuple[str, str], float] = {}

    def scored(queries: list[str], codes: list[str]) -> np.ndarray:
        todo = list(dict.fromkeys((q, c) for q, c in zip(queries, codes) if (q, c) not in memo))
        if todo:
            vals = _checked_scores(scorer([q for q, _ in todo], [c for _, c in todo]), len(todo))
            memo.update(zip(todo, vals.tolist()))
        return np.array([memo[(q, c)] for q, c in zip(queries, codes)], dtype=np.float64)

    return scored


def _checked_scores(values: Any, n: int) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.shape[0] != n:
        raise ParameterError(f"scorer returned {arr.shape[0]} scores for {n} (query, code) pairs")
    if n and (not np.all(np.isfinite(arr)) or arr.min() < 0.0 or arr.max() > 1.0):
        raise ParameterError(f"scorer: scores must be finite and in [0, 1]; got min {arr.min()}, max {arr.max()}")
    return arr


def _empty_candidates() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in CONTRACT_COLUMNS})


def _check_candidates(cands: pd.DataFrame | None, what: str, known: set[str]) -> pd.DataFrame:
    if cands is None:
        return _empty_candidates()
    missing = [c for c in ("id", "aug_of", "query", "code") if c not in cands.columns]
    if missing:
        raise ParameterError(f"{what}: missing column(s) {missing}; have {list(cands.columns)}")
    orphans = sorted(set(cands["aug_of"].astype(str)) - known)
    if orphans:
        raise ParameterError(f"{what}: aug_of {orphans[0]!r} (and {len(orphans) - 1} more) is not an id of the "
                             f"original pairs")
    return cands.reset_index(drop=True)


def build_augmented(
    original: pd.DataFrame,
    query_cands: pd.DataFrame | None,
    code_cands: pd.DataFrame | None,
    scorer: Scorer | None,
    theta_q: float = 0.95,
    theta_c: float = 0.75,
    seed: int = 0,
    filter: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Algorithm 1 of ChatDANCE (papers/002, Section III-B2): the filtered augmented training set.

    D_aug starts as D (rows with ``aug_kind="original"``). For each pair (q, c) of D, in order:
    ``code_list = [c]``; each code candidate c_aug of the pair (lines 5-12) with
    ``scorer(q, c_aug) >= theta_c`` adds (q, c_aug) and joins ``code_list``; then each query
    candidate q_aug (lines 13-20) with ``scorer(q_aug, c) >= theta_q`` adds
    (q_aug, ``rng.choice(code_list)``), ``rng = random.Random(seed)`` (line 17's random.choice).
    ``filter=False`` keeps every candidate (the "without filtering" ablation; ``scorer`` may then
    be None). Scores of all candidates are computed in two scorer calls.

    Returns ``d_aug`` (D's columns + ``aug_of``, ``aug_kind``, ``aug_op``, ``code_from``: the id of
    the row whose code a kept query was paired with) and ``decisions`` (one row per candidate:
    ``id, aug_of, aug_kind, aug_op, score, threshold, kept, code_from``).
    """
    check_pairs(original, "original", min_rows=0, text=())
    if filter and scorer is None:
        raise ParameterError("build_augmented: a scorer is needed when filter=True")
    ids = original["id"].astype(str).tolist()
    known = set(ids)
    qc = _check_candidates(query_cands, "query candidates", known)
    cc = _check_candidates(code_cands, "code candidates", known)
    q_of = dict(zip(ids, original["query"].astype(str)))
    c_of = dict(zip(ids, original["code"].astype(str)))

    def score(queries: list[str], codes: list[str]) -> np.ndarray:
        if not queries:
            return np.zeros(0)
        if scorer is None:
            return np.full(len(queries), np.nan)
        return _checked_scores(scorer(queries, codes), len(queries))

    c_scores = score([q_of[a] for a in cc["aug_of"].astype(str)], cc["code"].astype(str).tolist())
    q_scores = score(qc["query"].astype(str).tolist(), [c_of[a] for a in qc["aug_of"].astype(str)])
    code_idx: dict[str, list[int]] = {}
    for i, a in enumerate(cc["aug_of"].astype(str)):
        code_idx.setdefault(a, []).append(i)
    query_idx: dict[str, list[int]] = {}
    for i, a in enumerate(qc["aug_of"].astype(str)):
        query_idx.setdefault(a, []).append(i)

    rng = random.Random(seed)
    base = original.copy()
    base["aug_of"], base["aug_kind"], base["aug_op"], base["code_from"] = ids, "original", "original", ids
    added: list[dict[str, Any]] = []
    decisions: list[dict[str, Any]] = []
    meta_cols = [c for c in original.columns if c not in ("id", "query", "code")]
    meta = original.set_index(original["id"].astype(str))

    def row(cand: pd.Series, code: str, code_from: str, kind: str) -> dict[str, Any]:
        r = {c: meta.at[str(cand["aug_of"]), c] for c in meta_cols}
        r.update({"id": str(cand["id"]), "query": str(cand["query"]), "code": code, "aug_of": str(cand["aug_of"]),
                  "aug_kind": cand.get("aug_kind", kind), "aug_op": cand.get("aug_op", ""), "code_from": code_from})
        return r

    for pid in ids:  # line 3
        code_list: list[tuple[str, str]] = [(pid, c_of[pid])]  # line 4
        for i in code_idx.get(pid, []):  # lines 5-12
            cand = cc.iloc[i]
            kept = (not filter) or bool(c_scores[i] >= theta_c)
            decisions.append({"id": str(cand["id"]), "aug_of": pid, "aug_kind": cand.get("aug_kind", CODE_KIND),
                              "aug_op": cand.get("aug_op", ""), "score": float(c_scores[i]),
                              "threshold": float(theta_c), "kept": kept, "code_from": str(cand["id"]) if kept else None})
            if kept:
                added.append(row(cand, str(cand["code"]), str(cand["id"]), CODE_KIND))
                code_list.append((str(cand["id"]), str(cand["code"])))
        for i in query_idx.get(pid, []):  # lines 13-20
            cand = qc.iloc[i]
            kept = (not filter) or bool(q_scores[i] >= theta_q)
            code_from = None
            if kept:
                code_from, code = rng.choice(code_list)  # line 17
                added.append(row(cand, code, code_from, QUERY_KIND))
            decisions.append({"id": str(cand["id"]), "aug_of": pid, "aug_kind": cand.get("aug_kind", QUERY_KIND),
                              "aug_op": cand.get("aug_op", ""), "score": float(q_scores[i]),
                              "threshold": float(theta_q), "kept": kept, "code_from": code_from})

    cols = [*original.columns, "aug_of", "aug_kind", "aug_op", "code_from"]
    d_aug = base[cols].reset_index(drop=True)
    if added:
        d_aug = pd.concat([d_aug, pd.DataFrame(added, columns=cols)], ignore_index=True)
    dup = d_aug["id"][d_aug["id"].duplicated()]
    if len(dup):
        raise ParameterError(f"build_augmented: id {dup.iloc[0]!r} appears twice (candidate ids must be unique "
                             f"and differ from D's)")
    dec_cols = ["id", "aug_of", "aug_kind", "aug_op", "score", "threshold", "kept", "code_from"]
    return d_aug, pd.DataFrame(decisions, columns=dec_cols)


#: the ablation training sets (names as in ``workbench.augment.comparison.LABELS``)
ABLATIONS = ("llm_query", "llm_code", "llm_both", "llm_nofilter")


def ablation_sets(
    original: pd.DataFrame,
    query_cands: pd.DataFrame,
    code_cands: pd.DataFrame,
    scorer: Scorer,
    theta_q: float = 0.95,
    theta_c: float = 0.75,
    seed: int = 0,
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """The ChatDANCE ablation training sets (Table VII), each a full D_aug of :func:`build_augmented`:
    ``llm_query`` (query rewrites only, paired with the original code), ``llm_code`` (code rewrites
    only), ``llm_both`` (Algorithm 1) and ``llm_nofilter`` (both, nothing filtered). Every
    (query, code) is scored once. Returns the sets and the decisions of ``llm_both``."""
    memo = memoize_scorer(scorer)
    sets: dict[str, pd.DataFrame] = {}
    sets["llm_query"], _ = build_augmented(original, query_cands, None, memo, theta_q, theta_c, seed)
    sets["llm_code"], _ = build_augmented(original, None, code_cands, memo, theta_q, theta_c, seed)
    sets["llm_both"], decisions = build_augmented(original, query_cands, code_cands, memo, theta_q, theta_c, seed)
    sets["llm_nofilter"], _ = build_augmented(original, query_cands, code_cands, None, theta_q, theta_c, seed,
                                              filter=False)
    return sets, decisions

