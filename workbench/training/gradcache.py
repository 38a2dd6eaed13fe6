"""Gradient caching for contrastive training: a batch's negatives are not limited by memory.

GradCache (Gao, Zhang, Han & Callan 2021, "Scaling Deep Contrastive Learning Batch Size under
Memory Limited Setup", section 3): the InfoNCE loss couples every embedding of the batch, but its
gradient w.r.t. the encoder factorises through the embeddings,
``dL/dtheta = sum_i dL/de_i * de_i/dtheta``. So

1. embed the batch in chunks of ``chunk`` texts **without** an autograd graph (only the
   embeddings are kept: memory of one chunk's activations);
2. compute the loss on the detached embeddings (leaves with ``requires_grad``) and backprop it to
   get ``g_i = dL/de_i`` ("the representation gradient cache");
3. re-embed each chunk **with** a graph and call ``torch.autograd.backward(e_chunk, g_chunk)``,
   which accumulates the chunk's contribution to the parameter gradients, then frees its graph.

Dropout in the second forward must draw what the first drew, or ``g`` belongs to another
function: as GradCache's ``RandContext``, the torch CPU (and CUDA) generator state is saved before
each chunk's first forward and restored, inside ``torch.random.fork_rng``, for its second forward;
the global generator is left where the first pass left it. So the parameter gradient equals that of
a forward over the same chunks with the graph kept (bit-for-bit the same dropout masks), and, with
dropout off, that of the plain one-pass step up to float rounding.

The cost is a second forward pass per step (about +30-40% time for a transformer encoder).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import torch

__all__ = ["RandState", "embed_no_grad", "backward_cached", "grad_cache_backward"]


class RandState:
    """The torch CPU generator state (and that of every CUDA device in ``devices``) at creation."""

    def __init__(self, devices: Sequence[torch.device]):
        self.cpu = torch.get_rng_state()
        self.cuda_devices = sorted({d.index or 0 for d in devices if d.type == "cuda"})
        self.cuda = [torch.cuda.get_rng_state(i) for i in self.cuda_devices]

    @contextlib.contextmanager
    def replay(self):
        """Run the block with the saved states, then put the generators back as they were."""
        with torch.random.fork_rng(devices=self.cuda_devices, device_type="cuda"):
            torch.set_rng_state(self.cpu)
            for i, s in zip(self.cuda_devices, self.cuda):
                torch.cuda.set_rng_state(s, i)
            yield


def _chunks(texts: Sequence[str], chunk: int) -> list[list[str]]:
    return [list(texts[s : s + chunk]) for s in range(0, len(texts), chunk)]


def embed_no_grad(
    encoder: Any, texts: Sequence[str], kind: str, chunk: int, autocast: Callable[[], Any]
) -> tuple[torch.Tensor, list[RandState]]:
    """Pass 1: embeddings of ``texts`` in chunks without a graph (a leaf needing grad) and each chunk's RNG state."""
    states: list[RandState] = []
    parts: list[torch.Tensor] = []
    with torch.no_grad():
        for part in _chunks(texts, chunk):
            states.append(RandState([encoder.device]))
            with autocast():
                parts.append(encoder.embed(part, kind))
    emb = torch.cat(parts, dim=0).detach().requires_grad_(True)
    return emb, states


def backward_cached(
    encoder: Any,
    texts: Sequence[str],
    kind: str,
    chunk: int,
    states: Sequence[RandState],
    grad: torch.Tensor,
    autocast: Callable[[], Any],
) -> None:
    """Pass 2: re-embed each chunk with a graph under its saved RNG state and backprop its cached gradient."""
    for k, (part, state) in enumerate(zip(_chunks(texts, chunk), states)):
        with state.replay():
            with autocast():
                emb = encoder.embed(part, kind)
            g = grad[k * chunk : k * chunk + len(part)]
            torch.autograd.backward(emb, g.to(emb.dtype))


def grad_cache_backward(
    encoder: Any,
    inputs: Sequence[tuple[Sequence[str], str]],
    chunk: int,
    loss_fn: Callable[..., tuple[torch.Tensor, Any]],
    autocast: Callable[[], Any] = contextlib.nullcontext,
) -> tuple[torch.Tensor, Any]:
    """One GradCache step: accumulates into ``p.grad`` what ``loss_fn(*embeddings)[0].backward()`` would.

    ``inputs``: ``(texts, kind)`` per embedding tensor (e.g. queries, codes, extra negatives; an
    empty text list gives ``None``). ``loss_fn(*embeddings) -> (loss, extra)`` may contain
    collectives (the cross-process gather), since it runs once on every process. Returns
    ``(loss detached, extra)``.
    """
    firsts = []
    for texts, kind in inputs:
        firsts.append(embed_no_grad(encoder, texts, kind, chunk, autocast) if len(texts) else (None, []))
    embs = [e for e, _ in firsts]
    loss, extra = loss_fn(*embs)
    leaves = [e for e in embs if e is not None]
    grads = torch.autograd.grad(loss, leaves, allow_unused=True)
    it = iter(grads)
    for (texts, kind), (emb, states) in zip(inputs, firsts):
        if emb is None:
            continue
        g = next(it)
        if g is None:
            g = torch.zeros_like(emb)
        backward_cached(encoder, texts, kind, chunk, states, g, autocast)
    return loss.detach(), extra
