"""One split's scores from mteb's output, and JSON that the database accepts. Pure: no
Django, no mteb."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass
class SplitScores:
    main_score: float
    ndcg_at_10: float | None
    recall_at_100: float | None
    mrr_at_10: float | None
    metrics: dict


def split_scores(subset_scores: list[dict]) -> SplitScores:
    """One split's scores from mteb's list of per-subset score dicts: a single subset as it
    is; several (a multilingual task) averaged, each kept under ``subsets``."""
    if len(subset_scores) == 1:
        metrics = dict(subset_scores[0])
    else:
        numeric = {
            key
            for scores in subset_scores
            for key, value in scores.items()
            if isinstance(value, int | float) and not isinstance(value, bool)
        }
        metrics = {
            key: float(np.mean([s[key] for s in subset_scores if key in s]))
            for key in sorted(numeric)
        }
        metrics["subsets"] = {s.get("hf_subset", str(i)): s for i, s in enumerate(subset_scores)}

    def number(key):
        value = metrics.get(key)
        return float(value) if isinstance(value, int | float) else None

    return SplitScores(
        main_score=float(metrics["main_score"]),
        ndcg_at_10=number("ndcg_at_10"),
        recall_at_100=number("recall_at_100"),
        mrr_at_10=number("mrr_at_10"),
        metrics=metrics,
    )


def json_safe(value):
    """``value`` with NaN and infinities as None: mteb writes NaN for metrics that are not
    defined on a split (an nAUC over constant scores), which JSON columns refuse."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    return value
