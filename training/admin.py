from django.contrib import admin

from .models import TrainingRun


@admin.register(TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):
    """Read-mostly: a run's fields are written by its worker; start and cancel runs from the
    snapshot and run pages (training.services), not by editing rows here."""

    list_display = ["id", "name", "base_model", "method", "status", "step", "total_steps",
                    "artifact_kind", "created_at"]  # fmt: skip
    list_filter = ["status", "method", "artifact_kind"]
    search_fields = ["name", "base_model"]
    raw_id_fields = ["snapshot", "created_by"]
    readonly_fields = [
        "snapshot", "base_model", "method", "config", "output_dir", "artifact_path",
        "artifact_kind", "step", "total_steps", "resumed_from_step", "history", "metrics",
        "log_tail", "status", "progress", "progress_message", "stats", "error", "error_detail",
        "celery_task_id", "cancel_requested", "created_by", "created_at", "started_at",
        "finished_at",
    ]  # fmt: skip
    show_full_result_count = False
