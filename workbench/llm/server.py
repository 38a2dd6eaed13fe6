"""An embedded OpenAI-compatible server: ``python -m llama_cpp.server`` on 127.0.0.1 for a local GGUF.

:class:`LlamaServer` is a context manager: it starts the server on a free port (always 127.0.0.1),
waits until ``/v1/models`` answers, exposes ``base_url`` (``http://127.0.0.1:PORT/v1``) and ``model``
(the id the server reports), and stops the process and its children on exit, also when the body
raises. The server's output goes to a log file (a pipe could fill up and block it); its tail is in
every startup error.

Access: the server binds 127.0.0.1 only (``HOST`` / ``PORT`` in the environment, which
``llama_cpp.server`` lets override ``--host`` / ``--port``, are pinned in the child's environment) and
requires a random API token (``api_key``, made per server unless given) on every request, so another
local user or a web page cannot use it. The token reaches the child through its environment
(``API_KEY``), not its command line, which every local user can read; it is registered with
:func:`~workbench.llm.tokens.register_server_token` so an ``OpenAIBackend`` for ``base_url`` sends it,
in this process and in this user's others (a sweep's child, a notebook kernel), which read it from a
mode-0600 file in a private folder (:func:`~workbench.llm.tokens.token_dir`) while the server runs.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

from ..errors import LLMError
from ..threads import thread_cap
from .llamacpp import openmp_environment
from .tokens import register_server_token


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tail(path: Path, n: int = 2000) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - n))
            return fh.read().decode("utf-8", "replace").strip()
    except OSError:
        return "(no log)"


class LlamaServer:
    """``python -m llama_cpp.server --model FILE --host 127.0.0.1 --port PORT`` as a context manager."""

    def __init__(
        self,
        model_path: str | os.PathLike,
        port: int | None = None,
        n_ctx: int = 2048,
        n_threads: int = 2,
        startup_timeout: float = 180.0,
        log_path: str | os.PathLike | None = None,
        extra_args: tuple[str, ...] = (),
        api_key: str | None = None,
    ) -> None:
        self.model_path = Path(model_path)
        if not self.model_path.is_file():
            raise LLMError(f"LlamaServer: {self.model_path}: no such model file")
        self.requested_port = port
        self.port: int | None = None
        self.n_ctx, self.n_threads = int(n_ctx), thread_cap(int(n_threads))
        self.startup_timeout = float(startup_timeout)
        self.extra_args = tuple(extra_args)
        self.api_key = api_key or secrets.token_urlsafe(24)  # never printed, logged or put in a command line
        self._own_log = log_path is None
        self.log_path = Path(log_path) if log_path else None
        self.process: subprocess.Popen | None = None
        self.model: str | None = None
        self.startup_seconds: float | None = None

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise LLMError("LlamaServer: not started (use it as a context manager or call start())")
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def command(self, port: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "workbench.llm.server_main",  # llama_cpp.server, loaded without the extra buffer types (AMX)
            "--model",
            str(self.model_path),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            str(self.n_ctx),
            "--n_threads",
            str(self.n_threads),
            "--n_threads_batch",  # llama_cpp.server's default is every core, whatever the thread cap
            str(self.n_threads),
            *self.extra_args,
        ]

    def start(self) -> LlamaServer:
        """Start the server and wait until it answers; raise LLMError with the log's tail if it does not."""
        if self.running:
            return self
        attempts = 1 if self.requested_port is not None else 3  # a free port can be taken before bind
        for attempt in range(attempts):
            try:
                self._start_once(self.requested_port or free_port())
                return self
            except LLMError:
                if attempt == attempts - 1 or "address already in use" not in _tail(self.log_path).lower():
                    raise
        return self

    def _start_once(self, port: int) -> None:
        import httpx

        if self._own_log:
            fd, name = tempfile.mkstemp(prefix=f"llama-server-{self.model_path.stem}-", suffix=".log")
            os.close(fd)
            self.log_path = Path(name)
        assert self.log_path is not None
        self.port = port
        t0 = time.perf_counter()
        env = openmp_environment(dict(os.environ))
        env.update(HOST="127.0.0.1", PORT=str(port), API_KEY=self.api_key)  # uvicorn prefers HOST / PORT
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command(port),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=env,
            )
        atexit.register(self.stop)
        register_server_token(self.base_url, self.api_key, pid=self.process.pid)
        url = f"http://127.0.0.1:{port}/v1/models"
        auth = {"Authorization": f"Bearer {self.api_key}"}
        deadline = time.monotonic() + self.startup_timeout
        while True:
            code = self.process.poll()
            if code is not None:
                self.stop()
                raise LLMError(
                    f"llama_cpp.server for {self.model_path.name} exited with code {code} before "
                    f"answering at {url}; log {self.log_path}:\n{_tail(self.log_path)}"
                )
            try:
                resp = httpx.get(url, headers=auth, timeout=2.0, trust_env=False)
                if resp.status_code == 200:
                    data = resp.json().get("data") or [{}]
                    self.model = data[0].get("id") or str(self.model_path)
                    self.startup_seconds = time.perf_counter() - t0
                    return
            except (httpx.TransportError, ValueError):
                pass
            if time.monotonic() > deadline:
                self.stop(keep_log=True)
                raise LLMError(
                    f"llama_cpp.server for {self.model_path.name} did not answer at {url} within "
                    f"{self.startup_timeout:.0f} s; log {self.log_path}:\n{_tail(self.log_path)}"
                )
            time.sleep(0.25)

    def stop(self, timeout: float = 10.0, keep_log: bool = False) -> None:
        """Stop the server's process group (SIGTERM, then SIGKILL after ``timeout`` s); idempotent.

        A log file this object created is removed unless ``keep_log`` or the server had exited by itself."""
        proc, self.process = self.process, None
        if proc is None:
            return
        if self.port is not None:
            register_server_token(self.base_url, None)
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)
        exited_by_itself = proc.poll() is not None
        if not exited_by_itself:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(
                    proc.pid, signal.SIGTERM
                )  # its own session: the group is the server and its children
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        with contextlib.suppress(ProcessLookupError):  # children that outlived the leader
            os.killpg(proc.pid, signal.SIGKILL)
        if (
            self._own_log and not (keep_log or exited_by_itself) and self.log_path is not None
        ):  # keep the logs of crashes
            self.log_path.unlink(missing_ok=True)

    def __enter__(self) -> LlamaServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.base_url if self.port is not None else "not started"
        return f"LlamaServer({self.model_path.name!r}, {where})"
