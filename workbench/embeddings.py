"""Embeddings of a model on a test set, cached on disk so the analysis chapters encode each text once.

Texts go through the workbench's one embedding cache (:func:`workbench.retrieval.embed_texts`,
keyed by the texts and the model's weights); :func:`embed_task` embeds a whole :class:`~workbench.tasks.RetrievalTask` (the
queries that have a relevant code, and the pool) into a :class:`TaskEmbeddings` that can search
itself and name each query's gold row. The same rows :func:`workbench.evaluation.evaluate` scores.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import WorkbenchError
from .retrieval import embed_texts, search
from .tasks import RetrievalTask

__all__ = [
    "TaskEmbeddings", "by_model", "embed_task", "gold_cid", "model_cache_dir", "pair_embeddings", "task_pairs",
]


def gold_cid(task: RetrievalTask, qid: str, pos: dict[str, int] | None = None) -> str:
    """The gold code of a query: its relevant code of highest grade, the first in corpus order on ties."""
    pos = pos if pos is not None else {c: i for i, c in enumerate(task.corpus)}
    rels = [(-g, pos[c], c) for c, g in task.qrels.get(qid, {}).items() if g > 0 and c in pos]
    if not rels:
        raise WorkbenchError(f"task '{task.name}': query {qid!r} has no relevant code in the pool")
    return min(rels)[2]


@dataclass
class TaskEmbeddings:
    """A task's queries (those with a relevant code) and pool, embedded by one model."""

    task: RetrievalTask
    qids: list[str]
    cids: list[str]
    queries: np.ndarray
    corpus: np.ndarray

    def gold_rows(self) -> np.ndarray:
        """Corpus row of each query's gold code (:func:`gold_cid`)."""
        pos = {c: i for i, c in enumerate(self.cids)}
        return np.asarray([pos[gold_cid(self.task, q, pos)] for q in self.qids], dtype=np.int64)

    def search(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (scores, corpus rows) of every query (exact cosine search)."""
        return search(self.queries, self.corpus, k)


def embed_task(
    encoder: Any, task: RetrievalTask, cache_dir: str | os.PathLike | None = None, *, bf16: bool = False,
    batch_size: int = 64, show_progress: bool = True,
) -> TaskEmbeddings:
    """Embed ``task`` as :func:`~workbench.evaluation.evaluate` does (queries with a relevant code,
    the whole pool), cached under ``cache_dir``."""
    qids = task.judged_queries()
    if not qids:
        raise WorkbenchError(f"task '{task.name}': no query has a relevant code")
    cids = list(task.corpus)
    kw = dict(bf16=bf16, batch_size=batch_size, show_progress=show_progress)
    q = embed_texts(encoder, [task.queries[i] for i in qids], "query", cache_dir, **kw)
    c = embed_texts(encoder, [task.corpus[i] for i in cids], "code", cache_dir, **kw)
    return TaskEmbeddings(task, qids, cids, q, c)


def task_pairs(task: RetrievalTask, n: int | None = None, seed: int = 0) -> tuple[list[str], list[str], list[str]]:
    """Up to ``n`` (seeded) queries of ``task`` with their gold code: ``(qids, query texts, code
    texts)``, in the task's query order; the gold is the highest-graded relevant code."""
    qids = task.judged_queries()
    if n is not None and n < len(qids):
        keep = set(np.random.default_rng(seed).choice(len(qids), n, replace=False).tolist())
        qids = [q for i, q in enumerate(qids) if i in keep]
    pos = {c: i for i, c in enumerate(task.corpus)}
    gold = [gold_cid(task, q, pos) for q in qids]
    return qids, [task.queries[q] for q in qids], [task.corpus[c] for c in gold]


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


def model_cache_dir(path: str | os.PathLike, label: str, cache_root: str | os.PathLike) -> Path:
    """Where a model's embeddings are kept: beside the ``model/`` folder of a workbench training run
    (``<dir>/model`` with ``<dir>/train_config.json``), in ``<dir>/embeddings``, where the chapter
    that trained and scored it left them; else (a registry name such as the zero-shot model, or any
    other folder) in ``cache_root/<label>``. The cache's keys hold the weights, so a folder never
    serves another model's embeddings."""
    p = Path(path)
    if p.name == "model" and p.is_dir() and (p.parent / "train_config.json").exists():
        return p.parent / "embeddings"
    return Path(cache_root) / _slug(label)


def by_model(
    models: Mapping[str, str], work: Callable[[Any, Path], Any], params: Any, cache_root: str | os.PathLike,
    show_progress: bool = True,
) -> dict[str, Any]:
    """``{label: work(encoder, cache_dir)}`` for every ``label -> model path or name`` of ``models``:
    each model is loaded in turn (then released) with its cache folder (:func:`model_cache_dir`)."""
    from .experiment import load_model
    from .progress import tqdm

    out = {}
    for label, path in tqdm(list(models.items()), desc="models", unit="model", disable=not show_progress, mininterval=5):
        encoder = load_model(path, params)
        out[label] = work(encoder, model_cache_dir(path, label, cache_root))
        del encoder
    return out


def pair_embeddings(
    models: Mapping[str, str], tasks: Mapping[str, RetrievalTask], params: Any, cache_root: str | os.PathLike,
    n: int | None = None, show_progress: bool = True,
) -> dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """``{model: {task: (query_emb, gold_code_emb)}}`` of up to ``n`` seeded pairs per task (the same
    pairs for every model), for :func:`workbench.geometry.au_table`."""
    chosen = {t: task_pairs(task, n, params.test_seed) for t, task in tasks.items()}
    kw = dict(bf16=params.bf16_eval, batch_size=params.eval_batch_size, show_progress=False)

    def work(encoder: Any, cache: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        return {t: (embed_texts(encoder, q, "query", cache, **kw), embed_texts(encoder, c, "code", cache, **kw))
                for t, (_, q, c) in chosen.items()}

    return by_model(models, work, params, cache_root, show_progress)
