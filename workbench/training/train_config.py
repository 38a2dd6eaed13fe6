"""The settings and results of one fine-tuning run: :class:`TrainConfig` (validated hyper-parameters,
the resume key's fields), :class:`TrainResult`, and :class:`LabelledNegatives` (what an OASIS order
labels hook returns per batch). :func:`workbench.training.trainer.train` consumes them."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workbench.errors import ParameterError, WorkbenchError, reject_unknown_fields
from workbench.training.dynamics import MODES

__all__ = ["TrainConfig", "TrainResult", "TrainingInterrupted", "LabelledNegatives", "NOT_IN_KEY", "MIXUP_FIELDS",
           "ORDER_FIELDS"]

# Fields that do not change what training produces: left out of the resume key.
# tf32 / compile change speed, not what is learnt (beyond float rounding); grad_cache_chunk joins the key
# only when it can chunk a step (its chunked dropout draws differ from the one-pass step's).
NOT_IN_KEY = ("save_every_steps", "tf32", "compile")
MIXUP_FIELDS = ("mixup_alpha", "mixup_fraction", "mixup_layer", "mixup_weight")
ORDER_FIELDS = ("contrastive_weight", "order_weight")


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
    part of the resume key. ``grad_cache_chunk``: at most this many texts hold activations at once.
    A step that embeds more than that on one side (its queries, codes or extra negatives) goes
    through GradCache (``workbench.training.gradcache``): embedded in chunks without a graph, the
    loss (InfoNCE, masking, OASIS's CoSENT) on the embeddings, then each chunk again with a graph, so
    neither the batch size nor the number of extra negatives is limited by activation memory; same
    loss and gradients as the plain step up to rounding, but dropout is drawn per chunk, so it is in
    the resume key when it can chunk a step (a batch larger than it, or extra negatives). A step whose
    every side fits in one chunk runs the plain one-pass step (what GradCache with one chunk per side
    computes, without its second forward). Not combinable with MixUp.
    ``micro_batch``: embed each side of a batch (its queries, its codes, its extra negatives) in
    forward passes of at most this many texts, sorted by token length, so each pass pads only to its
    own longest text (on 2 CPU cores, MiniLM, batch 32, 128 tokens: measured by
    ``benchmarks/train_throughput.py``). The batch, its negatives and the loss are unchanged up to
    float rounding; dropout masks differ (drawn per pass), so it is in the resume key when set.
    Ignored by steps that go through GradCache, which chunk already.
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
        for name in ORDER_FIELDS:
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
