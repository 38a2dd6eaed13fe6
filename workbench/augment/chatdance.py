"""ChatDANCE (Wang et al., papers/002; methods.md section 2): LLM rewrites of queries and code,
their validation, and the cross-encoder filter of Algorithm 1.

Pipeline: :func:`build_query_requests` / :func:`build_code_requests` turn training pairs into chat
requests from a :class:`PromptSchema` (the paper's five parts, Section III-A1, Tables I and II);
:func:`rewrite_queries` / :func:`rewrite_code` send them through any object with ``chat_many``
(``workbench.llm.CachedLLM``), extract the rewrites (:func:`extract_queries`,
:func:`extract_code_blocks`), reject bad ones by reason (:func:`query_reject_reason`,
:func:`check_code`, counted in a :class:`RewriteLog`) and return candidate pairs; then
:func:`build_augmented` keeps those the scorer (the cross-encoder) rates high enough (Algorithm 1).

Two prompting modes: ``"batched"`` is the paper's (one prompt asks for N rewrites; for capable
remote models) and ``"single"`` (default) asks for one rewrite per call with a system prompt, a few
example turns and a different seed per call, which works far better for small local models
(``shared/docs/offline.md``: Qwen2.5-Coder-0.5B repeats itself when asked for several at once).

Generated code is data: it is parsed with :mod:`ast` and tokenised, never executed (no ``exec``,
``eval`` or import of it anywhere in this module).
"""

from __future__ import annotations

import ast
import hashlib
import math
import random
import re
import string
import textwrap
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd

from ..corpus.dedup import code_tokens
from ..corpus.mining import function_code
from ..errors import ParameterError
from ..llm import Message, Sampling
from ..llm.replies import looks_like_code, norm_words, strip_quotes
from ..pairs import check_pairs
from .qra import augmented_id

Mode = Literal["single", "batched"]
MODES: tuple[str, ...] = ("single", "batched")

QUERY_KIND, CODE_KIND = "llm_query", "llm_code"
PARAPHRASE = "paraphrase"

#: the five code rewriting techniques of the paper (Section III-A2, Table II), key -> prompt text
TECHNIQUES: dict[str, str] = {
    "rename_method": "Rename the method without changing the function names it calls internally.",
    "rename_variables": "Rewrite the code with more meaningful variable names.",
    "library_functions": "Use different library functions for the code snippet.",
    "same_semantics": "Rewrite the code with the same semantics.",
    "simplify": "Simplify the code by removing unnecessary statements or tokens.",
}
ALL_TECHNIQUES: tuple[str, ...] = tuple(TECHNIQUES)

#: rejection reasons, in the order they are checked
QUERY_REASONS = ("empty", "not_a_query", "same_as_original", "too_short", "too_long", "duplicate")
CODE_REASONS = ("no_code_block", "syntax_error", "not_a_function", "copied_example", "same_as_original", "too_long",
                "duplicate")

CONTRACT_COLUMNS = ("id", "aug_of", "query", "code", "aug_kind", "aug_op", "raw")


# --------------------------------------------------------------------------------------------
# Prompt schema (Section III-A1) and the two default prompts (Tables I and II)


@dataclass(frozen=True)
class PromptSchema:
    """The paper's prompt schema (Section III-A1): five parts, each a ``str.format`` template.

    Edit one part with ``dataclasses.replace(QUERY_PROMPT, emphasis="...")``. :meth:`render` joins
    the non-empty parts with blank lines; :meth:`header` (instruction, emphasis, prior knowledge)
    is the system prompt of the single mode and :meth:`task` (task input, output context) its user turn.
    """

    instruction: str
    emphasis: str
    prior_knowledge: str
    task_input: str
    output_context: str

    PARTS = ("instruction", "emphasis", "prior_knowledge", "task_input", "output_context")

    def fields(self) -> set[str]:
        """The template fields every part together needs."""
        out: set[str] = set()
        for part in self.PARTS:
            out |= _template_fields(getattr(self, part), part)
        return out

    def _render(self, parts: Sequence[str], fields: dict[str, Any]) -> str:
        texts = []
        for part in parts:
            tmpl = getattr(self, part)
            missing = sorted(_template_fields(tmpl, part) - set(fields))
            if missing:
                raise ParameterError(f"PromptSchema.{part}: no value for field(s) {missing}; given {sorted(fields)}")
            text = tmpl.format(**fields).strip()
            if text:
                texts.append(text)
        return "\n\n".join(texts)

    def render(self, **fields: Any) -> str:
        """All five parts, in the paper's order (the batched prompt)."""
        return self._render(self.PARTS, fields)

    def header(self, **fields: Any) -> str:
        """Instruction, emphasis and prior knowledge (the single mode's system prompt)."""
        return self._render(self.PARTS[:3], fields)

    def task(self, **fields: Any) -> str:
        """Task input and output context (one user turn)."""
        return self._render(self.PARTS[3:], fields)


def _template_fields(template: str, part: str) -> set[str]:
    try:
        return {name.split(".")[0].split("[")[0] for _, name, _, _ in string.Formatter().parse(template) if name}
    except ValueError as exc:
        raise ParameterError(f"PromptSchema.{part}: not a valid str.format template ({exc}): {template!r}") from exc


#: Table I (query augmentation prompt); the paper's caution sits in the emphasis part
QUERY_PROMPT = PromptSchema(
    instruction="Given a query, your task is to reformulate the query while ensuring that its semantics "
    "remain unchanged.",
    emphasis="You must generate {count}. Note that in real-life scenarios, users' queries are often brief. "
    "For example, the average length of queries in the CoSQA dataset is 6.6 words. So you must aim to "
    "generate concise queries in this task. You must limit the length of each rewritten query to between "
    "{length} and {max_length} words. Write each rewritten query on its own line.",
    prior_knowledge="",
    task_input="Original Query: {query}",
    output_context="Rewritten Queries:",
)

#: Table II (code augmentation prompt), the fence template written out with real backticks
CODE_PROMPT = PromptSchema(
    instruction="Given a method-level code snippet, your job is to rewrite the code snippet based on a given "
    "rewriting technique, while ensuring that the generated code performs the same functionality as the "
    "original code.",
    emphasis="You must generate {count}. Use ``` to wrap each code based on this template: "
    "Code (number such as 1)\n```python\n<returned code>\n```\nIf the current rewriting technique is not "
    "suitable for the original code, you can rewrite it using a different technique, while ensuring the "
    "generated code has the same functionality as the original code.",
    prior_knowledge="Rewriting Technique: {technique}",
    task_input="Original Code:\n```python\n{code}\n```",
    output_context="Rewritten Codes:",
)

#: the single mode's extra line at the end of the system prompt
QUERY_ANSWER_RULE = ("L is the number of words of the original query. Answer with the rewritten query only, on "
                     "one line, without quotes or explanations.")
CODE_ANSWER_RULE = "Answer with the rewritten code only, in one ```python block, without explanations."


@dataclass(frozen=True)
class QueryExample:
    """A few-shot turn of the single mode: an original query and one good rewrite; ``code`` fills
    the ``{code}`` field of prompts that show the function (e.g. ``workbench.augment.web_queries``)."""

    query: str
    rewrite: str
    code: str = ""


@dataclass(frozen=True)
class CodeExample:
    """A few-shot turn of the single mode: an original function and one rewrite per technique."""

    code: str
    rewrites: dict[str, str]


QUERY_EXAMPLES: tuple[QueryExample, ...] = (
    QueryExample("Return True if the path points to an existing regular file.",
                 "Check whether the given path is an existing regular file"),
    QueryExample("Split a string into a list of lowercase words, removing punctuation.",
                 "Break a string into lowercase words and strip out the punctuation"),
    QueryExample("Compute the SHA-256 hex digest of a file, reading it in chunks.",
                 "Hash a file chunk by chunk and return its SHA-256 hex digest"),
)

_COUNT_WORDS = '''def count_words(text):
    counts = {}
    for w in text.split():
        w = w.lower()
        if w in counts:
            counts[w] = counts[w] + 1
        else:
            counts[w] = 1
    return counts'''

_FILE_SHA256 = '''def file_sha256(path, chunk_size=65536):
    h = hashlib.sha256()
    f = open(path, "rb")
    try:
        while True:
            block = f.read(chunk_size)
            if not block:
                break
            h.update(block)
    finally:
        f.close()
    return h.hexdigest()'''

_IS_EXPIRED = '''def is_expired(self, now=None):
    if now is None:
        now = time.time()
    if self.expires_at is not None and now >= self.expires_at:
        return True
    else:
        return False'''

CODE_EXAMPLES: tuple[CodeExample, ...] = (
    CodeExample(_COUNT_WORDS, {
        "rename_method": _COUNT_WORDS.replace("def count_words(", "def word_frequencies("),
        "rename_variables": _COUNT_WORDS.replace("counts", "frequency_by_word").replace("w ", "word ")
        .replace("w.", "word.").replace("[w]", "[word]").replace("w = ", "word = "),
        "library_functions": "from collections import Counter\n\n\ndef count_words(text):\n"
        "    return dict(Counter(word.lower() for word in text.split()))",
        "same_semantics": "def count_words(text):\n    counts = {}\n    for w in text.split():\n"
        "        key = w.lower()\n        counts[key] = counts.get(key, 0) + 1\n    return counts",
        "simplify": "def count_words(text):\n    counts = {}\n    for w in text.split():\n"
        "        w = w.lower()\n        counts[w] = counts.get(w, 0) + 1\n    return counts",
    }),
    CodeExample(_FILE_SHA256, {
        "rename_method": _FILE_SHA256.replace("def file_sha256(", "def compute_file_digest("),
        "rename_variables": _FILE_SHA256.replace("h.", "hasher.").replace("h = ", "hasher = ")
        .replace("f.", "handle.").replace("f = ", "handle = ").replace("block", "chunk"),
        "library_functions": "def file_sha256(path, chunk_size=65536):\n    h = hashlib.sha256()\n"
        "    with open(path, \"rb\") as f:\n"
        "        for block in iter(functools.partial(f.read, chunk_size), b\"\"):\n"
        "            h.update(block)\n    return h.hexdigest()",
        "same_semantics": "def file_sha256(path, chunk_size=65536):\n    h = hashlib.sha256()\n"
        "    with open(path, \"rb\") as f:\n        block = f.read(chunk_size)\n        while block:\n"
        "            h.update(block)\n            block = f.read(chunk_size)\n    return h.hexdigest()",
        "simplify": "def file_sha256(path, chunk_size=65536):\n    h = hashlib.sha256()\n"
        "    with open(path, \"rb\") as f:\n        while block := f.read(chunk_size):\n"
        "            h.update(block)\n    return h.hexdigest()",
    }),
    CodeExample(_IS_EXPIRED, {
        "rename_method": _IS_EXPIRED.replace("def is_expired(", "def has_expired("),
        "rename_variables": _IS_EXPIRED.replace("now", "current_time"),
        "library_functions": _IS_EXPIRED.replace("time.time()", "datetime.datetime.now().timestamp()"),
        "same_semantics": "def is_expired(self, now=None):\n"
        "    current = time.time() if now is None else now\n"
        "    return self.expires_at is not None and current >= self.expires_at",
        "simplify": "def is_expired(self, now=None):\n    if now is None:\n        now = time.time()\n"
        "    return self.expires_at is not None and now >= self.expires_at",
    }),
)

DEFAULT_QUERY_SAMPLING = Sampling(temperature=0.9, top_p=0.95, max_tokens=512)
DEFAULT_CODE_SAMPLING = Sampling(temperature=0.9, top_p=0.95, max_tokens=1536)


# --------------------------------------------------------------------------------------------
# Requests


@dataclass(frozen=True)
class RewriteRequest:
    """One chat request: which pair, technique and rewrite index it is for, and how many rewrites
    its answer should hold (``n_expected``: 1 in single mode, N in batched mode)."""

    pair_id: str
    aug_kind: str
    technique: str
    index: int
    n_expected: int
    messages: tuple[Message, ...]
    sampling: Sampling


def request_seed(seed: int, pair_id: str, technique: str, index: int) -> int:
    """A per-request sampling seed from a stable hash: independent of the request's position, so
    adding pairs leaves the other requests (and their cache entries) unchanged."""
    digest = hashlib.sha256(f"{int(seed)}|{pair_id}|{technique}|{int(index)}".encode()).hexdigest()
    return int(digest[:8], 16) & 0x7FFFFFFF


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ParameterError(f"mode={mode!r}: choose one of {list(MODES)}")


def word_count(text: str) -> int:
    """Words as whitespace-separated tokens (the L of the paper's Equation 1)."""
    return len(str(text).split())


def query_length_bounds(original: str, alpha: float = 1.6, min_ratio: float = 0.5, min_words: int = 3,
                        slack: int = 2) -> tuple[int, int]:
    """Accepted word counts of a rewrite of ``original`` (L words).

    The paper's Equation 1 asks for L <= length <= alpha L. Small models shorten queries, and a
    shorter paraphrase of a long docstring sentence is still a good query, so validation is more
    tolerant: at least ``max(min_words, ceil(min_ratio L))`` words (but never more than L) and at
    most ``floor(alpha L) + slack``. The prompt still states the paper's bounds.
    """
    n = word_count(original)
    low = min(n, max(int(min_words), math.ceil(float(min_ratio) * n)))
    high = int(math.floor(float(alpha) * n)) + int(slack)
    return low, high


def _count_phrase(n: int, one: str, many: str) -> str:
    return f"1 {one}" if n == 1 else f"{n} {many}"


def prompt_code(code: str, max_chars: int | None = None) -> str:
    """``code`` as a prompt shows it: whole, or cut at the last line end within ``max_chars``
    characters with a ``# ...`` line marking the cut (long functions would overflow a small
    model's context and slow every request)."""
    code = str(code)
    if max_chars is None or len(code) <= int(max_chars):
        return code
    cut = code[: int(max_chars)]
    head = cut[: cut.rfind("\n")] if "\n" in cut else cut
    return f"{head.rstrip()}\n    # ..."


def _query_fields(query: str, n: int, alpha: float, code: str = "", code_chars: int | None = None) -> dict[str, Any]:
    n_words = word_count(query)
    return {"query": query, "count": _count_phrase(n, "rewritten query", "rewritten queries"), "n": n,
            "length": n_words, "max_length": max(n_words, int(math.floor(alpha * n_words))), "alpha": alpha,
            "code": prompt_code(code, code_chars)}


def _code_fields(code: str, technique: str, n: int) -> dict[str, Any]:
    return {"code": code, "technique": TECHNIQUES[technique], "technique_key": technique, "n": n,
            "count": _count_phrase(n, "rewritten code", "rewritten codes")}


def _query_budget(query: str, n: int, alpha: float) -> int:
    """max_tokens for ``n`` rewrites: about 2 tokens per word of alpha L, plus numbering and chatter."""
    return n * (int(2 * alpha * word_count(query)) + 12) + 24


def _code_budget(code: str, n: int) -> int:
    """max_tokens for ``n`` code rewrites: about 1.3x the original's tokens each, plus fences."""
    return n * (int(1.3 * len(code) / 3.2) + 48) + 32


def build_query_requests(
    pairs: pd.DataFrame,
    n: int = 5,
    mode: Mode = "single",
    schema: PromptSchema = QUERY_PROMPT,
    sampling: Sampling | None = None,
    seed: int = 0,
    alpha: float = 1.6,
    examples: Sequence[QueryExample] = QUERY_EXAMPLES,
    answer_rule: str = QUERY_ANSWER_RULE,
    technique: str = PARAPHRASE,
    code_chars: int | None = None,
) -> list[RewriteRequest]:
    """The chat requests for ``n`` rewrites of each pair's query (Table I's prompt).

    ``"batched"``: one user message with the five parts rendered, asking for ``n`` rewrites.
    ``"single"``: ``n`` requests per pair, each a system prompt (header asking for one rewrite,
    its length bounds written as L and alpha L, + ``answer_rule``), the ``examples`` as
    user/assistant turns (this prefix is the same for every pair, so a server's prompt cache reuses
    it), then the pair's task. Each request
    gets its own seed (:func:`request_seed`) and ``max_tokens`` = min(sampling's, a length budget).
    ``technique`` names the rewrite (``aug_op`` of the candidates, and part of each request's seed);
    a schema may show the pair's code as ``{code}`` (at most ``code_chars`` characters: :func:`prompt_code`).
    """
    check_pairs(pairs, min_rows=0, text=())
    _check_mode(mode)
    if int(n) < 1:
        raise ParameterError(f"n={n!r}: the number of rewrites per query must be >= 1")
    sampling = sampling or DEFAULT_QUERY_SAMPLING
    # single mode: one system prompt and example turns shared by every pair (a server's prompt cache
    # then evaluates only the last user turn), so the length bounds are stated in terms of L
    generic = {**_query_fields("", 1, alpha), "length": "L", "max_length": f"{alpha:g} L"}
    prefix: list[Message] = [{"role": "system", "content": f"{schema.header(**generic)}\n\n{answer_rule}".strip()}]
    for ex in examples:
        prefix.append({"role": "user", "content": schema.task(**_query_fields(ex.query, 1, alpha, ex.code,
                                                                                  code_chars))})
        prefix.append({"role": "assistant", "content": ex.rewrite})
    out: list[RewriteRequest] = []
    for pid, query, code in zip(pairs["id"].astype(str), pairs["query"].astype(str), pairs["code"].astype(str)):
        if mode == "batched":
            msgs = ({"role": "user", "content": schema.render(**_query_fields(query, n, alpha, code, code_chars))},)
            s = replace(sampling, seed=request_seed(seed, pid, technique, 0),
                        max_tokens=min(sampling.max_tokens, _query_budget(query, n, alpha)))
            out.append(RewriteRequest(pid, QUERY_KIND, technique, 0, int(n), msgs, s))
            continue
        turns = [*prefix, {"role": "user", "content": schema.task(**_query_fields(query, 1, alpha, code, code_chars))}]
        for i in range(int(n)):
            s = replace(sampling, seed=request_seed(seed, pid, technique, i),
                        max_tokens=min(sampling.max_tokens, _query_budget(query, 1, alpha)))
            out.append(RewriteRequest(pid, QUERY_KIND, technique, i, 1, tuple(turns), s))
    return out


def _check_techniques(techniques: Sequence[str]) -> list[str]:
    techniques = [techniques] if isinstance(techniques, str) else list(techniques)
    unknown = [t for t in techniques if t not in TECHNIQUES]
    if unknown or not techniques:
        raise ParameterError(f"techniques: unknown {unknown or techniques!r}; choose from {list(TECHNIQUES)}")
    return techniques


def _fenced(code: str, number: int | None = None) -> str:
    head = f"Code {number}\n" if number is not None else ""
    return f"{head}```python\n{code}\n```"


def build_code_requests(
    pairs: pd.DataFrame,
    techniques: Sequence[str] = ALL_TECHNIQUES,
    per_technique: int = 1,
    mode: Mode = "single",
    schema: PromptSchema = CODE_PROMPT,
    sampling: Sampling | None = None,
    seed: int = 0,
    examples: Sequence[CodeExample] = CODE_EXAMPLES,
    answer_rule: str = CODE_ANSWER_RULE,
) -> list[RewriteRequest]:
    """The chat requests for ``per_technique`` rewrites of each pair's code with each technique (Table II).

    Requests are ordered technique-major (all pairs for one technique, then the next), so a server's
    prompt cache reuses the technique's system prompt and example turns. ``"batched"``: one prompt
    per pair and technique asking for ``per_technique`` numbered fenced blocks (the paper: 5 x 3);
    ``"single"``: ``per_technique`` requests, each with the technique's example rewrites as turns.
    """
    check_pairs(pairs, min_rows=0, text=())
    _check_mode(mode)
    techniques = _check_techniques(techniques)
    k = int(per_technique)
    if k < 1:
        raise ParameterError(f"per_technique={per_technique!r}: must be >= 1")
    sampling = sampling or DEFAULT_CODE_SAMPLING
    out: list[RewriteRequest] = []
    ids, codes = pairs["id"].astype(str).tolist(), pairs["code"].astype(str).tolist()
    for tech in techniques:
        shots: list[Message] = []
        for ex in examples:
            if tech in ex.rewrites:
                shots.append({"role": "user", "content": schema.task(**_code_fields(ex.code, tech, 1))})
                shots.append({"role": "assistant", "content": _fenced(ex.rewrites[tech])})
        for pid, code in zip(ids, codes):
            if mode == "batched":
                msgs = ({"role": "user", "content": schema.render(**_code_fields(code, tech, k))},)
                s = replace(sampling, seed=request_seed(seed, pid, tech, 0),
                            max_tokens=min(sampling.max_tokens, _code_budget(code, k)))
                out.append(RewriteRequest(pid, CODE_KIND, tech, 0, k, msgs, s))
                continue
            system = f"{schema.header(**_code_fields(code, tech, 1))}\n\n{answer_rule}".strip()
            msgs = ({"role": "system", "content": system}, *shots,
                    {"role": "user", "content": schema.task(**_code_fields(code, tech, 1))})
            for i in range(k):
                s = replace(sampling, seed=request_seed(seed, pid, tech, i),
                            max_tokens=min(sampling.max_tokens, _code_budget(code, 1)))
                out.append(RewriteRequest(pid, CODE_KIND, tech, i, 1, msgs, s))
    return out


# --------------------------------------------------------------------------------------------
# Extraction and validation (pure)

_NUMBERING = re.compile(r"^\s*(?:\(?\d{1,3}\s*[.):\]-]|\d{1,3}\s+-|[-*\u2022+>]|#{1,6})\s*")
_LABEL = re.compile(
    r"^\s*(?:(?:rewritten|reformulated|augmented|paraphrased|new|alternative)\s+)?(?:query|queries|rewrite)"
    r"\s*\d*\s*[:.)-]\s+", re.I)
_HEADER_WORDS = re.compile(
    r"\b(here|sure|certainly|rewritten|reformulated|rewrites?|quer(y|ies)|following|below|versions?|"
    r"paraphrases?|alternatives?|options?)\b", re.I)
_CHATTER = re.compile(r"^\s*(note\b|i hope\b|hope this\b|let me know\b|feel free\b|these (queries|rewrites)\b|"
                      r"i have\b|i've\b|explanation\b)", re.I)
_ECHO = re.compile(r"^[\s*#>\d.():-]*original\s+(query|queries|code)\b", re.I)


def clean_query_line(line: str) -> str:
    """One answer line without numbering, bullets, a ``Query 1:`` label or surrounding quotes."""
    s = line.strip()
    for _ in range(3):
        before = s
        s = strip_quotes(_LABEL.sub("", _NUMBERING.sub("", s, count=1), count=1))
        if s == before:
            break
    return s.strip()


def _is_header(line: str) -> bool:
    s = line.strip().rstrip("*").strip()
    return s.endswith(":") and bool(_HEADER_WORDS.search(s))


def extract_queries(text: str, single: bool = False) -> list[str]:
    """The rewritten queries in an LLM answer: one per line, numbering/bullets/quotes stripped,
    header lines (``Here are 3 rewritten queries:``), echoes of the input (``**Original Query**: ...``)
    and chatter (``Note: ...``) dropped.

    ``single=True`` (the single mode) returns only the first such line. A line that is a code
    fence is kept as a candidate (rejected later as ``not_a_query``)."""
    out: list[str] = []
    for raw in str(text).splitlines():
        if not raw.strip() or _is_header(raw) or _CHATTER.match(raw) or _ECHO.match(raw):
            continue
        s = clean_query_line(raw)
        if not s:
            continue
        out.append(s)
        if single:
            break
    return out


def query_reject_reason(
    candidate: str,
    original: str,
    accepted: Sequence[str] = (),
    alpha: float = 1.6,
    min_ratio: float = 0.5,
    min_words: int = 3,
    slack: int = 2,
    bounds: tuple[int, int] | None = None,
) -> str | None:
    """Why a rewritten query is rejected (one of :data:`QUERY_REASONS`), or None to accept it.

    ``accepted`` holds the rewrites of the same original accepted so far (duplicates compared
    case- and punctuation-insensitively). ``not_a_query`` applies only when the original does not
    itself look like code. Length bounds: :func:`query_length_bounds`, or ``bounds`` = (fewest,
    most) words whatever the original's length (web-style queries are shorter than docstrings).
    """
    norm = norm_words(candidate)
    if not norm:
        return "empty"
    if looks_like_code(candidate) and not looks_like_code(original):
        return "not_a_query"
    if norm == norm_words(original):
        return "same_as_original"
    low, high = bounds if bounds is not None else query_length_bounds(original, alpha, min_ratio, min_words, slack)
    n = word_count(candidate)
    if n < low:
        return "too_short"
    if n > high:
        return "too_long"
    if norm in {norm_words(a) for a in accepted}:
        return "duplicate"
    return None


_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+#.-]*)[^\n]*\n(.*?)(?:```|\Z)", re.S)
_BARE_START = re.compile(r"^(?:@\w|def\s|async\s+def\s|import\s|from\s+[\w.]+\s+import\s)", re.M)


def extract_code_blocks(text: str, single: bool = False) -> list[str]:
    """The code blocks of an LLM answer: fenced ```` ```python ... ``` ```` or ```` ``` ... ``` ```` blocks
    in order (the paper's regular-expression extraction; an unterminated last block, cut by
    ``max_tokens``, counts too). Without any fence, the text from the first line starting with
    ``def``/``import``/a decorator to the end is one block. ``single=True`` keeps the first block."""
    text = str(text)
    blocks = [m.group(2).rstrip() for m in _FENCE.finditer(text)]
    if not blocks:
        m = _BARE_START.search(text)
        if m:
            blocks = [text[m.start():].rstrip()]
    return blocks[:1] if single else blocks


@dataclass(frozen=True)
class CodeCheck:
    """The verdict on one code block: ``reason`` (None when accepted), the cleaned code (dedented,
    a docstring the rewrite added removed, as in the corpus) and its normalised ``ast.dump``."""

    reason: str | None
    code: str
    dump: str


def _top_defs(tree: ast.Module) -> list[ast.stmt]:
    return [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


def _shape(tree: ast.Module) -> list[str]:
    return [type(n).__name__ for n in tree.body]


def _strip_docstring(code: str, tree: ast.Module) -> str:
    """Remove the docstring of the single top-level function (the corpus's code has none); what
    comes before the ``def`` (imports, decorators) is kept."""
    defs = _top_defs(tree)
    if len(defs) != 1:
        return code
    node = defs[0]
    body = node.body  # type: ignore[attr-defined]
    if not (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)) or len(body) == 1:
        return code
    lines = code.split("\n")
    head = lines[: node.lineno - 1]
    return "\n".join([*head, function_code(lines, node)]).strip("\n")  # type: ignore[arg-type]


def normalized_dump(code: str) -> str | None:
    """``ast.dump`` of the dedented code (formatting and comments do not change it), None when it does not parse."""
    try:
        return ast.dump(ast.parse(textwrap.dedent(str(code)).strip("\n")))
    except (SyntaxError, ValueError):
        return None


def check_code(candidate: str, original: str, accepted_dumps: Sequence[str] = (), max_ratio: float = 3.0,
               example_names: Collection[str] = (), keep_imports: bool = False) -> CodeCheck:
    """Validate one rewritten code block against its original (reasons: :data:`CODE_REASONS`).

    ``syntax_error``: ``ast.parse`` fails after ``textwrap.dedent``. ``not_a_function``: the
    top level is not exactly one function (imports before it allowed) and not the original's
    shape. ``copied_example``: the function is named like one of the few-shot examples
    (``example_names``) and the original is not (Qwen 0.5B once wrote the original's body under
    the example's ``def is_expired(self, now=None)``). Unless ``keep_imports``, imports before the
    function are dropped (the corpus's code is the function alone; Qwen 0.5B added imports to 32
    of 57 accepted rewrites, often unused). ``same_as_original``: equal normalised ``ast.dump`` (formatting-only rewrites).
    ``too_long``: more than ``max_ratio`` times the original's tokens. ``duplicate``: the dump of
    an earlier accepted rewrite of the same original. The code is parsed, never run.
    """
    text = textwrap.dedent(str(candidate)).strip("\n")
    if not text.strip():
        return CodeCheck("no_code_block", text, "")
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return CodeCheck("syntax_error", text, "")
    defs = _top_defs(tree)
    others = [n for n in tree.body if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Import,
                                                         ast.ImportFrom))]
    try:
        orig_tree: ast.Module | None = ast.parse(textwrap.dedent(str(original)).strip("\n"))
    except (SyntaxError, ValueError):
        orig_tree = None
    single_function = len(defs) == 1 and not others
    if not single_function and (orig_tree is None or _shape(tree) != _shape(orig_tree)):
        return CodeCheck("not_a_function", text, "")
    orig_names = {n.name for n in _top_defs(orig_tree)} if orig_tree is not None else set()
    if any(d.name in set(example_names) - orig_names for d in defs):  # type: ignore[attr-defined]
        return CodeCheck("copied_example", text, "")
    if single_function and not keep_imports and len(tree.body) > 1:
        node = defs[0]
        start = min([node.lineno, *(d.lineno for d in node.decorator_list)])  # type: ignore[attr-defined]
        text = "\n".join(text.split("\n")[start - 1:])
        tree = ast.parse(text)
    text = _strip_docstring(text, tree)
    dump = normalized_dump(text) or ""
    orig_dump = ast.dump(orig_tree) if orig_tree is not None else None
    if dump == orig_dump:
        return CodeCheck("same_as_original", text, dump)
    if len(code_tokens(text)) > float(max_ratio) * max(1, len(code_tokens(str(original)))):
        return CodeCheck("too_long", text, dump)
    if dump in set(accepted_dumps):
        return CodeCheck("duplicate", text, dump)
    return CodeCheck(None, text, dump)


def example_function_names(examples: Sequence[CodeExample]) -> set[str]:
    """The function names defined by the few-shot examples and their rewrites."""
    names: set[str] = set()
    for ex in examples:
        for code in (ex.code, *ex.rewrites.values()):
            try:
                names |= {n.name for n in _top_defs(ast.parse(code))}  # type: ignore[attr-defined]
            except SyntaxError:
                continue
    return names


# --------------------------------------------------------------------------------------------
# The rewrite log


@dataclass
class RewriteLog:
    """Every extracted (or missing) rewrite and its verdict: one row per candidate with
    ``aug_kind``, ``aug_op``, ``aug_of``, ``request`` (rewrite index of the request), ``item``
    (position in the answer), ``text``, ``reason`` (None = accepted), ``id`` (accepted only) and
    ``raw`` (the whole LLM answer it came from).
    An answer with nothing extractable counts as one candidate rejected as ``empty`` (queries) or
    ``no_code_block`` (code). ``llm_stats`` holds the LLM's stats() change over the call."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    requests: int = 0
    llm_stats: dict[str, Any] = field(default_factory=dict)

    def add(self, aug_kind: str, aug_op: str, aug_of: str, request: int, item: int, text: str,
            reason: str | None, cand_id: str | None = None, raw: str = "") -> None:
        self.rows.append({"aug_kind": aug_kind, "aug_op": aug_op, "aug_of": aug_of, "request": request,
                          "item": item, "text": text, "reason": reason, "id": cand_id, "raw": raw})

    def to_frame(self) -> pd.DataFrame:
        cols = ["aug_kind", "aug_op", "aug_of", "request", "item", "text", "reason", "id", "raw"]
        return pd.DataFrame(self.rows, columns=cols)

    def counts(self) -> pd.DataFrame:
        """Per (aug_kind, aug_op): ``candidates``, ``accepted``, ``rejected``, ``acceptance`` and
        one column per rejection reason (zero-filled)."""
        return rejection_counts(self.to_frame())

    def rejected(self) -> dict[str, int]:
        """Rejections by reason over every technique."""
        f = self.to_frame()
        return {str(k): int(v) for k, v in f["reason"].dropna().value_counts().items()}

    def merge(self, other: RewriteLog) -> RewriteLog:
        stats = {k: self.llm_stats.get(k, 0) + other.llm_stats.get(k, 0)
                 for k in set(self.llm_stats) | set(other.llm_stats)
                 if isinstance(self.llm_stats.get(k, 0), (int, float))
                 and isinstance(other.llm_stats.get(k, 0), (int, float))}
        return RewriteLog([*self.rows, *other.rows], self.requests + other.requests, stats)


def rejection_counts(log_frame: pd.DataFrame) -> pd.DataFrame:
    """The counts table of a log frame (:meth:`RewriteLog.counts`)."""
    reasons = list(dict.fromkeys([*QUERY_REASONS, *CODE_REASONS]))
    rows = []
    for (kind, op), g in log_frame.groupby(["aug_kind", "aug_op"], sort=True):
        r = {"aug_kind": kind, "aug_op": op, "candidates": len(g), "accepted": int(g["reason"].isna().sum())}
        r["rejected"] = r["candidates"] - r["accepted"]
        r["acceptance"] = r["accepted"] / r["candidates"] if r["candidates"] else float("nan")
        vc = g["reason"].value_counts()
        for reason in reasons:
            r[reason] = int(vc.get(reason, 0))
        rows.append(r)
    cols = ["aug_kind", "aug_op", "candidates", "accepted", "rejected", "acceptance", *reasons]
    return pd.DataFrame(rows, columns=cols)


# --------------------------------------------------------------------------------------------
# Generation


class ChatMany(Protocol):
    def chat_many(self, requests: list[tuple[list[Message], Sampling]], concurrency: int = 1,
                  desc: str = "llm", show_progress: bool = True) -> list[str]: ...

    def stats(self) -> dict: ...


#: a stable 16-hex id of a rewrite (the Pair id's length), shared by every augmenter
candidate_id = augmented_id


def _stats_delta(before: dict, after: dict) -> dict[str, Any]:
    return {k: after[k] - before.get(k, 0) for k in after
            if isinstance(after[k], (int, float)) and isinstance(before.get(k, 0), (int, float))}


def _send(llm: ChatMany, requests: list[RewriteRequest], concurrency: int, desc: str, show_progress: bool
          ) -> tuple[list[str], dict[str, Any]]:
    before = dict(llm.stats())
    texts = llm.chat_many([(list(r.messages), r.sampling) for r in requests], concurrency=concurrency,
                          desc=desc, show_progress=show_progress)
    if len(texts) != len(requests):
        raise ParameterError(f"llm.chat_many returned {len(texts)} answers for {len(requests)} requests")
    return texts, _stats_delta(before, dict(llm.stats()))


def _candidate_frame(rows: list[dict[str, Any]], pairs: pd.DataFrame) -> pd.DataFrame:
    extra = [c for c in pairs.columns if c not in CONTRACT_COLUMNS]
    cols = [*CONTRACT_COLUMNS, *extra]
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype=pairs[c].dtype if c in pairs.columns else object) for c in cols})
    meta = pairs.set_index(pairs["id"].astype(str))
    out = pd.DataFrame(rows)
    for c in extra:
        out[c] = meta.loc[out["aug_of"], c].to_numpy()
    return out[cols].reset_index(drop=True)


def _collect(
    llm: ChatMany, reqs: list[RewriteRequest], pairs: pd.DataFrame, concurrency: int, desc: str,
    show_progress: bool, extract: Callable[..., list[str]],
    judge: Callable[[str, str, str, list], tuple[str | None, str, Any]], empty_reason: str,
) -> tuple[pd.DataFrame, RewriteLog]:
    """Send ``reqs``, extract the items of each reply and judge each against its pair:
    ``judge(item, query, code, seen) -> (reason or None, cleaned text, what joins seen)``, where
    ``seen`` holds what was accepted for the same original (for duplicates). A query rewrite keeps
    the pair's code, a code rewrite its query. Returns the accepted candidates and the log."""
    texts, delta = _send(llm, reqs, concurrency, desc, show_progress)
    by_id = {str(i): (str(q), str(c)) for i, q, c in zip(pairs["id"], pairs["query"], pairs["code"])}
    log = RewriteLog(requests=len(reqs), llm_stats=delta)
    accepted: dict[str, list] = {}
    rows: list[dict[str, Any]] = []
    for req, raw in zip(reqs, texts):
        query, code = by_id[req.pair_id]
        items = extract(raw, single=req.n_expected == 1)
        if not items:
            log.add(req.aug_kind, req.technique, req.pair_id, req.index, 0, str(raw), empty_reason, raw=str(raw))
            continue
        seen = accepted.setdefault(req.pair_id, [])
        for j, item in enumerate(items):
            reason, text, key = judge(item, query, code, seen)
            cid = candidate_id(req.pair_id, req.aug_kind, req.technique, text) if reason is None else None
            log.add(req.aug_kind, req.technique, req.pair_id, req.index, j, text, reason, cid, str(raw))
            if reason is None:
                seen.append(key)
                new_q, new_c = (text, code) if req.aug_kind == QUERY_KIND else (query, text)
                rows.append({"id": cid, "aug_of": req.pair_id, "query": new_q, "code": new_c,
                             "aug_kind": req.aug_kind, "aug_op": req.technique, "raw": raw})
    return _candidate_frame(rows, pairs), log


def rewrite_queries(
    llm: ChatMany,
    pairs: pd.DataFrame,
    n: int = 5,
    mode: Mode = "single",
    schema: PromptSchema = QUERY_PROMPT,
    sampling: Sampling | None = None,
    concurrency: int = 1,
    seed: int = 0,
    alpha: float = 1.6,
    min_ratio: float = 0.5,
    min_words: int = 3,
    slack: int = 2,
    examples: Sequence[QueryExample] = QUERY_EXAMPLES,
    show_progress: bool = True,
    answer_rule: str = QUERY_ANSWER_RULE,
    technique: str = PARAPHRASE,
    bounds: tuple[int, int] | None = None,
    code_chars: int | None = None,
) -> tuple[pd.DataFrame, RewriteLog]:
    """LLM query rewrites of every pair (ChatDANCE query augmentation, Table I), validated.

    Returns the accepted candidates (columns ``id, aug_of, query, code, aug_kind="llm_query",
    aug_op=technique, raw`` + the pair's other columns; ``code`` is the original code) and the
    :class:`RewriteLog` of every candidate. ``seed`` seeds every request (:func:`request_seed`;
    the seed inside ``sampling`` is replaced). Another kind of query rewrite is another
    ``schema`` / ``examples`` / ``answer_rule`` under its own ``technique`` name, with fixed word
    ``bounds`` when the docstring-relative ones do not fit (``workbench.augment.web_queries``).
    """
    reqs = build_query_requests(pairs, n, mode, schema, sampling, seed, alpha, examples, answer_rule, technique,
                                code_chars)

    def judge(cand: str, query: str, code: str, seen: list[str]) -> tuple[str | None, str, str]:
        return query_reject_reason(cand, query, seen, alpha, min_ratio, min_words, slack, bounds), cand, cand

    desc = f"query rewrites ({mode})" if technique == PARAPHRASE else f"{technique} rewrites ({mode})"
    return _collect(llm, reqs, pairs, concurrency, desc, show_progress, extract_queries, judge, "empty")


def rewrite_code(
    llm: ChatMany,
    pairs: pd.DataFrame,
    techniques: Sequence[str] = ALL_TECHNIQUES,
    per_technique: int = 1,
    mode: Mode = "single",
    schema: PromptSchema = CODE_PROMPT,
    sampling: Sampling | None = None,
    concurrency: int = 1,
    seed: int = 0,
    max_ratio: float = 3.0,
    keep_imports: bool = False,
    examples: Sequence[CodeExample] = CODE_EXAMPLES,
    show_progress: bool = True,
) -> tuple[pd.DataFrame, RewriteLog]:
    """LLM code rewrites of every pair with each technique (ChatDANCE code augmentation, Table II),
    validated by :func:`check_code` (parsed only, never executed).

    Returns the accepted candidates (``aug_kind="llm_code"``, ``aug_op`` = the technique, ``query``
    the original query, ``code`` the cleaned rewrite) and the :class:`RewriteLog`. Duplicates are
    checked across techniques of the same original.
    """
    reqs = build_code_requests(pairs, techniques, per_technique, mode, schema, sampling, seed, examples)
    names = example_function_names(examples)

    def judge(block: str, query: str, code: str, seen: list[str]) -> tuple[str | None, str, str | None]:
        chk = check_code(block, code, seen, max_ratio, names, keep_imports)
        return chk.reason, chk.code, chk.dump

    return _collect(llm, reqs, pairs, concurrency, f"code rewrites ({mode})", show_progress,
                    extract_code_blocks, judge, "no_code_block")


# --------------------------------------------------------------------------------------------
# Algorithm 1: filtering with the cross-encoder

Scorer = Callable[[list[str], list[str]], np.ndarray]


def memoize_scorer(scorer: Scorer) -> Scorer:
    """Wrap ``scorer`` so each distinct (query, code) is scored once (the ablation sets share scores)."""
    memo: dict[tuple[str, str], float] = {}

    def scored(queries: list[str], codes: list[str]) -> np.ndarray:
        todo = list(dict.fromkeys((q, c) for q, c in zip(queries, codes) if (q, c) not in memo))
        if todo:
            vals = _checked_scores(scorer([q for q, _ in todo], [c for _, c in todo]), len(todo))
            memo.update(zip(todo, vals.tolist()))
        return np.array([memo[(q, c)] for q, c in zip(queries, codes)], dtype=np.float64)

    return scored


def _checked_scores(values: Any, n: int) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.shape[0] != n:
        raise ParameterError(f"scorer returned {arr.shape[0]} scores for {n} (query, code) pairs")
    if n and (not np.all(np.isfinite(arr)) or arr.min() < 0.0 or arr.max() > 1.0):
        raise ParameterError(f"scorer: scores must be finite and in [0, 1]; got min {arr.min()}, max {arr.max()}")
    return arr


def _empty_candidates() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in CONTRACT_COLUMNS})


def _check_candidates(cands: pd.DataFrame | None, what: str, known: set[str]) -> pd.DataFrame:
    if cands is None:
        return _empty_candidates()
    missing = [c for c in ("id", "aug_of", "query", "code") if c not in cands.columns]
    if missing:
        raise ParameterError(f"{what}: missing column(s) {missing}; have {list(cands.columns)}")
    orphans = sorted(set(cands["aug_of"].astype(str)) - known)
    if orphans:
        raise ParameterError(f"{what}: aug_of {orphans[0]!r} (and {len(orphans) - 1} more) is not an id of the "
                             f"original pairs")
    return cands.reset_index(drop=True)


def build_augmented(
    original: pd.DataFrame,
    query_cands: pd.DataFrame | None,
    code_cands: pd.DataFrame | None,
    scorer: Scorer | None,
    theta_q: float = 0.95,
    theta_c: float = 0.75,
    seed: int = 0,
    filter: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Algorithm 1 of ChatDANCE (papers/002, Section III-B2): the filtered augmented training set.

    D_aug starts as D (rows with ``aug_kind="original"``). For each pair (q, c) of D, in order:
    ``code_list = [c]``; each code candidate c_aug of the pair (lines 5-12) with
    ``scorer(q, c_aug) >= theta_c`` adds (q, c_aug) and joins ``code_list``; then each query
    candidate q_aug (lines 13-20) with ``scorer(q_aug, c) >= theta_q`` adds
    (q_aug, ``rng.choice(code_list)``), ``rng = random.Random(seed)`` (line 17's random.choice).
    ``filter=False`` keeps every candidate (the "without filtering" ablation; ``scorer`` may then
    be None). Scores of all candidates are computed in two scorer calls.

    Returns ``d_aug`` (D's columns + ``aug_of``, ``aug_kind``, ``aug_op``, ``code_from``: the id of
    the row whose code a kept query was paired with) and ``decisions`` (one row per candidate:
    ``id, aug_of, aug_kind, aug_op, score, threshold, kept, code_from``).
    """
    check_pairs(original, "original", min_rows=0, text=())
    if filter and scorer is None:
        raise ParameterError("build_augmented: a scorer is needed when filter=True")
    ids = original["id"].astype(str).tolist()
    known = set(ids)
    qc = _check_candidates(query_cands, "query candidates", known)
    cc = _check_candidates(code_cands, "code candidates", known)
    q_of = dict(zip(ids, original["query"].astype(str)))
    c_of = dict(zip(ids, original["code"].astype(str)))

    def score(queries: list[str], codes: list[str]) -> np.ndarray:
        if not queries:
            return np.zeros(0)
        if scorer is None:
            return np.full(len(queries), np.nan)
        return _checked_scores(scorer(queries, codes), len(queries))

    c_scores = score([q_of[a] for a in cc["aug_of"].astype(str)], cc["code"].astype(str).tolist())
    q_scores = score(qc["query"].astype(str).tolist(), [c_of[a] for a in qc["aug_of"].astype(str)])
    code_idx: dict[str, list[int]] = {}
    for i, a in enumerate(cc["aug_of"].astype(str)):
        code_idx.setdefault(a, []).append(i)
    query_idx: dict[str, list[int]] = {}
    for i, a in enumerate(qc["aug_of"].astype(str)):
        query_idx.setdefault(a, []).append(i)

    rng = random.Random(seed)
    base = original.copy()
    base["aug_of"], base["aug_kind"], base["aug_op"], base["code_from"] = ids, "original", "original", ids
    added: list[dict[str, Any]] = []
    decisions: list[dict[str, Any]] = []
    meta_cols = [c for c in original.columns if c not in ("id", "query", "code")]
    meta = original.set_index(original["id"].astype(str))

    def row(cand: pd.Series, code: str, code_from: str, kind: str) -> dict[str, Any]:
        r = {c: meta.at[str(cand["aug_of"]), c] for c in meta_cols}
        r.update({"id": str(cand["id"]), "query": str(cand["query"]), "code": code, "aug_of": str(cand["aug_of"]),
                  "aug_kind": cand.get("aug_kind", kind), "aug_op": cand.get("aug_op", ""), "code_from": code_from})
        return r

    for pid in ids:  # line 3
        code_list: list[tuple[str, str]] = [(pid, c_of[pid])]  # line 4
        for i in code_idx.get(pid, []):  # lines 5-12
            cand = cc.iloc[i]
            kept = (not filter) or bool(c_scores[i] >= theta_c)
            decisions.append({"id": str(cand["id"]), "aug_of": pid, "aug_kind": cand.get("aug_kind", CODE_KIND),
                              "aug_op": cand.get("aug_op", ""), "score": float(c_scores[i]),
                              "threshold": float(theta_c), "kept": kept, "code_from": str(cand["id"]) if kept else None})
            if kept:
                added.append(row(cand, str(cand["code"]), str(cand["id"]), CODE_KIND))
                code_list.append((str(cand["id"]), str(cand["code"])))
        for i in query_idx.get(pid, []):  # lines 13-20
            cand = qc.iloc[i]
            kept = (not filter) or bool(q_scores[i] >= theta_q)
            code_from = None
            if kept:
                code_from, code = rng.choice(code_list)  # line 17
                added.append(row(cand, code, code_from, QUERY_KIND))
            decisions.append({"id": str(cand["id"]), "aug_of": pid, "aug_kind": cand.get("aug_kind", QUERY_KIND),
                              "aug_op": cand.get("aug_op", ""), "score": float(q_scores[i]),
                              "threshold": float(theta_q), "kept": kept, "code_from": code_from})

    cols = [*original.columns, "aug_of", "aug_kind", "aug_op", "code_from"]
    d_aug = base[cols].reset_index(drop=True)
    if added:
        d_aug = pd.concat([d_aug, pd.DataFrame(added, columns=cols)], ignore_index=True)
    dup = d_aug["id"][d_aug["id"].duplicated()]
    if len(dup):
        raise ParameterError(f"build_augmented: id {dup.iloc[0]!r} appears twice (candidate ids must be unique "
                             f"and differ from D's)")
    dec_cols = ["id", "aug_of", "aug_kind", "aug_op", "score", "threshold", "kept", "code_from"]
    return d_aug, pd.DataFrame(decisions, columns=dec_cols)


#: the ablation training sets (names as in ``workbench.augment.comparison.LABELS``)
ABLATIONS = ("llm_query", "llm_code", "llm_both", "llm_nofilter")


def ablation_sets(
    original: pd.DataFrame,
    query_cands: pd.DataFrame,
    code_cands: pd.DataFrame,
    scorer: Scorer,
    theta_q: float = 0.95,
    theta_c: float = 0.75,
    seed: int = 0,
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """The ChatDANCE ablation training sets (Table VII), each a full D_aug of :func:`build_augmented`:
    ``llm_query`` (query rewrites only, paired with the original code), ``llm_code`` (code rewrites
    only), ``llm_both`` (Algorithm 1) and ``llm_nofilter`` (both, nothing filtered). Every
    (query, code) is scored once. Returns the sets and the decisions of ``llm_both``."""
    memo = memoize_scorer(scorer)
    sets: dict[str, pd.DataFrame] = {}
    sets["llm_query"], _ = build_augmented(original, query_cands, None, memo, theta_q, theta_c, seed)
    sets["llm_code"], _ = build_augmented(original, None, code_cands, memo, theta_q, theta_c, seed)
    sets["llm_both"], decisions = build_augmented(original, query_cands, code_cands, memo, theta_q, theta_c, seed)
    sets["llm_nofilter"], _ = build_augmented(original, query_cands, code_cands, None, theta_q, theta_c, seed,
                                              filter=False)
    return sets, decisions
