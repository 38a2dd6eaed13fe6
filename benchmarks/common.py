"""Shared pieces of the benchmark scripts: timing, peak memory, the matmul peak, result files.

Every benchmark prints its figures as ratios against a reference measured in the same process
(these machines are noisy), each with its target, and writes ``benchmarks/results/<name>.json``
atomically, which ``benchmarks/run_all.py`` (``make bench``) collects into one table.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# --quick runs of run_all.py write to results/quick/ (WORKBENCH_BENCH_RESULTS), never over the full results
RESULTS = Path(os.environ.get("WORKBENCH_BENCH_RESULTS", ROOT / "benchmarks" / "results"))
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# a bf16 row measures bf16, also on a CPU without fast bf16 (where the workbench itself falls back to fp32)
os.environ.setdefault("WORKBENCH_BF16", "force")


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def interleaved(variants: dict[str, Callable[[], Any]], rounds: int) -> dict[str, list[float]]:
    """Run every variant once per round, in a rotating order, and return the seconds of each run.

    Rotating the order spreads slow phases of a noisy machine over all variants, so the ratio of
    their medians is fairer than back-to-back blocks.
    """
    names = list(variants)
    seconds: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            s, _ = timed(variants[name])
            seconds[name].append(s)
            print(f"  round {r + 1}/{rounds} {name}: {s:.2f} s", flush=True)
    return seconds


def median(xs: list[float]) -> float:
    return float(statistics.median(xs))


def matmul_peak_gflops(n: int = 2048, repeats: int = 3) -> dict[str, float]:
    """Best-of-``repeats`` GFLOP/s of an n x n x n matmul in fp32 and bf16 with torch's threads."""
    import torch

    out = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a = torch.randn(n, n, dtype=dtype)
        b = torch.randn(n, n, dtype=dtype)
        a @ b  # warm-up
        best = min(timed(lambda a=a, b=b: a @ b)[0] for _ in range(repeats))
        out[name] = 2 * n**3 / best / 1e9
    return out


def _cpu_fast_bf16() -> bool:
    """Whether this CPU has fast bf16 (``runtime.bf16_supported`` without the environment override)."""
    from workbench.runtime import _device_has_bf16

    return _device_has_bf16("cpu", None)


def machine() -> dict[str, Any]:
    import torch

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    info: dict[str, Any] = {
        "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
        "python": platform.python_version(), "processor": platform.processor() or platform.machine(),
        "load_avg_1min": round(os.getloadavg()[0], 2), "commit": commit,
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_fast_bf16": _cpu_fast_bf16(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def check(name: str, value: float, target: float, higher_is_better: bool = True, unit: str = "x") -> dict:
    """One target line: prints ``PASS`` / ``MISS`` with the value and the target, returns it as a dict."""
    ok = value >= target if higher_is_better else value <= target
    sign = ">=" if higher_is_better else "<="
    print(f"[target] {name}: {value:.3g}{unit} (target {sign} {target:g}{unit}) {'PASS' if ok else 'MISS'}", flush=True)
    return {"name": name, "value": value, "target": target, "higher_is_better": higher_is_better,
            "unit": unit, "pass": bool(ok)}


def same_text_speedup(seconds: dict[str, list[float]], slow: str, fast: str, same: bool, figure: str,
                      identity: str, target: float) -> tuple[float, list[dict]]:
    """Two variants that must give the same texts (LLM benchmarks): prints the medians and the ratio
    ``slow / fast``, and returns it with its two target lines (the speed-up, the identical texts)."""
    speedup = median(seconds[slow]) / median(seconds[fast])
    print(f"  {slow} {median(seconds[slow]):.1f} s, {fast} {median(seconds[fast]):.1f} s (medians): x{speedup:.2f}; "
          f"texts identical: {same}", flush=True)
    return speedup, [check(figure, speedup, target), check(identity, float(same), 1.0, unit="")]


def write_result(name: str, result: dict[str, Any]) -> Path:
    """``benchmarks/results/<name>.json``, written atomically (tmp file + rename)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"benchmark": name, "machine": machine(), **result}, indent=1, default=float))
    os.replace(tmp, path)
    print(f"[bench] wrote {path}", flush=True)
    return path
