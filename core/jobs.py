"""Bookkeeping shared by every job row (import, export, mining, cascade, training, ...).

Progress is written with plain UPDATEs in autocommit, outside the job's own data
transaction, so the web page sees it live. A job checks ``cancel_requested`` between steps.
"""

import logging
import time

from django.db import transaction
from django.utils import timezone

from .errors import ApplicationError
from .models import FINISHED_STATUSES, Job, JobStatus

logger = logging.getLogger(__name__)


class JobCancelled(Exception):
    pass


def job_enqueue(*, job: Job, task) -> None:
    """Send ``task(job.pk)`` once the transaction that created the job commits."""

    def send():
        result = task.delay(job.pk)
        type(job).objects.filter(pk=job.pk).update(celery_task_id=result.id or "")

    transaction.on_commit(send)


def job_start(*, job: Job) -> bool:
    """Mark a job running. Returns False when it already finished (a redelivered task)."""
    job.refresh_from_db()
    if job.status in FINISHED_STATUSES:
        return False
    job.status = JobStatus.RUNNING
    job.progress = 0.0
    job.started_at = timezone.now()
    job.error = ""
    job.error_detail = {}
    job.save(update_fields=["status", "progress", "started_at", "error", "error_detail"])
    return True


class ProgressReporter:
    """Writes progress at most every ``interval`` seconds and raises JobCancelled when a
    user asked to cancel."""

    def __init__(self, job: Job, *, interval: float = 0.5):
        self.job = job
        self.interval = interval
        self._last = 0.0

    def __call__(self, fraction: float, message: str = "", *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        model = type(self.job)
        model.objects.filter(pk=self.job.pk).update(
            progress=max(0.0, min(1.0, fraction)), progress_message=message[:200]
        )
        if model.objects.filter(pk=self.job.pk, cancel_requested=True).exists():
            raise JobCancelled


def job_succeed(*, job: Job, stats: dict | None = None, message: str = "done") -> None:
    job.status = JobStatus.SUCCEEDED
    job.progress = 1.0
    job.progress_message = message
    job.finished_at = timezone.now()
    fields = ["status", "progress", "progress_message", "finished_at"]
    if stats is not None:
        job.stats = stats
        fields.append("stats")
    job.save(update_fields=fields)


def job_fail(*, job: Job, error: Exception) -> None:
    """Record a failure on the row. ApplicationErrors keep their where-detail; anything else
    is logged with its traceback and shown by type and message."""
    if isinstance(error, JobCancelled):
        job.status = JobStatus.CANCELLED
        job.error = "cancelled by a user"
        job.error_detail = {}
    elif isinstance(error, ApplicationError):
        job.status = JobStatus.FAILED
        job.error = error.message
        job.error_detail = error.detail
    else:
        logger.exception("job %s #%s crashed", type(job).__name__, job.pk)
        job.status = JobStatus.FAILED
        job.error = f"{type(error).__name__}: {error}"
        job.error_detail = {}
    job.finished_at = timezone.now()
    job.save(update_fields=["status", "error", "error_detail", "finished_at"])


def job_request_cancel(*, job: Job) -> None:
    type(job).objects.filter(pk=job.pk, status__in=[JobStatus.QUEUED, JobStatus.RUNNING]).update(
        cancel_requested=True
    )
    type(job).objects.filter(pk=job.pk, status=JobStatus.QUEUED).update(
        status=JobStatus.CANCELLED, finished_at=timezone.now(), error="cancelled by a user"
    )
