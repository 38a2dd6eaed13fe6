"""Encoding throughput of the workbench's BiEncoder against ``SentenceTransformer.encode``.

    python benchmarks/encode_throughput.py                 # 1,000 CoSQA functions, MiniLM, 256 tokens, batch 64
    python benchmarks/encode_throughput.py --n 200 --rounds 1 --no-mrr   # a quick look

Same model folder (all-MiniLM-L6-v2 from its pip package), same texts (the first ``--n`` functions
of CoSQA dev's pool), batch size and max length. Variants, run interleaved ``--rounds`` times:
``st`` (``SentenceTransformer.encode``, normalised), ``fp32_unsorted``, ``fp32_sorted`` (token-length
sorted batches, the default) and ``bf16_sorted`` (plus bf16 autocast, the fast path). Reports codes/s
and tokens/s of each, the speed-up of each against ``st`` (target: bf16_sorted >= 1.6x), the largest
embedding difference against fp32, tokens/s as a fraction of the machine's matmul peak (a 2048^3
matmul measured here) using the model's FLOPs per token (2 x non-embedding parameters + attention),
and CoSQA dev MRR of the base model in fp32 and bf16 (target: within 0.2 points).
"""

from __future__ import annotations

import argparse

import numpy as np
from common import check, interleaved, matmul_peak_gflops, median, peak_rss_mb, write_result


def flops_per_token(model, mean_padded_len: float) -> float:
    """2 x parameters outside the embeddings (the dense layers' multiply-adds) plus attention's
    QK^T and AV products: 4 x layers x width x sequence length per token."""
    cfg = model.config
    non_emb = sum(p.numel() for n, p in model.named_parameters() if "embeddings" not in n)
    return 2 * non_emb + 4 * cfg.num_hidden_layers * cfg.hidden_size * mean_padded_len


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="minilm")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--max-len", type=int, default=256)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    ap.add_argument("--device", default="auto", help="auto (CUDA when torch sees one), cpu or cuda[:N]")
    ap.add_argument("--no-mrr", action="store_true", help="skip the CoSQA dev MRR check (about 3 min on 2 cores)")
    args = ap.parse_args()

    import torch
    from sentence_transformers import SentenceTransformer

    from workbench.evaluation import evaluate
    from workbench.models import BiEncoder
    from workbench.models.registry import resolve_model
    from workbench.runtime import pick_device
    from workbench.tasks import load_cosqa

    if args.threads:
        torch.set_num_threads(args.threads)
    task = load_cosqa()
    texts = list(task.corpus.values())[: args.n]
    device = pick_device(args.device)
    ours = BiEncoder.load(args.model, max_query_len=args.max_len, max_code_len=args.max_len, device=device)
    st = SentenceTransformer(str(resolve_model(args.model)), device=str(device))
    st.max_seq_length = args.max_len
    lengths = ours.token_lengths(texts, "code")
    tokens = int(lengths.sum())

    def padded_tokens(sort: bool) -> int:
        ls = np.sort(lengths)[::-1] if sort else lengths
        return int(sum(ls[s:s + args.batch].max() * len(ls[s:s + args.batch]) for s in range(0, len(ls), args.batch)))

    variants = {
        "st": lambda: st.encode(texts, batch_size=args.batch, normalize_embeddings=True, convert_to_numpy=True),
        "fp32_unsorted": lambda: ours.encode(texts, "code", args.batch, show_progress=False, sort_by_length=False),
        "fp32_sorted": lambda: ours.encode(texts, "code", args.batch, show_progress=False),
        "bf16_sorted": lambda: ours.encode(texts, "code", args.batch, bf16=True, show_progress=False),
    }
    print(f"[bench] warm-up; {len(texts)} texts, {tokens} tokens, max {args.max_len}, batch {args.batch}, "
          f"{torch.get_num_threads()} threads", flush=True)
    embs = {name: fn() for name, fn in variants.items()} if args.rounds > 0 else {}
    seconds = interleaved(variants, args.rounds)
    per_s = {k: len(texts) / median(v) for k, v in seconds.items()}
    tok_s = {k: tokens / median(v) for k, v in seconds.items()}
    speedup = {k: per_s[k] / per_s["st"] for k in per_s}
    diff = {k: float(np.abs(embs[k] - embs["fp32_sorted"]).max()) for k in embs}
    for k in variants:
        print(f"  {k:>14}: {per_s[k]:7.1f} codes/s  {tok_s[k]:8.0f} tokens/s  {speedup[k]:.2f}x st  "
              f"max |diff| vs fp32 {diff[k]:.1e}")

    peak = matmul_peak_gflops()
    fpt = flops_per_token(ours.model, padded_tokens(True) / len(texts))
    frac = {
        "fp32_sorted": tok_s["fp32_sorted"] * fpt / (peak["fp32"] * 1e9),
        "bf16_sorted": tok_s["bf16_sorted"] * fpt / (peak["bf16"] * 1e9),
    }
    print(f"  matmul peak: {peak['fp32']:.0f} GFLOP/s fp32, {peak['bf16']:.0f} GFLOP/s bf16; "
          f"{fpt / 1e6:.1f} MFLOP per token -> bound {peak['fp32'] * 1e9 / fpt:.0f} tokens/s fp32, "
          f"{peak['bf16'] * 1e9 / fpt:.0f} bf16; reached {frac['fp32_sorted']:.0%} (fp32) and "
          f"{frac['bf16_sorted']:.0%} (bf16) of it (counting real tokens, not padding)")
    targets = [check("encode: bf16_sorted / SentenceTransformer.encode", speedup["bf16_sorted"], 1.6)]

    mrr = {}
    if not args.no_mrr:
        print("[bench] CoSQA dev MRR in fp32 and bf16 (the base model, the full pool)", flush=True)
        ours.max_query_len, ours.max_code_len = 64, args.max_len
        for name, bf16 in (("fp32", False), ("bf16", True)):
            mrr[name] = evaluate(ours, task, bf16=bf16, n_boot=0, show_progress=False).metrics["mrr"]
        print(f"  MRR fp32 {mrr['fp32']:.2f}, bf16 {mrr['bf16']:.2f}")
        targets.append(check("encode: |MRR bf16 - fp32| on CoSQA dev (points)", abs(mrr["bf16"] - mrr["fp32"]),
                             0.2, higher_is_better=False, unit=""))

    write_result("encode_throughput", {
        "args": vars(args), "n_texts": len(texts), "tokens": tokens, "seconds": seconds,
        "codes_per_s": per_s, "tokens_per_s": tok_s, "speedup_vs_st": speedup, "max_abs_diff_vs_fp32": diff,
        "matmul_gflops": peak, "mflop_per_token": fpt / 1e6, "fraction_of_matmul_peak": frac,
        "cosqa_dev_mrr": mrr, "peak_rss_mb": peak_rss_mb(), "targets": targets,
    })


if __name__ == "__main__":
    main()
