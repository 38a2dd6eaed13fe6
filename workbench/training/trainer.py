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

Checkpoints (``out_dir/checkpoint/``, written atomically with ``state.json`` last) are
``workbench.training.checkpoint``; the loss and gradients of one step (sharded over processes,
GradCache, CoSENT) are ``workbench.training.step``; the settings are
``workbench.training.train_config``. This module is the loop that joins them.

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
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from workbench.errors import ParameterError
from workbench.pairs import check_pairs
from workbench.progress import tqdm
from workbench.runtime import effective_bf16, seed_everything, tf32_context
from workbench.store import atomic_write_json, atomic_write_parquet, cache_key
from workbench.training import distributed
from workbench.training.checkpoint import (
    HISTORY_COLUMNS,
    Checkpointer,
    history_frame,
    key_mismatch_message,
    rank_seed,
    rng_state,
    save_model_dir,
)
from workbench.training.dynamics import DynamicsRecorder, empty_frame
from workbench.training.step import batch_negatives, batch_step, check_multiprocess, uses_order
from workbench.training.train_config import (
    MIXUP_FIELDS,
    NOT_IN_KEY,
    ORDER_FIELDS,
    LabelledNegatives,
    TrainConfig,
    TrainingInterrupted,
    TrainResult,
)

__all__ = ["TrainConfig", "TrainResult", "TrainingInterrupted", "LabelledNegatives", "train", "HISTORY_COLUMNS"]

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


def _uncompile(model: torch.nn.Module) -> None:
    """Undo ``nn.Module.compile()`` (calls go to the eager forward again)."""
    model._compiled_call_impl = None  # the attribute nn.Module.compile sets (torch >= 2.2)


def _resume_key(
    config: TrainConfig,
    df: pd.DataFrame,
    encoder: Any,
    negatives: Any,
    negatives_key: str | None,
    pool_codes: Sequence[str] | None,
) -> tuple[dict[str, Any], list[str]]:
    """What a checkpoint must match to be resumed (the settings that change what is learnt, the pairs,
    the encoder, the negatives hook, the extra pool codes), and the extra pool codes as texts. A field
    joins only when it is in use, so the keys of runs made before it existed are unchanged."""
    key_parts = {
        "config": {
            k: v
            for k, v in config.to_dict().items()
            if k not in NOT_IN_KEY and (config.mixup_alpha is not None or k not in MIXUP_FIELDS)
            and (uses_order(config) or k not in ORDER_FIELDS)  # keys of runs before these fields unchanged
            and (_chunk_can_change_a_step(config, negatives) or k != "grad_cache_chunk")
            and (config.micro_batch is not None or k != "micro_batch")
            and (config.mask_duplicates or k != "mask_duplicates")
        },
        "data": _fingerprint_pairs(df),
        "n_pairs": len(df),
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
    return key_parts, extra_pool


def _chunk_can_change_a_step(config: TrainConfig, negatives: Any) -> bool:
    """Whether ``grad_cache_chunk`` can change what a step computes: a step goes through GradCache only
    when a side exceeds the chunk, which needs a batch larger than it or extra negatives. Otherwise every
    step is the plain one and the chunk stays out of the resume key (runs made without it resume)."""
    chunk = config.grad_cache_chunk
    return chunk is not None and (config.batch_size > chunk or negatives is not None)


def _write_outputs(out_dir: Path, encoder: Any, dynamics: pd.DataFrame, history: pd.DataFrame,
                   record: dict[str, Any]) -> None:
    """A finished run's files, each atomic: ``model/``, ``dynamics.parquet``, ``history.parquet``, and
    ``train_config.json`` (``record``: the resume key's parts, timings, versions) last."""
    save_model_dir(encoder, out_dir / "model")
    atomic_write_parquet(out_dir / "dynamics.parquet", dynamics)
    atomic_write_parquet(out_dir / "history.parquet", history)
    atomic_write_json(out_dir / "train_config.json", record)


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
    # the precision it really trains in (fp32 on a CPU without fast bf16): the resume key records it
    config = dataclasses.replace(config, bf16=effective_bf16(encoder.device, config.bf16))
    df = check_pairs(pairs)[["id", "query", "code"]]
    df["id"] = df["id"].astype(str)
    distributed.init_from_env()
    world, rank = distributed.world_size(), distributed.rank()
    if world > 1:
        check_multiprocess(config, negatives, encoder)
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

    key_parts, extra_pool = _resume_key(config, df, encoder, negatives, negatives_key, pool_codes)
    key = cache_key(key_parts)
    meta = {
        "key": key,
        **key_parts,
        "steps_per_epoch": steps_per_epoch,
        "total_steps": total_steps,
        "warmup_steps": warmup_steps,
    }

    ck = Checkpointer(out_dir)
    if ck.exists() and not resume and rank == 0:
        ck.clear()
    distributed.barrier()  # every process reads the checkpoint rank 0 kept (out_dir must be shared)
    state = ck.state() if ck.exists() else None
    if state is not None and state.get("key") != key:
        raise ParameterError(key_mismatch_message(ck.dir, state, key_parts))

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
        start_step, prior_seconds, history = ck.restore(state, encoder=encoder, optimizer=optimizer, scheduler=scheduler,
                                                        recorder=recorder, seed=config.seed, device=device)
    else:
        seed_everything(rank_seed(config.seed, rank))
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
        rng = {"ranks": distributed.all_gather_objects(rng_state())} if world > 1 else None
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
                neg_texts, order = batch_negatives(negatives, idx, step, total_steps)
                loss, square = batch_step(encoder, queries[idx].tolist(), codes[idx].tolist(), neg_texts, order, config,
                                          device, step, want_square=recorder.records_batch)
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
                if recorder.is_pool_checkpoint(step):  # single-process only (check_multiprocess)
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
    hist_df = history_frame(history)
    model_dir = out_dir / "model"
    if rank == 0:
        _write_outputs(out_dir, encoder, dynamics, hist_df,
                       {**meta, "seconds": seconds, "completed": True, "torch": torch.__version__,
                        "threads": torch.get_num_threads(), "device": str(device),
                        **({"world_size": world} if world > 1 else {})})
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
