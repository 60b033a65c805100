"""Agreement report pages: the list with the "compute" form, a report (tables and inline SVG
plots; the job's live status while it runs), and its CSV and JSON downloads. Reports are
computed by a job, never inside a request (``review/agreement.md``)."""

from django.contrib import messages
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from core.csv_export import csv_write
from core.errors import ApplicationError
from core.http import query_int
from core.job_pages import job_cancel, job_context, job_status_response
from core.labels import name_label
from core.models import JobStatus
from core.roles import CAN_CURATE, CAN_READ_DATA, has_role, role_required

from ..models import AgreementReport, Stratum
from . import plots
from .forms import AgreementReportForm
from .report import MACHINE, SCHEME_FLAG, SCHEME_VERDICT
from .report_csv import csv_rows
from .selectors import (
    agreement_report_get,
    agreement_report_list_page,
    agreement_report_staleness,
    agreement_scope_label,
)
from .services import agreement_report_create


def _index(request, form, *, status: int = 200):
    campaign_id = query_int(request, "campaign")
    dataset_id = query_int(request, "dataset")
    page = agreement_report_list_page(
        campaign_id=campaign_id,
        dataset_id=dataset_id,
        after=query_int(request, "after"),
        before=query_int(request, "before"),
    )
    for report in page.items:
        report.scope_label = agreement_scope_label(report=report)
    return render(
        request,
        "review/agreement_list.html",
        {"section": "agreement", "page": page, "form": form, "filtered": campaign_id or dataset_id},
        status=status,
    )


@require_GET
@role_required(*CAN_READ_DATA)
def agreement_index(request):
    form = None
    if has_role(request.user, *CAN_CURATE):
        form = AgreementReportForm(
            initial={"campaign": request.GET.get("campaign"), "dataset": request.GET.get("dataset")}
        )
    return _index(request, form)


@require_POST
@role_required(*CAN_CURATE)
def agreement_create(request):
    form = AgreementReportForm(request.POST)
    if not form.is_valid():
        return _index(request, form, status=400)
    try:
        report, created = agreement_report_create(**form.cleaned_data, user=request.user)
    except ApplicationError as exc:
        form.add_error(None, exc.message)
        return _index(request, form, status=400)
    if created:
        messages.success(request, "Computing the agreement report.")
    else:
        messages.info(request, "Nothing changed in this scope since this report: reusing it.")
    return redirect("review:agreement_detail", pk=report.pk)


def _status_context(report: AgreementReport) -> dict:
    return {
        "status_url": reverse("review:agreement_detail", args=[report.pk]),
        "cancel_url": reverse("review:agreement_cancel", args=[report.pk]),
        "result_url": reverse("review:agreement_detail", args=[report.pk]),
        "result_label": "Show the report",
    }


SLICE_TITLES = (
    ("stratum", "By stratum"),
    ("campaign", "By campaign"),
    ("dataset", "By dataset"),
    ("week", "By week (of the latest human verdict on each item)"),
)


def _labels(result: dict) -> dict[str, str]:
    """Each rater as pages name it today: a report keeps the labels of the day it was
    computed, so a machine's stored name is read again (``llm:gpt-4o-mini:stage1`` →
    ``gpt-4o-mini · stage 1``, where reports before 2026-12-05 stored ``stage 1 ·
    gpt-4o-mini``)."""
    return {
        rater["key"]: name_label(rater["key"]) if rater.get("kind") == MACHINE else rater["label"]
        for rater in result.get("raters", [])
    }


# Stratum labels renamed since reports stored them (review/migrations/0006: the stratum samples
# imported hard negatives too): older reports read as newer ones.
_RENAMED_STRATA = {"unflagged mined negatives": Stratum.UNFLAGGED.label}


def _slice_rows(dimension: str, rows: list[dict]) -> list[dict]:
    if dimension != "stratum":
        return rows
    return [{**row, "value": _RENAMED_STRATA.get(row["value"], row["value"])} for row in rows]


def _figures(result: dict, labels: dict[str, str]) -> dict:
    machines = result.get("machines", [])
    categories = result.get("categories", {})
    heatmaps = [
        plots.confusion_heatmap(
            row["confusion"],
            rows_label=labels.get(row["rater"], row["rater"]),
            columns_label="human majority",
            categories=categories.get(SCHEME_FLAG, []),
        )
        for row in machines
    ]
    heatmaps += [
        plots.confusion_heatmap(
            pair["confusion"],
            rows_label=labels.get(pair["rater_a"], pair["rater_a"]),
            columns_label=labels.get(pair["rater_b"], pair["rater_b"]),
            categories=categories.get(SCHEME_VERDICT, []),
        )
        # The six human pairs that judged the most items in common.
        for pair in sorted(result.get("human_pairs", []), key=lambda p: -p["n"])[:6]
    ]
    return {
        "kappa": plots.kappa_per_stage(machines, labels) if machines else None,
        "heatmaps": heatmaps,
        "over_time": plots.kappa_over_time(result.get("slices", {}).get("week", []), labels)
        if machines
        else None,
    }


@require_GET
@role_required(*CAN_READ_DATA)
def agreement_detail(request, pk: int):
    try:
        report = agreement_report_get(report_id=pk)
    except AgreementReport.DoesNotExist:
        raise Http404("no such agreement report") from None
    if request.htmx and not request.htmx.history_restore_request:
        return job_status_response(request, report, context=_status_context(report))
    context = job_context(
        request,
        report,
        {
            "section": "agreement",
            "report": report,
            "scope_label": agreement_scope_label(report=report),
            **_status_context(report),
        },
    )
    if report.status == JobStatus.SUCCEEDED:
        result = report.result
        labels = _labels(result)
        context.update(
            result=result,
            labels=labels,
            staleness=agreement_report_staleness(report=report),
            figures=_figures(result, labels),
            # Reports computed before blind answers were told apart have no "revisions".
            show_revisions=any(
                row["blind_answers"] or row["revised"] for row in result.get("revisions", [])
            ),
            # A fixed order: the stored JSON (jsonb) does not keep the order of its keys.
            slice_sections=[
                (
                    dimension,
                    title,
                    _slice_rows(dimension, result.get("slices", {}).get(dimension, [])),
                )
                for dimension, title in SLICE_TITLES
            ],
        )
    return render(request, "review/agreement_report.html", context)


@require_POST
@role_required(*CAN_CURATE)
def agreement_recompute(request, pk: int):
    """Compute the report's scope again now, whatever the cache says."""
    report = get_object_or_404(AgreementReport.objects.select_related("campaign", "dataset"), pk=pk)
    fresh, _ = agreement_report_create(
        campaign=report.campaign,
        dataset=report.dataset if report.campaign_id is None else None,
        partly_relevant_is_false_negative=bool(
            report.scope.get("partly_relevant_is_false_negative")
        ),
        force=True,
        user=request.user,
    )
    messages.success(request, "Computing the agreement report again.")
    return redirect("review:agreement_detail", pk=fresh.pk)


@require_POST
@role_required(*CAN_CURATE)
def agreement_cancel(request, pk: int):
    return job_cancel(request, get_object_or_404(AgreementReport, pk=pk), context=_status_context)


def _finished_report(pk: int) -> AgreementReport:
    report = get_object_or_404(AgreementReport, pk=pk)
    if report.status != JobStatus.SUCCEEDED:
        raise Http404("this report has no result yet")
    return report


@require_GET
@role_required(*CAN_READ_DATA)
def agreement_csv(request, pk: int):
    report = _finished_report(pk)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="agreement-{report.pk}.csv"'
    csv_write(response, csv_rows(report.result))
    return response


@require_GET
@role_required(*CAN_READ_DATA)
def agreement_json(request, pk: int):
    report = _finished_report(pk)
    body = {
        "id": report.pk,
        "scope": report.scope,
        "judgment_cutoff": report.judgment_cutoff,
        "computed_at": report.finished_at.isoformat() if report.finished_at else None,
        "result": report.result,
    }
    response = JsonResponse(body, json_dumps_params={"indent": 2, "allow_nan": False})
    response["Content-Disposition"] = f'attachment; filename="agreement-{report.pk}.json"'
    return response
