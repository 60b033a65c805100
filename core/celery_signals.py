"""Worker-side bookkeeping that lets a restarted worker resume the jobs it was running when it
died. The design and every failure case are in ``core/jobs.md``.

* ``task_prerun`` records on the result backend which worker node started a task (what
  Celery's ``task_track_started`` does; done here so it holds whatever the settings say).
* ``worker_ready`` reconciles: job rows still ``running`` whose task was started by a previous
  life of *this* node (same node name, so nothing can be running them now) are put back in
  the queue — their message is given back to the broker where it is stranded (Redis's unacked
  set) or sent again where it is gone (the filesystem transport deletes a message when it is
  delivered). The first ``job_start`` of the redelivered task resumes the row.
"""

import json
import logging
import os
from pathlib import Path

from celery import signals, states

logger = logging.getLogger(__name__)

INTERRUPTED_MESSAGE = "interrupted: its worker stopped; it runs again when a worker is free"


@signals.task_prerun.connect
def record_task_started(sender=None, task_id=None, task=None, **kwargs):
    if task is None or task.ignore_result or getattr(task, "track_started", False):
        return
    request = task.request
    if request.is_eager:  # run in-process: no worker to record
        return
    try:
        task.backend.store_result(
            task_id,
            {"pid": os.getpid(), "hostname": request.hostname},
            states.STARTED,
            request=request,
        )
    except Exception:  # never let bookkeeping stop the task itself
        logger.exception("could not record the start of task %s", task_id)


@signals.worker_ready.connect
def reconcile_jobs_on_worker_ready(sender=None, **kwargs):
    """Runs in the worker's main process after it subscribed to its queues and before it takes
    its first message, so this node runs nothing yet."""
    hostname = getattr(sender, "hostname", None)
    if not hostname:
        return
    try:
        resumed = jobs_resume_orphaned(app=sender.app, hostname=hostname)
    except Exception:  # a broken reconciliation must not keep the worker from working
        logger.exception("job reconciliation at start of %s failed", hostname)
        return
    for line in resumed:
        logger.warning("%s: %s", hostname, line)


def _job_models():
    from django.apps import apps

    from core.models import Job

    return [m for m in apps.get_models() if issubclass(m, Job)]


def jobs_resume_orphaned(*, app, hostname: str) -> list[str]:
    """Put back in the queue the jobs that a previous life of worker ``hostname`` was running.
    Returns one human-readable line per job it touched."""
    from django.utils import timezone

    from core.models import JobStatus

    transport = app.connection_for_write().transport_cls
    if transport in ("memory", "cache"):
        return []
    orphans = []
    for model in _job_models():
        running = model.objects.filter(status=JobStatus.RUNNING).exclude(celery_task_id="")
        for job in running.only("pk", "celery_task_id", "started_at"):
            meta = app.backend.get_task_meta(job.celery_task_id)
            if meta.get("status") == states.STARTED and meta.get("worker") == hostname:
                orphans.append((model, job, meta.get("name") or meta.get("task_name")))
    if not orphans:
        return []

    task_ids = {job.celery_task_id for _, job, _ in orphans}
    stranded = _broker_stranded_messages(app=app, transport=transport, task_ids=task_ids)
    lines, to_restore = [], set()
    for model, job, task_name in orphans:
        # Conditional on started_at: if another node already picked the task up again, its
        # job_start changed started_at and this row is not ours to touch.
        updated = model.objects.filter(
            pk=job.pk, status=JobStatus.RUNNING, started_at=job.started_at
        ).update(status=JobStatus.QUEUED, progress_message=INTERRUPTED_MESSAGE)
        if not updated:
            continue
        where = stranded.get(job.celery_task_id)
        if where == "lost":
            if not task_name:
                model.objects.filter(pk=job.pk).update(
                    status=JobStatus.FAILED,
                    finished_at=timezone.now(),
                    error="its worker was killed and its task cannot be sent again; start it again",
                )
                lines.append(f"{model.__name__} #{job.pk}: lost with its worker, marked failed")
                continue
            # Job tasks take the job's primary key, and only that (core.jobs.job_enqueue).
            app.send_task(task_name, args=[job.pk], task_id=job.celery_task_id)
            lines.append(
                f"{model.__name__} #{job.pk}: its task was lost with the worker; sent again"
            )
        elif where == "stranded":
            to_restore.add(job.celery_task_id)
            lines.append(
                f"{model.__name__} #{job.pk}: its task was held for the dead worker; restored"
            )
        else:
            lines.append(f"{model.__name__} #{job.pk}: interrupted; its task is back in the queue")
    if to_restore:
        _redis_restore(app=app, task_ids=to_restore)
    return lines


def _broker_stranded_messages(*, app, transport: str, task_ids: set[str]) -> dict[str, str]:
    """Where each task's message is: {task_id: "queued" | "stranded" | "lost"}; a task id that
    is missing from the answer is left to the broker (AMQP redelivers on its own)."""
    if transport == "filesystem":
        queued = _filesystem_queued_ids(app=app)
        return {t: ("queued" if t in queued else "lost") for t in task_ids}
    if transport in ("redis", "rediss"):
        unacked = _redis_unacked(app=app)
        return {t: ("stranded" if t in unacked else "queued") for t in task_ids}
    return {}


def _filesystem_queued_ids(*, app) -> set[str]:
    folder = Path(app.conf.broker_transport_options["data_folder_in"])
    ids = set()
    for path in folder.glob("*.msg"):
        try:
            ids.add(json.loads(path.read_bytes())["headers"]["id"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # taken by a worker meanwhile, or not a task message
    return ids


def _redis_unacked(*, app) -> dict[str, bytes]:
    """Task id → delivery tag of the messages Redis holds as delivered-but-not-acknowledged.
    Those of a dead worker would come back only after the visibility timeout (hours)."""
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        found = {}
        for tag, raw in channel.client.hscan_iter(channel.unacked_key):
            try:
                payload = json.loads(raw)[0]
                found[payload["headers"]["id"]] = tag
            except (ValueError, KeyError, IndexError, TypeError):
                continue
        return found


def _redis_restore(*, app, task_ids: set[str]) -> None:
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        for task_id, tag in _redis_unacked(app=app).items():
            if task_id in task_ids:
                channel.qos.restore_by_tag(tag, client=channel.client)
