"""Peak memory (RSS) of mining, training and evaluation, each in a fresh process.

    python benchmarks/memory_peaks.py                      # the cpu preset's corpus, 480 pairs, CoSQA dev
    python benchmarks/memory_peaks.py --preset smoke

- ``mining``: ``build_corpus`` of the preset's corpus from scratch in a temporary data folder (the
  downloaded wheels are linked in, so nothing is fetched; every source is parsed again);
- ``training``: one epoch of ``workbench.training.train`` (MiniLM, in_batch dynamics) on 480 CoSQA
  dev pairs, batch 32, 128 tokens, fp32 and bf16;
- ``evaluation``: ``evaluate`` of MiniLM on CoSQA dev (500 queries against the 6,267-function pool),
  bf16, with bootstrap intervals;
- ``oasis_plain`` / ``oasis_chunked``: three steps of OASIS's full objective as chapter 04 trains it on
  the preset (its batch size, training code length, bf16 setting, ``oasis_negatives`` labelled
  negatives per query, here other CoSQA functions with labels drawn uniformly, 0.98 InfoNCE + 0.02
  CoSENT), without a chunk and with the preset's ``grad_cache_chunk``: the step behind chapter 04's peak.

Each job's peak is ``ru_maxrss`` of its own process; the baseline row (Python with torch and the
workbench imported) shows how much of it is the interpreter and libraries.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import RESULTS, ROOT, check, peak_rss_mb, write_result

JOBS = {
    "baseline": "import torch, workbench.training, workbench.evaluation",
    "mining": "from workbench.config import resolve\nfrom workbench.corpus import build_corpus\n"
              "df = build_corpus(resolve(PRESET).corpus)\nprint('pairs', len(df))",
    "training_fp32": "TRAIN(False)",
    "training_bf16": "TRAIN(True)",
    "oasis_plain": "TRAIN_OASIS(None)",
    "oasis_chunked": "from workbench.config import resolve\nTRAIN_OASIS(resolve(PRESET).grad_cache_chunk)",
    "evaluation": "from workbench.tasks import load_cosqa\nfrom workbench.evaluation import evaluate\n"
                  "from workbench.models import BiEncoder\n"
                  "r = evaluate(BiEncoder.load('minilm', max_query_len=64, max_code_len=256), load_cosqa(), bf16=True,"
                  " show_progress=False)\nprint('mrr', r.metrics['mrr'])",
}

PRELUDE = """
import json, resource, sys, tempfile, time
sys.path.insert(0, {bench!r})
import common
PRESET = {preset!r}
def TRAIN(bf16):
    from train_throughput import cosqa_pairs
    from workbench.models import BiEncoder
    from workbench.training import TrainConfig, train
    with tempfile.TemporaryDirectory() as tmp:
        train(BiEncoder.load('minilm', max_query_len=128, max_code_len=128), cosqa_pairs(480),
              TrainConfig(epochs=1, batch_size=32, bf16=bf16), out_dir=tmp, show_progress=False)
def TRAIN_OASIS(chunk):
    import numpy as np
    from train_throughput import cosqa_pairs
    from workbench.config import resolve
    from workbench.experiment import train_config
    from workbench.models import BiEncoder
    from workbench.training import train
    from workbench.training.train_config import LabelledNegatives
    P = resolve(PRESET)
    pairs = cosqa_pairs(P.batch_size * 3)
    pool = cosqa_pairs(500)["code"].tolist()[P.batch_size * 3:]
    k = P.oasis_negatives
    class Hook:
        labelled, key = True, "memory-peaks-oasis"
        def __call__(self, rows, step, progress):
            rng = np.random.default_rng(step)
            return LabelledNegatives(texts=[pool[i] for i in rng.integers(0, len(pool), len(rows) * k)],
                                     rows=np.repeat(np.arange(len(rows)), k),
                                     labels=rng.uniform(0.2, 0.9, len(rows) * k).astype(np.float32),
                                     positive_labels=np.ones(len(rows), np.float32))
    cfg = train_config(P, epochs=1, dynamics_mode="none", contrastive_weight=P.oasis_contrastive_weight,
                       order_weight=P.oasis_order_weight, grad_cache_chunk=chunk)
    with tempfile.TemporaryDirectory() as tmp:
        train(BiEncoder.load(P.model, max_query_len=P.max_query_len, max_code_len=P.max_code_len), pairs, cfg,
              out_dir=tmp, show_progress=False, negatives=Hook())
t = time.perf_counter()
"""


def run_job(name: str, preset: str) -> dict:
    code = PRELUDE.format(bench=str(ROOT / "benchmarks"), preset=preset) + JOBS[name] + (
        "\nprint('RESULT', json.dumps({'seconds': time.perf_counter() - t,"
        " 'peak_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))"
    )
    with tempfile.TemporaryDirectory() as data:
        env = dict(os.environ)
        if name == "mining":  # a fresh data folder: parse every source again, but reuse the downloaded wheels
            (Path(data) / "wheels").symlink_to(ROOT / "data" / "wheels")
            env["WORKBENCH_DATA"] = data
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)
    if out.returncode != 0:
        raise SystemExit(f"{name} failed:\n{out.stderr[-3000:]}")
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--jobs", nargs="+", default=list(JOBS))
    args = ap.parse_args()
    rows: dict[str, dict] = {}
    earlier = RESULTS / "memory_peaks.json"
    if earlier.exists():  # a run of some jobs keeps the other jobs' rows of the same preset
        old = json.loads(earlier.read_text())
        if old.get("args", {}).get("preset") == args.preset:
            rows = {k: v for k, v in old.get("jobs", {}).items() if k in JOBS}
    for name in args.jobs:
        t = time.perf_counter()
        rows[name] = run_job(name, args.preset)
        print(f"  {name:>14}: peak RSS {rows[name]['peak_rss_mb']:7.0f} MiB, {rows[name]['seconds']:6.1f} s "
              f"(wall {time.perf_counter() - t:.0f} s)", flush=True)
    targets = []
    if {"oasis_plain", "oasis_chunked"} <= set(args.jobs):  # both measured in this run: a ratio against it
        plain, chunked = rows["oasis_plain"], rows["oasis_chunked"]
        print(f"  OASIS step, chunked / plain: peak RSS x{chunked['peak_rss_mb'] / plain['peak_rss_mb']:.2f}, "
              f"time x{chunked['seconds'] / plain['seconds']:.2f}", flush=True)
        targets.append(check("OASIS training step with the preset's grad_cache_chunk (peak MiB)",
                             chunked["peak_rss_mb"], 4096, higher_is_better=False, unit=" MiB"))
    write_result("memory_peaks", {"args": vars(args), "jobs": rows, "peak_rss_mb": peak_rss_mb(), "targets": targets})


if __name__ == "__main__":
    main()
