"""The cascade's REST API: launching with the environment's stages or the request's, the
estimate alone, refusing keys and bad settings on their field, cursor pages, retry, and a run
launched through the API that judges against the local OpenAI-compatible server."""

import json
from decimal import Decimal

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from core.models import JobStatus
from curation.cascade.create import cascade_run_create
from curation.cascade.execute import cascade_run_execute
from curation.models import CascadeItem, CascadeItemStatus, CascadeRun
from tests.curation.cascade.cascade_support import chat_requests, small_dataset, sound_judge
from tests.support.openai_server import FakeOpenAIServer

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("env_stages")]

LIST = reverse("api:cascade-list")


@pytest.fixture
def api():
    return APIClient()


@pytest.fixture
def dataset(db):
    return small_dataset(queries=6, negatives=4)


def _run(dataset, **changes) -> CascadeRun:
    return cascade_run_create(
        dataset=dataset, stages=[{"number": 1, "model": "gpt-4o-mini"}], enqueue=False, **changes
    )


def _endpoints(run) -> list[tuple[str, str]]:
    return [
        ("get", LIST),
        ("post", LIST),
        ("get", reverse("api:cascade-detail", args=[run.pk])),
        ("post", reverse("api:cascade-cancel", args=[run.pk])),
        ("post", reverse("api:cascade-retry", args=[run.pk])),
    ]


def test_roles_viewers_read_annotators_and_strangers_get_nothing(api, viewer, annotator, dataset):
    run = _run(dataset)
    for method, url in _endpoints(run):
        assert getattr(api, method)(url, format="json").status_code == 401, (method, url)
    api.force_authenticate(annotator)
    for method, url in _endpoints(run):
        assert getattr(api, method)(url, format="json").status_code == 403, (method, url)
    api.force_authenticate(viewer)
    for method, url in _endpoints(run):
        expected = 200 if method == "get" else 403
        assert getattr(api, method)(url, format="json").status_code == expected, (method, url)
    run.refresh_from_db()
    assert run.status == JobStatus.QUEUED and not run.cancel_requested
    assert CascadeRun.objects.count() == 1


def test_launch_with_the_environments_stages_and_the_forms_estimate(
    api, curator, dataset, django_capture_on_commit_callbacks
):
    api.force_authenticate(curator)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = api.post(LIST, {"dataset": dataset.pk, "budget_usd": "2.5"}, format="json")
    assert response.status_code == 202, response.json()
    assert len(callbacks) == 1  # sent to the llm queue once the row is committed
    body = response.json()
    run = CascadeRun.objects.get()
    assert body["id"] == run.pk and body["status"] == "queued"
    # The environment's stages (env_stages), as the launch form shows them.
    assert [s["model"] for s in body["stages"]] == ["gpt-4o-mini", "gpt-4o"]
    assert body["stages"][1]["concurrency"] == 32
    assert body["stages"][0]["base_url"] == "http://127.0.0.1:9/v1"
    assert body["stages"][0]["api_key_env"] == "OPENAI_API_KEY"
    assert body["forward_tags"] == ["better", "worse"] and body["false_negative_tags"] == ["better"]
    assert (body["max_negatives"], body["max_positives"], body["mode"]) == (25, None, "online")
    assert body["budget_usd"] == "2.5000" and run.budget_usd == Decimal("2.5")
    # The estimate the web form computes, stored on the run.
    assert body["estimate"]["queries"] == 6 and len(body["estimate"]["stages"]) == 2
    assert body["estimate"] == run.estimate
    assert [row["items"] for row in body["stage_stats"]] == [0, 0]
    assert body["retryable"] == {}  # not ended
    assert run.created_by == curator


def test_estimate_only_answers_the_estimate_and_launches_nothing(api, curator, dataset):
    api.force_authenticate(curator)
    response = api.post(
        LIST,
        {"dataset": dataset.pk, "estimate_only": True, "max_negatives": 3, "flag_rate": 0.5,
         "stages": [{"model": "gpt-4o-mini"}, {"model": "gpt-4o"}]},
        format="json",
    )  # fmt: skip
    assert response.status_code == 200, response.json()
    estimate = response.json()["estimate"]
    assert estimate["queries"] == 6 and estimate["flag_rate"] == 0.5
    assert [row["calls"] for row in estimate["stages"]] == [6, 3]
    assert Decimal(estimate["cost_usd"]) > 0
    assert not CascadeRun.objects.exists()


def test_request_stages_override_the_environment_per_stage(api, curator, dataset):
    api.force_authenticate(curator)
    response = api.post(
        LIST,
        {"dataset": dataset.pk,
         "stages": [{"model": "llama3", "base_url": "http://vllm:8000/v1",
                     "api_key_env": "VLLM_KEY", "price_in_per_m": "0", "price_out_per_m": "0",
                     "json_mode": False}]},
        format="json",
    )  # fmt: skip
    assert response.status_code == 202, response.json()
    (stage,) = CascadeRun.objects.get().stages
    assert (stage["number"], stage["model"], stage["base_url"]) == (
        1,
        "llama3",
        "http://vllm:8000/v1",
    )
    assert (stage["api_key_env"], stage["json_mode"], stage["price_in_per_m"]) == (
        "VLLM_KEY", False, "0",
    )  # fmt: skip
    assert stage["max_tokens"] == 4096  # left out: stage 1's value from the environment


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"stages": []}, "stages"),
        ({"stages": [{"model": "gpt-4o-mini", "concurrency": 0}]}, "stages"),
        ({"stages": [{"number": 2, "model": "gpt-4o"}]}, "stages"),
        ({"stages": [{"model": "gpt-4o", "base_url": "localhost:8000"}]}, "stages"),
        ({"forward_tags": ["maybe"]}, "forward_tags"),
        ({"false_negative_tags": []}, "false_negative_tags"),
        ({"max_negatives": 0}, "max_negatives"),
        ({"max_positives": 0}, "max_positives"),
        ({"budget_usd": "0"}, "budget_usd"),
        ({"mode": "fast"}, "mode"),
        ({"dataset": 999999}, "dataset"),
        ({"budget": 5}, "budget"),  # a misspelt option is refused, not ignored
    ],
)
def test_bad_settings_are_400_on_their_field(api, curator, dataset, changes, field):
    api.force_authenticate(curator)
    response = api.post(LIST, {"dataset": dataset.pk, **changes}, format="json")
    assert response.status_code == 400
    assert field in response.json(), response.json()
    assert not CascadeRun.objects.exists()


def test_a_key_is_never_accepted_nor_echoed(api, curator, dataset):
    api.force_authenticate(curator)
    secret = "sk-proj-abc123secret"
    in_stage = api.post(
        LIST, {"dataset": dataset.pk, "stages": [{"model": "gpt-4o", "api_key": secret}]},
        format="json",
    )  # fmt: skip
    assert in_stage.status_code == 400
    # DRF names the stage by its index: {"stages": {"0": {"api_key": ["…"]}}}.
    assert "environment variable" in in_stage.json()["stages"]["0"]["api_key"][0]
    top = api.post(LIST, {"dataset": dataset.pk, "api_key": secret}, format="json")
    assert top.status_code == 400 and "api_key" in top.json()
    as_variable = api.post(
        LIST, {"dataset": dataset.pk, "stages": [{"model": "gpt-4o", "api_key_env": secret}]},
        format="json",
    )  # fmt: skip
    assert as_variable.status_code == 400
    assert "never the key" in as_variable.json()["stages"]["0"]["api_key_env"][0]
    for response in (in_stage, top, as_variable):
        assert secret not in response.content.decode()
    assert not CascadeRun.objects.exists()


def test_a_malformed_environment_is_400_on_stages(api, curator, dataset, monkeypatch):
    monkeypatch.setenv("SIEVE_LLM_STAGE2_CONCURRENCY", "lots")
    api.force_authenticate(curator)
    response = api.post(LIST, {"dataset": dataset.pk}, format="json")
    assert response.status_code == 400
    assert "SIEVE_LLM_STAGE2_CONCURRENCY" in json.dumps(response.json()["stages"])


def test_list_is_newest_first_in_cursor_pages_and_filters_by_dataset(api, viewer, dataset):
    other = small_dataset(queries=1, name="other")
    runs = [_run(dataset) for _ in range(3)] + [_run(other)]
    api.force_authenticate(viewer)
    first = api.get(LIST, {"page_size": 2}).json()
    assert [r["id"] for r in first["results"]] == [runs[3].pk, runs[2].pk]
    second = api.get(first["next"]).json()
    assert [r["id"] for r in second["results"]] == [runs[1].pk, runs[0].pk]
    assert second["next"] is None
    only = api.get(LIST, {"dataset": other.pk}).json()["results"]
    assert [r["id"] for r in only] == [runs[3].pk]
    assert only[0]["stage_stats"][0]["model"] == "gpt-4o-mini"
    bad = api.get(LIST, {"dataset": "other"})
    assert bad.status_code == 400 and "dataset" in bad.json()


def test_cancel_stops_a_queued_run(api, curator, dataset):
    run = _run(dataset)
    api.force_authenticate(curator)
    response = api.post(reverse("api:cascade-cancel", args=[run.pk]))
    assert response.status_code == 202
    assert response.json()["status"] == "cancelled" and response.json()["cancel_requested"]


def _ended(dataset, *, item_status, **stats):
    run = _run(dataset, budget_usd="1")
    query = dataset.queries.first()
    CascadeItem.objects.create(run=run, stage=1, query=query, status=item_status)
    CascadeRun.objects.filter(pk=run.pk).update(status=JobStatus.PARTIAL_FAILURE, stats=stats)
    run.refresh_from_db()
    return run


def test_retry_queues_an_ended_run_again(api, curator, dataset):
    run = _ended(dataset, item_status=CascadeItemStatus.FAILED)
    api.force_authenticate(curator)
    detail = api.get(reverse("api:cascade-detail", args=[run.pk])).json()
    assert detail["retryable"] == {"failed": 1}
    response = api.post(reverse("api:cascade-retry", args=[run.pk]), {}, format="json")
    assert response.status_code == 202, response.json()
    assert response.json()["status"] == "queued" and response.json()["error"] == ""
    assert CascadeItem.objects.get(run=run).status == CascadeItemStatus.PENDING


def test_retry_errors_are_400_with_the_field(api, curator, dataset):
    api.force_authenticate(curator)
    queued = _run(dataset)
    url = reverse("api:cascade-retry", args=[queued.pk])
    still = api.post(url, {}, format="json")
    assert still.status_code == 400 and "still queued" in still.json()["message"]

    skipped = _ended(dataset, item_status=CascadeItemStatus.SKIPPED, budget_reached=True)
    url = reverse("api:cascade-retry", args=[skipped.pk])
    nothing = api.post(url, {}, format="json")
    assert nothing.status_code == 400
    assert nothing.json()["field"] == "budget_usd" and "larger budget" in nothing.json()["message"]
    for budget in ("-1", "lots"):
        bad = api.post(url, {"budget_usd": budget}, format="json")
        assert bad.status_code == 400 and "budget_usd" in json.dumps(bad.json()), budget
    raised = api.post(url, {"budget_usd": "3"}, format="json")
    assert raised.status_code == 202
    assert raised.json()["budget_usd"] == "3.0000"


def test_a_run_launched_through_the_api_judges_and_shows_its_stage_stats(
    api, curator, viewer, dataset, django_capture_on_commit_callbacks
):
    """POST → the run row (its task captured, not sent) → cascade_run_execute in this process
    against the local OpenAI-compatible server → GET shows what each stage did."""
    api.force_authenticate(curator)
    with FakeOpenAIServer(sound_judge) as server:
        fast = {
            "base_url": server.base_url, "api_key_env": "SIEVE_TEST_LLM_KEY", "concurrency": 4,
            "timeout_s": 5, "max_attempts": 3, "backoff_base_s": 0.05,
        }  # fmt: skip
        with django_capture_on_commit_callbacks(execute=False):
            launched = api.post(
                LIST,
                {"dataset": dataset.pk, "forward_tags": ["better"], "max_negatives": 3,
                 "stages": [{"model": "gpt-4o-mini", **fast}, {"model": "gpt-4o", **fast}]},
                format="json",
            )  # fmt: skip
        assert launched.status_code == 202, launched.json()
        cascade_run_execute(run_id=launched.json()["id"])
        assert len(chat_requests(server)) == 6 + 3

    api.force_authenticate(viewer)
    body = api.get(reverse("api:cascade-detail", args=[launched.json()["id"]])).json()
    assert body["status"] == "succeeded", body["error"]
    first, second = body["stage_stats"]
    assert (first["model"], first["items"], first["judged"], first["flagged"]) == (
        "gpt-4o-mini", 6, 6, 3,
    )  # fmt: skip
    # Stage 2 judged the three queries with an "ANSWERS" negative (q001, q003, q005).
    assert (second["model"], second["items"], second["judged"]) == ("gpt-4o", 3, 3)
    assert (first["paid_calls"], second["paid_calls"]) == (6, 3)
    assert Decimal(first["cost_usd"]) == 6 * Decimal("0.000270")
    assert Decimal(body["cost_usd"]) == Decimal(first["cost_usd"]) + Decimal(second["cost_usd"])
    assert body["input_tokens"] == 9 * 1000 and body["progress"] == 1.0
    assert body["retryable"] == {}
