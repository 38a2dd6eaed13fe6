"""One training step's loss and gradients (:func:`batch_step`): InfoNCE over the batch and its extra
negatives, with Select then MixUp's representation MixUp and OASIS's CoSENT order loss beside it
(Select then MixUp steps 1 and 4, CoRNStack section 2.3, OASIS eq. 4); under several processes
each embeds its shard and codes and negatives are gathered with gradients, through GradCache when
asked (:func:`contrastive_step`). :func:`workbench.training.trainer.train` runs the loop around it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from workbench.errors import ParameterError
from workbench.runtime import autocast_context
from workbench.training import distributed
from workbench.training.gradcache import grad_cache_backward
from workbench.training.losses import cosent, duplicate_mask, info_nce
from workbench.training.mixup import mix_plan, mixup_embed, mixup_loss
from workbench.training.train_config import LabelledNegatives, TrainConfig

__all__ = ["batch_negatives", "batch_step", "check_multiprocess", "contrastive_step", "embed_sorted", "order_loss",
           "pad_shard", "uses_order", "valid_rows"]


def check_multiprocess(config: TrainConfig, negatives: Any, encoder: Any) -> None:
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


def embed_sorted(encoder: Any, texts: list[str], kind: str, micro_batch: int | None) -> torch.Tensor:
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


def pad_shard(texts: Sequence[str], sizes: list[int], rank: int) -> list[str]:
    """This process's contiguous shard of ``texts``, padded with empty texts to the largest shard."""
    start = sum(sizes[:rank])
    return list(texts[start : start + sizes[rank]]) + [""] * (max(sizes) - sizes[rank])


def valid_rows(sizes: list[int]) -> torch.Tensor:
    """Rows of the gathered (world * max(sizes), d) tensor that are real (not padding), in global order."""
    m = max(sizes)
    return torch.tensor([r * m + j for r, s in enumerate(sizes) for j in range(s)], dtype=torch.long)


def contrastive_step(
    encoder: Any,
    queries: list[str],
    codes: list[str],
    neg_texts: list[str],
    order: LabelledNegatives | None,
    config: TrainConfig,
    device: torch.device,
    want_square: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Forward + backward of one global batch on this process's shard; returns (global loss, B x B logits).

    One process: InfoNCE over the batch and its extra negatives (duplicates masked when asked),
    weighted ``contrastive_weight``, plus ``order_weight`` times OASIS's CoSENT when the batch has
    order labels. Several processes: each embeds its contiguous shard of the batch (and of the extra
    negatives), the codes and negatives of all processes are gathered with gradients, and the local
    queries are scored against all of them (gold column = the query's position in the global batch);
    the local loss is ``world / B * sum of its per-query losses``, so after ``average_gradients`` every
    process holds the gradient of the global batch's mean loss.

    With ``grad_cache_chunk`` a step that embeds more than that many texts on one side (queries,
    codes or extra negatives) goes through GradCache, so at most ``grad_cache_chunk`` texts hold
    activations at once; a step whose every side fits in one chunk is embedded in one pass, which
    draws the same dropout as GradCache with one chunk per side (the same step up to rounding,
    without the second forward). Otherwise each side is embedded in length-sorted passes of
    ``micro_batch`` texts (:func:`embed_sorted`).
    """
    world, rank = distributed.world_size(), distributed.rank()
    b = len(queries)
    sizes = distributed.shard_sizes(b, world)
    mine, start = sizes[rank], sum(sizes[:rank])
    inputs: list[tuple[list[str], str]] = [
        (pad_shard(queries, sizes, rank), "query"),
        (pad_shard(codes, sizes, rank), "code"),
    ]
    n_sizes = distributed.shard_sizes(len(neg_texts), world) if neg_texts else None
    if n_sizes is not None:
        inputs.append((pad_shard(neg_texts, n_sizes, rank), "code"))
    valid = valid_rows(sizes).to(device)
    n_valid = valid_rows(n_sizes).to(device) if n_sizes is not None else None

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
        if config.order_weight > 0 and order is not None:
            loss = config.contrastive_weight * loss + config.order_weight * order_loss(q, c, neg, order, config)
        elif config.contrastive_weight != 1.0:
            loss = config.contrastive_weight * loss
        return loss, logits

    chunk = config.grad_cache_chunk
    if chunk is not None and any(len(texts) > chunk for texts, _ in inputs):
        loss, logits = grad_cache_backward(
            encoder, inputs, chunk, loss_fn, autocast=lambda: autocast_context(device, config.bf16)
        )
    else:
        with autocast_context(device, config.bf16):
            embs = [embed_sorted(encoder, texts, kind, config.micro_batch) for texts, kind in inputs]
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


def uses_order(config: TrainConfig) -> bool:
    return config.order_weight != 0.0 or config.contrastive_weight != 1.0


def order_loss(q: torch.Tensor, c: torch.Tensor, neg: torch.Tensor | None, order: LabelledNegatives,
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


def batch_negatives(negatives: Any, rows: np.ndarray, step: int, total_steps: int
                    ) -> tuple[list[str], LabelledNegatives | None]:
    """The extra negative codes a ``negatives`` hook gives for the batch of ``rows`` at ``step``
    (``hook(rows, step, progress)``, progress 0 at the first step and 1 at the last), and their order
    labels when the hook is an OASIS one (it returns :class:`LabelledNegatives`)."""
    if negatives is None:
        return [], None
    got = negatives(rows, step, (step - 1) / max(total_steps - 1, 1))
    if isinstance(got, LabelledNegatives):
        return [str(t) for t in got.texts], got
    return [str(t) for t in got], None


def batch_step(
    encoder: Any,
    queries: list[str],
    codes: list[str],
    neg_texts: list[str],
    order: LabelledNegatives | None,
    config: TrainConfig,
    device: torch.device,
    step: int,
    want_square: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Forward and backward of one batch; returns the loss (detached) and the B x B in-batch logits.

    Without MixUp: :func:`contrastive_step` (one or several processes, GradCache when a side exceeds
    ``grad_cache_chunk``), gradients averaged over processes. With MixUp (one process, no GradCache):
    InfoNCE over the batch and its extra negatives plus ``mixup_weight`` times the MixUp loss (Select
    then MixUp step 4; the plan drawn from (seed, step))."""
    if config.mixup_alpha is None:
        loss, square = contrastive_step(encoder, queries, codes, neg_texts, order, config, device,
                                        want_square=want_square)
        distributed.average_gradients(encoder.parameters())
        return loss, square
    plan = mix_plan(len(queries), config.mixup_alpha, config.mixup_fraction, np.random.default_rng([config.seed, step]))
    with autocast_context(device, config.bf16):
        q, q_mix = mixup_embed(encoder, queries, "query", plan, config.mixup_layer)
        c, c_mix = mixup_embed(encoder, codes, "code", plan, config.mixup_layer)
        neg = embed_sorted(encoder, neg_texts, "code", config.micro_batch) if neg_texts else None
    ignore = duplicate_mask(queries, codes, neg_texts).to(q.device) if config.mask_duplicates else None
    loss, logits = info_nce(q, c, temperature=config.temperature, negatives=neg, ignore=ignore)
    loss = loss + config.mixup_weight * mixup_loss(q, c, q_mix, c_mix, plan, config.temperature)
    if config.order_weight > 0 and order is not None:
        loss = config.contrastive_weight * loss + config.order_weight * order_loss(q, c, neg, order, config)
    elif config.contrastive_weight != 1.0:
        loss = config.contrastive_weight * loss
    loss.backward()
    return loss.detach(), logits[:, : len(queries)]  # the in-batch square only
