"""Experiment pages: the experiments board (fine-tunes grouped by dataset, base model and
settings, beside their base model) and RLHN's policy comparison in one click."""

from django.contrib import messages
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from core.errors import ApplicationError
from core.job_pages import job_context
from core.roles import CAN_CURATE, CAN_READ_DATA, role_required
from curation.models import Dataset
from evaluation import selectors as evaluation_reads
from evaluation.models import EvaluationMode
from evaluation.services.task_specs import evaluation_task_labels, evaluation_tasks_available
from training.forms import TrainingLaunchForm
from training.services import training_config_defaults

from . import selectors as reads
from .forms import PolicyComparisonForm
from .loop import dataset_loops
from .models import PolicyComparison
from .services import policy_comparison_create


@require_GET
@role_required(*CAN_READ_DATA)
def experiments(request):
    mode = EvaluationMode.from_param(request.GET.get("mode"))
    tasks, groups = evaluation_reads.experiments_get(mode=mode)
    return render(
        request,
        "experiments/experiments.html",
        {"section": "leaderboard", "tasks": tasks, "experiments": groups, "mode": mode,
         "comparisons": reads.policy_comparisons_recent(),
         "modes": EvaluationMode.choices},
    )  # fmt: skip


# --- policy comparisons ----------------------------------------------------------------------


def _comparison_page(request, dataset, form, train_form, *, status=200):
    return render(
        request,
        "experiments/comparison_new.html",
        {"section": "leaderboard", "dataset": dataset, "form": form, "train_form": train_form},
        status=status,
    )


def _comparison_forms(data=None):
    form = PolicyComparisonForm(data, task_options=evaluation_tasks_available())
    train_form = TrainingLaunchForm(data, defaults=training_config_defaults(), prefix="train")
    del train_form.fields["name"]  # the comparison names its runs
    return form, train_form


@require_GET
@role_required(*CAN_CURATE)
def comparison_new(request, dataset_pk: int):
    dataset = get_object_or_404(Dataset, pk=dataset_pk)
    return _comparison_page(request, dataset, *_comparison_forms())


@require_POST
@role_required(*CAN_CURATE)
def comparison_launch(request, dataset_pk: int):
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
    return redirect("experiments:comparison_detail", pk=comparison.pk)


@require_GET
@role_required(*CAN_READ_DATA)
def comparison_detail(request, pk: int):
    try:
        comparison = reads.policy_comparison_get(comparison_id=pk)
    except PolicyComparison.DoesNotExist:
        raise Http404("no such comparison") from None
    steps = reads.comparison_steps(comparison=comparison)
    context = {
        "section": "leaderboard",
        "comparison": comparison,
        "steps": steps,
        "progress": reads.comparison_progress(steps),
        "task_labels": evaluation_task_labels(comparison.eval_tasks),
    }
    return render(
        request, "experiments/comparison_detail.html", job_context(request, comparison, context)
    )


@require_GET
@role_required(*CAN_READ_DATA)
def overview(request):
    """The loop, per dataset: each step's state and the next thing to do."""
    page, loops = dataset_loops(after=request.GET.get("after"), before=request.GET.get("before"))
    return render(
        request, "experiments/overview.html", {"section": "overview", "page": page, "loops": loops}
    )
