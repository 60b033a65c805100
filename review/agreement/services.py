"""Agreement reports: requested by a curator (page or API), computed by a job on the
``default`` queue, cached on the ``AgreementReport`` row and reused while nothing in its scope
changed. The flow and the choices behind it are in ``review/agreement.md``."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from django.db import transaction

from core.errors import ApplicationError
from core.jobs import JobOutcome, job_enqueue, job_run
from curation.models import Dataset

from ..models import AgreementReport, ReviewCampaign
from .report import ReportOptions, agreement_report
from .selectors import (
    AgreementScope,
    agreement_ratings_fetch,
    agreement_report_reusable,
    judgment_cutoff_now,
    scope_items,
)

logger = logging.getLogger(__name__)

# Share of the progress bar given to reading the data; the statistics take the rest.
_FETCH_SHARE = 0.8


def agreement_scope_build(
    *,
    campaign: ReviewCampaign | None = None,
    dataset: Dataset | None = None,
    partly_relevant_is_false_negative: bool = False,
) -> AgreementScope:
    if campaign is not None and dataset is not None and campaign.dataset_id != dataset.pk:
        raise ApplicationError(
            f"campaign {campaign.name!r} is not a campaign of dataset {dataset.name!r}",
            detail={"field": "campaign"},
        )
    return AgreementScope(
        campaign_id=campaign.pk if campaign is not None else None,
        # A campaign scope is narrower than its dataset: the dataset is implied, not a filter.
        dataset_id=dataset.pk if dataset is not None and campaign is None else None,
        partly_relevant_is_false_negative=partly_relevant_is_false_negative,
    )


def agreement_report_create(
    *,
    campaign: ReviewCampaign | None = None,
    dataset: Dataset | None = None,
    partly_relevant_is_false_negative: bool = False,
    force: bool = False,
    user=None,
) -> tuple[AgreementReport, bool]:
    """The report for this scope: an existing one that is still good (queued, running, or
    done with no newer judgment in scope), else a new job. ``force`` always starts a new one.
    Returns ``(report, created)``."""
    scope = agreement_scope_build(
        campaign=campaign,
        dataset=dataset,
        partly_relevant_is_false_negative=partly_relevant_is_false_negative,
    )
    if not force:
        existing = agreement_report_reusable(scope=scope)
        if existing is not None:
            return existing, False
    with transaction.atomic():
        report = AgreementReport.objects.create(
            campaign=campaign,
            dataset=campaign.dataset if campaign is not None else dataset,
            scope=scope.as_json(),
            created_by=user if getattr(user, "is_authenticated", False) else None,
        )
        job_enqueue(job=report)
    return report, True


def agreement_report_compute(
    *, scope: AgreementScope, progress: Callable[..., None] | None = None
) -> tuple[dict, int, dict]:
    """Read the scope's ratings up to the current last judgment and compute the report.
    Returns ``(result JSON, judgment cut-off, stats with the time of each phase)``."""
    started = time.perf_counter()
    cutoff = judgment_cutoff_now()
    total_items = scope_items(scope=scope).count() if progress is not None else 0

    def fetched(read: int) -> None:
        if progress is not None:
            progress(_FETCH_SHARE * read / max(total_items, read, 1), f"{read:,} items read")

    ratings = agreement_ratings_fetch(scope=scope, judgment_cutoff=cutoff, progress=fetched)
    fetch_s = time.perf_counter() - started
    if progress is not None:
        progress(_FETCH_SHARE, "computing statistics", force=True)
    data = agreement_report(
        ratings,
        ReportOptions(
            partly_relevant_is_false_negative=scope.partly_relevant_is_false_negative,
            n_boot=scope.n_boot,
            seed=scope.seed,
        ),
    )
    result = data.to_json()
    stats = {
        "n_items": data.items,
        "human_items": data.human_items,
        "human_ratings": data.human_ratings,
        "raters": len(data.raters),
        "judgment_cutoff": cutoff,
        "fetch_s": round(fetch_s, 3),
        "stats_s": round(data.timings["stats_s"], 3),
        "bootstrap_s": round(data.timings["bootstrap_s"], 3),
        "total_s": round(time.perf_counter() - started, 3),
    }
    return result, cutoff, stats


def agreement_report_run(*, report_id: int) -> None:
    """Worker side of a report job. A redelivered task for a finished report does nothing;
    one whose worker died simply computes again (the report only reads)."""
    report = AgreementReport.objects.filter(pk=report_id).first()
    if report is None:  # deleted with its campaign or dataset before the worker got to it
        logger.info("agreement report #%s no longer exists", report_id)
        return

    def work(progress) -> JobOutcome:
        result, cutoff, stats = agreement_report_compute(
            scope=AgreementScope.from_json(report.scope), progress=progress
        )
        AgreementReport.objects.filter(pk=report.pk).update(result=result, judgment_cutoff=cutoff)
        report.result, report.judgment_cutoff = result, cutoff
        return JobOutcome(stats=stats, message=f"{stats['n_items']:,} items")

    job_run(job=report, work=work)
