"""Finishing what a synthesis run left (issue 10): Test connection on the form, and Retry on
the run page and the API. The real ``openai`` client against the local OpenAI-compatible
server and the real MiniLM teacher; a retried run pays nothing twice and writes nothing
twice."""

from collections import Counter

import pytest
from django.urls import reverse

from core.errors import ApplicationError
from core.models import JobStatus
from curation.models import Candidate, CandidateOrigin
from curation.synthesis.retry import synthesis_run_retry, synthesis_run_retryable
from curation.synthesis.services import synthesis_run_create, synthesis_run_execute
from tests.curation.cascade.cascade_support import chat_requests
from tests.curation.mining_support import minilm_path
from tests.support.openai_server import FakeOpenAIServer, Reply

from .test_synthesis import PASSAGES, _marker, _triplets, generator

GENERATOR = {"model": "gen-model", "api_key_env": "SIEVE_TEST_SYNTH_KEY",
             "price_in_per_m": "1.00", "price_out_per_m": "4.00", "concurrency": 4,
             "max_attempts": 1, "backoff_base_s": 0.01, "json_mode": True}  # fmt: skip


def _passage_of(body) -> str:
    return _marker(body["messages"][-1]["content"])


def _execute(run):
    synthesis_run_execute(run_id=run.pk)
    run.refresh_from_db()
    return run


@pytest.mark.django_db
def test_retry_asks_only_the_failed_calls_and_adds_their_triplets(corpus_dataset):
    """The endpoint is down for two passages' calls: the run ends with failures. Retried once
    it is back, the same run asks exactly those calls again and adds their triplets; every
    other answer comes from the ledger and no triplet is written twice."""
    down = {"BREAD", "RHINE"}
    state = {"down": True}

    def responder(body):
        if state["down"] and _passage_of(body) in down:
            return Reply(status=500, content="upstream is down")
        return generator(body)

    with FakeOpenAIServer(responder) as server:
        run = synthesis_run_create(
            dataset=corpus_dataset, sample_size=len(PASSAGES), teacher_model=minilm_path(),
            top_k=2, negative_max_ratio=0.95, enqueue=False,
            generator={**GENERATOR, "base_url": server.base_url},
        )  # fmt: skip
        run = _execute(run)
        assert run.status == JobStatus.PARTIAL_FAILURE, run.error
        assert synthesis_run_retryable(run=run) == {"failed_calls": 2}
        assert "upstream is down" in run.error
        before = set(_triplets(corpus_dataset))
        assert not before & down
        first_requests = len(chat_requests(server))
        candidates_before = Candidate.objects.filter(origin=CandidateOrigin.GENERATED).count()

        state["down"] = False
        synthesis_run_retry(run=run)
        run.refresh_from_db()
        assert run.status == JobStatus.QUEUED and run.error == ""
        run = _execute(run)
        retried = [_passage_of(body) for body in chat_requests(server)[first_requests:]]

    assert run.status == JobStatus.SUCCEEDED, run.error
    assert synthesis_run_retryable(run=run) == {}
    # Only the failed passages were asked again: their query, then their negative.
    assert Counter(retried) == {"BREAD": 2, "RHINE": 2}
    after = set(_triplets(corpus_dataset))
    assert after == before | down
    # What was there is untouched; the two new triplets add their own rows only.
    generated = Candidate.objects.filter(origin=CandidateOrigin.GENERATED)
    new_queries = {after_query.pk for m, (after_query, _) in _triplets(corpus_dataset).items()
                   if m in down}  # fmt: skip
    assert generated.exclude(query_id__in=new_queries).count() == candidates_before
    assert generated.filter(query_id__in=new_queries).count() >= 2
    assert run.stats["failed_calls"] == 0


@pytest.mark.django_db
def test_a_run_with_nothing_left_or_still_running_is_not_retried(corpus_dataset):
    with FakeOpenAIServer(generator) as server:
        run = synthesis_run_create(
            dataset=corpus_dataset, sample_size=len(PASSAGES), teacher_model=minilm_path(),
            enqueue=False, generator={**GENERATOR, "base_url": server.base_url},
        )  # fmt: skip
        with pytest.raises(ApplicationError, match="still queued"):
            synthesis_run_retry(run=run)
        run = _execute(run)
    assert run.status == JobStatus.SUCCEEDED, run.error
    with pytest.raises(ApplicationError, match="nothing left to retry"):
        synthesis_run_retry(run=run)


@pytest.mark.django_db
def test_a_budget_stop_resumes_only_with_a_larger_budget(corpus_dataset, monkeypatch, client):
    from curation.synthesis import services as synthesis

    monkeypatch.setattr(synthesis, "CHUNK", 2)
    with FakeOpenAIServer(generator) as server:
        run = synthesis_run_create(
            dataset=corpus_dataset, sample_size=len(PASSAGES), teacher_model=minilm_path(),
            budget_usd="0.002", enqueue=False,
            generator={**GENERATOR, "base_url": server.base_url, "max_attempts": 2},
        )  # fmt: skip
        run = _execute(run)
        assert run.stats["budget_reached"] is True
        assert synthesis_run_retryable(run=run) == {"passages_not_reached": 4}
        with pytest.raises(ApplicationError, match="give a larger budget") as refused:
            synthesis_run_retry(run=run, budget_usd="0.001")
        assert refused.value.detail == {"field": "budget_usd"}
        paid_before = run.stats["paid_calls"]
        first_requests = len(chat_requests(server))
        synthesis_run_retry(run=run, budget_usd="1")
        run = _execute(run)
        asked_again = len(chat_requests(server)) - first_requests
    assert run.status == JobStatus.SUCCEEDED, run.error
    assert str(run.budget_usd) == "1.0000"
    assert run.stats["passages_sampled"] == len(PASSAGES)
    assert run.stats["budget_reached"] is False
    # What the first attempt paid for came from the ledger.
    assert run.stats["cached_calls"] == paid_before
    assert asked_again == run.stats["paid_calls"]


@pytest.mark.django_db
def test_the_run_page_offers_retry_and_the_api_retries(corpus_dataset, client, django_user_model):
    from django.contrib.auth.models import Group
    from rest_framework.test import APIClient

    curator = django_user_model.objects.create_user("cura", password="pw")
    curator.groups.add(Group.objects.get_or_create(name="curator")[0])
    viewer = django_user_model.objects.create_user("vera", password="pw")
    viewer.groups.add(Group.objects.get_or_create(name="viewer")[0])
    with FakeOpenAIServer(lambda body: Reply(status=500, content="down")) as server:
        run = synthesis_run_create(
            dataset=corpus_dataset, sample_size=2, teacher_model=minilm_path(), enqueue=False,
            generator={**GENERATOR, "base_url": server.base_url},
        )  # fmt: skip
        run = _execute(run)
    assert run.status == JobStatus.FAILED
    page = reverse("curation:synthesis_run_detail", args=[run.pk])
    client.force_login(viewer)
    assert 'id="synthesis-retry"' not in client.get(page).content.decode()
    client.force_login(curator)
    html = client.get(page).content.decode()
    assert 'id="synthesis-retry"' in html and "Retry failed calls" in html
    retry = reverse("curation:synthesis_run_retry", args=[run.pk])
    client.force_login(viewer)
    assert client.post(retry).status_code == 403
    client.force_login(curator)
    response = client.post(retry)
    assert response.status_code == 302
    run.refresh_from_db()
    assert run.status == JobStatus.QUEUED
    # Queued again: a second retry is refused, through the API too, with the reason.
    api = APIClient()
    api.force_authenticate(curator)
    answer = api.post(f"/api/synthesis-runs/{run.pk}/retry", {}, format="json")
    assert answer.status_code == 400 and "still queued" in str(answer.json())
    run.status = JobStatus.FAILED
    run.save(update_fields=["status"])
    api.force_authenticate(viewer)
    assert api.post(f"/api/synthesis-runs/{run.pk}/retry", {}, format="json").status_code == 403
    api.force_authenticate(curator)
    answer = api.post(f"/api/synthesis-runs/{run.pk}/retry", {}, format="json")
    assert answer.status_code == 202 and answer.json()["status"] == "queued"


@pytest.mark.django_db(transaction=True)
def test_test_connection_checks_the_generator_from_a_worker(
    celery_worker_process, client, corpus_dataset, django_user_model
):
    from django.contrib.auth.models import Group

    curator = django_user_model.objects.create_user("cura", password="pw")
    curator.groups.add(Group.objects.get_or_create(name="curator")[0])
    client.force_login(curator)

    def knows_gen_model(body):
        if body["model"] != "gen-model":
            return Reply(status=404, content=f"The model `{body['model']}` does not exist")
        return Reply(content="OK", prompt_tokens=5, completion_tokens=1)

    form = {"sample_size": 4, "seed": 0, "negative_mode": "generate", "top_k": 3,
            "negative_max_ratio": 0.95, "api_key_env": "SIEVE_TEST_SYNTH_KEY",
            "price_in_per_m": "1", "price_out_per_m": "4", "concurrency": 4,
            "temperature": 0.7, "max_tokens": 256}  # fmt: skip
    url = reverse("curation:synthesis_preflight", args=[corpus_dataset.pk])
    with FakeOpenAIServer(knows_gen_model) as server:
        good = client.post(url, {**form, "model": "gen-model", "base_url": server.base_url})
        bad = client.post(url, {**form, "model": "gen-9", "base_url": server.base_url})
        bodies = chat_requests(server)
    html = good.content.decode()
    assert good.status_code == 200, celery_worker_process.log_text()
    assert 'id="preflight"' in html and "ready" in html and "not ready" not in html
    assert "<td>generator</td>" in html
    assert "does not know model &#x27;gen-9&#x27;" in bad.content.decode()
    assert all(body["max_tokens"] == 1 for body in bodies) and len(bodies) == 2
    # Nothing was launched.
    assert not corpus_dataset.synthesis_runs.exists()
