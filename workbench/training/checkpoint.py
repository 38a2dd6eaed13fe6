"""Atomic checkpoints of a training run and exact resume (``out_dir/checkpoint/``).

Layout: ``model-<step>.safetensors``, ``optimizer-<step>.pt``, ``rng-<step>.pt``,
``dynamics-<step>.parquet``, ``history-<step>.parquet`` each written atomically, then ``state.json``
(the commit marker, naming those files) atomically last; older files are removed afterwards, so a
crash at any point leaves the previous complete checkpoint readable. The generator states (Python,
NumPy, torch, CUDA; one per process under several processes) make a resumed run repeat an
uninterrupted one (``workbench.training.trainer`` says when that is bit-exact).
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_model, save_model

from workbench.errors import WorkbenchError
from workbench.faultpoints import pause_point
from workbench.store import atomic_path, atomic_write_json, atomic_write_parquet, read_json
from workbench.training import distributed
from workbench.training.dynamics import DynamicsRecorder

__all__ = ["HISTORY_COLUMNS", "STATE_VERSION", "Checkpointer", "history_frame", "key_mismatch_message", "rank_seed",
           "restore_rng", "rng_state", "save_model_dir", "set_rng_state"]

HISTORY_COLUMNS = ["step", "epoch", "loss", "lr", "seconds"]
STATE_VERSION = 1


def rng_state() -> dict[str, Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": (
            name,
            torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            int(pos),
            int(has_gauss),
            float(cached),
        ),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    v, internal, gauss = state["python"]
    random.setstate((v, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def rank_seed(seed: int, rank: int) -> int:
    """Process ``rank``'s seed for dropout (rank 0: ``seed`` itself, so one process is unchanged)."""
    return int(seed) + 1_000_003 * rank


def restore_rng(saved: dict[str, Any], seed: int, step: int) -> None:
    """Put back this process's generator states from a checkpoint's ``rng`` file.

    A multi-process checkpoint holds ``{"ranks": [state of rank 0, ...]}``. Resumed with the same
    number of processes, each takes its own (exact resume); with another number, every process takes
    rank 0's and ranks > 0 then reseed torch from (seed, rank, step): training goes on correctly but
    does not repeat the dropout draws an uninterrupted run would have made.
    """
    world, rank = distributed.world_size(), distributed.rank()
    states = saved["ranks"] if "ranks" in saved else [saved]
    set_rng_state(states[rank] if len(states) == world else states[0])
    if len(states) != world and rank > 0:
        torch.manual_seed(rank_seed(seed, rank) + step)


def history_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    if not rows:
        return pd.DataFrame(
            {
                "step": pd.Series([], dtype="int64"),
                "epoch": pd.Series([], dtype="float64"),
                "loss": pd.Series([], dtype="float64"),
                "lr": pd.Series([], dtype="float64"),
                "seconds": pd.Series([], dtype="float64"),
            }
        )
    return pd.DataFrame(rows, columns=HISTORY_COLUMNS)


def key_mismatch_message(ckpt: Path, saved: dict[str, Any], now: dict[str, Any]) -> str:
    diffs = []
    for k in sorted(set(saved.get("config", {})) | set(now["config"])):
        a, b = saved.get("config", {}).get(k), now["config"].get(k)
        if a != b:
            diffs.append(f"config.{k}: checkpoint {a!r} vs now {b!r}")
    if saved.get("negatives") != now.get("negatives"):
        diffs.append(f"negatives: checkpoint {saved.get('negatives')!r} vs now {now.get('negatives')!r}")
    if saved.get("data") != now["data"]:
        diffs.append(
            f"training pairs differ ({saved.get('n_pairs')} pairs in the checkpoint, {now['n_pairs']} now)"
        )
    for k in sorted(set(saved.get("encoder", {})) | set(now["encoder"])):
        a, b = saved.get("encoder", {}).get(k), now["encoder"].get(k)
        if a != b:
            diffs.append(f"encoder.{k}: checkpoint {a!r} vs now {b!r}")
    return (
        f"{ckpt}: the checkpoint was made with different settings, so it cannot be resumed: "
        + ("; ".join(diffs) or "resume key differs")
        + ". Pass resume=False to start over (the checkpoint is deleted) or use another out_dir."
    )


class Checkpointer:
    """Writes and reads ``out_dir/checkpoint``; ``state.json`` is written last as the commit marker."""

    def __init__(self, out_dir: Path):
        self.dir = out_dir / "checkpoint"
        self.state_path = self.dir / "state.json"

    def exists(self) -> bool:
        return self.state_path.exists()

    def state(self) -> dict[str, Any]:
        try:
            return read_json(self.state_path)
        except (OSError, ValueError) as e:
            raise WorkbenchError(
                f"{self.state_path}: unreadable checkpoint state ({e}); pass resume=False to start over"
            ) from e

    def file(self, state: dict[str, Any], what: str) -> Path:
        p = self.dir / state["files"][what]
        if not p.exists():
            raise WorkbenchError(
                f"{p}: missing checkpoint file named by {self.state_path}; pass resume=False to start over"
            )
        return p

    def restore(self, state: dict[str, Any], *, encoder: torch.nn.Module, optimizer: torch.optim.Optimizer,
                scheduler: Any, recorder: DynamicsRecorder, seed: int, device: torch.device
                ) -> tuple[int, float, list[dict[str, Any]]]:
        """Put the checkpoint ``state`` names back: weights, dynamics rows and, for an unfinished run, the
        optimizer, scheduler and generator states. Returns (step, seconds trained so far, loss history)."""
        load_model(encoder, str(self.file(state, "model")), device=str(device))
        step = int(state["step"])
        history = pd.read_parquet(self.file(state, "history")).to_dict("records")
        recorder.restore(self.file(state, "dynamics"), max_step=step)
        if not state.get("completed"):
            opt = torch.load(self.file(state, "optimizer"), map_location=device, weights_only=True)
            optimizer.load_state_dict(opt["optimizer"])
            scheduler.load_state_dict(opt["scheduler"])
            restore_rng(torch.load(self.file(state, "rng"), weights_only=True), seed, step)
        return step, float(state.get("seconds", 0.0)), history

    def clear(self) -> None:
        if self.dir.exists():
            shutil.rmtree(self.dir)

    def save(
        self,
        *,
        step: int,
        encoder: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: Any,
        recorder: DynamicsRecorder,
        history: list[dict[str, Any]],
        meta: dict[str, Any],
        completed: bool,
        rng: Any = None,
    ) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tag = f"{step:09d}"
        files = {
            "model": f"model-{tag}.safetensors",
            "optimizer": f"optimizer-{tag}.pt",
            "rng": f"rng-{tag}.pt",
            "dynamics": f"dynamics-{tag}.parquet",
            "history": f"history-{tag}.parquet",
        }
        with atomic_path(self.dir / files["model"]) as tmp:
            save_model(encoder, str(tmp))
        if completed:  # the optimizer is not needed any more; saves 2x the model size on disk
            del files["optimizer"]
        else:
            with atomic_path(self.dir / files["optimizer"]) as tmp:
                torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, tmp)
        with atomic_path(self.dir / files["rng"]) as tmp:
            torch.save(rng_state() if rng is None else rng, tmp)
        recorder.flush(self.dir / files["dynamics"])
        atomic_write_parquet(self.dir / files["history"], history_frame(history))
        atomic_write_json(
            self.state_path,
            {**meta, "step": step, "completed": completed, "files": files, "version": STATE_VERSION},
        )
        keep = set(files.values()) | {"state.json"}
        for p in self.dir.iterdir():
            if p.name not in keep and p.is_file():
                p.unlink(missing_ok=True)
        pause_point("train.checkpoint")


def save_model_dir(encoder: Any, path: Path) -> Path:
    """``encoder.save`` into a temporary folder, then swap it into place."""
    tmp = path.parent / f".{path.name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    encoder.save(tmp)
    old = path.parent / f".{path.name}.old"
    if old.exists():
        shutil.rmtree(old)
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    if old.exists():
        shutil.rmtree(old)
    return path
