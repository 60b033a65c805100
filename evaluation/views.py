"""Evaluation pages: launch, the live run page, the leaderboard (HTML and CSV) and the
policy experiments. The leaderboard reads only stored results (``evaluation/selectors.py``);
nothing is computed in a request beyond a mean per row."""

import csv

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from core.errors import ApplicationError
from core.job_pages import job_cancel, job_context, job_page
from core.roles import CAN_CURATE, CAN_READ_DATA, role_required

from . import selectors as reads
from .forms import EvaluationLaunchForm, PolicyComparisonForm
from .models import EvaluationMode, EvaluationRun, PolicyComparison
from .services import evaluation_run_create, evaluation_tasks_available


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
def evaluation_run_detail(request, pk: int):
    run = _run(pk)
    return job_page(
        request, run, template="evaluation/evaluation_run.html", context=_run_context(run)
    )


@require_POST
@role_required(*CAN_CURATE)
def evaluation_run_cancel_view(request, pk: int):
    def reload():
        run = _run(pk)
        return run, _run_context(run)

    return job_cancel(
        request,
        get_object_or_404(EvaluationRun, pk=pk),
        reload=reload,
        page_url=reverse("evaluation:run_detail", args=[pk]),
    )


def _board_params(request) -> tuple[list[str] | None, str]:
    mode = request.GET.get("mode") or EvaluationMode.FULL
    if mode not in EvaluationMode.values:
        mode = EvaluationMode.FULL
    return request.GET.getlist("tasks") or None, mode


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
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="leaderboard-{mode}.csv"'
    writer = csv.writer(response)
    writer.writerow(
        ["rank", "model", "model_key", "training_run", "snapshot", "policy", "base_model",
         *board.tasks, "mean", *[f"delta_{t}" for t in board.tasks], "delta_mean"]
    )  # fmt: skip
    for row in board.rows:
        info = row.entry.info
        writer.writerow(
            [row.rank or "", row.entry.label, row.key, info.get("training_run_id", ""),
             info.get("snapshot_id", ""), info.get("policy", ""), info.get("base_model", ""),
             *_cells(row.scores), _cell(row.mean), *_cells(row.deltas), _cell(row.mean_delta)]
        )  # fmt: skip
    return response


def _cell(value) -> str:
    return "" if value is None else f"{value:.6f}"


def _cells(values) -> list[str]:
    return [_cell(v) for v in values]


@require_GET
@role_required(*CAN_READ_DATA)
def experiments(request):
    _, mode = _board_params(request)
    tasks, groups = reads.experiments_get(mode=mode)
    return render(
        request,
        "evaluation/experiments.html",
        {"section": "leaderboard", "tasks": tasks, "experiments": groups, "mode": mode,
         "comparisons": reads.policy_comparisons_recent(),
         "modes": EvaluationMode.choices},
    )  # fmt: skip


# --- policy comparisons ----------------------------------------------------------------------


def _comparison_page(request, dataset, form, train_form, *, status=200):
    return render(
        request,
        "evaluation/comparison_new.html",
        {"section": "leaderboard", "dataset": dataset, "form": form, "train_form": train_form},
        status=status,
    )


def _comparison_forms(data=None):
    from training.forms import TrainingLaunchForm
    from training.services import training_config_defaults

    form = PolicyComparisonForm(data, task_options=evaluation_tasks_available())
    train_form = TrainingLaunchForm(data, defaults=training_config_defaults(), prefix="train")
    del train_form.fields["name"]  # the comparison names its runs
    return form, train_form


@require_GET
@role_required(*CAN_CURATE)
def comparison_new(request, dataset_pk: int):
    from curation.models import Dataset

    dataset = get_object_or_404(Dataset, pk=dataset_pk)
    return _comparison_page(request, dataset, *_comparison_forms())


@require_POST
@role_required(*CAN_CURATE)
def comparison_launch(request, dataset_pk: int):
    from curation.models import Dataset

    from .comparisons import policy_comparison_create

    dataset = get_object_or_404(Dataset, pk=dataset_pk)
    form, train_form = _comparison_forms(request.POST)
    if not (form.is_valid() and train_form.is_valid()):
        return _comparison_page(request, dataset, form, train_form, status=400)
    data = form.cleaned_data
    try:
        comparison = policy_comparison_create(
            dataset=dataset,
            name=data["name"],
            policies=data["policies"],
            max_false_negatives=data["max_false_negatives"],
            train_config=train_form.config(),
            eval_tasks=data["task_specs"],
            eval_mode=data["mode"],
            user=request.user,
        )
    except ApplicationError as error:
        field = error.detail.get("field")
        if field in form.fields:
            form.add_error(field, error.message)
        elif field in train_form.fields:
            train_form.add_error(field, error.message)
        else:
            form.add_error(None, error.message)
        return _comparison_page(request, dataset, form, train_form, status=400)
    messages.success(
        request,
        f"Policy comparison #{comparison.pk} is queued: {len(comparison.policies)} snapshots, "
        "then a fine-tune and an evaluation of each.",
    )
    return redirect("evaluation:comparison_detail", pk=comparison.pk)


@require_GET
@role_required(*CAN_READ_DATA)
def comparison_detail(request, pk: int):
    try:
        comparison = reads.policy_comparison_get(comparison_id=pk)
    except PolicyComparison.DoesNotExist:
        raise Http404("no such comparison") from None
    context = {
        "section": "leaderboard",
        "comparison": comparison,
        "steps": reads.comparison_steps(comparison=comparison),
    }
    return render(
        request, "evaluation/comparison_detail.html", job_context(request, comparison, context)
    )
