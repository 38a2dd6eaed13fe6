"""A cross-encoder that scores a (query, code) pair in [0, 1], as a model: its two heads, loading,
scoring, and its training loop. ChatDANCE's filter (``workbench.augment.filtering``) is one use.

Here the backbone is a Hugging Face folder (all-MiniLM-L6-v2 by default) and ``score = sigmoid(logit)``.
Default head ("segment_cosine", :class:`SegmentCosineCrossEncoder`): the joint sequence is encoded once
and the logit is ``scale * cos(mean(H_q), mean(H_c)) + bias`` over the query's and the code's tokens,
so the score starts meaningful (CoSQA dev AUC 0.633 before training). The paper-style head
("classifier": ``AutoModelForSequenceClassification``, ``num_labels=1`` on the pooled ``[CLS]``,
loadable by ``sentence_transformers.CrossEncoder``) stays available, but all-MiniLM-L6-v2 was trained
with mean pooling, its ``[CLS]``/pooler carry no trained relevance signal, and at CPU scale (74 steps,
400 pairs) that head barely learns (CoSQA AUC 0.56, every score ~0.52). The
paper does not say which negatives the filter sees; we use, per training pair: the pair itself as
a positive, its ``negatives`` hardest non-gold codes under a bi-encoder (the miner of
:mod:`workbench.retrieval`, with its false-negative guard; codes whose text equals the gold, or whose
query equals this query, are never negatives) and one random code, all labelled 0. Loss: binary
cross-entropy on the logit. Query and code are tokenised as a sentence pair, truncated
``longest_first`` to ``max_length`` tokens (queries are short, so the code is what gets cut), as
``sentence_transformers.CrossEncoder`` does; a "classifier" folder loads there and scores the same, a
"segment_cosine" folder (encoder + ``workbench_head`` in ``config.json``) only via :meth:`CrossEncoderFilter.load`.

The finished model folder holds ``workbench_cross_encoder.json`` (training parameters, a fingerprint
of the pairs, timings); :func:`train_cross_encoder` reuses the folder when they match.

Why one module of this size: the model and its training loop share the folder format, the heads
and the calibration of the head's bias.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from workbench.errors import ParameterError, WorkbenchError
from workbench.pairs import check_pairs
from workbench.progress import tqdm
from workbench.store import atomic_write_json, cache_key

__all__ = [
    "CONFIG_NAME",
    "HEADS",
    "CrossEncoderFilter",
    "SegmentCosineCrossEncoder",
    "check_positive_int",
    "mine_negatives",
    "pair_examples",
    "train_cross_encoder",
]

CONFIG_NAME = "workbench_cross_encoder.json"
FORMAT_VERSION = 1
WARMUP_FRACTION = 0.1
"""Linear warmup over the first 10% of the steps, then linear decay to 0."""
MAX_GRAD_NORM = 1.0
FALSE_NEGATIVE_GAMMA = 0.95
"""CoRNStack's guard: a candidate with S_ij > gamma * S_ii is a likely false negative and not used."""
REQUIRED_COLUMNS = ("id", "query", "code")
_ST_ACTIVATION = "torch.nn.modules.activation.Sigmoid"
HEADS = ("segment_cosine", "classifier")
DEFAULT_LR = 2e-5
HEAD_CONFIG_KEY = "workbench_head"
HEAD_LR = 1e-3
"""Learning rate of the segment-cosine head's two scalars (scale, bias); the encoder uses ``lr``."""
CALIBRATION_EXAMPLES = 96
"""Training examples whose cosines set the segment-cosine head's starting bias (see :func:`train_cross_encoder`)."""


def _check_head(head: Any) -> str:
    if head not in HEADS:
        raise ParameterError(f"head: expected one of {list(HEADS)}, got {head!r}")
    return str(head)


# ------------------------------------------------------------------------------ input checks
def check_positive_int(name: str, v: Any, minimum: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum:
        raise ParameterError(f"{name}: expected an integer >= {minimum}, got {v!r}")
    return int(v)


def _check_rate(name: str, v: Any, positive: bool) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not np.isfinite(v):
        raise ParameterError(f"{name}: expected a finite number, got {v!r}")
    if v < 0 or (positive and v == 0):
        raise ParameterError(f"{name}: expected a number {'>' if positive else '>='} 0, got {v!r}")
    return float(v)


# ------------------------------------------------------------------------------ negatives
def mine_negatives(
    pairs: pd.DataFrame,
    encoder: Any,
    hard: int = 3,
    random: int = 1,
    seed: int = 0,
    *,
    batch_size: int = 64,
    show_progress: bool = True,
) -> pd.DataFrame:
    """Negatives per pair: ``hard`` top-ranked non-gold codes under ``encoder`` plus ``random`` random codes.

    Hard negatives come from :func:`workbench.retrieval.mine_hard_negatives` on the bi-encoder's
    embeddings of ``pairs`` (exact search, the own code, codes with the gold's text and likely false
    negatives with ``S_ij > 0.95 S_ii`` left out), then codes whose pair has the same query text are
    dropped too. Random negatives are drawn (seeded) from the other pairs' codes, never a code equal
    to the gold, one of this row's hard negatives, or a code of a pair with the same query. Returns
    one row per negative: ``row`` (the pair), ``neg_row`` (the pair whose code is the negative),
    ``kind`` ("hard" | "random"), ``rank`` (0-based among its kind), ``bi_score`` (S_ij; NaN for random).
    A row can get fewer than asked when the pool is small.
    """
    from workbench.retrieval import embed_pairs, mine_hard_negatives

    pairs = check_pairs(pairs, "pairs", ("query", "code"), blank_text=False, unique_ids=False)
    hard = check_positive_int("hard", hard, 0)
    random = check_positive_int("random", random, 0)
    if hard and encoder is None:
        raise ParameterError("mine_negatives: hard negatives need a bi-encoder (encoder=None); pass one or hard=0")
    n = len(pairs)
    queries = [str(x) for x in pairs["query"]]
    codes = [str(x) for x in pairs["code"]]
    q_arr, c_arr = np.asarray(queries, dtype=object), np.asarray(codes, dtype=object)
    rows_out: list[dict[str, Any]] = []
    chosen: list[set[int]] = [set() for _ in range(n)]
    if hard and n > 1:
        Q, C = embed_pairs(encoder, pairs, batch_size=batch_size, show_progress=show_progress)
        M = min(hard + 8, n - 1)
        hn = mine_hard_negatives(Q, C, M=M, gamma=FALSE_NEGATIVE_GAMMA, codes=codes, depth=min(2 * M + 8, n))
        for i in range(n):
            idx = hn.indices[i][hn.valid[i]]
            sc = hn.scores[i][hn.valid[i]]
            keep = q_arr[idx] != q_arr[i]
            for r, (j, s) in enumerate(zip(idx[keep][:hard], sc[keep][:hard])):
                rows_out.append({"row": i, "neg_row": int(j), "kind": "hard", "rank": r, "bi_score": float(s)})
                chosen[i].add(int(j))
    if random:
        rng = np.random.default_rng([int(seed), 1])
        for i in range(n):
            got = 0
            for j in rng.permutation(n)[: 64 + 4 * random]:
                j = int(j)
                if j == i or j in chosen[i] or c_arr[j] == c_arr[i] or q_arr[j] == q_arr[i]:
                    continue
                rows_out.append({"row": i, "neg_row": j, "kind": "random", "rank": got, "bi_score": float("nan")})
                chosen[i].add(j)
                got += 1
                if got == random:
                    break
    out = pd.DataFrame(rows_out, columns=["row", "neg_row", "kind", "rank", "bi_score"])
    return out.sort_values(["row", "kind", "rank"], kind="stable").reset_index(drop=True)


def pair_examples(pairs: pd.DataFrame, negatives: pd.DataFrame) -> pd.DataFrame:
    """Labelled examples: each pair as a positive (label 1) followed by its negatives (label 0).

    Columns ``query``, ``code``, ``label`` (int), ``kind`` ("gold" | "hard" | "random"), ``row``.
    """
    pairs = check_pairs(pairs, "pairs", ("query", "code"), blank_text=False, unique_ids=False)
    missing = [c for c in ("row", "neg_row", "kind") if c not in negatives.columns]
    if missing:
        raise ParameterError(f"negatives: missing column(s) {missing}")
    queries, codes = pairs["query"].tolist(), pairs["code"].tolist()
    by_row: dict[int, list[tuple[int, str]]] = {}
    for r, j, k in zip(negatives["row"], negatives["neg_row"], negatives["kind"]):
        by_row.setdefault(int(r), []).append((int(j), str(k)))
    out: list[tuple[str, str, int, str, int]] = []
    for i in range(len(pairs)):
        out.append((queries[i], codes[i], 1, "gold", i))
        for j, k in by_row.get(i, []):
            out.append((queries[i], codes[j], 0, k, i))
    return pd.DataFrame(out, columns=["query", "code", "label", "kind", "row"])


# ------------------------------------------------------------------------------ the filter
def _no_decay(name: str) -> bool:
    return name.endswith(".bias") or "LayerNorm" in name or "layer_norm" in name


class SegmentCosineCrossEncoder(torch.nn.Module):
    """A cross-encoder whose logit is ``scale * cos(mean(H_q), mean(H_c)) + bias``.

    ``H`` is the encoder's last hidden state of the *joint* sequence ``[CLS] q [SEP] c [SEP]`` (query and
    code attend to each other in every layer, so this is a cross-encoder, ChatDANCE Eq. 4); ``H_q`` are
    the tokens of segment 0 (``[CLS] q [SEP]``), ``H_c`` those of segment 1, each mean-pooled as the
    sentence-transformers base was trained to pool. Unlike a fresh ``[CLS]`` classifier the score starts
    out meaningful, which is what lets a few hundred CPU steps help (see :func:`train_cross_encoder`).
    """

    def __init__(self, encoder: Any, scale: float = 20.0, bias: float = 0.0) -> None:
        super().__init__()
        self.encoder = encoder
        self.scale = torch.nn.Parameter(torch.tensor(float(scale)))
        self.bias = torch.nn.Parameter(torch.tensor(float(bias)))

    @property
    def config(self) -> Any:
        return self.encoder.config

    def cosine(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None,
               **kw: Any) -> torch.Tensor:
        if token_type_ids is None:
            raise ParameterError("segment-cosine head: the tokenizer gives no token_type_ids; use head='classifier'")
        h = self.encoder(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                         **kw).last_hidden_state
        att, seg = attention_mask.to(h.dtype), token_type_ids.to(h.dtype)
        mq, mc = (att * (1 - seg)).unsqueeze(-1), (att * seg).unsqueeze(-1)
        q = (h * mq).sum(1) / mq.sum(1).clamp(min=1.0)
        c = (h * mc).sum(1) / mc.sum(1).clamp(min=1.0)
        return torch.nn.functional.cosine_similarity(q, c, dim=-1)

    def forward(self, **features: torch.Tensor) -> torch.Tensor:
        return self.scale * self.cosine(**features) + self.bias


@dataclass
class CrossEncoderFilter:
    """A (query, code) scorer in [0, 1]: ``sigmoid`` of a one-logit sequence-classification head."""

    model: Any
    """A one-logit HF sequence classifier (head "classifier") or a :class:`SegmentCosineCrossEncoder`."""
    tokenizer: Any
    max_length: int = 256
    path: Path | None = None
    info: dict[str, Any] = field(default_factory=dict)
    from_cache: bool = False
    """True when :func:`train_cross_encoder` loaded a finished folder instead of training."""

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device | None = None) -> CrossEncoderFilter:
        """Load a folder written by :func:`train_cross_encoder` (or any one-logit HF classifier folder)."""
        from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, AutoTokenizer

        path = Path(path)
        if not (path / "config.json").is_file():
            raise WorkbenchError(f"{path}: not a model folder (no config.json); train one with train_cross_encoder")
        info = json.loads((path / CONFIG_NAME).read_text()) if (path / CONFIG_NAME).is_file() else {}
        tokenizer = AutoTokenizer.from_pretrained(path)
        head = getattr(AutoConfig.from_pretrained(path), HEAD_CONFIG_KEY, None)
        if head is not None:
            if not isinstance(head, dict) or head.get("type") != "segment_cosine" or not {"scale", "bias"} <= set(head):
                raise WorkbenchError(f"{path / 'config.json'}: field {HEAD_CONFIG_KEY!r} is malformed: {head!r:.120}")
            model = SegmentCosineCrossEncoder(AutoModel.from_pretrained(path), head["scale"], head["bias"])
        else:
            model = AutoModelForSequenceClassification.from_pretrained(path)
            if int(model.config.num_labels) != 1:
                raise WorkbenchError(f"{path}: the model has {model.config.num_labels} labels; a filter needs 1 (one logit)")
        max_length = int(info.get("params", {}).get("max_length") or min(int(tokenizer.model_max_length), 512))
        if device is not None:
            model.to(torch.device(device))
        model.eval()
        return cls(model, tokenizer, max_length, path, info)

    @classmethod
    def from_base(
        cls, base: str | os.PathLike = "minilm", max_length: int = 256, seed: int = 0, head: str = "segment_cosine"
    ) -> CrossEncoderFilter:
        """The untrained filter: ``base`` with a fresh ``head`` ("segment_cosine": scale 20, bias 0;
        "classifier": a random one-logit layer on the pooled ``[CLS]``, initialised under ``seed``)."""
        from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer
        from transformers.utils import logging as hf_logging

        from workbench.models.registry import resolve_model

        head = _check_head(head)
        folder = resolve_model(base)
        torch.manual_seed(int(seed))
        level = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # "newly initialized: classifier.*" is expected here
        try:
            if head == "classifier":
                model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=1)
            else:
                model = SegmentCosineCrossEncoder(AutoModel.from_pretrained(folder, add_pooling_layer=False))
        finally:
            hf_logging.set_verbosity(level)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model.eval()
        info = {"base": str(base), "head": head}
        return cls(model, tokenizer, check_positive_int("max_length", max_length, 8), None, info)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _features(self, queries: Sequence[str], codes: Sequence[str]) -> dict[str, torch.Tensor]:
        batch = self.tokenizer(
            list(queries), list(codes), padding=True, truncation="longest_first",
            max_length=self.max_length, return_tensors="pt",
        )
        return {k: v.to(self.device) for k, v in batch.items()}

    def logits(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        """The head's logit per pair (with gradients when the model trains)."""
        if isinstance(self.model, SegmentCosineCrossEncoder):
            return self.model(**features)
        return self.model(**features).logits.squeeze(-1)

    def score(
        self, queries: Sequence[str], codes: Sequence[str], batch_size: int = 64, show_progress: bool = False
    ) -> np.ndarray:
        """``sigmoid(f_cross([q, c]))`` per pair (ChatDANCE Eq. 4), float32 in [0, 1], in input order.

        Pairs are batched longest first so each batch pads little; eval mode, no gradients.
        """
        if isinstance(queries, str) or isinstance(codes, str):
            raise ParameterError("score: pass sequences of texts, not a single string")
        queries, codes = list(queries), list(codes)
        if len(queries) != len(codes):
            raise ParameterError(f"score: {len(queries)} queries but {len(codes)} codes; they must pair up")
        if not queries:
            raise ParameterError("score: no pairs to score (empty input)")
        bad = [i for i, t in enumerate(queries + codes) if not isinstance(t, str)]
        if bad:
            i = bad[0]
            which = "queries" if i < len(queries) else "codes"
            raise ParameterError(f"score: {which}[{i % len(queries)}] is a {type((queries + codes)[i]).__name__}, not text")
        batch_size = check_positive_int("batch_size", batch_size)
        lengths = np.fromiter((len(q) + len(c) for q, c in zip(queries, codes)), dtype=np.int64, count=len(queries))
        order = np.argsort(-lengths, kind="stable")
        out = np.empty(len(queries), dtype=np.float32)
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                starts = range(0, len(order), batch_size)
                for s in tqdm(starts, desc="cross-encoder score", unit="batch", disable=not show_progress):
                    idx = order[s : s + batch_size]
                    logit = self.logits(self._features([queries[i] for i in idx], [codes[i] for i in idx]))
                    out[idx] = torch.sigmoid(logit.float()).cpu().numpy()
        finally:
            self.model.train(was_training)
        return out

    def save(self, path: str | os.PathLike, info: dict[str, Any] | None = None) -> Path:
        """Write a folder that :meth:`load` loads (and, for head "classifier" only,
        ``sentence_transformers.CrossEncoder(path)``; a segment-cosine folder holds the plain encoder plus
        ``scale`` / ``bias`` under ``workbench_head`` in ``config.json``, which only :meth:`load` reads).

        Written into a temporary folder beside ``path`` and renamed into place (``info`` last, as
        ``workbench_cross_encoder.json``). An existing ``path`` is replaced only when it is empty or
        a filter folder (it holds that json), never another folder.
        """
        path = Path(path)
        _check_replaceable(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        try:
            if isinstance(self.model, SegmentCosineCrossEncoder):
                enc = self.model.encoder
                setattr(enc.config, HEAD_CONFIG_KEY, {"type": "segment_cosine", "scale": float(self.model.scale.detach()),
                                                      "bias": float(self.model.bias.detach())})
                enc.save_pretrained(tmp, safe_serialization=True)
            else:
                cfg = self.model.config
                cfg.sentence_transformers = {**getattr(cfg, "sentence_transformers", {}), "activation_fn": _ST_ACTIVATION}
                self.model.save_pretrained(tmp, safe_serialization=True)
            self.tokenizer.model_max_length = self.max_length  # CrossEncoder truncates at the same length
            self.tokenizer.save_pretrained(tmp)
            info = {**(info if info is not None else self.info), "format_version": FORMAT_VERSION}
            atomic_write_json(tmp / CONFIG_NAME, info)
            old = None
            if path.exists():
                old = path.with_name(f".{path.name}.old-{os.getpid()}-{time.time_ns()}")
                os.replace(path, old)
            os.replace(tmp, path)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        self.path, self.info = path, info
        return path


def _check_replaceable(path: Path) -> None:
    if path.exists() and not path.is_dir():
        raise ParameterError(f"out_dir: {path} exists and is a file, not a folder")
    if path.is_dir() and any(path.iterdir()) and not (path / CONFIG_NAME).is_file():
        raise ParameterError(
            f"out_dir: {path} exists, is not empty and holds no {CONFIG_NAME}; refusing to replace it "
            "(pick a new folder for the filter)"
        )


# ------------------------------------------------------------------------------ training
def _cache_params(
    pairs: pd.DataFrame, base: str, miner: str, negatives: int, epochs: int, lr: float, weight_decay: float,
    batch_size: int, max_length: int, seed: int, head: str, balanced: bool,
) -> dict[str, Any]:
    from workbench.retrieval import texts_fingerprint

    return {
        "format_version": FORMAT_VERSION,
        "base": base,
        "miner": miner,
        "negatives": negatives,
        "random_negatives": 1,
        "false_negative_gamma": FALSE_NEGATIVE_GAMMA,
        "epochs": epochs,
        "lr": lr,
        "weight_decay": weight_decay,
        "warmup_fraction": WARMUP_FRACTION,
        "max_grad_norm": MAX_GRAD_NORM,
        "batch_size": batch_size,
        "max_length": max_length,
        "seed": seed,
        "loss": "bce_with_logits",
        "head": head,
        "head_lr": HEAD_LR if head == "segment_cosine" else None,
        "calibration_examples": CALIBRATION_EXAMPLES if head == "segment_cosine" else None,
        "class_balanced": balanced,
        "n_pairs": len(pairs),
        "pairs_fingerprint": texts_fingerprint(
            [str(x) for x in pairs["id"]], [str(x) for x in pairs["query"]], [str(x) for x in pairs["code"]]
        ),
    }


def _name(x: str | os.PathLike) -> str:
    from workbench.models.registry import available_models

    s = str(x)
    return s if s in available_models() else str(Path(s).expanduser().resolve())


def train_cross_encoder(
    pairs: pd.DataFrame,
    out_dir: str | Path,
    base: str = "minilm",
    negatives: int = 3,
    epochs: int = 1,
    lr: float = DEFAULT_LR,
    weight_decay: float = 0.01,
    batch_size: int = 16,
    max_length: int = 256,
    seed: int = 0,
    show_progress: bool = True,
    *,
    miner: str | os.PathLike | None = None,
    device: str = "auto",
    head: str = "segment_cosine",
    class_balanced: bool = True,
) -> CrossEncoderFilter:
    """Train the ChatDANCE filter on ``pairs`` (columns ``id``, ``query``, ``code``) into ``out_dir``.

    Examples: each pair (label 1), its ``negatives`` hard negatives under the bi-encoder ``miner``
    (default: ``base`` loaded as a bi-encoder) and one random negative (label 0), see
    :func:`mine_negatives`. Binary cross-entropy on the logit, class-balanced by default
    (``pos_weight`` = negatives per positive, so scores centre near 0.5 instead of the 1-in-k prior),
    AdamW, lr 2e-5 (the paper's 8e-5 is a documented option) and weight decay 0.01 (biases and
    LayerNorm weights not decayed), linear warmup over 10% of the steps then linear decay, gradient
    norm clipped at 1, examples shuffled under ``seed``. Head "segment_cosine" (default): scale starts
    at 20, bias at ``-20 *`` the midpoint of the positives' and negatives' mean cosine on 96 seeded
    training examples; both scalars train with lr 1e-3.

    Measured (400 ``cpu``-corpus train pairs, 1 hard + 1 random negative, max_length 128, 74 steps,
    1 thread on a loaded 2-core CPU; held-out = 200 test pairs with 1 hard negative):
    classifier head, lr 8e-5, balanced: CoSQA AUC 0.563, held-out AUC 0.661, scores ~0.52 for all;
    classifier weights on mean-pooled joint tokens, lr 8e-5: CoSQA 0.631, held-out 0.764;
    segment_cosine untrained: CoSQA 0.633, held-out 0.641; segment_cosine, lr 2e-5 (default):
    CoSQA 0.700, held-out 0.792 (pair accuracy 0.887), ~630 s. Unbalanced BCE at lr 8e-5 (the
    paper's values) collapsed to the prior (loss ~0.53, scores ~0.2, AUC ~0.5). When ``out_dir`` holds a
    finished filter whose ``workbench_cross_encoder.json`` has the same parameters and pairs
    fingerprint, it is loaded instead (``from_cache`` True). Torch threads are not changed here
    (``workbench.runtime.set_threads``).
    """
    from transformers import get_linear_schedule_with_warmup

    from workbench.models import BiEncoder
    from workbench.runtime import pick_device, seed_everything

    pairs = check_pairs(pairs, "pairs", REQUIRED_COLUMNS, blank_text=False, unique_ids=False)
    negatives = check_positive_int("negatives", negatives, 0)
    epochs = check_positive_int("epochs", epochs)
    batch_size = check_positive_int("batch_size", batch_size)
    max_length = check_positive_int("max_length", max_length, 8)
    lr = _check_rate("lr", lr, positive=True)
    weight_decay = _check_rate("weight_decay", weight_decay, positive=False)
    head = _check_head(head)
    if not isinstance(class_balanced, bool):
        raise ParameterError(f"class_balanced: expected True or False, got {class_balanced!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ParameterError(f"seed: expected an integer, got {seed!r}")
    seed = int(seed)
    if len(pairs) < 2:
        raise ParameterError(f"pairs: need at least 2 pairs to draw negatives from, got {len(pairs)}")
    out_dir = Path(out_dir)
    base_name, miner_name = _name(base), _name(miner if miner is not None else base)
    params = _cache_params(
        pairs, base_name, miner_name, negatives, epochs, lr, weight_decay, batch_size, max_length, seed, head,
        class_balanced,
    )
    key = cache_key(params)
    cfg_path = out_dir / CONFIG_NAME
    if cfg_path.is_file():
        try:
            saved = json.loads(cfg_path.read_text())
        except (OSError, json.JSONDecodeError):
            saved = {}
        if saved.get("key") == key and saved.get("params") == json.loads(json.dumps(params)):
            filt = CrossEncoderFilter.load(out_dir, device=pick_device(device))
            filt.from_cache = True
            return filt
    _check_replaceable(out_dir)
    dev = pick_device(device)

    t0 = time.perf_counter()
    seed_everything(seed)
    encoder = BiEncoder.load(miner if miner is not None else base, device=dev)
    negs = mine_negatives(pairs, encoder, hard=negatives, random=1, seed=seed, show_progress=show_progress)
    del encoder
    examples = pair_examples(pairs, negs)
    mine_s = time.perf_counter() - t0

    filt = CrossEncoderFilter.from_base(base, max_length=max_length, seed=seed, head=head)
    filt.model.to(dev)
    model = filt.model
    calibration = _calibrate_bias(filt, examples, seed) if head == "segment_cosine" else None
    scalars = ("scale", "bias")
    body = [(n, p) for n, p in model.named_parameters() if not (head == "segment_cosine" and n in scalars)]
    groups = [
        {"params": [p for n, p in body if not _no_decay(n)], "weight_decay": weight_decay},
        {"params": [p for n, p in body if _no_decay(n)], "weight_decay": 0.0},
    ]
    if head == "segment_cosine":
        groups.append({"params": [model.scale, model.bias], "weight_decay": 0.0, "lr": HEAD_LR})
    opt = torch.optim.AdamW(groups, lr=lr)
    steps_per_epoch = math.ceil(len(examples) / batch_size)
    total = steps_per_epoch * epochs
    sched = get_linear_schedule_with_warmup(opt, int(round(WARMUP_FRACTION * total)), total)
    n_pos = int(examples["label"].sum())
    pos_weight = (len(examples) - n_pos) / n_pos if class_balanced else 1.0
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(pos_weight, device=dev))
    rng = np.random.default_rng([seed, 2])
    q_all, c_all = examples["query"].tolist(), examples["code"].tolist()
    y_all = torch.tensor(examples["label"].to_numpy(), dtype=torch.float32)
    losses: list[float] = []
    model.train()
    t1 = time.perf_counter()
    bar = tqdm(total=total, desc="train cross-encoder", unit="step", disable=not show_progress)
    try:
        for _ in range(epochs):
            order = rng.permutation(len(examples))
            for s in range(0, len(order), batch_size):
                idx = order[s : s + batch_size]
                feats = filt._features([q_all[i] for i in idx], [c_all[i] for i in idx])
                loss = loss_fn(filt.logits(feats).float(), y_all[idx].to(dev))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_GRAD_NORM)
                opt.step()
                sched.step()
                losses.append(float(loss.detach()))
                bar.update(1)
                if len(losses) % 10 == 0:
                    bar.set_postfix(loss=f"{np.mean(losses[-10:]):.3f}")
    finally:
        bar.close()
    model.eval()
    train_s = time.perf_counter() - t1
    tenth = max(1, len(losses) // 10)
    counts = examples["kind"].value_counts().to_dict()
    info = {
        "key": key,
        "params": params,
        "examples": {"total": len(examples), **{k: int(v) for k, v in counts.items()}},
        "steps": total,
        "pos_weight": pos_weight,
        "calibration": calibration,
        "loss_first_tenth": float(np.mean(losses[:tenth])),
        "loss_last_tenth": float(np.mean(losses[-tenth:])),
        "mine_seconds": round(mine_s, 2),
        "train_seconds": round(train_s, 2),
        "device": str(dev),
        "torch_threads": torch.get_num_threads(),
        "versions": {"torch": torch.__version__, "transformers": _version("transformers")},
    }
    filt.save(out_dir, info)
    filt.model.to(dev)
    return filt


def _calibrate_bias(filt: CrossEncoderFilter, examples: pd.DataFrame, seed: int) -> dict[str, float]:
    """Start the segment-cosine head at ``bias = -scale * m``, ``m`` the midpoint of the mean cosine of
    positives and of negatives over :data:`CALIBRATION_EXAMPLES` seeded training examples, so the first
    steps are spent learning, not shifting scores towards 0.5."""
    model = filt.model
    sub = examples.sample(min(CALIBRATION_EXAMPLES, len(examples)), random_state=seed)
    y = sub["label"].to_numpy() == 1
    model.eval()
    with torch.inference_mode():
        cos = model.cosine(**filt._features(sub["query"].tolist(), sub["code"].tolist())).float().cpu().numpy()
    pos = float(cos[y].mean()) if y.any() else float(cos.mean())
    neg = float(cos[~y].mean()) if (~y).any() else float(cos.mean())
    with torch.no_grad():
        model.bias.fill_(-float(model.scale.detach()) * 0.5 * (pos + neg))
    return {"n": len(sub), "cos_pos": pos, "cos_neg": neg, "bias": float(model.bias.detach())}


def _version(dist: str) -> str:
    import importlib.metadata as md

    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return ""


