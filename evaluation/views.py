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
from core.ml.hardware import machine_detect
from core.roles import CAN_CURATE, CAN_READ_DATA, role_required
from training.models import TrainingRun

from . import selectors as reads
from .charts import scores_chart
from .forms import MODE_NAMES, EvaluationLaunchForm
from .models import EvaluationMode, EvaluationRun
from .services.runs import evaluation_run_create
from .services.task_specs import (
    TaskOption,
    evaluation_task_labels,
    evaluation_task_search,
    evaluation_tasks_offline,
)


def _chosen(specs: list[str]) -> list[TaskOption]:
    """The chosen specs as picker rows (their labels; no registry lookup needed)."""
    offline = {o.spec: o for o in evaluation_tasks_offline()}
    labels = evaluation_task_labels(specs)
    return [
        offline.get(spec) or TaskOption(spec, labels[spec], "registry", (), "mteb registry task")
        for spec in specs
    ]


def _form_page(request, form, *, status=200):
    chosen = form.chosen_tasks()
    query = request.GET.get("q", "").strip()
    # The form's first answer never lists mteb's registry (the first listing after an install
    # takes seconds): the offline tasks come with it and the picker's search asks for the rest,
    # unless a search was sent without JavaScript (?q=).
    search = evaluation_task_search(query=query, exclude=chosen, registry=bool(query))
    context = {
        "section": "leaderboard",
        "form": form,
        "chosen": _chosen(chosen),
        "search": search,
        "search_pending": not query,
        "machine": machine_detect(),
        "runs": reads.evaluation_runs_recent(),
    }
    return render(request, "evaluation/evaluation_new.html", context, status=status)


@require_GET
@role_required(*CAN_CURATE)
def evaluation_new(request):
    initial = {}
    if request.GET.get("training_run", "").isdigit():
        initial["training_run"] = int(request.GET["training_run"])
    if request.GET.getlist("tasks"):  # the overview's "Evaluate a model on it"
        initial["tasks"] = request.GET.getlist("tasks")
    return _form_page(request, EvaluationLaunchForm(initial=initial))


@require_GET
@role_required(*CAN_CURATE)
def evaluation_task_search_view(request):
    """The picker's results (htmx): ``q`` searched over every task, ``tasks`` (the chosen
    ones) left out."""
    search = evaluation_task_search(
        query=request.GET.get("q", "").strip(), exclude=request.GET.getlist("tasks")
    )
    return render(request, "evaluation/_task_results.html", {"search": search})


@require_POST
@role_required(*CAN_CURATE)
def evaluation_launch(request):
    form = EvaluationLaunchForm(request.POST)
    if not form.is_valid():
        return _form_page(request, form, status=400)
    try:
        run = evaluation_run_create(user=request.user, **form.service_options())
    except ApplicationError as error:
        field = error.detail.get("field")
        form.add_error(field if field in form.fields else None, error.message)
        return _form_page(request, form, status=400)
    messages.success(
        request, f"Evaluation #{run.pk} is queued; it runs on {machine_detect().device_words}."
    )
    return redirect("evaluation:run_detail", pk=run.pk)


def _run(pk: int) -> EvaluationRun:
    try:
        return reads.evaluation_run_get(run_id=pk)
    except EvaluationRun.DoesNotExist:
        raise Http404("no such evaluation run") from None


def _scores_chart(run: EvaluationRun, results, labels: dict):
    rows = [
        {"task": labels.get(r.task, r.task), "ndcg_at_10": r.ndcg_at_10,
         "recall_at_100": r.recall_at_100, "mrr_at_10": r.mrr_at_10}
        for r in results
    ]  # fmt: skip
    return scores_chart(rows, title=f"Evaluation #{run.pk}: {run.model_label}")


def _run_context(run: EvaluationRun) -> dict:
    results = reads.evaluation_run_results(run=run)
    labels = evaluation_task_labels([*run.tasks, *(r.task for r in results)])
    for result in results:
        result.task_name = labels.get(result.task, result.task)
    return {
        "section": "leaderboard",
        "run": run,
        "results": results,
        "task_names": [labels[t] for t in run.tasks],
        "task_stats": [
            {"name": labels.get(spec, spec), **figures}
            for spec, figures in ((run.stats or {}).get("tasks") or {}).items()
        ],
        "mode_name": MODE_NAMES.get(run.mode, run.mode),
        "scores_chart": _scores_chart(run, results, labels),
        "scores_file": f"evaluation-{run.pk}-scores",
        "status_url": reverse("evaluation:run_detail", args=[run.pk]),
        "cancel_url": reverse("evaluation:run_cancel", args=[run.pk]),
        "details": "evaluation/_run_details.html",
        "poll": "2s",
        "hide_stats": True,  # _run_details.html shows them in words
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


@require_GET
@role_required(*CAN_READ_DATA)
def evaluation_run_scores_svg(request, pk: int):
    """The run's scores chart as an .svg file (the page's SVG link)."""
    context = _run_context(_run(pk))
    if context["scores_chart"] is None:
        raise Http404("no scores yet")
    response = render(
        request, "core/_chart_svg.html", {"figure": context["scores_chart"]},
        content_type="image/svg+xml; charset=utf-8",
    )  # fmt: skip
    response["Content-Disposition"] = f'attachment; filename="evaluation-{pk}-scores.svg"'
    return response


@require_POST
@role_required(*CAN_CURATE)
def evaluation_run_cancel_view(request, pk: int):
    return job_cancel(request, get_object_or_404(EvaluationRun, pk=pk), context=_run_context)


def _board_params(request) -> tuple[list[str] | None, str]:
    return request.GET.getlist("tasks") or None, EvaluationMode.from_param(request.GET.get("mode"))


@require_GET
@role_required(*CAN_READ_DATA)
def leaderboard(request):
    """Opens on the tab that has results (``?mode=`` picks one)."""
    counts = reads.leaderboard_mode_counts()
    tasks = request.GET.getlist("tasks") or None
    mode = request.GET.get("mode")
    if mode not in EvaluationMode.values:
        mode = reads.leaderboard_default_mode(counts)
    board = reads.leaderboard_get(tasks=tasks, mode=mode)
    tabs = [
        {"mode": value, "name": MODE_NAMES.get(value, value), "models": counts.get(value, 0)}
        for value in EvaluationMode.values
    ]
    return render(
        request,
        "evaluation/leaderboard.html",
        {"section": "leaderboard", "board": board, "tabs": tabs},
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
