"""Layer-wise retrieval: how early in the encoder a usable representation appears (the multi-exit
idea of methods.md section 5; papers/003).

Every hidden state of the encoder (the embedding layer, then each transformer block) is pooled the
way the model pools its last one (mean / CLS / max, then L2-normalised) and scored exactly like the
final embedding: CodeXGLUE MRR@k over the whole pool. Layer ``L`` (the last) reproduces the model's
ordinary score.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch

from .errors import ParameterError
from .evaluation import metrics_from_table, ranking_table
from .models.encoder import pool
from .progress import tqdm
from .retrieval import encoder_key
from .runtime import autocast_context
from .store import atomic_write_parquet, cache_key
from .tasks import RetrievalTask

__all__ = ["layer_embeddings", "layerwise_retrieval", "layerwise_figure", "first_layer_reaching"]


@torch.inference_mode()
def layer_embeddings(
    encoder: Any, texts: list[str], kind: str, batch_size: int = 64, bf16: bool = False, show_progress: bool = True
) -> np.ndarray:
    """``(n_layers + 1, len(texts), dim)`` float32: every hidden state pooled and L2-normalised
    (row 0 = the embedding layer, row -1 = the last block, i.e. the model's own embedding)."""
    texts = list(texts)
    n_layers = int(encoder.model.config.num_hidden_layers)
    out = np.zeros((n_layers + 1, len(texts), encoder.dim), dtype=np.float32)
    order = np.argsort(-encoder.token_lengths(texts, kind), kind="stable") if texts else np.arange(0)
    was_training = encoder.training
    encoder.eval()
    try:
        bar = tqdm(range(0, len(texts), batch_size), desc=f"layers {kind}", unit="batch",
                   disable=not show_progress, mininterval=5)
        for s in bar:
            idx = order[s : s + batch_size]
            feats = encoder.tokenize([texts[i] for i in idx], kind)
            inputs = {k: v for k, v in feats.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
            with autocast_context(encoder.device, bf16):
                hidden = encoder.model(**inputs, output_hidden_states=True).hidden_states
            for layer, h in enumerate(hidden):
                e = pool(h.float(), feats["attention_mask"], encoder.pooling)
                out[layer, idx] = torch.nn.functional.normalize(e, dim=-1).cpu().numpy()
    finally:
        encoder.train(was_training)
    return out


def layerwise_retrieval(
    encoder: Any, tasks: dict[str, RetrievalTask], *, k: int = 1000, batch_size: int = 64, bf16: bool = False,
    cache_dir: str | os.PathLike | None = None, show_progress: bool = True,
) -> pd.DataFrame:
    """MRR, R@1 and R@10 (percent) from every layer of ``encoder`` on every task: one row per
    (task, layer). Cached as parquet under ``cache_dir`` (keyed by the model's weights and the tasks)."""
    rows = []
    for name, task in tasks.items():
        path = None
        if cache_dir is not None:
            key = cache_key({"model": encoder_key(encoder, bf16), "task": name,
                             "q": sorted(task.queries)[:20], "nq": len(task.queries), "nc": len(task.corpus),
                             "k": k, "bf16": bf16, "max": [encoder.max_query_len, encoder.max_code_len]})
            path = Path(cache_dir) / f"layerwise-{name}-{key}.parquet"
            if path.exists():
                rows.append(pd.read_parquet(path))
                continue
        qids = task.judged_queries()
        cids = list(task.corpus)
        q_layers = layer_embeddings(encoder, [task.queries[q] for q in qids], "query", batch_size, bf16, show_progress)
        c_layers = layer_embeddings(encoder, [task.corpus[c] for c in cids], "code", batch_size, bf16, show_progress)
        part = []
        for layer in range(len(q_layers)):
            m = metrics_from_table(ranking_table(task, q_layers[layer], c_layers[layer], qids, cids, k=k))
            part.append({"task": name, "layer": layer, "MRR": round(m["mrr"], 2),
                         "R@1": round(m["recall@1"], 1), "R@10": round(m["recall@10"], 1)})
        df = pd.DataFrame(part)
        if path is not None:
            atomic_write_parquet(path, df)
        rows.append(df)
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=["task", "layer", "MRR", "R@1", "R@10"])


def layerwise_figure(table: pd.DataFrame, title: str | None = None) -> go.Figure:
    """MRR by layer, one line per test set; with a ``model`` column, one dash style per model."""
    fig = go.Figure()
    models = list(dict.fromkeys(table["model"])) if "model" in table.columns else [None]
    dashes = ["solid", "dash", "dot", "dashdot"]
    from .cards import set_colors

    colors = set_colors(list(dict.fromkeys(table["task"])))
    for mi, model in enumerate(models):
        part = table if model is None else table[table["model"] == model]
        for task, g in part.groupby("task", sort=False):
            fig.add_trace(go.Scatter(
                x=g["layer"], y=g["MRR"], mode="lines+markers", name=f"{task}" + (f" · {model}" if model else ""),
                legendgroup=str(model), line={"color": colors[task], "dash": dashes[mi % len(dashes)]},
                hovertemplate=f"{task}{' · ' + str(model) if model else ''}<br>layer %{{x}}<br>MRR %{{y:.2f}}<extra></extra>",
            ))
    fig.update_layout(title=title or "Retrieval from every layer (MRR, %)", template="plotly_white",
                      xaxis_title="layer (0 = token embeddings)", yaxis_title="MRR (%)", height=520,
                      xaxis={"dtick": 1})
    return fig


def first_layer_reaching(table: pd.DataFrame, fraction: float = 0.9) -> pd.DataFrame:
    """Per (model, task): the first layer whose MRR reaches ``fraction`` of the last layer's, with
    both MRRs: how early a usable representation appears."""
    if not 0 < fraction <= 1:
        raise ParameterError(f"first_layer_reaching: fraction must be in (0, 1], got {fraction}")
    keys = [c for c in ("model", "task") if c in table.columns]
    rows = []
    for key, g in table.sort_values("layer", kind="stable").groupby(keys, sort=False):
        last = float(g["MRR"].iloc[-1])
        hit = g[g["MRR"] >= fraction * last]
        rows.append({**dict(zip(keys, key if isinstance(key, tuple) else (key,))),
                     "first_layer": int(hit["layer"].iloc[0]), "its_MRR": float(hit["MRR"].iloc[0]),
                     "last_layer": int(g["layer"].iloc[-1]), "last_MRR": last})
    return pd.DataFrame(rows).set_index(keys)
