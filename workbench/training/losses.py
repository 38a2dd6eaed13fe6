"""Contrastive losses for bi-encoder training.

``info_nce`` is InfoNCE (van den Oord, Li & Vinyals 2018, "Representation Learning with
Contrastive Predictive Coding", eq. 4) with in-batch negatives, the loss of step 1 of Select then
MixUp (methods.md section 1; papers/000): for a batch of B (query, code) pairs with L2-normalised
embeddings q_i, c_j and temperature tau,

    L = -1/B * sum_i log( exp(q_i . c_i / tau) / sum_j exp(q_i . c_j / tau) )

where j runs over the batch's codes plus any extra negatives. With ``soft_targets`` it is the
cross-entropy against a target distribution over the candidates, which MixUp (soft labels) needs.

``cosent`` is the order objective of OASIS (papers/001, eq. 4; methods.md section 3): for labelled
(query, code) pairs with cosines cos and similarity labels s,

    L_cos = log(1 + sum over (i, j), (m, n) with s_ij > s_mn of exp((cos_mn - cos_ij) / tau))

so a pair labelled more similar than another is pushed to a higher cosine (a ranking loss on the
labels' order, not their values). ``oasis_loss`` = w1 * InfoNCE + w2 * CoSENT (w1 = 0.98, w2 = 0.02).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from workbench.errors import ParameterError

__all__ = ["cosent", "duplicate_mask", "info_nce", "similarity_logits"]


def similarity_logits(
    q: torch.Tensor, c: torch.Tensor, temperature: float = 0.05, negatives: torch.Tensor | None = None
) -> torch.Tensor:
    """``q @ [c; negatives].T / temperature`` in float32: shape (B, N + M)."""
    if temperature <= 0:
        raise ParameterError(f"temperature: must be > 0, got {temperature!r}")
    if q.dim() != 2 or c.dim() != 2 or q.shape[1] != c.shape[1]:
        raise ParameterError(
            f"info_nce: expected q (B, d) and c (N, d), got {tuple(q.shape)} and {tuple(c.shape)}"
        )
    cands = c
    if negatives is not None:
        if negatives.dim() != 2 or negatives.shape[1] != c.shape[1]:
            raise ParameterError(
                f"info_nce: negatives must be (M, {c.shape[1]}), got {tuple(negatives.shape)}"
            )
        cands = torch.cat([c, negatives.to(c.device)], dim=0)
    # float32 even under bf16 autocast: the softmax over 1/tau-scaled logits is sensitive to rounding.
    with torch.autocast(device_type=q.device.type, enabled=False):
        return q.float() @ cands.float().T / temperature


def duplicate_mask(queries: Sequence[str], codes: Sequence[str], negatives: Sequence[str] = ()) -> torch.Tensor:
    """The false negatives of a batch as a (B, B + M) boolean mask for ``info_nce(..., ignore=...)``.

    Column j (a batch code) is masked for query i (j != i) when ``codes[j] == codes[i]`` (a copy of
    i's gold code) or ``queries[j] == queries[i]`` (an identical query, whose code is then as right
    an answer as i's own); column B + k (an extra negative) when ``negatives[k] == codes[i]``. Mined
    pairs repeat a function under two docstrings (overloads, copies across files) and a docstring
    under two functions; unmasked, InfoNCE pushes the query away from a correct answer.
    """
    b = len(queries)
    if len(codes) != b:
        raise ParameterError(f"duplicate_mask: {b} queries but {len(codes)} codes")
    q_ids = _text_ids(list(queries))
    c_ids = _text_ids(list(codes) + list(negatives))
    same = c_ids[:b, None] == c_ids[None, :]
    same[:, :b] |= q_ids[:, None] == q_ids[None, :]
    same[torch.arange(b), torch.arange(b)] = False
    return same


def _text_ids(texts: list[str]) -> torch.Tensor:
    index: dict[str, int] = {}
    return torch.tensor([index.setdefault(t, len(index)) for t in texts], dtype=torch.long)


def info_nce(
    q: torch.Tensor,
    c: torch.Tensor,
    temperature: float = 0.05,
    labels: torch.Tensor | None = None,
    negatives: torch.Tensor | None = None,
    soft_targets: torch.Tensor | None = None,
    reduction: str = "mean",
    ignore: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """InfoNCE with in-batch negatives (van den Oord et al. 2018; Select then MixUp eq. for step 1).

    Args:
        q: (B, d) query embeddings (L2-normalised, so ``q @ c.T`` is cosine).
        c: (N, d) code embeddings; by default row i is the gold code of query i (N >= B).
        temperature: tau; logits = ``q @ c.T / tau``.
        labels: (B,) gold column per query; default ``arange(B)``.
        negatives: optional (M, d) extra negative codes, appended as columns N..N+M-1.
        soft_targets: optional (B, N+M) target distributions (rows sum to 1); the loss is then
            ``-sum_j t_ij log softmax(logits)_ij`` (cross-entropy with soft labels, for MixUp).
            Mutually exclusive with ``labels``.
        reduction: "mean" | "sum" | "none" (per-query losses).
        ignore: optional (B, N+M) boolean mask of candidates that are not negatives of the query
            (e.g. a copy of its gold code, or the code of an identical query: false negatives;
            :func:`duplicate_mask`). Their logits are set to -inf before the softmax, so they
            neither count in the denominator nor receive gradient; the gold column must not be masked.

    Returns:
        (loss, logits) with logits (B, N+M) in float32, so the caller (the training-dynamics
        recorder) can score the batch without another forward pass.

    Identical codes in a batch (the same function paired with two queries) appear as equal
    columns: unless ``ignore`` masks them, the loss pushes the query away from a copy of its own
    gold code (it lowers p_gold for such pairs; the rank counts only strictly higher logits).
    """
    if reduction not in ("mean", "sum", "none"):
        raise ParameterError(f"reduction: expected 'mean', 'sum' or 'none', got {reduction!r}")
    logits = similarity_logits(q, c, temperature, negatives)
    b, n = logits.shape
    if ignore is not None:
        if tuple(ignore.shape) != (b, n) or ignore.dtype != torch.bool:
            raise ParameterError(f"ignore: expected a boolean mask of shape {(b, n)}, got {tuple(ignore.shape)} {ignore.dtype}")
        logits = logits.masked_fill(ignore.to(logits.device), float("-inf"))
    if soft_targets is not None:
        if labels is not None:
            raise ParameterError("info_nce: pass either labels or soft_targets, not both")
        if tuple(soft_targets.shape) != (b, n):
            raise ParameterError(f"soft_targets: expected shape {(b, n)}, got {tuple(soft_targets.shape)}")
        per_row = -(soft_targets.to(logits) * F.log_softmax(logits, dim=-1)).sum(dim=-1)
    else:
        if labels is None:
            if n < b:
                raise ParameterError(f"info_nce: {b} queries but only {n} codes; pass labels")
            labels = torch.arange(b, device=logits.device)
        per_row = F.cross_entropy(logits, labels.to(logits.device), reduction="none")
    if reduction == "mean":
        return per_row.mean(), logits
    if reduction == "sum":
        return per_row.sum(), logits
    return per_row, logits


def cosent(cos: torch.Tensor, labels: torch.Tensor, temperature: float = 0.05,
           groups: torch.Tensor | None = None) -> torch.Tensor:
    """CoSENT over labelled pairs (OASIS eq. 4): ``log(1 + sum_{a, b: s_a > s_b} exp((cos_b - cos_a) / tau))``.

    Args:
        cos: (P,) cosine of each labelled (query, code) pair.
        labels: (P,) similarity labels s; only their order matters (ties contribute nothing).
        temperature: tau (the paper: 0.05, i.e. a scale of 20 as in sentence-transformers' CoSENTLoss).
        groups: optional (P,) ids; when given only pairs of the same group (e.g. the same query)
            are compared. By default every labelled pair of the batch is compared with every other.

    Computed in float32 as a logsumexp with a zero term (the "1 +"), so it is stable for any tau.
    """
    if temperature <= 0:
        raise ParameterError(f"temperature: must be > 0, got {temperature!r}")
    if cos.dim() != 1 or labels.shape != cos.shape:
        raise ParameterError(f"cosent: expected cos and labels of the same shape (P,), got {tuple(cos.shape)} and {tuple(labels.shape)}")
    with torch.autocast(device_type=cos.device.type, enabled=False):
        c = cos if cos.dtype == torch.float64 else cos.float()  # float64 stays (gradcheck)
        s = labels.to(c)
        diff = (c[None, :] - c[:, None]) / temperature  # [a, b] = (cos_b - cos_a) / tau
        mask = s[:, None] > s[None, :]  # s_a > s_b
        if groups is not None:
            if groups.shape != cos.shape:
                raise ParameterError(f"cosent: groups must have shape {tuple(cos.shape)}, got {tuple(groups.shape)}")
            g = groups.to(c.device)
            mask = mask & (g[:, None] == g[None, :])
        terms = torch.cat([torch.zeros(1, device=c.device, dtype=c.dtype), diff[mask]])
        return torch.logsumexp(terms, dim=0)
