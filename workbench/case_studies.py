"""Case studies of two (or more) models, query by query (OASIS section 5 and appendix G; papers/001).

- :func:`win_tie_lose`: per query, is the gold code ranked higher (win), equally (tie) or lower
  (lose) by model A than by model B (OASIS Table 11). A gold beyond the cut-off ``k`` (rank 0 in a
  ranking table) counts as worse than any rank.
- :func:`hard_subset`: the queries whose gold is not ranked first by *any* compared model, and
  :func:`hard_subset_table` the MRR of each model on them (OASIS Table 5).
- :func:`top_k_frame` and :class:`CaseViewer`: both models' top-k for one query side by side, code
  highlighted, gold marked, with the pair's data-map category and augmentations where they exist.
- :func:`region_examples`: a few pairs of each data-map region, to read and teach from.

Ranks come from the per-query tables of :func:`workbench.evaluation.evaluate` (``qid``, ``rank``).
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .embeddings import TaskEmbeddings
from .errors import ParameterError
from .evaluation import rank_order
from .viz.code import highlight_code

__all__ = [
    "OUTCOMES",
    "outcomes",
    "win_tie_lose",
    "win_tie_lose_table",
    "hard_subset",
    "hard_subset_table",
    "case_table",
    "most_different_query",
    "top_k_frame",
    "region_examples",
    "region_profile",
    "rankings",
    "mrr_table",
    "examples_html",
    "CaseViewer",
]

OUTCOMES = ("win", "tie", "lose")


def _ranks(table: pd.DataFrame | pd.Series, what: str) -> pd.Series:
    """qid -> rank as floats, rank 0 (beyond k) as +inf."""
    if isinstance(table, pd.DataFrame):
        missing = [c for c in ("qid", "rank") if c not in table.columns]
        if missing:
            raise ParameterError(f"{what}: the ranking table has no column(s) {missing}")
        s = table.set_index("qid")["rank"]
    else:
        s = table
    if s.index.has_duplicates:
        raise ParameterError(f"{what}: a query id appears twice")
    r = s.astype(float)
    if (r < 0).any():
        raise ParameterError(f"{what}: ranks must be >= 0 (0 = not found within k)")
    return r.where(r > 0, np.inf)


def outcomes(rank_a: pd.DataFrame | pd.Series, rank_b: pd.DataFrame | pd.Series) -> pd.Series:
    """Per query (the queries both rankings hold): "win" when A ranks the gold higher than B
    (a smaller rank), "tie" when equal, "lose" when lower."""
    a, b = _ranks(rank_a, "model A"), _ranks(rank_b, "model B")
    common = a.index.intersection(b.index)
    if len(common) == 0:
        raise ParameterError("win/tie/lose: the two rankings share no query id")
    a, b = a.loc[common], b.loc[common]
    out = np.where(a < b, "win", np.where(a == b, "tie", "lose"))
    return pd.Series(out, index=common, name="outcome")


def win_tie_lose(rank_a: pd.DataFrame | pd.Series, rank_b: pd.DataFrame | pd.Series) -> dict[str, int]:
    """Counts of A's wins, ties and losses against B, and the total (OASIS Table 11)."""
    o = outcomes(rank_a, rank_b)
    counts = {k: int((o == k).sum()) for k in OUTCOMES}
    return {**counts, "total": int(len(o))}


def win_tie_lose_table(per_query: Mapping[str, Mapping[str, pd.DataFrame]], a: str, b: str) -> pd.DataFrame:
    """``per_query[model][task]`` ranking tables -> one row per task both models have (win, tie,
    lose, total from A's side) and an ``all`` row summing them."""
    for m in (a, b):
        if m not in per_query:
            raise ParameterError(f"win_tie_lose_table: no rankings of model {m!r}; have {list(per_query)}")
    rows = []
    for task in per_query[a]:
        if task in per_query[b]:
            rows.append({"task": task, **win_tie_lose(per_query[a][task], per_query[b][task])})
    df = pd.DataFrame(rows, columns=["task", *OUTCOMES, "total"])
    if len(df):
        df.loc[len(df)] = ["all", *df[[*OUTCOMES, "total"]].sum().astype(int).tolist()]
    return df.set_index("task")


def hard_subset(rankings: Mapping[str, pd.DataFrame | pd.Series]) -> list[str]:
    """Query ids (in the first ranking's order) whose gold no model ranks first, among the
    queries every model was asked."""
    if not rankings:
        raise ParameterError("hard_subset: no rankings given")
    ranks = {m: _ranks(t, m) for m, t in rankings.items()}
    common = None
    for r in ranks.values():
        common = r.index if common is None else common.intersection(r.index)
    first = next(iter(ranks.values()))
    keep = [q for q in first.index if q in set(common) and all(r.loc[q] != 1 for r in ranks.values())]
    return keep


def hard_subset_table(per_query: Mapping[str, Mapping[str, pd.DataFrame]], models: Sequence[str]) -> pd.DataFrame:
    """Per task: the size of the hard subset of ``models`` (gold not first under any of them), the
    queries compared, and each model's MRR (%, CodeXGLUE MRR@k: 0 beyond k) on the hard subset."""
    models = list(models)
    for m in models:
        if m not in per_query:
            raise ParameterError(f"hard_subset_table: no rankings of model {m!r}; have {list(per_query)}")
    rows = []
    tasks = [t for t in per_query[models[0]] if all(t in per_query[m] for m in models)]
    for task in tasks:
        tables = {m: per_query[m][task] for m in models}
        hard = hard_subset(tables)
        row: dict[str, Any] = {"task": task, "queries": len(set.intersection(*(set(t["qid"]) for t in tables.values()))),
                               "hard": len(hard)}
        for m, t in tables.items():
            r = _ranks(t, m).loc[hard]
            row[m] = round(float((1.0 / r).mean() * 100), 2) if len(hard) else float("nan")
        rows.append(row)
    return pd.DataFrame(rows).set_index("task") if rows else pd.DataFrame(columns=["queries", "hard", *models])


def case_table(per_query: Mapping[str, Mapping[str, pd.DataFrame]], a: str, b: str) -> pd.DataFrame:
    """One row per (task, query) both models were asked: ``rank_a``, ``rank_b`` (0 = beyond k) and
    the outcome from A's side; the source of the viewer's "random win / loss" buttons."""
    rows = []
    for task in per_query[a]:
        if task not in per_query.get(b, {}):
            continue
        ta = per_query[a][task].set_index("qid")["rank"]
        tb = per_query[b][task].set_index("qid")["rank"]
        o = outcomes(ta, tb)
        rows.append(pd.DataFrame({"task": task, "qid": o.index, "rank_a": ta.loc[o.index].to_numpy(),
                                  "rank_b": tb.loc[o.index].to_numpy(), "outcome": o.to_numpy()}))
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=["task", "qid", "rank_a", "rank_b", "outcome"])


def most_different_query(rank_a: pd.DataFrame | pd.Series, rank_b: pd.DataFrame | pd.Series, max_rank: int = 50) -> str:
    """The query on which the two models disagree most while both keep the gold within ``max_rank``
    (largest |log rank_a - log rank_b|; the first such query on ties): the query to draw."""
    a, b = _ranks(rank_a, "model A"), _ranks(rank_b, "model B")
    common = a.index.intersection(b.index)
    a, b = a.loc[common], b.loc[common]
    ok = (a <= max_rank) & (b <= max_rank)
    if not ok.any():
        raise ParameterError(f"no query has its gold within rank {max_rank} under both models")
    gap = (np.log(a[ok]) - np.log(b[ok])).abs()
    return str(gap.index[int(np.argmax(gap.to_numpy()))])


def top_k_frame(emb: TaskEmbeddings, qid: str, k: int = 5) -> pd.DataFrame:
    """A query's top ``k`` codes under the model that made ``emb``: rank, cid, score, gold, code;
    the gold code is appended with its true rank when it is not in the top ``k``."""
    try:
        qi = emb.qids.index(qid)
    except ValueError:
        raise ParameterError(f"query {qid!r} is not in task '{emb.task.name}'") from None
    sims = emb.corpus @ emb.queries[qi]
    order = rank_order(sims)
    gold = {c for c, g in emb.task.qrels[qid].items() if g > 0}
    rank_of = {int(r): i + 1 for i, r in enumerate(order)}
    rows = list(order[:k])
    gold_rows = [emb.cids.index(c) for c in gold if c in emb.cids]
    rows += [r for r in sorted(gold_rows, key=lambda r: rank_of[r]) if r not in rows][:1]
    return pd.DataFrame([{
        "rank": rank_of[int(r)], "cid": emb.cids[r], "score": float(sims[r]), "gold": emb.cids[r] in gold,
        "code": emb.task.corpus[emb.cids[r]],
    } for r in rows])


def rankings(task_embeddings: Mapping[str, Mapping[str, TaskEmbeddings]], k: int = 1000) -> dict[str, dict[str, pd.DataFrame]]:
    """``{model: {task: ranking table}}`` (:func:`workbench.evaluation.ranking_table`) from embeddings."""
    from .evaluation import ranking_table

    return {m: {t: ranking_table(e.task, e.queries, e.corpus, e.qids, e.cids, k=k) for t, e in per.items()}
            for m, per in task_embeddings.items()}


def mrr_table(per_query: Mapping[str, Mapping[str, pd.DataFrame]]) -> pd.DataFrame:
    """MRR (%) of every model (rows) on every task (columns) from ranking tables."""
    return pd.DataFrame({m: {t: round(float(tab["rr"].mean() * 100), 2) for t, tab in per.items()}
                         for m, per in per_query.items()}).T


def region_profile(
    map_df: pd.DataFrame, pairs: pd.DataFrame, per_query: Mapping[str, pd.DataFrame], a: str, b: str,
) -> pd.DataFrame:
    """Per data-map region of the training pairs: size, median query words and code lines, each
    model's MRR when the region's queries search all the data-map pairs' code
    (``per_query[model]`` = that task's ranking table), and A's wins / ties / losses against B."""
    from .cartography import CATEGORIES

    joined = map_df[["pair_id", "category"]].merge(pairs[["id", "query", "code"]], left_on="pair_id", right_on="id")
    rows = []
    for cat in CATEGORIES:
        g = joined[joined["category"].astype(str) == cat]
        if g.empty:
            continue
        row: dict[str, Any] = {"region": cat, "pairs": len(g),
                               "query words (median)": float(g["query"].str.split().str.len().median()),
                               "code lines (median)": float(g["code"].str.count("\n").add(1).median())}
        for m, tab in per_query.items():
            t = tab[tab["qid"].isin(set(g["pair_id"].astype(str)))]
            row[f"MRR {m}"] = round(float(t["rr"].mean() * 100), 2) if len(t) else float("nan")
        o = outcomes(per_query[a][per_query[a]["qid"].isin(set(g["pair_id"].astype(str)))], per_query[b])
        row.update({f"{a} {k}": int((o == k).sum()) for k in OUTCOMES})
        rows.append(row)
    return pd.DataFrame(rows).set_index("region")


def region_examples(map_df: pd.DataFrame, pairs: pd.DataFrame, n: int = 3) -> pd.DataFrame:
    """The ``n`` most typical pairs of each data-map region (closest to the region's median
    confidence and variability, in standard deviations; map order on ties), with their query, code
    and map coordinates."""
    if "category" not in map_df.columns:
        raise ParameterError("region_examples: the data map has no 'category' column; call cartography.categorize()")
    joined = map_df.merge(pairs[["id", "query", "code"]].rename(columns={"id": "pair_id"}), on="pair_id", how="inner")
    out = []
    from .cartography import CATEGORIES

    for cat in [*CATEGORIES, *sorted(set(joined["category"].astype(str)) - set(CATEGORIES))]:
        g = joined[joined["category"].astype(str) == cat]
        if g.empty:
            continue
        med = g[["confidence", "variability"]].median()
        spread = g[["confidence", "variability"]].std().replace(0, 1).fillna(1)
        d = (((g[["confidence", "variability"]] - med) / spread) ** 2).sum(axis=1)
        g = g.assign(_d=d).sort_values("_d", kind="stable").head(n).drop(columns="_d")
        out.append(g)
    cols = ["category", "pair_id", "confidence", "variability", "correctness", "query", "code"]
    return pd.concat(out, ignore_index=True)[cols] if out else pd.DataFrame(columns=cols)


# ------------------------------------------------------------------------------------------- viewer
_LANG = {"xl_go": "go", "xl_java": "java", "xl_javascript": "javascript", "xl_php": "php", "xl_ruby": "ruby",
         "xl_typescript": "typescript"}


def examples_html(examples: pd.DataFrame, code_lines: int = 12) -> str:
    """The pairs of :func:`region_examples` as HTML: region, map coordinates, query, highlighted code."""
    from .viz.datamap import CATEGORY_COLORS

    items = []
    for _, r in examples.iterrows():
        col = CATEGORY_COLORS.get(str(r["category"]), "#777")
        items.append(
            f"<div style='border-left:4px solid {col};padding:4px 8px;margin:0 0 10px 0'>"
            f"<div><span style='color:{col}'><b>{html.escape(str(r['category']))}</b></span> &middot; confidence "
            f"{r['confidence']:.3f} &middot; variability {r['variability']:.3f} &middot; correctness {r['correctness']:.2f}</div>"
            f"<div><b>{html.escape(str(r['query']))}</b></div>{highlight_code(str(r['code']), 'python', code_lines)}</div>"
        )
    return f"<div style='font-family:sans-serif;font-size:13px'>{''.join(items)}</div>"


class CaseViewer:
    """Two models' top-k for one query side by side (gold marked), with the query's data-map
    category and augmentations when given. ``embeddings[model][task]`` are
    :class:`~workbench.embeddings.TaskEmbeddings`; ``cases`` is :func:`case_table` of the two.

    In JupyterLab :meth:`widget` gives a task and query picker with "random win / loss / tie"
    buttons; :meth:`html` renders one case (what the widget shows, and what papermill keeps).
    """

    def __init__(
        self, embeddings: Mapping[str, Mapping[str, TaskEmbeddings]], cases: pd.DataFrame, models: Sequence[str],
        *, k: int = 5, categories: Mapping[str, str] | None = None, augmentations: pd.DataFrame | None = None,
        code_lines: int = 14, seed: int = 0,
    ):
        if len(models) != 2:
            raise ParameterError(f"CaseViewer compares two models, got {list(models)}")
        for m in models:
            if m not in embeddings:
                raise ParameterError(f"CaseViewer: no embeddings of model {m!r}")
        self.embeddings, self.models, self.k, self.code_lines = embeddings, list(models), k, code_lines
        tasks = set(embeddings[models[0]]) & set(embeddings[models[1]])
        self.cases = cases[cases["task"].isin(tasks)].reset_index(drop=True)
        self.categories = dict(categories or {})
        self.augmentations = augmentations
        self._rng = np.random.default_rng(seed)

    def random_case(self, outcome: str | None = None, task: str | None = None) -> tuple[str, str]:
        """A random (task, qid), optionally with the given outcome for model A, from one task."""
        c = self.cases
        if outcome is not None:
            if outcome not in OUTCOMES:
                raise ParameterError(f"outcome must be one of {OUTCOMES}, got {outcome!r}")
            c = c[c["outcome"] == outcome]
        if task is not None:
            c = c[c["task"] == task]
        if c.empty:
            raise ParameterError(f"no case with outcome {outcome!r}" + (f" in task {task!r}" if task else ""))
        row = c.iloc[int(self._rng.integers(len(c)))]
        return str(row["task"]), str(row["qid"])

    def _column(self, model: str, task: str, qid: str) -> str:
        emb = self.embeddings[model][task]
        top = top_k_frame(emb, qid, self.k)
        items = []
        for _, r in top.iterrows():
            border = "#2ca02c" if r["gold"] else "#ddd"
            tag = " <b style='color:#2ca02c'>&#10003; gold</b>" if r["gold"] else ""
            sep = "<div style='color:#888;margin:2px 0'>&#8942;</div>" if r["rank"] > self.k else ""
            items.append(
                f"{sep}<div style='border:2px solid {border};border-radius:4px;padding:4px;margin:0 0 6px 0'>"
                f"<div style='color:#555'>#{int(r['rank'])} &middot; cosine {r['score']:.3f}{tag}</div>"
                f"<div style='overflow-x:auto'>{highlight_code(str(r['code']), _LANG.get(task, 'python'), self.code_lines)}</div></div>"
            )
        return f"<div style='flex:1;min-width:0'><h4 style='margin:4px 0'>{html.escape(model)}</h4>{''.join(items)}</div>"

    def html(self, task: str, qid: str) -> str:
        """One case: the query, both ranks and the outcome, then the two top-k columns."""
        hit = self.cases[(self.cases["task"] == task) & (self.cases["qid"] == qid)]
        if hit.empty:
            raise ParameterError(f"no case for query {qid!r} in task {task!r}")
        r = hit.iloc[0]
        emb = self.embeddings[self.models[0]][task]
        query = emb.task.queries[qid]

        def fmt(rank: int) -> str:
            return "beyond k" if int(rank) == 0 else f"#{int(rank)}"

        meta = [f"task <b>{html.escape(task)}</b>", f"gold: {html.escape(self.models[0])} {fmt(r['rank_a'])}, "
                f"{html.escape(self.models[1])} {fmt(r['rank_b'])}", f"outcome for {html.escape(self.models[0])}: "
                f"<b>{r['outcome']}</b>"]
        if qid in self.categories:
            meta.append(f"data-map region: <b>{html.escape(self.categories[qid])}</b>")
        aug = ""
        if self.augmentations is not None and len(self.augmentations):
            mine = self.augmentations[self.augmentations["pair_id"].astype(str) == qid]
            if len(mine):
                lis = "".join(f"<li>{html.escape(str(k))}: {html.escape(str(t)[:200])}</li>"
                              for k, t in zip(mine["kind"], mine["text"]))
                aug = f"<details><summary>{len(mine)} augmentation(s)</summary><ul>{lis}</ul></details>"
        return (
            "<div style='font-family:sans-serif;font-size:13px'>"
            f"<div style='font-size:15px;margin:4px 0'><b>{html.escape(query)}</b></div>"
            f"<div style='color:#444;margin-bottom:6px'>{' &middot; '.join(meta)}</div>{aug}"
            f"<div style='display:flex;gap:12px'>{self._column(self.models[0], task, qid)}"
            f"{self._column(self.models[1], task, qid)}</div></div>"
        )

    def show(self, task: str | None = None, qid: str | None = None, outcome: str = "lose"):
        """One case as displayable HTML: the given query, or a random one with ``outcome`` for A."""
        from IPython.display import HTML

        if qid is None:
            task, qid = self.random_case(outcome, task)
        return HTML(self.html(str(task), qid))

    def _ipython_display_(self) -> None:
        """The widget in JupyterLab; headless (papermill), a random loss of A as static HTML."""
        from IPython.display import display

        from .progress import headless

        display(self.show() if headless() else self.widget())

    def widget(self):
        """The interactive viewer (ipywidgets): pick a task and a query, or a random win / tie / loss."""
        import ipywidgets as w

        tasks = list(dict.fromkeys(self.cases["task"]))
        task_dd = w.Dropdown(options=tasks, description="test set")
        query_dd = w.Dropdown(description="query", layout=w.Layout(width="70%"))
        out = w.HTML()
        buttons = [w.Button(description=f"random {o}", tooltip=f"a random query where {self.models[0]} has a {o}")
                   for o in OUTCOMES]

        def fill(task: str) -> None:
            c = self.cases[self.cases["task"] == task]
            emb = self.embeddings[self.models[0]][task]
            query_dd.options = [(f"[{o}] {emb.task.queries[q][:80]}", q) for q, o in zip(c["qid"], c["outcome"])]
            query_dd.value = query_dd.options[0][1] if query_dd.options else None

        def show(*_: Any) -> None:
            if query_dd.value is not None:
                out.value = self.html(task_dd.value, query_dd.value)

        def pick(outcome: str) -> None:
            try:
                task, qid = self.random_case(outcome, task_dd.value)
            except ParameterError as e:
                out.value = f"<i>{html.escape(str(e))}</i>"
                return
            query_dd.value = qid
            show()

        task_dd.observe(lambda ch: (fill(ch["new"]), show()), names="value")
        query_dd.observe(show, names="value")
        for b, o in zip(buttons, OUTCOMES):
            b.on_click(lambda _b, o=o: pick(o))
        if tasks:
            fill(tasks[0])
            show()
        return w.VBox([w.HBox([task_dd, *buttons]), query_dd, out])
