"""The chat model a run's parameters name (``llm_backend``, ``llm_model``, ``llm_base_url``), behind the
on-disk request cache: what ChatDANCE's rewrites, OASIS's docstrings and judge, and the web-style
queries of the baseline recipe all ask."""

from __future__ import annotations

import os
from pathlib import Path

from ..config import Params
from ..paths import data_dir
from .backends import make_backend
from .cache import CachedLLM
from .local_models import LOCAL_MODELS

__all__ = ["llm_cache_dir", "llm_from_params"]


def llm_cache_dir() -> Path:
    """Where every LLM request and response is kept (shared by all runs: a re-run costs nothing);
    ``WORKBENCH_LLM_CACHE`` overrides ``data/llm-cache``."""
    return Path(os.environ.get("WORKBENCH_LLM_CACHE") or data_dir() / "llm-cache")


def llm_from_params(params: Params, cache_dir: str | Path | None = None):
    """The chat model the parameters name (``llm_backend``, ``llm_model``, ``llm_base_url``), wrapped
    in the on-disk cache. The API key of an ``openai`` backend is read from ``OPENAI_API_KEY`` only."""
    if params.llm_backend == "openai":  # a local model name means "not chosen": OPENAI_MODEL then
        model = None if params.llm_model in LOCAL_MODELS else params.llm_model
        backend = make_backend("openai", model, base_url=params.llm_base_url)
    else:
        backend = make_backend(params.llm_backend, params.llm_model, n_ctx=4096, n_threads=params.threads)
    return CachedLLM(backend, cache_dir or llm_cache_dir())
