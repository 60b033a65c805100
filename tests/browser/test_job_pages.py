"""Every kind of job page in a real browser (core/job_pages.py): while the job runs the page
polls; when the job ends (here the test plays the worker and ends it in the database) the page
stops polling and reloads itself in the final state, with what only a finished job shows (the
training run's Evaluate button, the end status, no Cancel button). One test per job kind."""

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils import timezone

from core.models import JobStatus
from curation.models import CascadeRun, ExportJob, ImportJob, MiningRun, SynthesisRun
from tests.browser.conftest import log_in
from tests.factories import DatasetFactory, EvaluationRunFactory, TrainingRunFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

KINDS = {
    "import": (
        lambda: ImportJob.objects.create(dataset_name="d", source_path="/nowhere.jsonl"),
        "curation:import_job_detail",
    ),
    "export": (
        lambda: ExportJob.objects.create(dataset=DatasetFactory(), policy="default", format="bge"),
        "curation:export_job_detail",
    ),
    "mining": (
        lambda: MiningRun.objects.create(dataset=DatasetFactory(), model_name="minilm"),
        "curation:mining_run_detail",
    ),
    "cascade": (
        lambda: CascadeRun.objects.create(dataset=DatasetFactory(), stages=[]),
        "curation:cascade_run_detail",
    ),
    "synthesis": (
        lambda: SynthesisRun.objects.create(dataset=DatasetFactory()),
        "curation:synthesis_run_detail",
    ),
    "training": (
        lambda: TrainingRunFactory(status=JobStatus.QUEUED, artifact_path=""),
        "training:run_detail",
    ),
    "evaluation": (
        lambda: EvaluationRunFactory(status=JobStatus.QUEUED),
        "evaluation:run_detail",
    ),
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_job_page_follows_the_job_to_its_end_and_shows_the_final_state(
    kind, live_server, new_page, django_user_model
):
    make, page_name = KINDS[kind]
    job = make()
    curator = django_user_model.objects.create_user(username="cora", password="pw-cora")
    curator.groups.add(Group.objects.get_or_create(name="curator")[0])
    page = new_page()
    log_in(page, live_server, "cora", "pw-cora")
    page.goto(live_server.url + reverse(page_name, args=[job.pk]))
    assert "queued" in page.inner_text("#job-status")
    assert page.locator("#job-status button.danger").count() == 1  # Cancel
    page.evaluate("window.beforeTheJobEnded = true")  # gone once the page reloads

    changes = {
        "status": JobStatus.SUCCEEDED,
        "progress": 1.0,
        "progress_message": "all done here",
        "finished_at": timezone.now(),
    }
    if kind == "training":
        changes["artifact_path"] = "/models/run/adapter"
    type(job).objects.filter(pk=job.pk).update(**changes)

    page.wait_for_function("window.beforeTheJobEnded === undefined", timeout=20_000)
    status = page.inner_text("#job-status")
    assert "succeeded" in status and "all done here" in status
    assert page.locator("#job-status button.danger").count() == 0
    assert page.locator("#job-status[hx-trigger]").count() == 0  # no more polling
    if kind == "training":
        # Outside the status section: only a reload shows it.
        evaluate = reverse("evaluation:new") + f"?training_run={job.pk}"
        assert page.locator(f'a[href="{evaluate}"]').count() == 1
    assert page.errors == [] and page.dialogs == []
