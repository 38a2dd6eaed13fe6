"""How long ``make run`` (every notebook on a preset; the default ``tour``) takes, and each notebook's share.

    python benchmarks/end_to_end.py                        # from the run folders under papermill_runs/
    python benchmarks/end_to_end.py --run-dir papermill_runs/20261206-235000-tour
    python benchmarks/end_to_end.py --run --cold           # runs `workbench run --preset tour` now, data/ empty
    python benchmarks/end_to_end.py --preset cpu           # the full CPU experiment's chapters (hours)

Reads ``status.json`` of run folders made with ``--preset`` (default ``tour``) and no overrides,
takes each notebook's latest successful time, and prints the seconds, the share of the total and
the target (the tour: <= 15 minutes on 2 cores). Times taken from several folders are
chapter-by-chapter runs, not one uninterrupted run: the script says which folder each comes from.
``--cold`` gives the run an empty data folder (``WORKBENCH_DATA``), as on a fresh clone: the corpus
is mined, the OOD sets and other languages fetched and built, the model files assembled. Each
notebook's peak resident memory comes from ``status.json`` (``workbench.peak_memory``: its kernel and
what the kernel starts; runs made before it was recorded show none), against the 4 GiB target per
chapter; ``--run`` also measures the whole run's peak RSS (children included).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from common import ROOT, check, write_result

TARGET_S = 15 * 60
TARGET_PEAK_MIB = 4 * 1024  # per chapter (issue 21: a 16 GB laptop runs the cpu preset)


def from_folders(folders: list[Path], preset: str = "tour") -> dict[str, dict]:
    import json

    found: dict[str, dict] = {}
    for folder in sorted(folders, key=lambda p: p.stat().st_mtime):
        try:
            params = yaml.safe_load((folder / "params.yaml").read_text())
            status = json.loads((folder / "status.json").read_text())
        except (OSError, ValueError):
            continue
        if params.get("preset") != preset or params.get("overrides"):
            continue
        for nb, st in status.items():
            if isinstance(st, dict) and st.get("status") == "ok" and st.get("seconds"):
                found[nb] = {"seconds": float(st["seconds"]), "peak_rss_mib": st.get("peak_rss_mib"),
                             "folder": folder.name}
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=Path, default=Path(os.environ.get("WORKBENCH_RUNS", ROOT / "papermill_runs")))
    ap.add_argument("--run-dir", type=Path, action="append", help="only these run folders (repeatable)")
    ap.add_argument("--preset", default="tour", help="the preset whose runs are timed (default: tour, make run's)")
    ap.add_argument("--run", action="store_true", help="run `workbench run --preset PRESET` now and time it")
    ap.add_argument("--cold", action="store_true", help="with --run: an empty data folder, as on a fresh clone")
    args = ap.parse_args()

    peak_mb, wall_s = None, None
    if args.run:
        env = dict(os.environ, HF_HUB_OFFLINE="1")
        if args.cold:
            env["WORKBENCH_DATA"] = tempfile.mkdtemp(prefix="workbench-empty-data-")
            print(f"[bench] empty data folder: {env['WORKBENCH_DATA']}")
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "workbench", "run", "--preset", args.preset], cwd=ROOT, check=True, env=env)
        wall_s = time.perf_counter() - t
        print(f"[bench] the whole run: {wall_s:.0f} s")
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        newest = max((p for p in args.runs.iterdir() if p.name.endswith("-" + args.preset)), key=lambda p: p.stat().st_mtime)
        folders = [newest]
    else:
        folders = args.run_dir or [p for p in args.runs.iterdir() if p.is_dir()]
    found = from_folders(folders, args.preset)
    if not found:
        sys.exit(f"no finished {args.preset}-preset notebooks under {args.runs}: run `make run` (or pass --run)")
    total = sum(v["seconds"] for v in found.values())
    print(f"{'notebook':<28} {'minutes':>8} {'share':>6} {'peak MiB':>9}  folder")
    for nb, v in sorted(found.items()):
        peak = "" if v["peak_rss_mib"] is None else f"{v['peak_rss_mib']:.0f}"
        print(f"{nb:<28} {v['seconds'] / 60:8.1f} {v['seconds'] / total:6.1%} {peak:>9}  {v['folder']}")
    print(f"{'total':<28} {total / 60:8.1f}")
    if len({v['folder'] for v in found.values()}) > 1:
        print("[bench] note: assembled from chapter-by-chapter runs in several folders, not one run")
    targets = [check(f"end to end: make run on the {args.preset} preset (minutes)", total / 60, TARGET_S / 60,
                     higher_is_better=False, unit=" min")] if args.preset == "tour" else []
    peaks = [v["peak_rss_mib"] for v in found.values() if v["peak_rss_mib"] is not None]
    if peaks:
        targets.append(check(f"peak memory of the largest {args.preset} chapter (MiB)", max(peaks), TARGET_PEAK_MIB,
                             higher_is_better=False, unit=" MiB"))
    write_result("end_to_end" if args.preset == "tour" else f"end_to_end_{args.preset}",
                 {"preset": args.preset, "cold": bool(args.cold), "notebooks": found, "total_s": total,
                  "wall_s": wall_s, "peak_rss_mb_children": peak_mb, "targets": targets})


if __name__ == "__main__":
    main()
