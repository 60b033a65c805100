"""Stopping a job while a real worker is running it (not before it starts): the user's cancel
reaches the job at its next progress write, the row ends "cancelled", and what the job was
writing is not left half done. Import (all or nothing: no dataset appears) and export (no
snapshot appears), both started and cancelled through the REST API as a client would."""

import io
import json
import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from core.models import FINISHED_STATUSES, JobStatus
from curation.models import Candidate, CandidateRole, Corpus, Dataset, Passage, Query, Snapshot

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

# Safety limits for a loaded machine; nothing here asserts a duration.
START_TIMEOUT = 120
STOP_TIMEOUT = 120


def _wait(api, detail_url: str, done, *, timeout: float, worker) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = api.get(detail_url).json()
        if done(job):
            return job
        time.sleep(0.1)
    raise AssertionError(f"timed out; last state {job}\n{worker.log_text()}")


def _running_with_progress(job: dict) -> bool:
    return job["status"] in FINISHED_STATUSES or (
        job["status"] == "running" and job["progress"] > 0
    )


def _cancel_and_wait(api, job: dict, *, detail: str, cancel: str, worker) -> dict:
    assert job["status"] == JobStatus.RUNNING, job  # it must still be running to be stopped
    assert api.post(reverse(cancel, args=[job["id"]])).status_code == 202
    return _wait(
        api,
        reverse(detail, args=[job["id"]]),
        lambda j: j["status"] in FINISHED_STATUSES,
        timeout=STOP_TIMEOUT,
        worker=worker,
    )


def _big_bge_file(queries: int) -> bytes:
    out = io.StringIO()
    for i in range(queries):
        record = {
            "query": f"question number {i} about topic {i % 97}",
            "pos": [f"the answer to question {i}, written out at some length " * 3],
            "neg": [f"an unrelated passage {i}-{j} of moderate length " * 3 for j in range(5)],
        }
        out.write(json.dumps(record) + "\n")
    return out.getvalue().encode()


def test_cancelling_a_running_import_leaves_no_dataset(celery_worker_process, curator, api_as):
    api = api_as(curator)
    response = api.post(
        reverse("api:import-list"),
        {
            "file": SimpleUploadedFile("big.jsonl", _big_bge_file(60_000)),
            "dataset_name": "cancel-me",
            "format": "bge",
        },
        format="multipart",
    )
    assert response.status_code == 202, response.content
    detail = reverse("api:import-detail", args=[response.json()["id"]])
    job = _wait(
        api, detail, _running_with_progress, timeout=START_TIMEOUT, worker=celery_worker_process
    )
    ended = _cancel_and_wait(
        api,
        job,
        detail="api:import-detail",
        cancel="api:import-cancel",
        worker=celery_worker_process,
    )
    assert ended["status"] == JobStatus.CANCELLED and ended["error"] == "cancelled by a user"
    assert not Dataset.objects.filter(name="cancel-me").exists()
    assert not Query.objects.exists() and not Candidate.objects.exists()


def test_cancelling_a_running_export_leaves_no_snapshot(
    celery_worker_process, curator, settings, api_as
):
    corpus = Corpus.objects.create(name="big")
    dataset = Dataset.objects.create(name="big", corpus=corpus)
    queries = Query.objects.bulk_create(
        Query(dataset=dataset, query_id=f"q{i}", text=f"question {i}") for i in range(40_000)
    )
    passages = Passage.objects.bulk_create(
        Passage(corpus=corpus, doc_id=f"d{i}", text=f"passage {i} " * 20) for i in range(80_000)
    )
    Candidate.objects.bulk_create(
        Candidate(query=query, passage=passages[2 * i + k], role=role, rank=k or None)
        for i, query in enumerate(queries)
        for k, role in enumerate((CandidateRole.POSITIVE, CandidateRole.NEGATIVE))
    )
    api = api_as(curator)
    response = api.post(
        reverse("api:snapshot-list"),
        {"dataset": dataset.pk, "policy": "default", "format": "bge"},
        format="json",
    )
    assert response.status_code == 202, response.content
    detail = reverse("api:export-detail", args=[response.json()["id"]])
    job = _wait(
        api, detail, _running_with_progress, timeout=START_TIMEOUT, worker=celery_worker_process
    )
    ended = _cancel_and_wait(
        api,
        job,
        detail="api:export-detail",
        cancel="api:export-cancel",
        worker=celery_worker_process,
    )
    assert ended["status"] == JobStatus.CANCELLED and ended["snapshot"] is None
    assert not Snapshot.objects.exists()


def test_cancelling_a_running_mining_run_adds_no_negatives(
    celery_worker_process, curator, shared_data
):
    """Mining encodes the corpus first, reporting after each slice of 1,024 passages: the
    cancel is seen at the next report and nothing is mined. 1,100 shortened SciFact
    abstracts: one slice to wait for, then the cancel."""
    import gzip

    from curation.mining.services import mining_run_create
    from curation.models import CandidateOrigin, MiningRun
    from tests.curation.mining_support import minilm_path
    from tests.factories import CandidateFactory, DatasetFactory, PassageFactory, QueryFactory

    dataset = DatasetFactory(name="mine-then-stop", query_count=1, positive_count=1)
    query = QueryFactory(dataset=dataset, query_id="q1", text="what do bees make")
    CandidateFactory(query=query, role=CandidateRole.POSITIVE, passage__text="Bees make honey.")
    with gzip.open(shared_data / "beir" / "scifact" / "corpus.jsonl.gz", "rt") as corpus:
        for _, line in zip(range(1100), corpus, strict=False):
            PassageFactory(corpus=dataset.corpus, text=json.loads(line)["text"][:300])
    run = mining_run_create(dataset=dataset, model_name=minilm_path(), user=curator)

    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.status in FINISHED_STATUSES or (run.status == "running" and run.progress > 0):
            break
        time.sleep(0.1)
    assert run.status == JobStatus.RUNNING, (run.status, celery_worker_process.log_text())
    page = Client()  # the run page's Cancel button, as a curator presses it
    page.force_login(curator)
    assert page.post(reverse("curation:mining_run_cancel", args=[run.pk])).status_code == 302
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.status in FINISHED_STATUSES:
            break
        time.sleep(0.1)
    assert run.status == JobStatus.CANCELLED, (run.status, run.error)
    assert isinstance(run, MiningRun) and run.progress < 1.0
    assert not Candidate.objects.filter(origin=CandidateOrigin.MINED).exists()


@pytest.fixture
def generator_key(monkeypatch):
    """Set before the worker starts: it inherits the environment."""
    monkeypatch.setenv("SIEVE_TEST_SYNTH_KEY", "sk-worker-test")


def test_cancelling_a_running_synthesis_run_keeps_only_whole_chunks(
    generator_key, celery_worker_process, curator, settings
):
    """Synthesis writes its triplets one chunk of 100 passages at a time. 300 short passages,
    a generator that answers slowly: once the run reports progress past the teacher, the
    cancel is seen at the next chunk; what was written is whole triplets of whole chunks."""
    from curation.models import CandidateOrigin, SynthesisRun
    from curation.synthesis.services import CHUNK, synthesis_run_create
    from tests.curation.mining_support import minilm_path
    from tests.factories import DatasetFactory, PassageFactory
    from tests.support.openai_server import FakeOpenAIServer, Reply

    dataset = DatasetFactory(name="synthesize-then-stop")
    for i in range(3 * CHUNK):
        PassageFactory(corpus=dataset.corpus, text=f"Passage {i}: bees make honey in hive {i}.")

    def slow(body):
        if "hard negative" in body["messages"][0]["content"]:
            return Reply(content=json.dumps({"passage": "Butterflies drink nectar."}), delay=0.05)
        return Reply(content=json.dumps({"query": "how is honey made"}), delay=0.05)

    with FakeOpenAIServer(slow) as server:
        run = synthesis_run_create(
            dataset=dataset, sample_size=3 * CHUNK, teacher_model=minilm_path(),
            generator={"base_url": server.base_url, "model": "gen", "concurrency": 2,
                       "api_key_env": "SIEVE_TEST_SYNTH_KEY"},
            user=curator,
        )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            run.refresh_from_db()
            if run.status in FINISHED_STATUSES or "passages" in run.progress_message:
                break
            time.sleep(0.1)
        assert run.status == JobStatus.RUNNING, (run.status, celery_worker_process.log_text())
        page = Client()
        page.force_login(curator)
        cancel = reverse("curation:synthesis_run_cancel", args=[run.pk])
        assert page.post(cancel).status_code == 302
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline:
            run.refresh_from_db()
            if run.status in FINISHED_STATUSES:
                break
            time.sleep(0.1)
    assert run.status == JobStatus.CANCELLED, (run.status, run.error)
    assert isinstance(run, SynthesisRun) and run.progress < 1.0
    queries = Query.objects.filter(dataset=dataset)
    # Whole triplets only: every generated query has its positive and its negative.
    for query in queries.prefetch_related("candidates"):
        roles = sorted(c.role for c in query.candidates.all())
        assert roles == [CandidateRole.NEGATIVE, CandidateRole.POSITIVE], query.query_id
    assert queries.count() < 3 * CHUNK
    generated = Candidate.objects.filter(query__dataset=dataset, origin=CandidateOrigin.GENERATED)
    assert generated.count() == 2 * queries.count()
