"""How llama.cpp must be loaded on these machines, for the in-process backend, the embedded server
and the embedder alike: passive OpenMP waiting and llama.cpp's extra buffer types switched off."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["openmp_environment", "extra_buffer_types"]


def openmp_environment(env: dict[str, str] | None = None) -> dict[str, str]:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` (unless the user chose a policy) in ``env`` (default ``os.environ``).

    llama.cpp built with OpenMP (as pip builds it here) lets its threads spin between operations. On a
    shared, loaded CPU a spinning thread that loses its core stalls every step: measured on 2 busy cores,
    SmolLM2's first prompt took 6-13 s with the default policy and 0.06 s with passive waiting. It must
    be set before llama.cpp's library is loaded (libgomp reads it once), and it has no effect when torch
    was imported first: llama.cpp then shares torch's libgomp (the same soname), already initialised.
    That is the case in every chapter, so what keeps a capped process from spinning there is the cap on
    the prompt threads too (``LlamaCppBackend``, ``n_threads_batch``; benchmarks/llm_thread_cap.py).
    """
    target = os.environ if env is None else env
    target.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return target  # type: ignore[return-value]


_EXTRA_BUFTS_LOCK = threading.Lock()


@contextmanager
def extra_buffer_types(enabled: bool) -> Iterator[None]:
    """While ``llama_cpp.Llama`` loads a model inside this block, llama.cpp's "extra buffer types" (AMX
    and CPU weight repacking, ``llama_model_params.use_extra_bufts``) are on or off as ``enabled`` says.

    Off is the safe choice on the Firecracker VMs here: their CPU reports AMX, and llama-cpp-python
    0.3.36's llama.cpp then dies in ``ggml_backend_amx_mul_mat`` on the first prompt of more than one
    token (a general protection fault at ``ldtilecfg``; SmolLM2 and Qwen alike). ``Llama`` has no
    argument for it, so its default model parameters are replaced while the block runs (under a lock).
    ``workbench.llm.embedder`` does the same for the embedding model.
    """
    import llama_cpp.llama_cpp as low

    with _EXTRA_BUFTS_LOCK:
        original = low.llama_model_default_params

        def patched():
            params = original()
            params.use_extra_bufts = bool(enabled)
            return params

        low.llama_model_default_params = patched
        try:
            yield
        finally:
            low.llama_model_default_params = original
