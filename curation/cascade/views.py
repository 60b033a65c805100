"""Cascade pages: the launch form with its dry-run estimate, and the live run page.

Curators launch and cancel; viewers read. The run page follows the job page pattern of
``core/job_pages.py``.
"""

from django.contrib import messages
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from core.errors import ApplicationError
from core.http import form_error_add
from core.job_pages import job_cancel, job_page
from core.roles import CAN_CURATE, CAN_READ_DATA, role_required

from ..datasets.views import dataset_or_404
from ..llm.preflight import stages_preflight_on_workers
from ..models import CascadeRun
from . import selectors as reads
from .create import TAG_MEANINGS, cascade_estimate, cascade_run_create
from .forms import CascadeLaunchForm
from .retry import cascade_run_retry, cascade_run_retryable

# The web estimate counts tokens on at most this many queries (spread over the dataset) so
# that the request stays short; `manage.py run_cascade --estimate-only` counts them all.
WEB_ESTIMATE_SAMPLE = 2000


def _form_page(request, dataset, form, *, estimate=None, preflight=None, status=200):
    return render(
        request,
        "curation/cascade_new.html",
        {
            "section": "datasets",
            "dataset": dataset,
            "form": form,
            "estimate": estimate,
            "preflight": preflight,
            "runs": reads.dataset_cascade_runs(dataset=dataset),
        },
        status=status,
    )


def _estimate(dataset, form) -> dict:
    data = form.cleaned_data
    return cascade_estimate(
        dataset=dataset,
        stages=form.stages(),
        max_negatives=data["max_negatives"],
        max_positives=data["max_positives"],
        mode=data["mode"],
        output_tokens_per_call=data["output_tokens_per_call"],
        flag_rate=data["flag_rate"],
        sample_limit=WEB_ESTIMATE_SAMPLE,
    )


@require_GET
@role_required(*CAN_CURATE)
def cascade_new(request, pk: int):
    dataset = dataset_or_404(pk)
    return _form_page(request, dataset, CascadeLaunchForm())


@require_POST
@role_required(*CAN_CURATE)
def cascade_estimate_view(request, pk: int):
    dataset = dataset_or_404(pk)
    form = CascadeLaunchForm(request.POST)
    if not form.is_valid():
        return _form_page(request, dataset, form, status=400)
    return _form_page(request, dataset, form, estimate=_estimate(dataset, form))


@require_POST
@role_required(*CAN_CURATE)
def cascade_preflight(request, pk: int):
    """Test connection: a worker of the llm queue checks each stage (key, endpoint, model)."""
    dataset = dataset_or_404(pk)
    form = CascadeLaunchForm(request.POST)
    if not form.is_valid():
        return _form_page(request, dataset, form, status=400)
    preflight = stages_preflight_on_workers(form.stages())
    preflight["all_ok"] = preflight["answered"] and all(s["ok"] for s in preflight["stages"])
    return _form_page(request, dataset, form, preflight=preflight)


@require_POST
@role_required(*CAN_CURATE)
def cascade_launch(request, pk: int):
    dataset = dataset_or_404(pk)
    form = CascadeLaunchForm(request.POST)
    if not form.is_valid():
        return _form_page(request, dataset, form, status=400)
    data = form.cleaned_data
    try:
        run = cascade_run_create(
            dataset=dataset,
            stages=form.stages(),
            mode=data["mode"],
            forward_tags=data["forward_tags"],
            false_negative_tags=data["false_negative_tags"],
            max_negatives=data["max_negatives"],
            max_positives=data["max_positives"],
            budget_usd=data["budget_usd"],
            estimate=_estimate(dataset, form),
            user=request.user,
        )
    except ApplicationError as exc:
        form_error_add(form, exc)
        return _form_page(request, dataset, form, status=400)
    messages.success(request, f"Cascade #{run.pk} on {dataset.name} is queued.")
    return redirect("curation:cascade_run_detail", pk=run.pk)


def _run_context(run: CascadeRun) -> dict:
    return {
        "section": "datasets",
        "run": run,
        "stage_rows": reads.cascade_run_stage_rows(run=run),
        "status_url": reverse("curation:cascade_run_detail", args=[run.pk]),
        "cancel_url": reverse("curation:cascade_run_cancel", args=[run.pk]),
        "details": "curation/_cascade_details.html",
        "hide_stats": True,  # the stage table shows them
        "retryable": cascade_run_retryable(run=run),
        "tag_meanings": TAG_MEANINGS,
    }


def _run(pk: int) -> CascadeRun:
    try:
        return reads.cascade_run_get(run_id=pk)
    except CascadeRun.DoesNotExist:
        raise Http404("no such cascade run") from None


@require_GET
@role_required(*CAN_READ_DATA)
def cascade_run_detail(request, pk: int):
    run = _run(pk)
    return job_page(request, run, template="curation/cascade_run.html", context=_run_context(run))


@require_POST
@role_required(*CAN_CURATE)
def cascade_run_cancel(request, pk: int):
    return job_cancel(request, get_object_or_404(CascadeRun, pk=pk), context=_run_context)


@require_POST
@role_required(*CAN_CURATE)
def cascade_run_retry_view(request, pk: int):
    """Retry the failed (and pending) items of an ended run; with a larger budget, also the
    items the budget skipped."""
    run = get_object_or_404(CascadeRun, pk=pk)
    try:
        cascade_run_retry(run=run, budget_usd=request.POST.get("budget_usd"))
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"Cascade #{run.pk} queued again for what it left undone.")
    return redirect("curation:cascade_run_detail", pk=run.pk)
