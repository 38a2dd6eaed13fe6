"""Where cross-language code comes from: Debian binary packages and npm tarballs, fetched once and cached.

See ``shared/docs/offline.md`` ("Other languages, for cross-language out-of-distribution tests").
A :class:`ForeignSource` names a package and the part of it that is mined:

- ``kind="debian"``: ``apt-get download NAME`` (or ``NAME=VERSION`` when pinned) into
  ``<data>/sources/debian/debs/``; the version is the one in the ``.deb`` file name (Debian's
  archive keeps only the current version of a release, so pinning is optional and the version
  got is recorded). ``dpkg-deb -x`` unpacks it in a temporary folder and only the selected files
  are kept, under ``<data>/sources/debian/<package>/<selection>/files/`` with a
  ``manifest.json`` (written last: its presence marks a complete entry). ``root`` may name an
  archive inside the package (``.zip``, ``.tar.gz``, ``.tgz``): its members are selected instead
  (``openjdk-17-source`` ships the JDK sources as ``lib/src.zip``).
- ``kind="npm"``: ``npm pack NAME@VERSION`` into ``<data>/sources/npm/`` (version required);
  the tarball is read with :mod:`tarfile`, never unpacked or installed, and no package script runs.

Every external command runs with a timeout. When the registry cannot be reached the error
(:class:`~workbench.errors.WorkbenchError`) names the package, the exact command to run by hand
and the folder to put the result in, so a user without access can bring the file. With the files
present, opening a source runs no external command at all.
"""

from __future__ import annotations

import io
import os
import re
import shlex
import shutil
import subprocess
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote

from ..errors import ParameterError, WorkbenchError
from ..paths import data_dir as default_data_dir
from ..store import atomic_write_json, cache_key, read_json, sha256_file

KINDS = ("debian", "npm")
APT_TIMEOUT_S = 900
DPKG_TIMEOUT_S = 600
NPM_TIMEOUT_S = 600
DEBIAN_RELEASE = "bookworm"
"""The Debian release the default packages were chosen from (for the hand-download hint)."""

_ARCHIVE_SUFFIXES = (".zip", ".jar", ".tar.gz", ".tgz", ".tar.xz", ".tar.bz2", ".tar")
_PKG_RE = re.compile(r"^(@[a-z0-9][\w.-]*/)?[A-Za-z0-9][\w.+-]*$")


@dataclass(frozen=True)
class ForeignSource:
    """A package and the part of it that is mined.

    ``root``: folder (or archive file) inside the package; mined paths are relative to it. It may
    hold a glob (``gems/rack-*/lib``, for a version in a path; the last match is used).
    ``include``: path prefixes under ``root`` to keep (a file or folder; empty = everything).
    ``exclude``: folder names left out at any depth (``"testdata"``), or, ending in ``/``, path
    prefixes under ``root`` (``"cmd/"``). ``suffixes``: file endings kept (empty = every file).
    """

    kind: str
    package: str
    version: str | None = None
    root: str = ""
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    suffixes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ParameterError(f"foreign source {self.package!r}: kind must be one of {KINDS}, got {self.kind!r}")
        if not isinstance(self.package, str) or not _PKG_RE.match(self.package):
            raise ParameterError(f"foreign source: bad package name {self.package!r}")
        if self.kind == "npm" and not self.version:
            raise ParameterError(f"npm source {self.package!r}: pin a version (e.g. version='4.17.21')")
        for fld in ("include", "exclude", "suffixes"):
            value = getattr(self, fld)
            if isinstance(value, str):
                value = (value,)
            object.__setattr__(self, fld, tuple(str(v) for v in value))
        object.__setattr__(self, "root", self.root.strip("/"))
        object.__setattr__(self, "include", tuple(sorted({p.strip("/") for p in self.include if p.strip("/")})))

    @property
    def spec(self) -> str:
        """``debian:NAME[=VERSION]`` or ``npm:NAME@VERSION``."""
        if self.kind == "npm":
            return f"npm:{self.package}@{self.version}"
        return f"debian:{self.package}" + (f"={self.version}" if self.version else "")

    def key_params(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "package": self.package, "version": self.version, "root": self.root,
            "include": list(self.include), "exclude": sorted(self.exclude), "suffixes": sorted(self.suffixes),
        }

    def selects(self, rel: str) -> bool:
        """True when ``rel`` (relative to ``root``) is part of the source."""
        if self.include and not any(rel == p or rel.startswith(p + "/") for p in self.include):
            return False
        parts = PurePosixPath(rel).parts
        for ex in self.exclude:
            if ex.endswith("/"):
                if rel.startswith(ex):
                    return False
            elif ex in parts[:-1]:
                return False
        return not self.suffixes or rel.endswith(self.suffixes)


@dataclass
class OpenedSource:
    """The selected files of a fetched source, read from a folder or held in memory (npm)."""

    source: ForeignSource
    version: str
    location: str
    provenance: dict[str, Any] = field(default_factory=dict)
    _files: dict[str, bytes] | None = None
    _folder: Path | None = None

    def list_files(self) -> list[tuple[str, int]]:
        if self._files is not None:
            return sorted((k, len(v)) for k, v in self._files.items())
        assert self._folder is not None
        out = []
        for dirpath, _dirs, files in os.walk(self._folder):
            for fn in files:
                full = Path(dirpath) / fn
                if full.is_file() and not full.is_symlink():
                    out.append((full.relative_to(self._folder).as_posix(), full.stat().st_size))
        return sorted(out)

    def read(self, rel: str) -> bytes:
        if self._files is not None:
            return self._files[rel]
        assert self._folder is not None
        return (self._folder / rel).read_bytes()


def _root(data_dir: str | os.PathLike | None) -> Path:
    return Path(data_dir) if data_dir is not None else default_data_dir()


def _run(cmd: Sequence[str], timeout: float, cwd: Path | None = None) -> tuple[bool, str]:
    """Run a command; ``(ok, the last lines of its output)``; never raises for a failing command."""
    env = {**os.environ, "npm_config_update_notifier": "false", "npm_config_fund": "false",
           "npm_config_audit": "false", "DEBIAN_FRONTEND": "noninteractive"}
    try:
        proc = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    except FileNotFoundError:
        return False, f"'{cmd[0]}' is not installed here"
    except subprocess.TimeoutExpired:
        return False, f"no answer within {timeout:.0f} s"
    except OSError as exc:
        return False, str(exc)
    text = (proc.stderr or "") + "\n" + (proc.stdout or "")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and "Unknown user config" not in ln]
    errors = [ln for ln in lines if ln.startswith(("E:", "ERR", "npm error", "npm ERR", "dpkg-deb: error"))]
    return proc.returncode == 0, " | ".join((errors or lines)[-3:])


# ---------------------------------------------------------------- Debian


def debs_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """Where downloaded ``.deb`` files are kept (and where a hand-downloaded one goes)."""
    return _root(data_dir) / "sources" / "debian" / "debs"


def parse_deb_filename(name: str) -> tuple[str, str, str] | None:
    """``(package, version, architecture)`` of ``NAME_VERSION_ARCH.deb`` (``%3a`` is an epoch's ``:``)."""
    if not name.endswith(".deb"):
        return None
    parts = name[:-4].split("_")
    if len(parts) != 3:
        return None
    return parts[0], unquote(parts[1]), parts[2]


def find_deb(folder: Path, package: str, version: str | None = None) -> Path | None:
    """A cached ``.deb`` of ``package`` (of ``version`` when given; else the last by name)."""
    if not folder.is_dir():
        return None
    hits = []
    for p in folder.glob(f"{package}_*.deb"):
        parsed = parse_deb_filename(p.name)
        if parsed and parsed[0] == package and (version is None or parsed[1] == version):
            hits.append(p)
    return sorted(hits)[-1] if hits else None


def apt_download_command(package: str, version: str | None = None) -> list[str]:
    return ["apt-get", "download", f"{package}={version}" if version else package]


_APT_UPDATED: list[bool] = []  # apt-get update runs at most once per process


def fetch_debian(
    package: str, version: str | None = None, data_dir: str | os.PathLike | None = None,
    timeout: float = APT_TIMEOUT_S,
) -> Path:
    """The ``.deb`` of ``package`` in :func:`debs_dir`, downloaded with ``apt-get download`` unless there."""
    folder = debs_dir(data_dir)
    found = find_deb(folder, package, version)
    if found is not None:
        return found
    folder.mkdir(parents=True, exist_ok=True)
    cmd = apt_download_command(package, version)
    ok, detail = _run(cmd, timeout, cwd=folder)
    missing_lists = "Unable to locate" in detail or "has no installation candidate" in detail
    if not ok and missing_lists and hasattr(os, "geteuid") and os.geteuid() == 0 and not _APT_UPDATED:
        # a fresh machine has no package lists yet: fetch them once, then try again
        _APT_UPDATED.append(True)
        _run(["apt-get", "update", "-qq"], timeout, cwd=folder)
        ok, detail = _run(cmd, timeout, cwd=folder)
    found = find_deb(folder, package, version) if ok else None
    if found is None:
        hint = ""
        if "Unable to locate" in detail or "has no installation candidate" in detail:
            hint = " (the package lists may be missing: run `apt-get update` as root first)"
        raise WorkbenchError(
            f"could not download the Debian package {package!r}: {detail or 'apt-get gave no .deb'}{hint}.\n"
            f"Run by hand where Debian's archive is reachable, then build again:\n"
            f"  cd {shlex.quote(str(folder))} && {shlex.join(cmd)}\n"
            f"or bring {package}_<version>_<arch>.deb ({DEBIAN_RELEASE}) from another machine into {folder}/"
        )
    return found


def _ar_members(data: bytes) -> Iterator[tuple[str, bytes]]:
    if not data.startswith(b"!<arch>\n"):
        raise WorkbenchError("not a Debian package (no ar header)")
    pos = 8
    while pos + 60 <= len(data):
        header = data[pos : pos + 60]
        name = header[:16].decode("ascii", "replace").strip().rstrip("/")
        size = int(header[48:58].decode("ascii").strip())
        yield name, data[pos + 60 : pos + 60 + size]
        pos += 60 + size + (size % 2)


def _extract_deb_python(deb: Path, dest: Path) -> None:
    """Unpack a ``.deb`` without ``dpkg-deb`` (a machine that is not Debian): regular files only."""
    for name, blob in _ar_members(deb.read_bytes()):
        if not name.startswith("data.tar"):
            continue
        if name.endswith(".zst"):
            raise WorkbenchError(f"{deb}: its data is zstd-compressed; unpack it with dpkg-deb (Debian/Ubuntu)")
        with tarfile.open(fileobj=io.BytesIO(blob), mode="r:*") as tf:
            for m in tf:
                rel = PurePosixPath(m.name.lstrip("./"))
                if not m.isfile() or ".." in rel.parts or rel.is_absolute() or not rel.parts:
                    continue
                out = dest / rel
                out.parent.mkdir(parents=True, exist_ok=True)
                with tf.extractfile(m) as fh:  # type: ignore[union-attr]
                    out.write_bytes(fh.read())
        return
    raise WorkbenchError(f"{deb}: no data.tar member; the file is not a usable Debian package")


def extract_deb(deb: Path, dest: Path, timeout: float = DPKG_TIMEOUT_S) -> str:
    """``dpkg-deb -x DEB DEST`` (a Python reader when ``dpkg-deb`` is missing); returns the method used."""
    ok, detail = _run(["dpkg-deb", "-x", str(deb), str(dest)], timeout)
    if ok:
        return "dpkg-deb -x"
    if shutil.which("dpkg-deb") is None:
        _extract_deb_python(deb, dest)
        return "python ar+tarfile"
    raise WorkbenchError(
        f"could not unpack {deb}: {detail}. Delete the file and build again to download it anew."
    )


def _iter_archive(path: Path) -> Iterator[tuple[str, Callable[[], bytes]]]:
    """``(member path, reader)`` for the regular files of a zip or tar archive, in archive order
    (call the reader before moving on: a compressed tar is read as a stream)."""
    if path.name.endswith((".zip", ".jar")):
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if not info.is_dir():
                    yield info.filename, (lambda info=info: zf.read(info))
        return
    with tarfile.open(path, mode="r|*") as tf:
        for m in tf:
            if m.isfile():
                yield m.name, (lambda m=m: tf.extractfile(m).read())  # type: ignore[union-attr]


def _safe_rel(name: str) -> str | None:
    rel = PurePosixPath(name.replace("\\", "/").lstrip("/"))
    parts = [p for p in rel.parts if p not in (".", "")]
    if not parts or ".." in parts:
        return None
    return "/".join(parts)


def debian_tree_dir(source: ForeignSource, data_dir: str | os.PathLike | None = None) -> Path:
    """``<data>/sources/debian/<package>/<selection>/``: ``files/`` and ``manifest.json``."""
    slug = re.sub(r"[^A-Za-z0-9.+-]+", "_", source.root.rsplit("/", 1)[-1] or "all")
    return _root(data_dir) / "sources" / "debian" / source.package / f"{slug}-{cache_key(source.key_params(), 12)}"


def open_debian(source: ForeignSource, data_dir: str | os.PathLike | None = None) -> OpenedSource:
    """The selected files of a Debian package, fetched and unpacked on first use (cached)."""
    out = debian_tree_dir(source, data_dir)
    manifest_path = out / "manifest.json"
    if not manifest_path.exists():
        t0 = time.perf_counter()
        deb = fetch_debian(source.package, source.version, data_dir)
        package, version, arch = parse_deb_filename(deb.name)  # type: ignore[misc]
        out.parent.mkdir(parents=True, exist_ok=True)
        files_tmp = Path(tempfile.mkdtemp(prefix=".files-", dir=out.parent))
        n_files = n_bytes = 0
        try:
            with tempfile.TemporaryDirectory(prefix=".unpack-", dir=out.parent) as tmp:
                method = extract_deb(deb, Path(tmp))
                base = Path(tmp) / source.root if source.root else Path(tmp)
                if any(ch in source.root for ch in "*?["):  # e.g. gems/rack-*/lib: the version moves
                    matches = sorted(Path(tmp).glob(source.root))
                    base = matches[-1] if matches else base
                if base.is_file() and base.name.endswith(_ARCHIVE_SUFFIXES):
                    members: Iterator[tuple[str, Callable[[], bytes]]] = _iter_archive(base)
                elif base.is_dir():
                    members = (
                        (p.relative_to(base).as_posix(), p.read_bytes)
                        for p in sorted(base.rglob("*")) if p.is_file() and not p.is_symlink()
                    )
                else:
                    tops = sorted({p.relative_to(tmp).as_posix() for p in Path(tmp).glob("*/*/*")})[:12]
                    raise WorkbenchError(
                        f"{source.spec}: {source.root!r} is not in {deb.name} (it holds e.g. {tops})"
                    )
                for name, reader in members:
                    rel = _safe_rel(name)
                    if rel is None or not source.selects(rel):
                        continue
                    blob = reader()
                    dest = files_tmp / rel
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    dest.write_bytes(blob)
                    n_files += 1
                    n_bytes += len(blob)
            if not n_files:
                raise WorkbenchError(f"{source.spec}: no file of {deb.name} matches the selection {source.key_params()}")
            if (out / "files").exists():
                shutil.rmtree(out / "files")
            out.mkdir(parents=True, exist_ok=True)
            os.replace(files_tmp, out / "files")
        finally:
            if files_tmp.exists():
                shutil.rmtree(files_tmp, ignore_errors=True)
        atomic_write_json(manifest_path, {
            "spec": source.spec, "selection": source.key_params(), "package": package, "version": version,
            "architecture": arch, "deb_file": deb.name, "deb_bytes": deb.stat().st_size,
            "deb_sha256": sha256_file(deb), "fetch": shlex.join(apt_download_command(source.package, source.version)),
            "unpack": method, "n_files": n_files, "n_bytes": n_bytes,
            "unpack_s": round(time.perf_counter() - t0, 2),
        })
    manifest = read_json(manifest_path)
    return OpenedSource(
        source=source, version=manifest["version"], location=str(out / "files"),
        provenance={"kind": "debian", **{k: manifest[k] for k in (
            "spec", "package", "version", "architecture", "deb_file", "deb_bytes", "deb_sha256", "fetch",
            "n_files", "n_bytes")}},
        _folder=out / "files",
    )


# ---------------------------------------------------------------- npm


def npm_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """Where ``npm pack`` tarballs are kept (and where a hand-downloaded one goes)."""
    return _root(data_dir) / "sources" / "npm"


def npm_tarball_name(package: str, version: str) -> str:
    """``npm pack``'s file name: ``lodash-4.17.21.tgz``, ``scope-name-1.0.0.tgz`` for ``@scope/name``."""
    return f"{package.lstrip('@').replace('/', '-')}-{version}.tgz"


def npm_pack_command(package: str, version: str, dest: Path) -> list[str]:
    return ["npm", "pack", f"{package}@{version}", "--pack-destination", str(dest), "--json", "--ignore-scripts"]


def fetch_npm(
    package: str, version: str, data_dir: str | os.PathLike | None = None, timeout: float = NPM_TIMEOUT_S
) -> Path:
    """The tarball of ``package@version`` in :func:`npm_dir`, fetched with ``npm pack`` unless there."""
    folder = npm_dir(data_dir)
    path = folder / npm_tarball_name(package, version)
    if path.exists():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    cmd = npm_pack_command(package, version, folder)
    ok, detail = _run(cmd, timeout, cwd=folder)
    if not ok or not path.exists():
        bare = package.rsplit("/", 1)[-1]
        raise WorkbenchError(
            f"could not fetch the npm package {package}@{version}: {detail or 'npm pack gave no tarball'}.\n"
            f"Run by hand where the npm registry is reachable, then build again:\n"
            f"  {shlex.join(cmd[:5])}\n"
            f"or bring the tarball {bare}-{version}.tgz (what `npm pack` writes) from another machine and save it as {path}"
        )
    return path


def open_npm(source: ForeignSource, data_dir: str | os.PathLike | None = None) -> OpenedSource:
    """The selected files of an npm tarball, read into memory (the tarball is fetched once, cached)."""
    path = fetch_npm(source.package, source.version or "", data_dir)
    files: dict[str, bytes] = {}
    prefix = source.root + "/" if source.root else ""
    try:
        for name, reader in _iter_archive(path):
            rel = _safe_rel(name)
            if rel is None or not rel.startswith(prefix):
                continue
            rel = rel[len(prefix) :]
            if source.selects(rel):
                files[rel] = reader()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise WorkbenchError(f"{path}: not a readable npm tarball ({exc}); delete it and build again") from exc
    if not files:
        raise WorkbenchError(f"{source.spec}: no file of {path.name} matches the selection {source.key_params()}")
    return OpenedSource(
        source=source, version=source.version or "", location=str(path),
        provenance={
            "kind": "npm", "spec": source.spec, "package": source.package, "version": source.version,
            "tarball": path.name, "tarball_bytes": path.stat().st_size, "tarball_sha256": sha256_file(path),
            "fetch": shlex.join(npm_pack_command(source.package, source.version or "", npm_dir(data_dir))[:5]),
            "n_files": len(files), "n_bytes": sum(len(v) for v in files.values()),
        },
        _files=files,
    )


def open_foreign_source(source: ForeignSource, data_dir: str | os.PathLike | None = None) -> OpenedSource:
    """Fetch (once) and open a source: its selected files, version and provenance."""
    return open_debian(source, data_dir) if source.kind == "debian" else open_npm(source, data_dir)


# ---------------------------------------------------------------- the default sources


CROSSLANG_SOURCES: Mapping[str, tuple[ForeignSource, ...]] = {
    # the Go standard library; the toolchain (cmd/), vendored golang.org/x copies and testdata left out
    "go": (ForeignSource("debian", "golang-1.19-src", root="usr/share/go-1.19/src",
                         exclude=("cmd/", "vendor", "testdata"), suffixes=(".go",)),),
    # the JDK's sources ship as lib/src.zip; java.base only
    "java": (ForeignSource("debian", "openjdk-17-source", root="usr/lib/jvm/openjdk-17/lib/src.zip",
                           include=("java.base",), suffixes=(".java",)),),
    # Ruby's standard library (default gems in /usr/lib/ruby/gems, with their tests, left out)
    "ruby": (ForeignSource("debian", "libruby3.1", root="usr/lib/ruby/3.1.0", suffixes=(".rb",)),),
    "php": (
        ForeignSource("debian", "php-doctrine-orm", root="usr/share/php", include=("Doctrine/ORM",), suffixes=(".php",)),
        ForeignSource("debian", "php-phpseclib3", root="usr/share/php", include=("phpseclib3",), suffixes=(".php",)),
    ),
    "javascript": (
        # the one-file build; the per-method modules and fp/ wrappers are copies of it
        ForeignSource("npm", "lodash", "4.18.1", root="package", include=("lodash.js",)),
        # the ESM .js files; .cjs copies, fp/ wrappers and the locales left out
        ForeignSource("npm", "date-fns", "4.4.0", root="package", exclude=("fp", "locale"), suffixes=(".js",)),
        ForeignSource("npm", "axios", "1.21.1", root="package", include=("lib",), suffixes=(".js",)),
    ),
    # rxjs's TypeScript sources (dist/ holds cjs, esm, esm5 and types builds of the same code)
    "typescript": (ForeignSource("npm", "rxjs", "7.8.2", root="package", include=("src",), suffixes=(".ts",)),),
}
