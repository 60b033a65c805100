"""Import jobs (the web upload's path) and the import_dataset command."""

import hashlib
import json
import time

import pytest
from django.core.management import CommandError, call_command

from core.errors import ApplicationError
from core.models import JobStatus
from curation import tasks
from curation.datasets.imports import import_job_create, import_job_run
from curation.models import Candidate, Dataset, ImportJob, Passage, Query
from tests.support.sends import capture_sends


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


GOOD = [
    {"query": "q1", "pos": ["p1"], "neg": ["n1", "n2"], "neg_scores": [0.2, 0.1]},
    {"query": "q2", "pos": ["p2"], "neg": ["n1"]},
]


@pytest.fixture
def sent(monkeypatch):
    """Tasks the code sends to Celery, captured instead of sent."""
    return capture_sends(monkeypatch, tasks.import_job_run)


@pytest.mark.django_db
def test_job_is_enqueued_once_its_transaction_commits(
    tmp_path, curator, sent, django_capture_on_commit_callbacks
):
    path = write_jsonl(tmp_path / "upload-1", GOOD)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        job = import_job_create(
            source_path=str(path), source_name="train.jsonl", dataset_name="d", user=curator
        )
        assert sent == []
    assert len(callbacks) == 1 and sent == [job.pk]
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED and job.celery_task_id == sent.ids[0] != ""
    assert job.created_by == curator


@pytest.mark.django_db
def test_job_create_refuses_bad_requests(tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", GOOD)
    with pytest.raises(ApplicationError, match="needs a name"):
        import_job_create(source_path=str(path), source_name="a.jsonl", dataset_name="")
    with pytest.raises(ApplicationError, match='unknown format "xml"'):
        import_job_create(
            source_path=str(path), source_name="a.jsonl", dataset_name="d", format="xml"
        )
    with pytest.raises(ApplicationError, match="does not exist"):
        import_job_create(source_path=str(tmp_path / "gone"), source_name="gone", dataset_name="d")
    assert not ImportJob.objects.exists()


@pytest.mark.django_db
def test_job_run_imports_and_records_stats_and_sha256(tmp_path, curator, sent):
    path = write_jsonl(tmp_path / "upload-1", GOOD)
    job = import_job_create(
        source_path=str(path), source_name="train.jsonl", dataset_name="d", user=curator
    )
    import_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED and job.progress == 1.0
    assert job.source_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert job.dataset == Dataset.objects.get(name="d")
    assert job.dataset.created_by == curator
    assert (job.stats["queries_added"], job.stats["negatives_added"]) == (2, 3)
    assert job.progress_message == "2 queries, 2 positives, 3 negatives, 4 new passages"
    assert job.finished_at is not None


@pytest.mark.django_db
def test_failed_job_names_the_line_keeps_the_file_and_adds_nothing(tmp_path, sent):
    path = write_jsonl(tmp_path / "upload-2", [*GOOD, {"query": "q3", "pos": "p3"}])
    job = import_job_create(source_path=str(path), source_name="train.jsonl", dataset_name="d")
    import_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.error == 'train.jsonl line 3, field "pos": expected a list of strings, got string'
    assert job.error_detail == {"file": "train.jsonl", "line": 3, "field": "pos"}
    assert path.exists()
    assert not (Dataset.objects.exists() or Passage.objects.exists() or Query.objects.exists())


@pytest.mark.django_db
def test_redelivered_task_does_nothing_twice(tmp_path, sent):
    path = write_jsonl(tmp_path / "upload-3", GOOD)
    job = import_job_create(source_path=str(path), source_name="a.jsonl", dataset_name="d")
    import_job_run(job_id=job.pk)
    finished = ImportJob.objects.get(pk=job.pk).finished_at
    import_job_run(job_id=job.pk)
    assert ImportJob.objects.get(pk=job.pk).finished_at == finished
    assert Candidate.objects.count() == 5


@pytest.mark.django_db
def test_job_left_running_by_a_dead_worker_runs_again_safely(tmp_path, sent):
    path = write_jsonl(tmp_path / "upload-4", GOOD)
    job = import_job_create(source_path=str(path), source_name="a.jsonl", dataset_name="d")
    import_job_run(job_id=job.pk)
    ImportJob.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING)  # as if it crashed
    import_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED
    assert job.stats["queries_added"] == 0 and job.stats["queries_existing"] == 2
    assert Candidate.objects.count() == 5


@pytest.mark.django_db
def test_cancel_requested_before_the_first_progress_adds_nothing(tmp_path, sent):
    path = write_jsonl(tmp_path / "upload-5", GOOD)
    job = import_job_create(source_path=str(path), source_name="a.jsonl", dataset_name="d")
    ImportJob.objects.filter(pk=job.pk).update(cancel_requested=True)
    import_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED
    assert not Dataset.objects.exists() and not Passage.objects.exists()


# --- the command ------------------------------------------------------------------------


@pytest.mark.django_db
def test_command_imports_and_prints_counts(shared_data, capsys):
    call_command("import_dataset", str(shared_data / "beir" / "scifact"), "--name", "scifact")
    out = capsys.readouterr().out
    assert "809 queries, 919 positives, 0 negatives, 5,183 new passages" in out
    call_command("import_dataset", str(shared_data / "beir" / "scifact"), "--name", "scifact")
    assert "already present: 809 queries, 5,183 passages" in capsys.readouterr().out


@pytest.mark.django_db
def test_command_options_reach_the_import(shared_data, capsys):
    call_command(
        "import_dataset",
        str(shared_data / "beir" / "msmarco_trecdl_sample"),
        "--name",
        "dl",
        "--corpus",
        "msmarco",
        "--format",
        "beir",
        "--split",
        "test",
        "--min-relevance",
        "2",
    )
    dataset = Dataset.objects.get(name="dl")
    assert dataset.corpus.name == "msmarco" and dataset.positive_count == 1804 + 697


@pytest.mark.django_db
def test_command_error_names_the_line(tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", [GOOD[0], {"query": 5, "pos": []}])
    with pytest.raises(
        CommandError, match=r'^bad\.jsonl line 2, field "query": expected a string, got int$'
    ):
        call_command("import_dataset", str(path), "--name", "d")
    assert not Dataset.objects.exists()


@pytest.mark.django_db
def test_command_async_queues_a_job(tmp_path, sent, django_capture_on_commit_callbacks, capsys):
    path = write_jsonl(tmp_path / "a.jsonl", GOOD)
    with django_capture_on_commit_callbacks(execute=True):
        call_command("import_dataset", str(path), "--name", "d", "--async", "--split", "x")
    job = ImportJob.objects.get()
    assert sent == [job.pk] and job.options == {"split": "x"}
    assert f"queued import job #{job.pk}" in capsys.readouterr().out


# --- a real worker ----------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_celery_worker_runs_an_import_job_end_to_end(shared_data):
    from celery.contrib.testing.worker import start_worker

    from config.celery import app

    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
        job = import_job_create(
            source_path=str(shared_data / "beir" / "scifact"),
            source_name="scifact",
            dataset_name="scifact",
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            job.refresh_from_db()
            if job.status in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED):
                break
            time.sleep(0.2)
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.celery_task_id
    assert (job.dataset.query_count, job.dataset.positive_count) == (809, 919)
