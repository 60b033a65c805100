"""Training pages: the "Train" form of a snapshot, the live run page, the list of runs.

The run page follows the job page pattern of ``core/job_pages.py``; its live part
(``training/_run_details.html``) carries the loss curve, throughput, ETA and the log tail.
"""

from django.contrib import messages
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from core.errors import ApplicationError
from core.http import query_int
from core.job_pages import job_cancel, job_page
from core.ml.hardware import machine_detect
from core.roles import CAN_CURATE, CAN_READ_DATA, role_required
from curation.datasets.selectors import snapshot_get
from curation.models import Snapshot

from . import selectors as reads
from .charts import CHARTS, run_chart, run_charts
from .core.config import config_fields
from .forms import TrainingLaunchForm
from .models import TrainingRun
from .retry import training_run_retry, training_run_retryable
from .services import (
    training_config_defaults,
    training_more_snapshots,
    training_run_create,
)


def _snapshot(pk: int) -> Snapshot:
    try:
        return snapshot_get(snapshot_id=pk)
    except Snapshot.DoesNotExist:
        raise Http404("no such snapshot") from None


def _run(pk: int) -> TrainingRun:
    try:
        return reads.training_run_get(run_id=pk)
    except TrainingRun.DoesNotExist:
        raise Http404("no such training run") from None


def _form_page(request, snapshot, form, *, status=200):
    return render(
        request,
        "training/training_new.html",
        {
            "section": "training",
            "snapshot": snapshot,
            "form": form,
            "runs": reads.snapshot_training_runs(snapshot=snapshot),
            "other_snapshots": reads.other_snapshots(snapshot=snapshot),
            "machine": machine_detect(),
        },
        status=status,
    )


@require_GET
@role_required(*CAN_CURATE)
def training_new(request, pk: int):
    snapshot = _snapshot(pk)
    return _form_page(request, snapshot, TrainingLaunchForm(defaults=training_config_defaults()))


@require_POST
@role_required(*CAN_CURATE)
def training_launch(request, pk: int):
    snapshot = _snapshot(pk)
    form = TrainingLaunchForm(request.POST, defaults=training_config_defaults())
    if not form.is_valid():
        return _form_page(request, snapshot, form, status=400)
    try:
        run = training_run_create(
            snapshot=snapshot,
            config=form.config(),
            name=form.cleaned_data.get("name") or "",
            user=request.user,
            more_snapshots=training_more_snapshots(form.cleaned_data.get("more_snapshots")),
        )
    except ApplicationError as error:
        field = error.detail.get("field")
        form.add_error(field if field in form.fields else None, error.message)
        return _form_page(request, snapshot, form, status=400)
    messages.success(
        request, f"Training run #{run.pk} is queued; it runs on {machine_detect().device_words}."
    )
    return redirect("training:run_detail", pk=run.pk)


def _config_rows(config: dict) -> list[tuple[str, str, object]]:
    """The run's hyper-parameters as (label, name, value), in the schema's order."""
    labels = {f.name: f.label for f in config_fields()}
    config = config or {}
    known = [(labels[n], n, config[n]) for n in labels if n in config]
    return known + [(n.replace("_", " "), n, v) for n, v in config.items() if n not in labels]


def _run_context(run: TrainingRun) -> dict:
    return {
        "section": "training",
        "run": run,
        "charts": run_charts(run.history or [], run_label=run.name or f"training #{run.pk}"),
        "config_rows": _config_rows(run.config),
        "last_point": (run.history or [None])[-1],
        "status_url": reverse("training:run_detail", args=[run.pk]),
        "cancel_url": reverse("training:run_cancel", args=[run.pk]),
        "details": "training/_run_details.html",
        "poll": "2s",
        "hide_stats": True,
        "run_file": f"training-{run.pk}-",
        "retryable": training_run_retryable(run=run),
    }


@require_GET
@role_required(*CAN_READ_DATA)
def training_run_detail(request, pk: int):
    run = _run(pk)
    return job_page(request, run, template="training/training_run.html", context=_run_context(run))


@require_GET
@role_required(*CAN_READ_DATA)
def training_run_chart_svg(request, pk: int, metric: str):
    """One chart of the run page as an .svg file."""
    run = _run(pk)
    if metric not in CHARTS:
        raise Http404("no such chart")
    figure = run_chart(run.history or [], metric, run_label=run.name or f"training #{run.pk}")
    if figure is None:
        raise Http404("not enough points to draw yet")
    response = render(
        request, "core/_chart_svg.html", {"figure": figure},
        content_type="image/svg+xml; charset=utf-8",
    )  # fmt: skip
    response["Content-Disposition"] = f'attachment; filename="training-{pk}-{metric}.svg"'
    return response


@require_POST
@role_required(*CAN_CURATE)
def training_run_cancel_view(request, pk: int):
    return job_cancel(request, get_object_or_404(TrainingRun, pk=pk), context=_run_context)


@require_POST
@role_required(*CAN_CURATE)
def training_run_retry_view(request, pk: int):
    """Run again a run that failed (from its newest checkpoint) or was cancelled (from the
    start)."""
    run = get_object_or_404(TrainingRun, pk=pk)
    try:
        run = training_run_retry(run=run)
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"Training run #{run.pk} is {run.progress_message}.")
    return redirect("training:run_detail", pk=run.pk)


@require_GET
@role_required(*CAN_READ_DATA)
def training_run_list(request):
    page = reads.training_run_list_page(
        after=query_int(request, "after"), before=query_int(request, "before")
    )
    return render(request, "training/training_list.html", {"section": "training", "page": page})


@require_GET
@role_required(*CAN_READ_DATA)
def snapshot_runs(request, pk: int):
    """The training runs of a snapshot: the snapshot page loads this panel with htmx (the
    curation app does not import training); without htmx it is a page of its own."""
    snapshot = get_object_or_404(Snapshot, pk=pk)
    template = "training/_snapshot_runs.html" if request.htmx else "training/snapshot_runs.html"
    context = {"section": "snapshots", "snapshot": snapshot}
    context["training_runs"] = reads.snapshot_training_runs(snapshot=snapshot)
    return render(request, template, context)
