"""The ``workbench`` command.

    workbench eval   --model minilm --task cosqa --split dev [--data-dir DIR]   -> JSON metrics
    workbench run    [--preset tour|smoke|cpu|gpu|paper] [--notebooks 00 ...] [--set name=value ...]
    workbench corpus [--preset tour]                                          -> builds, prints stats
    workbench params [04] [--preset tour] [--set name=value ...]              -> what a chapter reads, and the values
    workbench models [--fetch mpnet]                                          -> the offline registry

Errors the user can fix (bad files, unknown names, bad parameters) print one clear line and exit 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from .errors import WorkbenchError


def _eval(args: argparse.Namespace) -> int:
    from .evaluation import evaluate
    from .models import BiEncoder
    from .runtime import set_threads
    from .tasks import load_task

    set_threads(args.threads)
    kwargs: dict[str, Any] = {}
    if args.data_dir:
        kwargs["data_dir"] = args.data_dir
    if args.split:
        kwargs["split"] = args.split
    if args.language:
        kwargs["language"] = args.language
    if args.code_field:
        kwargs["code_field"] = args.code_field
    task = load_task(args.task, **kwargs)
    if args.queries:
        task = task.subset(args.queries, seed=args.seed)
    encoder = BiEncoder.load(
        args.model, pooling=args.pooling, max_query_len=args.max_query_len, max_code_len=args.max_code_len, device=args.device
    )
    result = evaluate(
        encoder,
        task,
        k=args.k,
        batch_size=args.batch_size,
        bf16=args.bf16,
        n_boot=args.n_boot,
        seed=args.seed,
        show_progress=not args.quiet,
        model_name=args.model,
    )
    out = result.to_dict()
    out["settings"] = {
        "pooling": encoder.pooling,
        "max_query_len": encoder.max_query_len,
        "max_code_len": encoder.max_code_len,
        "bf16": args.bf16,
        "threads": args.threads,
        **({"code_field": task.meta["code_field"]} if task.meta.get("code_field") else {}),
    }
    out["task_summary"] = task.summary()  # counts, and the loader's notes (what it skipped and why)
    text = json.dumps(out, indent=2, sort_keys=True)
    if args.output:
        from .store import atomic_write_text

        atomic_write_text(args.output, text + "\n")
    print(text)
    return 0


def _run(args: argparse.Namespace) -> int:
    from .config import parse_assignment
    from .runs import run_notebooks, summary_lines

    overrides = dict(parse_assignment(s) for s in args.set or [])
    if args.overrides_json:
        import json

        overrides.update(json.loads(args.overrides_json))
    record = run_notebooks(args.preset, args.notebooks, overrides, run_dir=args.run_dir, log_output=not args.quiet,
                           notebook_dir=args.notebook_dir)
    print("\n".join(summary_lines(record)))
    return 0 if record.ok else 1


def _params(args: argparse.Namespace) -> int:
    from .config import SECTIONS, chapter_parameters, parse_assignment, resolve

    params = resolve(args.preset, dict(parse_assignment(s) for s in args.set or []))
    values = params.to_dict()
    sections = chapter_parameters(args.chapter) if args.chapter else SECTIONS
    count = sum(len(names) for names in sections.values())
    print(f"{args.chapter or 'every chapter'}: {count} parameters, values of preset {args.preset!r}"
          f"{' with ' + ', '.join(args.set) if args.set else ''} (change one: workbench run --set NAME=VALUE)")
    width = max(len(n) for names in sections.values() for n in names)
    for section, names in sections.items():
        print(f"[{section}]")
        for name in names:
            print(f"  {name:<{width}}  {json.dumps(values[name])}")
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from .sweep import load_sweep, run_sweep

    spec = load_sweep(args.file)
    if args.list:
        from .sweep import expand

        for r in expand(spec):
            print(r.id, r.overrides)
        return 0
    frame = run_sweep(spec, root=args.dir, only=args.only, log_output=not args.quiet)  # Ctrl-C: main() exits 130
    cols = [c for c in ("run", "status", "attempts", "seconds") if c in frame]
    print(frame[cols].to_string(index=False))
    if args.report:
        from .report import write_report
        from .sweep import sweep_dir

        for path in write_report(sweep_dir(spec, args.dir)):
            print("written:", path)
    return 0 if (frame["status"] == "ok").all() else 1


def _report(args: argparse.Namespace) -> int:
    from .report import find_folder, report_notebook, write_report

    folder = find_folder(args.folder)
    if args.notebook:
        print("written:", report_notebook(folder))
        print("written: the tables and figures beside it, in", folder / "report")
        return 0
    for path in write_report(folder, out_dir=args.out):
        print("written:", path)
    return 0


def _corpus(args: argparse.Namespace) -> int:
    from .config import resolve
    from .corpus import build_corpus, corpus_stats

    params = resolve(args.preset)
    target = getattr(args, "from_path", None)
    if target and args.spec:
        print("corpus: give --spec or --from, not both", file=sys.stderr)
        return 2
    if target:
        mapping = ",".join(f"{f}={c}" for f in ("query", "code", "id", "language", "source", "path", "func_name")
                           if (c := getattr(args, f"{f}_column", None)))
        target = f"{target}#{mapping}" if mapping else target
    spec = target or args.spec or params.corpus
    pairs = build_corpus(spec, force=args.force)
    print(corpus_stats(pairs).to_string())
    if target:
        from .corpus import corpus_dir, named_spec

        print(f"\nbuilt from {named_spec(target).in_distribution[0]}\nin {corpus_dir(named_spec(target))}\n"
              f"every chapter reads it with: --set corpus={target}")
    return 0


def _models(args: argparse.Namespace) -> int:
    from .models.registry import REGISTRY, resolve_model

    if args.fetch:
        path = resolve_model(args.fetch)
        print(f"{args.fetch}: {path}")
        return 0
    for entry in REGISTRY.values():
        print(f"{entry.name:<8} {entry.description}\n         install: {entry.install}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .config import PRESETS

    presets = list(PRESETS)
    p = argparse.ArgumentParser(prog="workbench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    e = sub.add_parser("eval", help="evaluate a model on a retrieval task and print JSON metrics")
    e.add_argument("--model", default="minilm", help="registry name (minilm, mpnet) or a local model folder")
    e.add_argument("--task", default="cosqa", help="cosqa, csn, advtest, xlcost or beir")
    e.add_argument("--split", default=None, help="split of the task (cosqa: dev or test)")
    e.add_argument("--language", default=None, help="language (csn, xlcost)")
    e.add_argument("--data-dir", default=None, help="folder (or file for advtest) holding the task's files")
    e.add_argument("--code-field", default=None,
                   help="csn, advtest, xlcost: the code field (code_tokens, joined with spaces, the default; or the "
                        "raw text: function for advtest, code for csn)")
    e.add_argument("--pooling", default=None, choices=["mean", "cls", "max", "last"])
    e.add_argument("--max-query-len", type=int, default=64)
    e.add_argument("--max-code-len", type=int, default=256)
    e.add_argument("--batch-size", type=int, default=64)
    e.add_argument("--bf16", action="store_true", help="bf16 autocast (CPU or GPU)")
    e.add_argument("--device", default=None, help="cpu or cuda (default: cpu)")
    e.add_argument("--threads", type=int, default=int(os.environ.get("WORKBENCH_THREADS", "2")))
    e.add_argument("--k", type=int, default=1000, help="MRR@k cut-off (CodeXGLUE: 1000)")
    e.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for the 95%% intervals")
    e.add_argument("--queries", type=int, default=None, help="evaluate a random subset of this many queries")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--output", default=None, help="also write the JSON to this file")
    e.add_argument("--quiet", action="store_true")
    e.set_defaults(func=_eval)

    r = sub.add_parser("run", help="execute the notebooks headlessly with papermill")
    r.add_argument("--preset", default="tour", choices=presets)
    r.add_argument("--notebooks", nargs="*", default=None, help="names or numbers (default: all, in order)")
    r.add_argument("--set", action="append", metavar="NAME=VALUE", help="override a parameter (repeatable)")
    r.add_argument("--run-dir", default=None, help="write into this folder instead of a new timestamped one")
    r.add_argument("--quiet", action="store_true", help="do not stream the notebooks' output")
    r.add_argument("--overrides-json", default=None, help=argparse.SUPPRESS)  # workbench sweep passes its runs' overrides
    r.add_argument("--notebook-dir", default=None, help="read the notebooks from this folder (default: notebooks/)")
    r.set_defaults(func=_run)

    s = sub.add_parser("sweep", help="run a grid of notebooks x parameters x seeds from a YAML file (resumable)")
    s.add_argument("file", help="the sweep file (see sweeps/ for examples)")
    s.add_argument("--dir", default=None, help="the sweep folder (default: papermill_runs/<sweep name>)")
    s.add_argument("--only", nargs="*", default=None, help="run only these run ids (see --list)")
    s.add_argument("--list", action="store_true", help="list the runs and their parameters, run nothing")
    s.add_argument("--quiet", action="store_true", help="do not stream the notebooks' output (progress lines only)")
    s.add_argument("--report", action="store_true", help="write the report when the sweep ends")
    s.set_defaults(func=_sweep)

    rp = sub.add_parser("report", help="aggregate a sweep (or one run folder) into tables and figures")
    rp.add_argument("folder", help="a sweep or run folder: a path, a name under papermill_runs/, or the sweep's YAML file")
    rp.add_argument("--out", default=None, help="where to write (default: <folder>/report)")
    rp.add_argument("--notebook", action="store_true",
                    help="execute notebooks/07_report.ipynb for the folder into <folder>/report/ (writes the same files)")
    rp.set_defaults(func=_report)

    c = sub.add_parser("corpus", help="build (or load from cache) the mined corpus and print its statistics")
    c.add_argument("--preset", default="tour", choices=presets)
    c.add_argument("--spec", default=None, help="a named corpus spec (default: the preset's)")
    c.add_argument("--from", dest="from_path", default=None, metavar="PATH",
                   help="your own data: a pair file (.jsonl[.gz], .json, .parquet, .csv; CodeSearchNet, AdvTest and "
                        "CoSQA layouts detected), a `datasets` folder (save_to_disk) or a folder of code to mine (Python "
                        "with ast, Go/Java/Ruby/PHP/JS/TS with tree-sitter; 'dir:PATH#languages=go,java' for some)")
    for f in ("query", "code", "id", "language", "source", "path", "func_name"):
        c.add_argument(f"--{f.replace('_', '-')}-column", dest=f"{f}_column", default=None, metavar="COLUMN",
                       help=f"with --from: the column holding the {f.replace('_', ' ')} (detected when left out)")
    c.add_argument("--force", action="store_true", help="rebuild even if cached")
    c.set_defaults(func=_corpus)

    pa = sub.add_parser("params", help="list the parameters a chapter reads (or all), by section, with their values")
    pa.add_argument("chapter", nargs="?", default=None, help="a chapter: 04 or 04_training (default: every parameter)")
    pa.add_argument("--preset", default="tour", choices=presets)
    pa.add_argument("--set", action="append", metavar="NAME=VALUE", help="override a parameter (repeatable)")
    pa.set_defaults(func=_params)

    m = sub.add_parser("models", help="list the offline model registry, or assemble a model")
    m.add_argument("--fetch", default=None, help="assemble/verify a registry model and print its folder")
    m.set_defaults(func=_models)
    return p


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except WorkbenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader left (`workbench params | head`): stop quietly, as cat does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
