"""Runtime settings: torch threads, seeds, device choice and mixed precision.

Small, dependency-free helpers every notebook and the trainer call first, so a run on a laptop,
in CI and on a GPU box is configured the same way.
"""

from __future__ import annotations

import contextlib
import functools
import os
import random
import warnings

import numpy as np
import torch

from workbench.errors import ParameterError
from workbench.threads import thread_cap

__all__ = ["set_threads", "seed_everything", "pick_device", "bf16_supported", "effective_bf16", "autocast_context",
           "tf32_context"]


def set_threads(n: int | None) -> int:
    """Set torch's intra-op threads to ``n`` (and inter-op threads to ``min(n, 2)``).

    ``None`` leaves torch's default. Both are capped by ``$WORKBENCH_MAX_THREADS`` (``workbench.threads``). On a shared, loaded CPU fewer threads can be faster (on the
    reference 2-core box 1 thread beat 2 by 3-5x under load), so keep this a run setting.
    Inter-op threads can only be set once per process, before any parallel work; later calls
    leave them as they are. Returns the intra-op thread count now in effect.
    """
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ParameterError(f"threads: expected a positive integer or None, got {n!r}")
    n = thread_cap(n)  # $WORKBENCH_MAX_THREADS, when several jobs share the machine
    if n is None:
        return torch.get_num_threads()
    torch.set_num_threads(n)
    with contextlib.suppress(RuntimeError):  # "cannot set number of interop threads after parallel work"
        torch.set_num_interop_threads(min(n, 2))
    return torch.get_num_threads()


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and every CUDA device).

    ``deterministic=False`` (the default) leaves ``torch.use_deterministic_algorithms`` off: on
    CPU the trainer's ops are already deterministic for a fixed thread count, which is what the
    resume test relies on. On CUDA some kernels (e.g. atomics in scatter/index_add, cuBLAS
    split-K) are not; ``deterministic=True`` turns on the flag, sets ``CUBLAS_WORKSPACE_CONFIG``
    and disables cuDNN benchmarking, at some speed cost, and errors on ops with no
    deterministic implementation.

    What is and is not reproducible. On CPU, two runs with the same seed, the same thread count
    and the same versions give bit-identical weights and metrics (``tests/test_faults_inputs.py``
    checks it); a different thread count changes the order of floating-point sums, so the last
    digits can differ. On a GPU, ``workbench run`` (``open_run``) seeds with the default
    ``deterministic=False``, so re-runs can differ slightly: ``index_add`` / ``scatter_add`` and
    the backward passes of ``index_select`` / ``gather`` accumulate with atomic adds in whatever
    order the threads finish, and cuBLAS may split reductions differently; the differences start
    in the last bits and can grow over training, so the metrics of two GPU runs need not match
    exactly. GPU and CPU results, and bf16 and fp32 results, differ in any case.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ParameterError(f"seed: expected an integer, got {seed!r}")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


def pick_device(prefer: str | torch.device = "auto") -> torch.device:
    """``"auto"``: CUDA if available, else CPU. ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` force one.

    Asking for CUDA on a machine without it raises :class:`ParameterError`.
    """
    if isinstance(prefer, torch.device):
        prefer = str(prefer)
    if not isinstance(prefer, str):
        raise ParameterError(f"device: expected 'auto', 'cpu' or 'cuda[:N]', got {prefer!r}")
    p = prefer.strip().lower()
    if p == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if p == "cpu":
        return torch.device("cpu")
    if p == "cuda" or p.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ParameterError(f"device: {prefer!r} requested but CUDA is not available here")
        return torch.device(p)
    raise ParameterError(f"device: expected 'auto', 'cpu' or 'cuda[:N]', got {prefer!r}")


@functools.cache
def _device_has_bf16(device_type: str, index: int | None) -> bool:
    if device_type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    try:  # oneDNN's own test: AVX-512 (BW, VL, DQ) or AMX-BF16 on x86, bf16 instructions on Arm
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch build without oneDNN
        return False


def bf16_supported(device: torch.device | str) -> bool:
    """Whether bf16 autocast runs at speed on ``device``: a CUDA GPU with bf16 (Ampere or later), or a
    CPU with bf16 kernels in oneDNN (AVX-512 or AMX on x86; the 2-core machines of 2026-11 had
    AVX-512-BF16: bf16 matmuls 3x fp32). On an AVX2-only CPU (AMD Zen 3, most laptops before 2023)
    torch emulates bf16 matmuls: 0.75 against 24.7 GFLOP/s for fp32 (512^3, one thread, AMD EPYC Zen
    3, 2026-12-07), so a bf16 run there is an order of magnitude slower than fp32.
    ``$WORKBENCH_BF16`` overrides the answer: ``force`` (bf16 wherever asked, e.g. to reproduce a bf16
    run's numbers on such a CPU) or ``off`` (never)."""
    mode = os.environ.get("WORKBENCH_BF16", "auto").strip().lower()
    if mode not in ("auto", "force", "off"):
        raise ParameterError(f"$WORKBENCH_BF16: expected auto, force or off, got {mode!r}")
    if mode != "auto":
        return mode == "force"
    d = torch.device(device)
    return _device_has_bf16(d.type, d.index)


_warned: set[str] = set()


def effective_bf16(device: torch.device | str, bf16: bool) -> bool:
    """``bf16`` where :func:`bf16_supported`, else False with a warning (once per device type) that the
    run computes in fp32: its numbers are then fp32 numbers, and cache keys record that (trained
    models, embeddings and evaluations say the precision they were computed in, not the one asked for)."""
    if not bf16:
        return False
    device_type = torch.device(device).type
    if device_type not in ("cpu", "cuda"):
        raise ParameterError(f"bf16: autocast supports cpu and cuda devices, not {device_type!r}")
    if bf16_supported(device):
        return True
    if device_type not in _warned:
        _warned.add(device_type)
        warnings.warn(f"bf16 was asked for, but this {device_type.upper()} has no fast bf16 (see "
                      "workbench.runtime.bf16_supported): computing in fp32 instead; "
                      "WORKBENCH_BF16=force uses bf16 anyway", RuntimeWarning, stacklevel=2)
    return False


def autocast_context(device: torch.device | str, bf16: bool) -> contextlib.AbstractContextManager:
    """``torch.autocast(device_type, dtype=torch.bfloat16)`` when ``bf16`` and the device computes it fast
    (:func:`effective_bf16`), else a no-op context.

    Works on CPU and CUDA. Under autocast, matmuls run in bfloat16 while reductions such as
    softmax stay in float32; losses should still be computed from float32 casts (``info_nce`` does).
    """
    if not effective_bf16(device, bf16):
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)


@contextlib.contextmanager
def tf32_context(device: torch.device | str, enabled: bool):
    """Allow TF32 tensor-core math for float32 matmuls and cuDNN convolutions inside the block, on CUDA.

    ``torch.backends.cuda.matmul.allow_tf32`` and ``torch.backends.cudnn.allow_tf32`` are set to True
    and put back as they were on exit. A no-op when not ``enabled`` or on CPU (which has no TF32).
    TF32 keeps float32's range with a 10-bit mantissa: matmul results differ from full float32 at
    about 1e-3 relative, which training tolerates (speed-up on Ampere and later GPUs).
    """
    if not enabled or torch.device(device).type != "cuda":
        yield
        return
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before
