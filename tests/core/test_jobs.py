"""The job framework (core/jobs.py, core/job_pages.py): how a job ends, what the page shows."""

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from core.errors import ApplicationError
from core.jobs import JobCancelled, JobOutcome, job_request_cancel, job_run
from core.models import JobStatus
from curation.models import ImportJob

pytestmark = pytest.mark.django_db


def _job(**fields) -> ImportJob:
    return ImportJob.objects.create(dataset_name="d", source_path="/nowhere.jsonl", **fields)


def test_work_that_returns_succeeds_with_its_stats_and_message():
    job = _job()
    ran = job_run(job=job, work=lambda progress: JobOutcome(stats={"rows": 3}, message="3 rows"))
    job.refresh_from_db()
    assert ran and job.status == JobStatus.SUCCEEDED
    assert job.stats == {"rows": 3} and job.progress_message == "3 rows" and job.progress == 1.0
    assert job.error == "" and job.finished_at is not None and job.heartbeat_at is not None


def test_failed_items_end_partial_with_their_commonest_reasons():
    job = _job()
    outcome = JobOutcome(
        stats={},
        items_failed=3,
        items_succeeded=30,
        failure_reasons=[("RateLimitError: slow down", 2), ("timed out", 1)],
    )
    job_run(job=job, work=lambda progress: outcome)
    job.refresh_from_db()
    assert job.status == JobStatus.PARTIAL_FAILURE
    assert job.get_status_display() == "finished with failures"
    assert job.error == "3 items failed (30 succeeded): 2× RateLimitError: slow down; 1× timed out"
    assert job.error_detail["reasons"][0] == {"reason": "RateLimitError: slow down", "count": 2}


def test_nothing_succeeded_is_a_failure_not_a_success():
    """A cascade whose every call failed (no API key on the workers) must not end green."""
    job = _job()
    outcome = JobOutcome(
        stats={}, items_failed=36, items_succeeded=0, failure_reasons=[("AuthenticationError", 36)]
    )
    job_run(job=job, work=lambda progress: outcome)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.error == "36 items failed (0 succeeded): 36× AuthenticationError"


def test_an_application_error_keeps_where_it_happened():
    job = _job()

    def work(progress):
        raise ApplicationError("bad line", detail={"file": "a.jsonl", "line": 7, "field": "neg"})

    job_run(job=job, work=work)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and job.error == "bad line"
    assert job.error_detail == {"file": "a.jsonl", "line": 7, "field": "neg"}
    assert job.error_traceback == ""  # an expected error needs no traceback


def test_a_crash_is_named_and_its_traceback_kept_for_admins():
    job = _job()

    def work(progress):
        return {}["missing"]

    job_run(job=job, work=work)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and job.error == "KeyError: 'missing'"
    assert "Traceback" in job.error_traceback and 'return {}["missing"]' in job.error_traceback


def test_a_cancel_request_stops_the_work_at_its_next_progress_write():
    job = _job()
    steps = []

    def work(progress):
        for step in range(100):
            steps.append(step)
            if step == 2:
                job_request_cancel(job=job)
            progress(step / 100, f"step {step}", force=True)
        return JobOutcome(stats={})

    job_run(job=job, work=work)
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED and steps == [0, 1, 2]


def test_a_finished_job_is_not_run_again():
    job = _job(status=JobStatus.SUCCEEDED)
    called = []
    assert not job_run(job=job, work=lambda progress: called.append(1))
    assert called == []


def test_progress_also_reaches_an_echo():
    job = _job()
    lines = []

    def work(progress):
        progress(0.5, "half way", force=True)
        return JobOutcome(stats={})

    job_run(job=job, work=work, echo=lambda f, m, force=False: lines.append((f, m)))
    assert lines == [(0.5, "half way")]


def test_cancelled_error_type_is_what_the_reporter_raises():
    job = _job(cancel_requested=True)

    def work(progress):
        progress(0.1, "first", force=True)
        raise AssertionError("not reached")

    job_run(job=job, work=work)
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED and job.error == "cancelled by a user"
    assert issubclass(JobCancelled, Exception)


# --- the job page pattern --------------------------------------------------------------------


def _client_with(client, django_user_model, role: str):
    user = django_user_model.objects.create_user(username=role, password="pw")
    user.groups.add(Group.objects.get_or_create(name=role)[0])
    client.force_login(user)
    return client


def _crashed_job() -> ImportJob:
    job = _job()
    job_run(job=job, work=lambda progress: 1 / 0)
    return job


def test_the_traceback_is_shown_to_admins_only(client, django_user_model):
    job = _crashed_job()
    url = reverse("curation:import_job_detail", args=[job.pk])
    admin_page = _client_with(client, django_user_model, "admin").get(url).content.decode()
    assert "ZeroDivisionError: division by zero" in admin_page
    assert "Traceback (admins only)" in admin_page
    client.logout()
    curator_page = _client_with(client, django_user_model, "curator").get(url).content.decode()
    assert "ZeroDivisionError: division by zero" in curator_page
    assert "Traceback (admins only)" not in curator_page


def test_polling_a_finished_job_stops_and_reloads_the_whole_page(client, django_user_model):
    job = _job()
    client = _client_with(client, django_user_model, "viewer")
    url = reverse("curation:import_job_detail", args=[job.pk])
    running = client.get(url, headers={"HX-Request": "true"})
    assert running.status_code == 200 and "HX-Refresh" not in running
    assert 'hx-trigger="every 1s"' in running.content.decode()
    job_run(job=job, work=lambda progress: JobOutcome(stats={}, items_failed=1, items_succeeded=4))
    ended = client.get(url, headers={"HX-Request": "true"})
    assert ended.status_code == 286 and ended["HX-Refresh"] == "true"
    page = client.get(url).content.decode()
    assert "finished with failures" in page and "1 item failed (4 succeeded)" in page
    assert "every 1s" not in page
