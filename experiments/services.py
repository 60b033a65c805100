"""Experiments: RLHN's policy comparison in one click, and train → evaluate chains.

RLHN's policy comparison in one click: one dataset frozen under several false-negative
policies (default, remove_hn, relabel), the same fine-tune on each snapshot, each fine-tune
and the base model evaluated on the same tasks — then the experiments page shows them side
by side.

    PolicyComparison (default queue)
      for each policy: snapshot_create (an identical earlier snapshot is reused)
                       training_run_create(evaluate_after=plan)  ──► gpu queue
                                 on success (core.jobs.job_finished ─► training_run_finished):
                                 evaluation_run_create(training_run) ──► gpu queue
      the base model: evaluation_run_create, unless a finished one covers the tasks

Everything is checked before anything is queued (policies, k, the training config, the base
model, the tasks); the comparison's ``stats`` records each id as it is made, so a redelivered
task skips what exists instead of training twice.
"""

from __future__ import annotations

import logging

from django.db import transaction

from core.errors import ApplicationError
from core.jobs import JobOutcome, job_enqueue, job_run
from core.models import JobStatus
from curation.datasets.export import Policy
from curation.datasets.snapshots import snapshot_create
from curation.models import Dataset, ExportFormat
from evaluation.models import EvaluationRun
from evaluation.services.runs import (
    evaluation_model_resolve,
    evaluation_plan_check,
    evaluation_run_create,
)
from training.models import TrainingRun
from training.services import training_config_check, training_run_create

from .models import PolicyComparison

logger = logging.getLogger(__name__)

RLHN_POLICIES = (Policy.DEFAULT, Policy.REMOVE_HN, Policy.RELABEL)


def _field_error(message: str, field: str) -> ApplicationError:
    return ApplicationError(message, detail={"field": field})


def policy_comparison_create(
    *,
    dataset: Dataset,
    train_config: dict,
    eval_tasks: list[str],
    policies: list[str] | tuple[str, ...] = RLHN_POLICIES,
    eval_mode: str = "full",
    eval_config: dict | None = None,
    max_false_negatives: int = 7,
    name: str = "",
    user=None,
    enqueue: bool = True,
) -> PolicyComparison:
    """Check the whole plan and record it; with ``enqueue`` it starts on a worker once this
    transaction commits. ``ApplicationError`` names the field of the first problem."""
    policies = list(dict.fromkeys(str(p) for p in policies or ()))
    unknown = [p for p in policies if p not in {member.value for member in Policy}]
    if unknown:
        raise _field_error(f"unknown policy: {', '.join(unknown)}", "policies")
    if len(policies) < 2:
        raise _field_error("a comparison needs at least two policies", "policies")
    if not isinstance(max_false_negatives, int) or max_false_negatives < 0:
        raise _field_error("k must be a whole number >= 0", "max_false_negatives")
    name = (name or "").strip()
    if len(name) > 150:
        raise _field_error("the name is too long (150 characters at most)", "name")
    config = training_config_check(train_config)
    plan = evaluation_plan_check(
        tasks=eval_tasks, mode=eval_mode, config=eval_config, model=config["base_model"]
    )
    with transaction.atomic():
        comparison = PolicyComparison.objects.create(
            dataset=dataset,
            name=name,
            policies=policies,
            max_false_negatives=max_false_negatives,
            format=ExportFormat.BGE,
            train_config=config,
            eval_tasks=plan["tasks"],
            eval_mode=plan["mode"],
            eval_config=plan["config"],
            created_by=user if getattr(user, "is_authenticated", False) else None,
        )
        if enqueue:
            job_enqueue(job=comparison)
    return comparison


def policy_comparison_execute(*, comparison_id: int) -> None:
    """Worker side: the snapshots, the training runs (each queued with its evaluation to
    follow) and the base model's evaluation. Failures are recorded on the row."""
    comparison = PolicyComparison.objects.select_related("dataset", "created_by").get(
        pk=comparison_id
    )

    def work(progress) -> JobOutcome:
        stats = _start_everything(comparison)
        return JobOutcome(
            stats=stats, message=f"{len(stats['training_runs'])} training runs queued"
        )

    job_run(job=comparison, work=work)


def _start_everything(comparison: PolicyComparison) -> dict:
    stats = {"snapshots": {}, "training_runs": {}, **(comparison.stats or {})}
    plan = {
        "tasks": comparison.eval_tasks,
        "mode": comparison.eval_mode,
        "config": comparison.eval_config,
    }
    label = comparison.name or comparison.dataset.name
    user = comparison.created_by
    for number, policy in enumerate(comparison.policies):
        if policy in stats["training_runs"]:
            continue  # made before a redelivery
        snapshot = snapshot_create(
            dataset=comparison.dataset,
            policy=policy,
            format=comparison.format,
            max_false_negatives=comparison.max_false_negatives,
            user=user,
        )
        stats["snapshots"][policy] = snapshot.pk
        with transaction.atomic():
            run = training_run_create(
                snapshot=snapshot,
                config=comparison.train_config,
                name=f"{label} · {policy}"[:200],
                evaluate_after=plan,
                user=user,
            )
            stats["training_runs"][policy] = run.pk
            PolicyComparison.objects.filter(pk=comparison.pk).update(
                stats=stats,
                progress=(number + 1) / (len(comparison.policies) + 1),
                progress_message=f"{policy}: snapshot #{snapshot.pk}, training run #{run.pk}",
            )
    if "base_evaluation_run" not in stats:
        base = comparison.train_config["base_model"]
        reranker = comparison.train_config.get("model_kind") == "reranker"
        stats["base_evaluation_run"] = _base_evaluation(base, plan, user, reranker=reranker).pk
    return stats


def _base_evaluation(base_model: str, plan: dict, user, *, reranker: bool = False):
    """The base model's row for Δ: a finished (or queued) evaluation of it in this mode that
    covers the tasks is reused; otherwise one is queued. A reranker's base is evaluated as
    a reranker over the configured first stage (the one its fine-tunes are evaluated over)."""
    if reranker:
        return evaluation_run_create(
            model_ref=base_model, tasks=plan["tasks"], mode=plan["mode"],
            config=plan["config"], user=user, first_stage="",
        )  # fmt: skip
    model_key, _ = evaluation_model_resolve(base_model)
    wanted = set(plan["tasks"])
    earlier = EvaluationRun.objects.filter(
        model_key=model_key,
        training_run=None,
        mode=plan["mode"],
        status__in=[JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.SUCCEEDED],
    ).order_by("-id")[:50]
    for run in earlier:
        if wanted <= set(run.tasks):
            return run
    return evaluation_run_create(
        model_ref=base_model, tasks=plan["tasks"], mode=plan["mode"], config=plan["config"],
        user=user,
    )  # fmt: skip


# --- train → evaluate ------------------------------------------------------------------------


def training_run_finished(sender, *, job, **kwargs) -> None:
    """``core.jobs.job_finished`` receiver: a training run that succeeded and asked for an
    evaluation (``evaluate_after``: ``tasks``, ``mode``, ``config``) gets it queued."""
    if sender is TrainingRun and job.status == JobStatus.SUCCEEDED and job.evaluate_after:
        evaluation_follow(run=job)


def evaluation_follow(*, run: TrainingRun) -> None:
    """Queue the evaluation the run asked for. Once per run: a redelivered task finds the
    run finished and never gets here, and an evaluation already made for it is not repeated.
    A refusal is logged and kept on the run's metrics, not raised: the training succeeded."""
    if EvaluationRun.objects.filter(training_run=run).exists():
        return
    plan = run.evaluate_after
    try:
        evaluation = evaluation_run_create(
            training_run=run,
            tasks=list(plan.get("tasks") or []),
            mode=plan.get("mode") or "full",
            config=plan.get("config") or None,
            user=run.created_by,
        )
    except ApplicationError as error:
        logger.warning("training run #%s: evaluation not queued: %s", run.pk, error.message)
        TrainingRun.objects.filter(pk=run.pk).update(
            metrics={**(run.metrics or {}), "evaluate_after_error": error.message}
        )
        return
    logger.info("training run #%s: evaluation #%s queued", run.pk, evaluation.pk)
