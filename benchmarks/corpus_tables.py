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
- ``workbench``: what ``build_corpus`` does since issue 26 part 2: its ``pairs.arrow`` (one record
  batch, ``large_string`` text; written once, beside ``pairs.parquet``) opened memory-mapped into a
  pandas frame without a copy (``store.read_arrow_frame``), then ``experiment.training_sample``, which
  takes the 2,000 rows by position (the rows ``DataFrame.sample`` draws).

Peak RSS counts the file's pages a job has read, which the kernel can drop at any time; ``anon`` is
the job's own memory at its end (``RssAnon``), what a laptop really has to find.

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
elif kind == "workbench":
    from workbench.experiment import training_sample
    from workbench.store import read_arrow_frame
    df = read_arrow_frame(path)
    sample = training_sample(df, 2000, 0)
    texts = sample["query"].tolist() + sample["code"].tolist()
else:
    import numpy as np, datasets
    datasets.disable_progress_bars()
    ds = datasets.load_dataset("parquet", data_files=path, split="train", cache_dir=cache)
    train = ds.filter(lambda s: [x == "train" for x in s], input_columns="split", batched=True, batch_size=100000)
    rows = np.random.default_rng(0).choice(len(train), 2000, replace=False)
    sample = train.select(rows)
    texts = list(sample["query"]) + list(sample["code"])
anon = next(int(ln.split()[1]) for ln in open("/proc/self/status") if ln.startswith("RssAnon:")) / 1024
print("RESULT", json.dumps({"seconds": time.perf_counter() - t, "texts": len(texts), "anon_mb": anon,
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
    from workbench.store import atomic_write_arrow

    df = build_corpus("cpu", progress=False)
    if n is not None:
        reps = -(-n // len(df))
        parts = [df.assign(id=df["id"] + f"-{r}") for r in range(reps)]
        df = pd.concat(parts, ignore_index=True).iloc[:n]
    path = folder / f"corpus-{len(df)}.parquet"
    df.to_parquet(path, index=False)
    atomic_write_arrow(path.with_suffix(".arrow"), df)
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
            got = {kind: run(kind, path.with_suffix(".arrow") if kind == "workbench" else path, cache)
                   for kind in ("pandas", "datasets_first", "datasets_mmap", "workbench")}
            rows[size] = got
            base = got["pandas"]
            print(f"{size:>9,} pairs ({path.stat().st_size / 2**20:.0f} MiB parquet):", flush=True)
            for kind, r in got.items():
                print(f"  {kind:>15}: peak RSS {r['peak_rss_mb']:7.0f} MiB (x{r['peak_rss_mb'] / base['peak_rss_mb']:.2f}),"
                      f" anon {r['anon_mb']:6.0f} MiB (x{r['anon_mb'] / base['anon_mb']:.2f}),"
                      f" {r['seconds']:6.2f} s (x{r['seconds'] / base['seconds']:.2f})", flush=True)
        biggest = rows[max(rows)]
        targets.append(check(f"memory-mapped datasets / pandas peak RSS at {max(rows):,} pairs",
                             biggest["datasets_mmap"]["peak_rss_mb"] / biggest["pandas"]["peak_rss_mb"], 1.0,
                             higher_is_better=False))
        targets.append(check(f"the workbench's corpus / pandas memory of its own at {max(rows):,} pairs",
                             biggest["workbench"]["anon_mb"] / biggest["pandas"]["anon_mb"], 0.2,
                             higher_is_better=False))
        targets.append(check(f"the workbench's corpus / pandas seconds at {max(rows):,} pairs",
                             biggest["workbench"]["seconds"] / biggest["pandas"]["seconds"], 0.2,
                             higher_is_better=False))
    write_result("corpus_tables", {"args": vars(args), "rows": rows, "targets": targets})


if __name__ == "__main__":
    main()
