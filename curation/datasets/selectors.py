"""Reads for datasets, queries, candidates, jobs and snapshots, for the pages, the API and
the export. Sized for 10M candidates: every list is keyset-paginated on an index
(``WHERE key > last ORDER BY key LIMIT n``, so page 10,000 costs what page 1 costs); counts
come from the denormalized columns on parent rows or one grouped query over the page's rows;
the candidate stream fetches one batch of queries per SQL statement."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from django.db.models import (
    BigIntegerField,
    CharField,
    Count,
    F,
    Max,
    OuterRef,
    Q,
    Subquery,
    Value,
)

from core.models import JobStatus
from core.pagination import KeysetPage, keyset_paginate

from ..models import (
    Approval,
    Candidate,
    CandidateRole,
    Dataset,
    Decision,
    DecisionLabel,
    ExportJob,
    ImportJob,
    Judgment,
    Query,
    RaterKind,
    Snapshot,
)
from .export import Candidate as ExportCandidate
from .export import QueryData


def dataset_get_by_name(*, name: str) -> Dataset:
    """Raises ``Dataset.DoesNotExist``."""
    return Dataset.objects.select_related("corpus").get(name=name)


def dataset_query_page(*, dataset: Dataset, after_query_id: str | None, limit: int) -> list[Query]:
    """Up to ``limit`` queries of ``dataset`` whose ``query_id`` sorts after ``after_query_id``,
    in ``query_id`` order. Walks the (dataset, query_id) unique index, so page 10,000 costs
    the same as page 1 (an OFFSET would rescan every earlier row)."""
    queries = Query.objects.filter(dataset=dataset)
    if after_query_id is not None:
        queries = queries.filter(query_id__gt=after_query_id)
    return list(queries.order_by("query_id")[:limit])


def dataset_has_negatives(*, dataset: Dataset) -> bool:
    return Candidate.objects.filter(query__dataset=dataset, role=CandidateRole.NEGATIVE).exists()


def decision_cutoff() -> int:
    """The highest Decision id so far (0 when there is none). Decisions are append-only, so
    "latest decision with id <= cutoff" pins the labels a snapshot saw, however many
    decisions arrive while it is written or later."""
    return Decision.objects.aggregate(cutoff=Max("id"))["cutoff"] or 0


def approvals_in_force(*, dataset: Dataset) -> list[Approval]:
    """The approvals a snapshot of ``dataset`` made now uses: applied in full and not
    revoked; oldest first (where two give a candidate a verdict, the later one's wins)."""
    return list(
        Approval.objects.filter(
            dataset=dataset, status=JobStatus.SUCCEEDED, revoked_at__isnull=True
        ).order_by("id")
    )


def _decision_in_force(*, decision_cutoff: int, approval_ids: Sequence[int]):
    """Decisions of the outer candidate with id <= the cutoff, the one in force first: a
    person's decision (latest first) wins over any approved machine verdict; only then the
    latest decision of an approval in ``approval_ids``. Other approvals' decisions (revoked,
    cancelled, still running) are not read at all."""
    decisions = Decision.objects.filter(candidate_id=OuterRef("pk"), id__lte=decision_cutoff)
    if not approval_ids:
        return decisions.filter(approval__isnull=True).order_by("-id")
    return decisions.filter(Q(approval__isnull=True) | Q(approval_id__in=approval_ids)).order_by(
        F("approval_id").asc(nulls_first=True), "-id"
    )


def dataset_candidates_stream(
    *,
    dataset: Dataset,
    decision_cutoff: int,
    batch_size: int = 1000,
    approval_ids: Sequence[int] = (),
) -> Iterator[QueryData]:
    """Every query of ``dataset`` in ``query_id`` order with its candidates, as plain data for
    ``export``. A negative is marked ``false_negative`` when its decision in force (see
    ``_decision_in_force``: people first, then the approvals in ``approval_ids``) with
    id <= ``decision_cutoff`` is ``relevant``, a positive ``not_relevant`` when it is
    ``not_relevant``; each candidate's ``source`` says whose decision that was ("human" or
    "approval:<id>"). Queries without candidates are yielded too (with empty lists) so
    callers can count them.

    One SQL statement per ``batch_size`` queries (the candidates, their passages and the
    latest decision via a correlated subquery on the (candidate, -id) index), streamed
    through a server-side cursor: memory holds one page of queries and one query's candidates.
    """
    after = None
    while True:
        page = dataset_query_page(dataset=dataset, after_query_id=after, limit=batch_size)
        if not page:
            return
        after = page[-1].query_id
        rows = Candidate.objects.filter(query_id__in=[q.pk for q in page])
        if decision_cutoff:
            in_force = _decision_in_force(
                decision_cutoff=decision_cutoff, approval_ids=approval_ids
            )
            rows = rows.annotate(latest_label=Subquery(in_force.values("label")[:1]))
            if approval_ids:
                rows = rows.annotate(latest_approval=Subquery(in_force.values("approval_id")[:1]))
            else:
                rows = rows.annotate(latest_approval=Value(None, output_field=BigIntegerField()))
        else:
            # No decision exists yet: skip the subqueries entirely.
            rows = rows.annotate(
                latest_label=Value("", output_field=CharField()),
                latest_approval=Value(None, output_field=BigIntegerField()),
            )
        # Ordered like the page (query_id) so the two merge by walking side by side.
        rows = rows.order_by("query__query_id", "id").values_list(
            "query_id",
            "id",
            "role",
            "rank",
            "teacher_score",
            "passage__doc_id",
            "passage__title",
            "passage__text",
            "latest_label",
            "latest_approval",
        )
        stream = rows.iterator(chunk_size=2000)
        pending = next(stream, None)
        for query in page:
            positives: list[ExportCandidate] = []
            negatives: list[ExportCandidate] = []
            while pending is not None and pending[0] == query.pk:
                _, cand_id, role, rank, score, doc_id, title, text, label, approval = pending
                positive = role == CandidateRole.POSITIVE
                (positives if positive else negatives).append(
                    ExportCandidate(
                        doc_id,
                        title,
                        text,
                        rank,
                        score,
                        order=cand_id,
                        false_negative=not positive and label == DecisionLabel.RELEVANT,
                        not_relevant=positive and label == DecisionLabel.NOT_RELEVANT,
                        source=f"approval:{approval}" if approval else "human",
                    )
                )
                pending = next(stream, None)
            yield QueryData(query.query_id, query.text, tuple(positives), tuple(negatives))
        if pending is not None:
            # Both sides sort by query_id in the database's collation; a row left over means
            # they did not, and silently dropping candidates would corrupt the snapshot.
            raise RuntimeError("candidate stream and query page disagree on query_id order")
        if len(page) < batch_size:
            return  # a short page is the last one: no need to ask for an empty one


def snapshot_get(*, snapshot_id: int) -> Snapshot:
    """Raises ``Snapshot.DoesNotExist``."""
    return Snapshot.objects.select_related("dataset", "created_by").get(pk=snapshot_id)


def snapshot_find_identical(
    *, dataset: Dataset, policy: str, max_false_negatives: int, format: str, sha256: str
) -> Snapshot | None:
    return (
        Snapshot.objects.filter(
            dataset=dataset,
            policy=policy,
            max_false_negatives=max_false_negatives,
            format=format,
            sha256=sha256,
        )
        .order_by("id")
        .first()
    )


# --- datasets and queries ----------------------------------------------------------------


def dataset_list_page(*, after: str | None = None, before: str | None = None) -> KeysetPage:
    # Dataset names are unique, so the name is the cursor and the list reads alphabetically.
    return keyset_paginate(
        Dataset.objects.select_related("corpus"), key="name", after=after, before=before
    )


def dataset_get(*, dataset_id: int) -> Dataset:
    return Dataset.objects.select_related("corpus").get(pk=dataset_id)


def query_list_page(
    *, dataset: Dataset, after: str | None = None, before: str | None = None
) -> KeysetPage:
    # query_id order walks the (dataset, query_id) unique index, like the snapshot stream.
    page = keyset_paginate(
        Query.objects.filter(dataset=dataset), key="query_id", after=after, before=before
    )
    query_role_counts_attach(queries=page.items)
    return page


def query_role_counts_attach(*, queries: Sequence[Query]) -> None:
    """Set ``positive_count`` / ``negative_count`` on each query of a page, from ONE grouped
    query over those queries' candidates only (never over the dataset)."""
    counts = {
        row["query_id"]: row
        for row in Candidate.objects.filter(query_id__in=[q.pk for q in queries])
        .values("query_id")
        .annotate(
            positives=Count("id", filter=Q(role=CandidateRole.POSITIVE)),
            negatives=Count("id", filter=Q(role=CandidateRole.NEGATIVE)),
        )
        .order_by()
    }
    for query in queries:
        row = counts.get(query.pk, {})
        query.positive_count = row.get("positives", 0)
        query.negative_count = row.get("negatives", 0)


def query_get(*, query_id: int) -> Query:
    return Query.objects.select_related("dataset", "dataset__corpus").get(pk=query_id)


def query_candidates(*, query: Query) -> list[Candidate]:
    """A query's candidates with their passage, the decision in force (a person's, else an
    approval's in force: ``_decision_in_force``) and each machine rater's latest verdict
    (``machine_verdicts``: rater, verdict, tag; stage order).

    One query has tens to a few hundred candidates, so the whole list is one page: three
    statements."""
    approvals = [a.pk for a in approvals_in_force(dataset=query.dataset)]
    in_force = _decision_in_force(decision_cutoff=decision_cutoff(), approval_ids=approvals)
    candidates = list(
        Candidate.objects.filter(query=query)
        .select_related("passage")
        .annotate(
            decision_label=Subquery(in_force.values("label")[:1]),
            decision_source=Subquery(in_force.values("source")[:1]),
            decision_approval=Subquery(in_force.values("approval_id")[:1]),
        )
        .order_by("role", "origin", "rank", "id")
    )
    latest: dict[int, dict[str, tuple[str, str]]] = {}
    judgments = (
        Judgment.objects.filter(candidate__query=query, rater_kind=RaterKind.MACHINE)
        .order_by("id")
        .values_list("candidate_id", "rater", "verdict", "tag")
    )
    for candidate_id, rater, verdict, tag in judgments:
        latest.setdefault(candidate_id, {})[rater] = (verdict, tag)  # later rows win
    for candidate in candidates:
        candidate.machine_verdicts = [
            {"rater": rater, "verdict": verdict, "tag": tag}
            for rater, (verdict, tag) in sorted(latest.get(candidate.pk, {}).items())
        ]
    return candidates


# --- jobs and snapshots --------------------------------------------------------------------


def dataset_import_jobs(*, dataset: Dataset, limit: int = 10) -> list[ImportJob]:
    # A failed import never got its dataset row linked, so match by name as well.
    return list(
        ImportJob.objects.filter(Q(dataset=dataset) | Q(dataset_name=dataset.name))
        .select_related("created_by")
        .order_by("-id")[:limit]
    )


def dataset_export_jobs(*, dataset: Dataset, limit: int = 10) -> list[ExportJob]:
    return list(
        ExportJob.objects.filter(dataset=dataset)
        .select_related("dataset", "created_by")
        .order_by("-id")[:limit]
    )


def dataset_snapshots(*, dataset: Dataset, limit: int = 10) -> list[Snapshot]:
    return list(Snapshot.objects.filter(dataset=dataset).order_by("-id")[:limit])


def import_job_list_page(*, after: int | None = None, before: int | None = None) -> KeysetPage:
    return keyset_paginate(
        ImportJob.objects.select_related("dataset", "created_by"),
        key="id",
        after=after,
        before=before,
        descending=True,
    )


def snapshot_list_page(
    *, dataset_id: int | None = None, after: int | None = None, before: int | None = None
) -> KeysetPage:
    snapshots = Snapshot.objects.select_related("dataset", "created_by")
    if dataset_id is not None:
        snapshots = snapshots.filter(dataset_id=dataset_id)
    return keyset_paginate(snapshots, key="id", after=after, before=before, descending=True)


def export_jobs_unfinished(*, limit: int = 20) -> list[ExportJob]:
    return list(
        ExportJob.objects.filter(status__in=[JobStatus.QUEUED, JobStatus.RUNNING])
        .select_related("dataset", "created_by")
        .order_by("-id")[:limit]
    )


# Qrels splits that hold a benchmark's queries, not training data.
EVALUATION_SPLITS = ("test", "dev", "validation", "val")


def dataset_import_splits(*, dataset_ids: Sequence[int] | None = None) -> dict[int, set[str]]:
    """{dataset id: the splits its succeeded imports recorded}; a dataset imported from a
    format without splits (BGE, Tevatron, triplets) records "train" by what it is."""
    imports = ImportJob.objects.filter(status=JobStatus.SUCCEEDED, dataset__isnull=False)
    if dataset_ids is not None:
        imports = imports.filter(dataset_id__in=dataset_ids)
    splits: dict[int, set[str]] = {}
    for row in imports.values("dataset_id", "stats"):
        split = (row["stats"] or {}).get("split") or "train"
        splits.setdefault(row["dataset_id"], set()).add(str(split))
    return splits


def evaluation_split_of(splits: set[str]) -> str | None:
    """The evaluation split (``test``, ``dev``, …) when it is all of ``splits`` (a dataset's,
    from ``dataset_import_splits``), else None: training data, several splits, no import."""
    if len(splits) == 1 and (split := next(iter(splits))) in EVALUATION_SPLITS:
        return split
    return None


def dataset_evaluation_split(*, dataset: Dataset) -> str | None:
    """The evaluation split that is all ``dataset`` was imported from, or None. Such a
    dataset is an evaluation task of its own (evaluation/services/dataset_tasks.py)."""
    return evaluation_split_of(
        dataset_import_splits(dataset_ids=[dataset.pk]).get(dataset.pk, set())
    )
