"""Is the data map trustworthy? Dataset Cartography's corrupted-pairs check on a preset, outside the notebooks.

For each corruption kind, ``validity_fraction`` of the data-map run's pairs get a wrong code (random
swaps; near misses from the same file / package), the data-map run is trained again on them, and the
table says how well low confidence flags them (ROC-AUC, precision at the corruption rate), with the
saturation of each map and the profile of its regions. Only library functions
(``workbench.datamap_validity``, ``selection.datamap_training``, ``cartography``) are used.

    .venv/bin/python tools/datamap_validity.py --preset cpu --out papermill_runs/validity-cpu
    .venv/bin/python tools/datamap_validity.py --preset smoke --set validity_fraction=0.15 --modes in_batch \\
        --out /tmp/validity-smoke

Writes under --out: ``<kind>/`` (each corrupted run; a re-run reuses it), ``clean/`` (the data-map
run without corruption, unless --no-clean or --datamap-dir points at an existing one, e.g. a run
folder's ``models/datamap``), and the CSV files ``validity.csv``, ``saturation.csv`` and
``region_profile_<map>_<mode>.csv``. A different preset, fraction or mode needs another --out (the
trainer refuses to resume a run made with other settings).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="cpu", help="smoke | cpu | gpu | paper (default cpu)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="NAME=VALUE",
                    help="a run parameter, e.g. --set validity_fraction=0.1 (repeatable)")
    ap.add_argument("--out", required=True, type=Path, help="folder for the runs and the CSV files")
    ap.add_argument("--modes", default=None,
                    help="dynamics modes, comma-separated: in_batch,fixed_pool (default: the validity_modes parameter)")
    ap.add_argument("--kinds", default=None, help="random_swap,near_miss (default: the validity_kinds parameter)")
    ap.add_argument("--fraction", type=float, default=None, help="share corrupted (default: validity_fraction)")
    ap.add_argument("--datamap-dir", type=Path, default=None,
                    help="the clean data-map run to profile (trained there when missing; default OUT/clean)")
    ap.add_argument("--no-clean", action="store_true", help="skip the clean data-map run (its saturation and profile)")
    ap.add_argument("--zero-shot", action="store_true",
                    help="add the pre-trained model's rank of each gold code (searching the run's pairs) to the profiles")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    args = ap.parse_args(argv)

    from workbench import cartography, datamap_validity, selection
    from workbench.config import as_names, parse_assignment, resolve
    from workbench.corpus import build_corpus
    from workbench.errors import WorkbenchError
    from workbench.experiment import fresh_encoder
    from workbench.runtime import seed_everything, set_threads

    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 40)
    try:
        params = resolve(args.preset, dict(parse_assignment(a) for a in args.overrides))
        modes = list(as_names(args.modes or params.validity_modes))
        kinds = list(as_names(args.kinds or params.validity_kinds))
        fraction = params.validity_fraction if args.fraction is None else args.fraction
        set_threads(params.threads)
        seed_everything(params.seed)
        out: Path = args.out
        out.mkdir(parents=True, exist_ok=True)
        show = not args.quiet
        rule = dict(easy_q=params.easy_q, hard_q=params.hard_q, ambiguous_q=params.ambiguous_q)

        pairs = build_corpus(params.corpus, progress=show)
        table = datamap_validity.validity_check(pairs, params, out, kinds=kinds, fraction=fraction,
                                                show_progress=show, modes=modes)
        table.to_csv(out / "validity.csv", index=False)
        print(f"\n== corrupted pairs flagged by low confidence ({args.preset}, fraction {fraction:g}, "
              f"{params.datamap_pairs} pairs, {params.datamap_epochs} epochs)")
        print(table.round(3).to_string(index=False))

        encoder = fresh_encoder(params) if args.zero_shot else None
        maps: dict[str, tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame | None]] = {}  # name -> (dynamics, pairs, corrupted)
        for kind in kinds:
            run = datamap_validity.saved_run(pairs, params, out, kind, fraction)
            assert run is not None  # validity_check has just finished it
            maps[kind] = (run.dynamics, run.pairs, run.corrupted)
        if not args.no_clean:
            sample, result = selection.datamap_training(pairs, params, args.datamap_dir or out / "clean", show_progress=show)
            maps["clean"] = (result.dynamics, sample, None)

        saturation = []
        for name, (dynamics, trained, corrupted) in maps.items():
            ranks = datamap_validity.gold_ranks(encoder, trained, params, show) if encoder is not None else None
            for mode in modes:
                if mode not in set(dynamics["mode"]):
                    continue
                dmap = cartography.categorize(cartography.data_map(dynamics, mode=mode), **rule)
                saturation.append({"map": name, "mode": mode, "saturation (confidence > 0.9)": datamap_validity.saturation(dmap),
                                   "median confidence": float(dmap["confidence"].median()), "pairs": len(dmap)})
                profile = datamap_validity.region_profile(dmap, trained, corrupted, ranks)
                profile.to_csv(out / f"region_profile_{name}_{mode}.csv")
                print(f"\n== region profile: {name} ({mode})")
                print(profile.round(3).T.to_string())
        sat = pd.DataFrame(saturation)
        sat.to_csv(out / "saturation.csv", index=False)
        print("\n== saturation")
        print(sat.round(3).to_string(index=False))
        print(f"\nCSV files written to {out}")
    except WorkbenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
