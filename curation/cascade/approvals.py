"""Approvals: one cascade run's machine verdicts applied to its whole dataset as decisions.

The mechanism lives here, beside the cascade whose verdicts it copies; the policy (is the
agreement measured on a reviewed sample good enough?) lives in the review app, which owns
the agreement report and calls ``approval_create`` with the gate it evaluated
(``review/approvals/``). Design note: ``approvals.md`` beside this file.

Applying is set-based: per range of candidate ids ONE ``INSERT … SELECT`` picks, for each negative
the run judged, its verdict (the chosen stage's, or the highest stage's for the final
verdict) with the judgment and the LLM call behind it, and writes it as a decision of source
``approval``. The chunk's decisions and the resume cursor commit together, so a worker that
dies resumes after the last committed chunk and writes nothing twice.
"""

from __future__ import annotations

import logging

from django.db import connection, transaction
from django.db.models import Max, Min
from django.utils import timezone

from core.errors import ApplicationError
from core.jobs import JobOutcome, job_enqueue, job_request_cancel, job_run
from core.models import FINISHED_STATUSES, USABLE_STATUSES

from ..models import (
    Approval,
    Candidate,
    CandidateRole,
    CascadeItem,
    CascadeRun,
    Dataset,
    Decision,
    DecisionLabel,
    DecisionSource,
    Judgment,
)
from .create import stages_parse

logger = logging.getLogger(__name__)

# Candidate ids per INSERT … SELECT: a range of the candidate key, so that the judgments are
# read by a range of their (candidate, rater) index instead of a scan of the whole table.
CHUNK_CANDIDATES = 500_000


def approval_stage_raters(*, run: CascadeRun, stage: int | None) -> dict[str, int]:
    """The judgment rater names of ``run`` to read, with their stage: one stage, or all of
    them for the final verdict."""
    stages = stages_parse(run.stages)
    return {s.rater: s.number for s in stages if stage is None or s.number == stage}


def _validate(*, dataset: Dataset, run: CascadeRun, stage: int | None, gate_passed: bool, reason):
    if run.dataset_id != dataset.pk:
        raise ApplicationError(
            f"cascade #{run.pk} judged dataset {run.dataset.name!r}, not {dataset.name!r}",
            detail={"field": "cascade_run"},
        )
    if run.status not in USABLE_STATUSES:
        raise ApplicationError(
            f"cascade #{run.pk} is {run.get_status_display()}: only a cascade that finished "
            "(succeeded, or finished with failures) can be approved",
            detail={"field": "cascade_run"},
        )
    count = len(run.stages)
    if stage is not None and not 1 <= stage <= count:
        raise ApplicationError(
            f"stage must be between 1 and {count} (cascade #{run.pk} has {count}), or empty "
            "for the final verdicts",
            detail={"field": "stage"},
        )
    if not gate_passed and not (reason or "").strip():
        raise ApplicationError(
            "the agreement gate is not met: write the reason for approving anyway (it is "
            "recorded and shown on every snapshot that uses this approval)",
            detail={"field": "reason"},
        )


def approval_create(
    *,
    dataset: Dataset,
    cascade_run: CascadeRun,
    stage: int | None,
    gate: dict,
    gate_passed: bool,
    reason: str = "",
    agreement_report_id: int | None = None,
    user=None,
    enqueue: bool = True,
) -> Approval:
    """Record an approval and (``enqueue``) apply it on a worker once this transaction
    commits. A failing gate needs a ``reason``. The caller (review's approval service)
    evaluated the gate."""
    _validate(dataset=dataset, run=cascade_run, stage=stage, gate_passed=gate_passed, reason=reason)
    with transaction.atomic():
        approval = Approval.objects.create(
            dataset=dataset,
            cascade_run=cascade_run,
            stage=stage,
            agreement_report_id=agreement_report_id,
            gate=gate,
            gate_passed=gate_passed,
            reason=(reason or "").strip(),
            created_by=user if getattr(user, "is_authenticated", False) else None,
        )
        if enqueue:
            job_enqueue(job=approval)
    return approval


def approval_revoke(*, approval: Approval, user=None, reason: str = "") -> Approval:
    """Take an approval out of force: later snapshots leave its verdicts out; earlier
    snapshots never change. An approval still being applied is stopped as well."""
    if approval.revoked_at is not None:
        raise ApplicationError(f"approval #{approval.pk} is already revoked")
    if approval.status not in FINISHED_STATUSES:
        job_request_cancel(job=approval)
    Approval.objects.filter(pk=approval.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now(),
        revoked_by=user if getattr(user, "is_authenticated", False) else None,
        revoke_reason=(reason or "").strip(),
    )
    approval.refresh_from_db()
    return approval


def _candidate_range(*, dataset_id: int) -> tuple[int, int] | None:
    """The lowest and highest candidate id of the dataset (None: it has none)."""
    bounds = Candidate.objects.filter(query__dataset_id=dataset_id).aggregate(
        low=Min("id"), high=Max("id")
    )
    return None if bounds["low"] is None else (bounds["low"], bounds["high"])


def _apply_sql(raters: dict[str, int]) -> tuple[str, list]:
    """The INSERT … SELECT of one chunk and the parameters that precede the chunk's own.
    Portable SQL (window functions: PostgreSQL, SQLite >= 3.25)."""
    quote = connection.ops.quote_name
    tables = {
        name: quote(model._meta.db_table)
        for name, model in (
            ("decision", Decision),
            ("candidate", Candidate),
            ("judgment", Judgment),
            ("item", CascadeItem),
        )
    }
    stage_case = "CASE j.rater " + " ".join("WHEN %s THEN %s" for _ in raters) + " END"
    case_params = [value for rater, number in raters.items() for value in (rater, number)]
    in_raters = ", ".join(["%s"] * len(raters))
    sql = f"""
        INSERT INTO {tables["decision"]}
            (candidate_id, label, source, note, created_by_id, created_at,
             approval_id, judgment_id, llm_call_id)
        SELECT t.candidate_id, t.verdict, %s, '', %s, %s, %s, t.judgment_id, t.call_id
        FROM (
            SELECT j.candidate_id, j.verdict, j.id AS judgment_id, ci.call_id,
                   ROW_NUMBER() OVER (
                       PARTITION BY j.candidate_id ORDER BY {stage_case} DESC, j.id DESC
                   ) AS rn
            FROM {tables["judgment"]} j
            JOIN {tables["candidate"]} c ON c.id = j.candidate_id
            LEFT JOIN {tables["item"]} ci
                   ON ci.run_id = %s AND ci.query_id = c.query_id AND ci.stage = {stage_case}
            WHERE j.candidate_id > %s AND j.candidate_id <= %s
              AND c.id > %s AND c.id <= %s
              AND c.role = %s
              AND j.rater IN ({in_raters}) AND j.source_run = %s
              AND j.verdict IN (%s, %s)
        ) t
        WHERE t.rn = 1
    """
    return sql, case_params


def _apply_chunk(approval: Approval, raters: dict[str, int], *, after: int, upto: int):
    """Write one chunk's decisions, its counts and the resume cursor in one transaction."""
    sql, case_params = _apply_sql(raters)
    params = [
        DecisionSource.APPROVAL.value,
        approval.created_by_id,
        timezone.now(),
        approval.pk,
        *case_params,  # the window's ORDER BY
        approval.cascade_run_id,
        *case_params,  # the item join
        after,
        upto,
        after,
        upto,
        CandidateRole.NEGATIVE.value,
        *raters,
        f"cascade:{approval.cascade_run_id}",
        DecisionLabel.RELEVANT.value,
        DecisionLabel.NOT_RELEVANT.value,
    ]
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                # The window's sort fits in memory instead of spilling to disk; the commit
                # does not wait for the disk (a database crash re-applies the chunk).
                cursor.execute("SET LOCAL work_mem = '256MB'")
                cursor.execute("SET LOCAL synchronous_commit = off")
                cursor.execute("SET LOCAL jit = off")
                cursor.execute(
                    f"WITH written AS ({sql} RETURNING label) SELECT COUNT(*), "
                    f"COUNT(*) FILTER (WHERE label = %s) FROM written",
                    [*params, DecisionLabel.RELEVANT.value],
                )
                decisions, false_negatives = cursor.fetchone()
        else:
            before = Decision.objects.order_by("-id").values_list("id", flat=True).first() or 0
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
            written = Decision.objects.filter(id__gt=before, approval_id=approval.pk)
            decisions = written.count()
            false_negatives = written.filter(label=DecisionLabel.RELEVANT).count()
        stats = {**approval.stats, "applied_through_candidate": upto}
        Approval.objects.filter(pk=approval.pk).update(
            stats=stats,
            decision_count=approval.decision_count + decisions,
            false_negative_count=approval.false_negative_count + false_negatives,
        )
    approval.stats = stats
    approval.decision_count += decisions
    approval.false_negative_count += false_negatives


def approval_execute(*, run_id: int, echo=None) -> None:
    """Worker side: write the approval's decisions chunk by chunk, resuming after the last
    committed chunk when a worker died mid-way."""
    approval = Approval.objects.select_related("cascade_run", "dataset").get(pk=run_id)

    def work(progress) -> JobOutcome:
        if approval.revoked_at is not None:
            raise ApplicationError(f"approval #{approval.pk} was revoked before it was applied")
        raters = approval_stage_raters(run=approval.cascade_run, stage=approval.stage)
        bounds = _candidate_range(dataset_id=approval.dataset_id)
        if bounds is not None:
            low, high = bounds
            after = int(approval.stats.get("applied_through_candidate", low - 1))
            while after < high:
                upto = min(high, after + CHUNK_CANDIDATES)
                _apply_chunk(approval, raters, after=after, upto=upto)
                after = upto
                progress(
                    (after - low + 1) / (high - low + 1),
                    f"{approval.decision_count:,} verdicts applied",
                )
        return JobOutcome(
            stats={
                **approval.stats,
                "decisions": approval.decision_count,
                "false_negatives": approval.false_negative_count,
            },
            message=(
                f"{approval.decision_count:,} machine verdicts applied, "
                f"{approval.false_negative_count:,} of them false negatives"
            ),
        )

    job_run(job=approval, work=work, echo=echo)
