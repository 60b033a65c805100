"""A real Celery worker (the ``gpu`` queue) trains LoRA adapters on SciFact-train claims:
a run succeeds with its row kept live (its batches tokenized in loader worker processes), a
run is cancelled within a step, and a run whose worker is SIGKILLed after its first
checkpoint resumes from it when the worker comes back."""

import math
import time
from pathlib import Path

import pytest

from core.jobs import job_request_cancel
from core.models import JobStatus
from training.models import TrainingRun
from training.services import training_run_create

from . import scifact_snapshots

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

# A safety limit for a loaded machine; nothing here asserts a duration.
TIMEOUT = 300

# Small enough for a busy 2-core CPU: a step is a few seconds at most.
SMALL = {
    "batch_size": 4,
    "num_negatives": 1,
    "query_max_length": 32,
    "passage_max_length": 48,
    "learning_rate": 1e-3,
    "logging_steps": 1,
    "save_steps": 2,
}


@pytest.fixture
def model_dir(tmp_path, monkeypatch, settings):
    """Set before the worker starts, so that its settings have the same folder."""
    folder = tmp_path / "models"
    monkeypatch.setenv("SIEVE_MODEL_DIR", str(folder))
    settings.SIEVE_MODEL_DIR = folder
    return folder


@pytest.fixture
def loader_workers(monkeypatch):
    """A gpu worker's default on a GPU: batches tokenized in two loader worker processes,
    started from the Celery pool's (daemonic) task process. Set before the worker starts."""
    monkeypatch.setenv("SIEVE_TRAIN_LOADER_WORKERS", "2")
    return 2


@pytest.fixture
def snapshot(shared_data, tmp_path):
    return scifact_snapshots(shared_data, tmp_path / "data", formats=("bge",), queries=32)["bge"]


def wait_for(predicate, what: str, worker, *, poll: float = 0.1):
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(poll)
    pytest.fail(f"timed out waiting for {what}:\n{worker.log_text()[-4000:]}")


def finished(run):
    def check():
        run.refresh_from_db()
        return run.status not in (JobStatus.QUEUED, JobStatus.RUNNING)

    return check


def test_a_worker_trains_a_run_live_then_cancels_one_within_a_step(
    model_dir, loader_workers, snapshot, celery_worker_process
):
    worker = celery_worker_process
    run = training_run_create(snapshot=snapshot, config={**SMALL, "max_steps": 4})
    seen_live = []

    def done_or_live():
        run.refresh_from_db()
        if run.status == JobStatus.RUNNING and 0 < run.step < 4 and run.history:
            seen_live.append((run.step, len(run.history), run.progress))
        return run.status not in (JobStatus.QUEUED, JobStatus.RUNNING)

    wait_for(done_or_live, "the first run to finish", worker)
    assert run.status == JobStatus.SUCCEEDED, (run.error, worker.log_text()[-4000:])
    assert seen_live and all(0 < progress < 1 for _, _, progress in seen_live)
    assert run.celery_task_id and run.step == run.total_steps == 4
    assert [p["step"] for p in run.history] == [1, 2, 3, 4]
    assert all(math.isfinite(p["loss"]) for p in run.history)
    assert run.artifact_kind == "adapter"
    assert (Path(run.artifact_path) / "adapter_model.safetensors").is_file()
    assert run.metrics["samples_per_s"] > 0 and run.metrics["trainable_params"] > 0
    assert run.metrics["loader_workers"] == loader_workers
    assert run.metrics["samples_trained"] == 4 * SMALL["batch_size"]

    # A long run, cancelled once it is under way.
    long_run = training_run_create(snapshot=snapshot, config={**SMALL, "max_steps": 200})

    def under_way():
        long_run.refresh_from_db()
        return long_run.step >= 2 or long_run.status not in (JobStatus.QUEUED, JobStatus.RUNNING)

    wait_for(under_way, "the long run to take two steps", worker)
    assert long_run.status == JobStatus.RUNNING, (long_run.error, worker.log_text()[-4000:])
    requested_at = long_run.step
    job_request_cancel(job=long_run)
    wait_for(finished(long_run), "the cancelled run to stop", worker)

    assert long_run.status == JobStatus.CANCELLED, (long_run.error, worker.log_text()[-4000:])
    # Seen after the request (the row may lag the loop by a step or, on a fast machine, by
    # up to a flush interval), and no step after the one in which it was seen. The exact
    # "stops in the step it saw the flag" is checked in-process in test_core.py.
    seen = long_run.metrics["cancel_seen_at_step"]
    assert requested_at <= seen
    assert long_run.step == seen and long_run.step < long_run.total_steps == 200
    assert max(p["step"] for p in long_run.history) <= seen
    log = (Path(long_run.output_dir) / "train.log").read_text()
    assert f"step {seen + 1}/200" not in log
    assert long_run.artifact_path == "" and long_run.artifact_kind == ""
    folder = Path(long_run.output_dir)
    assert not (folder / "adapter").exists() and not (folder / "checkpoints").exists()


def test_a_run_whose_worker_is_killed_resumes_from_its_last_checkpoint(
    model_dir, snapshot, celery_worker_process
):
    worker = celery_worker_process
    run = training_run_create(snapshot=snapshot, config={**SMALL, "max_steps": 10})

    def checkpointed():
        run.refresh_from_db()
        return run.metrics.get("checkpoint_step", 0) >= 2 or run.status not in (
            JobStatus.QUEUED,
            JobStatus.RUNNING,
        )

    wait_for(checkpointed, "the first checkpoint", worker)
    assert run.status == JobStatus.RUNNING, (run.error, worker.log_text()[-4000:])
    worker.kill()
    run.refresh_from_db()
    assert run.status == JobStatus.RUNNING and run.step < 10
    checkpoint_step = run.metrics["checkpoint_step"]

    worker.start()
    wait_for(finished(run), "the resumed run to finish", worker, poll=0.3)
    assert run.status == JobStatus.SUCCEEDED, (run.error, worker.log_text()[-4000:])
    assert run.resumed_from_step is not None and run.resumed_from_step >= checkpoint_step >= 2
    assert run.step == run.total_steps == 10
    assert (Path(run.artifact_path) / "adapter_model.safetensors").is_file()
    # The checkpoints go right after the row says succeeded (until then they are what a
    # crash would resume from), so the worker may still be removing them.
    wait_for(
        lambda: not (Path(run.output_dir) / "checkpoints").exists(),
        "the checkpoints of the finished run to be removed",
        worker,
    )

    # One loss-curve point per step: the steps redone after the checkpoint replaced the
    # points the killed life had written for them, and time keeps running across the lives.
    steps = [p["step"] for p in run.history]
    assert steps == sorted(set(steps)) and steps[-1] == 10
    assert set(range(run.resumed_from_step + 1, 11)) <= set(steps)
    elapsed = [p["elapsed_s"] for p in run.history]
    assert elapsed == sorted(elapsed)
    log = (Path(run.output_dir) / "train.log").read_text()
    assert f"resuming from the checkpoint at step {run.resumed_from_step}" in log
    # The row's log tail spans both lives.
    assert "checkpoint saved at step 2" in run.log_tail and "resuming from" in run.log_tail
    assert TrainingRun.objects.get(pk=run.pk).stats["resumed_from_step"] == run.resumed_from_step
