"""The mining REST API: roles, launching with the form's settings, errors on their field,
cursor pages, detail and cancel."""

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from core.models import JobStatus
from curation.mining.services import mining_run_create
from curation.models import MiningRun
from tests.factories import DatasetFactory

pytestmark = pytest.mark.django_db

LIST = reverse("api:mining-list")


@pytest.fixture
def api():
    return APIClient()


@pytest.fixture
def dataset(db):
    return DatasetFactory(name="mine-me")


def _run(dataset, **options) -> MiningRun:
    return mining_run_create(dataset=dataset, model_name="some/model", enqueue=False, **options)


def test_roles_viewers_read_annotators_and_strangers_get_nothing(api, viewer, annotator, dataset):
    run = _run(dataset)
    endpoints = [
        ("get", LIST),
        ("post", LIST),
        ("get", reverse("api:mining-detail", args=[run.pk])),
        ("post", reverse("api:mining-cancel", args=[run.pk])),
    ]
    for method, url in endpoints:
        assert getattr(api, method)(url).status_code == 401, (method, url)
    api.force_authenticate(annotator)
    for method, url in endpoints:
        assert getattr(api, method)(url).status_code == 403, (method, url)
    api.force_authenticate(viewer)
    for method, url in endpoints:
        expected = 200 if method == "get" else 403
        assert getattr(api, method)(url, {"dataset": dataset.pk}).status_code == expected
    run.refresh_from_db()
    assert run.status == JobStatus.QUEUED and MiningRun.objects.count() == 1


def test_launch_takes_the_forms_settings_and_answers_202_with_the_job(
    api, curator, dataset, django_capture_on_commit_callbacks
):
    api.force_authenticate(curator)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = api.post(
            LIST,
            {"dataset": dataset.pk, "model_name": "intfloat/e5-base-v2", "batch_size": 32,
             "range_max": 50, "num_negatives": 7, "relative_margin": 0.05, "sampling": "random",
             "seed": 4, "teacher_flag_ratio": None},
            format="json",
        )  # fmt: skip
    assert response.status_code == 202, response.json()
    assert len(callbacks) == 1  # sent to the workers once the row is committed
    body = response.json()
    run = MiningRun.objects.get()
    assert body["id"] == run.pk and body["status"] == "queued" and body["progress"] == 0
    # E5's prefixes came with the model (no prefix given), as on the form's "auto".
    assert (body["query_prefix"], body["passage_prefix"]) == ("query: ", "passage: ")
    assert (body["num_negatives"], body["range_min"], body["range_max"]) == (7, 0, 50)
    assert (body["sampling"], body["seed"], body["batch_size"]) == ("random", 4, 32)
    assert body["relative_margin"] == 0.05 and body["teacher_flag_ratio"] is None
    assert body["negatives_added"] == 0 and body["dataset"] == dataset.pk
    assert run.created_by == curator


def test_prefixes_are_kept_as_sent_and_the_default_model_is_filled_in(api, curator, dataset):
    api.force_authenticate(curator)
    response = api.post(
        LIST,
        {"dataset": dataset.pk, "query_prefix": "search_query: ", "passage_prefix": ""},
        format="json",
    )
    assert response.status_code == 202, response.json()
    run = MiningRun.objects.get()
    assert (run.query_prefix, run.passage_prefix) == ("search_query: ", "")  # space kept
    assert run.model_name  # empty: the configured default
    assert (run.num_negatives, run.range_max, run.teacher_flag_ratio) == (15, 100, 0.95)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"range_min": 60, "range_max": 50}, "range_max"),
        ({"num_negatives": 0}, "num_negatives"),
        ({"batch_size": 0}, "batch_size"),
        ({"relative_margin": 1.5}, "relative_margin"),
        ({"sampling": "best"}, "sampling"),
        ({"teacher_flag_ratio": 0}, "teacher_flag_ratio"),
        ({"dataset": 999999}, "dataset"),
        ({"model_name": "m" * 501}, "model_name"),
    ],
)
def test_bad_settings_are_400_on_their_field(api, curator, dataset, changes, field):
    api.force_authenticate(curator)
    response = api.post(LIST, {"dataset": dataset.pk, **changes}, format="json")
    assert response.status_code == 400
    assert field in response.json(), response.json()
    assert not MiningRun.objects.exists()


def test_list_is_newest_first_in_cursor_pages_and_filters_by_dataset(api, viewer, dataset):
    other = DatasetFactory(name="other")
    runs = [_run(dataset) for _ in range(3)] + [_run(other)]
    api.force_authenticate(viewer)
    first = api.get(LIST, {"page_size": 3}).json()
    assert [r["id"] for r in first["results"]] == [r.pk for r in reversed(runs[1:])]
    second = api.get(first["next"]).json()
    assert [r["id"] for r in second["results"]] == [runs[0].pk] and second["next"] is None
    only = api.get(LIST, {"dataset": other.pk}).json()["results"]
    assert [r["id"] for r in only] == [runs[3].pk]
    bad = api.get(LIST, {"dataset": "x"})
    assert bad.status_code == 400 and "dataset" in bad.json()


def test_detail_shows_the_figures_once_ended_and_cancel_stops_a_queued_run(api, curator, dataset):
    done, queued = _run(dataset), _run(dataset)
    stats = {"negatives_added": 12, "queries_with_new_negatives": 3, "teacher_judgments": 30}
    MiningRun.objects.filter(pk=done.pk).update(
        status=JobStatus.SUCCEEDED, progress=1.0, progress_message="12 negatives added", stats=stats
    )
    api.force_authenticate(curator)
    body = api.get(reverse("api:mining-detail", args=[done.pk])).json()
    assert body["status"] == "succeeded" and body["progress_message"] == "12 negatives added"
    assert (body["negatives_added"], body["queries_with_new_negatives"]) == (12, 3)
    assert body["teacher_judgments"] == 30 and body["stats"] == stats
    assert api.get(reverse("api:mining-detail", args=[999999])).status_code == 404

    response = api.post(reverse("api:mining-cancel", args=[queued.pk]))
    assert response.status_code == 202
    assert response.json()["status"] == "cancelled" and response.json()["cancel_requested"]
