"""A real Celery worker process freezes a snapshot: export_job_create → on commit → the
``default`` queue → export_job_run in the worker → the job row and the file."""

import time

import pytest

from core.models import JobStatus
from curation.datasets.snapshots import export_job_create, snapshot_file_path
from curation.models import CandidateRole, DecisionLabel, Snapshot
from tests.factories import CandidateFactory, DatasetFactory, DecisionFactory, QueryFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

# A safety limit for a loaded machine; nothing here asserts a duration.
JOB_TIMEOUT = 180


def test_a_real_worker_runs_an_export_job(celery_worker_process, curator):
    dataset = DatasetFactory(name="worker-export", query_count=2)
    for i in (1, 2):
        query = QueryFactory(dataset=dataset, query_id=f"q{i}", text=f"question {i}")
        CandidateFactory(query=query, role=CandidateRole.POSITIVE, passage__text=f"answer {i}")
        negative = CandidateFactory(query=query, rank=1, passage__text=f"also answer {i}")
        CandidateFactory(query=query, rank=2, passage__text=f"unrelated {i}")
        if i == 2:
            DecisionFactory(candidate=negative, label=DecisionLabel.RELEVANT)

    job = export_job_create(dataset=dataset, policy="relabel", format="bge", user=curator)

    deadline = time.monotonic() + JOB_TIMEOUT
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.status not in (JobStatus.QUEUED, JobStatus.RUNNING):
            break
        time.sleep(0.2)
    assert job.status == JobStatus.SUCCEEDED, (job.error, celery_worker_process.log_text())
    assert job.celery_task_id
    snapshot = Snapshot.objects.get(pk=job.snapshot_id)
    assert job.stats["false_negatives_relabelled"] == 1
    lines = snapshot_file_path(snapshot=snapshot).read_text().splitlines()
    assert lines[1] == (
        '{"query": "question 2", "pos": ["answer 2", "also answer 2"], "neg": ["unrelated 2"]}'
    )
