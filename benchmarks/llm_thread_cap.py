"""The in-process LLM under a thread cap in a notebook kernel, beside another busy process: prompts
evaluated on every core (llama-cpp-python's default ``n_threads_batch``) against prompts evaluated on
the capped threads only (what ``LlamaCppBackend`` does since 2026-12-07).

What it stands for: ``make test`` runs two pytest workers on two cores, each capped to one thread
(tests/conftest.py), and chapter 02 or 04 using the embedded LLM on one worker meets a fine-tune on the
other. ``n_threads`` capped the generation but not the prompt. Here a second process fine-tunes the
real MiniLM on one thread for the whole run (the other worker), and chapter 02's own LLM step
(``pipeline.llm_candidates`` on the smoke preset: its query and code rewrites, a fresh request cache)
runs in a Jupyter kernel started by papermill, as the chapters run, with the prompt on every core and
on the cap, interleaved over ``--rounds``. The figure is the ratio of the medians of the step's own
time (read in the kernel); the texts must be equal.

Why every core is so slow there: in a chapter torch is imported before llama.cpp, and llama.cpp's
OpenMP runtime is then torch's copy of libgomp (the same soname), which read ``OMP_WAIT_POLICY`` before
``workbench.llm.llamacpp.openmp_environment`` could set it: llama.cpp's two prompt threads spin at
every step of the graph while one of them waits for the core the neighbour holds.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/llm_thread_cap.py [--model smollm2-135m] [--rounds 2]
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

import nbformat
import papermill as pm
from common import interleaved, peak_rss_mb, same_text_speedup, write_result

from workbench.runs import ensure_kernel

# the other worker: a one-thread fine-tune of the real MiniLM, as chapter 03 or 04 runs beside chapter 02
BUSY = """
import torch
from workbench.models import BiEncoder
from workbench.runtime import set_threads
set_threads(1)
enc = BiEncoder.load("minilm", max_query_len=32, max_code_len=64)
net = enc.model  # the transformer
opt = torch.optim.AdamW(net.parameters(), lr=1e-5)
ids = torch.randint(1000, 2000, (32, 64))
while True:
    out = net(input_ids=ids, attention_mask=torch.ones_like(ids))
    (out[0] if isinstance(out, tuple) else out.last_hidden_state).pow(2).mean().backward()
    opt.step()
    opt.zero_grad()
"""

PARAMETERS = 'batch_threads = 1\nthreads = 1\nmodel = "smollm2-135m"\nout = "times.json"\n'

# what a chapter does: torch and the workbench first, then the chat model, then the requests
BODY = """
import json, tempfile, time
from workbench import runs
from workbench.augment import pipeline
from workbench.corpus import build_corpus
from workbench.llm import CachedLLM, LlamaCppBackend, local_model_path

run = runs.open_run("02_llm_augmentation", "smoke", {"threads": threads, "llm_model": model}, tempfile.mkdtemp())
P = run.params
data = pipeline.augmentation_data(build_corpus(P.corpus), P)
# the chapter's backend (llm_from_params), its prompt threads set explicitly
backend = LlamaCppBackend(local_model_path(P.llm_model), n_ctx=4096, n_threads=P.threads, prompt_threads=batch_threads)
llm = CachedLLM(backend, tempfile.mkdtemp())  # a fresh cache: every request is generated
t = time.perf_counter()
cands = pipeline.llm_candidates(llm, data, P)
seconds = time.perf_counter() - t
texts = [c.to_json() if hasattr(c, "to_json") else str(c) for c in (cands["queries"], cands["code"])]
json.dump({"seconds": seconds, "texts": texts, "requests": llm.stats()["misses"]}, open(out, "w"))
"""


def notebook(folder: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(PARAMETERS, metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell(BODY)]
    path = folder / "llm_requests.ipynb"
    nbformat.write(nb, path)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--threads", type=int, default=1, help="the cap (a pytest worker's)")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()

    cores = os.cpu_count() or 1
    folder = Path(tempfile.mkdtemp(prefix="llm_thread_cap-"))
    nb = notebook(folder)
    kernel = ensure_kernel()  # the project's kernel, as `workbench run` uses
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "WORKBENCH_MAX_THREADS": str(args.threads)}
    os.environ.update(env)  # the kernel inherits them, as under `make test`
    results: dict[str, list[dict]] = {}

    def run(batch_threads: int, name: str):
        def fn() -> None:
            stem = name.replace(" ", "_")
            out = folder / f"{stem}.json"
            pm.execute_notebook(str(nb), str(folder / f"{stem}.ipynb"), progress_bar=False, kernel_name=kernel, language="python",
                                parameters={"batch_threads": batch_threads, "threads": args.threads, "model": args.model,
                                            "out": str(out)})
            results.setdefault(name, []).append(json.loads(out.read_text()))
        return fn

    print(f"[bench] chapter 02's query and code rewrite requests in a papermill kernel, {args.model}, cap "
          f"{args.threads} thread(s), {cores} cores, a one-thread MiniLM fine-tune beside it", flush=True)
    busy = subprocess.Popen([sys.executable, "-c", BUSY], env=env)
    time.sleep(10)  # the neighbour's model loaded and training
    if busy.poll() is not None:
        raise SystemExit(f"the neighbour process stopped (exit {busy.returncode}): nothing would be measured")
    try:
        interleaved({"every core": run(cores, "every core"), "cap": run(args.threads, "cap")}, args.rounds)
        if busy.poll() is not None:
            raise SystemExit(f"the neighbour process stopped (exit {busy.returncode}) during the measurement")
    finally:
        busy.kill()
        busy.wait()
    # the requests' own time, read from the kernel (not the kernel's start)
    seconds = {name: [r["seconds"] for r in runs] for name, runs in results.items()}
    texts = {name: {json.dumps(r["texts"]) for r in runs} for name, runs in results.items()}
    same = len(texts["every core"] | texts["cap"]) == 1
    print(f"  {results['cap'][0]['requests']} requests, the prompt on every core and on the cap", flush=True)
    speedup, targets = same_text_speedup(
        seconds, "every core", "cap", same, "llm in a kernel: prompt threads capped / every core, busy neighbour",
        "llm: texts under the cap equal those on every core", 1.5)
    write_result("llm_thread_cap", {"args": vars(args), "seconds": seconds, "speedup": speedup, "cores": cores,
                                    "identical_texts": same, "requests": results["cap"][0]["requests"],
                                    "peak_rss_mb": peak_rss_mb(), "targets": targets})


if __name__ == "__main__":
    main()
