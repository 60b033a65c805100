"""The evaluation pages' charts, on plain data (no Django): an evaluation run's scores per
task. Drawn by ``core/charts.py``; scores in points (nDCG@10 0.6451 → 64.5), as the
leaderboard shows them."""

from __future__ import annotations

from core.charts import Figure, Series, bar_chart

METRICS = (("ndcg_at_10", "nDCG@10"), ("recall_at_100", "Recall@100"), ("mrr_at_10", "MRR@10"))


def scores_chart(rows: list[dict], *, title: str) -> Figure | None:
    """``rows``: ``{"task": label, "ndcg_at_10", "recall_at_100", "mrr_at_10"}`` (fractions
    or None), one per task; None when there is nothing to draw."""
    series = [
        Series(name, [None if r.get(key) is None else 100 * r[key] for r in rows])
        for key, name in METRICS
    ]
    return bar_chart(
        title=title,
        categories=[r["task"] for r in rows],
        series=series,
        value_label="score (points, 0–100)",
        maximum=100,
    )
