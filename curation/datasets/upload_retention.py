"""What becomes of an uploaded import file, and retrying a failed import from it.

    upload stored (uploads.py) ─► import job ─┬► succeeded: the file is deleted at once
                                              └► failed / cancelled: the file is kept
                                                 SIEVE_UPLOAD_KEEP_FAILED_DAYS days, during
                                                 which Retry reopens the same job on it; then
                                                 the purge deletes it

The purge (``uploads_purge``) runs at every upload (web and API) and from ``manage.py
purge_uploads`` (a cron line on a server that goes days without uploads). It looks at the
files in SIEVE_UPLOAD_DIR, not at the jobs, so its work is bounded by what is kept.

Only files directly in SIEVE_UPLOAD_DIR are ever deleted: an import queued from the command
line (``import_dataset --async``) records the user's own path, which Sieve reads and never
removes, whatever becomes of the import.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.errors import ApplicationError
from core.jobs import job_reopen
from core.models import FINISHED_STATUSES, JobStatus
from curation.models import ImportJob

logger = logging.getLogger(__name__)

# The end states whose file is kept for a retry.
RETRYABLE_STATUSES = (JobStatus.FAILED, JobStatus.CANCELLED)
# A file no import names yet: an upload being written, or whose job is being created in
# another request. Older than this, nothing will ever name it.
ORPHAN_GRACE = timedelta(hours=1)


def upload_dir() -> Path:
    return Path(settings.SIEVE_UPLOAD_DIR)


def keep_failed_for() -> timedelta:
    return timedelta(days=max(0, settings.SIEVE_UPLOAD_KEEP_FAILED_DAYS))


def upload_owned(path: str | Path) -> bool:
    """Whether ``path`` is a file Sieve stored (directly in SIEVE_UPLOAD_DIR, symbolic links
    resolved): the only files Sieve may delete."""
    try:
        resolved = Path(path).resolve()
        root = upload_dir().resolve()
    except (OSError, RuntimeError):
        return False
    return resolved.parent == root


def upload_delete(path: str | Path) -> int:
    """Delete an uploaded file; returns the bytes freed (0 when it was already gone). A path
    outside SIEVE_UPLOAD_DIR is left alone."""
    path = Path(path)
    if not upload_owned(path) or not path.is_file():
        return 0
    try:
        size = path.stat().st_size
        path.unlink()
    except FileNotFoundError:
        return 0
    return size


def import_source_discard(*, job: ImportJob) -> None:
    """After an import ended: an upload whose import succeeded has served its purpose. A
    failure to delete is logged, never the job's failure: the purge tries again."""
    if job.status != JobStatus.SUCCEEDED:
        return
    try:
        upload_delete(job.source_path)
    except OSError:
        logger.warning("import #%s: could not delete %s", job.pk, job.source_path, exc_info=True)


# --- retry ---------------------------------------------------------------------------------


@dataclass
class RetryState:
    """What the import's page says about retrying it."""

    shown: bool  # the import failed or was cancelled
    possible: bool  # … and its file is still there
    kept_until: datetime | None = None  # when the purge deletes the uploaded file
    reason: str = ""  # why not, when not possible


def import_job_retry_state(*, job: ImportJob) -> RetryState:
    if job.status not in RETRYABLE_STATUSES:
        return RetryState(shown=False, possible=False)
    try:
        _check_source(job)
    except ApplicationError as error:
        return RetryState(shown=True, possible=False, reason=error.message)
    kept_until = None
    if upload_owned(job.source_path):
        kept_until = (job.finished_at or job.created_at) + keep_failed_for()
    return RetryState(shown=True, possible=True, kept_until=kept_until)


def import_job_retry(*, job: ImportJob) -> ImportJob:
    """Run a failed or cancelled import again from its kept file: the same job, reopened
    (queued again, its error cleared). Refused, naming the file, when the file is gone.

    The row is locked while it is checked and reopened, so a retry and the purge never
    cross (the purge locks it too), and two clicks reopen it once."""
    with transaction.atomic():
        job = ImportJob.objects.select_for_update().get(pk=job.pk)
        if job.status not in RETRYABLE_STATUSES:
            if job.status in FINISHED_STATUSES:
                problem = f"import #{job.pk} {job.status}: there is nothing to retry"
            else:
                problem = f"import #{job.pk} is {job.status}: it can be retried once it ended"
            raise ApplicationError(problem, detail={"status": job.status})
        _check_source(job)
        job_reopen(job=job, changes={"progress": 0.0, "progress_message": "retry", "stats": {}})
    job.refresh_from_db()
    return job


def _check_source(job: ImportJob) -> None:
    name = job.source_name or Path(job.source_path).name
    if Path(job.source_path).exists():
        return
    if upload_owned(job.source_path):
        days = settings.SIEVE_UPLOAD_KEEP_FAILED_DAYS
        problem = (
            f"{name}: the uploaded file is no longer kept (the file of a failed import is "
            f"deleted after {days} day{'s' if days != 1 else ''}); upload it again"
        )
    else:
        problem = f"{name}: the file no longer exists at {job.source_path}"
    raise ApplicationError(problem, detail={"file": name})


# --- the purge -----------------------------------------------------------------------------


@dataclass
class PurgeResult:
    deleted: int = 0
    freed_bytes: int = 0
    kept: int = 0


def uploads_purge(*, now: datetime | None = None) -> PurgeResult:
    """Delete the uploaded files no import needs any more: a succeeded import's (left when a
    worker died between the end and the delete, or uploaded before files were deleted), a
    failed or cancelled import's once SIEVE_UPLOAD_KEEP_FAILED_DAYS passed since it ended,
    and a file no import names after ORPHAN_GRACE. A file of a queued or running import is
    always kept."""
    now = now or timezone.now()
    result = PurgeResult()
    root = upload_dir()
    if not root.is_dir():
        return result
    with os.scandir(root) as entries:
        files = [Path(e.path) for e in entries if e.is_file(follow_symlinks=False)]
    for path in files:
        freed = _purge_one(path, now=now)
        if freed is None:
            result.kept += 1
        else:
            result.deleted += 1
            result.freed_bytes += freed
    return result


def _purge_one(path: Path, *, now: datetime) -> int | None:
    """The bytes freed, or None when the file is kept."""
    # The job rows stay locked until the file is gone, so a retry cannot reopen the job in
    # between (it would find the file gone and say so).
    with transaction.atomic():
        jobs = list(
            ImportJob.objects.select_for_update()
            .filter(source_path__in=_stored_forms(path))
            .values_list("status", "finished_at", "created_at")
        )
        if not _expired(jobs, path=path, now=now):
            return None
        try:
            return upload_delete(path)
        except OSError:
            logger.warning("could not delete the upload %s", path, exc_info=True)
            return None


def _stored_forms(path: Path) -> list[str]:
    """How an import job may have recorded this file: under SIEVE_UPLOAD_DIR as written in
    the settings, or resolved."""
    return sorted({str(upload_dir() / path.name), str(upload_dir().resolve() / path.name)})


def _expired(jobs: list[tuple], *, path: Path, now: datetime) -> bool:
    if any(status not in FINISHED_STATUSES for status, _, _ in jobs):
        return False
    if not jobs:
        try:
            modified = datetime.fromtimestamp(path.stat().st_mtime, tz=now.tzinfo)
        except FileNotFoundError:
            return False
        return modified <= now - ORPHAN_GRACE
    if any(status not in RETRYABLE_STATUSES for status, _, _ in jobs):
        return True  # an import of it succeeded
    ended = max(finished_at or created_at for _, finished_at, created_at in jobs)
    return ended <= now - keep_failed_for()
