"""A real Celery worker process on the test database and broker (Redis in CI).

The resume tests stop or kill the worker in the middle of a slow job and start it again under
the same node name: the job must run to the end, once more from its start (core/jobs.md).
"""

import json
import time
from pathlib import Path

import pytest

from core.jobs import job_enqueue, job_reopen, job_request_cancel
from core.models import JobStatus
from curation.models import Candidate, CandidateRole, Dataset, ImportJob
from tests.core.worker_tasks import slow_job_run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

# Generous safety limits for a loaded 2-core machine; nothing here asserts a duration.
JOB_TIMEOUT = 180


def _wait_for(job, predicate, *, worker, timeout=JOB_TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if predicate(job):
            return job
        time.sleep(0.2)
    pytest.fail(
        f"job #{job.pk} stuck in {job.status} ({job.progress:.0%} {job.progress_message!r}, "
        f"error {job.error!r})\n--- worker log ---\n{worker.log_text()}"
    )


def test_a_real_worker_runs_an_import_job_end_to_end(celery_worker_process, tmp_path, curator):
    from curation.datasets.imports import import_job_create

    source = tmp_path / "small.jsonl"
    records = [
        {"query": f"question {i}", "pos": [f"answer {i}"], "neg": [f"other {i}a", f"other {i}b"]}
        for i in range(3)
    ]
    source.write_text("".join(json.dumps(r) + "\n" for r in records))

    job = import_job_create(
        source_path=str(source),
        source_name="small.jsonl",
        dataset_name="worker-e2e",
        format="bge",
        user=curator,
    )
    job = _wait_for(
        job,
        lambda j: j.status not in (JobStatus.QUEUED, JobStatus.RUNNING),
        worker=celery_worker_process,
    )

    assert job.status == JobStatus.SUCCEEDED, (job.error, celery_worker_process.log_text())
    dataset = Dataset.objects.get(name="worker-e2e")
    assert dataset.queries.count() == 3
    pairs = Candidate.objects.filter(query__dataset=dataset)
    assert pairs.filter(role=CandidateRole.POSITIVE).count() == 3
    assert pairs.filter(role=CandidateRole.NEGATIVE).count() == 6


def _slow_job(tmp_path: Path, *, steps=40, step_seconds=0.25) -> ImportJob:
    job = ImportJob.objects.create(
        dataset_name="slow",
        source_path="-",
        options={
            "attempt_log": str(tmp_path / "attempts.log"),
            "steps": steps,
            "step_seconds": step_seconds,
        },
    )
    job_enqueue(job=job, task=slow_job_run)  # sent at once: a transactional test autocommits
    return job


def _attempts(tmp_path: Path) -> int:
    log = tmp_path / "attempts.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


def _is_mid_job(job) -> bool:
    return job.status == JobStatus.RUNNING and job.progress >= 0.1


def test_a_job_interrupted_by_a_worker_stop_runs_again_on_the_next_start(
    celery_worker_process, tmp_path
):
    job = _slow_job(tmp_path)
    _wait_for(job, _is_mid_job, worker=celery_worker_process)

    celery_worker_process.stop()  # SIGQUIT: what runall sends on Ctrl-C
    job.refresh_from_db()
    assert job.status != JobStatus.SUCCEEDED

    celery_worker_process.start()
    job = _wait_for(job, lambda j: j.status == JobStatus.SUCCEEDED, worker=celery_worker_process)
    assert job.stats == {"steps": 40}
    assert _attempts(tmp_path) == 2


def test_a_job_whose_worker_was_killed_resumes_when_the_worker_comes_back(
    celery_worker_process, tmp_path
):
    job = _slow_job(tmp_path)
    _wait_for(job, _is_mid_job, worker=celery_worker_process)

    celery_worker_process.kill()  # SIGKILL to the whole worker: nothing is handed back
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING  # what a crash leaves behind

    celery_worker_process.start()
    job = _wait_for(job, lambda j: j.status == JobStatus.SUCCEEDED, worker=celery_worker_process)
    assert _attempts(tmp_path) == 2
    assert "sent again" in celery_worker_process.log_text() or (
        "restored" in celery_worker_process.log_text()
    )


def test_a_finished_job_is_not_run_again_when_its_task_is_delivered_twice(
    celery_worker_process, tmp_path
):
    job = _slow_job(tmp_path, steps=2, step_seconds=0.05)
    _wait_for(job, lambda j: j.status == JobStatus.SUCCEEDED, worker=celery_worker_process)

    slow_job_run.delay(job.pk)  # a redelivery, as acks_late allows
    second = _slow_job(tmp_path / "..", steps=1, step_seconds=0.01)  # a marker behind it
    _wait_for(second, lambda j: j.status == JobStatus.SUCCEEDED, worker=celery_worker_process)

    assert _attempts(tmp_path) == 1


def test_a_job_queued_again_while_its_first_message_waits_runs_once(
    celery_worker_process, tmp_path
):
    """Cancelled while still queued, then retried: the first message is still in the broker
    when the retry sends a second. A worker with two processes takes both at once; only the
    message the row was last queued with may run the job (before: it ran twice at once)."""
    celery_worker_process.stop()
    celery_worker_process.concurrency = 2
    job = _slow_job(tmp_path, steps=8, step_seconds=0.25)
    first = job.celery_task_id
    job_request_cancel(job=job)
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED
    assert job_reopen(job=job, task=slow_job_run)  # a transactional test: sent at once
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED and job.celery_task_id not in ("", first)

    celery_worker_process.start()
    job = _wait_for(job, lambda j: j.status == JobStatus.SUCCEEDED, worker=celery_worker_process)
    second = _slow_job(tmp_path / "..", steps=1, step_seconds=0.01)  # a marker behind them
    _wait_for(second, lambda j: j.status == JobStatus.SUCCEEDED, worker=celery_worker_process)
    assert _attempts(tmp_path) == 1, celery_worker_process.log_text()
    assert f"dropped task {first}" in celery_worker_process.log_text()
