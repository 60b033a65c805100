"""The synthesis REST API: roles, launching with the form's settings, keys refused, errors on
their field, cursor pages, detail and cancel."""

from decimal import Decimal

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from core.models import JobStatus
from curation.models import SynthesisRun
from curation.synthesis.services import synthesis_run_create
from tests.factories import DatasetFactory

pytestmark = pytest.mark.django_db

LIST = reverse("api:synthesis-list")
GENERATOR = {"model": "gpt-4o-mini", "base_url": "http://vllm:8000/v1", "api_key_env": "VLLM_KEY"}


@pytest.fixture
def api():
    return APIClient()


@pytest.fixture
def dataset(db, monkeypatch):
    monkeypatch.setenv("SIEVE_LLM_STAGE1_MODEL", "gpt-4o-mini")
    return DatasetFactory(name="synth-me")


def _run(dataset) -> SynthesisRun:
    return synthesis_run_create(dataset=dataset, generator=GENERATOR, enqueue=False)


def test_roles_viewers_read_annotators_and_strangers_get_nothing(api, viewer, annotator, dataset):
    run = _run(dataset)
    endpoints = [
        ("get", LIST),
        ("post", LIST),
        ("get", reverse("api:synthesis-detail", args=[run.pk])),
        ("post", reverse("api:synthesis-cancel", args=[run.pk])),
    ]
    for method, url in endpoints:
        assert getattr(api, method)(url, format="json").status_code == 401, (method, url)
    api.force_authenticate(annotator)
    for method, url in endpoints:
        assert getattr(api, method)(url, format="json").status_code == 403, (method, url)
    api.force_authenticate(viewer)
    for method, url in endpoints:
        expected = 200 if method == "get" else 403
        assert getattr(api, method)(url, format="json").status_code == expected, (method, url)
    run.refresh_from_db()
    assert run.status == JobStatus.QUEUED and SynthesisRun.objects.count() == 1


def test_launch_takes_the_forms_settings_and_answers_202_with_the_job(
    api, curator, dataset, django_capture_on_commit_callbacks
):
    api.force_authenticate(curator)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = api.post(
            LIST,
            {"dataset": dataset.pk, "sample_size": 40, "seed": 7, "negative_mode": "mine",
             "top_k": 2, "negative_max_ratio": 0.9, "budget_usd": "0.5",
             "generator": {**GENERATOR, "price_in_per_m": "0.15", "price_out_per_m": "0.6",
                           "max_tokens": 512, "json_mode": False}},
            format="json",
        )  # fmt: skip
    assert response.status_code == 202, response.json()
    assert len(callbacks) == 1  # sent to the llm queue once the row is committed
    body = response.json()
    run = SynthesisRun.objects.get()
    assert body["id"] == run.pk and body["status"] == "queued"
    assert (body["sample_size"], body["seed"], body["negative_mode"]) == (40, 7, "mine")
    assert (body["top_k"], body["negative_max_ratio"], body["budget_usd"]) == (2, 0.9, "0.5000")
    assert body["teacher_model"]  # empty: the configured default
    generator = body["generator"]
    assert (generator["model"], generator["base_url"]) == ("gpt-4o-mini", "http://vllm:8000/v1")
    assert (generator["api_key_env"], generator["max_tokens"], generator["json_mode"]) == (
        "VLLM_KEY", 512, False,
    )  # fmt: skip
    assert (generator["price_in_per_m"], generator["price_out_per_m"]) == ("0.15", "0.6")
    assert run.generator["concurrency"] == 16  # left out: the default
    assert Decimal(body["cost_usd"]) == 0 and body["triplets_kept"] == 0
    assert run.created_by == curator


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"sample_size": 0}, "sample_size"),
        ({"negative_mode": "copy"}, "negative_mode"),
        ({"top_k": 0}, "top_k"),
        ({"negative_max_ratio": 2}, "negative_max_ratio"),
        ({"budget_usd": "0"}, "budget_usd"),
        ({"dataset": 999999}, "dataset"),
        ({"generator": {"base_url": "ftp://x"}}, "generator"),
        ({"generator": {"model": " "}}, "generator"),
        ({"generator": {"concurrency": 0}}, "generator"),
        ({"generator": {"api_key_env": "sk-live-abc"}}, "generator"),
        ({"generator": {"api_key": "sk-live-abc"}}, "generator"),
        ({"api_key": "sk-live-abc"}, "api_key"),
    ],
)
def test_bad_settings_are_400_on_their_field(api, curator, dataset, changes, field):
    api.force_authenticate(curator)
    response = api.post(LIST, {"dataset": dataset.pk, **changes}, format="json")
    assert response.status_code == 400
    assert field in response.json(), response.json()
    assert "sk-live-abc" not in response.content.decode()
    assert not SynthesisRun.objects.exists()


def test_list_is_newest_first_in_cursor_pages_and_filters_by_dataset(api, viewer, dataset):
    other = DatasetFactory(name="other")
    runs = [_run(dataset), _run(dataset), _run(other)]
    api.force_authenticate(viewer)
    first = api.get(LIST, {"page_size": 2}).json()
    assert [r["id"] for r in first["results"]] == [runs[2].pk, runs[1].pk]
    second = api.get(first["next"]).json()
    assert [r["id"] for r in second["results"]] == [runs[0].pk] and second["next"] is None
    only = api.get(LIST, {"dataset": dataset.pk}).json()["results"]
    assert [r["id"] for r in only] == [runs[1].pk, runs[0].pk]
    assert only[0]["generator"]["api_key_env"] == "VLLM_KEY"
    bad = api.get(LIST, {"dataset": "-1"})
    assert bad.status_code == 400 and "dataset" in bad.json()


def test_detail_shows_cost_and_figures_and_cancel_stops_a_queued_run(api, curator, dataset):
    done, queued = _run(dataset), _run(dataset)
    stats = {"triplets_kept": 4, "queries_added": 4, "passages_added": 3, "budget_reached": True}
    SynthesisRun.objects.filter(pk=done.pk).update(
        status=JobStatus.SUCCEEDED, progress=1.0, stats=stats, cost_usd=Decimal("0.0014")
    )
    api.force_authenticate(curator)
    body = api.get(reverse("api:synthesis-detail", args=[done.pk])).json()
    assert body["status"] == "succeeded" and body["cost_usd"] == "0.001400"
    assert (body["triplets_kept"], body["queries_added"], body["passages_added"]) == (4, 4, 3)
    assert body["budget_reached"] is True

    response = api.post(reverse("api:synthesis-cancel", args=[queued.pk]))
    assert response.status_code == 202
    assert response.json()["status"] == "cancelled" and response.json()["cancel_requested"]
