from django.db import models

from core.models import Job


class EvaluationMode(models.TextChoices):
    FULL = "full", "full corpus"
    STREAMLINED = "streamlined", "streamlined (seeded corpus subsample)"

    @classmethod
    def from_param(cls, value: str | None) -> "EvaluationMode":
        """The mode a ``?mode=`` parameter names; full for anything else."""
        return cls(value) if value in cls.values else cls.FULL


class EvaluationRun(Job):
    """Evaluates one model on a list of MTEB retrieval tasks.

    ``model_ref`` is what is loaded (hub id, local folder, or a training run's artifact);
    ``base_model`` is the base the leaderboard compares it with (the model itself for a base
    model); ``model_key`` groups evaluations of the same model into one leaderboard row
    (``training:<id>`` for a fine-tune, the model reference otherwise). ``tasks`` holds task
    specs: an mteb registry name (``SciFact``) or a local BEIR folder (``beir:<name>``)."""

    task_name = "evaluation.tasks.evaluation_run"

    training_run = models.ForeignKey(
        "training.TrainingRun",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="evaluation_runs",
    )
    model_ref = models.CharField(max_length=500)
    base_model = models.CharField(max_length=500)
    model_key = models.CharField(max_length=500)
    model_label = models.CharField(max_length=200)
    tasks = models.JSONField(default=list)
    mode = models.CharField(max_length=16, choices=EvaluationMode.choices, default="full")
    config = models.JSONField(default=dict, blank=True)
    # The results folder mteb wrote (its own JSON files).
    results_dir = models.CharField(max_length=500, blank=True)

    class Meta(Job.Meta):
        indexes = [
            models.Index(fields=["model_key", "-id"], name="evalrun_model_idx"),
            models.Index(fields=["training_run", "-id"], name="evalrun_training_idx"),
        ]

    def __str__(self) -> str:
        return f"evaluation #{self.pk} {self.model_label}"


class EvalResult(models.Model):
    """The score of one run on one task split. ``main_score`` is mteb's (nDCG@10 for
    retrieval); ``mteb_result`` is mteb's own TaskResult JSON, kept whole so it can be
    compared with and submitted to the MTEB leaderboard."""

    run = models.ForeignKey(EvaluationRun, on_delete=models.CASCADE, related_name="results")
    task = models.CharField(max_length=200)
    split = models.CharField(max_length=50)
    main_score = models.FloatField()
    ndcg_at_10 = models.FloatField(null=True, blank=True)
    recall_at_100 = models.FloatField(null=True, blank=True)
    mrr_at_10 = models.FloatField(null=True, blank=True)
    corpus_size = models.IntegerField(default=0)
    query_count = models.IntegerField(default=0)
    evaluation_seconds = models.FloatField(null=True, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    mteb_result = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["task", "split"]
        constraints = [
            models.UniqueConstraint(fields=["run", "task", "split"], name="evalresult_unique_split")
        ]
        indexes = [models.Index(fields=["task", "split"], name="evalresult_task_idx")]

    def __str__(self) -> str:
        return f"{self.task}/{self.split}: {self.main_score:.4f}"
