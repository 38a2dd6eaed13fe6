"""Bi-encoder fine-tuning with InfoNCE, training dynamics, atomic checkpoints and exact resume.

Step 1 of Select then MixUp (methods.md section 1; papers/000): fine-tune the encoder on all
training pairs with InfoNCE over in-batch negatives (van den Oord et al. 2018), AdamW
(Loshchilov & Hutter 2019) with linear warm-up then linear decay, gradient clipping, while the
:class:`~workbench.training.dynamics.DynamicsRecorder` writes the table dataset cartography needs
(Swayamdipta et al. 2020).

Determinism and resume. Epoch e visits the pairs in the order ``np.random.default_rng(seed + e)
.permutation(n)``, cut into batches of ``batch_size`` (the incomplete tail is dropped when
``drop_last``). Dropout draws from torch's global generator, seeded once at the start; a
checkpoint stores the weights, the optimizer and scheduler states, the Python / NumPy / torch
(and CUDA) generator states, the step, the dynamics rows and the loss history. Resuming restores
all of them and continues at the next batch of the same permutation, so on CPU (same thread
count) an interrupted-then-resumed run ends with bit-identical weights and dynamics to an
uninterrupted one. Work done after the last checkpoint is redone. On CUDA, non-deterministic
kernels can make runs differ slightly (see ``runtime.seed_everything``).

Checkpoint layout (``out_dir/checkpoint/``): ``model-<step>.safetensors``,
``optimizer-<step>.pt``, ``rng-<step>.pt``, ``dynamics-<step>.parquet``,
``history-<step>.parquet`` each written atomically, then ``state.json`` (the commit marker,
naming those files) atomically last; older files are removed afterwards. A crash at any point
leaves the previous complete checkpoint readable.

Outputs in ``out_dir``: ``model/`` (``encoder.save``, sentence-transformers layout),
``dynamics.parquet``, ``history.parquet`` (step, epoch, loss, lr, seconds), ``train_config.json``.

Extra negatives (CoRNStack section 2.3; ``workbench.curation``). ``train(..., negatives=hook)``
calls ``hook(rows, step, progress)`` each step with the batch's row numbers in ``pairs``, the
1-based step and ``progress = (step - 1) / max(total_steps - 1, 1)`` (0 at the first step, 1 at
the last); the code texts it returns are embedded (kind "code", with gradients) and appended as
negative columns shared by the whole batch: ``info_nce(q, c, negatives=...)``, CoRNStack's
InfoNCE over in-batch positives plus the union of the batch's sampled negatives. The hook must
be deterministic given (rows, step) (``NegativeSampler`` seeds by step) so a resumed run samples
what the uninterrupted one did, and its ``negatives_key`` (or ``hook.key``) is part of the
resume key. The ``in_batch`` dynamics still score each pair against the batch's codes only (the
square B x B part of the logits), so the data map means the same with and without negatives.

Order labels (OASIS, papers/001; ``workbench.oasis``). A hook with ``labelled = True`` returns a
:class:`LabelledNegatives`: the texts, which batch row each negative belongs to and its similarity
label, plus each row's positive label. The negatives still join InfoNCE as above, and with
``order_weight`` w2 > 0 the loss is ``w1 * InfoNCE + w2 * CoSENT`` (``contrastive_weight`` w1; the
paper: 0.98 and 0.02) where CoSENT (``losses.cosent``, temperature = ``temperature``) ranks the
cosines of every labelled (query, code) pair of the batch by their labels.

Several processes (``accelerate launch`` / ``torchrun``; ``docs/distributed.md``,
``workbench.training.distributed``). Under an initialised ``torch.distributed`` group (or a
launcher's ``WORLD_SIZE > 1``), each global batch of ``batch_size`` pairs (the same permutation as
one process) is cut into contiguous shards, one per process; the code (and extra negative)
embeddings are all-gathered with gradients, each process scores its queries against all of them
(gold column offset by its shard's start), gradients are averaged, so a step equals one process's
step on the global batch up to float rounding, except that each process draws its own dropout.
The ``in_batch`` dynamics are built from the gathered logits (one row per pair). Only rank 0
writes checkpoints, ``model/`` and the tables; the others wait at a barrier; every process reads
the checkpoint on resume (``out_dir`` must be shared), and each gets back its own RNG state.
MixUp, OASIS labelled negatives / ``order_weight`` and ``fixed_pool`` / ``both`` dynamics are
single-process only (:class:`ParameterError` under more than one process).
GradCache (``TrainConfig.grad_cache_chunk``; ``workbench.training.gradcache``) works in one or
several processes.

A batch may hold the same code twice (two queries for one function): each query's gold then also
appears as a "negative" column. This is rare and harmless (rank counts only strictly higher
logits) but lowers p_gold and adds a little noise to the loss; it is not masked.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import math
import os
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_model, save_model

from workbench.errors import ParameterError, WorkbenchError, reject_unknown_fields
from workbench.faultpoints import pause_point
from workbench.pairs import check_pairs
from workbench.progress import tqdm
from workbench.runtime import autocast_context, seed_everything, tf32_context
from workbench.store import atomic_path, atomic_write_json, atomic_write_parquet, cache_key, read_json
from workbench.training import distributed
from workbench.training.dynamics import MODES, DynamicsRecorder, empty_frame
from workbench.training.gradcache import grad_cache_backward
from workbench.training.losses import cosent, duplicate_mask, info_nce
from workbench.training.mixup import mix_plan, mixup_embed, mixup_loss

__all__ = ["TrainConfig", "TrainResult", "TrainingInterrupted", "LabelledNegatives", "train", "HISTORY_COLUMNS"]

HISTORY_COLUMNS = ["step", "epoch", "loss", "lr", "seconds"]
STATE_VERSION = 1
# Fields that do not change what training produces: left out of the resume key.
# tf32 / compile change speed, not what is learnt (beyond float rounding); grad_cache_chunk joins the key
# only when set (its chunked dropout draws differ from the one-pass step's).
_NOT_IN_KEY = ("save_every_steps", "tf32", "compile")
_MIXUP_FIELDS = ("mixup_alpha", "mixup_fraction", "mixup_layer", "mixup_weight")
_ORDER_FIELDS = ("contrastive_weight", "order_weight")


@dataclass(frozen=True)
class LabelledNegatives:
    """What a labelled negatives hook returns for one batch (OASIS order labels).

    ``texts[k]`` is a negative code of batch row ``rows[k]`` with similarity label ``labels[k]``;
    ``positive_labels[i]`` is the label of row i's own (query, code) pair (1.0 in OASIS).
    """

    texts: list[str]
    rows: np.ndarray
    labels: np.ndarray
    positive_labels: np.ndarray

    def __post_init__(self) -> None:
        if not (len(self.texts) == len(self.rows) == len(self.labels)):
            raise ParameterError(f"LabelledNegatives: {len(self.texts)} texts, {len(self.rows)} rows and "
                                 f"{len(self.labels)} labels must have the same length")


class TrainingInterrupted(WorkbenchError):
    """Raised by ``train(..., stop_after_steps=N)``: a simulated crash after step N (testing only)."""


@dataclass
class TrainConfig:
    """Training hyper-parameters (validated on creation and again by ``train``).

    ``max_steps`` stops training early (the schedule is planned for ``min(epochs * steps_per_epoch,
    max_steps)`` steps). ``save_every_steps=None`` saves a checkpoint at each dynamics checkpoint
    (the end of each epoch for ``in_batch`` / ``none``) and at the end. ``drop_last=False`` trains
    the incomplete last batch of each epoch too; it has fewer in-batch negatives (one pair alone
    scores p_gold = 1), so ``in_batch`` dynamics of those pairs are easier than the others'.
    ``warmup_ratio``: warm-up steps = ``ceil(warmup_ratio * total_steps)``; the learning rate of
    the first step is then 0, as in ``transformers.get_linear_schedule_with_warmup``.

    Speed settings (``docs/distributed.md``): ``bf16`` autocast (CPU or CUDA); ``tf32`` lets CUDA
    float32 matmuls / convolutions use TF32 tensor cores while training (no-op on CPU; the previous
    setting is restored afterwards); ``compile`` runs the encoder's transformer through
    ``torch.compile`` (``nn.Module.compile``, so weights and checkpoints keep their names; undone
    after training). ``tf32`` and ``compile`` change speed and float rounding only, so they are not
    part of the resume key. ``grad_cache_chunk``: GradCache (``workbench.training.gradcache``),
    embed the batch in chunks of this many texts so its size (the number of in-batch negatives) is
    not limited by activation memory; same loss and gradients as the plain step up to rounding, but
    dropout is drawn per chunk, so it is in the resume key. Not combinable with MixUp or OASIS order labels.
    ``micro_batch``: embed each side of a batch (its queries, its codes, its extra negatives) in
    forward passes of at most this many texts, sorted by token length, so each pass pads only to its
    own longest text (on 2 CPU cores, MiniLM, batch 32, 128 tokens: measured by
    ``benchmarks/train_throughput.py``). The batch, its negatives and the loss are unchanged up to
    float rounding; dropout masks differ (drawn per pass), so it is in the resume key when set.
    Single-process steps without MixUp only (ignored under GradCache, which chunks already).
    """

    epochs: int = 1
    batch_size: int = 32
    lr: float = 2e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float | None = 1.0
    temperature: float = 0.05
    seed: int = 42
    dynamics_mode: str = "in_batch"
    checkpoints_per_epoch: int = 1
    fixed_pool_size: int = 256
    save_every_steps: int | None = None
    bf16: bool = False
    drop_last: bool = True
    max_steps: int | None = None
    max_query_len: int | None = None  # token limits while training (None = the encoder's own)
    max_code_len: int | None = None
    # representation-level MixUp (Select then MixUp step 4; workbench.training.mixup); None = off
    mixup_alpha: float | None = None
    mixup_fraction: float = 1.0
    mixup_layer: int | None = None  # None = pooled representations; k = token states entering block k
    mixup_weight: float = 1.0
    # OASIS: loss = contrastive_weight * InfoNCE + order_weight * CoSENT (needs a labelled negatives hook)
    contrastive_weight: float = 1.0
    order_weight: float = 0.0
    # speed / memory (docs/distributed.md)
    tf32: bool = False
    compile: bool = False
    grad_cache_chunk: int | None = None
    micro_batch: int | None = None  # length-sorted forward passes of at most this many texts (None = one)
    # false negatives: mask batch columns whose code equals the gold or whose query equals the query (losses.duplicate_mask)
    mask_duplicates: bool = False

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> TrainConfig:
        """Raise :class:`ParameterError` naming the first bad field."""

        def bad(name: str, expected: str) -> ParameterError:
            return ParameterError(f"TrainConfig.{name}: expected {expected}, got {getattr(self, name)!r}")

        def is_int(v: Any) -> bool:
            return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

        def is_num(v: Any) -> bool:
            return (
                isinstance(v, (int, float, np.integer, np.floating))
                and not isinstance(v, bool)
                and math.isfinite(v)
            )

        for name, minimum in (
            ("epochs", 1),
            ("batch_size", 2),
            ("checkpoints_per_epoch", 1),
            ("fixed_pool_size", 1),
        ):
            v = getattr(self, name)
            if not is_int(v) or v < minimum:
                raise bad(name, f"an integer >= {minimum}")
        for name in ("max_query_len", "max_code_len"):
            v = getattr(self, name)
            if v is not None and (not is_int(v) or v < 2):
                raise bad(name, "None or an integer >= 2")
        for name in ("save_every_steps", "max_steps"):
            v = getattr(self, name)
            if v is not None and (not is_int(v) or v < 1):
                raise bad(name, "None or an integer >= 1")
        if not is_int(self.seed):
            raise bad("seed", "an integer")
        if not is_num(self.lr) or self.lr <= 0:
            raise bad("lr", "a number > 0")
        if not is_num(self.weight_decay) or self.weight_decay < 0:
            raise bad("weight_decay", "a number >= 0")
        if not is_num(self.warmup_ratio) or not 0 <= self.warmup_ratio < 1:
            raise bad("warmup_ratio", "a number in [0, 1)")
        if self.max_grad_norm is not None and (not is_num(self.max_grad_norm) or self.max_grad_norm <= 0):
            raise bad("max_grad_norm", "None or a number > 0")
        if not is_num(self.temperature) or self.temperature <= 0:
            raise bad("temperature", "a number > 0")
        if self.mixup_alpha is not None and (not is_num(self.mixup_alpha) or self.mixup_alpha <= 0):
            raise bad("mixup_alpha", "None (no MixUp) or a number > 0")
        if not is_num(self.mixup_fraction) or not 0 <= self.mixup_fraction <= 1:
            raise bad("mixup_fraction", "a number in [0, 1]")
        if self.mixup_layer is not None and (not is_int(self.mixup_layer) or self.mixup_layer < 1):
            raise bad("mixup_layer", "None (pooled representations) or an integer >= 1 (a transformer block)")
        if not is_num(self.mixup_weight) or self.mixup_weight < 0:
            raise bad("mixup_weight", "a number >= 0")
        for name in _ORDER_FIELDS:
            if not is_num(getattr(self, name)) or getattr(self, name) < 0:
                raise bad(name, "a number >= 0")
        if self.contrastive_weight == 0 and self.order_weight == 0:
            raise bad("contrastive_weight", "a number > 0 when order_weight is 0 (the loss would be 0)")
        if self.dynamics_mode not in MODES:
            raise bad("dynamics_mode", f"one of {MODES}")
        if not isinstance(self.mask_duplicates, bool):
            raise bad("mask_duplicates", "True or False")
        if self.grad_cache_chunk is not None and (not is_int(self.grad_cache_chunk) or self.grad_cache_chunk < 1):
            raise bad("grad_cache_chunk", "None (no gradient caching) or an integer >= 1")
        if self.grad_cache_chunk is not None and self.mixup_alpha is not None:
            raise bad("grad_cache_chunk", "None when mixup_alpha is set (GradCache does not support MixUp)")
        if self.grad_cache_chunk is not None and self.order_weight > 0:
            raise bad("grad_cache_chunk", "None when order_weight > 0 (GradCache does not support OASIS CoSENT)")
        if self.micro_batch is not None and (not is_int(self.micro_batch) or self.micro_batch < 1):
            raise bad("micro_batch", "None (one forward pass per side) or an integer >= 1")
        for name in ("bf16", "drop_last", "tf32", "compile"):
            if not isinstance(getattr(self, name), bool):
                raise bad(name, "True or False")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Build from a mapping; unknown keys raise :class:`ParameterError`."""
        reject_unknown_fields(cls, d, "TrainConfig")
        return cls(**d)


@dataclass
class TrainResult:
    """What ``train`` returns. ``seconds`` is the training wall time summed over resumed sessions."""

    model_dir: Path
    dynamics: pd.DataFrame
    history: pd.DataFrame
    seconds: float
    out_dir: Path | None = None
    config: TrainConfig | None = None
    steps: int = 0
    resumed_from_step: int = 0
    meta: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------- helpers
def _fingerprint_pairs(df: pd.DataFrame) -> str:
    h = hashlib.sha256()
    for i, q, c in zip(df["id"], df["query"], df["code"]):
        for part in (i, q, c):
            b = part.encode("utf-8")
            h.update(len(b).to_bytes(8, "little"))
            h.update(b)
    return h.hexdigest()


def _describe_encoder(encoder: Any) -> dict[str, Any]:
    model = getattr(encoder, "model", None)
    cfg = getattr(model, "config", None)
    return {
        "class": type(encoder).__name__,
        "name": str(getattr(encoder, "name", "") or getattr(cfg, "_name_or_path", "") or ""),
        "model_type": getattr(cfg, "model_type", None),
        "pooling": getattr(encoder, "pooling", None),
        "normalize": getattr(encoder, "normalize", None),
        "max_query_len": getattr(encoder, "max_query_len", None),
        "max_code_len": getattr(encoder, "max_code_len", None),
        "n_params": int(sum(p.numel() for p in encoder.parameters())),
    }


def _param_groups(encoder: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """No weight decay on biases and normalisation weights (the BERT / sentence-transformers convention)."""
    decay, no_decay = [], []
    for name, p in encoder.named_parameters():
        if not p.requires_grad:
            continue
        low = name.lower()
        (no_decay if low.endswith("bias") or "norm" in low else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _linear_schedule(
    optimizer: torch.optim.Optimizer, warmup: int, total: int
) -> torch.optim.lr_scheduler.LambdaLR:
    from transformers import get_linear_schedule_with_warmup

    return get_linear_schedule_with_warmup(optimizer, num_warmup_steps=warmup, num_training_steps=total)


def _rng_state() -> dict[str, Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": (
            name,
            torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            int(pos),
            int(has_gauss),
            float(cached),
        ),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    v, internal, gauss = state["python"]
    random.setstate((v, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _rank_seed(seed: int, rank: int) -> int:
    """Process ``rank``'s seed for dropout (rank 0: ``seed`` itself, so one process is unchanged)."""
    return int(seed) + 1_000_003 * rank


def _restore_rng(saved: dict[str, Any], seed: int, step: int) -> None:
    """Put back this process's generator states from a checkpoint's ``rng`` file.

    A multi-process checkpoint holds ``{"ranks": [state of rank 0, ...]}``. Resumed with the same
    number of processes, each takes its own (exact resume); with another number, every process takes
    rank 0's and ranks > 0 then reseed torch from (seed, rank, step): training goes on correctly but
    does not repeat the dropout draws an uninterrupted run would have made.
    """
    world, rank = distributed.world_size(), distributed.rank()
    states = saved["ranks"] if "ranks" in saved else [saved]
    _set_rng_state(states[rank] if len(states) == world else states[0])
    if len(states) != world and rank > 0:
        torch.manual_seed(_rank_seed(seed, rank) + step)


def _check_distributed(config: TrainConfig, negatives: Any, encoder: Any) -> None:
    """Refuse, with the reason, what multi-process training does not shard."""
    single = []
    if config.mixup_alpha is not None:
        single.append("MixUp (mixup_alpha)")
    if config.order_weight > 0 or getattr(negatives, "labelled", False):
        single.append("OASIS labelled negatives / order_weight")
    if config.dynamics_mode in ("fixed_pool", "both"):
        single.append(f"dynamics_mode={config.dynamics_mode!r} (use 'in_batch' or 'none')")
    if config.mask_duplicates:
        single.append("mask_duplicates")
    if single:
        raise ParameterError(
            f"train: {', '.join(single)} is single-process only, but this process is rank "
            f"{distributed.rank()} of {distributed.world_size()}; run it in one process"
        )
    device = encoder.device
    import socket

    places = distributed.all_gather_objects((socket.gethostname(), str(device)))
    if device.type == "cuda" and len(set(places)) < len(places):
        raise ParameterError(
            f"train: several processes train on the same GPU {places}; load the encoder with "
            "device=workbench.training.distributed.local_device() (cuda:LOCAL_RANK)"
        )


def _embed_sorted(encoder: Any, texts: list[str], kind: str, micro_batch: int | None) -> torch.Tensor:
    """``encoder.embed(texts, kind)`` in length-sorted passes of at most ``micro_batch`` texts, rows in
    input order (gradients flow through every pass); one pass when ``micro_batch`` is None or larger."""
    if micro_batch is None or len(texts) <= micro_batch:
        return encoder.embed(texts, kind)
    order = np.argsort(-encoder.token_lengths(texts, kind), kind="stable")
    parts = [encoder.embed([texts[i] for i in order[s : s + micro_batch]], kind)
             for s in range(0, len(texts), micro_batch)]
    inverse = torch.empty(len(texts), dtype=torch.long)
    inverse[torch.from_numpy(order)] = torch.arange(len(texts))
    return torch.cat(parts)[inverse.to(parts[0].device)]


def _uncompile(model: torch.nn.Module) -> None:
    """Undo ``nn.Module.compile()`` (calls go to the eager forward again)."""
    model._compiled_call_impl = None  # the attribute nn.Module.compile sets (torch >= 2.2)


def _pad_shard(texts: Sequence[str], sizes: list[int], rank: int) -> list[str]:
    """This process's contiguous shard of ``texts``, padded with empty texts to the largest shard."""
    start = sum(sizes[:rank])
    return list(texts[start : start + sizes[rank]]) + [""] * (max(sizes) - sizes[rank])


def _valid_rows(sizes: list[int]) -> torch.Tensor:
    """Rows of the gathered (world * max(sizes), d) tensor that are real (not padding), in global order."""
    m = max(sizes)
    return torch.tensor([r * m + j for r, s in enumerate(sizes) for j in range(s)], dtype=torch.long)


def _parallel_step(
    encoder: Any,
    queries: list[str],
    codes: list[str],
    neg_texts: list[str],
    config: TrainConfig,
    device: torch.device,
    want_square: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Forward + backward of one global batch on this process's shard; returns (global loss, B x B logits).

    Each process embeds its contiguous shard of the batch (and of the extra negatives), the codes and
    negatives of all processes are gathered with gradients, and the local queries are scored against
    all of them (gold column = the query's position in the global batch). The local loss is
    ``world / B * sum of its per-query losses``, so after ``average_gradients`` every process holds the
    gradient of the global batch's mean loss. With ``grad_cache_chunk`` the embeddings go through
    GradCache. Single-process (world 1) it is the plain loss of ``info_nce`` on the whole batch.
    """
    world, rank = distributed.world_size(), distributed.rank()
    b = len(queries)
    sizes = distributed.shard_sizes(b, world)
    mine, start = sizes[rank], sum(sizes[:rank])
    inputs: list[tuple[list[str], str]] = [
        (_pad_shard(queries, sizes, rank), "query"),
        (_pad_shard(codes, sizes, rank), "code"),
    ]
    n_sizes = distributed.shard_sizes(len(neg_texts), world) if neg_texts else None
    if n_sizes is not None:
        inputs.append((_pad_shard(neg_texts, n_sizes, rank), "code"))
    valid = _valid_rows(sizes).to(device)
    n_valid = _valid_rows(n_sizes).to(device) if n_sizes is not None else None

    def loss_fn(q: torch.Tensor, c: torch.Tensor, neg: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if world == 1:
            ignore = duplicate_mask(queries, codes, neg_texts).to(q.device) if config.mask_duplicates else None
            loss, logits = info_nce(q, c, temperature=config.temperature, negatives=neg, ignore=ignore)
        else:
            c_all = distributed.gather_with_grad(c)[valid]
            n_all = distributed.gather_with_grad(neg)[n_valid] if neg is not None else None
            labels = torch.arange(start, start + mine, device=q.device)
            per_row, logits = info_nce(
                q[:mine], c_all, temperature=config.temperature, labels=labels, negatives=n_all, reduction="none"
            )
            loss = per_row.sum() * (world / b)
        if config.contrastive_weight != 1.0:
            loss = config.contrastive_weight * loss
        return loss, logits

    if config.grad_cache_chunk is not None:
        loss, logits = grad_cache_backward(
            encoder, inputs, config.grad_cache_chunk, loss_fn, autocast=lambda: autocast_context(device, config.bf16)
        )
    else:
        with autocast_context(device, config.bf16):
            embs = [encoder.embed(texts, kind) for texts, kind in inputs]
        loss, logits = loss_fn(*embs)
        loss.backward()
        loss = loss.detach()
    square = None
    if want_square:
        square = logits.detach()[:, :b]
        if world > 1:
            padded = torch.zeros(max(sizes), b, dtype=square.dtype, device=square.device)
            padded[:mine] = square
            square = distributed.gather_rows(padded)[valid]
    if world > 1:
        loss = distributed.all_reduce_sum(loss) / world
    return loss, square


def _history_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    if not rows:
        return pd.DataFrame(
            {
                "step": pd.Series([], dtype="int64"),
                "epoch": pd.Series([], dtype="float64"),
                "loss": pd.Series([], dtype="float64"),
                "lr": pd.Series([], dtype="float64"),
                "seconds": pd.Series([], dtype="float64"),
            }
        )
    return pd.DataFrame(rows, columns=HISTORY_COLUMNS)


def _key_mismatch_message(ckpt: Path, saved: dict[str, Any], now: dict[str, Any]) -> str:
    diffs = []
    for k in sorted(set(saved.get("config", {})) | set(now["config"])):
        a, b = saved.get("config", {}).get(k), now["config"].get(k)
        if a != b:
            diffs.append(f"config.{k}: checkpoint {a!r} vs now {b!r}")
    if saved.get("negatives") != now.get("negatives"):
        diffs.append(f"negatives: checkpoint {saved.get('negatives')!r} vs now {now.get('negatives')!r}")
    if saved.get("data") != now["data"]:
        diffs.append(
            f"training pairs differ ({saved.get('n_pairs')} pairs in the checkpoint, {now['n_pairs']} now)"
        )
    for k in sorted(set(saved.get("encoder", {})) | set(now["encoder"])):
        a, b = saved.get("encoder", {}).get(k), now["encoder"].get(k)
        if a != b:
            diffs.append(f"encoder.{k}: checkpoint {a!r} vs now {b!r}")
    return (
        f"{ckpt}: the checkpoint was made with different settings, so it cannot be resumed: "
        + ("; ".join(diffs) or "resume key differs")
        + ". Pass resume=False to start over (the checkpoint is deleted) or use another out_dir."
    )


class _Checkpointer:
    """Writes and reads ``out_dir/checkpoint``; ``state.json`` is written last as the commit marker."""

    def __init__(self, out_dir: Path):
        self.dir = out_dir / "checkpoint"
        self.state_path = self.dir / "state.json"

    def exists(self) -> bool:
        return self.state_path.exists()

    def state(self) -> dict[str, Any]:
        try:
            return read_json(self.state_path)
        except (OSError, ValueError) as e:
            raise WorkbenchError(
                f"{self.state_path}: unreadable checkpoint state ({e}); pass resume=False to start over"
            ) from e

    def file(self, state: dict[str, Any], what: str) -> Path:
        p = self.dir / state["files"][what]
        if not p.exists():
            raise WorkbenchError(
                f"{p}: missing checkpoint file named by {self.state_path}; pass resume=False to start over"
            )
        return p

    def clear(self) -> None:
        if self.dir.exists():
            shutil.rmtree(self.dir)

    def save(
        self,
        *,
        step: int,
        encoder: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: Any,
        recorder: DynamicsRecorder,
        history: list[dict[str, Any]],
        meta: dict[str, Any],
        completed: bool,
        rng: Any = None,
    ) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tag = f"{step:09d}"
        files = {
            "model": f"model-{tag}.safetensors",
            "optimizer": f"optimizer-{tag}.pt",
            "rng": f"rng-{tag}.pt",
            "dynamics": f"dynamics-{tag}.parquet",
            "history": f"history-{tag}.parquet",
        }
        with atomic_path(self.dir / files["model"]) as tmp:
            save_model(encoder, str(tmp))
        if completed:  # the optimizer is not needed any more; saves 2x the model size on disk
            del files["optimizer"]
        else:
            with atomic_path(self.dir / files["optimizer"]) as tmp:
                torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, tmp)
        with atomic_path(self.dir / files["rng"]) as tmp:
            torch.save(_rng_state() if rng is None else rng, tmp)
        recorder.flush(self.dir / files["dynamics"])
        atomic_write_parquet(self.dir / files["history"], _history_frame(history))
        atomic_write_json(
            self.state_path,
            {**meta, "step": step, "completed": completed, "files": files, "version": STATE_VERSION},
        )
        keep = set(files.values()) | {"state.json"}
        for p in self.dir.iterdir():
            if p.name not in keep and p.is_file():
                p.unlink(missing_ok=True)
        pause_point("train.checkpoint")


def _uses_order(config: TrainConfig) -> bool:
    return config.order_weight != 0.0 or config.contrastive_weight != 1.0


def _order_loss(q: torch.Tensor, c: torch.Tensor, neg: torch.Tensor | None, order: LabelledNegatives,
                config: TrainConfig) -> torch.Tensor:
    """CoSENT over the batch's labelled pairs: each (q_i, c_i) and each (q_rows[k], negative k)."""
    import torch.nn.functional as F

    with torch.autocast(device_type=q.device.type, enabled=False):
        qn, cn = F.normalize(q.float(), dim=-1), F.normalize(c.float(), dim=-1)
        cos = [(qn * cn).sum(-1)]
        labels = [torch.as_tensor(np.asarray(order.positive_labels, dtype=np.float32), device=q.device)]
        if neg is not None and len(order.texts):
            rows = torch.as_tensor(np.asarray(order.rows, dtype=np.int64), device=q.device)
            cos.append((qn[rows] * F.normalize(neg.float(), dim=-1)).sum(-1))
            labels.append(torch.as_tensor(np.asarray(order.labels, dtype=np.float32), device=q.device))
        return cosent(torch.cat(cos), torch.cat(labels), temperature=config.temperature)


def _save_model_dir(encoder: Any, path: Path) -> Path:
    """``encoder.save`` into a temporary folder, then swap it into place."""
    tmp = path.parent / f".{path.name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    encoder.save(tmp)
    old = path.parent / f".{path.name}.old"
    if old.exists():
        shutil.rmtree(old)
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    if old.exists():
        shutil.rmtree(old)
    return path


# ------------------------------------------------------------------------------------ train
def train(
    encoder: Any,
    pairs: pd.DataFrame,
    config: TrainConfig | dict[str, Any] | None = None,
    out_dir: str | os.PathLike = "train_out",
    resume: bool = True,
    show_progress: bool = True,
    *,
    stop_after_steps: int | None = None,
    negatives: Callable[[np.ndarray, int, float], Sequence[str]] | None = None,
    negatives_key: str | None = None,
    pool_codes: Sequence[str] | None = None,
) -> TrainResult:
    """Fine-tune ``encoder`` (a ``BiEncoder``) on ``pairs`` (columns id, query, code) with InfoNCE.

    Records the training dynamics (``config.dynamics_mode``), checkpoints into
    ``out_dir/checkpoint`` and resumes from it when ``resume`` and the checkpoint was made with
    the same config, pairs and encoder settings (otherwise :class:`ParameterError`; ``resume=False``
    deletes the old checkpoint and starts over). A finished run found in ``out_dir`` is not
    retrained: its final weights are loaded into ``encoder`` and its tables returned.
    The encoder is left in eval mode. ``stop_after_steps`` (testing only) raises
    :class:`TrainingInterrupted` right after that global step, without saving, like a crash.
    ``negatives``: optional ``hook(rows, step, progress) -> code texts`` giving extra negatives
    per step (see the module docstring; e.g. ``NegativeSampler(...).trainer_hook(codes)``);
    ``negatives_key`` (default ``hook.key``) identifies it in the resume key and is required
    with a hook that has no ``key``. ``pool_codes``: extra code texts the ``fixed_pool`` dynamics
    score every pair against, besides the ``fixed_pool_size`` drawn training codes (hard negatives,
    e.g. ``experiment.pool_codes``); part of the resume key when the run records the pool.

    Under several processes (see the module docstring) every process calls ``train`` with the same
    arguments and its own encoder copy on its own device; MixUp, OASIS labelled negatives /
    ``order_weight`` and ``fixed_pool`` / ``both`` dynamics then raise :class:`ParameterError`
    (single-process only). All processes return the same result; only rank 0 writes files.
    """
    if isinstance(config, dict):
        config = TrainConfig.from_dict(config)
    config = (config or TrainConfig()).validate()
    df = check_pairs(pairs)[["id", "query", "code"]]
    df["id"] = df["id"].astype(str)
    distributed.init_from_env()
    world, rank = distributed.world_size(), distributed.rank()
    if world > 1:
        _check_distributed(config, negatives, encoder)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    n = len(df)
    bs = config.batch_size
    steps_per_epoch = n // bs if config.drop_last else math.ceil(n / bs)
    if steps_per_epoch == 0:
        raise ParameterError(
            f"TrainConfig.batch_size: {bs} is larger than the {n} training pairs with drop_last=True; "
            "use a smaller batch_size or drop_last=False"
        )
    total_steps = config.epochs * steps_per_epoch
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    warmup_steps = math.ceil(config.warmup_ratio * total_steps)

    key_parts = {
        "config": {
            k: v
            for k, v in config.to_dict().items()
            if k not in _NOT_IN_KEY and (config.mixup_alpha is not None or k not in _MIXUP_FIELDS)
            and (_uses_order(config) or k not in _ORDER_FIELDS)  # keys of runs before these fields unchanged
            and (config.grad_cache_chunk is not None or k != "grad_cache_chunk")
            and (config.micro_batch is not None or k != "micro_batch")
            and (config.mask_duplicates or k != "mask_duplicates")
        },
        "data": _fingerprint_pairs(df),
        "n_pairs": n,
        "encoder": _describe_encoder(encoder),
    }
    if negatives is not None:  # only then, so the keys of runs without negatives are unchanged
        if not callable(negatives):
            raise ParameterError(f"negatives: expected a callable (rows, step, progress) -> texts, got {negatives!r}")
        negatives_key = negatives_key if negatives_key is not None else getattr(negatives, "key", None)
        if not isinstance(negatives_key, str) or not negatives_key:
            raise ParameterError(
                "negatives_key: a non-empty string identifying the negatives hook is required (it is part "
                "of the resume key); pass negatives_key=... or give the hook a `key` attribute"
            )
        key_parts["negatives"] = negatives_key
    extra_pool = [str(c) for c in pool_codes] if pool_codes is not None else []
    if extra_pool and config.dynamics_mode in ("fixed_pool", "both"):  # only then: other keys unchanged
        key_parts["pool_codes"] = cache_key({"codes": sorted(set(extra_pool))})
    if config.order_weight > 0 and not getattr(negatives, "labelled", False):
        raise ParameterError(
            "TrainConfig.order_weight > 0 needs order labels: pass negatives=<a hook with labelled = True "
            "returning LabelledNegatives>, e.g. workbench.oasis.objective.OrderLabelHook"
        )
    key = cache_key(key_parts)
    meta = {
        "key": key,
        **key_parts,
        "steps_per_epoch": steps_per_epoch,
        "total_steps": total_steps,
        "warmup_steps": warmup_steps,
    }

    ck = _Checkpointer(out_dir)
    if ck.exists() and not resume and rank == 0:
        ck.clear()
    distributed.barrier()  # every process reads the checkpoint rank 0 kept (out_dir must be shared)
    state = ck.state() if ck.exists() else None
    if state is not None and state.get("key") != key:
        raise ParameterError(_key_mismatch_message(ck.dir, state, key_parts))

    device = encoder.device
    recorder = DynamicsRecorder(
        config.dynamics_mode,
        temperature=config.temperature,
        checkpoints_per_epoch=config.checkpoints_per_epoch,
        pool_size=config.fixed_pool_size,
        seed=config.seed,
        bf16=config.bf16,
        show_progress=show_progress and rank == 0,
    )
    recorder.plan(steps_per_epoch, total_steps)
    if recorder.records_pool:
        recorder.setup_pool(df["id"].tolist(), df["query"].tolist(), df["code"].tolist(), extra_pool)
    if config.save_every_steps is not None:
        save_steps = set(range(config.save_every_steps, total_steps + 1, config.save_every_steps))
    else:
        save_steps = set(recorder.checkpoint_steps)
    save_steps.add(total_steps)

    optimizer = torch.optim.AdamW(_param_groups(encoder, config.weight_decay), lr=config.lr)
    scheduler = _linear_schedule(optimizer, warmup_steps, total_steps)
    history: list[dict[str, Any]] = []
    start_step, prior_seconds = 0, 0.0

    if state is not None:
        load_model(encoder, str(ck.file(state, "model")), device=str(device))
        start_step = int(state["step"])
        prior_seconds = float(state.get("seconds", 0.0))
        hist = pd.read_parquet(ck.file(state, "history"))
        history = hist.to_dict("records")
        recorder.restore(ck.file(state, "dynamics"), max_step=start_step)
        if not state.get("completed"):
            opt = torch.load(ck.file(state, "optimizer"), map_location=device, weights_only=True)
            optimizer.load_state_dict(opt["optimizer"])
            scheduler.load_state_dict(opt["scheduler"])
            _restore_rng(torch.load(ck.file(state, "rng"), weights_only=True), config.seed, start_step)
    else:
        seed_everything(_rank_seed(config.seed, rank))
    distributed.broadcast_parameters(encoder)  # every process starts from rank 0's weights

    ids = df["id"].to_numpy()
    queries = df["query"].to_numpy()
    codes = df["code"].to_numpy()
    perm_cache: dict[int, np.ndarray] = {}

    def batch_indices(step: int) -> np.ndarray:
        e, pos = divmod(step - 1, steps_per_epoch)
        if e not in perm_cache:
            perm_cache.clear()
            perm_cache[e] = np.random.default_rng(config.seed + e).permutation(n)
        return perm_cache[e][pos * bs : (pos + 1) * bs]

    session_start = time.perf_counter()

    def elapsed() -> float:
        return prior_seconds + time.perf_counter() - session_start

    def save(step: int, completed: bool) -> None:
        # each process's dropout generator, so a resumed multi-process run draws what it would have
        rng = {"ranks": distributed.all_gather_objects(_rng_state())} if world > 1 else None
        if rank == 0:
            ck.save(
                step=step,
                encoder=encoder,
                optimizer=optimizer,
                scheduler=scheduler,
                recorder=recorder,
                history=history,
                meta={**meta, "seconds": elapsed(), **({"world_size": world} if world > 1 else {})},
                completed=completed,
                rng=rng,
            )
        distributed.barrier()

    resumed_from = start_step
    saved_lengths = (encoder.max_query_len, encoder.max_code_len)
    if start_step < total_steps:
        encoder.max_query_len = config.max_query_len or saved_lengths[0]
        encoder.max_code_len = config.max_code_len or saved_lengths[1]
        encoder.train()
        bar = tqdm(
            total=total_steps, initial=start_step, desc="train", unit="step", disable=not show_progress or rank > 0
        )
        speed = contextlib.ExitStack()
        speed.enter_context(tf32_context(device, config.tf32))
        if config.compile:
            encoder.model.compile()
            speed.callback(_uncompile, encoder.model)
        try:
            for step in range(start_step + 1, total_steps + 1):
                idx = batch_indices(step)
                lr = optimizer.param_groups[0]["lr"]
                neg_texts: list[str] = []
                order: LabelledNegatives | None = None
                if negatives is not None:
                    progress = (step - 1) / max(total_steps - 1, 1)
                    got = negatives(idx, step, progress)
                    if isinstance(got, LabelledNegatives):
                        order, neg_texts = got, [str(t) for t in got.texts]
                    else:
                        neg_texts = [str(t) for t in got]
                plan = None
                if config.mixup_alpha is not None:
                    plan = mix_plan(
                        len(idx), config.mixup_alpha, config.mixup_fraction, np.random.default_rng([config.seed, step])
                    )
                if world > 1 or config.grad_cache_chunk is not None:
                    loss, square = _parallel_step(
                        encoder, queries[idx].tolist(), codes[idx].tolist(), neg_texts, config, device,
                        want_square=recorder.records_batch,
                    )
                    distributed.average_gradients(encoder.parameters())
                else:
                    with autocast_context(device, config.bf16):
                        if plan is None:
                            q = _embed_sorted(encoder, queries[idx].tolist(), "query", config.micro_batch)
                            c = _embed_sorted(encoder, codes[idx].tolist(), "code", config.micro_batch)
                        else:
                            q, q_mix = mixup_embed(encoder, queries[idx].tolist(), "query", plan, config.mixup_layer)
                            c, c_mix = mixup_embed(encoder, codes[idx].tolist(), "code", plan, config.mixup_layer)
                        neg = _embed_sorted(encoder, neg_texts, "code", config.micro_batch) if neg_texts else None
                    ignore = None
                    if config.mask_duplicates:
                        ignore = duplicate_mask(queries[idx].tolist(), codes[idx].tolist(), neg_texts).to(q.device)
                    loss, logits = info_nce(q, c, temperature=config.temperature, negatives=neg, ignore=ignore)
                    if plan is not None:
                        loss = loss + config.mixup_weight * mixup_loss(q, c, q_mix, c_mix, plan, config.temperature)
                    if config.order_weight > 0 and order is not None:
                        loss = config.contrastive_weight * loss + config.order_weight * _order_loss(q, c, neg, order, config)
                    elif config.contrastive_weight != 1.0:
                        loss = config.contrastive_weight * loss
                    loss.backward()
                    loss, square = loss.detach(), logits[:, : len(idx)]  # the in-batch square only
                if config.max_grad_norm is not None:
                    torch.nn.utils.clip_grad_norm_(encoder.parameters(), config.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                if square is not None:
                    recorder.record_batch(square, ids[idx], step)
                loss_value = float(loss)
                history.append(
                    {"step": step, "epoch": step / steps_per_epoch, "loss": loss_value, "lr": float(lr), "seconds": elapsed()}
                )
                if recorder.is_pool_checkpoint(step):  # single-process only (_check_distributed)
                    recorder.record_pool(encoder, step)
                if step in save_steps:
                    save(step, completed=step == total_steps)
                bar.update(1)
                bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{lr:.2e}", refresh=False)
                if stop_after_steps is not None and step >= stop_after_steps and step < total_steps:
                    raise TrainingInterrupted(f"simulated interruption after step {step} (stop_after_steps)")
        finally:
            speed.close()
            bar.close()
            encoder.max_query_len, encoder.max_code_len = saved_lengths
    encoder.eval()

    seconds = float(history[-1]["seconds"]) if history else prior_seconds
    dynamics = recorder.to_frame() if recorder.enabled else empty_frame()
    hist_df = _history_frame(history)
    model_dir = out_dir / "model"
    if rank == 0:
        _save_model_dir(encoder, model_dir)
        atomic_write_parquet(out_dir / "dynamics.parquet", dynamics)
        atomic_write_parquet(out_dir / "history.parquet", hist_df)
        atomic_write_json(
            out_dir / "train_config.json",
            {
                **meta,
                "seconds": seconds,
                "completed": True,
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "device": str(device),
                **({"world_size": world} if world > 1 else {}),
            },
        )
    distributed.barrier()
    return TrainResult(
        model_dir=model_dir,
        dynamics=dynamics,
        history=hist_df,
        seconds=seconds,
        out_dir=out_dir,
        config=config,
        steps=total_steps,
        resumed_from_step=resumed_from,
        meta=meta,
    )
