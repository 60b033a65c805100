"""The upload page, import job pages and their live status fragment."""

import io
import json
import re
import zipfile
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from core.errors import ApplicationError
from core.jobs import job_fail
from core.models import JobStatus
from curation.datasets.imports import import_job_run
from curation.models import Candidate, Dataset, ImportJob

BGE_LINES = [
    {
        "query": "what does a sieve do",
        "pos": ["A sieve separates fine particles from coarse ones."],
        "neg": ["The Sieve of Eratosthenes finds prime numbers.", "Colanders drain pasta."],
        "pos_scores": [0.93],
        "neg_scores": [0.41, 0.22],
    },
    {
        "query": "who wrote the sieve of eratosthenes",
        "pos": ["The Sieve of Eratosthenes finds prime numbers."],
        "neg": ["A sieve separates fine particles from coarse ones."],
        "pos_scores": [0.88],
        "neg_scores": [0.35],
    },
    {
        "query": "how to drain pasta",
        "pos": ["Colanders drain pasta."],
        "neg": ["A sieve separates fine particles from coarse ones."],
        "pos_scores": [0.8],
        "neg_scores": [0.5],
    },
]


def bge_upload(name="tiny-bge.jsonl") -> SimpleUploadedFile:
    body = "".join(json.dumps(line) + "\n" for line in BGE_LINES).encode()
    return SimpleUploadedFile(name, body, content_type="application/octet-stream")


@pytest.fixture(autouse=True)
def upload_dir(tmp_path, settings):
    settings.SIEVE_UPLOAD_DIR = tmp_path / "uploads"
    return settings.SIEVE_UPLOAD_DIR


def test_curator_uploads_bge_file_and_the_job_imports_it(curator_client, curator, upload_dir):
    response = curator_client.post(
        reverse("curation:import_upload"),
        {"file": bge_upload(), "dataset_name": "sieves", "corpus_name": "", "format": "bge"},
    )
    job = ImportJob.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("curation:import_job_detail", args=[job.pk])
    assert job.dataset_name == "sieves"
    assert job.format == "bge"
    assert job.source_name == "tiny-bge.jsonl"
    assert job.created_by == curator
    assert job.status == JobStatus.QUEUED
    assert job.options == {}
    # Stored under a generated name inside the upload folder, byte for byte.
    stored = Path(job.source_path)
    assert stored.parent == upload_dir
    assert stored.name != "tiny-bge.jsonl" and stored.name.endswith(".jsonl")
    assert stored.read_bytes() == bge_upload().read()

    page = curator_client.get(response["Location"])
    assert b'hx-trigger="every 1s"' in page.content
    assert b"tiny-bge.jsonl" in page.content

    import_job_run(job_id=job.pk)

    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error
    dataset = Dataset.objects.get(name="sieves")
    assert (dataset.query_count, dataset.positive_count, dataset.negative_count) == (3, 3, 4)
    assert Candidate.objects.filter(query__dataset=dataset).count() == 7
    # The finished job's fragment stops the polling and links to the new dataset.
    fragment = curator_client.get(response["Location"], headers={"HX-Request": "true"})
    assert fragment.status_code == 286
    assert b"every 1s" not in fragment.content
    assert reverse("curation:dataset_detail", args=[dataset.pk]).encode() in fragment.content


def _stats_shown(html: str) -> list[str]:
    panel = re.search(r'<dl class="facts job-stats">(.*?)</dl>', html, re.S).group(1)
    return re.findall(r"<dt>(.*?)</dt>", panel)


def test_an_imports_stats_read_in_a_deliberate_order_without_internals(curator_client):
    """The tour found the stats in PostgreSQL's jsonb key order (shortest key first) with
    "Foreign key checks: set-based", a detail of the merge's SQL. A real import's page lists
    what was added first, then what was already there, in words; every key the import wrote
    is either named by the import's layout or hidden on purpose (the API keeps them all)."""
    from curation.datasets.job_stats import IMPORT_STATS

    curator_client.post(
        reverse("curation:import_upload"), {"file": bge_upload(), "dataset_name": "sieves"}
    )
    job = ImportJob.objects.get()
    import_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.stats["foreign_key_checks"]  # kept in the row
    assert set(job.stats) <= {key for key, _ in IMPORT_STATS.shown} | IMPORT_STATS.hidden

    html = curator_client.get(reverse("curation:import_job_detail", args=[job.pk])).content
    shown = _stats_shown(html.decode())
    assert shown[:5] == ["Files", "Queries added", "Positives added",
                         "Negatives added", "Passages added"]  # fmt: skip
    assert shown.index("Passages added") < shown.index("Queries already there")
    assert "Foreign key checks" not in shown and b"set-based" not in html
    # The format: once, in the page's head, as detection found it and by its name (the
    # head said "auto-detect" and the stats "bge").
    assert "<dt>Format</dt><dd>auto-detect: BGE / FlagEmbedding jsonl</dd>" in html.decode()


def test_beir_zip_upload_imports_the_split_asked_for(curator_client, upload_dir):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(
            "mini/corpus.jsonl",
            '{"_id": "d1", "title": "", "text": "one"}\n'
            '{"_id": "d2", "title": "", "text": "two"}\n',
        )
        zf.writestr("mini/queries.jsonl", '{"_id": "q1", "text": "which one"}\n')
        zf.writestr("mini/qrels/dev.tsv", "query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td2\t1\n")
        zf.writestr("mini/qrels/test.tsv", "query-id\tcorpus-id\tscore\n")
    response = curator_client.post(
        reverse("curation:import_upload"),
        {
            "file": SimpleUploadedFile("mini.zip", archive.getvalue()),
            "dataset_name": "mini",
            "format": "",
            "split": "dev",
            "min_relevance": "2",
        },
    )
    assert response.status_code == 302
    job = ImportJob.objects.get()
    assert job.format == ""
    assert job.options == {"split": "dev", "min_relevance": 2}
    assert Path(job.source_path).parent == upload_dir

    import_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error
    dataset = Dataset.objects.get(name="mini")
    # Only the dev split, and only the grade-2 pair counts as relevant.
    assert (dataset.query_count, dataset.positive_count) == (1, 1)
    # A BEIR file's notes (the qrels below the minimum relevance) are named too.
    from curation.datasets.job_stats import IMPORT_STATS

    assert set(job.stats) <= {key for key, _ in IMPORT_STATS.shown} | IMPORT_STATS.hidden


def test_a_file_named_zip_that_is_not_one_is_refused(curator_client, upload_dir):
    response = curator_client.post(
        reverse("curation:import_upload"),
        {"file": SimpleUploadedFile("fake.zip", b"not a zip"), "dataset_name": "fake"},
    )
    assert response.status_code == 400
    assert b"not a valid .zip archive" in response.content
    assert not ImportJob.objects.exists()
    assert not any(upload_dir.iterdir())


def test_unsupported_file_type_is_refused_with_a_form_error(curator_client, upload_dir):
    response = curator_client.post(
        reverse("curation:import_upload"),
        {"file": SimpleUploadedFile("notes.txt", b"hello"), "dataset_name": "x"},
    )
    assert response.status_code == 400
    assert b"Unsupported file type" in response.content
    assert not ImportJob.objects.exists()
    assert not upload_dir.exists() or not any(upload_dir.iterdir())


def test_viewer_cannot_upload(viewer_client, upload_dir):
    response = viewer_client.post(
        reverse("curation:import_upload"), {"file": bge_upload(), "dataset_name": "sieves"}
    )
    assert response.status_code == 403
    assert not ImportJob.objects.exists()


def test_status_fragment_polls_while_running_and_stops_when_finished(curator_client):
    job = ImportJob.objects.create(
        dataset_name="d", source_path="/x.jsonl", status=JobStatus.RUNNING, progress=0.42
    )
    url = reverse("curation:import_job_detail", args=[job.pk])
    running = curator_client.get(url, headers={"HX-Request": "true"})
    assert running.status_code == 200
    assert b'hx-trigger="every 1s"' in running.content
    assert b"<html" not in running.content  # only the fragment
    assert b"42%" in running.content

    ImportJob.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED, progress=1.0)
    finished = curator_client.get(url, headers={"HX-Request": "true"})
    assert finished.status_code == 286
    assert b"every 1s" not in finished.content
    assert b"100%" in finished.content


def test_failed_job_shows_where_the_error_is(viewer_client):
    job = ImportJob.objects.create(dataset_name="d", source_path="/x.jsonl")
    job_fail(
        job=job,
        error=ApplicationError(
            "bad.jsonl line 7: field 'pos' must be a list",
            detail={"file": "bad.jsonl", "line": 7, "field": "pos"},
        ),
    )
    page = viewer_client.get(reverse("curation:import_job_detail", args=[job.pk]))
    assert page.status_code == 200
    text = page.content.decode()
    assert "field &#x27;pos&#x27; must be a list" in text
    for key, value in (("file", "bad.jsonl"), ("line", "7"), ("field", "pos")):
        assert f"<dt>{key}</dt><dd>{value}</dd>" in text
    assert "every 1s" not in text  # nothing left to poll


def test_cancel_button_cancels_a_queued_job(curator_client):
    job = ImportJob.objects.create(dataset_name="d", source_path="/x.jsonl")
    url = reverse("curation:import_job_detail", args=[job.pk])
    assert b">Cancel</button>" in curator_client.get(url).content
    response = curator_client.post(
        reverse("curation:import_job_cancel", args=[job.pk]), headers={"HX-Request": "true"}
    )
    assert response.status_code == 286
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED
    assert job.cancel_requested
    assert b"cancelled" in response.content
    assert b">Cancel</button>" not in curator_client.get(url).content


def test_cancelling_a_running_job_asks_it_to_stop(curator_client):
    job = ImportJob.objects.create(
        dataset_name="d", source_path="/x.jsonl", status=JobStatus.RUNNING
    )
    response = curator_client.post(reverse("curation:import_job_cancel", args=[job.pk]))
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.cancel_requested and job.status == JobStatus.RUNNING
    page = curator_client.get(response["Location"])
    assert b"Cancellation requested" in page.content


def test_real_bge_example_uploads_and_imports(curator_client, shared_data):
    path = shared_data / "bge" / "msmarco.jsonl"
    response = curator_client.post(
        reverse("curation:import_upload"),
        {"file": SimpleUploadedFile(path.name, path.read_bytes()), "dataset_name": "bge-msmarco"},
    )
    assert response.status_code == 302
    job = ImportJob.objects.get()
    import_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error
    dataset = Dataset.objects.get(name="bge-msmarco")
    assert dataset.query_count == 10
    assert dataset.positive_count == 10
    page = curator_client.get(reverse("curation:dataset_detail", args=[dataset.pk]))
    assert page.status_code == 200
    assert f"import #{job.pk}".encode() in page.content


def test_a_bad_line_fails_the_job_and_the_page_names_file_line_and_field(curator_client):
    body = json.dumps(BGE_LINES[0]) + "\n" + '{"query": "q", "pos": "not a list", "neg": []}\n'
    response = curator_client.post(
        reverse("curation:import_upload"),
        {"file": SimpleUploadedFile("bad.jsonl", body.encode()), "dataset_name": "bad"},
    )
    job = ImportJob.objects.get()
    import_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert not Dataset.objects.filter(name="bad").exists()
    page = curator_client.get(response["Location"]).content.decode()
    assert job.error_detail["line"] == 2
    for key, value in (("file", "bad.jsonl"), ("line", "2"), ("field", "pos")):
        assert f"<dt>{key}</dt><dd>{value}</dd>" in page
    # The upload page lists the failed job too.
    listing = curator_client.get(reverse("curation:import_page")).content.decode()
    assert f"import #{job.pk}</a>" in listing and "status-failed" in listing


def test_a_large_upload_is_moved_into_the_upload_folder(curator_client, upload_dir, settings):
    # Over the in-memory limit, Django spools the upload to a temporary file first.
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 10
    response = curator_client.post(
        reverse("curation:import_upload"), {"file": bge_upload(), "dataset_name": "big"}
    )
    assert response.status_code == 302
    stored = Path(ImportJob.objects.get().source_path)
    assert stored.parent == upload_dir
    assert stored.read_bytes() == bge_upload().read()


def test_an_upload_whose_job_is_refused_leaves_no_file_behind(upload_dir, curator):
    """The web form and the API start imports through one service; a refused job (here: no
    dataset name) deletes the stored upload at once."""
    from curation.datasets.uploads import import_upload_start

    with pytest.raises(ApplicationError) as refused:
        import_upload_start(
            uploaded_file=SimpleUploadedFile("two.jsonl", b'{"query": "q", "pos": ["p"]}\n'),
            dataset_name="  ",
            user=curator,
        )
    assert refused.value.detail["field"] == "dataset_name"
    assert not ImportJob.objects.exists() and not any(upload_dir.iterdir())
