"""Evaluation pages: launch, the live run page, the leaderboard (HTML and CSV) and the
policy experiments. The leaderboard reads only stored results (``evaluation/selectors.py``);
nothing is computed in a request beyond a mean per row."""

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from core.csv_export import csv_write
from core.errors import ApplicationError
from core.job_pages import job_cancel, job_page
from core.roles import CAN_CURATE, CAN_READ_DATA, role_required
from training.models import TrainingRun

from . import selectors as reads
from .forms import EvaluationLaunchForm
from .models import EvaluationMode, EvaluationRun
from .services.runs import evaluation_run_create
from .services.task_specs import evaluation_tasks_available


def _form_page(request, form, *, status=200):
    return render(
        request,
        "evaluation/evaluation_new.html",
        {"section": "leaderboard", "form": form, "runs": reads.evaluation_runs_recent()},
        status=status,
    )


@require_GET
@role_required(*CAN_CURATE)
def evaluation_new(request):
    initial = {}
    if request.GET.get("training_run", "").isdigit():
        initial["training_run"] = int(request.GET["training_run"])
    form = EvaluationLaunchForm(initial=initial, task_options=evaluation_tasks_available())
    return _form_page(request, form)


@require_POST
@role_required(*CAN_CURATE)
def evaluation_launch(request):
    form = EvaluationLaunchForm(request.POST, task_options=evaluation_tasks_available())
    if not form.is_valid():
        return _form_page(request, form, status=400)
    try:
        run = evaluation_run_create(user=request.user, **form.service_options())
    except ApplicationError as error:
        field = error.detail.get("field")
        form.add_error(field if field in form.fields else None, error.message)
        return _form_page(request, form, status=400)
    messages.success(request, f"Evaluation #{run.pk} is queued on the GPU workers.")
    return redirect("evaluation:run_detail", pk=run.pk)


def _run(pk: int) -> EvaluationRun:
    try:
        return reads.evaluation_run_get(run_id=pk)
    except EvaluationRun.DoesNotExist:
        raise Http404("no such evaluation run") from None


def _run_context(run: EvaluationRun) -> dict:
    return {
        "section": "leaderboard",
        "run": run,
        "results": reads.evaluation_run_results(run=run),
        "status_url": reverse("evaluation:run_detail", args=[run.pk]),
        "cancel_url": reverse("evaluation:run_cancel", args=[run.pk]),
        "details": "evaluation/_run_details.html",
        "poll": "2s",
    }


@require_GET
@role_required(*CAN_READ_DATA)
def training_run_evaluations(request, pk: int):
    """The evaluations of a training run: the run's page loads this panel with htmx (the
    training app does not import evaluation); without htmx it is a page of its own."""
    training_run = get_object_or_404(TrainingRun, pk=pk)
    template = (
        "evaluation/_training_evaluations.html"
        if request.htmx
        else "evaluation/training_evaluations.html"
    )
    evaluations = reads.evaluation_runs_recent(training_run=training_run)
    context = {"section": "training", "training_run": training_run, "evaluations": evaluations}
    return render(request, template, context)


@require_GET
@role_required(*CAN_READ_DATA)
def evaluation_run_detail(request, pk: int):
    run = _run(pk)
    return job_page(
        request, run, template="evaluation/evaluation_run.html", context=_run_context(run)
    )


@require_POST
@role_required(*CAN_CURATE)
def evaluation_run_cancel_view(request, pk: int):
    return job_cancel(request, get_object_or_404(EvaluationRun, pk=pk), context=_run_context)


def _board_params(request) -> tuple[list[str] | None, str]:
    return request.GET.getlist("tasks") or None, EvaluationMode.from_param(request.GET.get("mode"))


@require_GET
@role_required(*CAN_READ_DATA)
def leaderboard(request):
    tasks, mode = _board_params(request)
    board = reads.leaderboard_get(tasks=tasks, mode=mode)
    return render(
        request,
        "evaluation/leaderboard.html",
        {"section": "leaderboard", "board": board, "modes": EvaluationMode.choices},
    )


@require_GET
@role_required(*CAN_READ_DATA)
def leaderboard_csv(request):
    tasks, mode = _board_params(request)
    board = reads.leaderboard_get(tasks=tasks, mode=mode)
    header = ["rank", "model", "model_key", "training_run", "snapshot", "policy", "base_model",
              *board.tasks, "mean", *[f"delta_{t}" for t in board.tasks], "delta_mean"]  # fmt: skip
    rows = (
        [row.rank, row.entry.label, row.key, row.entry.info.get("training_run_id"),
         row.entry.info.get("snapshot_id"), row.entry.info.get("policy"),
         row.entry.info.get("base_model"), *row.scores, row.mean, *row.deltas, row.mean_delta]
        for row in board.rows
    )  # fmt: skip
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="leaderboard-{mode}.csv"'
    csv_write(response, [header, *rows])
    return response
