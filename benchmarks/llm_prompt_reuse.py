"""The in-process LLM on real rewrite requests: a prompt evaluated from scratch each time, against the
prefix it shares with the previous request reused in whole 64-token chunks (``LlamaCppBackend``).

The requests are chapter 02's query rewrites ("single" mode: one system prompt and the worked
examples shared by every request, then the pair's docstring) for the first ``--pairs`` training pairs
of the smoke corpus, ``--n`` rewrites each, with the preset's sampling. Both variants run on the same
model file and thread count, interleaved over ``--rounds``, in this process; the figure is the ratio
of their medians. The texts of the reused run must equal those of a fresh evaluation of each request
(the determinism the chunking is for): the benchmark checks it and says so.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/llm_prompt_reuse.py [--model smollm2-135m] [--pairs 6]
"""

from __future__ import annotations

import argparse

from common import interleaved, peak_rss_mb, same_text_speedup, write_result

from workbench.augment.prompts import build_query_requests
from workbench.corpus import build_corpus
from workbench.llm import LlamaCppBackend, local_model_path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--pairs", type=int, default=6)
    ap.add_argument("--n", type=int, default=2, help="rewrites per pair")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()

    pairs = build_corpus("smoke", progress=False)
    pairs = pairs[pairs["split"] == "train"].head(args.pairs)
    requests = build_query_requests(pairs, n=args.n, seed=0)
    backend = LlamaCppBackend(local_model_path(args.model), n_ctx=2048, n_threads=args.threads)
    llm = backend._llm
    texts: dict[str, list[str]] = {}

    def run(reuse: bool):
        def fn() -> None:
            llm.reset()  # each run starts from an empty cache
            llm.whole = 0
            out = []
            for r in requests:
                if not reuse:  # every prompt from scratch (what 293de2c did)
                    llm.reset()
                    llm.whole = 0
                out.append(backend.chat(list(r.messages), r.sampling))
            texts["reuse" if reuse else "scratch"] = out
        return fn

    print(f"[bench] {len(requests)} query-rewrite requests ({args.pairs} pairs x {args.n}), {args.model}, "
          f"{args.threads} thread(s)", flush=True)
    try:
        seconds = interleaved({"scratch": run(False), "reuse": run(True)}, args.rounds)
    finally:
        backend.close()
    same = texts["scratch"] == texts["reuse"]
    speedup, targets = same_text_speedup(
        seconds, "scratch", "reuse", same, "llm: chunked prompt reuse / from scratch (speed)",
        "llm: texts with reuse equal fresh evaluations", 1.3)
    write_result("llm_prompt_reuse", {"args": vars(args), "seconds": seconds, "speedup": speedup,
                                      "identical_texts": same, "requests": len(requests),
                                      "peak_rss_mb": peak_rss_mb(), "targets": targets})


if __name__ == "__main__":
    main()
