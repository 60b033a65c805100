"""Mining and synthesis pages: the launch forms and the live run pages.

Curators launch and cancel; viewers read. Run pages follow the job page pattern of
``core/job_pages.py``.
"""

from django.contrib import messages
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from core.errors import ApplicationError
from core.job_pages import job_cancel, job_page
from core.roles import CAN_CURATE, CAN_READ_DATA, role_required

from . import selectors_mining as mining_reads
from .datasets import selectors as reads
from .forms_mining import MiningLaunchForm, SynthesisLaunchForm
from .models import Dataset, MiningRun, SynthesisRun
from .services.mining import mining_run_create
from .services.synthesis import synthesis_run_create


def _dataset(pk: int) -> Dataset:
    try:
        return reads.dataset_get(dataset_id=pk)
    except Dataset.DoesNotExist:
        raise Http404("no such dataset") from None


def _form_error(form, error: ApplicationError) -> None:
    field = error.detail.get("field")
    form.add_error(field if field in form.fields else None, error.message)


# --- mining ----------------------------------------------------------------------------------


def _mining_form_page(request, dataset, form, *, status=200):
    return render(
        request,
        "curation/mining_new.html",
        {
            "section": "datasets",
            "dataset": dataset,
            "form": form,
            "runs": mining_reads.dataset_mining_runs(dataset=dataset),
        },
        status=status,
    )


@require_GET
@role_required(*CAN_CURATE)
def mining_new(request, pk: int):
    return _mining_form_page(request, _dataset(pk), MiningLaunchForm())


@require_POST
@role_required(*CAN_CURATE)
def mining_launch(request, pk: int):
    dataset = _dataset(pk)
    form = MiningLaunchForm(request.POST)
    if not form.is_valid():
        return _mining_form_page(request, dataset, form, status=400)
    try:
        run = mining_run_create(dataset=dataset, user=request.user, **form.service_options())
    except ApplicationError as error:
        _form_error(form, error)
        return _mining_form_page(request, dataset, form, status=400)
    messages.success(request, f"Mining run #{run.pk} on {dataset.name} is queued.")
    return redirect("curation:mining_run_detail", pk=run.pk)


def _mining_context(run: MiningRun) -> dict:
    return {
        "section": "datasets",
        "run": run,
        "status_url": reverse("curation:mining_run_detail", args=[run.pk]),
        "cancel_url": reverse("curation:mining_run_cancel", args=[run.pk]),
        "result_url": reverse("curation:dataset_detail", args=[run.dataset_id]),
        "result_label": "Open the dataset",
    }


def _mining_run(pk: int) -> MiningRun:
    try:
        return mining_reads.mining_run_get(run_id=pk)
    except MiningRun.DoesNotExist:
        raise Http404("no such mining run") from None


@require_GET
@role_required(*CAN_READ_DATA)
def mining_run_detail(request, pk: int):
    run = _mining_run(pk)
    return job_page(request, run, template="curation/mining_run.html", context=_mining_context(run))


@require_POST
@role_required(*CAN_CURATE)
def mining_run_cancel(request, pk: int):
    def reload():
        run = _mining_run(pk)
        return run, _mining_context(run)

    return job_cancel(
        request,
        get_object_or_404(MiningRun, pk=pk),
        reload=reload,
        page_url=reverse("curation:mining_run_detail", args=[pk]),
    )


# --- synthesis -------------------------------------------------------------------------------


def _synthesis_form_page(request, dataset, form, *, status=200):
    return render(
        request,
        "curation/synthesis_new.html",
        {
            "section": "datasets",
            "dataset": dataset,
            "form": form,
            "runs": mining_reads.dataset_synthesis_runs(dataset=dataset),
        },
        status=status,
    )


@require_GET
@role_required(*CAN_CURATE)
def synthesis_new(request, pk: int):
    return _synthesis_form_page(request, _dataset(pk), SynthesisLaunchForm())


@require_POST
@role_required(*CAN_CURATE)
def synthesis_launch(request, pk: int):
    dataset = _dataset(pk)
    form = SynthesisLaunchForm(request.POST)
    if not form.is_valid():
        return _synthesis_form_page(request, dataset, form, status=400)
    data = form.cleaned_data
    try:
        run = synthesis_run_create(
            dataset=dataset,
            sample_size=data["sample_size"],
            seed=data["seed"],
            generator=form.generator(),
            negative_mode=data["negative_mode"],
            teacher_model=data["teacher_model"],
            top_k=data["top_k"],
            negative_max_ratio=data["negative_max_ratio"],
            budget_usd=data.get("budget_usd"),
            user=request.user,
        )
    except ApplicationError as error:
        _form_error(form, error)
        return _synthesis_form_page(request, dataset, form, status=400)
    messages.success(request, f"Synthesis run #{run.pk} on {dataset.name} is queued.")
    return redirect("curation:synthesis_run_detail", pk=run.pk)


def _synthesis_context(run: SynthesisRun) -> dict:
    return {
        "section": "datasets",
        "run": run,
        "status_url": reverse("curation:synthesis_run_detail", args=[run.pk]),
        "cancel_url": reverse("curation:synthesis_run_cancel", args=[run.pk]),
        "result_url": reverse("curation:dataset_detail", args=[run.dataset_id]),
        "result_label": "Open the dataset",
    }


def _synthesis_run(pk: int) -> SynthesisRun:
    try:
        return mining_reads.synthesis_run_get(run_id=pk)
    except SynthesisRun.DoesNotExist:
        raise Http404("no such synthesis run") from None


@require_GET
@role_required(*CAN_READ_DATA)
def synthesis_run_detail(request, pk: int):
    run = _synthesis_run(pk)
    return job_page(
        request, run, template="curation/synthesis_run.html", context=_synthesis_context(run)
    )


@require_POST
@role_required(*CAN_CURATE)
def synthesis_run_cancel(request, pk: int):
    def reload():
        run = _synthesis_run(pk)
        return run, _synthesis_context(run)

    return job_cancel(
        request,
        get_object_or_404(SynthesisRun, pk=pk),
        reload=reload,
        page_url=reverse("curation:synthesis_run_detail", args=[pk]),
    )
