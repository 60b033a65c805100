"""REST API: authentication, roles, datasets, imports, snapshots, schema."""

import hashlib
import io
import json
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse
from drf_spectacular.validation import validate_schema
from rest_framework.authtoken.models import Token

from core.models import JobStatus
from curation.datasets.imports import import_job_run
from curation.datasets.snapshots import export_job_run, snapshot_create
from curation.models import ExportJob, ImportJob, Snapshot
from tests.factories import DatasetFactory, QueryFactory

BGE = (
    '{"query": "q one", "pos": ["p one"], "neg": ["n one", "n two"]}\n'
    '{"query": "q two", "pos": ["p two"], "neg": ["n one"]}\n'
)


@pytest.fixture(autouse=True)
def media_dirs(tmp_path, settings):
    settings.SIEVE_UPLOAD_DIR = tmp_path / "uploads"
    settings.SIEVE_SNAPSHOT_DIR = tmp_path / "snapshots"


def endpoints(dataset, import_job, export_job, snapshot) -> list[tuple[str, str]]:
    return [
        ("get", reverse("api:dataset-list")),
        ("get", reverse("api:dataset-detail", args=[dataset.pk])),
        ("get", reverse("api:dataset-queries", args=[dataset.pk])),
        ("get", reverse("api:import-list")),
        ("post", reverse("api:import-list")),
        ("get", reverse("api:import-detail", args=[import_job.pk])),
        ("post", reverse("api:import-cancel", args=[import_job.pk])),
        ("get", reverse("api:snapshot-list")),
        ("post", reverse("api:snapshot-list")),
        ("get", reverse("api:snapshot-detail", args=[snapshot.pk])),
        ("get", reverse("api:snapshot-download", args=[snapshot.pk])),
        ("get", reverse("api:export-list")),
        ("get", reverse("api:export-detail", args=[export_job.pk])),
        ("post", reverse("api:export-cancel", args=[export_job.pk])),
    ]


@pytest.fixture
def objects(tiny_dataset):
    return {
        "dataset": tiny_dataset,
        "import_job": ImportJob.objects.create(dataset_name="tiny", source_path="/x.jsonl"),
        "export_job": ExportJob.objects.create(
            dataset=tiny_dataset, policy="default", format="bge"
        ),
        "snapshot": snapshot_create(dataset=tiny_dataset, policy="default", format="bge"),
    }


def test_anonymous_requests_get_401_not_a_login_redirect(api_client, objects):
    for method, url in endpoints(**objects):
        response = getattr(api_client, method)(url)
        assert response.status_code == 401, (method, url)
        assert response["WWW-Authenticate"].startswith("Token"), url
    assert api_client.get(reverse("api-schema")).status_code == 401


def test_annotator_gets_403_everywhere(api_client, annotator, objects):
    api_client.force_authenticate(annotator)
    for method, url in endpoints(**objects):
        assert getattr(api_client, method)(url).status_code == 403, (method, url)


def test_viewer_reads_but_cannot_write(api_client, viewer, objects):
    api_client.force_authenticate(viewer)
    for method, url in endpoints(**objects):
        response = getattr(api_client, method)(url)
        assert response.status_code == (200 if method == "get" else 403), (method, url)
    assert ImportJob.objects.get().status == JobStatus.QUEUED
    assert ExportJob.objects.get().status == JobStatus.QUEUED


def test_token_auth_works_and_bad_tokens_do_not(api_client, viewer, tiny_dataset):
    out = io.StringIO()
    call_command("api_token", "vic", stdout=out)
    key = out.getvalue().strip()
    assert Token.objects.get(user=viewer).key == key
    again = io.StringIO()
    call_command("api_token", "vic", stdout=again)
    assert again.getvalue().strip() == key  # printed, not replaced

    response = api_client.get(reverse("api:dataset-list"), HTTP_AUTHORIZATION=f"Token {key}")
    assert response.status_code == 200
    assert [d["name"] for d in response.json()["results"]] == ["tiny"]
    assert response.json()["results"][0]["query_count"] == 2

    bad = api_client.get(reverse("api:dataset-list"), HTTP_AUTHORIZATION="Token nope")
    assert bad.status_code == 401

    reset = io.StringIO()
    call_command("api_token", "vic", "--reset", stdout=reset)
    assert reset.getvalue().strip() != key
    stale = api_client.get(reverse("api:dataset-list"), HTTP_AUTHORIZATION=f"Token {key}")
    assert stale.status_code == 401


def test_token_page_shows_creates_and_replaces_the_token(client, viewer):
    client.force_login(viewer)
    url = reverse("api_token")
    assert b"You have no token yet" in client.get(url).content
    assert not Token.objects.exists()  # opening the page creates nothing
    client.post(url)
    key = Token.objects.get(user=viewer).key
    assert key.encode() in client.get(url).content
    client.post(url)
    assert Token.objects.get(user=viewer).key != key


def test_queries_cursor_pagination_returns_every_query_once(api_client, viewer):
    dataset = DatasetFactory()
    expected = {QueryFactory(dataset=dataset, query_id=f"q{i:04d}").query_id for i in range(130)}
    api_client.force_authenticate(viewer)
    url = reverse("api:dataset-queries", args=[dataset.pk]) + "?page_size=40"
    seen = []
    while url:
        body = api_client.get(url).json()
        seen += [row["query_id"] for row in body["results"]]
        url = body["next"]
    assert len(seen) == 130
    assert set(seen) == expected


def test_queries_carry_positive_and_negative_counts(api_client, viewer, tiny_dataset):
    api_client.force_authenticate(viewer)
    rows = api_client.get(reverse("api:dataset-queries", args=[tiny_dataset.pk])).json()["results"]
    assert [(r["query_id"], r["positive_count"], r["negative_count"]) for r in rows] == [
        ("q0", 1, 2),
        ("q1", 1, 2),
    ]


def test_curator_uploads_through_the_api_and_polls_the_job(api_client, curator):
    api_client.force_authenticate(curator)
    response = api_client.post(
        reverse("api:import-list"),
        {
            "file": SimpleUploadedFile("two.jsonl", BGE.encode()),
            "dataset_name": "two",
            "format": "bge",
        },
        format="multipart",
    )
    assert response.status_code == 202, response.content
    job = ImportJob.objects.get()
    body = response.json()
    assert body["id"] == job.pk
    assert body["status"] == "queued"
    assert body["dataset_name"] == "two"
    assert body["format"] == "bge"
    assert body["source_name"] == "two.jsonl"
    assert Path(job.source_path).read_text() == BGE
    assert job.created_by == curator

    import_job_run(job_id=job.pk)
    status = api_client.get(reverse("api:import-detail", args=[job.pk])).json()
    assert status["status"] == "succeeded", status["error"]
    dataset = api_client.get(reverse("api:dataset-detail", args=[status["dataset"]])).json()
    counts = (dataset["query_count"], dataset["positive_count"], dataset["negative_count"])
    assert counts == (2, 2, 3)


def test_upload_errors_are_400_with_the_field(api_client, curator):
    api_client.force_authenticate(curator)
    response = api_client.post(
        reverse("api:import-list"),
        {"file": SimpleUploadedFile("x.docx", b"x"), "dataset_name": "x"},
        format="multipart",
    )
    assert response.status_code == 400
    assert "file" in response.json()
    missing = api_client.post(reverse("api:import-list"), {}, format="multipart")
    assert missing.status_code == 400
    assert set(missing.json()) >= {"file", "dataset_name"}
    assert not ImportJob.objects.exists()


def test_curator_freezes_a_snapshot_and_downloads_it(api_client, curator, tiny_dataset):
    api_client.force_authenticate(curator)
    response = api_client.post(
        reverse("api:snapshot-list"),
        {"dataset": tiny_dataset.pk, "policy": "relabel", "format": "tevatron"},
        format="json",
    )
    assert response.status_code == 202, response.content
    job_body = response.json()
    assert (job_body["policy"], job_body["format"], job_body["max_false_negatives"]) == (
        "relabel",
        "tevatron",
        7,
    )
    export_job_run(job_id=job_body["id"])
    job = api_client.get(reverse("api:export-detail", args=[job_body["id"]])).json()
    assert job["status"] == "succeeded", job["error"]

    snapshot = api_client.get(reverse("api:snapshot-detail", args=[job["snapshot"]])).json()
    assert snapshot["policy"] == "relabel"
    assert snapshot["manifest"]["counts"]["queries_out"] == 2
    listed = api_client.get(reverse("api:snapshot-list") + f"?dataset={tiny_dataset.pk}").json()
    assert [s["id"] for s in listed["results"]] == [snapshot["id"]]

    download = api_client.get(snapshot["download_url"], HTTP_ACCEPT="application/octet-stream")
    assert download.status_code == 200
    body = b"".join(download.streaming_content)
    assert hashlib.sha256(body).hexdigest() == snapshot["sha256"]
    assert "attachment" in download["Content-Disposition"]
    assert [json.loads(line)["query_id"] for line in body.decode().splitlines()] == ["q0", "q1"]


def test_bad_snapshot_request_is_400(api_client, curator, tiny_dataset):
    api_client.force_authenticate(curator)
    response = api_client.post(
        reverse("api:snapshot-list"),
        {"dataset": 999999, "policy": "bogus", "format": "bge", "max_false_negatives": -2},
        format="json",
    )
    assert response.status_code == 400
    assert set(response.json()) == {"dataset", "policy", "max_false_negatives"}
    assert not ExportJob.objects.exists()
    assert not Snapshot.objects.exists()


def test_schema_is_valid_openapi_with_our_paths(client, viewer):
    client.force_login(viewer)
    response = client.get(reverse("api-schema") + "?format=json")
    assert response.status_code == 200
    schema = json.loads(response.content)
    validate_schema(schema)
    for path in (
        "/api/datasets/",
        "/api/datasets/{id}/",
        "/api/datasets/{id}/queries/",
        "/api/imports/",
        "/api/imports/{id}/",
        "/api/snapshots/",
        "/api/snapshots/{id}/",
        "/api/snapshots/{id}/download",
        "/api/exports/{id}/",
        "/api/mining-runs/",
        "/api/mining-runs/{id}/",
        "/api/mining-runs/{id}/cancel",
        "/api/cascade-runs/",
        "/api/cascade-runs/{id}/",
        "/api/cascade-runs/{id}/cancel",
        "/api/cascade-runs/{id}/retry",
        "/api/synthesis-runs/",
        "/api/synthesis-runs/{id}/",
        "/api/synthesis-runs/{id}/cancel",
    ):
        assert path in schema["paths"], path
    upload = schema["paths"]["/api/imports/"]["post"]
    assert "multipart/form-data" in upload["requestBody"]["content"]
    assert "202" in upload["responses"]
    assert "tokenAuth" in schema["components"]["securitySchemes"]
    # A cascade launch answers the run (202) or, with estimate_only, the estimate alone (200).
    launch = schema["paths"]["/api/cascade-runs/"]["post"]
    assert {"200", "202"} <= set(launch["responses"])
    # Stages and the generator name the key's variable; no request or answer has a key field.
    assert "api_key" not in json.dumps(schema).replace("api_key_env", "")


def test_docs_page_renders_with_local_assets(client, viewer):
    client.force_login(viewer)
    response = client.get(reverse("api-docs"))
    assert response.status_code == 200
    text = response.content.decode()
    assert "drf_spectacular_sidecar/swagger-ui-dist" in text
    assert "https://cdn" not in text
    assert reverse("api-schema") in text


def test_api_token_command_refuses_an_unknown_user(db):
    with pytest.raises(CommandError, match="no user named 'ghost'"):
        call_command("api_token", "ghost")
    assert not Token.objects.exists()
