"""Where mined code comes from: the running Python's standard library, and pinned distributions.

A source is named by a string (see ``shared/docs/offline.md``, "Real code corpora that can be
mined offline"):

- ``"stdlib"``: the running interpreter's ``sysconfig`` stdlib folder; version = the Python version.
- ``"name==version"``: that exact version of a distribution. Read from the running environment
  when that version is installed (``importlib.metadata``), otherwise from a wheel fetched with
  ``pip download --no-deps --only-binary=:all: name==version`` into ``<data>/wheels`` (cached)
  and read straight from the zip: nothing is installed, imported or executed.
- Either may end in ``:prefix1,prefix2`` to keep only files under those top-level paths
  (``"stdlib:json,email"``, ``"networkx==3.6.1:networkx/algorithms"``); handy for small tests.

A source lists ``(relative_path, size)`` and reads bytes; :func:`iter_source_files` applies the
path filters of :mod:`workbench.corpus.mining` and yields ``(relative_path, bytes | None)``
(``None`` for files over the size limit, which are not read); :func:`iter_folder_files` does the same
for a ``dir:`` source in every language it mines, yielding each file's language too.
"""

from __future__ import annotations

import importlib.metadata as importlib_metadata
import os
import platform
import re
import shlex
import subprocess
import sys
import sysconfig
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import ParameterError, WorkbenchError
from ..paths import data_dir as default_data_dir
from ..store import sha256_file
from .foreign_mining import LANGUAGES as FOREIGN_LANGUAGES
from .foreign_mining import MAX_FOREIGN_FILE_BYTES, language_for_path, skip_foreign_path_reason
from .mining import MAX_FILE_BYTES, STDLIB_SKIP_DIRS, skip_path_reason

_SPEC_RE = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:==(?P<version>[A-Za-z0-9.+!_-]+))?(?::(?P<sel>[^:]+))?$"
)


def canonical_name(name: str) -> str:
    """PEP 503 normalised distribution name (``Scikit_Learn`` -> ``scikit-learn``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class SourceRef:
    """A parsed source string: ``name`` is canonical (or ``"stdlib"``), ``version`` pinned.

    ``kind``: ``"mined"`` (the standard library, a distribution), ``"dir"`` (a local folder, mined)
    or ``"pairs"`` (a pair dataset, read; :mod:`workbench.corpus.imported`); the last two carry their
    absolute ``location``, a digest of their content as ``version`` and, for pairs, the column
    ``mapping``. ``languages``: the languages a ``dir:`` source mines (empty: every one of
    :data:`FOLDER_LANGUAGES`); the other kinds mine Python only."""

    spec: str
    name: str
    version: str
    prefixes: tuple[str, ...] = ()
    kind: str = "mined"
    location: str = ""
    mapping: tuple[tuple[str, str], ...] = ()
    languages: tuple[str, ...] = ()

    @property
    def is_stdlib(self) -> bool:
        return self.name == "stdlib"

    def selects(self, relpath: str) -> bool:
        """True when ``relpath`` is under one of the selected prefixes (or no prefix is given)."""
        if not self.prefixes:
            return True
        return any(relpath == p or relpath == p + ".py" or relpath.startswith(p + "/") for p in self.prefixes)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "data"


FOLDER_LANGUAGES = ("python", *FOREIGN_LANGUAGES)
"""What a ``dir:`` source mines: Python with ``ast`` (:mod:`~workbench.corpus.mining`), the others with
tree-sitter (:mod:`~workbench.corpus.foreign_mining`)."""


def folder_languages(text: str, where: str) -> tuple[str, ...]:
    """``"languages=go,python"`` (the part after ``#`` of a ``dir:`` source) -> ``("go", "python")``,
    in :data:`FOLDER_LANGUAGES` order; ``""`` -> ``()`` (every language)."""
    text = text.strip()
    if not text:
        return ()
    key, sep, value = text.partition("=")
    names = [v.strip().lower() for v in value.split(",") if v.strip()]
    if key.strip() != "languages" or not sep or not names:
        raise ParameterError(f"{where}: after '#' a folder takes 'languages=LANG[,LANG...]', not {text!r}")
    unknown = [n for n in names if n not in FOLDER_LANGUAGES]
    if unknown:
        raise ParameterError(f"{where}: unknown language(s) {unknown}; known: {list(FOLDER_LANGUAGES)}")
    return tuple(lang for lang in FOLDER_LANGUAGES if lang in names)


def _local_source(spec: str) -> SourceRef:
    """``"dir:PATH[#languages=LANG,...]"`` or ``"pairs:PATH[#mapping]"`` (:mod:`workbench.corpus.imported`)."""
    from ..paths import user_path
    from .imported import folder_digest, parse_mapping, path_digest

    kind, _, rest = spec.partition(":")
    if kind == "pairs":
        target, _, mapping_text = rest.partition("#")
    elif "#" in rest and not user_path(rest.strip()).exists():  # a folder's name may hold a '#'
        target, _, mapping_text = rest.rpartition("#")
    else:
        target, mapping_text = rest, ""

    path = user_path(target.strip()) if target.strip() else Path()
    if not target.strip() or not path.exists():
        raise ParameterError(f"source {spec!r}: {path} does not exist (a relative path is looked up in the current "
                             "folder, the project's root and the data folder)")
    path = path.resolve()
    if kind == "dir":
        if not path.is_dir():
            raise ParameterError(f"source {spec!r}: {path} is not a folder (a pair file is 'pairs:{path}')")
        languages = folder_languages(mapping_text, f"source {spec!r}")
        canon = f"dir:{path}" + (f"#languages={','.join(languages)}" if languages else "")
        return SourceRef(spec=canon, name=f"dir-{_slug(path.name)}", version=folder_digest(path)[:16],
                         kind="dir", location=str(path), languages=languages)
    mapping = parse_mapping(mapping_text, f"source {spec!r}") if mapping_text.strip() else {}
    canon = f"pairs:{path}" + ("#" + ",".join(f"{k}={v}" for k, v in sorted(mapping.items())) if mapping else "")
    return SourceRef(spec=canon, name=f"pairs-{_slug(path.name)}", version=path_digest(path)[:16], kind="pairs",
                     location=str(path), mapping=tuple(sorted(mapping.items())))


def parse_source(spec: str) -> SourceRef:
    """Parse ``"stdlib"``, ``"name==version"`` (optionally ``":prefix,..."``), ``"dir:PATH"`` or
    ``"pairs:PATH[#mapping]"``; raise ParameterError otherwise."""
    if isinstance(spec, str) and spec.strip().startswith(("dir:", "pairs:")):
        return _local_source(spec.strip())
    m = _SPEC_RE.match(spec.strip()) if isinstance(spec, str) else None
    if not m:
        raise ParameterError(
            f"source {spec!r}: expected 'stdlib' or 'name==version' (optionally ':prefix1,prefix2'), "
            "'dir:PATH' (a folder of code) or 'pairs:PATH' (a pair dataset)"
        )
    name, version, sel = m.group("name"), m.group("version"), m.group("sel")
    prefixes = tuple(sorted({p.strip().strip("/") for p in sel.split(",") if p.strip()})) if sel else ()
    if name.lower() == "stdlib":
        pyver = platform.python_version()
        if version and version != pyver:
            raise ParameterError(
                f"source {spec!r}: the standard library mined is the running Python's ({pyver})"
            )
        return SourceRef(spec=spec.strip(), name="stdlib", version=pyver, prefixes=prefixes)
    if not version:
        raise ParameterError(f"source {spec!r}: pin a version, e.g. '{name}==1.2.3'")
    return SourceRef(spec=spec.strip(), name=canonical_name(name), version=version, prefixes=prefixes)


@dataclass
class Source:
    """An opened source. ``origin`` is ``"stdlib"``, ``"installed"`` or ``"wheel"``."""

    ref: SourceRef
    origin: str
    location: str
    skipped: Counter = field(default_factory=Counter)

    def list_files(self) -> list[tuple[str, int]]:  # pragma: no cover - abstract
        raise NotImplementedError

    def read(self, relpath: str) -> bytes:  # pragma: no cover - abstract
        raise NotImplementedError

    def provenance(self) -> dict[str, Any]:
        return {
            "spec": self.ref.spec,
            "source": self.ref.name,
            "version": self.ref.version,
            "origin": self.origin,
            "location": self.location,
            "python_version": platform.python_version(),
        }


@dataclass
class FolderSource(Source):
    """A local folder or git checkout (``dir:PATH``): files read as bytes, never imported or executed.

    Symbolic links (files and folders) are never followed, so a link loop cannot trap the walk;
    each is counted under ``path:symlink``. ``.git`` and ``__pycache__`` are not walked.
    """

    def _prune(self, folder: str) -> bool:
        """True for a folder name that is not walked."""
        return folder in (".git", "__pycache__")

    def list_files(self) -> list[tuple[str, int]]:
        root = Path(self.location)
        out: list[tuple[str, int]] = []
        for dirpath, dirnames, filenames in os.walk(root):
            keep = []
            for d in sorted(dirnames):
                if self._prune(d):
                    continue
                if (Path(dirpath) / d).is_symlink():  # never followed (a link can loop): counted
                    self.skipped["path:symlink"] += 1
                else:
                    keep.append(d)
            dirnames[:] = keep
            rel_dir = Path(dirpath).relative_to(root).as_posix()
            for fn in sorted(filenames):
                full = Path(dirpath) / fn
                if full.is_symlink():
                    self.skipped["path:symlink"] += 1
                elif full.is_file():
                    out.append((fn if rel_dir == "." else f"{rel_dir}/{fn}", full.stat().st_size))
        return sorted(out)

    def read(self, relpath: str) -> bytes:
        return (Path(self.location) / relpath).read_bytes()


@dataclass
class StdlibSource(FolderSource):
    """The running interpreter's standard library (``sysconfig.get_paths()["stdlib"]``), walked as a
    folder with :data:`~workbench.corpus.mining.STDLIB_SKIP_DIRS` pruned (``site-packages`` can be huge),
    one count per pruned folder under ``path:stdlib_excluded``."""

    def _prune(self, folder: str) -> bool:
        if folder in STDLIB_SKIP_DIRS:
            if folder != "__pycache__":
                self.skipped["path:stdlib_excluded"] += 1
            return True
        return False


def _through_symlink(root: Path, relpath: str) -> bool:
    """True when ``root / relpath`` or a folder on the way to it below ``root`` is a symbolic link."""
    at = root
    for part in PurePosixPath(relpath).parts:
        at = at / part
        if at.is_symlink():
            return True
    return False


@dataclass
class InstalledSource(Source):
    """A distribution installed in the running environment, read through its RECORD.

    As for :class:`StdlibSource`, symbolic links (a listed file, or a folder on its way below the
    installation root) are never followed; each such file is counted under ``path:symlink``.
    """

    dist: Any = None

    def list_files(self) -> list[tuple[str, int]]:
        root = Path(self.location)
        out = set()
        for f in self.dist.files or []:
            rel = f.as_posix()
            if rel.startswith(".."):
                continue
            if _through_symlink(root, rel):
                self.skipped["path:symlink"] += 1
                continue
            full = root / rel
            if not full.is_file():
                continue
            out.add((rel, full.stat().st_size))
        return sorted(out)

    def read(self, relpath: str) -> bytes:
        root = Path(self.location)
        if _through_symlink(root, relpath):
            raise WorkbenchError(f"{root / relpath}: a symbolic link; sources never follow links")
        return (root / relpath).read_bytes()


@dataclass
class WheelSource(Source):
    """A wheel file read as a zip archive (never installed or extracted)."""

    _zip: zipfile.ZipFile | None = None

    def _zf(self) -> zipfile.ZipFile:
        if self._zip is None:
            try:
                self._zip = zipfile.ZipFile(self.location)
            except (zipfile.BadZipFile, OSError) as exc:
                raise WorkbenchError(
                    f"{self.location}: not a readable wheel ({exc}); delete it and build again to re-download"
                ) from exc
        return self._zip

    def list_files(self) -> list[tuple[str, int]]:
        return sorted((i.filename, i.file_size) for i in self._zf().infolist() if not i.is_dir())

    def read(self, relpath: str) -> bytes:
        return self._zf().read(relpath)

    def provenance(self) -> dict[str, Any]:
        return {**super().provenance(), "wheel_sha256": sha256_file(self.location)}


def stdlib_dir() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def same_version(a: str, b: str) -> bool:
    """``1.0`` == ``1.0.0`` (PEP 440 via ``packaging`` when available, else exact strings)."""
    if a == b:
        return True
    try:
        from packaging.version import InvalidVersion, Version
    except ImportError:  # pragma: no cover - packaging ships with pip's environments
        return False
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return False


def find_wheel(wheels_dir: Path, name: str, version: str) -> Path | None:
    """A cached wheel of exactly ``name==version`` in ``wheels_dir`` (pure-python ``none-any`` preferred)."""
    if not wheels_dir.is_dir():
        return None
    want = canonical_name(name)
    hits = []
    for p in wheels_dir.glob("*.whl"):
        parts = p.name[:-4].split("-")
        if len(parts) >= 5 and canonical_name(parts[0]) == want and same_version(parts[1], version):
            hits.append(p)
    hits.sort(key=lambda p: (not p.name.endswith("-none-any.whl"), p.name))
    return hits[0] if hits else None


def pip_download_command(name: str, version: str, wheels_dir: Path) -> list[str]:
    return [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", f"{name}=={version}", "-d", str(wheels_dir),
    ]


def download_wheel(name: str, version: str, wheels_dir: Path) -> Path:
    """The wheel of ``name==version`` in ``wheels_dir``, downloaded with pip unless already there."""
    found = find_wheel(wheels_dir, name, version)
    if found is not None:
        return found
    wheels_dir.mkdir(parents=True, exist_ok=True)
    cmd = pip_download_command(name, version, wheels_dir)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        lines = (proc.stderr or proc.stdout or "").strip().splitlines()
        detail = [ln for ln in lines if ln.startswith("ERROR")][-2:] or lines[-2:]
        ok = proc.returncode == 0
    except (OSError, subprocess.TimeoutExpired) as exc:
        detail, ok = [str(exc)], False
    found = find_wheel(wheels_dir, name, version) if ok else None
    if found is None:
        raise WorkbenchError(
            f"could not fetch the wheel of {name}=={version} "
            f"({' | '.join(detail) or 'pip gave no wheel'}). Run by hand, then build again:\n  "
            + shlex.join(cmd)
        )
    return found


def open_source(
    spec: str | SourceRef, data_dir: str | os.PathLike | None = None, prefer_installed: bool = True
) -> Source:
    """Open a source for reading: stdlib, the installed distribution if its version matches, else a wheel."""
    ref = parse_source(spec) if isinstance(spec, str) else spec
    if ref.kind == "dir":
        return FolderSource(ref=ref, origin="folder", location=ref.location)
    if ref.kind != "mined":
        raise ParameterError(f"source {ref.spec!r}: a pair dataset is read, not opened as files")
    if ref.is_stdlib:
        return StdlibSource(ref=ref, origin="stdlib", location=str(stdlib_dir()))
    if prefer_installed:
        try:
            dist = importlib_metadata.distribution(ref.name)
        except importlib_metadata.PackageNotFoundError:
            dist = None
        if dist is not None and same_version(dist.version, ref.version) and dist.files:
            return InstalledSource(ref=ref, origin="installed", location=str(dist.locate_file("")), dist=dist)
    wheels = Path(data_dir if data_dir is not None else default_data_dir()) / "wheels"
    wheel = download_wheel(ref.name, ref.version, wheels)
    return WheelSource(ref=ref, origin="wheel", location=str(wheel))


def iter_source_files(
    source: Source, stats: Counter | None = None, max_bytes: int = MAX_FILE_BYTES, progress: bool = False
) -> Iterator[tuple[str, bytes | None]]:
    """Yield ``(relative_path, data)`` for each file the path filters keep, in sorted path order.

    ``data`` is None for a file over ``max_bytes`` (not read). Skipped paths are counted in
    ``stats`` under ``path:<reason>``; unreadable entries under ``file:read_error``.
    """
    stats = stats if stats is not None else Counter()
    files = source.list_files()
    stats.update(source.skipped)
    chosen = []
    selected = 0
    for rel, size in files:
        if not source.ref.selects(rel):
            continue
        selected += 1
        why = skip_path_reason(rel, stdlib=source.ref.is_stdlib)
        if why is not None:
            stats[why] += 1
        else:
            chosen.append((rel, size))
    if source.ref.prefixes and not selected:
        raise ParameterError(
            f"source {source.ref.spec!r}: no file of {source.location} lies under {list(source.ref.prefixes)}"
        )
    it: Any = chosen
    if progress:
        from workbench.progress import tqdm

        it = tqdm(chosen, desc=f"mining {source.ref.spec}", unit="file", leave=False)
    for rel, size in it:
        if size > max_bytes:
            yield rel, None
            continue
        try:
            data = source.read(rel)
        except (OSError, zipfile.BadZipFile, KeyError, ValueError, EOFError, zlib.error):
            stats["file:read_error"] += 1
            continue
        yield rel, data


def iter_folder_files(
    src: Source, stats: Counter, progress: bool = False
) -> Iterator[tuple[str, str, bytes | None]]:
    """``(language, relative_path, data)`` of each file of a ``dir:`` source that one of its languages
    mines, in path order: ``.py`` files under :func:`~workbench.corpus.mining.skip_path_reason`'s rules,
    the tree-sitter languages' under :func:`~workbench.corpus.foreign_mining.skip_foreign_path_reason`'s
    (tests, vendored code, build copies, declarations). ``data`` is None for a file over the size
    limit of its miner. Skipped paths are counted under ``path:<reason>``; a file of a known language
    the source does not mine under ``path:language_not_chosen``."""
    chosen_languages = src.ref.languages or FOLDER_LANGUAGES
    files = src.list_files()
    stats.update(src.skipped)
    chosen: list[tuple[str, str, int]] = []
    for rel, size in files:
        language = "python" if rel.endswith(".py") else language_for_path(rel)
        if language is None:
            stats["path:other_language"] += 1
            continue
        if language not in chosen_languages:
            stats["path:language_not_chosen"] += 1
            continue
        why = skip_path_reason(rel) if language == "python" else skip_foreign_path_reason(rel)
        if why is not None:
            stats[why] += 1
        else:
            chosen.append((language, rel, size))
    it: Any = chosen
    if progress:
        from ..progress import tqdm

        it = tqdm(chosen, desc=f"mining {src.ref.spec}", unit="file", leave=False)
    for language, rel, size in it:
        if size > (MAX_FILE_BYTES if language == "python" else MAX_FOREIGN_FILE_BYTES):
            yield language, rel, None
            continue
        try:
            data = src.read(rel)
        except OSError:
            stats["file:read_error"] += 1
            continue
        yield language, rel, data
