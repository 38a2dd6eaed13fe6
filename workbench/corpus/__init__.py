"""Mined (query, code) pairs: CodeSearchNet-style Python mining with ``ast``, sources (stdlib,
pinned wheels), de-duplication, leakage-free splits and the cached corpus build.

See ``docs/architecture.md`` (the Pair contract) and ``shared/docs/offline.md`` (the measured filters).
"""

from .build import (
    CPU_SPEC,
    NAMED_SPECS,
    PAIR_COLUMNS,
    SMOKE_SPEC,
    CorpusSpec,
    build_corpus,
    corpus_dir,
    corpus_stats,
    load_corpus_stats,
    load_pairs,
    mine_corpus_source,
    named_spec,
    pair_id,
)
from .dedup import DedupResult, code_key, code_tokens, deduplicate
from .mining import (
    MINER_VERSION,
    FunctionVerdict,
    MinedFunction,
    explain_source,
    mine_source,
    normalize_query,
    skip_path_reason,
)
from .sources import Source, SourceRef, open_source, parse_source
from .splits import assign_splits, leakage_report, split_corpus, split_for_path

__all__ = [
    "CPU_SPEC",
    "MINER_VERSION",
    "NAMED_SPECS",
    "PAIR_COLUMNS",
    "SMOKE_SPEC",
    "CorpusSpec",
    "DedupResult",
    "FunctionVerdict",
    "MinedFunction",
    "Source",
    "SourceRef",
    "assign_splits",
    "build_corpus",
    "code_key",
    "code_tokens",
    "corpus_dir",
    "corpus_stats",
    "deduplicate",
    "explain_source",
    "leakage_report",
    "load_corpus_stats",
    "load_pairs",
    "mine_corpus_source",
    "mine_source",
    "named_spec",
    "normalize_query",
    "open_source",
    "pair_id",
    "parse_source",
    "skip_path_reason",
    "split_corpus",
    "split_for_path",
]
