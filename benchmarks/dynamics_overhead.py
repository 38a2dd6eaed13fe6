"""What recording the training dynamics costs: training with ``in_batch`` and ``fixed_pool``
dynamics against the same training without recording (``dynamics_mode="none"``).

    python benchmarks/dynamics_overhead.py                 # 480 CoSQA pairs, MiniLM, batch 32, 128 tokens
    python benchmarks/dynamics_overhead.py --pairs 160 --rounds 1

Same pairs, seed and config; one epoch each, whole ``train`` calls timed, variants interleaved over
``--rounds``. ``in_batch`` scores each pair from the logits its step computes anyway (target: <= 3%
overhead); ``fixed_pool`` with one checkpoint per epoch encodes every training query and code once
more without gradients and scores them against a pool of ``--pool`` codes (target: <= 35%).
"""

from __future__ import annotations

import argparse
import tempfile

from common import check, interleaved, median, peak_rss_mb, write_result
from train_throughput import LR, SEED, TAU, cosqa_pairs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=480)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--max-len", type=int, default=128)
    ap.add_argument("--pool", type=int, default=256)
    ap.add_argument("--bf16", action="store_true", help="train (and score the pool) under bf16 autocast")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()

    import torch

    from workbench.models import BiEncoder
    from workbench.training import TrainConfig, train

    if args.threads:
        torch.set_num_threads(args.threads)
    pairs = cosqa_pairs(args.pairs)
    enc = BiEncoder.load("minilm", max_query_len=args.max_len, max_code_len=args.max_len)
    start = {k: v.clone() for k, v in enc.model.state_dict().items()}

    def run(mode: str):
        def fn():
            enc.model.load_state_dict(start)
            cfg = TrainConfig(epochs=1, batch_size=args.batch, lr=LR, temperature=TAU, seed=SEED, dynamics_mode=mode,
                              checkpoints_per_epoch=1, fixed_pool_size=args.pool, bf16=args.bf16)
            with tempfile.TemporaryDirectory() as tmp:
                return train(enc, pairs, cfg, out_dir=tmp, show_progress=False)
        return fn

    print(f"[bench] {len(pairs)} pairs, batch {args.batch}, max {args.max_len} tokens, pool {args.pool}, "
          f"{'bf16' if args.bf16 else 'fp32'}, {torch.get_num_threads()} threads", flush=True)
    seconds = interleaved({m: run(m) for m in ("none", "in_batch", "fixed_pool")}, args.rounds)
    base = median(seconds["none"])
    overhead = {m: median(s) / base - 1 for m, s in seconds.items()}
    for m, o in overhead.items():
        print(f"  {m:>10}: {median(seconds[m]):.1f} s, overhead {o:+.1%}")
    targets = [
        check("dynamics: in_batch overhead", 100 * overhead["in_batch"], 3, higher_is_better=False, unit="%"),
        check("dynamics: fixed_pool (1 checkpoint/epoch) overhead", 100 * overhead["fixed_pool"], 35,
              higher_is_better=False, unit="%"),
    ]
    write_result("dynamics_overhead", {"args": vars(args), "seconds": seconds, "overhead": overhead,
                                       "peak_rss_mb": peak_rss_mb(), "targets": targets})


if __name__ == "__main__":
    main()
