"""Presets and typed run parameters.

A run is a preset (``smoke`` for tests, ``cpu`` for a 2-core machine, ``gpu`` for an accelerator)
plus overrides. Overrides are checked before any work starts: an unknown name or a value of the
wrong type is a ParameterError that lists the allowed parameters.
"""

from __future__ import annotations

import dataclasses
import sys
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any

from .errors import ParameterError

Names = tuple[str, ...]
"""A list parameter: a tuple of names. Given as a list (YAML, papermill, Python) or, on the command
line and in presets, as one comma-separated string; either way it is read once, here, into a tuple."""


@dataclass(frozen=True)
class Params:
    """Every parameter a notebook reads. Defaults are the ``cpu`` preset."""

    preset: str = "cpu"
    # model and hardware
    model: str = "minilm"
    threads: int = 2
    device: str = "auto"
    max_query_len: int = 64
    max_code_len: int = 256
    eval_batch_size: int = 64
    bf16_eval: bool = False
    # data
    corpus: str = "cpu"  # a named corpus spec: see workbench.corpus
    train_pairs: int = 2000  # training pairs sampled for the quickstart fine-tune
    test_queries: int | None = 1000  # in-distribution test queries (None = all)
    ood_queries: int | None = 1000  # OOD (stdlib) queries (None = all)
    cosqa_queries: int | None = None  # CoSQA dev queries (None = all 500)
    cosqa_pool: int | None = None  # CoSQA pool size (None = all 6,267; smaller only for smoke)
    test_sets: Names = ()  # your own test sets, scored by every comparison beside the others: NAME=LOADER:LOCATION[@ARG] (workbench.tasks.task_from_spec), e.g. advtest=advtest:data/advtest/test.jsonl
    # training
    epochs: int = 2
    batch_size: int = 32
    lr: float = 2e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    temperature: float = 0.05
    train_max_code_len: int = 128  # code tokens while training (evaluation uses max_code_len)
    bf16_train: bool = False
    mask_duplicates: bool = False  # mask in-batch false negatives: a copy of the gold code, an identical query's code
    grad_cache_chunk: int | None = 32  # at most this many texts hold activations in a training step; a side beyond it (OASIS's repository negatives) goes through GradCache (None = no bound)
    wise_alpha: float = 1.0  # WiSE-FT: evaluate (1 - a) * pre-trained + a * fine-tuned weights (1.0 = the fine-tune)
    dynamics_mode: str = "in_batch"
    checkpoints_per_epoch: int = 1
    fixed_pool_size: int = 256
    seed: int = 42
    eval_seed: int | None = None  # seed of the sampled test queries and pools (None = seed); fixed in a seed sweep so every run scores the same queries
    # curation chapter (01): CoRNStack filtering, hard negatives, the ablation
    proxy_model: str = "mpnet"  # the consistency filter's proxy embedder
    proxy_bf16: bool = True  # delta was calibrated on bf16 proxy embeddings
    curation_pairs: int | None = 2000  # train pairs filtered and trained on in the ablation (None = all)
    consistency_k: int = 2
    consistency_delta: float = 0.54  # calibrated for mpnet on the cpu corpus (CoRNStack: 0.7)
    false_negative_subsets: Names = ()  # subsets exported from the data-map explorer whose marked false negatives hard-negative mining leaves out
    hard_negatives: int = 32  # M candidates kept per query
    negatives_depth: int = 64  # candidates searched per query before the gamma guard
    negatives_per_query: int = 1
    gamma: float = 0.95
    tau_start: float = 0.05
    tau_end: float = 0.001
    ablation_epochs: int = 1
    ablation_arms: Names = ("none", "filtering", "topk", "softmax", "curriculum")  # CoRNStack Table 5's arms trained in 01 ("none" always)
    # the comparison test suite (01, 02, 04, 05, 06): OOD sets mined from pinned wheels and other languages
    suite_queries: int | None = 300  # queries per OOD set in comparisons (None = all)
    suite_pool: int | None = 500  # functions per mined OOD set in comparisons (None = all)
    ood_groups: Names = ("web", "tooling")  # domain-shift groups mined from pinned wheels (workbench.ood.OOD_GROUPS)
    crosslang_languages: Names = ("go", "java", "ruby", "php", "javascript", "typescript")
    crosslang_cap: int = 2000
    gap_samples: int = 300  # code samples per set for the distribution-gap test and projection
    # data maps and Select then MixUp (03, 04)
    datamap_pairs: int = 2000  # training pairs of the data-map run (both dynamics modes)
    datamap_epochs: int = 3
    datamap_mode: str = "in_batch"  # which data map chooses the subsets
    datamap_pool: str = "sample"  # fixed_pool candidates: "sample" (fixed_pool_size of the run's codes) or "file_neighbours" (also every other function of each pair's file: mined hard negatives)
    easy_q: float = 0.5  # cartography.categorize quantile rule
    hard_q: float = 0.5
    ambiguous_q: float = 0.667
    datamap_validity: bool = True  # 03 trains the data-map run again on corrupted pairs: does low confidence flag them? (workbench.datamap_validity)
    validity_fraction: float = 0.05  # share of the data-map run's pairs given a wrong code
    validity_kinds: Names = ("random_swap", "near_miss")  # random_swap: another pair's code; near_miss: another function of the same file / package
    validity_modes: Names = ("in_batch", "fixed_pool")  # the dynamics the corrupted runs record and report (both: as the data-map run)
    explorer_projection: str = "umap"  # the explorer's second scatter (03): the data-map model's code embeddings
    # Select then MixUp (04): the subsets trained, their seeds, MixUp
    select_subsets: Names = ("all", "easy", "ambiguous", "hard", "ambiguous+hard", "random")
    select_seeds: int = 1  # seeds per variant (seed, seed + 1, ...)
    select_epochs: int = 1
    subset_file: str | None = None  # a subset exported from the 03 explorer, trained as the extra variant "custom"
    select_bf16_eval: bool = True  # 04 scores its many models under bf16 autocast (CoSQA dev MRR 54.07 vs 54.12 fp32)
    mixup_alpha: float = 0.4
    mixup_fraction: float = 0.5
    mixup_layer: int = 0  # 0 = pooled representations; k = token states entering transformer block k
    # the LLM (02, 04's OASIS): backend, model, sampling
    llm_backend: str = "local"  # local (llama.cpp in-process) | server (embedded llama_cpp.server on 127.0.0.1) | openai (any OpenAI-compatible server)
    llm_model: str = "qwen-coder-0.5b"  # qwen-coder-0.5b | smollm2-135m | a .gguf file | the model id of an openai server (or OPENAI_MODEL)
    llm_base_url: str | None = None  # openai backend: e.g. http://127.0.0.1:8000/v1 (or OPENAI_BASE_URL; the key only from OPENAI_API_KEY)
    llm_mode: str = "single"  # single: one rewrite per call with example turns (small local models) | batched: the paper's N-at-once prompts
    llm_temperature: float = 0.9
    llm_concurrency: int = 1  # requests in flight (raise it for a remote server)
    # LLM augmentation (02): ChatDANCE rewriting + cross-encoder filter, the QRA and NatGen baselines
    aug_train_pairs: int = 1000  # D: the training pairs every variant of the comparison starts from
    aug_query_pairs: int | None = 150  # pairs of D whose query is rewritten, by the LLM and by QRA (None = all of D)
    aug_code_pairs: int | None = 20  # pairs of D whose code is rewritten, by the LLM and by NatGen (None = all of D)
    aug_code_max_chars: int = 400  # longer functions are not rewritten (~120 tokens; with Qwen 0.5B on 2 cores a rewrite costs ~0.15 s per token of the original)
    aug_query_rewrites: int = 5  # rewrites per query (the paper: 15; stable from 5)
    aug_code_techniques: Names = ("rename_method", "rename_variables", "library_functions", "same_semantics", "simplify")
    aug_code_per_technique: int = 1  # rewrites per technique and code (the paper: 3)
    # keep an LLM query when the filter scores (q_aug, c) at least theta_q (the paper: 0.95; the
    # CPU-sized filter never scores that high: 0.8 is where its precision on held-out mined pairs
    # against hard negatives passes 0.93, docs/results.md "The filter of 02"; the gpu and paper presets use 0.95)
    theta_q: float = 0.8
    theta_c: float = 0.75  # keep LLM code when the filter scores (q, c_aug) at least this (the paper's value)
    filter_pairs: int = 1000  # training pairs of the cross-encoder filter
    filter_negatives: int = 3  # mined hard negatives (+ random) per filter training pair
    filter_epochs: int = 1
    filter_max_length: int = 128  # query + code tokens the cross-encoder reads
    aug_variants: Names = ("baseline", "qra", "natgen", "llm_query", "llm_code", "llm_both", "llm_nofilter")
    aug_seeds: int = 1  # seeds per variant (seed, seed + 1, ...); the paper reports the mean of 3
    aug_epochs: int = 1
    # OASIS order labels (papers/001): repository negatives, annotator labels, refinement, CoSENT
    oasis_pairs: int = 500  # training pairs that get order labels (and train every OASIS variant)
    oasis_negatives: int = 5  # K repository negatives per query (the paper: 5)
    oasis_annotator: str = "mpnet"  # the embedder whose cosines are the labels (not the model being trained)
    oasis_annotator_bf16: bool = True  # annotate under bf16 autocast (1.6-1.8x faster than fp32 on 2 cores; cosines move by at most 0.002)
    oasis_llm_queries: int = 0  # labelled pairs whose query the LLM writes from the code, its callers and callees (OASIS step 1; 0 = the mined docstrings: Qwen 0.5B took 300 s for 24 on a loaded 2-core machine)
    oasis_delta_s: float = 0.1  # a negative the LLM judge confirms gets label * (1 + delta_s) (the paper's grid: 0.05 / 0.1 / 0.2)
    oasis_ast_threshold: float = 0.25  # AST candidates: tree edit distance / (n1 + n2) below this
    oasis_max_nodes: int = 250  # AST size cap for the tree edit distance
    oasis_judge_controls: int = 50  # 02 asks the judge about this many gold pairs and as many random functions (its yes rates)
    oasis_judge_max: int | None = None  # at most this many refinement candidates go to the LLM judge (None = all)
    oasis_contrastive_weight: float = 0.98  # w1 (InfoNCE)
    oasis_order_weight: float = 0.02  # w2 (CoSENT)
    oasis_variants: Names = ("infonce", "full", "no_refinement", "only_order", "only_contrastive", "ast_only", "threshold_only")
    oasis_seeds: int = 1  # seeds per variant (seed, seed + 1, ...)
    oasis_epochs: int = 1
    # representation analysis and case studies (05, 06): models found in the run folder
    analysis_models: Names | None = None  # model names for the alignment/uniformity scatter (None = all)
    compare_models: Names | None = None  # (A, B), on the command line "A,B": the two models compared side by side (None = all vs ambiguous+hard + MixUp)
    analysis_sets: Names = ("id_test", "stdlib", "web", "tooling", "stdlib_obf", "xl_java", "cosqa_dev")  # sets of the alignment/uniformity table
    analysis_pairs: int = 300  # test pairs per set for alignment/uniformity and the pair projection
    projection_set: str = "stdlib"  # the test set of the pair and neighbourhood projections
    pairs_projection: str = "tsne"  # umap | tsne | mds | pca (ChatDANCE Fig. 7 uses t-SNE)
    neighbours_projection: str = "mds"  # OASIS Fig. 3 uses MDS
    clouds_projection: str = "umap"
    neighbours_k: int = 50
    layerwise_sets: Names = ("id_test", "stdlib", "stdlib_obf", "xl_java", "cosqa_dev")
    case_k: int = 5  # candidates per model in the case viewer
    # evaluation
    k: int = 1000
    n_boot: int = 1000

    @property
    def test_seed(self) -> int:
        """The seed that samples test queries and pools: ``eval_seed``, or ``seed`` when unset."""
        return self.seed if self.eval_seed is None else self.eval_seed

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def __getattribute__(self, name: str) -> Any:
        if _recorder is not None and (name in _FIELD_NAMES or name in _DERIVED):
            caller = sys._getframe(1)
            if not caller.f_code.co_name.startswith("__") and caller.f_globals.get("__name__") not in _QUIET_CALLERS:
                for read in _DERIVED.get(name, (name,)):
                    _recorder(read)
        return object.__getattribute__(self, name)


# --------------------------------------------------------------------------- sections and chapters
_FIELD_NAMES = frozenset(f.name for f in fields(Params))
_DERIVED = {"test_seed": ("seed", "eval_seed")}  # properties, and the parameters they read
# callers whose reads are not a chapter's: this module (validation, to_dict), copying and pickling
_QUIET_CALLERS = frozenset({__name__, "dataclasses", "copy", "copyreg", "pickle"})
_recorder: Callable[[str], None] | None = None


def record_reads(recorder: Callable[[str], None] | None) -> Callable[[str], None] | None:
    """Call ``recorder(name)`` for every parameter read from any :class:`Params` from now on (None
    stops), and return the previous recorder. Reads by this module, by ``dataclasses`` (copies,
    ``to_dict``) and by generated methods (``==``, ``hash``, ``repr``) are not counted.
    :func:`workbench.runs.open_run` records what each chapter reads into its run folder."""
    global _recorder
    previous, _recorder = _recorder, recorder
    return previous


SECTION_STARTS: tuple[tuple[str, str], ...] = (
    ("run", "preset"), ("hardware", "model"), ("data", "corpus"), ("training", "epochs"), ("curation", "proxy_model"),
    ("suite", "suite_queries"), ("datamap", "datamap_pairs"), ("select", "select_subsets"), ("llm", "llm_backend"),
    ("augment", "aug_train_pairs"), ("oasis", "oasis_pairs"), ("analysis", "analysis_models"), ("evaluation", "k"),
)
"""Each section and its first parameter: the groups the comments of :class:`Params` name, in order."""


def _sections() -> dict[str, Names]:
    names = [f.name for f in fields(Params)]
    starts = [names.index(first) for _, first in SECTION_STARTS]
    return {s: tuple(names[a:b]) for (s, _), a, b in zip(SECTION_STARTS, starts, starts[1:] + [len(names)])}


SECTIONS: dict[str, Names] = _sections()
"""Every parameter in exactly one section, in the order of :class:`Params`."""

_TEST_SETS: Names = ("corpus", "cosqa_queries", "cosqa_pool", "test_sets", "suite_queries", "suite_pool", "ood_groups",
                     "crosslang_languages", "crosslang_cap")
_MAP_REGIONS: Names = ("datamap_pairs", "datamap_mode", "easy_q", "hard_q", "ambiguous_q")
_ORDER_LABELS: Names = ("oasis_pairs", "oasis_negatives", "oasis_annotator", "oasis_annotator_bf16", "oasis_llm_queries",
                        "oasis_delta_s", "oasis_ast_threshold", "oasis_max_nodes", "oasis_judge_max")

CHAPTER_READS: dict[str, Names] = {
    "00_quickstart": ("hardware", "data", "training", "evaluation"),
    "01_data_curation": ("hardware", "corpus", "cosqa_queries", "cosqa_pool", "test_sets", "training", "curation", "suite",
                         "evaluation"),
    "02_llm_augmentation": ("hardware", *_TEST_SETS, "training", "select_bf16_eval", "llm", "augment", *_ORDER_LABELS,
                            "oasis_judge_controls", "analysis_sets", "analysis_pairs", "evaluation"),
    "03_data_maps": ("model", "threads", "device", "max_query_len", "max_code_len", "corpus",
                     *(n for n in SECTIONS["training"] if n not in ("wise_alpha", "eval_seed")), "datamap"),
    "04_training": ("hardware", *_TEST_SETS, "training", *_MAP_REGIONS, "datamap_epochs", "datamap_pool", "select",
                    "llm_backend", "llm_model", "llm_base_url", *_ORDER_LABELS, "oasis_contrastive_weight",
                    "oasis_order_weight", "oasis_variants", "oasis_seeds", "oasis_epochs", "evaluation"),
    "05_representation_analysis": ("hardware", *_TEST_SETS, "seed", "eval_seed", "gap_samples", "select_bf16_eval",
                                   *(n for n in SECTIONS["analysis"] if n != "case_k"), "k"),
    "06_case_studies": ("hardware", *_TEST_SETS, "seed", "eval_seed", *_MAP_REGIONS, "select_bf16_eval",
                        "compare_models", "case_k", "k"),
    "07_report": ("threads", "seed", "n_boot"),
}
"""What each chapter reads: whole sections, and single parameters of other sections. Kept complete by
``tests/test_runs.py`` (every parameter a smoke run of a chapter reads, recorded by :func:`record_reads`,
must be listed); each notebook's parameters cell shows it (``tools/nbbuild.py``)."""


def chapter_parameters(chapter: str) -> dict[str, Names]:
    """The parameters chapter ``chapter`` reads, by section: ``"04_training"`` or its number ``"04"``."""
    stems = [c for c in CHAPTER_READS if c == chapter or c.split("_", 1)[0] == chapter]
    if len(stems) != 1:
        raise ParameterError(f"unknown chapter {chapter!r}; choose one of {sorted(CHAPTER_READS)}")
    wanted = set()
    for entry in CHAPTER_READS[stems[0]]:
        wanted.update(SECTIONS.get(entry, (entry,)))
    return {s: tuple(n for n in names if n in wanted) for s, names in SECTIONS.items() if wanted & set(names)}


PRESETS: dict[str, dict[str, Any]] = {
    # minutes on 2 cores: used by the tests and for trying things out; numbers are not comparable
    "smoke": dict(
        corpus="smoke",
        train_pairs=96,
        test_queries=100,
        ood_queries=100,
        cosqa_queries=50,
        cosqa_pool=200,
        # 64 code tokens: the tests' runs exercise every path, and on a CPU without fast bf16 (fp32) they are
        # most of `make test`'s time (128 / 96 tokens and a 500-code CoSQA pool: 30 min on an AVX2 EPYC)
        max_code_len=64,
        train_max_code_len=64,
        epochs=2,
        batch_size=16,
        n_boot=200,
        bf16_eval=True,
        bf16_train=True,  # as the tour (make run's default) trains: the tests run that path
        proxy_model="minilm",
        curation_pairs=160,
        consistency_delta=0.3,
        suite_queries=40,
        suite_pool=80,
        ood_groups=("web",),
        crosslang_languages=("javascript",),
        crosslang_cap=200,
        gap_samples=60,
        datamap_pairs=96,
        datamap_epochs=2,
        validity_fraction=0.15,
        validity_kinds=("random_swap",),
        validity_modes=("in_batch",),
        select_subsets=("all", "ambiguous+hard"),
        analysis_sets=("id_test", "stdlib", "cosqa_dev"),
        analysis_pairs=40,
        layerwise_sets=("id_test", "stdlib"),
        neighbours_k=20,
        llm_model="smollm2-135m",
        aug_train_pairs=96,
        aug_query_pairs=6,
        aug_code_pairs=2,
        filter_max_length=96,
        aug_query_rewrites=2,
        aug_code_techniques=("rename_variables", "simplify"),
        filter_pairs=96,
        filter_negatives=1,
        aug_variants=("baseline", "qra", "natgen", "llm_both"),
        oasis_pairs=48,
        oasis_negatives=2,
        oasis_judge_max=16,
        oasis_llm_queries=4,
        oasis_judge_controls=4,
        oasis_variants=("infonce", "full"),
        explorer_projection="pca",  # no numba compilation in the tests' kernels
    ),
    # `make run`'s default: every chapter on the cpu corpus and the real models in about 15 minutes on
    # 2 cores (docs/performance.md). Real numbers, small: few queries, one seed, so most intervals
    # include zero; the cpu preset (hours) and the sweeps give the answers at scale.
    "tour": dict(
        corpus="cpu",
        train_pairs=400,
        test_queries=200,
        ood_queries=200,
        cosqa_queries=200,
        cosqa_pool=600,
        max_code_len=128,
        train_max_code_len=96,
        epochs=1,
        bf16_eval=True,
        bf16_train=True,
        n_boot=500,
        proxy_model="minilm",
        curation_pairs=300,
        consistency_delta=0.3,
        ablation_arms=("none", "filtering", "curriculum"),
        suite_queries=80,
        suite_pool=150,
        ood_groups=("web",),
        crosslang_languages=("javascript",),
        crosslang_cap=300,
        gap_samples=80,
        datamap_pairs=300,
        datamap_epochs=2,
        datamap_mode="fixed_pool",
        fixed_pool_size=300,
        checkpoints_per_epoch=2,
        validity_fraction=0.1,
        validity_kinds=("near_miss",),
        validity_modes=("fixed_pool",),
        select_subsets=("all", "ambiguous+hard"),
        analysis_sets=("id_test", "stdlib", "stdlib_obf", "cosqa_dev"),
        analysis_pairs=80,
        layerwise_sets=("id_test", "stdlib", "cosqa_dev"),
        neighbours_k=20,
        aug_train_pairs=200,
        aug_query_pairs=8,
        aug_code_pairs=2,
        aug_code_max_chars=250,
        aug_query_rewrites=2,
        aug_code_techniques=("rename_variables", "simplify"),
        filter_pairs=200,
        filter_negatives=1,
        filter_max_length=96,
        aug_variants=("baseline", "qra", "llm_both"),
        oasis_pairs=80,
        oasis_negatives=2,
        oasis_judge_max=8,
        oasis_judge_controls=4,
        oasis_variants=("infonce", "full"),
    ),
    # the full CoSQA dev pool, a short fine-tune, on a 2-core CPU (hours); the data map from a
    # fixed pool of all 2,000 codes scored twice per epoch (docs/outcomes.md: 20% of pairs above
    # confidence 0.9 against 67% in-batch; corrupted pairs flagged with AUC 0.992 / 0.889)
    "cpu": dict(datamap_mode="fixed_pool", fixed_pool_size=2000, checkpoints_per_epoch=2),
    # an accelerator: bigger batches, more data, mixed precision
    "gpu": dict(
        device="cuda",
        threads=8,
        train_pairs=20000,
        test_queries=None,
        ood_queries=None,
        epochs=3,
        batch_size=128,
        eval_batch_size=256,
        bf16_eval=True,
        bf16_train=True,
        checkpoints_per_epoch=2,
        curation_pairs=None,
        suite_queries=None,
        suite_pool=None,
        ablation_epochs=2,
        aug_train_pairs=10000,
        aug_query_pairs=None,
        aug_code_pairs=2000,
        aug_code_per_technique=3,
        filter_pairs=20000,
        filter_max_length=256,
        theta_q=0.95,
        aug_epochs=2,
        oasis_pairs=10000,
        oasis_llm_queries=2000,
        grad_cache_chunk=None,  # activation memory is no constraint there, and GradCache's second forward costs time
    ),
}

# the paper's protocol on an accelerator: the gpu preset with three seeds per variant
PRESETS["paper"] = {**PRESETS["gpu"], "select_seeds": 3, "datamap_pairs": 20000, "datamap_epochs": 4, "aug_seeds": 3,
                    "aug_query_rewrites": 15}

# the Select then MixUp paper's own protocol (issue 26) on an accelerator: train on CodeSearchNet's Python
# train split, test on CoSQA test, AdvTest test and XLCoST's Python code search test, three seeds. The
# user supplies the files (README, "Your own data", says where each comes from); relative paths are
# looked up under the data folder (paths.user_path), so they go to data/own/...
PRESETS["protocol"] = {
    **PRESETS["paper"],
    "corpus": "own/codesearchnet/python/train.jsonl",
    "test_sets": ("cosqa_test=cosqa:test@own/cosqa", "advtest=advtest:own/advtest/test.jsonl",
                  "xlcost=xlcost:own/xlcost@python"),
}

#: what a preset's numbers can say, printed by every chapter that runs on it (``runs.open_run``)
PRESET_NOTES: dict[str, str] = {
    "tour": ("preset 'tour': real data and models at a small size (one seed, 80-200 queries per set, 80-400 "
             "training pairs), to see every chapter work in about 15 minutes; most differences it shows are within "
             "noise. The answers at scale: --preset cpu (hours on 2 cores), the sweeps in sweeps/, or --preset paper "
             "on a GPU."),
    "smoke": "preset 'smoke': the tests' sizes (tens of pairs); its numbers say nothing about the methods.",
}

VALIDITY_KINDS = ("random_swap", "near_miss")  # workbench.datamap_validity.KINDS (a test keeps them equal)

_ALLOWED_CHOICES = {
    "datamap_mode": ("in_batch", "fixed_pool"),
    "datamap_pool": ("sample", "file_neighbours"),
    "dynamics_mode": ("in_batch", "fixed_pool", "both", "none"),
    "device": ("auto", "cpu", "cuda", "mps"),
    "pairs_projection": ("umap", "tsne", "mds", "pca"),
    "neighbours_projection": ("umap", "tsne", "mds", "pca"),
    "clouds_projection": ("umap", "tsne", "mds", "pca"),
    "explorer_projection": ("umap", "tsne", "mds", "pca"),
    "llm_backend": ("local", "server", "openai"),
    "llm_mode": ("single", "batched"),
}


def _type_ok(value: Any, annotation: Any) -> bool:
    hint = typing.get_type_hints(Params)[annotation] if isinstance(annotation, str) else annotation
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if typing.get_origin(hint) is tuple:
        return isinstance(value, tuple) and all(isinstance(v, str) for v in value)
    return isinstance(value, hint)


def _is_names(hint: Any) -> bool:
    args = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    return any(typing.get_origin(a) is tuple for a in args)


def as_names(value: Any) -> Any:
    """A list parameter's value as a tuple of names: ``"a, b"`` and ``["a", "b"]`` give ``("a", "b")``
    (blank items dropped); anything else is returned as it is (for the type check to refuse)."""
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return tuple(v.strip() for v in value if v.strip())
    return value


def allowed_parameters() -> dict[str, str]:
    hints = typing.get_type_hints(Params)
    return {f.name: str(hints[f.name]).replace("typing.", "").replace("<class '", "").replace("'>", "") for f in fields(Params)}


def resolve(preset: str = "cpu", overrides: dict[str, Any] | None = None) -> Params:
    """The preset's parameters with ``overrides`` applied, validated by name, type and choice."""
    if preset not in PRESETS:
        raise ParameterError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    overrides = dict(overrides or {})
    hints = typing.get_type_hints(Params)
    allowed = allowed_parameters()
    overrides = {k: as_names(v) if k in hints and _is_names(hints[k]) else v for k, v in overrides.items()}
    for name, value in overrides.items():
        if name not in hints or name == "preset":
            listing = ", ".join(f"{k} ({t})" for k, t in allowed.items() if k != "preset")
            raise ParameterError(f"unknown parameter {name!r}. Allowed parameters: {listing}")
        if not _type_ok(value, hints[name]):
            raise ParameterError(
                f"parameter {name!r} must be of type {allowed[name]}, got {value!r} ({type(value).__name__})"
            )
        if name in _ALLOWED_CHOICES and value not in _ALLOWED_CHOICES[name]:
            raise ParameterError(f"parameter {name!r} must be one of {_ALLOWED_CHOICES[name]}, got {value!r}")
    values = {k: as_names(v) if _is_names(hints[k]) else v for k, v in {**PRESETS[preset], **overrides}.items()}
    params = replace(Params(), preset=preset, **values)
    for name in (
        "threads", "epochs", "batch_size", "train_pairs", "k", "max_query_len", "max_code_len",
        "datamap_pairs", "datamap_epochs", "select_seeds", "select_epochs", "analysis_pairs", "neighbours_k", "case_k",
        "llm_concurrency", "aug_train_pairs", "aug_query_rewrites", "aug_code_per_technique", "filter_pairs",
        "filter_epochs", "filter_max_length", "aug_seeds", "aug_epochs", "aug_code_max_chars",
        "oasis_pairs", "oasis_negatives", "oasis_max_nodes", "oasis_seeds", "oasis_epochs",
    ):
        if getattr(params, name) < 1:
            raise ParameterError(f"parameter {name!r} must be >= 1, got {getattr(params, name)!r}")
    if params.oasis_judge_controls < 0:
        raise ParameterError(f"parameter 'oasis_judge_controls' must be >= 0, got {params.oasis_judge_controls!r}")
    if params.oasis_llm_queries < 0:
        raise ParameterError(f"parameter 'oasis_llm_queries' must be >= 0, got {params.oasis_llm_queries!r}")
    if params.grad_cache_chunk is not None and params.grad_cache_chunk < 1:
        raise ParameterError(f"parameter 'grad_cache_chunk' must be None or >= 1, got {params.grad_cache_chunk!r}")
    if params.oasis_judge_max is not None and params.oasis_judge_max < 0:
        raise ParameterError(f"parameter 'oasis_judge_max' must be None or >= 0, got {params.oasis_judge_max!r}")
    for name in ("oasis_delta_s", "oasis_ast_threshold", "oasis_contrastive_weight", "oasis_order_weight"):
        if not 0.0 <= getattr(params, name) <= 1.0:
            raise ParameterError(f"parameter {name!r} must be in [0, 1], got {getattr(params, name)!r}")
    if not 0.0 <= params.wise_alpha <= 1.0:
        raise ParameterError(f"parameter 'wise_alpha' must be in [0, 1] (a WiSE-FT mixing coefficient), got {params.wise_alpha!r}")
    if not 0.0 < params.validity_fraction < 1.0:
        raise ParameterError(f"parameter 'validity_fraction' must be strictly between 0 and 1, got {params.validity_fraction!r}")
    if not params.validity_kinds or any(k not in VALIDITY_KINDS for k in params.validity_kinds):
        raise ParameterError(f"parameter 'validity_kinds' must be a list of {list(VALIDITY_KINDS)}, "
                             f"got {params.validity_kinds!r}")
    if not params.validity_modes or any(m not in ("in_batch", "fixed_pool") for m in params.validity_modes):
        raise ParameterError(f"parameter 'validity_modes' must be a list of ['in_batch', 'fixed_pool'], "
                             f"got {params.validity_modes!r}")
    arms = Params.ablation_arms  # the default: all five arms of CoRNStack's Table 5 (workbench.curation.ABLATION_ARMS)
    if any(a not in arms for a in params.ablation_arms):
        raise ParameterError(f"parameter 'ablation_arms' must be a list of {list(arms)}, got {params.ablation_arms!r}")
    for name in ("theta_q", "theta_c"):
        if not 0.0 <= getattr(params, name) <= 1.0:
            raise ParameterError(f"parameter {name!r} must be in [0, 1] (a cross-encoder score), got {getattr(params, name)!r}")
    # ints given for float fields become floats, so the params round-trip identically
    return replace(params, **{f.name: float(getattr(params, f.name)) for f in fields(Params) if hints[f.name] is float})


_NULLS = frozenset({"null", "none", "~"})
_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


def parse_value(name: str, raw: str) -> Any:
    """A command-line value read by the declared type of parameter ``name`` (so ``model=yes`` stays the
    string ``"yes"`` and ``bf16_train=yes`` is ``True``); ``null``/``none``/``~`` give None where the
    type allows it. A name that is not a parameter keeps ``raw`` (``resolve`` then lists the allowed
    ones). Raises :class:`ParameterError` naming the parameter, the value and the expected type."""
    hints = typing.get_type_hints(Params)
    if name not in hints:
        return raw
    hint = hints[name]
    args = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    text = raw.strip()
    if type(None) in args and text.lower() in _NULLS:
        return None
    kinds = [a for a in args if a is not type(None)]
    for kind in kinds:
        if kind is bool:
            if text.lower() in _TRUE | _FALSE:
                return text.lower() in _TRUE
        elif kind is int:
            try:
                return int(text)
            except ValueError:
                pass
        elif kind is float:
            try:
                return float(text)
            except ValueError:
                pass
        elif kind is str:
            return raw
        elif typing.get_origin(kind) is tuple:
            return as_names(text)
    expected = allowed_parameters()[name]
    hint_text = {bool: "true/false, yes/no, on/off or 1/0", int: "a whole number", float: "a number such as 3e-5"}
    detail = " or ".join(hint_text[k] for k in kinds if k in hint_text)
    nulls = ", or null" if type(None) in args else ""
    raise ParameterError(f"parameter {name!r} must be of type {expected}, got {raw!r} (expected {detail}{nulls})")


def parse_assignment(text: str) -> tuple[str, Any]:
    """Parse a command-line ``name=value``, the value read by the parameter's declared type
    (:func:`parse_value`): ``epochs=3``, ``lr=3e-5``, ``bf16_train=true``, ``test_queries=null``."""
    if "=" not in text:
        raise ParameterError(f"expected name=value, got {text!r}")
    name, raw = text.split("=", 1)
    name = name.strip()
    return name, parse_value(name, raw)
