"""Reads for the synthesis pages. Corpus content: ``curation/datasets/corpus.py``."""

from __future__ import annotations

from django.db.models import QuerySet

from ..models import Dataset, SynthesisRun


def synthesis_run_get(*, run_id: int) -> SynthesisRun:
    """Raises ``SynthesisRun.DoesNotExist``."""
    return SynthesisRun.objects.select_related("dataset", "dataset__corpus", "created_by").get(
        pk=run_id
    )


def dataset_synthesis_runs(*, dataset: Dataset, limit: int = 10) -> QuerySet[SynthesisRun]:
    return (
        SynthesisRun.objects.filter(dataset=dataset)
        .select_related("created_by")
        .order_by("-id")[:limit]
    )
