"""LLM backends for the augmentation chapter (ChatDANCE, papers/002): one protocol, three ways to run a
chat model (in-process llama.cpp, an embedded llama_cpp.server, any OpenAI-compatible server), offline
GGUF models from pip wheels with pinned sha256, and an on-disk cache of every request."""

from ..errors import LLMError
from .backends import (
    BACKEND_KINDS,
    LlamaCppBackend,
    LLMBackend,
    Message,
    OpenAIBackend,
    Sampling,
    check_messages,
    make_backend,
    stop_servers,
)
from .cache import CachedLLM, request_key, request_record
from .configured import llm_cache_dir, llm_from_params
from .embedder import LLMEmbedder
from .llamacpp import openmp_environment
from .local_models import (
    DEFAULT_MODEL,
    LOCAL_MODELS,
    LocalModel,
    ModelChecksumError,
    assemble_parts,
    assembled_model_path,
    available_local_models,
    file_sha256,
    local_model_path,
    model_file,
    verify_model_file,
)
from .server import LlamaServer, free_port

__all__ = [
    "BACKEND_KINDS",
    "CachedLLM",
    "DEFAULT_MODEL",
    "LLMBackend",
    "LLMEmbedder",
    "LLMError",
    "LOCAL_MODELS",
    "LlamaCppBackend",
    "LlamaServer",
    "LocalModel",
    "Message",
    "ModelChecksumError",
    "OpenAIBackend",
    "Sampling",
    "assemble_parts",
    "assembled_model_path",
    "available_local_models",
    "check_messages",
    "file_sha256",
    "free_port",
    "llm_cache_dir",
    "llm_from_params",
    "local_model_path",
    "make_backend",
    "model_file",
    "openmp_environment",
    "request_key",
    "request_record",
    "stop_servers",
    "verify_model_file",
]
