"""Approvals, the review side: evaluate the agreement gate on a report and record the
approval. The decisions themselves are written by curation (``curation/cascade/approvals.py``),
which owns the cascade's verdicts and the snapshots that read them."""

from __future__ import annotations

from core.errors import ApplicationError
from core.models import JobStatus
from curation.cascade.approvals import approval_create, approval_stage_raters
from curation.models import Approval, CascadeRun

from ..agreement.report import PAPER_REFERENCE
from ..models import AgreementReport
from .gate import GateResult, GateSettings, gate_evaluate, rater_key


def _report_check(*, report: AgreementReport, run: CascadeRun) -> None:
    if report.status != JobStatus.SUCCEEDED:
        raise ApplicationError(
            f"agreement report #{report.pk} is {report.get_status_display()}: choose one "
            "that was computed",
            detail={"field": "report"},
        )
    campaign = report.campaign
    if campaign is None or campaign.cascade_run_id != run.pk:
        raise ApplicationError(
            f"agreement report #{report.pk} is not the report of a review campaign sampled "
            f"from cascade #{run.pk}: the gate must measure the verdicts it approves",
            detail={"field": "report"},
        )


def approval_gate(
    *,
    cascade_run: CascadeRun,
    stage: int | None,
    report: AgreementReport | None,
    settings: GateSettings | None = None,
) -> GateResult:
    """The gate for approving ``cascade_run``'s verdicts (``stage``, or the final ones),
    measured on ``report`` (None: nothing measured, so the gate fails)."""
    settings = settings or GateSettings()
    if report is not None:
        _report_check(report=report, run=cascade_run)
    count = len(cascade_run.stages)
    if stage is not None and not 1 <= stage <= count:
        raise ApplicationError(
            f"stage must be between 1 and {count}, or empty for the final verdicts",
            detail={"field": "stage"},
        )
    stage_raters = {
        number: rater
        for rater, number in approval_stage_raters(run=cascade_run, stage=None).items()
    }
    machines = report.result.get("machines", []) if report is not None else None
    return gate_evaluate(
        machines=machines,
        rater=rater_key(stage=stage, stage_raters=stage_raters),
        settings=settings,
    )


def approval_submit(
    *,
    cascade_run: CascadeRun,
    stage: int | None = None,
    report: AgreementReport | None = None,
    settings: GateSettings | None = None,
    reason: str = "",
    user=None,
    enqueue: bool = True,
) -> Approval:
    """Approve ``cascade_run``'s verdicts for its whole dataset. A failing gate is refused
    unless ``reason`` says why the curator approves anyway; gate, figures and reason are
    frozen on the approval."""
    gate = approval_gate(cascade_run=cascade_run, stage=stage, report=report, settings=settings)
    frozen = {**gate.to_json(), "report": report.pk if report else None, "paper": PAPER_REFERENCE}
    return approval_create(
        dataset=cascade_run.dataset,
        cascade_run=cascade_run,
        stage=stage,
        gate=frozen,
        gate_passed=gate.passed,
        reason=reason,
        agreement_report_id=report.pk if report else None,
        user=user,
        enqueue=enqueue,
    )
