"""``make bench``: every benchmark in turn, then one table of each figure against its target.

    python benchmarks/run_all.py                 # everything, default sizes (about 35 min on 2 cores)
    python benchmarks/run_all.py --quick         # small sizes: a smoke test of the suite
    python benchmarks/run_all.py --only encode_throughput train_throughput
    python benchmarks/run_all.py --table         # only print the table of the results already written

Each benchmark runs in its own process and writes ``benchmarks/results/<name>.json`` (with
``--quick``: ``benchmarks/results/quick/``, so the full results stay); a failing one
is reported and the others still run. Results written by an earlier call (e.g. the hour-long
``search_ann`` at a million vectors) stay in the table until the benchmark runs again.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import common
from common import ROOT

BENCH = ROOT / "benchmarks"
SUITE = {
    "encode_throughput": ([], ["--n", "200", "--rounds", "1", "--no-mrr"]),
    "train_throughput": ([], ["--pairs", "160", "--variants", "st_fp32", "ours_fp32", "ours_bf16_mb8"]),
    "dynamics_overhead": ([], ["--pairs", "160", "--rounds", "1"]),
    "search_ann": ([], ["--n", "100000", "--ef", "32", "64"]),
    "curation_scale": (["--sizes", "10000", "100000"], ["--sizes", "2000", "20000", "--no-shared"]),
    "memory_peaks": ([], ["--preset", "smoke", "--jobs", "baseline", "mining", "training_bf16"]),
    "end_to_end": ([], []),
    "llm_prompt_reuse": ([], ["--pairs", "2", "--rounds", "1"]),
    "llm_thread_cap": ([], ["--rounds", "1"]),
    "corpus_tables": ([], ["--sizes", "100000"]),
}


def table() -> int:
    rows, missing = [], []
    for name in SUITE:
        path = common.RESULTS / f"{name}.json"
        if not path.exists():
            missing.append(name)
            continue
        res = json.loads(path.read_text())
        when = f"{res['machine'].get('date', '?')}, load {res['machine'].get('load_avg_1min', '?')}"
        for t in res.get("targets", []):
            rows.append((name, t, when))
    print(f"\n{'benchmark':<18} {'figure':<58} {'value':>10} {'target':>10}  result   measured")
    misses = 0
    for name, t, when in rows:
        sign = ">=" if t["higher_is_better"] else "<="
        unit = t["unit"].strip()
        misses += not t["pass"]
        print(f"{name:<18} {t['name'][:58]:<58} {t['value']:>9.3g}{unit[:1]:1} {sign}{t['target']:>7g}{unit[:1]:1}  "
              f"{'PASS' if t['pass'] else 'MISS':<7}  {when}")
    for name in missing:
        print(f"{name:<18} (no result yet: python benchmarks/{name}.py)")
    print(f"\n{len(rows) - misses} of {len(rows)} targets met; the misses and their reasons: docs/performance.md")
    curation = common.RESULTS / "curation_scale.json"
    if not curation.exists() or max(r["n"] for r in json.loads(curation.read_text())["rows"]) < 1_000_000:
        print("not measured: curation at 1,000,000 pairs (python benchmarks/curation_scale.py --sizes 10000 100000 "
              "1000000; hours on 2 cores)")
    gpus = {json.loads(p.read_text())["machine"].get("gpu") for p in common.RESULTS.glob("*.json")}
    if not gpus - {None}:
        print("not measured: GPU throughput (no result was taken on a CUDA machine)")
    return misses


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", nargs="+", choices=list(SUITE))
    ap.add_argument("--table", action="store_true")
    args = ap.parse_args()
    if args.quick:  # small sizes: keep them apart from the full results
        common.RESULTS = common.RESULTS / "quick"
        os.environ["WORKBENCH_BENCH_RESULTS"] = str(common.RESULTS)
    if not args.table:
        failed = []
        for name in args.only or list(SUITE):
            extra = SUITE[name][1 if args.quick else 0]
            print(f"\n[bench] {name} {' '.join(extra)}", flush=True)
            t = time.perf_counter()
            code = subprocess.run([sys.executable, str(BENCH / f"{name}.py"), *extra], cwd=BENCH).returncode
            print(f"[bench] {name}: {'ok' if code == 0 else f'FAILED (exit {code})'} in {time.perf_counter() - t:.0f} s",
                  flush=True)
            if code:
                failed.append(name)
        if failed:
            print(f"[bench] failed: {', '.join(failed)}")
    table()


if __name__ == "__main__":
    main()
