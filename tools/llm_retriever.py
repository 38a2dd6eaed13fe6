"""A generative LLM as a zero-shot retriever: the LLM row of *Select then MixUp*'s first table, measured.

The paper (papers/000, "Results") scores DeepSeek-R1, Llama 3.1 and Qwen2.5-Coder 7B without training
at MRR 0.45-8.27 (fine-tuned code encoders: about 56-60) and therefore dismisses LLMs for code search.
This tool scores the LLM the workbench ships (Qwen2.5-Coder-0.5B-Instruct, Q4_K_M, in llama.cpp) the
same way on the test sets of chapter 04: ``experiment.comparison_suite(params)`` builds them exactly as
04 does, the chosen sets keep their pools (so MRR is comparable with 04's table) and only their
queries are capped (``task.subset(n, seed=params.test_seed)``). How the LLM retrieves: every query and
every function of a pool is run through the model once, its last hidden states are mean-pooled and
L2-normalised (``workbench.llm.LLMEmbedder``: queries cut to 64 tokens, code to 256, no prompt), and
each query ranks the pool by cosine. The zero-shot MiniLM (``experiment.fresh_encoder(params)``, the
starting point of every model 04 trains) is scored on the same capped tasks for reference.

    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 .venv/bin/python tools/llm_retriever.py \\
        --model qwen-coder-0.5b --sets id_test,stdlib --queries 100 --out papermill_runs/llm_retriever

The LLM's encoding is slow on a CPU (every pool function is a forward pass of the LLM), so the tool
first times ~20 texts, counts every text's tokens and prints an estimate per set before the big run
(``--estimate-only`` stops there). Each set's LLM evaluation is cached under ``--out/eval/`` (an
interrupted run resumes per set). Writes ``llm_retriever.csv`` (one row per model: MRR per set, their
mean, seconds), ``llm_retriever_detail.csv`` (every metric per model and set) and ``estimate.csv``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import sys
import time
from pathlib import Path

# libgomp reads its wait policy once, when the first library using it loads (torch, before llama.cpp):
# spinning OpenMP threads made the LLM's encoding 2-3x slower on the shared 2-core CPU (see
# workbench.llm.llamacpp.openmp_environment)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pandas as pd  # noqa: E402

PAPER_ROW = "paper (papers/000, Table 1): zero-shot LLMs MRR 0.45-8.27; fine-tuned code encoders ~56-60"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="qwen-coder-0.5b", help="qwen-coder-0.5b | smollm2-135m | a .gguf file")
    ap.add_argument("--preset", default="cpu", help="smoke | cpu | gpu | paper (default cpu): the test sets of 04")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="NAME=VALUE",
                    help="a run parameter, e.g. --set eval_seed=7 (repeatable)")
    ap.add_argument("--sets", default="id_test,stdlib,web,cosqa_dev", help="comma-separated test sets of 04")
    ap.add_argument("--queries", type=int, default=None, help="at most this many queries per set (pools stay whole)")
    ap.add_argument("--out", required=True, type=Path, help="folder for the CSV files and the evaluation cache")
    ap.add_argument("--max-query-tokens", type=int, default=None, help="default: the max_query_len parameter (64)")
    ap.add_argument("--max-code-tokens", type=int, default=None, help="default: the max_code_len parameter (256)")
    ap.add_argument("--query-prefix", default="", help="text put before every query (default none)")
    ap.add_argument("--code-prefix", default="", help="text put before every function (default none)")
    ap.add_argument("--threads", type=int, default=None, help="llama.cpp threads (default: the threads parameter)")
    ap.add_argument("--timing-texts", type=int, default=20, help="texts timed for the estimate (default 20)")
    ap.add_argument("--estimate-only", action="store_true", help="print the estimate and stop")
    ap.add_argument("--no-minilm", action="store_true", help="skip the zero-shot MiniLM reference")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    args = ap.parse_args(argv)

    from workbench import experiment
    from workbench.config import parse_assignment, resolve
    from workbench.errors import ParameterError, WorkbenchError
    from workbench.llm import LLMEmbedder
    from workbench.runtime import set_threads
    from workbench.store import cache_key

    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 40)
    try:
        params = resolve(args.preset, dict(parse_assignment(a) for a in args.overrides))
        if args.queries is not None and args.queries < 1:
            raise ParameterError(f"--queries must be >= 1, got {args.queries}")
        set_threads(params.threads)
        show = not args.quiet
        out: Path = args.out
        out.mkdir(parents=True, exist_ok=True)
        # 04 scores every model of its comparison (its zero-shot row included) in this precision
        pe = dataclasses.replace(params, bf16_eval=params.select_bf16_eval)

        t0 = time.perf_counter()
        _, _, all_tasks = experiment.comparison_suite(params)
        wanted = [s.strip() for s in args.sets.split(",") if s.strip()]
        unknown = [s for s in wanted if s not in all_tasks]
        if unknown:
            raise ParameterError(f"unknown test set(s) {unknown}; the {args.preset} preset has {sorted(all_tasks)}")
        tasks = {}
        for name in wanted:
            task = all_tasks[name]
            if args.queries is not None and args.queries < len(task.queries):
                task = task.subset(args.queries, seed=params.test_seed)
            tasks[name] = task
        print(f"test sets of 04 ({args.preset} preset) built in {time.perf_counter() - t0:.0f} s")

        llm = LLMEmbedder(
            args.model,
            max_query_tokens=args.max_query_tokens or params.max_query_len,
            max_code_tokens=args.max_code_tokens or params.max_code_len,
            query_prefix=args.query_prefix, code_prefix=args.code_prefix,
            n_threads=args.threads or params.threads,
        )
        print(f"LLM retriever: {llm!r}\n  {llm.model_path}")

        # timing sample: texts drawn from every chosen pool and query list, then a per-token cost
        rng = random.Random(params.test_seed)
        texts = [(t, "code") for task in tasks.values() for t in task.corpus.values()]
        texts += [(t, "query") for task in tasks.values() for t in task.queries.values()]
        sample = rng.sample(texts, min(args.timing_texts, len(texts)))
        n_tok = sum(len(llm.tokens(t, kind)) for t, kind in sample)
        t = time.perf_counter()
        for text, kind in sample:
            llm.encode([text], kind=kind, show_progress=False)
        took = time.perf_counter() - t
        per_token = took / max(n_tok, 1)
        print(f"timing: {len(sample)} texts ({n_tok} tokens) in {took:.1f} s = {took / len(sample):.2f} s per text, "
              f"{1000 * per_token:.1f} ms per token")
        est_rows = []
        for name, task in tasks.items():
            code_tok = sum(len(llm.tokens(x, "code")) for x in task.corpus.values())
            query_tok = sum(len(llm.tokens(x, "query")) for x in task.queries.values())
            est_rows.append({"task": name, "queries": len(task.queries), "pool": len(task.corpus),
                             "code tokens": code_tok, "query tokens": query_tok,
                             "estimated minutes": round((code_tok + query_tok) * per_token / 60, 1)})
        estimate = pd.DataFrame(est_rows)
        estimate.to_csv(out / "estimate.csv", index=False)
        print(f"\n== estimate (LLM encoding only)\n{estimate.to_string(index=False)}\n"
              f"total: about {estimate['estimated minutes'].sum():.0f} min")
        if args.estimate_only:
            return 0

        key = cache_key({"llm": llm.describe(), "preset": args.preset, "overrides": sorted(args.overrides),
                         "queries": args.queries}, length=12)
        detail, rows = [], []
        for name, task in tasks.items():
            summary, _ = experiment.cached_evaluation(
                out / "eval" / f"{args.model if '/' not in args.model else Path(args.model).stem}-{key}" / name,
                lambda: llm, {name: task}, pe, label=f"{llm.name} zero-shot LLM", show_progress=show)
            detail.append(summary)
            print(summary[["model", "task", "queries", "pool", "MRR", "MRR 95% CI", "R@1", "R@10"]].to_string(index=False))
        llm_table = pd.concat(detail, ignore_index=True)
        rows.append(_row(llm_table, "LLM " + llm.name, "mean-pooled last hidden states, cosine (zero-shot)"))
        llm.close()

        if not args.no_minilm:
            minilm, _ = experiment.evaluate_suite(experiment.fresh_encoder(params), tasks, pe,
                                                  label=f"{params.model} zero-shot", show_progress=show)
            detail.append(minilm)
            rows.append(_row(minilm, f"{params.model} zero-shot", "bi-encoder (sentence-transformers), cosine"))

        table = pd.DataFrame(rows)
        table.to_csv(out / "llm_retriever.csv", index=False)
        pd.concat(detail, ignore_index=True).to_csv(out / "llm_retriever_detail.csv", index=False)
        print(f"\n== MRR (%) per test set, {args.preset} preset, "
              f"{'all' if args.queries is None else f'at most {args.queries}'} queries per set, whole pools")
        print(table.to_string(index=False))
        print(PAPER_ROW)
        print(f"\nCSV files written to {out}")
    except WorkbenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def _row(summary: pd.DataFrame, model: str, how: str) -> dict:
    """One row of the table: MRR per set and their mean, the seconds each set's evaluation took (encoding,
    search and bootstrap; as measured when it ran, also when read back from the cache) and their sum."""
    mrr = dict(zip(summary["task"], summary["MRR"]))
    seconds = dict(zip(summary["task"], summary["seconds"]))
    row = {"model": model, "how": how, **{f"MRR {t}": v for t, v in mrr.items()},
           "MRR mean": round(sum(mrr.values()) / len(mrr), 2)}
    row.update({f"seconds {t}": s for t, s in seconds.items()})
    row["seconds"] = round(sum(seconds.values()), 1)
    return row


if __name__ == "__main__":
    sys.exit(main())
