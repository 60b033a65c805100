"""Retrying what a finished cascade run left undone: items whose calls kept failing (a
missing key, an endpoint down), items still pending (the run failed or was cancelled), and
with a larger budget the items skipped when the budget ran out. The same run goes on: answers
already in the ledger are used again, nothing judged is asked again, and later stages take
in whatever the retried items now forward."""

from __future__ import annotations

from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from core.errors import ApplicationError
from core.jobs import job_reopen
from core.models import FINISHED_STATUSES

from ..llm.ledger import retry_budget_parse
from ..models import CascadeItem, CascadeItemStatus, CascadeRun


def cascade_run_retryable(*, run: CascadeRun) -> dict[str, int]:
    """How many items a retry would take up again, by status: failed, pending, skipped (by
    the budget). Empty while the run has not ended."""
    if run.status not in FINISHED_STATUSES:
        return {}
    rows = (
        CascadeItem.objects.filter(
            run=run,
            status__in=[
                CascadeItemStatus.FAILED,
                CascadeItemStatus.PENDING,
                CascadeItemStatus.SKIPPED,
            ],
        )
        .values("status")
        .annotate(n=Count("id"))
        .order_by()
    )
    return {row["status"]: row["n"] for row in rows}


def cascade_run_retry(*, run: CascadeRun, budget_usd=None) -> CascadeRun:
    """Take up the run's failed and pending items again (and, when ``budget_usd`` raises the
    budget or the run had none, the items the budget skipped) and queue the run."""
    budget = retry_budget_parse(budget_usd)
    if run.status not in FINISHED_STATUSES:
        raise ApplicationError(f"cascade #{run.pk} is still {run.status}: nothing to retry yet")
    raise_budget = run.stats.get("budget_reached") and (
        budget is not None and (run.budget_usd is None or budget > run.budget_usd)
    )
    statuses = [CascadeItemStatus.FAILED]
    if raise_budget:
        statuses.append(CascadeItemStatus.SKIPPED)
    with transaction.atomic():
        retried = (
            CascadeItem.objects.filter(run=run)
            .filter(Q(status__in=statuses) | Q(status=CascadeItemStatus.PENDING))
            .update(status=CascadeItemStatus.PENDING, error="", updated_at=timezone.now())
        )
        if not retried:
            skipped = CascadeItem.objects.filter(run=run, status=CascadeItemStatus.SKIPPED)
            hint = (
                f" ({skipped.count():,} skipped by the budget: give a larger budget)"
                if skipped.exists()
                else ""
            )
            raise ApplicationError(
                f"cascade #{run.pk} has no failed or pending item to retry{hint}",
                detail={"field": "budget_usd"} if hint else {},
            )
        changes = {}
        if raise_budget:
            stats = {**run.stats, "budget_reached": False}
            stats.pop("resume", None)
            changes = {"budget_usd": budget, "stats": stats}
        job_reopen(job=run, changes=changes)
    run.refresh_from_db()
    return run
