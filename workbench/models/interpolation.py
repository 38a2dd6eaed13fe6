"""Weight-space ensembling: a fine-tuned encoder with its pre-trained start (WiSE-FT), and several
fine-tunes of one start with each other (a uniform model soup).

Wortsman et al. 2022, "Robust fine-tuning of zero-shot models" (CVPR), eq. 1: the ensembled
weights are ``theta_alpha = (1 - alpha) * theta_0 + alpha * theta_1`` for the pre-trained weights
theta_0 and the fine-tuned ones theta_1, element by element. alpha = 0 is the pre-trained model,
alpha = 1 the fine-tuned one; in between the paper finds models that keep most of the fine-tune's
in-distribution gain and more of the pre-trained model's robustness under distribution shift.
The mixing coefficient is a choice: make it on a validation set (``workbench.validation``),
never on a test set that is then reported.

Wortsman et al. 2022, "Model soups: averaging weights of multiple fine-tuned models improves accuracy
without increasing inference time" (ICML), the uniform soup: ``theta = (1 / k) * sum_i theta_i`` over k
fine-tunes of the same pre-trained weights (here: seeds of one recipe). A soup is one model, so it
costs one model's inference; WiSE-FT then mixes the soup with theta_0 like any fine-tune.

Only floating-point tensors are mixed; integer buffers (position ids) must agree and are copied.
Both models must share the architecture (the same state-dict names and shapes).
"""

from __future__ import annotations

import copy

import torch

from ..errors import ParameterError
from .encoder import BiEncoder

__all__ = ["interpolate", "interpolate_state", "soup", "soup_state"]


def interpolate_state(
    pretrained: dict[str, torch.Tensor], finetuned: dict[str, torch.Tensor], alpha: float
) -> dict[str, torch.Tensor]:
    """``(1 - alpha) * pretrained + alpha * finetuned`` per floating tensor (WiSE-FT eq. 1)."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= float(alpha) <= 1.0:
        raise ParameterError(f"interpolate: alpha must be a number in [0, 1], got {alpha!r}")
    missing = sorted(set(pretrained) ^ set(finetuned))
    if missing:
        raise ParameterError(
            f"interpolate: the two models have different weights (e.g. {missing[:3]}); "
            "WiSE-FT needs the fine-tuned model and the pre-trained model it started from"
        )
    out: dict[str, torch.Tensor] = {}
    a = float(alpha)
    for name, t1 in finetuned.items():
        t0 = pretrained[name]
        if t0.shape != t1.shape:
            raise ParameterError(f"interpolate: weight {name!r} has shape {tuple(t0.shape)} and {tuple(t1.shape)}")
        if t1.is_floating_point():
            mixed = torch.lerp(t0.to(device=t1.device, dtype=torch.float32), t1.float(), a)
            out[name] = mixed.to(t1.dtype)
        else:
            if not torch.equal(t0.to(t1.device), t1):
                raise ParameterError(f"interpolate: integer buffer {name!r} differs between the two models")
            out[name] = t1.clone()
    return out


def interpolate(pretrained: BiEncoder, finetuned: BiEncoder, alpha: float) -> BiEncoder:
    """A new encoder whose transformer weights are WiSE-FT's ``(1 - alpha) * theta_0 + alpha * theta_1``.

    Pooling, normalisation and token limits come from ``finetuned``; neither input is modified.
    """
    for what, enc in (("pretrained", pretrained), ("finetuned", finetuned)):
        if not isinstance(enc, BiEncoder):
            raise ParameterError(f"interpolate: {what} must be a BiEncoder, got {type(enc).__name__}")
    mixed = copy.deepcopy(finetuned)
    state = interpolate_state(pretrained.model.state_dict(), finetuned.model.state_dict(), alpha)
    mixed.model.load_state_dict(state)
    mixed.name = f"{finetuned.name} (WiSE-FT alpha={float(alpha):g})"
    mixed.eval()
    return mixed


def soup_state(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The uniform soup ``(1 / k) * sum_i theta_i`` per floating tensor (Wortsman et al. 2022b),
    accumulated in fp32; integer buffers must agree across the k models and are copied."""
    if not states:
        raise ParameterError("soup: no models to average")
    names = set(states[0])
    for i, st in enumerate(states[1:], start=1):
        if set(st) != names:
            diff = sorted(names ^ set(st))
            raise ParameterError(f"soup: model {i} has different weights from model 0 (e.g. {diff[:3]}); "
                                 "a soup averages fine-tunes of the same pre-trained model")
    out: dict[str, torch.Tensor] = {}
    for name, t0 in states[0].items():
        for i, st in enumerate(states[1:], start=1):
            if st[name].shape != t0.shape:
                raise ParameterError(f"soup: weight {name!r} has shape {tuple(t0.shape)} in model 0 "
                                     f"and {tuple(st[name].shape)} in model {i}")
        if t0.is_floating_point():
            acc = torch.zeros(t0.shape, dtype=torch.float32, device=t0.device)
            for st in states:
                acc += st[name].to(device=t0.device, dtype=torch.float32)
            out[name] = (acc / len(states)).to(t0.dtype)
        else:
            for i, st in enumerate(states[1:], start=1):
                if not torch.equal(st[name].to(t0.device), t0):
                    raise ParameterError(f"soup: integer buffer {name!r} differs between model 0 and model {i}")
            out[name] = t0.clone()
    return out


def soup(encoders: list[BiEncoder]) -> BiEncoder:
    """A new encoder whose transformer weights are the uniform soup of ``encoders`` (fine-tunes of one
    pre-trained model, e.g. the seeds of a recipe). Pooling and token limits come from the first."""
    if not encoders:
        raise ParameterError("soup: no models to average")
    for i, enc in enumerate(encoders):
        if not isinstance(enc, BiEncoder):
            raise ParameterError(f"soup: model {i} must be a BiEncoder, got {type(enc).__name__}")
    mixed = copy.deepcopy(encoders[0])
    mixed.model.load_state_dict(soup_state([e.model.state_dict() for e in encoders]))
    mixed.name = f"soup of {len(encoders)}: " + ", ".join(e.name for e in encoders)
    mixed.eval()
    return mixed
