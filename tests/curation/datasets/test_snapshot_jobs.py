"""Export as a job: export_job_create enqueues on commit, export_job_run records progress,
the snapshot and its counts on the job row, failures and cancellation."""

import pytest

from core.errors import ApplicationError
from core.models import JobStatus
from curation.datasets.snapshots import export_job_create, export_job_run, snapshot_file_path
from curation.models import CandidateRole, DecisionLabel, ExportJob, Snapshot
from tests.factories import CandidateFactory, DatasetFactory, DecisionFactory, QueryFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def snapshot_dir(settings, tmp_path):
    settings.SIEVE_SNAPSHOT_DIR = tmp_path / "snapshots"
    return settings.SIEVE_SNAPSHOT_DIR


@pytest.fixture
def dataset():
    ds = DatasetFactory(name="jobs", query_count=3)
    for i in range(1, 4):
        q = QueryFactory(dataset=ds, query_id=f"q{i}", text=f"query {i}")
        CandidateFactory(query=q, role=CandidateRole.POSITIVE, passage__doc_id=f"p{i}")
        fn = CandidateFactory(query=q, rank=1, passage__doc_id=f"n{i}a")
        CandidateFactory(query=q, rank=2, passage__doc_id=f"n{i}b")
        if i == 2:
            DecisionFactory(candidate=fn, label=DecisionLabel.RELEVANT)
    return ds


def test_create_enqueues_after_commit(dataset, curator, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job = export_job_create(dataset=dataset, policy="remove", format="bge", user=curator)
    assert len(callbacks) == 1
    job.refresh_from_db()
    assert (job.status, job.policy, job.format, job.max_false_negatives) == (
        "queued",
        "remove",
        "bge",
        7,
    )
    assert job.created_by == curator


def test_run_stores_the_snapshot_and_counts(dataset, curator, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        job = export_job_create(dataset=dataset, policy="remove", format="tevatron", user=curator)
    export_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED
    assert job.progress == 1.0
    snapshot = job.snapshot
    assert snapshot is not None and snapshot.created_by == curator
    assert snapshot_file_path(snapshot=snapshot).read_text().count("\n") == 2
    assert job.stats["queries_out"] == 2
    assert job.stats["dropped_remove"] == 1
    assert job.stats["sha256"] == snapshot.sha256
    assert job.progress_message == "2 queries written"

    # a redelivered task for a finished job changes nothing
    export_job_run(job_id=job.pk)
    assert Snapshot.objects.count() == 1


def test_second_identical_job_points_at_the_same_snapshot(
    dataset, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        first = export_job_create(dataset=dataset, policy="relabel", format="bge")
        second = export_job_create(dataset=dataset, policy="relabel", format="bge")
    export_job_run(job_id=first.pk)
    export_job_run(job_id=second.pk)
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.snapshot_id == second.snapshot_id
    assert second.status == JobStatus.SUCCEEDED


def test_failure_is_recorded_on_the_row(dataset, snapshot_dir):
    # a row written around the service's validation, e.g. by an older version
    job = ExportJob.objects.create(dataset=dataset, policy="drop_all", format="bge")
    export_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert "unknown policy 'drop_all'" in job.error
    assert job.error_detail == {"field": "policy"}
    assert not Snapshot.objects.exists()


def test_cancel_requested_stops_the_export_and_leaves_no_file(dataset, snapshot_dir):
    job = ExportJob.objects.create(
        dataset=dataset,
        policy="default",
        format="bge",
        status=JobStatus.RUNNING,
        cancel_requested=True,
    )
    export_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED
    assert job.snapshot is None
    assert not Snapshot.objects.exists()
    assert not [p for p in snapshot_dir.rglob("*") if p.is_file()]


def test_invalid_request_is_refused_before_a_job_exists(dataset):
    with pytest.raises(ApplicationError):
        export_job_create(dataset=dataset, policy="default", format="parquet")
    assert not ExportJob.objects.exists()
