"""QRA, Query-Rewritten Augmentation (Huang et al. 2021), the query baseline of ChatDANCE (papers/002,
section IV-B; ``docs/methods.md`` section 2): a new query is the original with one word deleted,
one word copied (duplicated in place) or two words swapped. Words are whitespace tokens; the output is
joined with single spaces.

:func:`augment_queries` is the frame-level entry point; its output contract is shared by every
augmenter (``natgen.augment_code``, the LLM rewrites): the input pairs' columns (at least ``id``,
``query``, ``code``) copied, the augmented field replaced, a new stable ``id``, and ``aug_of`` (the
original id), ``aug_kind`` (``"qra"``) and ``aug_op`` (the operation).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from ..errors import ParameterError
from ..pairs import check_pairs
from ..progress import tqdm

OPS = ("delete", "copy", "swap")
AUG_COLUMNS = ["aug_of", "aug_kind", "aug_op"]
REQUIRED_COLUMNS = ("id", "query", "code")


def apply_op(query: str, op: str, i: int, j: int | None = None) -> str:
    """One QRA edit at word positions: ``delete`` word ``i``, ``copy`` word ``i`` (it then appears
    twice in a row), ``swap`` words ``i`` and ``j``."""
    words = query.split()
    if op not in OPS:
        raise ParameterError(f"op: unknown QRA operation {op!r}; known: {list(OPS)}")
    if not 0 <= i < len(words):
        raise ParameterError(f"i: word position {i} outside the query's {len(words)} words")
    if op == "delete":
        words = words[:i] + words[i + 1 :]
    elif op == "copy":
        words = words[: i + 1] + words[i:]
    else:
        if j is None or not 0 <= j < len(words):
            raise ParameterError(f"j: word position {j!r} outside the query's {len(words)} words")
        words[i], words[j] = words[j], words[i]
    return " ".join(words)


def candidates(query: str, op: str) -> list[str]:
    """Every distinct query one ``op`` edit gives, in position order, the unchanged one left out. Empty
    when the query is too short: ``delete`` and ``swap`` need two words (``swap`` two different ones),
    ``copy`` one."""
    words = query.split()
    n = len(words)
    if op == "delete":
        edits = [(i, None) for i in range(n)] if n >= 2 else []
    elif op == "copy":
        edits = [(i, None) for i in range(n)]
    elif op == "swap":
        edits = [(i, j) for i in range(n) for j in range(i + 1, n) if words[i] != words[j]]
    else:
        raise ParameterError(f"ops: unknown QRA operation {op!r}; known: {list(OPS)}")
    original = " ".join(words)
    out: dict[str, None] = {}
    for i, j in edits:
        new = apply_op(query, op, i, j)
        if new and new != original:
            out.setdefault(new)
    return list(out)


def as_rng(rng: np.random.Generator | int) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise ParameterError(f"rng: expected a numpy Generator or an int seed, got {type(rng).__name__}")


def qra_augment(
    query: str, n: int, rng: np.random.Generator | int, ops: Sequence[str] = OPS
) -> list[tuple[str, str]]:
    """Up to ``n`` QRA rewrites of ``query`` as ``(operation, new query)``: distinct, never equal to the
    (whitespace-normalised) original, never empty. Operations take turns in a random order each round
    so the kinds stay balanced; an operation the query is too short for, or whose edits are used up,
    is skipped, so fewer than ``n`` come back for short queries."""
    if not isinstance(n, (int, np.integer)) or n < 0:
        raise ParameterError(f"n: expected a non-negative int, got {n!r}")
    bad = [op for op in ops if op not in OPS]
    if bad or not ops:
        raise ParameterError(f"ops: expected a non-empty subset of {list(OPS)}, got {list(ops)}")
    gen = as_rng(rng)
    original = " ".join(query.split())
    pools = {op: candidates(query, op) for op in dict.fromkeys(ops)}
    seen: set[str] = {original}
    out: list[tuple[str, str]] = []
    while len(out) < n and any(pools.values()):
        order = [op for op in pools if pools[op]]
        for k in gen.permutation(len(order)):
            op = order[int(k)]
            pool = pools[op]
            while pool:
                new = pool.pop(int(gen.integers(len(pool))))
                if new not in seen:
                    seen.add(new)
                    out.append((op, new))
                    break
            if len(out) == n:
                break
    return out


def pair_rng(seed: int, kind: str, pair_id: str) -> np.random.Generator:
    """A generator for one pair that depends on ``(seed, kind, id)`` only, not on the row order."""
    h = hashlib.sha256(f"{seed}|{kind}|{pair_id}".encode()).digest()
    return np.random.default_rng(int.from_bytes(h[:8], "big"))


def augmented_id(orig_id: str, kind: str, op: str, text: str) -> str:
    """16 hex chars of ``sha256(orig_id|kind|op|text)``: stable, and different for different rewrites."""
    return hashlib.sha256(f"{orig_id}|{kind}|{op}|{text}".encode()).hexdigest()[:16]


def _check_inputs(pairs: pd.DataFrame, per_pair: int) -> None:
    check_pairs(pairs, "pairs", REQUIRED_COLUMNS, min_rows=0, text=(), unique_ids=False)
    if not isinstance(per_pair, (int, np.integer)) or isinstance(per_pair, bool) or per_pair < 0:
        raise ParameterError(f"per_pair: expected a non-negative int, got {per_pair!r}")


def augment_frame(
    pairs: pd.DataFrame,
    per_pair: int,
    seed: int,
    kind: str,
    field: str,
    rewrite: Callable[[str, int, np.random.Generator], list[tuple[str, str]]],
    progress: bool = True,
) -> pd.DataFrame:
    """The shared frame-level loop: ``rewrite(text, per_pair, rng)`` gives ``(op, new text)`` for the
    ``field`` of each row; each becomes a new row (see the module docstring for the columns)."""
    _check_inputs(pairs, per_pair)
    base_cols = [c for c in pairs.columns if c not in AUG_COLUMNS]
    rows: list[dict] = []
    records = pairs[base_cols].to_dict("records")
    for rec in tqdm(records, desc=f"{kind} augmentation", disable=not progress or len(records) < 200):
        orig_id = str(rec["id"])
        rng = pair_rng(seed, kind, orig_id)
        for op, new in rewrite(str(rec[field]), per_pair, rng):
            rows.append(
                {
                    **rec,
                    field: new,
                    "id": augmented_id(orig_id, kind, op, new),
                    "aug_of": orig_id,
                    "aug_kind": kind,
                    "aug_op": op,
                }
            )
    return pd.DataFrame(rows, columns=base_cols + AUG_COLUMNS)


def augment_queries(pairs: pd.DataFrame, per_pair: int, seed: int, progress: bool = True) -> pd.DataFrame:
    """QRA rows for every pair: up to ``per_pair`` rewritten queries each, paired with the original
    code. Columns: the input's, then ``aug_of``, ``aug_kind`` (``"qra"``), ``aug_op``; the same
    ``seed`` gives the same rows whatever the row order."""
    return augment_frame(
        pairs, per_pair, seed, "qra", "query", lambda q, n, rng: qra_augment(q, n, rng), progress=progress
    )
