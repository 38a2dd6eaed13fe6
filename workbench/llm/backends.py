"""LLM backends behind one small protocol: ``chat(messages, sampling) -> str`` and ``describe()``.

ChatDANCE (papers/002, methods.md section 2) rewrites queries and code with a chat LLM. The
workbench runs that LLM three ways, all behind :class:`LLMBackend`:

- :class:`OpenAIBackend`: any OpenAI-compatible ``/chat/completions`` server (OpenAI, vLLM, Ollama,
  llama.cpp's server) over HTTP, with timeouts, bounded retries with exponential backoff on 408 / 429 / 5xx /
  connection errors (``Retry-After`` honoured) and clear errors naming the URL;
- :class:`LlamaCppBackend`: llama.cpp in-process on a local GGUF file (offline default);
- ``make_backend("server", ...)``: an embedded ``llama_cpp.server`` on 127.0.0.1 reached over HTTP with the
  random API token the server was started with (see :func:`workbench.llm.tokens.register_server_token`).

``describe()`` is the backend's identity in cache keys (:mod:`workbench.llm.cache`): it never holds
an API key.
"""

from __future__ import annotations

import atexit
import email.utils
import os
import random
import threading
import time
import weakref
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ..errors import LLMError, ParameterError
from ..threads import thread_cap
from .llamacpp import extra_buffer_types, openmp_environment
from .tokens import server_token

Message = dict[str, str]
"""One chat turn: ``{"role": "system" | "user" | "assistant", "content": str}``."""

ROLES = ("system", "user", "assistant")
_ERROR_BODY_CHARS = 500


@dataclass(frozen=True)
class Sampling:
    """Sampling parameters of one chat request (all of them go into the cache key)."""

    temperature: float = 0.9
    top_p: float = 0.95
    max_tokens: int = 256
    seed: int = 0
    stop: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.temperature) <= 2.0:
            raise ParameterError(f"Sampling.temperature={self.temperature!r}: must be in [0, 2]")
        if not 0.0 < float(self.top_p) <= 1.0:
            raise ParameterError(f"Sampling.top_p={self.top_p!r}: must be in (0, 1]")
        if int(self.max_tokens) < 1:
            raise ParameterError(f"Sampling.max_tokens={self.max_tokens!r}: must be >= 1")
        if isinstance(self.stop, str):  # a lone string would be split into characters
            object.__setattr__(self, "stop", (self.stop,))
        else:
            object.__setattr__(self, "stop", tuple(self.stop))

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["stop"] = list(self.stop)
        return d


@runtime_checkable
class LLMBackend(Protocol):
    def chat(self, messages: list[Message], sampling: Sampling) -> str:
        """The assistant's reply text to ``messages``."""
        ...

    def describe(self) -> dict[str, Any]:
        """Identity for cache keys: backend kind, model id, model sha256 or base_url (no secrets)."""
        ...


def check_messages(messages: Any) -> list[Message]:
    """Validate chat messages; raise ParameterError naming the message index and field at fault."""
    if not isinstance(messages, list) or not messages:
        raise ParameterError(
            f"messages: expected a non-empty list of {{'role', 'content'}} dicts, got {messages!r:.80}"
        )
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise ParameterError(
                f"messages[{i}]: expected a dict with 'role' and 'content', got {type(m).__name__}"
            )
        if m.get("role") not in ROLES:
            raise ParameterError(f"messages[{i}].role={m.get('role')!r}: must be one of {list(ROLES)}")
        if not isinstance(m.get("content"), str):
            raise ParameterError(
                f"messages[{i}].content: must be a str, got {type(m.get('content')).__name__}"
            )
    return messages


def _truncate(text: str, n: int = _ERROR_BODY_CHARS) -> str:
    text = text.strip()
    return text if len(text) <= n else text[:n] + f"... [{len(text) - n} more chars]"


def _retry_after_seconds(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date form); None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class OpenAIBackend:
    """An OpenAI-compatible chat-completions server over HTTP (``POST {base_url}/chat/completions``).

    ``base_url`` (e.g. ``https://api.openai.com/v1``, ``http://127.0.0.1:8000/v1``), ``model`` and
    ``api_key`` come from the arguments or from ``OPENAI_BASE_URL`` / ``OPENAI_MODEL`` /
    ``OPENAI_API_KEY``. The key is only sent in the ``Authorization`` header: it is never part of
    :meth:`describe`, so it never reaches a cache key or a file.

    Failures: connection errors, timeouts, 408, 429 and 5xx are retried at most ``max_retries`` times with
    exponential backoff (``backoff * 2**attempt``, capped at ``max_backoff``) or the server's
    ``Retry-After``; other 4xx answers are not retried. Either way the final error is an
    :class:`LLMError` naming the URL and showing the server's (truncated) error body.

    ``identity`` replaces :meth:`describe` (used for the embedded server, whose port changes per run).
    """

    def __init__(
        self,
        base_url: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 120.0,
        connect_timeout: float = 10.0,
        max_retries: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        max_retry_after: float = 120.0,
        extra_body: dict[str, Any] | None = None,
        identity: dict[str, Any] | None = None,
    ) -> None:
        import httpx

        base_url = base_url or os.environ.get("OPENAI_BASE_URL")
        model = model or os.environ.get("OPENAI_MODEL")
        if not base_url:
            raise ParameterError(
                "OpenAIBackend: no base_url given and OPENAI_BASE_URL is not set "
                "(e.g. http://127.0.0.1:8000/v1 or https://api.openai.com/v1)"
            )
        if not model:
            raise ParameterError(f"OpenAIBackend({base_url}): no model given and OPENAI_MODEL is not set")
        if not base_url.startswith(("http://", "https://")):
            raise ParameterError(f"OpenAIBackend: base_url={base_url!r} must start with http:// or https://")
        if max_retries < 0:
            raise ParameterError(f"OpenAIBackend: max_retries={max_retries} must be >= 0")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.url = self.base_url + "/chat/completions"
        self.max_retries = int(max_retries)
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self.max_retry_after = float(max_retry_after)
        self.extra_body = dict(extra_body or {})
        self._identity = dict(identity) if identity else None
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        # an embedded server (of this process, or of another process of this user) accepts only its own token
        key = server_token(self.base_url) or key
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        local = httpx.URL(self.base_url).host in ("127.0.0.1", "localhost", "::1")
        self._client = httpx.Client(
            headers=headers, timeout=httpx.Timeout(timeout, connect=connect_timeout), trust_env=not local
        )  # never send a loopback request through a proxy
        self._lock = threading.Lock()
        self.requests = 0  # HTTP attempts, retries included
        self.retries = 0
        self.seconds_waited = 0.0  # total backoff sleep

    def describe(self) -> dict[str, Any]:
        if self._identity is not None:
            return dict(self._identity)
        ident: dict[str, Any] = {"kind": "openai", "model": self.model, "base_url": self.base_url}
        if self.extra_body:  # extra request fields change the output, so they are part of the identity
            ident["extra_body"] = self.extra_body
        return ident

    def payload(self, messages: list[Message], sampling: Sampling) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": check_messages(messages),
            "temperature": float(sampling.temperature),
            "top_p": float(sampling.top_p),
            "max_tokens": int(sampling.max_tokens),
            "seed": int(sampling.seed),
        }
        if sampling.stop:
            body["stop"] = list(sampling.stop)
        body.update(self.extra_body)
        return body

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        base = min(self.max_backoff, self.backoff * (2**attempt))
        return base * (1.0 + 0.1 * random.random())  # a little jitter so parallel clients spread out

    def _count(self, retry_wait: float | None = None) -> None:
        """Count one HTTP attempt, or (with ``retry_wait``) one retry and its backoff sleep."""
        with self._lock:
            if retry_wait is None:
                self.requests += 1
            else:
                self.retries += 1
                self.seconds_waited += retry_wait

    def chat(self, messages: list[Message], sampling: Sampling) -> str:
        import httpx

        body = self.payload(messages, sampling)
        last = ""
        for attempt in range(self.max_retries + 1):
            self._count()
            retry_after = None
            try:
                resp = self._client.post(self.url, json=body)
            except httpx.TransportError as e:  # connect errors, timeouts, broken connections
                last = f"{type(e).__name__}: {e}"
            else:
                if 200 <= resp.status_code < 300:
                    content = self._parse(resp)
                    if content is not None:
                        return content
                    # a completion whose content is null (a refusal, a tool call, a server hiccup): failed
                    last = f"a chat completion whose message content is null: {_truncate(resp.text)}"
                else:
                    last = f"HTTP {resp.status_code}: {_truncate(resp.text)}"
                    if (
                        resp.status_code not in (408, 429) and resp.status_code < 500
                    ):  # the request itself is wrong
                        raise LLMError(f"LLM server at {self.url} refused the request ({last})")
                    retry_after = _retry_after_seconds(resp.headers.get("Retry-After"))
            if attempt == self.max_retries:
                break
            wait = self._delay(attempt, retry_after)
            self._count(retry_wait=wait)
            time.sleep(wait)
        if last.startswith("a chat completion"):
            raise LLMError(f"LLM server at {self.url} answered something that is not a chat completion "
                           f"after {self.max_retries + 1} attempt(s): {last}")
        reach = "is unreachable or failing" if not last.startswith("HTTP") else "keeps failing"
        raise LLMError(f"LLM server at {self.url} {reach} after {self.max_retries + 1} attempt(s): {last}")

    def _parse(self, resp: Any) -> str | None:
        """The completion's text; None when its ``content`` is null (the caller retries); an
        :class:`LLMError` for anything that is not a chat completion."""
        try:
            data = resp.json()
            content = data["choices"][0]["message"]["content"]
            if content is not None and not isinstance(content, str):
                raise TypeError(f"message content is a {type(content).__name__}, not a string")
        except (ValueError, KeyError, IndexError, TypeError) as e:
            raise LLMError(
                f"LLM server at {self.url} answered something that is not a chat completion "
                f"({type(e).__name__}: {_truncate(str(e))}): {_truncate(resp.text)}"
            ) from None
        return content

    def close(self) -> None:
        self._client.close()

    def __repr__(self) -> str:
        return f"OpenAIBackend(base_url={self.base_url!r}, model={self.model!r})"


# prompt tokens are evaluated in chunks of this many, aligned to absolute positions (see _chunked_llama)
PROMPT_CHUNK = 64


def _chunked_llama(llama_cpp: Any) -> type:
    """A ``llama_cpp.Llama`` whose prompt evaluation reuses the previous request's cache only in whole
    chunks of ``PROMPT_CHUNK`` tokens that it evaluated as whole chunks from an aligned start.

    llama.cpp's logits depend, by rounding, on how a prompt was cut into batches. Plain prefix reuse
    evaluates whatever follows the cached prefix, so a request's text depended on the request before it
    (on AVX2 enough to flip a greedy choice). Here every prompt token is computed in the chunk
    ``[k*64, (k+1)*64)`` that holds it, from the same cached chunks before it, as a fresh evaluation
    with ``n_batch=64`` would: the text depends on the request alone, and a shared prefix (the
    system prompt and worked examples every rewrite request repeats) is evaluated once: chapter 02's
    query rewrites on SmolLM2 ran 3x faster than with each prompt from scratch, with the same texts
    (``benchmarks/llm_prompt_reuse.py``)."""

    class ChunkedLlama(llama_cpp.Llama):
        chunk = PROMPT_CHUNK
        align_next = False  # the next eval() is a prompt's (set by LlamaCppBackend.chat)
        whole = 0  # cached tokens below this were evaluated in whole aligned chunks

        def eval(self, tokens: Any) -> None:
            if not self.align_next:  # a sampled token
                return super().eval(tokens)
            self.align_next = False
            keep = min(self.n_tokens, self.whole) // self.chunk * self.chunk
            if keep < self.n_tokens:  # evaluate again from the last whole chunk
                tokens = [int(t) for t in self.input_ids[keep : self.n_tokens]] + list(tokens)
                self.n_tokens = keep
            super().eval(tokens)
            self.whole = self.n_tokens // self.chunk * self.chunk

    return ChunkedLlama


class LlamaCppBackend:
    """llama.cpp in-process on a GGUF file (``llama_cpp.Llama``); offline, one request at a time.

    ``llama_cpp.Llama`` is not thread safe, so :meth:`chat` holds a lock. With ``temperature=0`` (or
    the same seed) the same request gives the same text, whatever came before it, and the prefix it
    shares with the previous request is reused in whole chunks (:func:`_chunked_llama`). ``repack=False``
    (default) loads the weights without llama.cpp's extra buffer types (:func:`extra_buffer_types`:
    AMX crashes here). Prompts are evaluated on ``n_threads`` too (after ``$WORKBENCH_MAX_THREADS``);
    ``prompt_threads`` sets another count, uncapped, for measurements (benchmarks/llm_thread_cap.py).
    """

    def __init__(
        self, model_path: str | os.PathLike, n_ctx: int = 2048, n_threads: int = 2, sha256: str | None = None,
        repack: bool = False, prompt_threads: int | None = None,
    ) -> None:
        from .local_models import file_sha256

        openmp_environment()
        try:
            import llama_cpp
        except ImportError as e:
            raise LLMError(
                "LlamaCppBackend needs llama-cpp-python: pip install 'llama-cpp-python[server]==0.3.36' "
                "(builds from source in a few minutes)"
            ) from e
        self.model_path = Path(model_path)
        if not self.model_path.is_file():
            raise LLMError(f"{self.model_path}: no such model file")
        self.sha256 = sha256 or file_sha256(self.model_path)
        self.n_ctx, self.n_threads = int(n_ctx), thread_cap(int(n_threads))
        self.prompt_threads = self.n_threads if prompt_threads is None else int(prompt_threads)
        self._lock = threading.Lock()
        try:
            with extra_buffer_types(repack):
                self._llm = _chunked_llama(llama_cpp)(
                    model_path=str(self.model_path), n_ctx=self.n_ctx, n_threads=self.n_threads,
                    # the prompt too: llama-cpp-python's n_threads_batch defaults to every core, whatever the cap
                    n_threads_batch=self.prompt_threads, n_batch=PROMPT_CHUNK, verbose=False,
                )
        except Exception as e:  # llama.cpp raises ValueError on files it cannot load
            raise LLMError(f"{self.model_path}: llama.cpp could not load it: {e}") from e
        # freed when the backend goes away or at interpreter exit, before module teardown (otherwise
        # Llama.__del__ can raise a TypeError while the interpreter shuts down)
        self._finalizer = weakref.finalize(self, self._llm.close)

    def describe(self) -> dict[str, Any]:
        return {"kind": "llama_cpp", "model": self.model_path.name, "sha256": self.sha256}

    def chat(self, messages: list[Message], sampling: Sampling) -> str:
        check_messages(messages)
        with self._lock:
            # the prompt is evaluated from the last whole chunk it shares with the cache; the logits left
            # by the previous request's last sampled token are never sampled from (llama-cpp-python's
            # "full prompt already cached" shortcut)
            self._llm.align_next = True
            self._llm._requires_eval = True
            out = self._llm.create_chat_completion(
                messages=messages,
                temperature=float(sampling.temperature),
                top_p=float(sampling.top_p),
                max_tokens=int(sampling.max_tokens),
                seed=int(sampling.seed),
                stop=list(sampling.stop) or None,
            )
        content = out["choices"][0]["message"].get("content")
        return content if isinstance(content, str) else ""

    def close(self) -> None:
        with self._lock:
            self._finalizer()

    def __repr__(self) -> str:
        return f"LlamaCppBackend({self.model_path.name!r}, n_ctx={self.n_ctx}, n_threads={self.n_threads})"


_SERVERS: dict[tuple[str, int, int], Any] = {}
_SERVERS_LOCK = threading.Lock()


def stop_servers() -> None:
    """Stop the embedded servers that ``make_backend("server", ...)`` started (also done at exit)."""
    with _SERVERS_LOCK:
        for server in _SERVERS.values():
            server.stop()
        _SERVERS.clear()


atexit.register(stop_servers)

BACKEND_KINDS = ("local", "server", "openai")


def make_backend(kind: str, model: str | None = None, base_url: str | None = None, **kw: Any) -> LLMBackend:
    """A backend by kind.

    - ``"local"``: :class:`LlamaCppBackend` on ``local_model_path(model)`` (kw: ``n_ctx``, ``n_threads``);
    - ``"server"``: an embedded ``llama_cpp.server`` on 127.0.0.1 for ``local_model_path(model)``, started
      once per process and stopped at exit, reached through :class:`OpenAIBackend` (kw: ``n_ctx``,
      ``n_threads``, and OpenAIBackend's options);
    - ``"openai"``: :class:`OpenAIBackend` (``base_url``/``model`` from the arguments or ``OPENAI_BASE_URL``
      / ``OPENAI_MODEL``; the key from ``api_key`` or ``OPENAI_API_KEY``).
    """
    from .local_models import DEFAULT_MODEL, file_sha256, local_model_path

    if kind == "local":
        path = local_model_path(model or DEFAULT_MODEL)
        return LlamaCppBackend(path, **kw)
    if kind == "server":
        from .server import LlamaServer

        path = local_model_path(model or DEFAULT_MODEL)
        n_ctx, n_threads = int(kw.pop("n_ctx", 2048)), int(kw.pop("n_threads", 2))
        with _SERVERS_LOCK:
            key = (str(path), n_ctx, n_threads)
            server = _SERVERS.get(key)
            if server is None or not server.running:
                server = LlamaServer(path, n_ctx=n_ctx, n_threads=n_threads).start()
                _SERVERS[key] = server
        identity = {"kind": "llama_cpp_server", "model": path.name, "sha256": file_sha256(path)}
        return OpenAIBackend(server.base_url, server.model, api_key=server.api_key, identity=identity, **kw)
    if kind == "openai":
        if not (base_url or os.environ.get("OPENAI_BASE_URL")):
            raise ParameterError(
                "make_backend('openai'): give base_url= or set OPENAI_BASE_URL "
                "(e.g. http://127.0.0.1:8000/v1 for vLLM, http://127.0.0.1:11434/v1 for Ollama)"
            )
        if not (model or os.environ.get("OPENAI_MODEL")):
            raise ParameterError("make_backend('openai'): give model= or set OPENAI_MODEL")
        return OpenAIBackend(base_url, model, **kw)
    raise ParameterError(f"make_backend: unknown kind {kind!r}; known: {list(BACKEND_KINDS)}")
