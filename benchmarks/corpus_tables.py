"""The corpus table in memory: pandas (today's path) against a memory-mapped Arrow ``datasets`` table.

    python benchmarks/corpus_tables.py                 # the cpu corpus and 1,000,000 pairs (about 5 min)
    python benchmarks/corpus_tables.py --sizes 100000

Issue 26, part 2: the corpus as a ``datasets`` table so a million pairs need not sit in a pandas
frame. The million-pair table is the cpu corpus's real pairs repeated (ids made unique), written once
as parquet. Each job runs in a fresh process and reports its peak RSS and seconds for what a chapter
does with the corpus: open it, take the train split, draw 2,000 pairs reproducibly and read their
texts.

- ``pandas``: ``pd.read_parquet`` then boolean indexing and ``DataFrame.sample`` (``build_corpus`` /
  ``experiment.training_sample`` today);
- ``datasets_first``: ``datasets.load_dataset("parquet", ...)``, which converts the file into an
  Arrow cache (the first open), then ``filter`` on the split and ``select`` of 2,000 rows;
- ``datasets_mmap``: the same once the Arrow cache exists (every later open): memory-mapped.

The ratios printed are against the pandas job of the same size, run in the same invocation.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from common import ROOT, check, write_result

JOB = """
import json, resource, sys, time
t = time.perf_counter()
kind, path, cache = sys.argv[1], sys.argv[2], sys.argv[3]
if kind == "pandas":
    import numpy as np, pandas as pd
    df = pd.read_parquet(path)
    train = df[df["split"] == "train"]
    sample = train.sample(n=2000, random_state=0)
    texts = sample["query"].tolist() + sample["code"].tolist()
else:
    import numpy as np, datasets
    datasets.disable_progress_bars()
    ds = datasets.load_dataset("parquet", data_files=path, split="train", cache_dir=cache)
    train = ds.filter(lambda s: [x == "train" for x in s], input_columns="split", batched=True, batch_size=100000)
    rows = np.random.default_rng(0).choice(len(train), 2000, replace=False)
    sample = train.select(rows)
    texts = list(sample["query"]) + list(sample["code"])
print("RESULT", json.dumps({"seconds": time.perf_counter() - t, "texts": len(texts),
                            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run(kind: str, path: Path, cache: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", JOB, kind, str(path), str(cache)], capture_output=True, text=True,
                         cwd=ROOT)
    if out.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{out.stderr[-3000:]}")
    return json.loads(next(ln for ln in out.stdout.splitlines() if ln.startswith("RESULT "))[len("RESULT "):])


def corpus_file(n: int | None, folder: Path) -> tuple[Path, int]:
    """The cpu corpus (``n`` None) or its pairs repeated to ``n`` rows, as one parquet file."""
    import pandas as pd

    from workbench.corpus import build_corpus

    df = build_corpus("cpu", progress=False)
    if n is not None:
        reps = -(-n // len(df))
        parts = [df.assign(id=df["id"] + f"-{r}") for r in range(reps)]
        df = pd.concat(parts, ignore_index=True).iloc[:n]
    path = folder / f"corpus-{len(df)}.parquet"
    df.to_parquet(path, index=False)
    return path, len(df)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="*", default=[1_000_000], help="repeated-pair sizes beside the cpu corpus")
    args = ap.parse_args()
    rows, targets = {}, []
    with tempfile.TemporaryDirectory() as tmp:
        for n in [None, *args.sizes]:
            path, size = corpus_file(n, Path(tmp))
            cache = Path(tmp) / f"hf-{size}"
            got = {kind: run(kind, path, cache) for kind in ("pandas", "datasets_first", "datasets_mmap")}
            rows[size] = got
            base = got["pandas"]
            print(f"{size:>9,} pairs ({path.stat().st_size / 2**20:.0f} MiB parquet):", flush=True)
            for kind, r in got.items():
                print(f"  {kind:>15}: peak RSS {r['peak_rss_mb']:7.0f} MiB (x{r['peak_rss_mb'] / base['peak_rss_mb']:.2f}),"
                      f" {r['seconds']:6.1f} s (x{r['seconds'] / base['seconds']:.2f})", flush=True)
        biggest = rows[max(rows)]
        targets.append(check(f"memory-mapped datasets / pandas peak RSS at {max(rows):,} pairs",
                             biggest["datasets_mmap"]["peak_rss_mb"] / biggest["pandas"]["peak_rss_mb"], 1.0,
                             higher_is_better=False))
    write_result("corpus_tables", {"args": vars(args), "rows": rows, "targets": targets})


if __name__ == "__main__":
    main()
