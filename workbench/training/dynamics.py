"""Training dynamics: the model's probability of each pair's gold code at several checkpoints.

Step 2 of Select then MixUp (methods.md section 1; papers/000), after dataset cartography
(Swayamdipta et al. 2020, "Dataset Cartography", section 2): for pair i at checkpoint e,

    p_gold(i, e) = exp(s(q_i, c_i) / tau) / sum_{c in C(i, e)} exp(s(q_i, c) / tau)

with s the cosine of the bi-encoder and C the candidate codes. ``workbench.cartography`` turns the
table into confidence / variability / correctness. Two candidate sets:

- ``in_batch``: the codes of the batch the pair is trained in, read off the InfoNCE logits the
  training step already computed (no extra forward pass; dropout is on, as in the cartography
  code which also records the training forward pass). A checkpoint is one epoch.
- ``fixed_pool``: a fixed random pool of ``pool_size`` distinct training codes, drawn once with
  the seed, plus the pair's gold; pool codes identical to the gold code are left out. Optional
  *extra* pool codes (``train(..., pool_codes=...)``, e.g. every other function of the training
  pairs' files: mined hard negatives, ``experiment.pool_codes``) join the pool whole. All
  training queries and codes are encoded without gradients (eval mode) ``checkpoints_per_epoch``
  times per epoch, at evenly spaced steps, and at the last step if training stops mid-epoch.
- ``both``: ``in_batch`` and ``fixed_pool`` in the same run (rows tagged by ``mode``), so the two
  data maps of one training run can be compared (``cartography.compare_modes``).
- ``none``: record nothing.

Columns (``DYNAMICS_COLUMNS``, see docs/architecture.md "Dynamics"): ``pair_id``, ``checkpoint``
(0-based), ``epoch`` (float: training progress in epochs when the score was taken, i.e.
``step / steps_per_epoch``), ``step`` (optimizer steps completed at scoring time; for
``in_batch`` the 1-based step whose forward pass gave the logits), ``mode``, ``p_gold``,
``rank`` (1 + number of candidates scoring strictly higher, so ties favour the gold),
``loss`` (-log p_gold), ``correct`` (rank == 1).

With ``drop_last=True`` in the trainer, the pairs that fall in an epoch's incomplete last batch
(fewer than ``batch_size``) are not trained in that epoch, so in ``in_batch`` mode they get no row
for it; ``cartography.data_map`` reports ``n_checkpoints`` per pair.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from workbench.errors import ParameterError
from workbench.store import atomic_write_parquet

__all__ = ["DYNAMICS_COLUMNS", "MODES", "DynamicsRecorder", "score_logits", "checkpoint_steps"]

DYNAMICS_COLUMNS = ["pair_id", "checkpoint", "epoch", "step", "mode", "p_gold", "rank", "loss", "correct"]
MODES = ("in_batch", "fixed_pool", "both", "none")
_DTYPES = {
    "pair_id": object,
    "checkpoint": "int64",
    "epoch": "float64",
    "step": "int64",
    "mode": object,
    "p_gold": "float64",
    "rank": "int64",
    "loss": "float64",
    "correct": "bool",
}


def score_logits(
    logits: torch.Tensor, labels: torch.Tensor | None = None, exclude: torch.Tensor | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row i: ``p_gold = softmax(logits[i])[gold_i]``, ``rank = 1 + #{j: logits[i,j] > logits[i,gold_i]}``,
    ``loss = -log p_gold`` (computed as -log_softmax, stable for tiny probabilities).

    ``labels`` gives the gold column per row (default ``arange(B)``); ``exclude`` is an optional
    boolean mask (B, N) of candidates to leave out of both the softmax and the rank (never the gold).
    Returns float64 / int64 NumPy arrays.
    """
    with torch.no_grad():
        x = logits.detach().float()
        b = x.shape[0]
        if labels is None:
            labels = torch.arange(b, device=x.device)
        labels = labels.to(x.device).long()
        if exclude is not None:
            exclude = exclude.to(x.device).bool().clone()
            exclude[torch.arange(b, device=x.device), labels] = False
            x = x.masked_fill(exclude, float("-inf"))
        gold = x.gather(1, labels[:, None])
        loss = -(x.log_softmax(dim=-1).gather(1, labels[:, None]).squeeze(1))
        rank = 1 + (x > gold).sum(dim=1)
        loss_np = loss.double().cpu().numpy()
        return np.exp(-loss_np), rank.cpu().numpy().astype(np.int64), loss_np


def checkpoint_steps(
    mode: str, steps_per_epoch: int, total_steps: int, checkpoints_per_epoch: int = 1
) -> list[int]:
    """The optimizer steps after which a checkpoint's scores are complete.

    ``in_batch`` / ``none``: the end of every epoch (and the last step). ``fixed_pool``:
    ``checkpoints_per_epoch`` evenly spaced steps per epoch, ``e*S + ceil((k+1) * S / K)``
    for k = 0..K-1 (duplicates dropped when K > S), plus the last step if training stops mid-epoch.
    """
    if steps_per_epoch < 1 or total_steps < 0:
        raise ParameterError(
            f"steps_per_epoch must be >= 1 and total_steps >= 0, got {steps_per_epoch}, {total_steps}"
        )
    k = checkpoints_per_epoch if mode in ("fixed_pool", "both") else 1
    epochs = math.ceil(total_steps / steps_per_epoch)
    steps: set[int] = set()
    for e in range(epochs):
        for j in range(k):
            s = e * steps_per_epoch + max(1, -(-(j + 1) * steps_per_epoch // k))  # ceil
            if s <= total_steps:
                steps.add(s)
    if total_steps > 0:
        steps.add(total_steps)
    return sorted(steps)


class DynamicsRecorder:
    """Collects the dynamics table while a model trains (Swayamdipta et al. 2020; Select then MixUp step 2).

    Usage by the trainer: ``plan(steps_per_epoch, total_steps)``; for ``fixed_pool`` also
    ``setup_pool(pair_ids, queries, codes)``; then every step ``record_batch(logits, pair_ids, step)``
    and, when ``is_pool_checkpoint(step)``, ``record_pool(encoder, step)``. Rows stay in memory;
    ``flush(path)`` writes them atomically (the trainer does so at every checkpoint save) and
    ``restore(frame)`` puts them back on resume. ``to_frame()`` returns the table.
    """

    def __init__(
        self,
        mode: str = "in_batch",
        *,
        temperature: float = 0.05,
        checkpoints_per_epoch: int = 1,
        pool_size: int = 256,
        seed: int = 42,
        encode_batch_size: int = 64,
        bf16: bool = False,
        show_progress: bool = False,
        chunk_rows: int = 4096,
    ):
        if mode not in MODES:
            raise ParameterError(f"dynamics mode: expected one of {MODES}, got {mode!r}")
        if not temperature > 0:
            raise ParameterError(f"temperature: must be > 0, got {temperature!r}")
        for name, v in (
            ("checkpoints_per_epoch", checkpoints_per_epoch),
            ("pool_size", pool_size),
            ("encode_batch_size", encode_batch_size),
        ):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ParameterError(f"{name}: expected a positive integer, got {v!r}")
        self.mode = mode
        self.temperature = float(temperature)
        self.checkpoints_per_epoch = checkpoints_per_epoch
        self.pool_size = pool_size
        self.seed = seed
        self.encode_batch_size = encode_batch_size
        self.bf16 = bf16
        self.show_progress = show_progress
        self.chunk_rows = chunk_rows
        self.steps_per_epoch: int | None = None
        self.total_steps: int | None = None
        self.checkpoint_steps: list[int] = []
        self._ckset: set[int] = set()
        self._chunks: list[pd.DataFrame] = []
        self._pending: list[dict[str, np.ndarray]] = []
        # fixed pool state
        self._ids: list[str] | None = None
        self._queries: list[str] | None = None
        self._codes: list[str] | None = None
        self._uniq_codes: np.ndarray | None = None  # distinct code texts, sorted
        self._code_index: np.ndarray | None = None  # pair -> index into _uniq_codes
        self.pool_indices: np.ndarray | None = None  # indices into the unique codes

    # ------------------------------------------------------------------ set-up
    @property
    def enabled(self) -> bool:
        return self.mode != "none"

    @property
    def records_batch(self) -> bool:
        return self.mode in ("in_batch", "both")

    @property
    def records_pool(self) -> bool:
        return self.mode in ("fixed_pool", "both")

    def plan(self, steps_per_epoch: int, total_steps: int) -> list[int]:
        """Fix the schedule; returns the checkpoint steps."""
        self.steps_per_epoch = int(steps_per_epoch)
        self.total_steps = int(total_steps)
        self.checkpoint_steps = checkpoint_steps(
            self.mode, self.steps_per_epoch, self.total_steps, self.checkpoints_per_epoch
        )
        self._ckset = set(self.checkpoint_steps)
        if self.records_pool and self.checkpoints_per_epoch > self.steps_per_epoch:
            warnings.warn(
                f"checkpoints_per_epoch={self.checkpoints_per_epoch} exceeds the {self.steps_per_epoch} steps per "
                "epoch: scoring after every step instead",
                stacklevel=2,
            )
        return self.checkpoint_steps

    def setup_pool(
        self,
        pair_ids: Sequence[str],
        queries: Sequence[str],
        codes: Sequence[str],
        extra_codes: Sequence[str] = (),
    ) -> np.ndarray:
        """Draw the fixed pool: ``min(pool_size, #distinct training codes)`` distinct training codes,
        seeded, plus every distinct ``extra_codes`` text (hard negatives; a text equal to a training
        code is that code). Returns the pool's indices into the distinct codes."""
        if not (len(pair_ids) == len(queries) == len(codes)):
            raise ParameterError("setup_pool: pair_ids, queries and codes must have the same length")
        self._ids, self._queries, self._codes = [str(i) for i in pair_ids], list(queries), list(codes)
        texts = np.asarray(self._codes + [str(c) for c in extra_codes], dtype=object)
        self._uniq_codes, inverse = np.unique(texts, return_inverse=True)
        self._code_index = inverse[: len(self._codes)]
        train_uniq = np.unique(self._code_index)
        rng = np.random.default_rng(self.seed)
        drawn = train_uniq[np.sort(rng.choice(len(train_uniq), size=min(self.pool_size, len(train_uniq)), replace=False))]
        self.pool_indices = np.union1d(drawn, inverse[len(self._codes) :]).astype(np.int64)
        return self.pool_indices

    def is_pool_checkpoint(self, step: int) -> bool:
        return self.records_pool and step in self._ckset

    def _require_plan(self) -> int:
        if self.steps_per_epoch is None:
            raise ParameterError("DynamicsRecorder: call plan(steps_per_epoch, total_steps) first")
        return self.steps_per_epoch

    # --------------------------------------------------------------- recording
    def record_batch(
        self, logits: torch.Tensor, pair_ids: Sequence[str], step: int, labels: torch.Tensor | None = None
    ) -> None:
        """``in_batch``: score the batch of training step ``step`` (1-based) from its logits (B, N)."""
        if not self.records_batch:
            return
        spe = self._require_plan()
        if logits.shape[0] != len(pair_ids):
            raise ParameterError(f"record_batch: {logits.shape[0]} logit rows for {len(pair_ids)} pair ids")
        p, rank, loss = score_logits(logits, labels)
        n = len(pair_ids)
        self._append(
            pair_ids, np.full(n, (step - 1) // spe), np.full(n, step / spe), np.full(n, step), p, rank, loss,
            mode="in_batch",
        )

    @torch.no_grad()
    def record_pool(self, encoder: Any, step: int) -> None:
        """``fixed_pool``: encode every training query and code (no grad) and score against the pool."""
        if not self.records_pool:
            return
        spe = self._require_plan()
        if self._ids is None or self.pool_indices is None or self._uniq_codes is None:
            raise ParameterError("DynamicsRecorder: call setup_pool(pair_ids, queries, codes) first")
        checkpoint = sum(1 for s in self.checkpoint_steps if s < step)  # index among the planned checkpoints
        kw = dict(batch_size=self.encode_batch_size, bf16=self.bf16, show_progress=self.show_progress)
        q = torch.from_numpy(np.asarray(encoder.encode(self._queries, "query", **kw), dtype=np.float32))
        cu = torch.from_numpy(
            np.asarray(encoder.encode(self._uniq_codes.tolist(), "code", **kw), dtype=np.float32)
        )
        p_all, r_all, l_all = self.score_pool(
            q, cu, self._code_index, self.pool_indices, self.temperature, self.chunk_rows
        )
        n = len(self._ids)
        self._append(
            self._ids, np.full(n, checkpoint), np.full(n, step / spe), np.full(n, step), p_all, r_all, l_all,
            mode="fixed_pool",
        )

    @staticmethod
    def score_pool(
        q: torch.Tensor,
        codes: torch.Tensor,
        gold_index: np.ndarray,
        pool_index: np.ndarray,
        temperature: float,
        chunk_rows: int = 4096,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Score queries ``q`` (n, d) against their gold ``codes[gold_index]`` plus the pool ``codes[pool_index]``.

        Pool codes equal to a pair's gold (same index) are excluded from that pair's candidates.
        """
        gold_index = np.asarray(gold_index)
        pool_index = np.asarray(pool_index)
        pool = codes[torch.from_numpy(pool_index)]
        out_p, out_r, out_l = [], [], []
        for s in range(0, q.shape[0], chunk_rows):
            qi = q[s : s + chunk_rows].float()
            gi = torch.from_numpy(gold_index[s : s + chunk_rows])
            gold = (qi * codes[gi].float()).sum(dim=1, keepdim=True) / temperature
            sims = qi @ pool.float().T / temperature
            logits = torch.cat([gold, sims], dim=1)
            excl = torch.zeros_like(logits, dtype=torch.bool)
            excl[:, 1:] = gi[:, None] == torch.from_numpy(pool_index)[None, :]
            p, r, loss = score_logits(logits, torch.zeros(len(qi), dtype=torch.long), excl)
            out_p.append(p)
            out_r.append(r)
            out_l.append(loss)
        return np.concatenate(out_p), np.concatenate(out_r), np.concatenate(out_l)

    def _append(self, pair_ids, checkpoint, epoch, step, p, rank, loss, mode: str) -> None:
        self._pending.append(
            {
                "pair_id": np.asarray([str(x) for x in pair_ids], dtype=object),
                "checkpoint": np.asarray(checkpoint, dtype=np.int64),
                "epoch": np.asarray(epoch, dtype=np.float64),
                "step": np.asarray(step, dtype=np.int64),
                "mode": np.full(len(p), mode, dtype=object),
                "p_gold": np.asarray(p, dtype=np.float64),
                "rank": np.asarray(rank, dtype=np.int64),
                "loss": np.asarray(loss, dtype=np.float64),
                "correct": np.asarray(rank, dtype=np.int64) == 1,
            }
        )
        if sum(len(c["p_gold"]) for c in self._pending) >= self.chunk_rows:
            self._consolidate()

    def _consolidate(self) -> None:
        if self._pending:
            cols = {k: np.concatenate([c[k] for c in self._pending]) for k in DYNAMICS_COLUMNS}
            self._chunks.append(pd.DataFrame(cols, columns=DYNAMICS_COLUMNS))
            self._pending = []

    # ------------------------------------------------------------------ output
    def __len__(self) -> int:
        return sum(len(c) for c in self._chunks) + sum(len(c["p_gold"]) for c in self._pending)

    def to_frame(self) -> pd.DataFrame:
        """The dynamics table (``DYNAMICS_COLUMNS``), in recording order."""
        self._consolidate()
        if not self._chunks:
            return empty_frame()
        df = pd.concat(self._chunks, ignore_index=True)
        self._chunks = [df]
        return df.astype(_DTYPES).copy()

    def flush(self, path: str | os.PathLike) -> Path:
        """Write all rows so far to ``path`` (parquet, atomic)."""
        return atomic_write_parquet(path, self.to_frame())

    def restore(self, rows: pd.DataFrame | str | os.PathLike, max_step: int | None = None) -> None:
        """Replace the in-memory rows by ``rows`` (a frame or a parquet path), keeping steps <= ``max_step``."""
        df = rows if isinstance(rows, pd.DataFrame) else pd.read_parquet(rows)
        missing = [c for c in DYNAMICS_COLUMNS if c not in df.columns]
        if missing:
            raise ParameterError(f"dynamics rows: missing columns {missing}")
        if max_step is not None:
            df = df[df["step"] <= max_step]
        self._pending = []
        self._chunks = [df[DYNAMICS_COLUMNS].astype(_DTYPES).reset_index(drop=True)] if len(df) else []


def empty_frame() -> pd.DataFrame:
    """An empty dynamics table with the right columns and dtypes."""
    return pd.DataFrame({c: pd.Series([], dtype=t) for c, t in _DTYPES.items()}, columns=DYNAMICS_COLUMNS)
