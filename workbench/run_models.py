"""The models a run has trained: every finished model folder under ``<run>/models/``.

The analysis chapters (05, 06) compare models produced earlier in the same run folder. A model is
*finished* when its folder holds ``model/workbench_encoder.json`` (written last by
:meth:`~workbench.models.BiEncoder.save`, atomically). Each chapter keeps its models under its
own folder: ``quickstart`` (00), ``cornstack/<arm>`` (01), ``datamap`` (03), ``select/<variant>``
(04). The pre-trained starting point is listed too, as ``zero-shot``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from .errors import WorkbenchError
from .store import read_json

__all__ = ["CHAPTERS", "NoTrainedModelsError", "default_pair", "pick", "require_trained", "trained_models"]

#: first folder under models/ -> the chapter that trains it
CHAPTERS = {
    "quickstart": "00_quickstart",
    "cornstack": "01_data_curation",
    "datamap": "03_data_maps",
    "select": "04_training",
    "augment": "02_llm_augmentation",
}
COLUMNS = ["name", "label", "chapter", "seed", "path", "train_pairs", "train_seconds", "eval_dir", "OOD avg", "id_test"]
_SLUG = re.compile(r"^(?P<subset>.+?)(?P<mixup>-mixup)?-seed(?P<seed>\d+)$")


class NoTrainedModelsError(WorkbenchError, LookupError):
    """The run folder holds no finished model; the message says which chapter to run first."""


def _label(parts: tuple[str, ...]) -> tuple[str, int | None]:
    from .selection import SUBSETS, Variant

    head = parts[0]
    if head == "select" and len(parts) == 2 and (m := _SLUG.match(parts[1])):
        subset = m["subset"]
        if subset.replace("_", "+") in SUBSETS:
            subset = subset.replace("_", "+")
        return Variant(subset, bool(m["mixup"]), int(m["seed"])).label, int(m["seed"])
    if head == "augment" and len(parts) == 2 and (m := _SLUG.match(parts[1])) and not m["mixup"]:
        from .augment.comparison import LABELS

        return LABELS.get(m["subset"], m["subset"]), int(m["seed"])
    if head == "cornstack" and len(parts) == 2:
        return f"CoRNStack: {parts[1]}", None
    if head == "datamap":
        return "data-map run", None
    if head == "quickstart":
        return "quickstart fine-tune", None
    return "/".join(parts), None


def _eval_summary(folder: Path) -> tuple[Path | None, float | None, float | None]:
    """The newest cached evaluation of a model folder, with its OOD average and id_test MRR."""
    found = sorted(folder.glob("eval-*/summary.parquet"), key=lambda p: p.stat().st_mtime)
    if not found:
        return None, None, None
    summary = pd.read_parquet(found[-1])
    mrr = dict(zip(summary["task"], summary["MRR"]))
    ood = [v for t, v in mrr.items() if t != "id_test"]
    return found[-1].parent, (round(sum(ood) / len(ood), 2) if ood else None), mrr.get("id_test")


def trained_models(run_dir: str | Path, base_model: str | None = "minilm") -> pd.DataFrame:
    """One row per finished model of the run (``name`` is its folder under ``models/``), sorted by
    chapter then name; ``base_model`` adds the pre-trained starting point as ``zero-shot``.

    Columns: name, label, chapter, seed, path (the model folder), train_pairs, train_seconds,
    eval_dir / OOD avg / id_test (the newest cached evaluation of the suite, when there is one).
    """
    root = Path(run_dir) / "models"
    rows = []
    if base_model:
        rows.append({"name": "zero-shot", "label": "zero-shot", "chapter": "pre-trained", "seed": None,
                     "path": str(base_model), "train_pairs": 0, "train_seconds": 0.0,
                     "eval_dir": None, "OOD avg": None, "id_test": None})
    for marker in sorted(root.glob("**/model/workbench_encoder.json")) if root.is_dir() else []:
        model_dir = marker.parent
        folder = model_dir.parent
        if any(p.startswith(".") for p in folder.relative_to(root).parts):
            continue  # a temporary folder of an interrupted save
        parts = folder.relative_to(root).parts
        label, seed = _label(parts)
        cfg_path = folder / "train_config.json"
        cfg = read_json(cfg_path) if cfg_path.exists() else {}
        eval_dir, ood, idt = _eval_summary(folder)
        rows.append({
            "name": "/".join(parts), "label": label, "chapter": CHAPTERS.get(parts[0], "other"), "seed": seed,
            "path": str(model_dir), "train_pairs": cfg.get("n_pairs"), "train_seconds": cfg.get("seconds"),
            "eval_dir": str(eval_dir) if eval_dir else None, "OOD avg": ood, "id_test": idt,
        })
    order = {c: i for i, c in enumerate(["pre-trained", *CHAPTERS.values(), "other"])}
    labels = [r["label"] for r in rows]
    for r in rows:  # several seeds of one variant: tell them apart
        if labels.count(r["label"]) > 1:
            r["label"] = f"{r['label']} (seed {r['seed']})" if r["seed"] is not None else r["name"]
    df = pd.DataFrame(rows, columns=COLUMNS)
    if len(df):
        df = df.assign(_o=df["chapter"].map(order)).sort_values(["_o", "name"], kind="stable").drop(columns="_o")
    return df.reset_index(drop=True)


def require_trained(models: pd.DataFrame, run_dir: str | Path, notebook: str) -> pd.DataFrame:
    """``models`` when it holds at least one trained model, else a clear error saying what to run."""
    if (models["chapter"] != "pre-trained").any():
        return models
    raise NoTrainedModelsError(
        f"{notebook}: no trained model in {Path(run_dir) / 'models'}. Run a training chapter into the same run "
        f"folder first, e.g. `workbench run --preset <preset> --notebooks 04 --run-dir {run_dir}` "
        "(or `--notebooks 00 01 03 04`); every model it trains is then analysed here."
    )


def pick(models: pd.DataFrame, name: str) -> pd.Series:
    """The row of model ``name`` (its folder under ``models/``, or its label when unique)."""
    hit = models[models["name"] == name]
    if hit.empty:
        hit = models[models["label"] == name]
    if len(hit) != 1:
        why = "no" if hit.empty else f"{len(hit)}"
        raise WorkbenchError(f"{why} model named {name!r} in this run; choose one of {list(models['name'])}")
    return hit.iloc[0]


def default_pair(models: pd.DataFrame, seed: int = 42) -> tuple[str, str]:
    """The two models a case study compares when the user names none: the all-data baseline and
    Select then MixUp's ambiguous+hard + MixUp (04) when both exist, else zero-shot against the
    trained model with the best OOD average (or the last one trained, without evaluations)."""
    names = set(models["name"])
    a, b = f"select/all-seed{seed}", f"select/ambiguous_hard-mixup-seed{seed}"
    if a in names and b in names:
        return a, b
    trained = models[models["chapter"] != "pre-trained"]
    if trained.empty:
        raise NoTrainedModelsError("no trained model to compare")
    scored = trained.dropna(subset=["OOD avg"])
    best = scored.sort_values("OOD avg").iloc[-1] if len(scored) else trained.iloc[-1]
    return "zero-shot", str(best["name"])
