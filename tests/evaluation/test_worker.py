"""A real Celery worker process (the ``gpu`` queue) runs an evaluation run launched the way
the web form launches it; SIGKILLed after its first task, it resumes under the same node name
and evaluates only the task it had not stored."""

import time

import pytest

from core.models import JobStatus
from evaluation.models import EvaluationRun
from evaluation.services.runs import evaluation_run_create
from tests.conftest import SHARED_DATA
from tests.support.environment import missing

from . import TEST_MAX_SEQ_LENGTH, minilm_path, scifact_mini

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

# A safety limit for a loaded machine; nothing here asserts a duration.
JOB_TIMEOUT = 600


@pytest.fixture
def eval_env(monkeypatch, settings, tmp_path):
    """Data, cache and results folders for this test, set in the environment before the
    worker starts (so that it sees them too) and in this process's settings."""
    if not SHARED_DATA.is_dir():
        missing(f"real data folder {SHARED_DATA} is not present")
    data = tmp_path / "eval-data"
    scifact_mini(SHARED_DATA, data / "mini", queries=10, distractors=20)
    # Big enough that the worker is still encoding it when the test kills the worker.
    scifact_mini(SHARED_DATA, data / "bigger", queries=60, distractors=240, skip_queries=10)
    folders = {
        "SIEVE_EVAL_DATA_DIRS": data,
        "SIEVE_EMBEDDING_CACHE_DIR": tmp_path / "embeddings",
        "SIEVE_EVAL_RESULTS_DIR": tmp_path / "eval-results",
    }
    for name, path in folders.items():
        monkeypatch.setenv(name, str(path))
        setattr(settings, name, [path] if name == "SIEVE_EVAL_DATA_DIRS" else path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return folders


def _wait_for(run, predicate, *, worker, timeout=JOB_TIMEOUT, poll=0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if predicate(run):
            # A predicate that queries (the run's results) may see a commit that came after
            # the row was read: read it again, so the row is at least as new as what it saw.
            run.refresh_from_db()
            return run
        if run.status in (JobStatus.FAILED, JobStatus.CANCELLED):
            break
        time.sleep(poll)
    pytest.fail(f"run #{run.pk} is {run.status} ({run.error}):\n{worker.log_text()[-4000:]}")


def test_a_killed_worker_resumes_the_evaluation_after_its_stored_tasks(
    eval_env, celery_worker_process, curator
):
    run = evaluation_run_create(
        model_ref=minilm_path(),
        tasks=["beir:mini", "beir:bigger"],
        config={"max_seq_length": TEST_MAX_SEQ_LENGTH, "precision": "fp32"},
        user=curator,
    )
    run = _wait_for(
        run, lambda r: r.results.filter(task="beir:mini").exists(), worker=celery_worker_process
    )
    first = run.results.get(task="beir:mini")
    assert run.status == JobStatus.RUNNING and not run.results.filter(task="beir:bigger").exists()
    assert run.stats["tasks"]["beir:mini"]["documents_encoded"] > 0

    celery_worker_process.kill()  # the whole worker, main process included
    run.refresh_from_db()
    assert run.status == JobStatus.RUNNING
    celery_worker_process.start()
    run = _wait_for(run, lambda r: r.status == JobStatus.SUCCEEDED, worker=celery_worker_process)

    assert run.results.get(task="beir:mini").created_at == first.created_at  # not evaluated again
    bigger = run.results.get(task="beir:bigger")
    assert bigger.query_count == 60 and bigger.corpus_size > 240
    assert run.stats["tasks"]["beir:mini"]["resumed"] == "already stored"
    assert run.stats["tasks"]["beir:bigger"]["main_score"] == bigger.main_score
    assert run.progress == 1.0 and run.celery_task_id
    assert EvaluationRun.objects.get(pk=run.pk).results.count() == 2
    assert "resumed" not in run.stats["tasks"]["beir:bigger"]
