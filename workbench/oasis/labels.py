"""Graded similarity labels from an annotator embedder (OASIS, ``shared/papers/001`` section 3.2;
``docs/methods.md`` section 3, step 2).

Every query has its gold code (label 1.0) and K repository negatives
(:func:`workbench.oasis.negatives.repository_negatives`) whose label is the annotator's cosine of
(query, negative code), clipped to [0, 1). The annotator is a different embedder from the model being
trained (``mpnet`` by default), so the labels are not the student's own opinion. The annotator's
cosine of the gold pair is kept as ``sim_raw`` of the positive row: the threshold refinement asks
whether a negative scores above it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from workbench.errors import ParameterError

__all__ = ["LABEL_COLUMNS", "similarity_labels"]

LABEL_COLUMNS = ["query_id", "code_id", "kind", "rank", "same_module", "sim_raw", "label"]
Encode = Callable[[Sequence[str], str], np.ndarray]
"""``encode(texts, side)`` with side ``"query"`` or ``"code"``: L2-normalised rows."""
BELOW_ONE = float(np.nextafter(np.float32(1.0), np.float32(0.0)))


def similarity_labels(pairs: pd.DataFrame, negatives: pd.DataFrame, encode: Encode,
                      query_ids: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per (query, code): the positive (label 1.0) and each negative (annotator cosine in [0, 1)).

    ``pairs`` (``id``, ``query``, ``code``) holds the labelled pairs and every negative's code;
    ``negatives`` is :func:`repository_negatives`' frame; ``query_ids`` (default: every pair) are the
    queries that get labels. Only those queries and the codes they need are embedded. Rows are
    ordered query by query, the positive first.
    """
    for col in ("id", "query", "code"):
        if col not in pairs.columns:
            raise ParameterError(f"pairs: missing column {col!r}")
    for col in ("query_id", "code_id", "rank", "same_module"):
        if col not in negatives.columns:
            raise ParameterError(f"negatives: missing column {col!r} (expected repository_negatives' frame)")
    by_id = pairs.assign(id=pairs["id"].astype(str)).set_index("id")
    qids = pd.Index(by_id.index if query_ids is None else [str(i) for i in query_ids])
    negatives = negatives[negatives["query_id"].astype(str).isin(set(qids))]
    cids = pd.Index(pd.unique(np.concatenate([qids.to_numpy(), negatives["code_id"].astype(str).to_numpy()])))
    unknown = sorted(set(qids).union(cids) - set(by_id.index))
    if unknown:
        raise ParameterError(f"negatives / query_ids: id(s) not in pairs: {unknown[:5]}")
    q_emb = np.asarray(encode(by_id.loc[qids, "query"].tolist(), "query"), dtype=np.float32)
    c_emb = np.asarray(encode(by_id.loc[cids, "code"].tolist(), "code"), dtype=np.float32)
    if q_emb.shape[0] != len(qids) or c_emb.shape[0] != len(cids) or q_emb.shape[1:] != c_emb.shape[1:]:
        raise ParameterError(f"encode: expected {len(qids)} query and {len(cids)} code rows, got {q_emb.shape} and {c_emb.shape}")
    pos_sim = np.einsum("ij,ij->i", q_emb, c_emb[cids.get_indexer(qids)])
    qi = qids.get_indexer(negatives["query_id"].astype(str))
    ci = cids.get_indexer(negatives["code_id"].astype(str))
    neg_sim = np.einsum("ij,ij->i", q_emb[qi], c_emb[ci])
    pos = pd.DataFrame({"query_id": qids, "code_id": qids, "kind": "positive", "rank": -1, "same_module": True,
                        "sim_raw": pos_sim.astype(float), "label": 1.0})
    neg = pd.DataFrame({"query_id": qids[qi], "code_id": cids[ci], "kind": "negative",
                        "rank": negatives["rank"].to_numpy(), "same_module": negatives["same_module"].to_numpy(),
                        "sim_raw": neg_sim.astype(float), "label": np.clip(neg_sim, 0.0, BELOW_ONE).astype(float)})
    out = pd.concat([pos, neg], ignore_index=True)
    out["_order"] = np.concatenate([np.arange(len(pos)), qi])
    out = out.sort_values(["_order", "rank"], kind="stable").drop(columns="_order").reset_index(drop=True)
    return out[LABEL_COLUMNS]
