"""The OASIS training objective's data side: a trainer hook that hands each batch its labelled
repository negatives (``shared/papers/001`` section 3.4, eq. 4; ``docs/methods.md`` section 3, step 4).

``train(encoder, pairs, TrainConfig(contrastive_weight=0.98, order_weight=0.02),
negatives=OrderLabelHook(pairs["id"], labels, codes))`` trains with ``0.98 * InfoNCE + 0.02 * CoSENT``:
the negatives join InfoNCE as extra columns and CoSENT ranks the cosines of every labelled pair of the
batch (positives at 1.0, negatives at their refined annotator similarity) by label.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from workbench.errors import ParameterError
from workbench.store import cache_key
from workbench.training.train_config import LabelledNegatives

__all__ = ["OrderLabelHook"]


class OrderLabelHook:
    """``hook(rows, step, progress) -> LabelledNegatives`` for ``workbench.training.train``.

    ``train_ids``: the ids of the training pairs in the order ``train`` sees them; ``labels``:
    :func:`workbench.oasis.labels.similarity_labels`' frame (possibly refined); ``codes``: id -> code
    text for every ``code_id`` in ``labels``. Deterministic (no sampling), so resumed runs see what
    uninterrupted ones did; ``key`` fingerprints the labels for the trainer's resume key.
    """

    labelled = True

    def __init__(self, train_ids: Sequence[str], labels: pd.DataFrame, codes: dict[str, str]) -> None:
        for col in ("query_id", "code_id", "kind", "label"):
            if col not in labels.columns:
                raise ParameterError(f"labels: missing column {col!r} (expected similarity_labels' frame)")
        ids = [str(i) for i in train_ids]
        pos = labels[labels["kind"] == "positive"].set_index("query_id")["label"]
        missing = [i for i in ids if i not in pos.index]
        if missing:
            raise ParameterError(f"labels: no positive row for training pair(s) {missing[:5]}")
        unknown = sorted(set(labels["code_id"].astype(str)) - set(codes))
        if unknown:
            raise ParameterError(f"codes: no code text for code id(s) {unknown[:5]}")
        negs = labels[labels["kind"] == "negative"]
        by_query = {q: g for q, g in negs.groupby("query_id", sort=False)}
        self._positive = np.array([float(pos[i]) for i in ids], dtype=np.float32)
        self._texts: list[list[str]] = []
        self._labels: list[np.ndarray] = []
        for i in ids:
            g = by_query.get(i)
            self._texts.append([] if g is None else [codes[str(c)] for c in g["code_id"]])
            self._labels.append(np.zeros(0, np.float32) if g is None else g["label"].to_numpy(np.float32))
        self.key = "oasis-" + cache_key({
            "ids": ids,
            "labels": labels[["query_id", "code_id", "kind", "label"]].round(7).astype(str).values.tolist(),
        })

    def __call__(self, rows: np.ndarray, step: int, progress: float) -> LabelledNegatives:
        texts: list[str] = []
        owner: list[int] = []
        labels: list[np.ndarray] = []
        for b, r in enumerate(np.asarray(rows, dtype=int)):
            texts.extend(self._texts[r])
            owner.extend([b] * len(self._texts[r]))
            labels.append(self._labels[r])
        return LabelledNegatives(texts, np.asarray(owner, dtype=np.int64),
                                 np.concatenate(labels) if labels else np.zeros(0, np.float32),
                                 self._positive[np.asarray(rows, dtype=int)])
