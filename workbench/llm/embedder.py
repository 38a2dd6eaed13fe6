"""A generative LLM used as a zero-shot bi-encoder: the "LLM" rows of *Select then MixUp*'s first table.

The paper (papers/000, "Results", Table 1) scores DeepSeek-R1, Llama 3.1 and Qwen2.5-Coder 7B as
retrievers without any training and reports MRR 0.45-8.27, against about 56-60 for fine-tuned code
encoders, which is why it leaves LLMs aside. :class:`LLMEmbedder` gives that row for the LLM this
workbench ships (Qwen2.5-Coder-0.5B-Instruct, or SmolLM2-135M for tests, or any GGUF file), on the same
test sets, so the comparison is measured rather than quoted.

**How the LLM retrieves.** Each text (a query, or a function's code) is tokenised with the model's own
tokenizer, cut to its first ``max_query_tokens`` (64) or ``max_code_tokens`` (256) tokens, optionally
preceded by a prompt prefix for its kind (none by default), and run once through the model by
llama.cpp (``llama_cpp.Llama(embedding=True, pooling_type=LLAMA_POOLING_TYPE_MEAN)``). The vector is the
mean over the text's tokens (the BOS token included where the model adds one) of the last hidden
state (the output of the final norm, before the language-model head), L2-normalised. Retrieval is
then the workbench's exact cosine search (:func:`workbench.retrieval.search`): a query's score for a
function is the cosine of their two mean-pooled vectors. No weights change and no prompt asks the
model anything; this is the plainest zero-shot use of a decoder's representations as embeddings.

**Prompt prefixes** (``query_prefix`` / ``code_prefix``, default ``""``): text put before every query /
code, e.g. ``query_prefix="Query: "``, ``code_prefix="Python function:\\n"``. The prefix is tokenised
separately and its tokens come before the text's (it does not count against the text's token limit,
and its tokens are part of the mean). They are recorded in :meth:`LLMEmbedder.describe`.

**Determinism.** Every text is decoded alone (one sequence per ``llama_decode``) so its vector does not
depend on the texts around it: llama.cpp packing several sequences into one batch changed vectors by
about 1e-3 (relative) on this machine. ``batch_size`` only sets how often the progress bar moves and
``bf16`` is ignored (llama.cpp computes in the GGUF's own quantisation).

**AMX.** On hosts whose CPU reports AMX (as the Firecracker VMs here do) the llama.cpp in
llama-cpp-python 0.3.36 crashes (SIGSEGV in ``ggml_backend_amx_mul_mat``) on the first prompt. The
embedder therefore loads the weights without llama.cpp's "extra buffer types" (AMX and CPU weight
repacking: ``llama_model_params.use_extra_bufts = False``, through
:func:`~workbench.llm.llamacpp.extra_buffer_types`); ``repack=True`` restores llama.cpp's default.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import LLMError, ParameterError
from ..progress import tqdm
from ..threads import thread_cap
from .llamacpp import extra_buffer_types, openmp_environment
from .local_models import LOCAL_MODELS, local_model_path

__all__ = ["LLMEmbedder"]

KINDS = ("query", "code")


def _load_llama(path: Path, n_ctx: int, n_threads: int, repack: bool) -> Any:
    """``llama_cpp.Llama`` in embedding mode with mean pooling; ``repack=False`` loads the weights without
    llama.cpp's extra buffer types (:func:`~workbench.llm.llamacpp.extra_buffer_types`)."""
    openmp_environment()
    try:
        import llama_cpp
    except ImportError as e:
        raise LLMError("LLMEmbedder needs llama-cpp-python: pip install 'llama-cpp-python==0.3.36'") from e
    try:
        with extra_buffer_types(repack):
            return llama_cpp.Llama(
                model_path=str(path), embedding=True, pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN,
                n_ctx=n_ctx, n_batch=n_ctx, n_ubatch=n_ctx, n_threads=n_threads, n_threads_batch=n_threads,
                verbose=False,
            )
    except Exception as e:  # llama.cpp raises ValueError on files it cannot load
        raise LLMError(f"{path}: llama.cpp could not load it as an embedding model: {e}") from e


class LLMEmbedder:
    """A GGUF generative LLM as a zero-shot bi-encoder (mean-pooled last hidden states, cosine).

    Satisfies the workbench's Encoder contract (``encode(texts, kind, batch_size, bf16, show_progress)``
    returning float32 L2-normalised rows; ``name``; ``dim``), so :func:`workbench.evaluation.evaluate`
    and :func:`workbench.experiment.evaluate_suite` take it unchanged. See the module docstring for
    exactly how a text becomes a vector.

    ``model``: a registry name of :data:`~workbench.llm.local_models.LOCAL_MODELS` (``qwen-coder-0.5b``,
    ``smollm2-135m``; sha256-checked by :func:`~workbench.llm.local_models.local_model_path`) or a
    ``.gguf`` path. Nothing is ever downloaded.
    """

    def __init__(
        self,
        model: str | os.PathLike = "qwen-coder-0.5b",
        *,
        max_query_tokens: int = 64,
        max_code_tokens: int = 256,
        query_prefix: str = "",
        code_prefix: str = "",
        n_threads: int | None = None,
        repack: bool = False,
    ) -> None:
        for what, n in (("max_query_tokens", max_query_tokens), ("max_code_tokens", max_code_tokens)):
            if int(n) < 1:
                raise ParameterError(f"LLMEmbedder: {what} must be >= 1, got {n!r}")
        self.model = str(model)
        self.model_path = local_model_path(model)
        self.max_tokens = {"query": int(max_query_tokens), "code": int(max_code_tokens)}
        self.prefixes = {"query": str(query_prefix), "code": str(code_prefix)}
        self.n_threads = thread_cap(int(n_threads or min(os.cpu_count() or 1, 8)))
        self.repack = bool(repack)
        # one fixed context for every text: room for BOS, the longer prefix and the longer limit, rounded
        # up to llama.cpp's context padding of 256 (a context, batch and micro-batch of one size; other
        # sizes trip an assertion in llama.cpp's mean-pooling graph)
        need = max(self.max_tokens.values()) + 8 + max(len(p.encode("utf-8")) for p in self.prefixes.values())
        self.n_ctx = -(-need // 256) * 256
        self._lock = threading.Lock()
        self._llm = _load_llama(self.model_path, self.n_ctx, self.n_threads, self.repack)
        self._finalizer = weakref.finalize(self, self._llm.close)
        self.dim = int(self._llm.n_embd())
        self._head = {kind: self._tokenize(self.prefixes[kind], add_bos=True) for kind in KINDS}
        for kind in KINDS:
            if len(self._head[kind]) + self.max_tokens[kind] > self.n_ctx:
                raise ParameterError(f"LLMEmbedder: the {kind} prefix is too long ({len(self._head[kind])} tokens)")
        self.name = f"{self.model_path.stem if self.model not in LOCAL_MODELS else self.model} (mean-pooled)"

    # ------------------------------------------------------------------ tokens
    def _tokenize(self, text: str, add_bos: bool = False) -> list[int]:
        return list(self._llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=False))

    def tokens(self, text: str, kind: str = "code") -> list[int]:
        """The token ids the model reads for ``text``: BOS (if the model adds one), the prefix of ``kind``,
        then the text's first ``max_tokens[kind]`` tokens (an empty input reads the EOS token)."""
        self._check_kind(kind)
        ids = self._head[kind] + self._tokenize(text)[: self.max_tokens[kind]]
        return ids or [int(self._llm.token_eos())]

    def truncated(self, text: str, kind: str = "code") -> str:
        """The part of ``text`` the model reads (its first ``max_tokens[kind]`` tokens, detokenised)."""
        self._check_kind(kind)
        ids = self._tokenize(text)[: self.max_tokens[kind]]
        return self._llm.detokenize(ids).decode("utf-8", errors="replace")

    @staticmethod
    def _check_kind(kind: str) -> None:
        if kind not in KINDS:
            raise ParameterError(f"LLMEmbedder: kind must be one of {KINDS}, got {kind!r}")

    # ------------------------------------------------------------------ embedding
    def _embed_tokens(self, ids: list[int]) -> np.ndarray:
        """Mean-pooled last hidden state of one token sequence (the loop of ``Llama.embed`` for one
        sequence, fed token ids so truncation is exact), not normalised."""
        import llama_cpp

        llm = self._llm
        llm._batch.reset()
        llm._batch.add_sequence(ids, 0, True)  # every token an output: mean pooling reads them all
        llm._ctx.kv_cache_clear()
        try:
            llm._ctx.decode(llm._batch)
            ptr = llama_cpp.llama_get_embeddings_seq(llm._ctx.ctx, 0)
            if not ptr:
                raise LLMError(f"{self.model_path.name}: llama.cpp returned no pooled embedding")
            vec = np.ctypeslib.as_array(ptr, shape=(self.dim,)).astype(np.float32, copy=True)
        finally:
            llm._batch.reset()
            llm._ctx.kv_cache_clear()
        return vec

    def encode(
        self,
        texts: list[str],
        kind: str = "code",
        batch_size: int = 64,
        bf16: bool = False,
        show_progress: bool = True,
    ) -> np.ndarray:
        """Embed ``texts`` as float32 L2-normalised rows, in input order (see the class docstring)."""
        self._check_kind(kind)
        texts = list(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        step = max(1, int(batch_size))
        with self._lock, tqdm(total=len(texts), desc=f"LLM encode {kind}", unit="text",
                              disable=not show_progress or not texts, mininterval=5) as bar:
            for i, text in enumerate(texts):
                out[i] = self._embed_tokens(self.tokens(text, kind))
                if (i + 1) % step == 0 or i + 1 == len(texts):
                    bar.update(i + 1 - bar.n)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        if not np.isfinite(out).all() or (norms == 0).any():
            raise LLMError(f"{self.model_path.name}: llama.cpp returned a zero or non-finite embedding")
        return out / norms

    def seconds_per_text(self, texts: list[str], kind: str = "code") -> float:
        """Mean wall seconds to embed one of ``texts`` (a timing sample for estimates)."""
        if not texts:
            return 0.0
        t = time.perf_counter()
        self.encode(texts, kind=kind, show_progress=False)
        return (time.perf_counter() - t) / len(texts)

    # ------------------------------------------------------------------ identity
    def describe(self) -> dict[str, Any]:
        return {
            "kind": "llm_embedder", "model": self.model, "file": self.model_path.name, "pooling": "mean",
            "normalised": True, "max_query_tokens": self.max_tokens["query"],
            "max_code_tokens": self.max_tokens["code"], "query_prefix": self.prefixes["query"],
            "code_prefix": self.prefixes["code"], "repack": self.repack,
        }

    def close(self) -> None:
        with self._lock:
            self._finalizer()

    def __repr__(self) -> str:
        return (f"LLMEmbedder({self.model!r}, dim={self.dim}, max_query_tokens={self.max_tokens['query']}, "
                f"max_code_tokens={self.max_tokens['code']}, n_threads={self.n_threads})")
