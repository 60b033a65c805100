"""The evaluation endpoints a person or a client uses around a run: the launch form's POST,
the run page and its cancel button, the evaluations panel of a training run, and the REST API
(list, create, detail, cancel) with its roles. Runs are queued, not executed: the task is
captured. The BEIR folder is a tiny one written here, so no model encodes anything."""

import json

import pytest
from django.urls import reverse

from core.models import JobStatus
from evaluation import tasks
from evaluation.models import EvaluationRun
from tests.factories import EvaluationRunFactory, TrainingRunFactory
from tests.support.sends import capture_sends

pytestmark = pytest.mark.django_db


@pytest.fixture
def tiny_beir(settings, tmp_path):
    folder = tmp_path / "eval-data" / "tiny"
    (folder / "qrels").mkdir(parents=True)
    docs = [{"_id": f"d{i}", "title": "", "text": f"passage number {i}"} for i in range(4)]
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    queries = [{"_id": "q1", "text": "which passage is one"}, {"_id": "q2", "text": "two"}]
    (folder / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\n")
    settings.SIEVE_EVAL_DATA_DIRS = [tmp_path / "eval-data"]
    settings.SIEVE_EVAL_RESULTS_DIR = tmp_path / "results"
    return "beir:tiny"


@pytest.fixture
def sent(monkeypatch):
    return capture_sends(monkeypatch, tasks.evaluation_run)


def test_the_launch_form_queues_a_run_and_opens_its_page(
    curator_client, tiny_beir, sent, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = curator_client.post(
            reverse("evaluation:launch"),
            {"tasks": [tiny_beir], "mode": "full", "split": "test", "batch_size": 8, "seed": 0},
        )
    run = EvaluationRun.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("evaluation:run_detail", args=[run.pk])
    assert run.tasks == [tiny_beir] and run.status == JobStatus.QUEUED and sent == [run.pk]
    page = curator_client.get(response["Location"]).content.decode()
    assert "queued" in page and 'hx-trigger="every 2s"' in page and ">Cancel</button>" in page


def test_the_launch_form_refuses_no_task_with_the_field_named(curator_client, tiny_beir, sent):
    response = curator_client.post(reverse("evaluation:launch"), {"mode": "full", "seed": 0})
    assert response.status_code == 400 and "choose at least one task" in response.content.decode()
    assert not EvaluationRun.objects.exists() and sent == []


def test_cancel_on_the_run_page_cancels_a_queued_run(curator_client, viewer, client):
    run = EvaluationRunFactory(status=JobStatus.QUEUED)
    response = curator_client.post(
        reverse("evaluation:run_cancel", args=[run.pk]), headers={"HX-Request": "true"}
    )
    run.refresh_from_db()
    assert response.status_code == 286 and run.status == JobStatus.CANCELLED
    client.force_login(viewer)
    assert client.post(reverse("evaluation:run_cancel", args=[run.pk])).status_code == 403


def test_a_training_runs_page_loads_its_evaluations_panel(viewer_client):
    training_run = TrainingRunFactory()
    evaluation = EvaluationRunFactory(training_run=training_run)
    other = EvaluationRunFactory()
    page = viewer_client.get(reverse("training:run_detail", args=[training_run.pk])).content
    panel_url = reverse("evaluation:training_run_evaluations", args=[training_run.pk])
    assert f'hx-get="{panel_url}"'.encode() in page
    panel = viewer_client.get(panel_url, headers={"HX-Request": "true"}).content.decode()
    assert f"#{evaluation.pk}" in panel and f"#{other.pk}<" not in panel
    assert "<html" not in panel  # a fragment
    full = viewer_client.get(panel_url).content.decode()
    assert "<html" in full and f"#{evaluation.pk}" in full  # without htmx: a page of its own


# --- REST API ----------------------------------------------------------------------------------


def test_the_api_lists_creates_shows_and_cancels_runs(
    curator, viewer, tiny_beir, sent, django_capture_on_commit_callbacks, api_as
):
    api = api_as(curator)
    with django_capture_on_commit_callbacks(execute=True):
        created = api.post(
            reverse("api:evaluation-list"), {"tasks": [tiny_beir], "mode": "full"}, format="json"
        )
    assert created.status_code == 202, created.json()
    run_id = created.json()["id"]
    assert created.json()["status"] == "queued" and sent == [run_id]
    listed = api_as(viewer).get(reverse("api:evaluation-list")).json()
    assert [row["id"] for row in listed["results"]] == [run_id]
    detail = api_as(viewer).get(reverse("api:evaluation-detail", args=[run_id])).json()
    assert detail["tasks"] == [tiny_beir] and detail["results"] == []
    assert api_as(viewer).post(reverse("api:evaluation-cancel", args=[run_id])).status_code == 403
    cancelled = api.post(reverse("api:evaluation-cancel", args=[run_id]))
    assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelled"


def test_the_api_refuses_an_unknown_task_with_the_field_named(curator, tiny_beir, sent, api_as):
    response = api_as(curator).post(
        reverse("api:evaluation-list"), {"tasks": ["beir:nowhere"]}, format="json"
    )
    assert response.status_code == 400 and response.json()["field"] == "tasks"
    assert sent == []


def test_viewers_cannot_create_runs_and_a_missing_run_is_404(viewer, tiny_beir, sent, api_as):
    api = api_as(viewer)
    refused = api.post(reverse("api:evaluation-list"), {"tasks": [tiny_beir]}, format="json")
    assert refused.status_code == 403
    assert api.get(reverse("api:evaluation-detail", args=[999999])).status_code == 404
