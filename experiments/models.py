"""Experiments: what spans training and evaluation (policy comparisons, train → evaluate
chains). This app sits above both, so that neither imports the other."""

from django.db import models

from core.models import Job
from evaluation.models import EvaluationMode


class PolicyComparison(Job):
    """RLHN's comparison in one click: freeze ``dataset`` under each of ``policies``, fine-tune
    the same base model with the same ``train_config`` on each snapshot, and evaluate every
    fine-tune (and the base model) on ``eval_tasks``. What it starts are ordinary snapshots,
    training runs and evaluation runs; ``stats`` records their ids as they are made
    (``snapshots`` / ``training_runs``: policy -> id, ``base_evaluation_run``)."""

    task_name = "experiments.tasks.policy_comparison"

    dataset = models.ForeignKey(
        "curation.Dataset", on_delete=models.CASCADE, related_name="policy_comparisons"
    )
    name = models.CharField(max_length=200, blank=True)
    policies = models.JSONField(default=list)
    max_false_negatives = models.IntegerField(default=7)
    format = models.CharField(max_length=32, default="bge")
    train_config = models.JSONField(default=dict)
    eval_tasks = models.JSONField(default=list)
    eval_mode = models.CharField(max_length=16, choices=EvaluationMode.choices, default="full")
    eval_config = models.JSONField(default=dict, blank=True)

    class Meta(Job.Meta):
        # Moved from the evaluation app; the table kept its name (no rebuild).
        db_table = "evaluation_policycomparison"

    def __str__(self) -> str:
        return f"policy comparison #{self.pk} {self.dataset}"
