from django.conf import settings
from django.db import models


class JobStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    # Ran to its end, but some of its items failed (error says how many and why).
    PARTIAL_FAILURE = "partial", "finished with failures"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINISHED_STATUSES = (
    JobStatus.SUCCEEDED,
    JobStatus.PARTIAL_FAILURE,
    JobStatus.FAILED,
    JobStatus.CANCELLED,
)
# Ended with results a user can use (a partial cascade still judged most of its queries).
USABLE_STATUSES = (JobStatus.SUCCEEDED, JobStatus.PARTIAL_FAILURE)


class Job(models.Model):
    """Columns every background job row shares. The UI reads these, never Celery's results.

    ``progress`` is 0..1; ``error_detail`` holds where an error happened (file, line, field);
    ``stats`` holds the job's counts once it ends; ``error_traceback`` the traceback of an
    unexpected crash, shown to admins only; ``heartbeat_at`` the last progress write.
    ``task_name`` names the Celery task that runs a job of this kind (``core.jobs``).
    """

    task_name: str = ""

    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED)
    progress = models.FloatField(default=0.0)
    progress_message = models.CharField(max_length=200, blank=True)
    stats = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    error_detail = models.JSONField(default=dict, blank=True)
    error_traceback = models.TextField(blank=True)
    celery_task_id = models.CharField(max_length=64, blank=True)
    cancel_requested = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True
        ordering = ["-id"]
