"""The standard protocol every chapter shares: which test sets, how a model is scored on them,
and how run parameters become a training configuration.

Test sets (all :class:`~workbench.tasks.RetrievalTask`):
- ``id_test``: the in-distribution test split of the mined corpus (scientific packages),
- ``stdlib``: the out-of-distribution standard-library set (domain shift),
- ``cosqa``: CoSQA dev web queries against its 6,267-function pool (the shared benchmark files).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .config import Params, as_names
from .errors import ParameterError
from .evaluation import EvalResult, evaluate
from .tasks import RetrievalTask, load_cosqa, task_from_pairs


def shrink_pool(task: RetrievalTask, pool_size: int | None, seed: int = 0) -> RetrievalTask:
    """Keep every relevant corpus item plus random others, up to ``pool_size`` items.

    Only for quick presets: MRR on a smaller pool is not comparable to the full benchmark.
    """
    if pool_size is None or pool_size >= len(task.corpus):
        return task
    needed = sorted({cid for rel in task.qrels.values() for cid, r in rel.items() if r > 0})
    others = sorted(set(task.corpus) - set(needed))
    rng = np.random.default_rng(seed)
    extra = rng.choice(len(others), size=max(0, min(len(others), pool_size - len(needed))), replace=False)
    keep = set(needed) | {others[i] for i in extra}
    corpus = {cid: text for cid, text in task.corpus.items() if cid in keep}
    meta = {**task.meta, "pool_size": len(corpus), "full_pool_size": len(task.corpus)}
    return RetrievalTask(task.name, dict(task.queries), corpus, {q: dict(r) for q, r in task.qrels.items()}, meta)


def standard_tasks(pairs: pd.DataFrame, params: Params, cosqa_dir: str | Path | None = None) -> dict[str, RetrievalTask]:
    """The in-distribution test, the stdlib OOD set and CoSQA dev, sized by the preset, and the user's
    ``test_sets``."""
    tasks: dict[str, RetrievalTask] = {}
    test = pairs[pairs["split"] == "test"]
    if len(test):
        tasks["id_test"] = _cap(task_from_pairs(test, "id_test"), params.test_queries, params.test_seed)
    ood = pairs[pairs["split"] == "ood"]
    if len(ood):
        tasks["stdlib"] = _cap(task_from_pairs(ood, "stdlib"), params.ood_queries, params.test_seed)
    tasks["cosqa"] = cosqa_task(params, cosqa_dir)
    return _with_user_tasks(tasks, params)


def user_tasks(params: Params) -> dict[str, RetrievalTask]:
    """The user's own test sets (``params.test_sets``; :func:`workbench.tasks.task_from_spec`), sized
    as the mined OOD sets are: at most ``suite_queries`` queries, a pool of ``suite_pool`` (every
    relevant code kept)."""
    from .tasks import task_from_spec

    out: dict[str, RetrievalTask] = {}
    for spec in params.test_sets:
        name, task = task_from_spec(spec)
        if name in out:
            raise ParameterError(f"test_sets: the name {name!r} is given twice")
        task = _cap(task, params.suite_queries, params.test_seed)
        out[name] = shrink_pool(task, params.suite_pool, seed=params.test_seed)
    return out


def _with_user_tasks(tasks: dict[str, RetrievalTask], params: Params) -> dict[str, RetrievalTask]:
    extra = user_tasks(params)
    clash = sorted(set(extra) & set(tasks))
    if clash:
        raise ParameterError(f"test_sets: {clash} already name a test set of the workbench; choose other names")
    return {**tasks, **extra}


def cosqa_task(params: Params, cosqa_dir: str | Path | None = None) -> RetrievalTask:
    """CoSQA dev sized by the preset (all 500 queries and the whole pool unless it says otherwise)."""
    cosqa = load_cosqa(cosqa_dir, split="dev")
    if params.cosqa_queries is not None:
        cosqa = cosqa.subset(params.cosqa_queries, seed=params.test_seed)
    return shrink_pool(cosqa, params.cosqa_pool, seed=params.test_seed)


def comparison_tasks(sets: dict[str, pd.DataFrame], params: Params) -> dict[str, RetrievalTask]:
    """The tasks a comparison table reports: the in-distribution test, every OOD set (mined sets with
    ``suite_queries`` queries against ``suite_pool`` functions), CoSQA dev sized by the preset and the
    user's ``test_sets`` (:func:`user_tasks`), which count in the OOD average as every set but id_test does."""
    from .ood import suite_tasks

    mined = {name: df for name, df in sets.items() if name != "train"}
    tasks = suite_tasks(mined, max_queries=params.suite_queries, seed=params.test_seed, pool_size=params.suite_pool, cosqa=False)
    tasks["cosqa_dev"] = cosqa_task(params)
    return _with_user_tasks(tasks, params)


def _cap(task: RetrievalTask, n: int | None, seed: int) -> RetrievalTask:
    return task if n is None or n >= len(task.queries) else task.subset(n, seed=seed)


def evaluate_suite(
    encoder, tasks: dict[str, RetrievalTask], params: Params, label: str, show_progress: bool = True,
    cache_dir: str | Path | None = None,
) -> tuple[pd.DataFrame, dict[str, EvalResult]]:
    """Score ``encoder`` on every task: a tidy table (one row per task) and the full results. With
    ``cache_dir`` the embeddings are kept there (:func:`workbench.embeddings.model_cache_dir`), so the
    analysis chapters read them instead of encoding the sets again."""
    rows, results = [], {}
    for name, task in tasks.items():
        t0 = time.time()
        res = evaluate(
            encoder,
            task,
            k=params.k,
            batch_size=params.eval_batch_size,
            bf16=params.bf16_eval,
            n_boot=params.n_boot,
            seed=params.seed,
            show_progress=show_progress,
            model_name=label,
            cache_dir=cache_dir,
        )
        results[name] = res
        m, ci = res.metrics, res.ci
        rows.append(
            {
                "model": label,
                "task": name,
                "queries": len(task.queries),
                "pool": len(task.corpus),
                "MRR": round(m["mrr"], 2),
                "MRR 95% CI": f"[{ci['mrr'][0]:.1f}, {ci['mrr'][1]:.1f}]",
                "R@1": round(m["recall@1"], 1),
                "R@5": round(m["recall@5"], 1),
                "R@10": round(m["recall@10"], 1),
                "NDCG@10": round(m["ndcg@10"], 2),
                "seconds": round(time.time() - t0, 1),
            }
        )
    return pd.DataFrame(rows), results


def training_sample(pairs: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """``n`` training pairs drawn reproducibly from the train split (all of it when smaller): the rows
    ``pairs[train].sample(n, random_state=seed)`` draws, taken by position so only those ``n`` rows
    are read from the memory-mapped corpus (filtering first would copy every training text)."""
    train = np.flatnonzero(pairs["split"] == "train")
    if n < len(train):  # DataFrame.sample's draw: RandomState(seed).choice without replacement
        train = train[np.random.RandomState(seed).choice(len(train), size=n, replace=False)]
    return pairs.take(train).reset_index(drop=True)


def pool_codes(pairs: pd.DataFrame, sample: pd.DataFrame, params: Params) -> list[str] | None:
    """The extra ``fixed_pool`` candidates of a data-map run on ``sample`` (rows of the corpus ``pairs``).

    ``params.datamap_pool == "file_neighbours"``: the code of every other train-split function of
    the files (``source``, ``path``) the sample's pairs come from, the hard negatives mining gives
    for free (CoRNStack's point, methods.md section 4: negatives from the same repository are the
    informative ones); a pair paired with the wrong function of its file then meets the right one
    among its candidates. ``"sample"``: None (the pool is ``fixed_pool_size`` of the sample's codes).
    """
    if params.datamap_pool == "sample":
        return None
    missing = [c for c in ("source", "path", "code") if c not in pairs.columns or c not in sample.columns]
    if missing:
        raise ParameterError(f"datamap_pool='file_neighbours' needs the columns {missing} in the corpus pairs")
    train = np.flatnonzero(pairs["split"] == "train") if "split" in pairs.columns else np.arange(len(pairs))
    files = set(zip(sample["source"].tolist(), sample["path"].tolist()))
    keys = zip(pairs["source"].take(train).tolist(), pairs["path"].take(train).tolist())
    same = train[[k in files for k in keys]]
    own = set(sample["code"].tolist())
    return sorted({c for c in pairs["code"].take(same).tolist() if c not in own})


def comparison_params(params: Params) -> Params:
    """``params`` with ``bf16_eval`` set to ``select_bf16_eval``: the precision in which chapters 02, 04,
    05 and 06 score every model of a comparison (bf16 autocast by default: CoSQA dev MRR 54.07 vs
    54.12 in fp32, measured on the cpu preset), the same in each so 05 and 06 reuse 04's cached
    evaluations. Chapters 00 and 01 score their few models in ``bf16_eval``."""
    return dataclasses.replace(params, bf16_eval=params.select_bf16_eval)


def train_config(params: Params, **overrides):
    """The TrainConfig a preset asks for."""
    from .training import TrainConfig

    values = dict(
        epochs=params.epochs,
        batch_size=params.batch_size,
        lr=params.lr,
        weight_decay=params.weight_decay,
        warmup_ratio=params.warmup_ratio,
        max_grad_norm=params.max_grad_norm,
        temperature=params.temperature,
        seed=params.seed,
        dynamics_mode=params.dynamics_mode,
        checkpoints_per_epoch=params.checkpoints_per_epoch,
        fixed_pool_size=params.fixed_pool_size,
        bf16=params.bf16_train,
        max_query_len=params.max_query_len,
        max_code_len=params.train_max_code_len,
        mask_duplicates=params.mask_duplicates,
        grad_cache_chunk=params.grad_cache_chunk,
    )
    values.update(overrides)
    if values.get("mixup_alpha") is not None:  # MixUp mixes inside one forward: GradCache cannot replay it
        values["grad_cache_chunk"] = None
    return TrainConfig(**values)


def compare(before: pd.DataFrame, after: pd.DataFrame, metric: str = "MRR") -> pd.DataFrame:
    """Side-by-side table of one metric per task for two evaluations, with the change."""
    a = before.set_index("task")[metric].rename(before["model"].iloc[0])
    b = after.set_index("task")[metric].rename(after["model"].iloc[0])
    out = pd.concat([a, b], axis=1)
    out["change"] = (out.iloc[:, 1] - out.iloc[:, 0]).round(2)
    return out


def fresh_encoder(params: Params, device=None):
    """The pre-trained starting point every variant of a comparison is trained from."""
    return load_model(params.model, params, device)


def load_model(name_or_path: str | Path, params: Params, device=None):
    """A registry model or a saved model folder, read at the parameters' query / code lengths (as
    :func:`fresh_encoder` and every evaluation of a run do) on the device they ask for."""
    from .models import BiEncoder
    from .runtime import pick_device

    return BiEncoder.load(name_or_path, max_query_len=params.max_query_len, max_code_len=params.max_code_len,
                          device=device or pick_device(params.device))


def comparison_suite(params: Params) -> tuple[pd.DataFrame, dict[str, pd.DataFrame], dict[str, RetrievalTask]]:
    """The mined corpus, every set of the comparison (train, the OOD suite, the other languages) and
    their tasks, as 04 scores its models (all three builds are cached on disk)."""
    from .corpus import build_corpus, crosslang
    from .ood import OOD_GROUPS, all_sets, build_ood_suite

    pairs = build_corpus(params.corpus)
    groups = ["stdlib", *params.ood_groups]
    suite = build_ood_suite(params.corpus, groups={g: OOD_GROUPS[g] for g in groups})
    xl = crosslang.build_crosslang(languages=list(params.crosslang_languages), per_language_cap=params.crosslang_cap)
    sets = all_sets(pairs, suite, xl, seed=params.test_seed)
    return pairs, sets, comparison_tasks(sets, params)


def _eval_key(tasks: dict[str, RetrievalTask], params: Params) -> str:
    from .runtime import effective_bf16, pick_device
    from .store import cache_key

    shape = {n: [len(t.queries), len(t.corpus), sorted(t.queries)[:5], t.meta.get("pool_size")] for n, t in tasks.items()}
    bf16 = effective_bf16(pick_device(params.device), params.bf16_eval)  # the precision it is computed in
    key = {"tasks": shape, "k": params.k, "bf16": bf16, "n_boot": params.n_boot, "seed": params.seed}
    if params.eval_seed is not None:  # unset keeps the keys of existing caches
        key["eval_seed"] = params.eval_seed
    if params.wise_alpha < 1.0:  # the evaluated model depends on it (1.0 keeps the keys of existing caches)
        key["wise_alpha"] = params.wise_alpha
    return cache_key(key)


def cached_evaluation(
    eval_dir: str | Path, encoder_fn: Any, tasks: dict[str, RetrievalTask], params: Params, label: str,
    show_progress: bool = True, columns: dict[str, Any] | None = None, cache_dir: str | Path | None = None,
) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """``evaluate_suite(encoder_fn(), tasks, ...)`` cached in ``eval_dir`` (summary + per-query tables,
    the summary written last so it marks a complete evaluation); the encoder is built only on a miss.
    ``columns`` (name -> value) are added to the summary (``train_pairs`` after ``model``, the rest last);
    ``cache_dir``: where the embeddings are kept (:func:`evaluate_suite`)."""
    from .store import atomic_write_parquet

    eval_dir = Path(eval_dir)
    summary_path = eval_dir / "summary.parquet"
    if summary_path.exists():
        summary = pd.read_parquet(summary_path)
        return summary, {t: pd.read_parquet(eval_dir / f"{t}.parquet") for t in summary["task"]}
    summary, results = evaluate_suite(encoder_fn(), tasks, params, label=label, show_progress=show_progress,
                                      cache_dir=cache_dir)
    for name, value in (columns or {}).items():
        if name == "train_pairs":
            summary.insert(1, name, value)
        else:
            summary[name] = value
    per_query = {t: r.per_query for t, r in results.items()}
    for t, table in per_query.items():
        atomic_write_parquet(eval_dir / f"{t}.parquet", table)
    atomic_write_parquet(summary_path, summary)
    return summary, per_query


def apply_wise(encoder, params: Params, alpha: float | None = None):
    """The recipe's last step: WiSE-FT (``models.interpolation``) of a fine-tuned ``encoder`` with the
    pre-trained ``params.model`` at ``alpha`` (default ``params.wise_alpha``); 1.0 returns ``encoder``."""
    alpha = params.wise_alpha if alpha is None else alpha
    if alpha >= 1.0:
        return encoder
    from .models.interpolation import interpolate

    return interpolate(fresh_encoder(params, device=encoder.device), encoder, alpha)


def finish_recipe(encoder, params: Params, out_dir: str | Path):
    """After ``training.train(encoder, ..., out_dir=out_dir)``: the recipe's WiSE-FT step. With
    ``params.wise_alpha < 1`` the interpolated model replaces ``out_dir/model`` (what later chapters
    load) and ``out_dir/wise.json`` records it; the fine-tuned weights stay in ``out_dir/checkpoint``
    (a re-run of ``train`` restores them, so this is idempotent). Returns the model to evaluate."""
    from .store import atomic_write_json

    if params.wise_alpha >= 1.0:
        return encoder
    mixed = apply_wise(encoder, params)
    mixed.save(Path(out_dir) / "model")
    atomic_write_json(Path(out_dir) / "wise.json", {"alpha": params.wise_alpha, "pretrained": params.model,
                                                    "finetuned": "checkpoint/ (the last step)"})
    return mixed


def train_and_evaluate(
    name: str,
    train_pairs: pd.DataFrame,
    tasks: dict[str, RetrievalTask],
    params: Params,
    out_dir: str | Path,
    train_kwargs: dict | None = None,
    **config_overrides,
) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """Train one variant from the pre-trained model with the recipe and score it on every task.

    The recipe (one place for every chapter): ``train_config(params)`` (learning rate, epochs,
    duplicate masking, ...), then WiSE-FT at ``params.wise_alpha`` (:func:`apply_wise`). The
    fine-tuned weights stay in ``out_dir/checkpoint``; ``out_dir/model`` holds the model that is
    evaluated (the interpolated one when ``wise_alpha < 1``, recorded in ``out_dir/wise.json``).
    Both steps resume: a finished training run in ``out_dir`` is not repeated, and the evaluation is
    cached in ``out_dir/eval-<key>/`` (summary table + per-query ranks for paired tests), so a
    comparison notebook re-run after an interruption only does the missing work; the embeddings stay
    in ``out_dir/embeddings/``, where the analysis chapters (05, 06) find them.
    Returns the summary table (one row per task, ``model`` = ``name``) and the per-query tables.
    """
    from .training import train

    out_dir = Path(out_dir)
    eval_dir = out_dir / f"eval-{_eval_key(tasks, params)}"
    if (eval_dir / "summary.parquet").exists() and (out_dir / "model" / "workbench_encoder.json").exists():
        return cached_evaluation(eval_dir, None, tasks, params, name)
    encoder = fresh_encoder(params)
    result = train(encoder, train_pairs, train_config(params, **config_overrides), out_dir=out_dir, **(train_kwargs or {}))
    encoder = finish_recipe(encoder, params, out_dir)
    return cached_evaluation(eval_dir, lambda: encoder, tasks, params, name,
                             columns={"train_pairs": len(train_pairs), "train_seconds": round(result.seconds, 1)},
                             cache_dir=out_dir / "embeddings")  # embeddings.model_cache_dir of out_dir/model


def parse_variant_names(spec: Any, allowed: Any, param: str) -> list[str]:
    """A variants parameter (``aug_variants``, ``oasis_variants``: names, or one comma-separated
    string) checked against ``allowed``."""
    names = list(as_names(spec))
    unknown = [n for n in names if n not in allowed]
    if unknown or not names:
        raise ParameterError(f"{param}: unknown variant(s) {unknown or spec!r}; choose from {list(allowed)}")
    return names


def train_grid(jobs: Any, tasks: dict[str, RetrievalTask], params: Params,
               ) -> tuple[pd.DataFrame, dict[str, dict[str, list[pd.DataFrame]]]]:
    """:func:`train_and_evaluate` for each ``(label, seed, train_pairs, out_dir, train_kwargs, overrides)``.

    Returns the summaries (one row per model and task, with ``seed``) and the per-query tables as
    ``per_query[label][task] = [one table per seed]``, the shapes ``compare.seed_table`` and
    ``compare.paired_vs_baseline`` take.
    """
    rows, per_query = [], {}
    for label, seed, train_pairs, out_dir, train_kwargs, overrides in jobs:
        summary, pq = train_and_evaluate(label, train_pairs, tasks, params, out_dir, train_kwargs=train_kwargs,
                                         seed=seed, **overrides)
        rows.append(summary.assign(seed=seed))
        for task, table in pq.items():
            per_query.setdefault(label, {}).setdefault(task, []).append(table)
    return pd.concat(rows, ignore_index=True), per_query


def results_table(summaries: list[pd.DataFrame], ood_tasks: list[str] | None = None, metric: str = "MRR") -> pd.DataFrame:
    """One row per model, one column per task, plus the average over the OOD tasks (as the papers report)."""
    table = pd.concat(summaries).pivot_table(index="model", columns="task", values=metric, sort=False)
    order = list(dict.fromkeys(pd.concat(summaries)["model"]))
    table = table.loc[order]
    if ood_tasks:
        present = [t for t in ood_tasks if t in table.columns]
        table["OOD avg"] = table[present].mean(axis=1).round(2)
    return table
