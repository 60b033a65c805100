"""The training REST API (list, create, detail, cancel) with its roles, and the training runs
panel of a snapshot page. Runs are queued, not trained: the task is captured (``sent``)."""

import pytest
from django.urls import reverse

from core.models import JobStatus
from tests.factories import SnapshotFactory, TrainingRunFactory
from training.models import TrainingRun, TrainingRunSnapshot

pytestmark = pytest.mark.django_db


def test_the_api_lists_creates_shows_and_cancels_runs(
    curator, viewer, snapshot, sent, django_capture_on_commit_callbacks, api_as
):
    api = api_as(curator)
    with django_capture_on_commit_callbacks(execute=True):
        created = api.post(
            reverse("api:training-list"),
            {"snapshot": snapshot.pk, "name": "api run", "config": {"max_steps": 3}},
            format="json",
        )
    assert created.status_code == 202, created.json()
    body = created.json()
    assert body["status"] == "queued" and body["config"]["max_steps"] == 3 and sent == [body["id"]]
    listed = api_as(viewer).get(reverse("api:training-list")).json()
    assert [row["id"] for row in listed["results"]] == [body["id"]]
    detail = api_as(viewer).get(reverse("api:training-detail", args=[body["id"]])).json()
    assert detail["name"] == "api run" and detail["snapshot"] == snapshot.pk
    assert api_as(viewer).post(reverse("api:training-cancel", args=[body["id"]])).status_code == 403
    cancelled = api.post(reverse("api:training-cancel", args=[body["id"]]))
    assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelled"
    assert TrainingRun.objects.get().status == JobStatus.CANCELLED


def test_the_api_names_the_field_of_a_bad_config(curator, snapshot, sent, api_as):
    response = api_as(curator).post(
        reverse("api:training-list"),
        {"snapshot": snapshot.pk, "config": {"learning_rate": -1}},
        format="json",
    )
    assert response.status_code == 400 and response.json()["field"] == "learning_rate"
    assert sent == [] and not TrainingRun.objects.exists()


def test_viewers_cannot_launch_and_annotators_see_nothing(
    viewer, annotator, snapshot, sent, api_as
):
    refused = api_as(viewer).post(
        reverse("api:training-list"), {"snapshot": snapshot.pk}, format="json"
    )
    assert refused.status_code == 403
    assert api_as(annotator).get(reverse("api:training-list")).status_code == 403


def test_a_snapshots_page_loads_its_training_runs_panel(viewer_client):
    snapshot = SnapshotFactory()
    run = TrainingRunFactory(snapshot=snapshot, name="on this snapshot")
    TrainingRunFactory(name="on another snapshot")
    page = viewer_client.get(reverse("curation:snapshot_detail", args=[snapshot.pk])).content
    panel_url = reverse("training:snapshot_runs", args=[snapshot.pk])
    assert f'hx-get="{panel_url}"'.encode() in page
    panel = viewer_client.get(panel_url, headers={"HX-Request": "true"}).content.decode()
    assert "on this snapshot" in panel and "on another snapshot" not in panel
    assert reverse("training:run_detail", args=[run.pk]) in panel and "<html" not in panel
    assert "<html" in viewer_client.get(panel_url).content.decode()


def test_the_panel_lists_runs_that_mixed_the_snapshot_in(viewer_client):
    """A run on several snapshots trains on each of them: it shows on every one's page."""
    snapshot, first = SnapshotFactory(), SnapshotFactory()
    mixed = TrainingRunFactory(snapshot=first, name="mixes it in")
    TrainingRunSnapshot.objects.create(run=mixed, snapshot=snapshot, position=1)
    TrainingRunSnapshot.objects.create(
        run=TrainingRunFactory(snapshot=first, name="mixes another"),
        snapshot=SnapshotFactory(),
        position=1,
    )
    own = TrainingRunFactory(
        snapshot=snapshot, name="starts from it", config={"model_kind": "reranker"}
    )
    panel_url = reverse("training:snapshot_runs", args=[snapshot.pk])
    panel = viewer_client.get(panel_url, headers={"HX-Request": "true"}).content.decode()
    assert "mixes it in" in panel and "starts from it" in panel
    assert "mixes another" not in panel
    # newest first, the reranker marked as one
    assert panel.index("starts from it") < panel.index("mixes it in")
    assert panel.count('<span class="badge">reranker</span>') == 1
    assert own.model_kind == "reranker" and mixed.model_kind == "embedder"
