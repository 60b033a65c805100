"""What becomes of an uploaded file (deleted once its import succeeded, kept N days after a
failure) and retrying a failed or cancelled import from it, on the page and in the API
(curation/datasets/upload_retention.py)."""

import os
import time
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from core.errors import ApplicationError
from core.models import JobStatus
from curation import tasks
from curation.datasets.imports import import_job_create, import_job_run
from curation.datasets.upload_retention import (
    import_job_retry,
    upload_delete,
    upload_owned,
    uploads_purge,
)
from curation.models import Dataset, ImportJob
from tests.support.sends import capture_sends

pytestmark = pytest.mark.django_db

GOOD = "anchor\tpositive\tnegative\nq one\tp one\tn one\nq two\tp two\tn one\n"
# Its second line is longer than the line limit the tests set: the import fails on it.
LONG_LINE = "anchor\tpositive\nq one\tp one\n" + "q two\t" + "p" * 300 + "\n"


@pytest.fixture(autouse=True)
def upload_dir(tmp_path, settings):
    settings.SIEVE_UPLOAD_DIR = tmp_path / "uploads"
    settings.SIEVE_UPLOAD_KEEP_FAILED_DAYS = 7
    return settings.SIEVE_UPLOAD_DIR


@pytest.fixture
def sent(monkeypatch):
    """Import tasks sent to Celery, captured instead."""
    return capture_sends(monkeypatch, tasks.import_job_run)


def upload(client, text: str, *, name="pairs.tsv", dataset="d") -> ImportJob:
    response = client.post(
        reverse("curation:import_upload"),
        {"file": SimpleUploadedFile(name, text.encode()), "dataset_name": dataset},
    )
    assert response.status_code == 302, response.content
    return ImportJob.objects.latest("pk")


def run(job: ImportJob) -> ImportJob:
    import_job_run(job_id=job.pk)
    job.refresh_from_db()
    return job


def failed_upload(client, settings) -> ImportJob:
    settings.SIEVE_IMPORT_MAX_LINE_BYTES = 200
    job = run(upload(client, LONG_LINE))
    assert job.status == JobStatus.FAILED and "line 3" in job.error
    return job


def ended_ago(job: ImportJob, days: float) -> None:
    ImportJob.objects.filter(pk=job.pk).update(finished_at=timezone.now() - timedelta(days=days))


# --- retention ---------------------------------------------------------------------------


def test_an_upload_is_deleted_once_its_import_succeeded(curator_client, upload_dir):
    job = upload(curator_client, GOOD)
    assert os.path.exists(job.source_path)
    job = run(job)
    assert job.status == JobStatus.SUCCEEDED
    assert not os.path.exists(job.source_path) and list(upload_dir.iterdir()) == []


def test_a_failed_import_keeps_its_file_and_its_page_says_until_when(curator_client, settings):
    job = failed_upload(curator_client, settings)
    assert os.path.exists(job.source_path)
    page = curator_client.get(reverse("curation:import_job_detail", args=[job.pk])).content
    page = page.decode()
    kept_until = timezone.localtime(job.finished_at + timedelta(days=7))
    assert "Retry the import" in page
    assert f"kept until {kept_until:%Y-%m-%d %H:%M}" in page


def test_the_command_lines_own_file_is_never_deleted(tmp_path, sent):
    mine = tmp_path / "mine.tsv"
    mine.write_text(GOOD)
    job = run(import_job_create(source_path=str(mine), source_name="mine.tsv", dataset_name="d"))
    assert job.status == JobStatus.SUCCEEDED and mine.exists()


def test_the_purge_deletes_what_no_import_needs_and_keeps_the_rest(
    curator_client, settings, upload_dir, tmp_path
):
    expired, recent, cancelled = (failed_upload(curator_client, settings) for _ in range(3))
    queued = upload(curator_client, GOOD, dataset="q")
    left_behind = upload(curator_client, GOOD, dataset="s")
    ended_ago(expired, 7.1)
    ended_ago(recent, 6.9)
    ImportJob.objects.filter(pk=cancelled.pk).update(status=JobStatus.CANCELLED)
    ended_ago(cancelled, 30)
    # Old, but its import has yet to run.
    ImportJob.objects.filter(pk=queued.pk).update(created_at=timezone.now() - timedelta(days=60))
    # A succeeded import's file left behind (its worker died before deleting it).
    ImportJob.objects.filter(pk=left_behind.pk).update(
        status=JobStatus.SUCCEEDED, finished_at=timezone.now()
    )
    # Files no import names: one from a crash long ago, one whose job is being created.
    orphan_old, orphan_new = upload_dir / "old.jsonl", upload_dir / "new.jsonl"
    for orphan in (orphan_old, orphan_new):
        orphan.write_text("{}\n")
    two_hours_ago = time.time() - 2 * 3600
    os.utime(orphan_old, (two_hours_ago, two_hours_ago))
    # Not Sieve's: a link in the folder to someone's file.
    theirs = tmp_path / "theirs.jsonl"
    theirs.write_text("{}\n")
    (upload_dir / "link.jsonl").symlink_to(theirs)
    os.utime(upload_dir / "link.jsonl", (two_hours_ago, two_hours_ago), follow_symlinks=False)

    result = uploads_purge()

    assert [os.path.exists(job.source_path) for job in (expired, cancelled, left_behind)] == [
        False,
        False,
        False,
    ]
    assert os.path.exists(recent.source_path) and os.path.exists(queued.source_path)
    assert not orphan_old.exists() and orphan_new.exists()
    assert theirs.exists() and (upload_dir / "link.jsonl").is_symlink()
    assert (result.deleted, result.kept) == (4, 3) and result.freed_bytes > 0


def test_the_keep_period_is_a_setting(curator_client, settings):
    job = failed_upload(curator_client, settings)
    ended_ago(job, 2.5)
    settings.SIEVE_UPLOAD_KEEP_FAILED_DAYS = 3
    uploads_purge()
    assert os.path.exists(job.source_path)
    settings.SIEVE_UPLOAD_KEEP_FAILED_DAYS = 2
    uploads_purge()
    assert not os.path.exists(job.source_path)


def test_each_upload_purges_first_and_so_does_the_command(curator_client, settings, capsys):
    first, second = failed_upload(curator_client, settings), failed_upload(curator_client, settings)
    ended_ago(first, 8)
    upload(curator_client, GOOD, dataset="next")
    assert not os.path.exists(first.source_path) and os.path.exists(second.source_path)
    ended_ago(second, 8)
    call_command("purge_uploads")
    assert not os.path.exists(second.source_path)
    assert "deleted 1 file (" in capsys.readouterr().out


def test_only_files_in_the_upload_folder_are_ever_deleted(tmp_path, upload_dir):
    upload_dir.mkdir(parents=True)
    outside = tmp_path / "outside.jsonl"
    outside.write_text("{}\n")
    sneaky = upload_dir / ".." / "outside.jsonl"
    link = upload_dir / "link.jsonl"
    link.symlink_to(outside)
    assert not upload_owned(outside) and not upload_owned(sneaky) and not upload_owned(link)
    assert upload_delete(outside) == upload_delete(sneaky) == upload_delete(link) == 0
    assert outside.exists() and link.is_symlink()
    inside = upload_dir / "x.jsonl"
    inside.write_text("{}\n")
    assert upload_owned(inside) and upload_delete(inside) == 3 and not inside.exists()


# --- retry -------------------------------------------------------------------------------


def test_retry_on_the_page_runs_the_same_import_again_from_its_file(
    curator_client, settings, sent, django_capture_on_commit_callbacks
):
    job = failed_upload(curator_client, settings)
    settings.SIEVE_IMPORT_MAX_LINE_BYTES = 8 * 1024 * 1024  # what the error asked for
    with django_capture_on_commit_callbacks(execute=True):
        response = curator_client.post(reverse("curation:import_job_retry", args=[job.pk]))
    assert response.status_code == 302
    assert response["Location"] == reverse("curation:import_job_detail", args=[job.pk])
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED and job.error == "" and job.error_detail == {}
    assert sent == [job.pk]
    job = run(job)
    assert job.status == JobStatus.SUCCEEDED and job.dataset.query_count == 2
    assert ImportJob.objects.count() == 1 and not os.path.exists(job.source_path)


def test_a_cancelled_import_can_be_retried(curator_client, sent):
    job = upload(curator_client, GOOD)
    curator_client.post(reverse("curation:import_job_cancel", args=[job.pk]))
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED and os.path.exists(job.source_path)
    assert (
        "Retry the import"
        in curator_client.get(reverse("curation:import_job_detail", args=[job.pk])).content.decode()
    )
    import_job_retry(job=job)
    assert run(job).status == JobStatus.SUCCEEDED and Dataset.objects.get(name="d")


def test_retry_is_refused_clearly_once_the_file_is_gone(curator_client, settings, api_as, curator):
    job = failed_upload(curator_client, settings)
    ended_ago(job, 8)
    uploads_purge()
    page = curator_client.get(reverse("curation:import_job_detail", args=[job.pk])).content
    expected = (
        "pairs.tsv: the uploaded file is no longer kept (the file of a failed import is "
        "deleted after 7 days); upload it again"
    )
    assert expected in page.decode() and b"Retry the import" not in page

    response = curator_client.post(reverse("curation:import_job_retry", args=[job.pk]), follow=True)
    assert expected in response.content.decode()
    response = api_as(curator).post(reverse("api:import-retry", args=[job.pk]))
    assert response.status_code == 400
    assert response.json() == {"message": expected, "file": "pairs.tsv"}
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and "line 3" in job.error


def test_retry_in_the_api(curator_client, settings, api_as, curator, viewer, sent):
    job = failed_upload(curator_client, settings)
    client = api_as(curator)
    detail = client.get(reverse("api:import-detail", args=[job.pk])).json()
    assert detail["retryable"] is True and detail["file_kept_until"]
    assert api_as(viewer).post(reverse("api:import-retry", args=[job.pk])).status_code == 403

    response = client.post(reverse("api:import-retry", args=[job.pk]))
    assert response.status_code == 202, response.content
    assert response.json()["id"] == job.pk and response.json()["status"] == "queued"
    assert response.json()["retryable"] is False
    # A second click while it is queued, and a retry of a succeeded import, are refused.
    response = client.post(reverse("api:import-retry", args=[job.pk]))
    assert response.status_code == 400
    assert (
        response.json()["message"] == f"import #{job.pk} is queued: it can be retried once it ended"
    )
    settings.SIEVE_IMPORT_MAX_LINE_BYTES = 8 * 1024 * 1024
    assert run(job).status == JobStatus.SUCCEEDED
    response = client.post(reverse("api:import-retry", args=[job.pk]))
    assert response.status_code == 400
    assert response.json()["message"] == f"import #{job.pk} succeeded: there is nothing to retry"


def test_a_command_line_import_whose_file_moved_says_where_it_looked(tmp_path, sent):
    mine = tmp_path / "mine.tsv"
    mine.write_text(LONG_LINE.replace("p" * 300, "p"))
    job = import_job_create(source_path=str(mine), source_name="mine.tsv", dataset_name="d")
    ImportJob.objects.filter(pk=job.pk).update(status=JobStatus.FAILED)
    mine.unlink()
    with pytest.raises(ApplicationError, match=f"mine.tsv: the file no longer exists at {mine}"):
        import_job_retry(job=job)
