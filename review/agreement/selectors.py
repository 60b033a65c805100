"""Reads for the agreement report: the ratings of a scope as numpy arrays, cached reports,
and whether a cached report is out of date. See ``review/agreement.md``.

The ratings are read in keyset batches of review items (``id > last ORDER BY id LIMIT n``).
Each batch costs three statements — its items, the active human submissions on them, the
machine judgments of their candidates — that return only numbers computed in SQL (verdict,
stratum and rater codes, epoch seconds). On PostgreSQL each answer arrives packed into one
binary value that numpy reads at once (``read_columns``): nothing is built in Python per
judgment.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import (
    BigIntegerField,
    Case,
    F,
    FloatField,
    Func,
    IntegerField,
    Max,
    Q,
    QuerySet,
    Value,
    When,
)
from django.db.models.functions import Cast

from core.labels import name_label
from core.models import JobStatus
from core.pagination import KeysetPage, keyset_paginate
from curation.models import Dataset, Judgment, RaterKind

from ..models import AgreementReport, ReviewCampaign, ReviewItem, ReviewSubmission, Stratum
from .ratings import Revisions
from .report import HUMAN, MACHINE, VERDICTS, Rater, Ratings, Slicing
from .stats import MISSING

ITEM_BATCH = 200_000
STRATA = tuple(Stratum.values)
# Machine raters the report knows how to read; other machine judgments are left out.
_LLM_STAGE = re.compile(r"^llm:(?P<model>.+):stage(?P<stage>\d+)$")
_TEACHER = re.compile(r"^teacher:(?P<model>.+?)(?::margin)?$")


@dataclass(frozen=True)
class AgreementScope:
    """What a report covers. No campaign and no dataset: every campaign."""

    campaign_id: int | None = None
    dataset_id: int | None = None
    partly_relevant_is_false_negative: bool = False
    n_boot: int = 1000
    seed: int = 0

    def as_json(self) -> dict:
        return {
            "campaign": self.campaign_id,
            "dataset": self.dataset_id,
            "partly_relevant_is_false_negative": self.partly_relevant_is_false_negative,
            "n_boot": self.n_boot,
            "seed": self.seed,
        }

    @classmethod
    def from_json(cls, data: dict) -> AgreementScope:
        return cls(
            campaign_id=data.get("campaign"),
            dataset_id=data.get("dataset"),
            partly_relevant_is_false_negative=bool(data.get("partly_relevant_is_false_negative")),
            n_boot=int(data.get("n_boot", 1000)),
            seed=int(data.get("seed", 0)),
        )


def _scope_filter(scope: AgreementScope, prefix: str = "") -> Q:
    """The review items of a scope, as a filter on ReviewItem (or on a relation to it)."""
    if scope.campaign_id is not None:
        return Q(**{f"{prefix}campaign_id": scope.campaign_id})
    if scope.dataset_id is not None:
        return Q(**{f"{prefix}campaign__dataset_id": scope.dataset_id})
    return Q()


def scope_items(*, scope: AgreementScope) -> QuerySet:
    return ReviewItem.objects.filter(_scope_filter(scope))


class EpochSeconds(Func):
    """Seconds since 1970 as a float, computed by the database (no datetime objects)."""

    output_field = FloatField()
    template = "CAST(EXTRACT(EPOCH FROM %(expressions)s) AS double precision)"

    def as_sqlite(self, compiler, connection, **extra):
        # Django stores SQLite datetimes as UTC text; julianday() reads that format.
        return self.as_sql(
            compiler,
            connection,
            template="((julianday(%(expressions)s) - 2440587.5) * 86400.0)",
            **extra,
        )


def _code(field: str, values: tuple[str, ...]) -> Case:
    """``field`` as the index of its value in ``values`` (MISSING for anything else)."""
    return Case(
        *[When(**{field: value}, then=Value(i)) for i, value in enumerate(values)],
        default=Value(MISSING),
        output_field=IntegerField(),
    )


def machine_rater(name: str) -> Rater | None:
    """A machine rater from its judgment ``rater`` name, or None when the report does not
    use it. Model names may contain colons (``llm:llama3:8b:stage1``)."""
    if match := _LLM_STAGE.match(name):
        stage = int(match["stage"])
        return Rater(name, name_label(name), MACHINE, stage)
    if _TEACHER.match(name):
        return Rater(name, name_label(name), MACHINE, 0)
    return None


def judgment_cutoff_now() -> int:
    return Judgment.objects.aggregate(cutoff=Max("id"))["cutoff"] or 0


# --- reading columns ---------------------------------------------------------------------

_FIELDS = {"int8": BigIntegerField, "int4": IntegerField, "float8": FloatField}
_BIG_ENDIAN = {"int8": ">i8", "int4": ">i4", "float8": ">f8"}
_NATIVE = {"int8": np.int64, "int4": np.int64, "float8": np.float64}
_SEND = {"int8": "int8send", "int4": "int4send", "float8": "float8send"}
# Databases that pack rows with string_agg(...send()); the rest read through values_list.
PACKED_VENDORS = ("postgresql",)


def read_columns(
    queryset: QuerySet, columns: list[tuple[object, str]], *, limit: int | None = None
) -> list[np.ndarray]:
    """The rows of ``queryset`` (the first ``limit`` in its order), restricted to ``columns``
    — (field name or expression, "int8" | "int4" | "float8"), none of them NULL — as one numpy
    array per column, in no particular row order.

    On PostgreSQL the database packs every row into a fixed-size big-endian record
    (``int8send(a) || int4send(b) || ...``) and concatenates them with ``string_agg`` into ONE
    value, which numpy reads with one ``frombuffer``: no Python object per row or per value
    (a driver builds a tuple per row; even a binary COPY hands rows over one call each).
    Elsewhere (SQLite) the same query runs through ``values_list``.
    """
    kinds = [kind for _, kind in columns]
    names = [f"agreement_c{i}" for i in range(len(columns))]
    queryset = queryset.annotate(
        **{
            name: Cast(F(c) if isinstance(c, str) else c, _FIELDS[kind]())
            for name, (c, kind) in zip(names, columns, strict=True)
        }
    ).values_list(*names)
    if limit is not None:
        queryset = queryset[:limit]
    if connection.vendor not in PACKED_VENDORS:
        rows = np.array(list(queryset), dtype=np.float64).reshape(-1, len(columns))
        return [rows[:, i].astype(_NATIVE[kind]) for i, kind in enumerate(kinds)]
    sql, params = queryset.query.sql_with_params()
    record = " || ".join(
        f"{_SEND[kind]}(rows.{name})" for name, kind in zip(names, kinds, strict=True)
    )
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT string_agg({record}, ''::bytea) FROM ({sql}) AS rows", params)
        (packed,) = cursor.fetchone()
    dtype = np.dtype([(name, _BIG_ENDIAN[kind]) for name, kind in zip(names, kinds, strict=True)])
    rows = np.frombuffer(bytes(packed or b""), dtype=dtype)
    return [rows[name].astype(_NATIVE[kind]) for name, kind in zip(names, kinds, strict=True)]


def machine_rater_names() -> list[str]:
    """Every teacher and LLM-stage rater name that has judged anything.

    A loose index scan on (rater, created_at): one index probe per distinct rater name —
    written as a recursive CTE because neither PostgreSQL nor SQLite skips through an index
    by itself — instead of a DISTINCT over millions of judgments. It walks every name (the
    annotators' too: a few hundred probes) rather than a prefix range, because under a
    linguistic collation "llm:" and "llm;" need not bound the names that start with "llm:".
    """
    table = connection.ops.quote_name(Judgment._meta.db_table)
    sql = f"""
        WITH RECURSIVE names(name) AS (
            SELECT MIN(rater) FROM {table}
            UNION ALL
            SELECT (SELECT MIN(rater) FROM {table} WHERE rater > names.name)
            FROM names WHERE names.name IS NOT NULL
        )
        SELECT name FROM names WHERE name IS NOT NULL
    """
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return [name for (name,) in cursor.fetchall() if name.startswith(("llm:", "teacher:"))]


# --- the ratings of a scope --------------------------------------------------------------


@dataclass
class _Batches:
    items: list[list[np.ndarray]]  # id, candidate, campaign, dataset, stratum code
    humans: list[list[np.ndarray]]  # candidate, user, verdict code, judgment id, epoch, blind
    machines: list[list[np.ndarray]]  # candidate, rater code, verdict code, judgment id
    # candidate, user, blind verdict code, revised verdict code, judgment id
    revisions: list[list[np.ndarray]]


# The human answers the report counts: a blind answer (given before the reveal of a blind
# campaign) even once undone or revised; any other answer while it is active, except a
# post-reveal revision (review/services/blind.py).
_COUNTED = Q(blind=True) | Q(undone_at__isnull=True, revises__isnull=True)


def agreement_ratings_fetch(
    *,
    scope: AgreementScope,
    judgment_cutoff: int,
    batch_size: int = ITEM_BATCH,
    progress: Callable[[int], None] | None = None,
) -> Ratings:
    """The scope's ratings in force, as ``review.agreement.report.Ratings``.

    Items are the distinct candidates of the scope's review items; a candidate sampled into
    two campaigns counts once, under its first review item (campaign, stratum). Humans: the
    judgments behind active (not undone) submissions; machines: the candidates' judgments by
    teacher and LLM-stage raters. Only judgments with id <= ``judgment_cutoff`` are read, so
    the report is exactly "everything up to that judgment". ``progress(items_read)`` is
    called after each batch.

    In a blind campaign a person's rating is their blind answer, even once undone or revised
    after the reveal; the revisions are read apart (``Ratings.revisions``), for the report
    to count. Elsewhere: the judgment behind each active submission.
    """
    items = scope_items(scope=scope)
    machine_raters = [r for r in map(machine_rater, machine_rater_names()) if r is not None]
    rater_code = _code("rater", tuple(r.key for r in machine_raters))
    batches = _Batches([], [], [], [])
    after = 0
    read = 0
    while True:
        block = read_columns(
            items.filter(id__gt=after).order_by("id"),
            [("id", "int8"), ("candidate_id", "int8"), ("campaign_id", "int8"),
             ("campaign__dataset_id", "int8"), (_code("stratum", STRATA), "int4")],
            limit=batch_size,
        )  # fmt: skip
        by_id = np.argsort(block[0], kind="stable")
        block = [column[by_id] for column in block]
        item_ids = block[0]
        if not len(item_ids):
            break
        low, high = int(item_ids[0]), int(item_ids[-1])
        after = high
        batches.items.append(block)

        # Submissions by item id range only: the scope test happens against the batch's item
        # ids below, which spares the database a join with the review items.
        submissions = ReviewSubmission.objects.filter(
            item_id__gte=low,
            item_id__lte=high,
            judgment_id__lte=judgment_cutoff,
            judgment__rater_kind=RaterKind.HUMAN,
        )
        human = read_columns(
            submissions.filter(_COUNTED),
            [("item_id", "int8"), ("user_id", "int8"),
             (_code("judgment__verdict", VERDICTS), "int4"), ("judgment_id", "int8"),
             (EpochSeconds("judgment__created_at"), "float8"), ("blind", "int4")],
        )  # fmt: skip
        batches.humans.append(_in_batch(item_ids, block[1], human))
        revised = read_columns(
            submissions.filter(revises__isnull=False),
            [("item_id", "int8"), ("user_id", "int8"),
             (_code("revises__judgment__verdict", VERDICTS), "int4"),
             (_code("judgment__verdict", VERDICTS), "int4"), ("judgment_id", "int8")],
        )  # fmt: skip
        batches.revisions.append(_in_batch(item_ids, block[1], revised))

        if machine_raters:
            batches.machines.append(
                read_columns(
                    Judgment.objects.filter(
                        rater__in=[r.key for r in machine_raters],
                        rater_kind=RaterKind.MACHINE,
                        id__lte=judgment_cutoff,
                        candidate_id__in=items.filter(id__gte=low, id__lte=high).values(
                            "candidate_id"
                        ),
                    ),
                    [
                        ("candidate_id", "int8"),
                        (rater_code, "int4"),
                        (_code("verdict", VERDICTS), "int4"),
                        ("id", "int8"),
                    ],
                )  # fmt: skip
            )
        read += len(item_ids)
        if progress is not None:
            progress(read)
        if len(item_ids) < batch_size:
            break
    return _ratings_from_batches(batches, machine_raters)


def _in_batch(
    item_ids: np.ndarray, item_candidates: np.ndarray, columns: list[np.ndarray]
) -> list[np.ndarray]:
    """Rows of submissions read by item-id range (first column: the item id), kept when the
    item is one of the batch's (sorted ``item_ids``), with the item id replaced by its
    candidate."""
    item_id, *rest = columns
    at = np.clip(np.searchsorted(item_ids, item_id), 0, len(item_ids) - 1)
    in_scope = item_ids[at] == item_id
    return [a[in_scope] for a in (item_candidates[at], *rest)]


def _concat(batches: list[list[np.ndarray]], n_columns: int) -> list[np.ndarray]:
    if not batches:
        return [np.zeros(0, dtype=np.int64) for _ in range(n_columns)]
    return [np.concatenate([b[i] for b in batches]) for i in range(n_columns)]


def _ratings_from_batches(batches: _Batches, machine_raters: list[Rater]) -> Ratings:
    item_id, item_candidate, item_campaign, item_dataset, item_stratum = _concat(batches.items, 5)
    # Items arrive in id order: the first occurrence of a candidate is its first review item.
    candidates, first = np.unique(item_candidate, return_index=True)

    h_candidate, h_user, h_verdict, h_judgment, h_time, h_blind = _concat(batches.humans, 6)
    user_ids, human_rater = np.unique(h_user, return_inverse=True)
    names = dict(
        get_user_model().objects.filter(pk__in=user_ids.tolist()).values_list("pk", "username")
    )
    raters = [
        Rater(f"user:{names.get(int(u), u)}", str(names.get(int(u), f"user #{u}")), HUMAN)
        for u in user_ids
    ]

    m_candidate, m_rater, m_verdict, m_judgment = _concat(batches.machines, 4)
    # A candidate sampled into two campaigns can fall into two batches: read its machine
    # judgments once.
    _, once = np.unique(m_judgment, return_index=True)
    m_candidate, m_rater, m_verdict, m_judgment = (
        a[once] for a in (m_candidate, m_rater, m_verdict, m_judgment)
    )
    # Only machine raters that judged something in this scope become columns.
    present = np.unique(m_rater[m_rater >= 0])
    remap = np.full(len(machine_raters) + 1, MISSING, dtype=np.int64)
    remap[present] = np.arange(len(raters), len(raters) + len(present))
    raters += [machine_raters[i] for i in present.tolist()]
    m_rater = remap[m_rater]  # MISSING (-1) indexes the last slot, which stays MISSING
    keep = m_rater >= 0

    return Ratings(
        n_items=len(candidates),
        raters=tuple(raters),
        item=np.concatenate(
            [
                np.searchsorted(candidates, h_candidate),
                np.searchsorted(candidates, m_candidate[keep]),
            ]
        ).astype(np.int64),
        rater=np.concatenate([human_rater, m_rater[keep]]).astype(np.int64),
        code=np.concatenate([h_verdict, m_verdict[keep]]).astype(np.int64),
        order=np.concatenate([h_judgment, m_judgment[keep]]).astype(np.int64),
        time=np.concatenate([h_time.astype(np.float64), np.full(int(keep.sum()), np.nan)]),
        slicings=_slicings(item_campaign[first], item_dataset[first], item_stratum[first]),
        blind=np.concatenate([h_blind != 0, np.zeros(int(keep.sum()), dtype=bool)]),
        revisions=_revisions(_concat(batches.revisions, 5), candidates, user_ids),
    )


def _revisions(columns: list[np.ndarray], candidates: np.ndarray, user_ids: np.ndarray):
    """The latest revision per (candidate, annotator), as ``Revisions`` over the report's
    item and rater indices (the annotators are the report's first raters, ``user_ids``)."""
    candidate, user, blind_code, code, judgment = columns
    known = np.isin(user, user_ids)  # always: a revised blind answer is itself counted
    candidate, user, blind_code, code, judgment = (
        a[known] for a in (candidate, user, blind_code, code, judgment)
    )
    item = np.searchsorted(candidates, candidate).astype(np.int64)
    rater = np.searchsorted(user_ids, user).astype(np.int64)
    cell = item * max(len(user_ids), 1) + rater
    by_cell = np.lexsort((judgment, cell))
    last = np.ones(len(by_cell), dtype=bool)
    last[:-1] = cell[by_cell][1:] != cell[by_cell][:-1]
    rows = by_cell[last]
    return Revisions(item=item[rows], rater=rater[rows], blind_code=blind_code[rows],
                     code=code[rows])  # fmt: skip


def _slicings(campaign_of: np.ndarray, dataset_of: np.ndarray, stratum_of: np.ndarray):
    def by_id(dimension: str, ids: np.ndarray, names: dict[int, str]) -> Slicing:
        values, codes = np.unique(ids, return_inverse=True)
        labels = tuple(names.get(int(v), f"#{v}") for v in values)
        return Slicing(dimension, labels, codes.astype(np.int64))

    datasets = dict(
        Dataset.objects.filter(pk__in=np.unique(dataset_of).tolist()).values_list("pk", "name")
    )
    campaigns = {
        pk: f"{name} (#{pk})"
        for pk, name in ReviewCampaign.objects.filter(
            pk__in=np.unique(campaign_of).tolist()
        ).values_list("pk", "name")
    }
    strata = Slicing("stratum", tuple(str(label) for label in Stratum.labels), stratum_of)
    return (
        by_id("dataset", dataset_of, datasets),
        strata,
        by_id("campaign", campaign_of, campaigns),
    )


# --- cached reports ----------------------------------------------------------------------


@dataclass(frozen=True)
class Staleness:
    new_judgments: bool  # a human or machine judgment in scope newer than the cut-off
    undone: bool  # an answer it counted was undone after the report read its data

    @property
    def stale(self) -> bool:
        return self.new_judgments or self.undone


def agreement_report_staleness(*, report: AgreementReport) -> Staleness:
    """Whether the data in ``report``'s scope changed since it was computed. Each check is
    one EXISTS that starts from the judgments after the cut-off (the primary key index) or
    from the scope's submissions."""
    scope = AgreementScope.from_json(report.scope)
    cutoff = report.judgment_cutoff
    new_human = ReviewSubmission.objects.filter(
        _scope_filter(scope, "item__"), judgment_id__gt=cutoff
    ).exists()
    new_machine = (
        not new_human
        and Judgment.objects.filter(
            Q(rater__startswith="llm:") | Q(rater__startswith="teacher:"),
            id__gt=cutoff,
            rater_kind=RaterKind.MACHINE,
            candidate_id__in=scope_items(scope=scope).values("candidate_id"),
        ).exists()
    )
    # Undoing a blind answer or a revision changes no rating the report counts.
    undone = (
        report.started_at is not None
        and ReviewSubmission.objects.filter(
            _scope_filter(scope, "item__"),
            undone_at__gte=report.started_at,
            blind=False,
            revises__isnull=True,
        ).exists()
    )
    return Staleness(new_judgments=new_human or new_machine, undone=undone)


def agreement_report_reusable(*, scope: AgreementScope) -> AgreementReport | None:
    """The newest report of ``scope`` that is still good: queued or running (it will read
    the data when it starts), or succeeded with nothing newer in its scope."""
    candidates = AgreementReport.objects.filter(
        campaign_id=scope.campaign_id,
        status__in=[JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.SUCCEEDED],
    )
    if scope.campaign_id is None:
        candidates = candidates.filter(dataset_id=scope.dataset_id)
    wanted = scope.as_json()
    for report in candidates.order_by("-id")[:20]:
        if report.scope != wanted:
            continue
        if report.status != JobStatus.SUCCEEDED:
            return report
        return None if agreement_report_staleness(report=report).stale else report
    return None


def agreement_report_get(*, report_id: int) -> AgreementReport:
    """Raises ``AgreementReport.DoesNotExist``."""
    return AgreementReport.objects.select_related("campaign", "dataset", "created_by").get(
        pk=report_id
    )


def agreement_report_list_page(
    *,
    campaign_id: int | None = None,
    dataset_id: int | None = None,
    after: int | None = None,
    before: int | None = None,
) -> KeysetPage:
    """Reports newest first, without their (large) result JSON."""
    reports = AgreementReport.objects.select_related("campaign", "dataset", "created_by").defer(
        "result"
    )
    if campaign_id is not None:
        reports = reports.filter(campaign_id=campaign_id)
    if dataset_id is not None:
        reports = reports.filter(dataset_id=dataset_id)
    return keyset_paginate(reports, key="id", after=after, before=before, descending=True)


def agreement_scope_label(*, report: AgreementReport) -> str:
    if report.campaign_id is not None:
        return f"campaign {report.campaign.name}"
    if report.dataset_id is not None:
        return f"dataset {report.dataset.name}"
    return "every campaign"
