"""Reads for mining: queries and candidates by chunk (keyset batches, ``WHERE id > last ORDER
BY id LIMIT n``; nothing loads a whole table into Python objects), runs for the pages.
Corpus content: ``curation/datasets/corpus.py``."""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import QuerySet

from ..models import (
    Candidate,
    CandidateRole,
    Dataset,
    MiningRun,
    Query,
)


def dataset_queries_stream(*, dataset: Dataset, batch_size: int) -> Iterator[list[tuple[int, str]]]:
    """(id, text) of the dataset's queries in id order, ``batch_size`` at a time."""
    last = 0
    while True:
        rows = list(
            Query.objects.filter(dataset=dataset, id__gt=last)
            .order_by("id")
            .values_list("id", "text")[:batch_size]
        )
        if not rows:
            return
        yield rows
        last = rows[-1][0]


def query_candidates_for(
    *, query_ids: list[int], role: str | None = None
) -> list[tuple[int, int, int, str]]:
    """(candidate id, query id, passage id, role) of the given queries' candidates (one
    statement, through the (query, passage) unique index)."""
    rows = Candidate.objects.filter(query_id__in=query_ids)
    if role is not None:
        rows = rows.filter(role=role)
    return list(rows.values_list("id", "query_id", "passage_id", "role"))


def dataset_positive_count(*, dataset: Dataset) -> int:
    return Candidate.objects.filter(query__dataset=dataset, role=CandidateRole.POSITIVE).count()


# --- pages -------------------------------------------------------------------------------


def mining_run_get(*, run_id: int) -> MiningRun:
    """Raises ``MiningRun.DoesNotExist``."""
    return MiningRun.objects.select_related("dataset", "dataset__corpus", "created_by").get(
        pk=run_id
    )


def dataset_mining_runs(*, dataset: Dataset, limit: int = 10) -> QuerySet[MiningRun]:
    return (
        MiningRun.objects.filter(dataset=dataset)
        .select_related("created_by")
        .order_by("-id")[:limit]
    )
