"""Atomic writes and cache keys.

Every artifact is written to a temporary file in the same folder and renamed into place, so a
reader never sees a half-written file, and a killed run leaves either the old file or the new one.
Parameters that change an artifact go into its cache key, so a re-run reuses what exists.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]
_TEMP = re.compile(r"\.wb-(?P<host>[0-9a-f]{6})-(?P<pid>[0-9]+)-[a-z0-9_]+(?:\.[A-Za-z0-9]+)*\.tmp")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()  # what open() would give a new file (mkstemp gives 0600)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_stale_temporaries(folder: str | os.PathLike, name: str | None = None) -> list[Path]:
    """Remove the temporary files that :func:`atomic_path` left in ``folder`` when its process was
    killed mid-write (``.<target>.wb-<host>-<pid>-<random><suffix>.tmp``, from this host, by a
    process that no longer runs); only those of target ``name`` when given. Nothing else is
    touched: not another host's temporaries, not a running writer's, not any other file.
    Returns the removed paths."""
    folder = Path(folder)
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return removed
    for entry in entries:
        n = entry.name
        if not (n.startswith(".") and n.endswith(".tmp")) or not entry.is_file(follow_symlinks=False):
            continue
        at = n.rfind(".wb-")
        m = _TEMP.fullmatch(n, at) if at > 1 else None
        if m is None or (name is not None and n[1:at] != name):
            continue
        if m["host"] != _HOST or _alive(int(m["pid"])):
            continue
        with contextlib.suppress(FileNotFoundError):
            os.unlink(entry.path)
            removed.append(Path(entry.path))
    return removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path`` (atomic on POSIX)
    with the permissions a plain ``open`` would give it. Temporaries of ``path`` left by a killed
    writer are removed first (:func:`remove_stale_temporaries`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent, path.name)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.wb-{_HOST}-{os.getpid()}-", suffix=suffix + ".tmp",
                               dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():
            with open(tmp_path, "rb") as fh:
                os.fsync(fh.fileno())
            os.chmod(tmp_path, _FILE_MODE)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def build_lock(folder: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on the cache entry ``folder`` while the block builds it.

    Two processes that miss the same entry at once (two notebooks of a sweep, two test workers) would
    otherwise both build it; with the lock the second waits, then finds the entry complete (the caller
    checks again inside the block). An advisory ``flock`` on ``<folder>.lock``: the system releases it
    when its holder exits or is killed, so a crash leaves no stale lock (the small lock file stays).
    Where ``fcntl`` is missing (Windows) the block runs unlocked, as before."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    with open(folder.parent / f"{folder.name}.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def _default(o: Any) -> Any:
    if hasattr(o, "item"):  # numpy scalars
        return o.item()
    if isinstance(o, (set, tuple)):
        return list(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_default) + "\n")


def atomic_write_yaml(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, yaml.safe_dump(json.loads(json.dumps(obj, default=_default)), sort_keys=False))


def atomic_write_parquet(path: str | os.PathLike, df: Any) -> Path:
    """Write a pandas DataFrame to parquet atomically."""
    with atomic_path(path, suffix=".parquet") as tmp:
        df.to_parquet(tmp, index=False)
    return Path(path)


def atomic_write_arrow(path: str | os.PathLike, df: Any) -> Path:
    """Write a pandas DataFrame atomically as one record batch of an Arrow IPC stream, text as
    ``large_string``: the file ``datasets.Dataset.from_file`` opens, and that :func:`read_arrow_frame`
    maps into memory without a copy (one batch, so a row lookup never joins chunks)."""
    import pyarrow as pa

    table = pa.Table.from_pandas(df, preserve_index=False)
    schema = pa.schema([
        pa.field(f.name, pa.large_string()) if pa.types.is_string(f.type) else f for f in table.schema
    ], metadata=table.schema.metadata)
    table = table.cast(schema).combine_chunks()
    with atomic_path(path, suffix=".arrow") as tmp:
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table, max_chunksize=max(len(table), 1))
    return Path(path)


def read_arrow_frame(path: str | os.PathLike) -> Any:
    """The DataFrame of an :func:`atomic_write_arrow` file, memory-mapped: its text columns are views of
    the file (pandas' Arrow-backed strings), so opening a million pairs costs megabytes, not gigabytes;
    pages are read from disk when a row is used. The file must not be rewritten in place (atomic
    writes replace it, which leaves an open mapping valid)."""
    import pyarrow as pa

    with pa.memory_map(str(path)) as source:
        table = pa.ipc.open_stream(source).read_all()
    return table.to_pandas()


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def cache_key(params: Any, length: int = 16) -> str:
    """A short stable hash of JSON-serialisable parameters (key order does not matter)."""
    blob = json.dumps(params, sort_keys=True, default=_default, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:length]


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
