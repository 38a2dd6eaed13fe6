"""ChatDANCE's prompts (Wang et al., papers/002, Section III-A; methods.md section 2): the five-part
:class:`PromptSchema` (Tables I and II), the default query and code prompts with their worked
examples, and the chat requests built from training pairs (:func:`build_query_requests`,
:func:`build_code_requests`), in the paper's batched mode or one rewrite per call.
"""

from __future__ import annotations

import hashlib
import math
import string
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import pandas as pd

from ..errors import ParameterError
from ..llm import Message, Sampling
from ..pairs import check_pairs

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


