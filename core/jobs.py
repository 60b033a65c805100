"""The job framework: every background job (import, export, mining, cascade, synthesis,
agreement report, training, evaluation, policy comparison) runs through ``job_run``.

    job_<kind>_create ─► job_enqueue (on commit) ─► Celery task(pk) ─► <kind>_execute
        ─► job_run: job_start ─► work(progress) ─► job_finish(outcome) | job_fail(error)

* ``job_start`` skips a row that already finished (a message delivered twice does no harm).
* ``progress(fraction, phase)`` writes progress and its phase text with a heartbeat at most
  every half second, in autocommit so pages see it live, and raises ``JobCancelled`` once a
  user asked to stop (checked at each write).
* ``work`` returns a ``JobOutcome``: its stats, a one-line summary and, for jobs made of many
  items (cascade calls, synthesized passages), how many items failed and why. Items that
  failed turn the end state into "partial" (finished with failures) or, when nothing
  succeeded, "failed" — a job never ends green over failed work.
* Any exception is recorded on the row: an ``ApplicationError`` with its where-detail (file,
  line, field), anything else by type and message, with the traceback kept for admins.

Enqueueing goes through here too: a job model names its Celery task in ``task_name``, so a
service never imports its app's tasks module. What survives a dying worker: core/jobs.md.
"""

import importlib
import logging
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from celery import current_app
from django.db import transaction
from django.dispatch import Signal
from django.utils import timezone

from .errors import ApplicationError
from .models import FINISHED_STATUSES, Job, JobStatus

logger = logging.getLogger(__name__)

Progress = Callable[..., None]  # progress(fraction, message="", *, force=False)


# Sent once a job ended (any end state), with ``job``: how an app above reacts to a job of an
# app below without that app importing it (experiments: train → evaluate).
job_finished = Signal()


class JobCancelled(Exception):
    pass


def no_progress(fraction: float, message: str = "", *, force: bool = False) -> None:
    """The progress callback of work run outside a job (tests, notebooks)."""


@dataclass
class JobOutcome:
    """What a job's work returns to ``job_run``."""

    stats: dict
    message: str = "done"
    # Item-based jobs: how many items failed and succeeded, and the commonest reasons.
    items_failed: int = 0
    items_succeeded: int | None = None
    failure_reasons: list[tuple[str, int]] = field(default_factory=list)


def job_enqueue(*, job: Job, task=None) -> None:
    """Send the job's task (``type(job).task_name``, or ``task`` when given) with its primary
    key, once the transaction that created the job commits.

    The task id is chosen here and stored on the row BEFORE the message goes out: the row
    names the one message that may run it. A job sent twice (reopened for a retry while the
    message of an earlier queueing still waited in the broker) is then run by the newest
    message only; ``job_start`` drops the others. A redelivery keeps its message's id."""

    def send():
        task_id = str(uuid.uuid4())
        type(job).objects.filter(pk=job.pk).update(celery_task_id=task_id)
        job.celery_task_id = task_id
        (task or _task(type(job).task_name)).apply_async((job.pk,), task_id=task_id)

    transaction.on_commit(send)


def job_reopen(*, job: Job, changes: dict | None = None, task=None) -> bool:
    """Queue a job that ended again, to finish what it left (a retry of its failed items, a
    resume with a larger budget): status back to queued with the cancel flag, the end time
    and the error cleared, ``changes`` applied, and its task sent once the caller's
    transaction commits. Only an ended job is reopened (the row is updated only while it
    is still ended, so two clicks reopen it once); returns whether this call reopened it.
    The job's own work must resume from what it saved (every item-based job here does).
    ``task`` as for ``job_enqueue``."""
    reopened = (
        type(job)
        .objects.filter(pk=job.pk, status__in=FINISHED_STATUSES)
        .update(
            status=JobStatus.QUEUED,
            cancel_requested=False,
            finished_at=None,
            error="",
            error_detail={},
            error_traceback="",
            **(changes or {}),
        )
    )
    if reopened:
        job_enqueue(job=job, task=task)
    return bool(reopened)


def _task(name: str):
    """The registered Celery task ``name`` (``<app>.tasks.<function>``). A web process imports
    no tasks module of its own accord (Celery's autodiscovery runs in workers), so the module
    the name points to is imported on first use."""
    if name not in current_app.tasks:
        importlib.import_module(name.rsplit(".", 1)[0])
    return current_app.tasks[name]


def _running_task_id() -> str | None:
    """The id of the Celery task this process is running for a worker, or None (a command,
    a test, an eager call)."""
    from celery import current_task

    request = getattr(current_task, "request", None)
    if request is None or getattr(request, "is_eager", False):
        return None
    return getattr(request, "id", None) or None


def job_start(*, job: Job) -> bool:
    """Mark a job running. Returns False when it already finished (a redelivered task), or
    when the running task is not the one the row was last queued with (a stale message: the
    job was queued again since, and the newer message runs it)."""
    job.refresh_from_db()
    if job.status in FINISHED_STATUSES:
        return False
    running = _running_task_id()
    if running and job.celery_task_id and running != job.celery_task_id:
        logger.warning(
            "%s #%s: dropped task %s, the job was queued again as %s",
            type(job).__name__, job.pk, running, job.celery_task_id,
        )  # fmt: skip
        return False
    job.status = JobStatus.RUNNING
    job.progress = 0.0
    job.started_at = job.heartbeat_at = timezone.now()
    job.error = job.error_traceback = ""
    job.error_detail = {}
    job.save(
        update_fields=[
            "status",
            "progress",
            "started_at",
            "heartbeat_at",
            "error",
            "error_detail",
            "error_traceback",
        ]
    )
    return True


class ProgressReporter:
    """Writes progress and phase text at most every ``interval`` seconds (each write is also
    the job's heartbeat) and raises JobCancelled when a user asked to cancel. ``echo`` also
    receives every call (a terminal progress line for management commands)."""

    def __init__(self, job: Job, *, interval: float = 0.5, echo: Progress | None = None):
        self.job = job
        self.interval = interval
        self.echo = echo
        self._last = 0.0

    def __call__(self, fraction: float, message: str = "", *, force: bool = False) -> None:
        if self.echo is not None:
            self.echo(fraction, message, force=force)
        now = time.monotonic()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        model = type(self.job)
        model.objects.filter(pk=self.job.pk).update(
            progress=max(0.0, min(1.0, fraction)),
            progress_message=message[:200],
            heartbeat_at=timezone.now(),
        )
        if model.objects.filter(pk=self.job.pk, cancel_requested=True).exists():
            raise JobCancelled


def job_run(*, job: Job, work: Callable[[Progress], JobOutcome], echo: Progress | None = None):
    """Run one job: start it (or do nothing when it already finished), call ``work`` with a
    progress reporter, and record how it ended. Returns True when the work ran."""
    if not job_start(job=job):
        logger.info("%s #%s already finished; nothing to do", type(job).__name__, job.pk)
        return False
    try:
        outcome = work(ProgressReporter(job, echo=echo))
    except Exception as error:  # noqa: BLE001 - every failure belongs on the job row
        job_fail(job=job, error=error)
    else:
        job_finish(job=job, outcome=outcome)
    for receiver, result in job_finished.send_robust(sender=type(job), job=job):
        if isinstance(result, Exception):
            logger.error(
                "%s #%s: %s failed after the job ended: %r",
                type(job).__name__,
                job.pk,
                getattr(receiver, "__qualname__", receiver),
                result,
            )
    return True


def job_finish(*, job: Job, outcome: JobOutcome) -> None:
    """Record the end of work that returned: succeeded, partial (some items failed) or failed
    (items failed and none succeeded), with the commonest failure reasons as the error."""
    job.stats = outcome.stats
    job.progress = 1.0
    job.progress_message = outcome.message[:200]
    job.finished_at = timezone.now()
    if outcome.items_failed:
        job.status = JobStatus.FAILED if outcome.items_succeeded == 0 else JobStatus.PARTIAL_FAILURE
        job.error = failure_summary(
            failed=outcome.items_failed,
            succeeded=outcome.items_succeeded,
            reasons=outcome.failure_reasons,
        )
        job.error_detail = {"items_failed": outcome.items_failed}
        if outcome.failure_reasons:
            job.error_detail["reasons"] = [
                {"reason": reason, "count": count} for reason, count in outcome.failure_reasons
            ]
    else:
        job.status = JobStatus.SUCCEEDED
        job.error = ""
        job.error_detail = {}
    job.save(
        update_fields=[
            "status",
            "progress",
            "progress_message",
            "finished_at",
            "stats",
            "error",
            "error_detail",
        ]
    )


def failure_summary(*, failed: int, succeeded: int | None, reasons: list[tuple[str, int]]) -> str:
    """'36 items failed (0 succeeded): 36× AuthenticationError: …; …'."""
    head = f"{failed:,} item{'s' if failed != 1 else ''} failed"
    if succeeded is not None:
        head += f" ({succeeded:,} succeeded)"
    if not reasons:
        return head
    return head + ": " + "; ".join(f"{count:,}× {reason}" for reason, count in reasons)


def job_fail(*, job: Job, error: Exception) -> None:
    """Record a failure on the row. ApplicationErrors keep their where-detail; anything else
    is logged and shown by type and message, its traceback kept on the row for admins."""
    job.error_traceback = ""
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
        job.error_traceback = "".join(traceback.format_exception(error))[-20000:]
    job.finished_at = timezone.now()
    job.save(update_fields=["status", "error", "error_detail", "error_traceback", "finished_at"])


def job_request_cancel(*, job: Job) -> None:
    """A queued job is cancelled at once; a running one stops at its next progress write."""
    type(job).objects.filter(pk=job.pk, status__in=[JobStatus.QUEUED, JobStatus.RUNNING]).update(
        cancel_requested=True
    )
    type(job).objects.filter(pk=job.pk, status=JobStatus.QUEUED).update(
        status=JobStatus.CANCELLED, finished_at=timezone.now(), error="cancelled by a user"
    )
