"""Reads of the cascade: the run pages' (run rows, and per-stage counts from the run's own
stats, kept up to date by the worker each commit, so a page poll never counts items) and the
worker's (queries with negatives in keyset pages, and the texts a page of prompts needs, in
three statements whatever the page size)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Exists, F, OuterRef

from ..models import Candidate, CandidateRole, CascadeRun, Dataset, Query
from .prompts import judge_prompt_build

CREATE_PAGE = 1000  # queries per page when creating items


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


# --- reading the dataset for prompts -------------------------------------------------------------


def queries_with_negatives(dataset: Dataset):
    negatives = Candidate.objects.filter(query_id=OuterRef("pk"), role=CandidateRole.NEGATIVE)
    return Query.objects.filter(dataset=dataset).filter(Exists(negatives))


def query_id_pages(dataset: Dataset) -> Iterator[list[int]]:
    after = 0
    while True:
        page = list(
            queries_with_negatives(dataset)
            .filter(id__gt=after)
            .order_by("id")
            .values_list("id", flat=True)[:CREATE_PAGE]
        )
        if not page:
            return
        after = page[-1]
        yield page


def query_negative_ids(query_ids: list[int], max_negatives: int) -> dict[int, list[int]]:
    """Each query's first ``max_negatives`` negatives by rank then id: the order in which the
    prompt numbers them Doc (1), Doc (2), …"""
    result: dict[int, list[int]] = {qid: [] for qid in query_ids}
    rows = (
        Candidate.objects.filter(query_id__in=query_ids, role=CandidateRole.NEGATIVE)
        .order_by("query_id", F("rank").asc(nulls_last=True), "id")
        .values_list("query_id", "id")
    )
    for query_id, candidate_id in rows.iterator(chunk_size=5000):
        listed = result[query_id]
        if len(listed) < max_negatives:
            listed.append(candidate_id)
    return result


@dataclass
class PromptData:
    queries: dict[int, str]
    positives: dict[int, list[str]]
    negatives: dict[int, str]


def prompt_data(
    *, query_ids: list[int], candidate_ids: list[int], max_positives: int | None = None
) -> PromptData:
    """The texts a page of prompts needs, in three queries whatever the page size. Each query's
    positives in id order: all of them (RLHN's prompt), or the first ``max_positives``."""
    queries = dict(Query.objects.filter(id__in=query_ids).values_list("id", "text"))
    positives: dict[int, list[str]] = {qid: [] for qid in query_ids}
    rows = (
        Candidate.objects.filter(query_id__in=query_ids, role=CandidateRole.POSITIVE)
        .order_by("query_id", "id")
        .values_list("query_id", "passage__title", "passage__text")
    )
    for query_id, title, text in rows:
        if max_positives is None or len(positives[query_id]) < max_positives:
            positives[query_id].append(_passage_text(title, text))
    negatives = {
        cid: _passage_text(title, text)
        for cid, title, text in Candidate.objects.filter(id__in=candidate_ids).values_list(
            "id", "passage__title", "passage__text"
        )
    }
    return PromptData(queries, positives, negatives)


def prompt_build(data: PromptData, query_id: int, candidate_ids: list[int], *, json_mode: bool):
    return judge_prompt_build(
        query=data.queries[query_id],
        positives=data.positives.get(query_id, []),
        negatives=[data.negatives[c] for c in candidate_ids],
        json_mode=json_mode,
    )


def _passage_text(title: str, text: str) -> str:
    return f"{title}\n{text}" if title else text
