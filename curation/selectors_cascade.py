"""Reads for the cascade pages: run rows, and per-stage counts from the run's own stats
(kept up to date by the worker each commit, so a page poll never counts items)."""

from decimal import Decimal

from .models import CascadeRun, Dataset


def cascade_run_get(*, run_id: int) -> CascadeRun:
    """Raises ``CascadeRun.DoesNotExist``."""
    return CascadeRun.objects.select_related("dataset", "created_by").get(pk=run_id)


def dataset_cascade_runs(*, dataset: Dataset, limit: int = 10) -> list[CascadeRun]:
    return list(
        CascadeRun.objects.filter(dataset=dataset)
        .select_related("created_by")
        .order_by("-id")[:limit]
    )


def cascade_run_stage_rows(*, run: CascadeRun) -> list[dict]:
    """One row per stage: its settings and its counts so far (zeros before it started)."""
    counts = (run.stats or {}).get("stages", {})
    rows = []
    for settings in run.stages:
        number = settings["number"]
        stage = counts.get(str(number), {})
        rows.append(
            {
                "number": number,
                "model": settings["model"],
                "base_url": settings["base_url"],
                "items": stage.get("items", 0),
                "judged": stage.get("judged", 0),
                "flagged": stage.get("flagged", 0),
                "unparseable": stage.get("unparseable", 0),
                "failed": stage.get("failed", 0),
                "skipped": stage.get("skipped", 0),
                "paid_calls": stage.get("paid_calls", 0),
                "cached_calls": stage.get("cached_calls", 0),
                "batch_missing": stage.get("batch_missing", 0),
                "input_tokens": stage.get("input_tokens", 0),
                "output_tokens": stage.get("output_tokens", 0),
                "cost_usd": Decimal(stage.get("cost_usd", "0")),
            }
        )
    return rows
