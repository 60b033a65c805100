"""What the web form and the API accept: the same files the command line reads."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from rest_framework.test import APIClient

from core.models import JobStatus
from curation.datasets.imports import import_job_run
from curation.models import ImportJob

pytestmark = pytest.mark.django_db

TSV = "anchor\tpositive\tnegative\nq one\tp one\tn one\nq two\tp two\tn one\n"


@pytest.fixture(autouse=True)
def upload_dir(tmp_path, settings):
    settings.SIEVE_UPLOAD_DIR = tmp_path / "uploads"
    return settings.SIEVE_UPLOAD_DIR


def imported(job: ImportJob) -> tuple[int, int, int]:
    import_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error
    return job.dataset.query_count, job.dataset.positive_count, job.dataset.negative_count


def test_the_web_form_accepts_a_tsv(curator_client):
    response = curator_client.post(
        reverse("curation:import_upload"),
        {"file": SimpleUploadedFile("pairs.tsv", TSV.encode()), "dataset_name": "tsv"},
    )
    assert response.status_code == 302, response.content
    job = ImportJob.objects.get()
    assert job.source_path.endswith(".tsv") and job.source_name == "pairs.tsv"
    assert imported(job) == (2, 2, 2)


def test_the_api_accepts_a_tsv(curator):
    client = APIClient()
    client.force_authenticate(curator)
    response = client.post(
        reverse("api:import-list"),
        {"file": SimpleUploadedFile("pairs.tsv", TSV.encode()), "dataset_name": "tsv"},
        format="multipart",
    )
    assert response.status_code == 202, response.content
    assert imported(ImportJob.objects.get()) == (2, 2, 2)


def test_the_upload_form_names_every_accepted_file_type(curator_client):
    page = curator_client.get(reverse("curation:import_page")).content.decode()
    assert ".tsv" in page and ".csv.gz" in page and ".jsonl.gz" in page
