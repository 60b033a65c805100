"""Reads for training pages."""

from __future__ import annotations

from django.db.models import Q

from core.pagination import KeysetPage, keyset_paginate
from curation.models import Snapshot

from .models import TrainingRun, TrainingRunSnapshot


def training_run_get(*, run_id: int) -> TrainingRun:
    return (
        TrainingRun.objects.select_related("snapshot", "snapshot__dataset", "created_by")
        .prefetch_related("more_snapshots__snapshot__dataset")
        .get(pk=run_id)
    )


def other_snapshots(*, snapshot: Snapshot, limit: int = 12) -> list[Snapshot]:
    """The newest snapshots but ``snapshot``: what the Train form offers to train on too."""
    return list(
        Snapshot.objects.select_related("dataset").exclude(pk=snapshot.pk).order_by("-id")[:limit]
    )


def snapshot_training_runs(*, snapshot: Snapshot, limit: int = 20) -> list[TrainingRun]:
    """The newest runs that train on ``snapshot``: as their first snapshot, or mixed in beside
    it (``TrainingRunSnapshot``). Two indexed id lists, not an OR across a join."""
    mixed_in = TrainingRunSnapshot.objects.filter(snapshot=snapshot).values("run_id")
    runs = TrainingRun.objects.filter(Q(snapshot=snapshot) | Q(pk__in=mixed_in))
    return list(
        runs.select_related("snapshot")
        .prefetch_related("more_snapshots")
        .defer("history", "log_tail")
        .order_by("-id")[:limit]
    )


def training_run_list_page(*, after: int | None = None, before: int | None = None) -> KeysetPage:
    runs = (
        TrainingRun.objects.select_related("snapshot", "snapshot__dataset")
        .prefetch_related("more_snapshots")
        .defer("history", "log_tail")
    )
    return keyset_paginate(runs, key="id", after=after, before=before, descending=True)
