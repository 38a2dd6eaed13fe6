"""MixUp at the representation level, step 4 of Select then MixUp (methods.md section 1; papers/000).

New training examples interpolate the representations of two random pairs (i, j) of a batch with
one coefficient for both sides (Zhang et al. 2018, "mixup", eq. 1; at a hidden layer as in
Manifold MixUp, Verma et al. 2019, and TMix, Chen et al. 2020):

    lambda ~ Beta(alpha, alpha)
    q~ = lambda * h(q_i) + (1 - lambda) * h(q_j)        c~ = lambda * h(c_i) + (1 - lambda) * h(c_j)

``h`` is the pooled representation before L2 normalisation (``layer=None``) or the token states
after transformer layer ``layer`` (then the rest of the encoder runs on the mixed states; the
mixed sequence attends to the union of both attention masks from that layer on). The mixed
query is trained against the batch's codes with soft targets (lambda on c_i, 1 - lambda on c_j),
and symmetrically the mixed code against the batch's queries:

    L_mix = 1/2 * [ CE(softmax(q~ . C^T / tau), t) + CE(softmax(c~ . Q^T / tau), t) ]

added to the in-batch InfoNCE of the original pairs with weight ``weight``. ``fraction`` of the
batch rows get a mixed copy (their partners are drawn uniformly among the other rows).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from workbench.errors import ParameterError

__all__ = ["MixPlan", "mix_plan", "mix_rows", "mixup_targets", "mixup_embed", "mixup_loss", "encoder_layers"]


@dataclass(frozen=True)
class MixPlan:
    """Which rows are mixed: mixed example k = lam[k] * row anchors[k] + (1 - lam[k]) * row partners[k]."""

    anchors: np.ndarray
    partners: np.ndarray
    lam: np.ndarray
    batch_size: int

    def __len__(self) -> int:
        return len(self.anchors)


def mix_plan(
    batch_size: int, alpha: float, fraction: float = 1.0, seed: int | np.random.Generator = 0
) -> MixPlan:
    """Draw the mixing plan of one batch: ``round(fraction * batch_size)`` anchors (at least one when
    ``fraction > 0``), each with a uniformly drawn partner among the *other* rows, and
    ``lam ~ Beta(alpha, alpha)`` per mixed example (float64)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 2:
        raise ParameterError(f"mix_plan: batch_size must be an integer >= 2, got {batch_size!r}")
    if (
        not isinstance(alpha, (int, float))
        or isinstance(alpha, bool)
        or not math.isfinite(alpha)
        or alpha <= 0
    ):
        raise ParameterError(f"mixup alpha: must be a number > 0, got {alpha!r}")
    if not isinstance(fraction, (int, float)) or isinstance(fraction, bool) or not 0 <= fraction <= 1:
        raise ParameterError(f"mixup fraction: must be a number in [0, 1], got {fraction!r}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    m = 0 if fraction == 0 else max(1, int(round(fraction * batch_size)))
    anchors = np.sort(rng.choice(batch_size, size=m, replace=False))
    partners = (anchors + 1 + rng.integers(0, batch_size - 1, size=m)) % batch_size  # never the anchor itself
    lam = rng.beta(alpha, alpha, size=m)
    return MixPlan(
        anchors=anchors.astype(np.int64),
        partners=partners.astype(np.int64),
        lam=lam,
        batch_size=int(batch_size),
    )


def mix_rows(h: torch.Tensor, plan: MixPlan) -> torch.Tensor:
    """``lam * h[anchors] + (1 - lam) * h[partners]`` along the first dimension (any trailing shape)."""
    if h.shape[0] != plan.batch_size:
        raise ParameterError(f"mix_rows: {h.shape[0]} rows for a plan over {plan.batch_size}")
    lam = torch.as_tensor(plan.lam, dtype=h.dtype, device=h.device).reshape(-1, *([1] * (h.dim() - 1)))
    a = torch.as_tensor(plan.anchors, device=h.device)
    p = torch.as_tensor(plan.partners, device=h.device)
    return lam * h[a] + (1 - lam) * h[p]


def mixup_targets(plan: MixPlan, n_candidates: int | None = None) -> torch.Tensor:
    """Soft targets (m, n_candidates): ``lam`` on the anchor's column, ``1 - lam`` on the partner's."""
    n = plan.batch_size if n_candidates is None else n_candidates
    t = torch.zeros(len(plan), n, dtype=torch.float32)
    rows = torch.arange(len(plan))
    t[rows, torch.as_tensor(plan.anchors)] += torch.as_tensor(plan.lam, dtype=torch.float32)
    t[rows, torch.as_tensor(plan.partners)] += torch.as_tensor(1 - plan.lam, dtype=torch.float32)
    return t


def encoder_layers(model: torch.nn.Module) -> torch.nn.ModuleList:
    """The transformer blocks of a Hugging Face encoder (BERT/MPNet/RoBERTa ``encoder.layer``, others)."""
    for path in ("encoder.layer", "encoder.layers", "layers", "transformer.layer", "h", "block"):
        obj: Any = model
        for part in path.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if isinstance(obj, torch.nn.ModuleList) and len(obj):
            return obj
    raise ParameterError(f"mixup layer: cannot find the transformer layers of {type(model).__name__}")


def _finish(encoder: Any, pooled: torch.Tensor) -> torch.Tensor:
    return F.normalize(pooled.float(), dim=-1) if encoder.normalize else pooled


def mixup_embed(
    encoder: Any, texts: list[str], kind: str, plan: MixPlan, layer: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Embeddings of ``texts`` (B, d) and of the plan's mixed examples (m, d), with gradients.

    ``layer=None`` mixes the pooled representations (one forward pass of the B texts). An integer
    ``layer`` (1 <= layer < number of blocks) mixes the token states entering block ``layer``: the
    batch is run once with the m anchors appended (B + m rows), a pre-hook replaces the appended
    rows' states by the mixture and, from that block on, their attention mask by the union of the
    anchor's and the partner's masks; pooling of a mixed row uses that union too.
    """
    from workbench.models.encoder import pool

    if len(texts) != plan.batch_size:
        raise ParameterError(f"mixup_embed: {len(texts)} texts for a plan over {plan.batch_size}")
    if layer is None:
        feats = encoder.tokenize(texts, kind)
        pooled = encoder.pooled_features(feats)
        mixed = mix_rows(pooled, plan)
        return _finish(encoder, pooled), _finish(encoder, mixed)

    blocks = encoder_layers(encoder.model)
    if isinstance(layer, bool) or not isinstance(layer, int) or not 1 <= layer < len(blocks):
        raise ParameterError(
            f"mixup layer: must be an integer in [1, {len(blocks) - 1}] for this encoder, got {layer!r}"
        )
    b, m = plan.batch_size, len(plan)
    feats = encoder.tokenize(list(texts) + [texts[i] for i in plan.anchors], kind)
    mask2d = feats["attention_mask"]
    a = torch.as_tensor(plan.anchors, device=mask2d.device)
    p = torch.as_tensor(plan.partners, device=mask2d.device)
    union2d = mask2d.clone()
    union2d[b:] = torch.maximum(mask2d[a], mask2d[p])
    lam = torch.as_tensor(plan.lam, device=mask2d.device)

    def union_mask(mask: torch.Tensor | None) -> torch.Tensor | None:
        if mask is None or mask.shape[0] != b + m:  # None: no padding anywhere, nothing to unite
            return mask
        mask = mask.clone()
        mask[b:] = torch.maximum(mask[a], mask[p])
        return mask

    def mix_hook(module, args, kwargs):
        args = list(args)
        hidden = args[0] if args else kwargs["hidden_states"]
        lam_h = lam.to(hidden.dtype).reshape(-1, 1, 1)
        mixed = lam_h * hidden[a] + (1 - lam_h) * hidden[p]
        hidden = torch.cat([hidden[:b], mixed], dim=0)
        if args:
            args[0] = hidden
        else:
            kwargs["hidden_states"] = hidden
        return mask_hook(module, tuple(args), kwargs)

    def mask_hook(module, args, kwargs):
        args = list(args)
        if len(args) > 1:
            args[1] = union_mask(args[1])
        elif "attention_mask" in kwargs:
            kwargs["attention_mask"] = union_mask(kwargs["attention_mask"])
        return tuple(args), kwargs

    handles = [blocks[layer].register_forward_pre_hook(mix_hook, with_kwargs=True)]
    handles += [blk.register_forward_pre_hook(mask_hook, with_kwargs=True) for blk in blocks[layer + 1 :]]
    try:
        inputs = {k: v for k, v in feats.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        hidden = encoder.model(**inputs).last_hidden_state
    finally:
        for h in handles:
            h.remove()
    pooled = pool(hidden, union2d, encoder.pooling)
    emb = _finish(encoder, pooled)
    return emb[:b], emb[b:]


def mixup_loss(
    q: torch.Tensor,
    c: torch.Tensor,
    q_mix: torch.Tensor,
    c_mix: torch.Tensor,
    plan: MixPlan,
    temperature: float = 0.05,
) -> torch.Tensor:
    """``L_mix`` of the module docstring: soft-target InfoNCE of the mixed queries against the batch
    codes and of the mixed codes against the batch queries, averaged (float32 logits)."""
    if len(plan) == 0:
        return q.new_zeros((), dtype=torch.float32)
    if temperature <= 0:
        raise ParameterError(f"temperature: must be > 0, got {temperature!r}")
    t = mixup_targets(plan).to(q.device)
    with torch.autocast(device_type=q.device.type, enabled=False):
        lq = q_mix.float() @ c.float().T / temperature
        lc = c_mix.float() @ q.float().T / temperature
        loss_q = -(t * F.log_softmax(lq, dim=-1)).sum(-1).mean()
        loss_c = -(t * F.log_softmax(lc, dim=-1)).sum(-1).mean()
    return 0.5 * (loss_q + loss_c)
