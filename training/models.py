from django.db import models

from core.models import Job


class TrainingMethod(models.TextChoices):
    LORA = "lora", "LoRA adapter (peft)"
    FULL = "full", "full fine-tune"


class ArtifactKind(models.TextChoices):
    ADAPTER = "adapter", "LoRA adapter"
    MERGED = "merged", "merged model"
    FULL = "full", "full model"


class TrainingRun(Job):
    """One fine-tune of ``base_model`` on a frozen snapshot. ``config`` holds every
    hyper-parameter as launched (``training.core.config.TrainConfig``); ``history`` the loss curve,
    one point per logging step; ``metrics`` the throughput and final figures.

    The artifact is a folder under ``SIEVE_MODEL_DIR``. ``base_model`` is recorded here
    because a peft ``adapter_config.json`` stores the absolute path of the base it was trained
    on, which is wrong as soon as the folder moves to another machine."""

    task_name = "training.tasks.training_run"

    snapshot = models.ForeignKey(
        "curation.Snapshot", on_delete=models.PROTECT, related_name="training_runs"
    )
    name = models.CharField(max_length=200, blank=True)
    base_model = models.CharField(max_length=500, help_text="Hugging Face id or local folder")
    method = models.CharField(max_length=8, choices=TrainingMethod.choices)
    config = models.JSONField(default=dict)
    # Where checkpoints and the artifact live; fixed at creation so a resumed run finds them.
    output_dir = models.CharField(max_length=500, blank=True)
    artifact_path = models.CharField(max_length=500, blank=True)
    artifact_kind = models.CharField(max_length=8, choices=ArtifactKind.choices, blank=True)
    step = models.IntegerField(default=0)
    total_steps = models.IntegerField(default=0)
    resumed_from_step = models.IntegerField(null=True, blank=True)
    history = models.JSONField(default=list, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    log_tail = models.TextField(blank=True)
    # Evaluate the artifact once the run succeeds: {"tasks": [...], "mode": ..., "config": {}}
    # (evaluation_run_create's arguments); empty: nothing follows.
    evaluate_after = models.JSONField(default=dict, blank=True)

    class Meta(Job.Meta):
        indexes = [models.Index(fields=["snapshot", "-id"], name="trainingrun_snapshot_idx")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(step__gte=0) & models.Q(total_steps__gte=0),
                name="trainingrun_steps_not_negative",
            )
        ]

    def __str__(self) -> str:
        return self.name or f"training #{self.pk}"

    @property
    def model_kind(self) -> str:
        """ "embedder" or "reranker" (a cross-encoder), as launched."""
        return (self.config or {}).get("model_kind") or "embedder"

    def snapshots(self) -> list:
        """Every snapshot the run trains on, in the order given (the first is ``snapshot``)."""
        return [self.snapshot, *(link.snapshot for link in self.more_snapshots.all())]


class TrainingRunSnapshot(models.Model):
    """A further snapshot a run trains on, beside ``TrainingRun.snapshot`` (the first): a run
    on several snapshots takes each batch from one of them (``training/core/mixing.py``).
    ``position`` is the order given (1, 2, …; the sequential order follows it)."""

    run = models.ForeignKey(TrainingRun, on_delete=models.CASCADE, related_name="more_snapshots")
    snapshot = models.ForeignKey(
        "curation.Snapshot", on_delete=models.PROTECT, related_name="mixed_training_runs"
    )
    position = models.PositiveSmallIntegerField()

    class Meta:
        ordering = ["run", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["run", "position"], name="trainingrunsnapshot_position"
            ),
            models.UniqueConstraint(fields=["run", "snapshot"], name="trainingrunsnapshot_once"),
        ]

    def __str__(self) -> str:
        return f"run #{self.run_id} + snapshot #{self.snapshot_id}"
