"""Web-style queries as training data (issue 20, section 1): the LLM rewrites the docstring query of
every pair of the recipe's training sample (``experiment.training_sample(corpus, --pairs, --seed)``,
the pairs a fine-tune of that size trains on) into the short query a developer would type into a web
search engine (``workbench.augment.web_queries``), in-process with the embedded Qwen2.5-Coder-0.5B
by default. Writes the accepted pairs (the input's columns + ``aug_of``, ``aug_kind``, ``aug_op``)
as parquet and the rejection counts next to it (``<out>.counts.csv``). Every request is cached
(``data/llm-cache``), so a re-run costs nothing and gives the same file.

    HF_HUB_OFFLINE=1 .venv/bin/python tools/web_queries.py --preset cpu --pairs 2000 --seed 42 \\
        --out data/web_queries/cpu-2000-seed42.parquet
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from workbench.augment.rewrites import rejection_counts
from workbench.augment.web_queries import web_query_pairs
from workbench.config import parse_assignment, resolve
from workbench.corpus import build_corpus
from workbench.experiment import training_sample
from workbench.llm import llm_cache_dir, llm_from_params
from workbench.runtime import set_threads
from workbench.store import atomic_write_parquet


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE", help="parameter overrides (e.g. llm_backend)")
    ap.add_argument("--pairs", type=int, default=2000, help="size of the training sample whose queries are rewritten")
    ap.add_argument("--seed", type=int, default=42, help="the training sample's seed and the requests' seed")
    ap.add_argument("--llm-model", default="qwen-coder-0.5b")
    ap.add_argument("--out", required=True, help="the accepted web-query pairs (.parquet)")
    args = ap.parse_args()

    over = dict(parse_assignment(a) for a in args.set)
    over.update({"llm_model": args.llm_model, "seed": args.seed})
    params = resolve(args.preset, over)
    set_threads(params.threads)
    pairs = build_corpus(params.corpus, progress=False)
    sample = training_sample(pairs, args.pairs, args.seed)
    print(f"[web_queries] corpus {params.corpus}: {len(pairs)} pairs, training sample {len(sample)} "
          f"(seed {args.seed}); LLM {params.llm_backend}/{params.llm_model}, cache {llm_cache_dir()}", flush=True)

    llm = llm_from_params(params)
    t0 = time.perf_counter()
    out, log = web_query_pairs(llm, sample, n=None, seed=args.seed)
    seconds = time.perf_counter() - t0
    stats = llm.stats()

    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_parquet(path, out)
    counts = rejection_counts(log)
    counts.to_csv(path.with_suffix(".counts.csv"), index=False)
    reasons = {str(k): int(v) for k, v in log["reason"].dropna().value_counts().items()}
    n_req = max(1, len(sample))
    print(f"[web_queries] {len(sample)} requests in {seconds:.1f} s ({seconds / n_req:.2f} s per request; "
          f"cache hits {stats['hits']}, misses {stats['misses']}, "
          f"{stats['seconds_generating'] / max(1, stats['misses']):.2f} s per generated answer)")
    print(f"[web_queries] accepted {len(out)} of {len(log)}; rejected by reason {reasons}")
    print(f"[web_queries] wrote {path} and {path.with_suffix('.counts.csv')}")
    with pd.option_context("display.width", 200, "display.max_colwidth", 80):
        print(out[["query", "func_name"]].head(10).to_string())


if __name__ == "__main__":
    main()
