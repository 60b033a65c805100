"""Synthesis pages: the launch form and the live run page.

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
from core.job_pages import StatsLayout, job_cancel, job_page
from core.roles import CAN_CURATE, CAN_READ_DATA, role_required

from ..datasets.views import dataset_or_404
from ..llm.preflight import stages_preflight_on_workers
from ..models import SynthesisRun
from . import selectors as reads
from .forms import SynthesisLaunchForm
from .retry import synthesis_run_retry, synthesis_run_retryable
from .services import synthesis_generator_stage, synthesis_run_create


def _synthesis_form_page(request, dataset, form, *, preflight=None, status=200):
    return render(
        request,
        "curation/synthesis_new.html",
        {
            "section": "datasets",
            "dataset": dataset,
            "form": form,
            "preflight": preflight,
            "runs": reads.dataset_synthesis_runs(dataset=dataset),
        },
        status=status,
    )


@require_GET
@role_required(*CAN_CURATE)
def synthesis_new(request, pk: int):
    return _synthesis_form_page(request, dataset_or_404(pk), SynthesisLaunchForm())


@require_POST
@role_required(*CAN_CURATE)
def synthesis_preflight(request, pk: int):
    """Test connection: a worker of the llm queue checks the generator (key, endpoint, model)
    with one tiny request, as the cascade form does for its stages."""
    dataset = dataset_or_404(pk)
    form = SynthesisLaunchForm(request.POST)
    if not form.is_valid():
        return _synthesis_form_page(request, dataset, form, status=400)
    try:
        stage = synthesis_generator_stage(form.generator())
    except ApplicationError as error:
        form_error_add(form, error)
        return _synthesis_form_page(request, dataset, form, status=400)
    preflight = stages_preflight_on_workers([stage])
    for check in preflight["stages"]:
        check["stage"] = "generator"
    preflight["all_ok"] = preflight["answered"] and all(s["ok"] for s in preflight["stages"])
    return _synthesis_form_page(request, dataset, form, preflight=preflight)


@require_POST
@role_required(*CAN_CURATE)
def synthesis_launch(request, pk: int):
    dataset = dataset_or_404(pk)
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
        form_error_add(form, error)
        return _synthesis_form_page(request, dataset, form, status=400)
    messages.success(request, f"Synthesis run #{run.pk} on {dataset.name} is queued.")
    return redirect("curation:synthesis_run_detail", pk=run.pk)


# What was kept and added first, then what was dropped and why, then the calls and their
# cost; the teacher's identity and the cache key are for engineers (the API keeps them).
SYNTHESIS_STATS = StatsLayout(
    shown=(
        ("triplets_kept", "Triplets kept"),
        ("queries_added", "Queries added"),
        ("passages_added", "Passages added"),
        ("passages_sampled", "Passages sampled"),
        ("queries_generated", "Queries generated"),
        ("negatives_generated", "Negatives generated"),
        ("negatives_mined", "Negatives mined"),
        ("dropped_positive_not_in_top_k", "Dropped: positive not in the teacher's top k"),
        ("dropped_negative_too_close", "Dropped: negative too close to the positive"),
        ("dropped_no_negative_found", "Dropped: no negative found"),
        ("unusable_answers", "Unusable answers"),
        ("recovered_on_retry", "Recovered on retry"),
        ("budget_reached", "Budget reached"),
        ("passages_not_reached", "Passages not reached"),
        ("paid_calls", "Paid calls"),
        ("cached_calls", "Cached calls"),
        ("failed_calls", "Failed calls"),
        ("failure_reasons", "Failure reasons"),
        ("input_tokens", "Input tokens"),
        ("output_tokens", "Output tokens"),
        ("cost_usd", "Cost"),
    ),
    hidden=frozenset({"teacher", "embedding_cache"}),
)


def _synthesis_context(run: SynthesisRun) -> dict:
    return {
        "section": "datasets",
        "run": run,
        "status_url": reverse("curation:synthesis_run_detail", args=[run.pk]),
        "cancel_url": reverse("curation:synthesis_run_cancel", args=[run.pk]),
        "result_url": reverse("curation:dataset_detail", args=[run.dataset_id]),
        "result_label": "Open the dataset",
        "retryable": synthesis_run_retryable(run=run),
        "stats_layout": SYNTHESIS_STATS,
    }


def _synthesis_run(pk: int) -> SynthesisRun:
    try:
        return reads.synthesis_run_get(run_id=pk)
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
    return job_cancel(request, get_object_or_404(SynthesisRun, pk=pk), context=_synthesis_context)


@require_POST
@role_required(*CAN_CURATE)
def synthesis_run_retry_view(request, pk: int):
    """Finish what an ended run left: its failed calls and, with a larger budget, the
    passages the budget left out. Paid answers come from the ledger."""
    run = get_object_or_404(SynthesisRun, pk=pk)
    try:
        synthesis_run_retry(run=run, budget_usd=request.POST.get("budget_usd"))
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"Synthesis run #{run.pk} is queued again.")
    return redirect("curation:synthesis_run_detail", pk=run.pk)
