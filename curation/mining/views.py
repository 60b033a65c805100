"""Mining pages: the launch form and the live run page.

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
from ..models import MiningRun
from . import selectors as reads
from .forms import MiningLaunchForm
from .services import mining_run_create


def _mining_form_page(request, dataset, form, *, status=200):
    return render(
        request,
        "curation/mining_new.html",
        {
            "section": "datasets",
            "dataset": dataset,
            "form": form,
            "runs": reads.dataset_mining_runs(dataset=dataset),
        },
        status=status,
    )


@require_GET
@role_required(*CAN_CURATE)
def mining_new(request, pk: int):
    return _mining_form_page(request, dataset_or_404(pk), MiningLaunchForm())


@require_POST
@role_required(*CAN_CURATE)
def mining_launch(request, pk: int):
    dataset = dataset_or_404(pk)
    form = MiningLaunchForm(request.POST)
    if not form.is_valid():
        return _mining_form_page(request, dataset, form, status=400)
    try:
        run = mining_run_create(dataset=dataset, user=request.user, **form.service_options())
    except ApplicationError as error:
        form_error_add(form, error)
        return _mining_form_page(request, dataset, form, status=400)
    messages.success(request, f"Mining run #{run.pk} on {dataset.name} is queued.")
    return redirect("curation:mining_run_detail", pk=run.pk)


# The outcome first, then the teacher's flags, then where the time went; the cache key and
# the model's identity are for engineers (the API keeps them).
MINING_STATS = StatsLayout(
    shown=(
        ("queries", "Queries mined"),
        ("queries_with_positives", "Queries with a positive"),
        ("negatives_selected", "Negatives selected"),
        ("negatives_added", "Negatives added"),
        ("negatives_already_present", "Negatives already there"),
        ("queries_with_new_negatives", "Queries with new negatives"),
        ("teacher_judgments", "Teacher judgments"),
        ("teacher_flagged_relevant", "Flagged relevant by the teacher"),
        ("precision", "Precision"),
        ("corpus_passages", "Corpus passages"),
        ("passages_encoded", "Passages encoded (the rest from the cache)"),
        ("corpus_seconds", "Corpus embeddings (s)"),
        ("passage_encode_seconds", "Passage encoding (s)"),
        ("index_seconds", "Index (s)"),
        ("query_encode_seconds", "Query encoding (s)"),
        ("search_seconds", "Search (s)"),
        ("write_seconds", "Writing (s)"),
    ),
    hidden=frozenset({"teacher_rater", "corpus_encoded", "embedding_cache", "model"}),
)


def _mining_context(run: MiningRun) -> dict:
    return {
        "section": "datasets",
        "run": run,
        "status_url": reverse("curation:mining_run_detail", args=[run.pk]),
        "cancel_url": reverse("curation:mining_run_cancel", args=[run.pk]),
        "result_url": reverse("curation:dataset_detail", args=[run.dataset_id]),
        "result_label": "Open the dataset",
        "stats_layout": MINING_STATS,
    }


def _mining_run(pk: int) -> MiningRun:
    try:
        return reads.mining_run_get(run_id=pk)
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
    return job_cancel(request, get_object_or_404(MiningRun, pk=pk), context=_mining_context)
