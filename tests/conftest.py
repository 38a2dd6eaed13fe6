"""Shared fixtures. Tests never touch the hub, and write generated files into temporary folders."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def minilm():
    """The real all-MiniLM-L6-v2 from its pip package, loaded once per session."""
    import torch

    from workbench.models import BiEncoder

    torch.set_num_threads(2)
    return BiEncoder.load("minilm", max_query_len=32, max_code_len=64)
