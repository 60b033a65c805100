"""Test connection before launch (issue 10): a real worker of the llm queue checks each stage
against the local OpenAI-compatible server — reachable, key, model — and the form says
plainly what is wrong; with no worker, it says that."""

import pytest
from django.urls import reverse

from curation.llm.preflight import stage_preflight, stages_preflight_on_workers
from tests.curation.cascade.cascade_support import chat_requests, form_data, stage
from tests.factories import DatasetFactory
from tests.support.openai_server import FakeOpenAIServer, Reply


def _server_knowing(*models):
    def responder(body):
        if body["model"] not in models:
            return Reply(status=404, content=f"The model `{body['model']}` does not exist")
        return Reply(content="OK", prompt_tokens=5, completion_tokens=1)

    return responder


@pytest.mark.django_db(transaction=True)
def test_the_form_tests_each_stage_from_a_worker(
    celery_worker_process, client, curator, env_stages
):
    dataset = DatasetFactory()
    client.force_login(curator)
    with FakeOpenAIServer(_server_knowing("gpt-4o-mini")) as server:
        page = client.post(
            reverse("curation:cascade_preflight", args=[dataset.pk]),
            form_data(stage1_base_url=server.base_url, stage2_base_url=server.base_url,
                      stage2_model="gpt-9-unknown"),
        )  # fmt: skip
        bodies = chat_requests(server)
    html = page.content.decode()
    assert page.status_code == 200, celery_worker_process.log_text()
    assert 'id="preflight"' in html and "not ready" in html
    assert "does not know model &#x27;gpt-9-unknown&#x27;" in html
    assert "ok (" in html  # stage 1
    assert {body["model"] for body in bodies} == {"gpt-4o-mini", "gpt-9-unknown"}
    assert all(body["max_tokens"] == 1 for body in bodies)


@pytest.mark.django_db(transaction=True)
def test_an_unreachable_endpoint_and_a_missing_key_are_named(celery_worker_process, curator):
    with FakeOpenAIServer(_server_knowing("m")) as server:
        dead = stage(1, None, model="m")  # nothing listens there
        openai_without_key = stage(
            2, server, base_url="https://api.openai.com/v1", api_key_env="SIEVE_NO_SUCH_KEY"
        )
        answer = stages_preflight_on_workers([dead, openai_without_key])
    assert answer["answered"], celery_worker_process.log_text()
    first, second = answer["stages"]
    assert not first["ok"] and "cannot reach http://127.0.0.1:9/v1" in first["problem"]
    assert not second["ok"]
    assert "SIEVE_NO_SUCH_KEY is not set on the llm worker" in second["problem"]


@pytest.mark.django_db
def test_no_worker_answering_is_said_plainly():
    answer = stages_preflight_on_workers([stage(1, None)], wait_s=1)
    assert not answer["answered"]
    assert "no worker of the llm queue answered within 1 s" in answer["problem"]


def test_a_refused_key_is_told_apart_from_an_unknown_model():
    def responder(body):
        return Reply(status=401, content="Incorrect API key provided")

    with FakeOpenAIServer(responder) as server:
        check = stage_preflight(stage(1, server))
    assert not check["ok"] and check["problem"].startswith("the endpoint refused the key")
