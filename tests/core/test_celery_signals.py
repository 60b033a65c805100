"""Worker start reconciliation (core/jobs.md), called directly: which rows a starting worker
takes back, and which it must leave alone."""

import uuid

import pytest
from celery import states
from celery.app.task import Context
from django.utils import timezone

from config.celery import app
from core.celery_signals import INTERRUPTED_MESSAGE, jobs_resume_orphaned
from core.models import JobStatus
from curation.models import ImportJob

ME = "default@box-a"


def _running_job(*, started_by: str | None) -> ImportJob:
    job = ImportJob.objects.create(
        dataset_name="x",
        source_path="-",
        status=JobStatus.RUNNING,
        started_at=timezone.now(),
        celery_task_id=str(uuid.uuid4()),
    )
    if started_by:
        request = Context(
            id=job.celery_task_id,
            task="curation.tasks.import_job_run",
            args=[job.pk],
            kwargs={},
            hostname=started_by,
            delivery_info={},
        )
        app.backend.store_result(job.celery_task_id, {}, states.STARTED, request=request)
    return job


@pytest.fixture
def broker_is_a_real_one(settings):
    if settings.CELERY_BROKER_URL.startswith(("memory", "cache")):
        pytest.skip("reconciliation only applies to real brokers")


@pytest.mark.django_db
def test_a_restarting_worker_takes_back_only_the_jobs_its_previous_life_was_running(
    broker_is_a_real_one, monkeypatch, settings
):
    sent = []
    monkeypatch.setattr(app, "send_task", lambda name, **kw: sent.append((name, kw)))
    mine = _running_job(started_by=ME)
    another_workers = _running_job(started_by="default@box-b")
    never_started_by_a_worker = _running_job(started_by=None)

    lines = jobs_resume_orphaned(app=app, hostname=ME)

    mine.refresh_from_db()
    assert mine.status == JobStatus.QUEUED
    assert mine.progress_message == INTERRUPTED_MESSAGE
    assert len(lines) == 1 and f"#{mine.pk}" in lines[0]
    for job in (another_workers, never_started_by_a_worker):
        job.refresh_from_db()
        assert job.status == JobStatus.RUNNING
    # On the filesystem broker the message of a killed worker is gone: it is sent again,
    # under the same task id so that the row keeps pointing to it. Redis still holds it.
    if settings.CELERY_BROKER_URL.startswith("filesystem"):
        resend = {"args": [mine.pk], "task_id": mine.celery_task_id}
        assert sent == [("curation.tasks.import_job_run", resend)]
    else:
        assert sent == []


@pytest.mark.django_db
def test_a_job_that_finished_meanwhile_is_not_touched(broker_is_a_real_one):
    job = _running_job(started_by=ME)
    ImportJob.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED)

    assert jobs_resume_orphaned(app=app, hostname=ME) == []
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED
