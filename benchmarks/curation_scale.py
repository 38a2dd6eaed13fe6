"""Time and peak memory of CoRNStack curation at scale (not run by the tests).

    python benchmarks/curation_scale.py                      # 10k and 100k pairs
    python benchmarks/curation_scale.py --sizes 10000 100000 1000000 --threads 2

Each size runs in a fresh subprocess (so ``ru_maxrss`` is that size's peak) on synthetic paired
unit vectors, d = 384 (MiniLM's width): q_i random, c_i = normalise(q_i + noise), so S_ii is
around 0.6 like real pairs. Timed: ``consistency_filter`` (k = 2) and ``mine_hard_negatives``
(M = 32), each with its own chunked faiss search, then both sharing one search
(``precomputed=search(...)``), as a notebook would. Prints one row per size and the fitted
growth exponent b of time ~ n^b (2 for the exact all-pairs search) and of the working memory
(peak RSS minus the RSS after making the data: faiss's copy of C, O(n d), plus O(chunk k)),
with an extrapolation to 1M.

Measured on the shared 2-core box (1 thread, load ~1.5): 10k: filter 1.1 s, mining 1.3 s,
both on one search 1.7 s, peak RSS 270 MB; 100k: 82 s, 85 s, 90 s, 698 MB (embeddings 293 MB);
time grows as n^1.8-1.9, so 1M would take about 1.5 h per search on one thread (not run).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import check, write_result  # noqa: E402


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def one(n: int, d: int, k: int, m: int, chunk: int, threads: int, seed: int, shared: bool) -> dict:
    import faiss
    import numpy as np

    from workbench.curation import consistency_filter
    from workbench.retrieval import RESCORE_MARGIN, mine_hard_negatives, search

    faiss.omp_set_num_threads(threads)
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((n, d), dtype=np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    c = q + 0.068 * rng.standard_normal((n, d), dtype=np.float32)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    data_mb = _rss_mb()

    t = time.perf_counter()
    f = consistency_filter(q, c, k=k, delta=0.5, chunk_size=chunk)
    t_filter = time.perf_counter() - t
    t = time.perf_counter()
    hard = mine_hard_negatives(q, c, M=m, gamma=0.95, chunk_size=chunk)
    t_mine = time.perf_counter() - t
    t_shared = float("nan")
    if shared:
        t = time.perf_counter()
        found = search(q, c, max(k, m + 1) + RESCORE_MARGIN, chunk_size=chunk)
        consistency_filter(q, c, k=k, delta=0.5, chunk_size=chunk, precomputed=found)
        mine_hard_negatives(q, c, M=m, gamma=0.95, chunk_size=chunk, precomputed=found)
        t_shared = time.perf_counter() - t
    return {
        "n": n, "d": d, "threads": threads,
        "filter_s": round(t_filter, 2), "mine_s": round(t_mine, 2), "both_shared_s": round(t_shared, 2),
        "peak_rss_mb": round(_rss_mb(), 1), "data_rss_mb": round(data_mb, 1),
        "working_mb": round(_rss_mb() - data_mb, 1),
        "embeddings_mb": round(2 * n * d * 4 / 2**20, 1),
        "kept_fraction": round(float(f["kept"].mean()), 4), "mean_valid_negatives": round(float(hard.n_valid.mean()), 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--k", type=int, default=2)
    ap.add_argument("--M", type=int, default=32)
    ap.add_argument("--chunk", type=int, default=8192)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-shared", action="store_true", help="skip the shared-search variant (saves a third)")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.dim, args.k, args.M, args.chunk, args.threads, args.seed, not args.no_shared)))
        return

    rows = []
    for n in args.sizes:
        cmd = [sys.executable, __file__, "--one", str(n), "--dim", str(args.dim), "--k", str(args.k),
               "--M", str(args.M), "--chunk", str(args.chunk), "--threads", str(args.threads),
               "--seed", str(args.seed)] + (["--no-shared"] if args.no_shared else [])
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        row = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(json.dumps(row), flush=True)

    print(f"\n{'n':>9} {'filter s':>9} {'mine s':>8} {'shared s':>9} {'peak MB':>8} {'work MB':>8} {'emb MB':>7}")
    for r in rows:
        print(f"{r['n']:>9} {r['filter_s']:>9} {r['mine_s']:>8} {r['both_shared_s']:>9} "
              f"{r['peak_rss_mb']:>8} {r['working_mb']:>8} {r['embeddings_mb']:>7}")
    growth, targets = {}, []
    if len(rows) >= 2:
        a, b = rows[0], rows[-1]
        for key in ("filter_s", "mine_s", "both_shared_s", "working_mb"):
            if a[key] > 0 and b[key] > 0:  # NaN (skipped) compares False
                e = math.log(b[key] / a[key]) / math.log(b["n"] / a["n"])
                est = b[key] * (1_000_000 / b["n"]) ** e
                growth[key] = {"exponent": e, "at_1m": est}
                print(f"growth {key}: n^{e:.2f} (from n={a['n']} to {b['n']}); at n=1,000,000 about {est:,.0f}")
        if "working_mb" in growth:  # an n x n score matrix would grow as n^2
            targets.append(check("curation: working-memory growth exponent (n^2 would be 2)",
                                 growth["working_mb"]["exponent"], 1.2, higher_is_better=False, unit=""))
    write_result("curation_scale", {"args": vars(args), "rows": rows, "growth": growth, "targets": targets})


if __name__ == "__main__":
    main()
