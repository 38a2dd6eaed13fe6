"""Web-style query rewrites (issue 20, section 1): the LLM reads a mined (docstring, code) pair and
writes the short query a developer would type into a web search engine to find the code
("python check if string is palindrome"), the register of CoSQA's queries that docstrings lack.

This is one more query rewrite of ChatDANCE's machinery (:mod:`workbench.augment.chatdance`): its
own :class:`~workbench.augment.chatdance.PromptSchema` (the code is shown, cut to
:data:`WEB_CODE_CHARS` characters), two worked examples as conversation turns, temperature 0.7,
one rewrite per pair and call seeded per request (``request_seed``), sent through the cached LLM
(a re-run costs nothing), extracted and validated by ``rewrite_queries`` with fixed word bounds
(:data:`WEB_QUERY_BOUNDS`: web queries are shorter than docstrings) and rejections counted by reason.
"""

from __future__ import annotations

import pandas as pd

from ..errors import ParameterError
from ..llm import Sampling
from ..pairs import check_pairs
from .chatdance import ChatMany, rewrite_queries
from .prompts import PromptSchema, QueryExample, RewriteRequest, build_query_requests

WEB_QUERY = "web_query"  # the technique name: aug_op of the rewrites, part of each request's seed

WEB_QUERY_PROMPT = PromptSchema(
    instruction="Given a Python function and its docstring, write the query a developer would type into a web "
    "search engine (such as Google) to find this code.",
    emphasis="Web search queries are short: 3 to 10 lowercase keywords, often starting with the language name "
    "(python). They name the task the developer wants done, not how the code does it. Never write code, "
    "parentheses, quotes or a full sentence.",
    prior_knowledge="",
    task_input="Docstring: {query}\n\nCode:\n```python\n{code}\n```",
    output_context="Web search query:",
)
WEB_ANSWER_RULE = "Answer with the search query only, on one line."

_IS_PALINDROME = '''def is_palindrome(text):
    chars = [c.lower() for c in text if c.isalnum()]
    return chars == chars[::-1]'''

_WORD_FREQUENCIES = '''def word_frequencies(path, encoding="utf-8"):
    counts = {}
    with open(path, encoding=encoding) as f:
        for line in f:
            for word in line.lower().split():
                counts[word] = counts.get(word, 0) + 1
    return sorted(counts.items(), key=lambda kv: kv[1], reverse=True)'''

#: written for this prompt (not taken from CoSQA; neither topic occurs in the cpu corpus)
WEB_QUERY_EXAMPLES: tuple[QueryExample, ...] = (
    QueryExample("Return True if the text reads the same forwards and backwards, ignoring case and punctuation.",
                 "python check if string is palindrome", _IS_PALINDROME),
    QueryExample("Count how often each word occurs in a text file, most frequent first.",
                 "python count word frequency in text file", _WORD_FREQUENCIES),
)

#: one line of at most a few dozen tokens; the newline stop ends the answer after the query
WEB_QUERY_SAMPLING = Sampling(temperature=0.7, top_p=0.95, max_tokens=40, stop=("\n",))
WEB_QUERY_BOUNDS = (2, 12)  # accepted word counts (the prompt asks for 3 to 10)
WEB_CODE_CHARS = 800  # the code shown in the prompt, cut at a line end (prompt evaluation dominates the time)


def sample_pairs(pairs: pd.DataFrame, n: int | None, seed: int) -> pd.DataFrame:
    """``n`` pairs drawn reproducibly (``DataFrame.sample`` with ``seed``); all of them when ``n`` is
    None or not smaller than the frame."""
    if n is not None and int(n) < 1:
        raise ParameterError(f"n={n!r}: the number of pairs to rewrite must be >= 1 (or None for all)")
    if n is None or int(n) >= len(pairs):
        return pairs.reset_index(drop=True)
    return pairs.sample(n=int(n), random_state=seed).reset_index(drop=True)


def web_query_requests(pairs: pd.DataFrame, seed: int = 0, sampling: Sampling | None = None,
                       code_chars: int | None = WEB_CODE_CHARS) -> list[RewriteRequest]:
    """The chat requests, one per pair: system prompt, the worked examples as user/assistant turns,
    then the pair's docstring and code (``build_query_requests`` with the web prompt)."""
    return build_query_requests(pairs, 1, "single", WEB_QUERY_PROMPT, sampling or WEB_QUERY_SAMPLING, seed,
                                examples=WEB_QUERY_EXAMPLES, answer_rule=WEB_ANSWER_RULE, technique=WEB_QUERY,
                                code_chars=code_chars)


def web_query_pairs(
    llm: ChatMany,
    pairs: pd.DataFrame,
    n: int | None = None,
    seed: int = 0,
    show_progress: bool = True,
    sampling: Sampling | None = None,
    concurrency: int = 1,
    code_chars: int | None = WEB_CODE_CHARS,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rewrite the query of ``n`` pairs drawn from ``pairs`` (:func:`sample_pairs`; None = all) into a
    web search query, one LLM call per pair.

    Returns ``(new_pairs, log)``: ``new_pairs`` has the input's columns (``id`` a new 16-hex id,
    ``query`` the web query, ``code`` and the other columns copied) plus ``aug_of`` (the original
    id), ``aug_kind="llm_query"`` and ``aug_op="web_query"``; ``log`` is the rewrite log, one row per
    reply with its ``reason`` (None = accepted): ``chatdance.rejection_counts(log)`` counts them.
    ``sampling``'s seed is replaced by a per-request seed derived from ``seed``.
    """
    check_pairs(pairs, min_rows=0, text=())
    todo = sample_pairs(pairs, n, seed)
    cands, log = rewrite_queries(
        llm, todo, n=1, mode="single", schema=WEB_QUERY_PROMPT, sampling=sampling or WEB_QUERY_SAMPLING,
        concurrency=concurrency,
        seed=seed, examples=WEB_QUERY_EXAMPLES, show_progress=show_progress, answer_rule=WEB_ANSWER_RULE,
        technique=WEB_QUERY, bounds=WEB_QUERY_BOUNDS, code_chars=code_chars)
    cols = [*pairs.columns, *(c for c in ("aug_of", "aug_kind", "aug_op") if c not in pairs.columns)]
    return cands[cols].reset_index(drop=True), log.to_frame()
