"""Offline model registry and the bi-encoder."""

from .encoder import BiEncoder, pool
from .registry import ChecksumError, available_models, mpnet_path, resolve_model

__all__ = ["BiEncoder", "pool", "ChecksumError", "available_models", "mpnet_path", "resolve_model"]
