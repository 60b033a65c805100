"""Retrying what a finished synthesis run left undone: calls that kept failing (a missing key,
an endpoint down), a run that failed or was cancelled part-way, and, with a larger budget,
the passages the budget left out.

The same run goes on from the start of its seeded sample: every answer already in the call
ledger is read back (never paid twice), so only the calls that failed or were never made
reach the endpoint, and the writes skip the triplets that exist (``triplets.py``)."""

from __future__ import annotations

from core.errors import ApplicationError
from core.jobs import job_reopen
from core.models import FINISHED_STATUSES, JobStatus

from ..llm.ledger import retry_budget_parse
from ..models import SynthesisRun


def synthesis_run_retryable(*, run: SynthesisRun) -> dict[str, int]:
    """What a retry would take up: ``failed_calls`` (calls that failed for good),
    ``unfinished`` (1 when the run failed or was cancelled before its end) and
    ``passages_not_reached`` (left out by the budget). Empty while the run runs, or when
    it ended with nothing left to do."""
    if run.status not in FINISHED_STATUSES:
        return {}
    stats = run.stats or {}
    found = {
        "failed_calls": int(stats.get("failed_calls") or 0),
        "unfinished": int(run.status in (JobStatus.FAILED, JobStatus.CANCELLED)),
        "passages_not_reached": int(stats.get("passages_not_reached") or 0)
        if stats.get("budget_reached")
        else 0,
    }
    return {name: n for name, n in found.items() if n}


def synthesis_run_retry(*, run: SynthesisRun, budget_usd=None) -> SynthesisRun:
    """Queue the run again to finish what it left; ``budget_usd`` (larger than the old one)
    lets it go past the point where the budget stopped it."""
    budget = retry_budget_parse(budget_usd)
    if run.status not in FINISHED_STATUSES:
        raise ApplicationError(f"synthesis #{run.pk} is still {run.status}: nothing to retry yet")
    left = synthesis_run_retryable(run=run)
    raises_budget = budget is not None and (run.budget_usd is None or budget > run.budget_usd)
    if not left:
        raise ApplicationError(f"synthesis #{run.pk} has nothing left to retry")
    if set(left) == {"passages_not_reached"} and not raises_budget:
        raise ApplicationError(
            f"synthesis #{run.pk} stopped at its budget (${run.budget_usd:.4f}) with "
            f"{left['passages_not_reached']:,} passages not reached: give a larger budget",
            detail={"field": "budget_usd"},
        )
    changes = {"budget_usd": budget} if raises_budget else {}
    job_reopen(job=run, changes=changes)
    run.refresh_from_db()
    return run
