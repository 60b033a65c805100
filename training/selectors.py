"""Reads for training pages."""

from __future__ import annotations

from core.pagination import KeysetPage, keyset_paginate
from curation.models import Snapshot

from .models import TrainingRun


def training_run_get(*, run_id: int) -> TrainingRun:
    return TrainingRun.objects.select_related("snapshot", "snapshot__dataset", "created_by").get(
        pk=run_id
    )


def snapshot_training_runs(*, snapshot: Snapshot, limit: int = 20) -> list[TrainingRun]:
    return list(snapshot.training_runs.order_by("-id")[:limit])


def training_run_list_page(*, after: int | None = None, before: int | None = None) -> KeysetPage:
    runs = TrainingRun.objects.select_related("snapshot", "snapshot__dataset").defer(
        "history", "log_tail"
    )
    return keyset_paginate(runs, key="id", after=after, before=before, descending=True)
