"""Training throughput of the workbench's trainer against sentence-transformers' own trainer.

    python benchmarks/train_throughput.py                  # 480 CoSQA pairs, MiniLM, batch 32, 128 tokens
    python benchmarks/train_throughput.py --pairs 160 --variants st_fp32 ours_bf16   # a quick look

Both train all-MiniLM-L6-v2 (from its pip package, fresh weights for every run) for one epoch on the
same (query, gold code) pairs of CoSQA dev, batch size ``--batch``, max length ``--max-len`` for
queries and codes, temperature 0.05 (MultipleNegativesRankingLoss's scale 20 = 1 / 0.05), lr 2e-5,
10% warm-up, weight decay 0.01, gradient clipping at 1.0, incomplete last batch dropped:

- ``st_fp32`` / ``st_bf16``: ``SentenceTransformerTrainer`` with ``MultipleNegativesRankingLoss``
  (CPU, ``bf16=True`` for the second: the HF Trainer's autocast);
- ``ours_fp32`` / ``ours_bf16``: ``workbench.training.train`` with ``dynamics_mode="none"``
  (``bf16=True``: autocast; the loss itself in fp32); ``ours_bf16_mb8`` adds ``micro_batch=8``
  (each side of a batch embedded in length-sorted passes of 8 texts: less padding, same batch).

Each run is timed as a whole call (setup, the epoch, and our checkpoint and model save; the model
load is outside the clock). Target: the fastest of ours >= 1.5x the pairs/s of ``st_fp32``. In fp32 the
two loss curves must match within noise: for each third of the steps, the means of the two
curves differ by at most twice the standard error of that difference (the batches differ: each
trainer shuffles the pairs its own way).
"""

from __future__ import annotations

import argparse
import math
import tempfile

import numpy as np
from common import check, median, peak_rss_mb, timed, write_result

LR, WARMUP, WD, CLIP, TAU, SEED = 2e-5, 0.1, 0.01, 1.0, 0.05, 42


def cosqa_pairs(n: int):
    import pandas as pd

    from workbench.tasks import load_cosqa

    task = load_cosqa()
    rows = []
    for qid, rel in task.qrels.items():
        cid = next(iter(rel))
        rows.append({"id": qid, "query": task.queries[qid], "code": task.corpus[cid]})
    return pd.DataFrame(rows[:n])


DEVICE = "cpu"  # set by main (--device)


def run_st(pairs, batch: int, max_len: int, bf16: bool) -> tuple[float, list[float]]:
    import datasets
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    from workbench.models.registry import resolve_model

    model = SentenceTransformer(str(resolve_model("minilm")), device=DEVICE)
    model.max_seq_length = max_len
    data = datasets.Dataset.from_dict({"anchor": pairs["query"].tolist(), "positive": pairs["code"].tolist()})
    with tempfile.TemporaryDirectory() as tmp:
        args = SentenceTransformerTrainingArguments(
            output_dir=tmp, num_train_epochs=1, per_device_train_batch_size=batch, learning_rate=LR,
            warmup_ratio=WARMUP, weight_decay=WD, max_grad_norm=CLIP, seed=SEED, logging_steps=1,
            save_strategy="no", report_to=[], use_cpu=DEVICE == "cpu", dataloader_drop_last=True, bf16=bf16,
            disable_tqdm=True,
        )

        def fit():
            trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=data,
                                                 loss=MultipleNegativesRankingLoss(model, scale=1 / TAU))
            trainer.train()
            return [h["loss"] for h in trainer.state.log_history if "loss" in h]

        return timed(fit)


def run_ours(pairs, batch: int, max_len: int, bf16: bool, micro_batch: int | None = None) -> tuple[float, list[float]]:
    from workbench.models import BiEncoder
    from workbench.training import TrainConfig, train

    enc = BiEncoder.load("minilm", max_query_len=max_len, max_code_len=max_len, device=DEVICE)
    cfg = TrainConfig(epochs=1, batch_size=batch, lr=LR, warmup_ratio=WARMUP, weight_decay=WD, max_grad_norm=CLIP,
                      temperature=TAU, seed=SEED, dynamics_mode="none", bf16=bf16, drop_last=True,
                      micro_batch=micro_batch)
    with tempfile.TemporaryDirectory() as tmp:
        s, res = timed(lambda: train(enc, pairs, cfg, out_dir=tmp, show_progress=False))
        return s, res.history["loss"].tolist()


def within_noise(a: list[float], b: list[float], parts: int = 3) -> tuple[bool, list[dict]]:
    rows, ok = [], True
    for i in range(parts):
        lo, hi = i * len(a) // parts, (i + 1) * len(a) // parts
        x, y = np.array(a[lo:hi]), np.array(b[lo:hi])
        se = math.sqrt(x.var(ddof=1) / len(x) + y.var(ddof=1) / len(y)) if len(x) > 1 else float("inf")
        d = float(x.mean() - y.mean())
        rows.append({"steps": f"{lo + 1}-{hi}", "ours": float(x.mean()), "st": float(y.mean()), "diff": d, "se": se})
        ok &= abs(d) <= 2 * se
    return ok, rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=480)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--max-len", type=int, default=128)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--variants", nargs="+", default=["st_fp32", "ours_fp32", "ours_bf16", "ours_bf16_mb8", "st_bf16"])
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--device", default="auto", help="auto (CUDA when torch sees one), cpu or cuda[:N]")
    args = ap.parse_args()

    import torch

    from workbench.runtime import pick_device

    global DEVICE
    DEVICE = str(pick_device(args.device))

    if args.threads:
        torch.set_num_threads(args.threads)
    pairs = cosqa_pairs(args.pairs)
    steps = len(pairs) // args.batch
    fns = {"st_fp32": lambda: run_st(pairs, args.batch, args.max_len, False),
           "st_bf16": lambda: run_st(pairs, args.batch, args.max_len, True),
           "ours_fp32": lambda: run_ours(pairs, args.batch, args.max_len, False),
           "ours_bf16": lambda: run_ours(pairs, args.batch, args.max_len, True),
           "ours_bf16_mb8": lambda: run_ours(pairs, args.batch, args.max_len, True, 8)}
    print(f"[bench] {len(pairs)} pairs, {steps} steps of {args.batch}, max {args.max_len} tokens, "
          f"{torch.get_num_threads()} threads", flush=True)
    seconds: dict[str, list[float]] = {v: [] for v in args.variants}
    losses: dict[str, list[float]] = {}
    for r in range(args.rounds):
        order = args.variants[r % len(args.variants):] + args.variants[: r % len(args.variants)]
        for v in order:
            s, curve = fns[v]()
            seconds[v].append(s)
            losses[v] = curve
            print(f"  round {r + 1}/{args.rounds} {v}: {s:.1f} s, {steps * args.batch / s:.2f} pairs/s, "
                  f"loss {curve[0]:.3f} -> {curve[-1]:.3f} ({len(curve)} steps)", flush=True)
    pairs_s = {v: steps * args.batch / median(s) for v, s in seconds.items()}
    targets = []
    if "st_fp32" in pairs_s:
        for v in pairs_s:
            print(f"  {v:>9}: {pairs_s[v]:.2f} pairs/s, {pairs_s[v] / pairs_s['st_fp32']:.2f}x st_fp32")
        ours = [v for v in pairs_s if v.startswith("ours")]
        if ours:
            best = max(ours, key=pairs_s.get)
            targets.append(check(f"train: {best} / ST MNRL fp32 pairs/s", pairs_s[best] / pairs_s["st_fp32"], 1.5))
    curve_rows: list[dict] = []
    if "st_fp32" in losses and "ours_fp32" in losses:
        ok, curve_rows = within_noise(losses["ours_fp32"], losses["st_fp32"])
        for row in curve_rows:
            print(f"  fp32 loss, steps {row['steps']}: ours {row['ours']:.3f}, st {row['st']:.3f}, "
                  f"diff {row['diff']:+.3f} (2 se = {2 * row['se']:.3f})")
        targets.append(check("train: fp32 loss curves agree (thirds within 2 se)", float(ok), 1.0, unit=""))
    write_result("train_throughput", {
        "args": vars(args), "steps": steps, "seconds": seconds, "pairs_per_s": pairs_s, "losses": losses,
        "loss_thirds_fp32": curve_rows, "peak_rss_mb": peak_rss_mb(), "targets": targets,
    })


if __name__ == "__main__":
    main()
