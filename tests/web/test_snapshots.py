"""Freezing a snapshot from the dataset page, its export job page, and the download."""

import hashlib
import json
import re

import pytest
from django.urls import reverse

from core.models import JobStatus
from curation.datasets.snapshots import export_job_run, snapshot_create, snapshot_file_path
from curation.models import ExportJob, Snapshot
from tests.factories import DatasetFactory


@pytest.fixture(autouse=True)
def snapshot_dir(tmp_path, settings):
    settings.SIEVE_SNAPSHOT_DIR = tmp_path / "snapshots"
    return settings.SIEVE_SNAPSHOT_DIR


def test_curator_freezes_a_snapshot_and_follows_the_job_to_it(
    curator_client, curator, tiny_dataset
):
    response = curator_client.post(
        reverse("curation:snapshot_freeze", args=[tiny_dataset.pk]),
        {"policy": "remove_hn", "format": "bge", "max_false_negatives": "3"},
    )
    job = ExportJob.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("curation:export_job_detail", args=[job.pk])
    assert (job.dataset, job.policy, job.format, job.max_false_negatives, job.created_by) == (
        tiny_dataset,
        "remove_hn",
        "bge",
        3,
        curator,
    )
    page = curator_client.get(response["Location"])
    assert b'hx-trigger="every 1s"' in page.content
    # The job page and the dataset's job table name the settings in words.
    text = page.content.decode()
    assert "remove_hn: drop only the false negatives" in text
    assert "Max false negatives per query (k)</dt><dd>3<" in text
    table = curator_client.get(reverse("curation:dataset_detail", args=[tiny_dataset.pk]))
    assert "BGE / FlagEmbedding jsonl · <span" in table.content.decode()
    assert "≤ 3 false negatives per query" in table.content.decode()

    export_job_run(job_id=job.pk)

    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error
    fragment = curator_client.get(response["Location"], headers={"HX-Request": "true"})
    assert fragment.status_code == 286
    assert reverse("curation:snapshot_detail", args=[job.snapshot_id]).encode() in fragment.content


def test_freeze_form_errors_are_shown(curator_client, tiny_dataset):
    response = curator_client.post(
        reverse("curation:snapshot_freeze", args=[tiny_dataset.pk]),
        {"policy": "nonsense", "format": "bge", "max_false_negatives": "-1"},
    )
    assert response.status_code == 400
    assert b"Select a valid choice" in response.content
    assert b"greater than or equal to 0" in response.content
    assert not ExportJob.objects.exists()


def test_snapshot_detail_and_download(viewer_client, curator, tiny_dataset):
    snapshot = snapshot_create(dataset=tiny_dataset, policy="default", format="bge", user=curator)
    detail = viewer_client.get(reverse("curation:snapshot_detail", args=[snapshot.pk]))
    assert detail.status_code == 200
    text = detail.content.decode()
    assert snapshot.sha256 in text
    assert "Download" in text
    assert "queries_out" in text  # manifest counts

    listing = viewer_client.get(reverse("curation:snapshot_list")).content.decode()
    assert reverse("curation:snapshot_download", args=[snapshot.pk]) in listing

    response = viewer_client.get(reverse("curation:snapshot_download", args=[snapshot.pk]))
    assert response.status_code == 200
    body = b"".join(response.streaming_content)
    assert hashlib.sha256(body).hexdigest() == snapshot.sha256
    assert body == snapshot_file_path(snapshot=snapshot).read_bytes()
    disposition = response["Content-Disposition"]
    assert disposition.startswith("attachment")
    assert f'filename="tiny-default-{snapshot.sha256[:12]}.jsonl"' in disposition
    lines = [json.loads(line) for line in body.decode().splitlines()]
    assert sorted(line["query"] for line in lines) == ["what is thing 0?", "what is thing 1?"]


def test_snapshot_list_filters_by_dataset(viewer_client, tiny_dataset):
    snapshot = snapshot_create(dataset=tiny_dataset, policy="default", format="bge")
    other = Snapshot.objects.create(
        dataset=DatasetFactory(name="other", corpus=tiny_dataset.corpus),
        policy="default",
        format="bge",
        sha256="f" * 64,
        file_path="other.jsonl",
    )
    text = viewer_client.get(
        reverse("curation:snapshot_list") + f"?dataset={tiny_dataset.pk}"
    ).content.decode()
    ids = re.findall(r'href="/snapshots/(\d+)/"', text)
    assert str(snapshot.pk) in ids and str(other.pk) not in ids
    # The policy's meaning on hover, the format by its name, not the stored codes.
    assert 'title="default: keep every candidate as imported">default</span>' in text
    assert "<td>BGE / FlagEmbedding jsonl</td>" in text and "<td>bge</td>" not in text


def test_missing_snapshot_file_is_a_404_not_a_crash(viewer_client, tiny_dataset):
    snapshot = Snapshot.objects.create(
        dataset=tiny_dataset,
        policy="default",
        format="bge",
        sha256="a" * 64,
        file_path="gone.jsonl",
    )
    response = viewer_client.get(reverse("curation:snapshot_download", args=[snapshot.pk]))
    assert response.status_code == 404
