"""The augmentation chapter's steps driven by run parameters (``workbench.config.Params``), so that
notebook 02 calls one function per step: the data to augment, the cross-encoder filter, the
candidates of every augmenter and the training sets of the comparison (ChatDANCE, papers/002). The
LLM itself comes from ``workbench.llm.llm_from_params``."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from ..config import Params
from ..paths import data_dir
from ..store import cache_key


@dataclass(frozen=True)
class AugmentationData:
    """D (the training pairs every variant starts from) and the parts of D each augmenter rewrites."""

    train: pd.DataFrame  # D
    query_pairs: pd.DataFrame  # rewritten by the LLM and by QRA
    code_pairs: pd.DataFrame  # rewritten by the LLM and by NatGen


def augmentation_data(pairs: pd.DataFrame, params: Params) -> AugmentationData:
    """D = ``aug_train_pairs`` training pairs (seeded by ``seed``); the first ``aug_query_pairs`` and
    ``aug_code_pairs`` of a seeded shuffle of D are the ones augmented (None = all of D); code
    rewrites skip functions longer than ``aug_code_max_chars`` (the rewrite must fit the model's
    context next to the prompt and its example turns)."""
    from ..experiment import training_sample

    d = training_sample(pairs, params.aug_train_pairs, params.seed)
    shuffled = d.sample(frac=1.0, random_state=params.seed).reset_index(drop=True)

    def head(df: pd.DataFrame, n: int | None) -> pd.DataFrame:
        return df.reset_index(drop=True) if n is None else df.head(n).reset_index(drop=True)

    fits = shuffled[shuffled["code"].str.len() <= params.aug_code_max_chars]
    return AugmentationData(d, head(shuffled, params.aug_query_pairs), head(fits, params.aug_code_pairs))


def filter_model(pairs: pd.DataFrame, params: Params, show_progress: bool = True):
    """The cross-encoder filter trained on ``filter_pairs`` original training pairs (cached under
    ``data/cross-encoders/<key>/``, shared by runs with the same corpus and filter parameters)."""
    from ..experiment import training_sample
    from ..models.cross_encoder import train_cross_encoder

    train = training_sample(pairs, params.filter_pairs, params.seed)
    key = cache_key({"corpus": params.corpus, "pairs": params.filter_pairs, "negatives": params.filter_negatives,
                     "epochs": params.filter_epochs, "max_length": params.filter_max_length, "seed": params.seed})
    return train_cross_encoder(train, data_dir() / "cross-encoders" / key, negatives=params.filter_negatives,
                               epochs=params.filter_epochs, max_length=params.filter_max_length, seed=params.seed,
                               show_progress=show_progress)


def code_techniques(params: Params) -> list[str]:
    return list(params.aug_code_techniques)


def llm_candidates(llm: Any, data: AugmentationData, params: Params, query_schema=None, code_schema=None,
                   show_progress: bool = True) -> dict[str, Any]:
    """Query and code rewrites by the LLM (``rewrite_queries`` / ``rewrite_code``), validated, with
    their rejection logs and the generation time of each step (cache hits cost nothing)."""
    from . import chatdance as cd
    from . import prompts as pr

    out: dict[str, Any] = {}
    t0 = time.perf_counter()
    out["queries"], out["query_log"] = cd.rewrite_queries(
        llm, data.query_pairs, n=params.aug_query_rewrites, mode=params.llm_mode,
        schema=query_schema or pr.QUERY_PROMPT,
        sampling=replace(pr.DEFAULT_QUERY_SAMPLING, temperature=params.llm_temperature),
        concurrency=params.llm_concurrency, seed=params.seed, show_progress=show_progress)
    out["query_seconds"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    out["code"], out["code_log"] = cd.rewrite_code(
        llm, data.code_pairs, techniques=code_techniques(params), per_technique=params.aug_code_per_technique,
        mode=params.llm_mode, schema=code_schema or pr.CODE_PROMPT,
        sampling=replace(pr.DEFAULT_CODE_SAMPLING, temperature=params.llm_temperature),
        concurrency=params.llm_concurrency, seed=params.seed, show_progress=show_progress)
    out["code_seconds"] = time.perf_counter() - t0
    return out


def baseline_candidates(data: AugmentationData, params: Params, show_progress: bool = True) -> dict[str, pd.DataFrame]:
    """QRA rewrites of the same queries (as many per pair as the LLM is asked for) and NatGen
    transforms of the same code (as many per pair as LLM techniques x rewrites)."""
    from .natgen import augment_code
    from .qra import augment_queries

    per_code = len(code_techniques(params)) * params.aug_code_per_technique
    return {
        "qra": augment_queries(data.query_pairs, params.aug_query_rewrites, params.seed, progress=show_progress),
        "natgen": augment_code(data.code_pairs, per_code, params.seed, progress=show_progress),
    }


def training_sets(data: AugmentationData, baselines: dict[str, pd.DataFrame], llm: dict[str, Any], scorer: Any,
                  params: Params) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """Every variant's training set (``workbench.augment.comparison.LABELS``) and the filter's
    decisions on the LLM candidates (Algorithm 1, ``llm_both``)."""
    from .chatdance import ablation_sets
    from .comparison import with_augmented

    sets = {"baseline": data.train[["id", "query", "code"]].reset_index(drop=True),
            "qra": with_augmented(data.train, baselines["qra"]),
            "natgen": with_augmented(data.train, baselines["natgen"])}
    llm_sets, decisions = ablation_sets(data.train, llm["queries"], llm["code"], scorer,
                                        theta_q=params.theta_q, theta_c=params.theta_c, seed=params.seed)
    sets.update(llm_sets)
    return sets, decisions
