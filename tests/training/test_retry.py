"""Running a training run again: a run that failed after a checkpoint resumes from it and
ends as an uninterrupted run would (its curve kept up to the checkpoint); a cancelled run
starts again from step 0; a run that is queued, running or succeeded is refused; the page,
the API and their roles."""

from pathlib import Path

import pytest
from django.urls import reverse

from core.errors import ApplicationError
from core.models import JobStatus
from tests.factories import TrainingRunFactory
from training import services
from training.models import TrainingRun
from training.retry import training_run_retry, training_run_retryable
from training.services import training_run_create, training_run_execute

pytestmark = pytest.mark.django_db

SMALL = {"max_steps": 4, "batch_size": 4, "num_negatives": 1, "query_max_length": 32,
         "passage_max_length": 64, "logging_steps": 1, "save_steps": 2}  # fmt: skip


@pytest.mark.slow
def test_a_run_that_failed_after_a_checkpoint_resumes_from_it(
    snapshot, sent, monkeypatch, django_capture_on_commit_callbacks
):
    run = training_run_create(snapshot=snapshot, config=SMALL, enqueue=False)
    real_step = services._RunRecorder.step

    def out_of_memory_at_step_3(recorder, *, step, total_steps, metrics):
        if step == 3:
            raise RuntimeError("CUDA out of memory (what the worker hit)")
        real_step(recorder, step=step, total_steps=total_steps, metrics=metrics)

    monkeypatch.setattr(services._RunRecorder, "step", out_of_memory_at_step_3)
    training_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == JobStatus.FAILED and "out of memory" in run.error
    assert training_run_retryable(run=run) == {"from_step": 2}
    assert (Path(run.output_dir) / "checkpoints" / "checkpoint-2").is_dir()

    monkeypatch.setattr(services._RunRecorder, "step", real_step)
    with django_capture_on_commit_callbacks(execute=True):
        training_run_retry(run=run)
    assert run.status == JobStatus.QUEUED and not run.error and sent == [run.pk]
    assert run.progress_message == "queued to resume from step 2"
    training_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == JobStatus.SUCCEEDED and run.artifact_kind == "adapter"
    assert (run.resumed_from_step, run.step, run.total_steps) == (2, 4, 4)
    assert [point["step"] for point in run.history] == [1, 2, 3, 4]
    assert training_run_retryable(run=run) == {}
    with pytest.raises(ApplicationError, match="only a failed or cancelled run"):
        training_run_retry(run=run)


def test_a_cancelled_run_starts_again_from_step_0(sent, django_capture_on_commit_callbacks):
    run = TrainingRunFactory(
        status=JobStatus.CANCELLED, step=3, total_steps=10, resumed_from_step=2,
        history=[{"step": 1, "loss": 2.0}], metrics={"checkpoint_step": 2}, log_tail="old",
    )  # fmt: skip
    assert training_run_retryable(run=run) == {"from_step": 0}
    with django_capture_on_commit_callbacks(execute=True):
        training_run_retry(run=run)
    assert run.status == JobStatus.QUEUED and sent == [run.pk]
    assert (run.step, run.resumed_from_step, run.history, run.metrics) == (0, None, [], {})
    assert run.progress_message == "queued to run again from the start"


@pytest.mark.parametrize("state", [JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.SUCCEEDED])
def test_a_run_that_did_not_end_badly_is_refused(state, sent):
    run = TrainingRunFactory(status=state)
    assert training_run_retryable(run=run) == {}
    with pytest.raises(ApplicationError, match=f"is {state}"):
        training_run_retry(run=run)
    assert sent == [] and TrainingRun.objects.get(pk=run.pk).status == state


def test_the_page_offers_it_to_curators_and_the_api_runs_it(
    client, curator, viewer, sent, api_as, django_capture_on_commit_callbacks
):
    run = TrainingRunFactory(status=JobStatus.FAILED, metrics={"checkpoint_step": 40})
    page_url = reverse("training:run_detail", args=[run.pk])
    client.force_login(viewer)
    assert "Resume from step" not in client.get(page_url).content.decode()
    assert client.post(reverse("training:run_retry", args=[run.pk])).status_code == 403
    assert api_as(viewer).post(reverse("api:training-retry", args=[run.pk])).status_code == 403

    client.force_login(curator)
    page = client.get(page_url).content.decode()
    assert "Resume from step 40" in page and "checkpoint at step 40" in page
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("training:run_retry", args=[run.pk]), follow=True)
    assert "queued to resume from step 40" in response.content.decode()
    run.refresh_from_db()
    assert run.status == JobStatus.QUEUED and sent == [run.pk]

    again = api_as(curator).post(reverse("api:training-retry", args=[run.pk]))
    assert again.status_code == 400 and "only a failed or cancelled run" in again.json()["message"]
    TrainingRun.objects.filter(pk=run.pk).update(status=JobStatus.CANCELLED)
    with django_capture_on_commit_callbacks(execute=True):
        body = api_as(curator).post(reverse("api:training-retry", args=[run.pk])).json()
    assert body["status"] == "queued" and body["retryable"] == {} and len(sent) == 2
