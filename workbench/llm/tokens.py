"""The API tokens of the embedded llama.cpp servers this user runs (the project's rule: a server binds
127.0.0.1 and requires a random token). The process that starts a server registers its token here; an
:class:`~workbench.llm.backends.OpenAIBackend` for that URL then sends it, and the user's other
processes (a sweep's child, a notebook kernel) find it in a private 0700 folder, in a 0600 file, never
on a command line or in a shared file."""

from __future__ import annotations

import contextlib
import os
import stat
import threading
from pathlib import Path

from ..errors import LLMError

__all__ = ["token_dir", "register_server_token", "server_token"]

_SERVER_TOKENS: dict[str, str] = {}
_SERVER_TOKENS_LOCK = threading.Lock()


def token_dir() -> Path:
    """The folder where embedded servers leave their API tokens for this user's other processes (a
    sweep's child, a notebook kernel): ``$XDG_RUNTIME_DIR`` (else the temp dir) ``/workbench-<uid>/
    llm-tokens``, mode 0700. Refused (:class:`LLMError`) when it is a link, another user owns it, or
    others may read it."""
    import tempfile

    root = Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()) / f"workbench-{os.getuid()}"
    folder = root / "llm-tokens"
    for d in (root, folder):
        with contextlib.suppress(FileExistsError):
            d.mkdir(mode=0o700)
        st = d.lstat()
        if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() \
                or st.st_mode & 0o077:
            raise LLMError(f"{d}: not a private folder of this user (a link, another owner, or readable by "
                           "others); remove it, then start the server again")
    return folder


def _token_path(base_url: str) -> Path | None:
    """The token file of a loopback ``base_url`` (one per port), else None."""
    import httpx

    url = httpx.URL(base_url)
    if url.host not in ("127.0.0.1", "localhost", "::1") or url.port is None:
        return None
    return token_dir() / f"{url.port}.token"


def register_server_token(base_url: str, token: str | None, pid: int | None = None) -> None:
    """Remember (``token``) or forget (None) the API token of an embedded server this process started at
    ``base_url``: an :class:`OpenAIBackend` for that URL then sends it, whatever ``api_key`` it was given.

    With ``pid`` (the server's process) the token is also written, mode 0600, to this user's private
    :func:`token_dir`, so the user's other processes find it (:func:`server_token`) without it ever
    reaching a command line, an environment another user can read, or a world-readable file."""
    base_url = base_url.rstrip("/")
    with _SERVER_TOKENS_LOCK:
        if token:
            _SERVER_TOKENS[base_url] = token
        else:
            _SERVER_TOKENS.pop(base_url, None)
    path = _token_path(base_url)
    if path is None:
        return
    if not token:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return
    if pid is None:
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(f"{pid} {token}\n")
    os.replace(tmp, path)


def server_token(base_url: str) -> str | None:
    """The API token of the embedded server at ``base_url``: this process's own (registered), else the
    one its starting process left in :func:`token_dir` while that server runs; None when neither."""
    base_url = base_url.rstrip("/")
    with _SERVER_TOKENS_LOCK:
        if base_url in _SERVER_TOKENS:
            return _SERVER_TOKENS[base_url]
    try:
        path = _token_path(base_url)
    except LLMError:
        return None
    if path is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(fd) as fh:
        st = os.fstat(fh.fileno())
        if st.st_uid != os.getuid() or st.st_mode & 0o077:
            return None
        pid_text, _, token = fh.read().strip().partition(" ")
    try:
        os.kill(int(pid_text), 0)
    except (ValueError, ProcessLookupError):
        return None  # the server that wrote it is gone (killed before it could remove the file)
    except PermissionError:
        pass
    return token or None
