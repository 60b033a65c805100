"""A real Celery worker process runs a mining run (``default`` queue) and a synthesis run
(``llm`` queue) launched the way the web form launches them."""

import json
import time

import pytest

from core.models import JobStatus
from curation.mining.services import mining_run_create
from curation.models import Candidate, CandidateOrigin, CandidateRole, Judgment
from curation.synthesis.services import synthesis_run_create
from tests.curation.mining_support import minilm_path
from tests.factories import CandidateFactory, DatasetFactory, PassageFactory, QueryFactory
from tests.support.openai_server import FakeOpenAIServer, Reply

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

# A safety limit for a loaded machine; nothing here asserts a duration.
JOB_TIMEOUT = 300


def _wait(run, worker):
    deadline = time.monotonic() + JOB_TIMEOUT
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.status not in (JobStatus.QUEUED, JobStatus.RUNNING):
            break
        time.sleep(0.3)
    assert run.status == JobStatus.SUCCEEDED, (run.error, worker.log_text()[-3000:])
    assert run.celery_task_id


@pytest.fixture
def generator_key(monkeypatch):
    """Set before the worker starts, so that the worker's environment holds it too."""
    monkeypatch.setenv("SIEVE_TEST_SYNTH_KEY", "sk-worker-test")


def test_a_real_worker_mines_and_synthesizes(generator_key, celery_worker_process, curator):
    dataset = DatasetFactory(name="worker-mining", query_count=2, positive_count=2)
    for i, (question, answer) in enumerate(
        [("how do bees make honey", "Bees make honey from flower nectar."),
         ("what causes tides", "Tides are caused by the pull of the moon.")]
    ):  # fmt: skip
        query = QueryFactory(dataset=dataset, query_id=f"q{i}", text=question)
        CandidateFactory(query=query, role=CandidateRole.POSITIVE, passage__text=answer)
    for text in ("Honey never spoils.", "The moon has no weather.", "Wasps make paper nests."):
        PassageFactory(corpus=dataset.corpus, text=text)

    run = mining_run_create(
        dataset=dataset, model_name=minilm_path(), num_negatives=2, range_max=4, user=curator
    )
    _wait(run, celery_worker_process)
    assert run.stats["negatives_added"] == 4 and run.progress == 1.0
    assert Candidate.objects.filter(origin=CandidateOrigin.MINED).count() == 4
    assert Judgment.objects.filter(source_run=f"mining:{run.pk}").count() == 4
    dataset.refresh_from_db()
    assert dataset.negative_count == 4

    def answer(body):
        if "hard negative" in body["messages"][0]["content"]:
            return Reply(content=json.dumps({"passage": "Butterflies drink nectar."}))
        return Reply(content=json.dumps({"query": "how is honey made"}))

    with FakeOpenAIServer(answer) as server:
        key_env = "SIEVE_TEST_SYNTH_KEY"
        generator = {"base_url": server.base_url, "model": "gen", "api_key_env": key_env}
        synthesis = synthesis_run_create(
            dataset=dataset, sample_size=2, seed=5, teacher_model=minilm_path(),
            generator=generator, user=curator,
        )  # fmt: skip
        _wait(synthesis, celery_worker_process)
        assert {r["auth"] for r in server.requests} == {"Bearer sk-worker-test"}
    assert synthesis.stats["passages_sampled"] == 2 and synthesis.stats["paid_calls"] >= 2
    assert synthesis.stats["queries_generated"] == 2
