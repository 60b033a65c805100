"""Pages and buttons of the platform and of jobs that no other test opens: the health check,
the cancel buttons of synthesis runs and agreement reports (the job page pattern of
core/job_pages.py, with its roles), and a policy comparison's page."""

import pytest
from django.urls import reverse

from core.models import JobStatus
from curation.models import SynthesisRun
from experiments.models import PolicyComparison
from review.models import AgreementReport
from tests.factories import DatasetFactory

pytestmark = pytest.mark.django_db


def test_the_health_check_answers_without_a_login(client):
    response = client.get(reverse("healthz"))
    assert response.status_code == 200 and response.content == b"ok"


@pytest.mark.parametrize(
    ("make", "cancel_name", "page_name"),
    [
        (
            lambda: SynthesisRun.objects.create(dataset=DatasetFactory()),
            "curation:synthesis_run_cancel",
            "curation:synthesis_run_detail",
        ),
        (
            lambda: AgreementReport.objects.create(dataset=DatasetFactory()),
            "review:agreement_cancel",
            "review:agreement_detail",
        ),
    ],
)
def test_cancel_buttons_stop_a_queued_job_and_need_a_curator(
    client, curator, viewer, make, cancel_name, page_name
):
    job = make()
    client.force_login(viewer)
    assert client.post(reverse(cancel_name, args=[job.pk])).status_code == 403
    client.force_login(curator)
    page = client.get(reverse(page_name, args=[job.pk])).content.decode()
    assert ">Cancel</button>" in page
    response = client.post(reverse(cancel_name, args=[job.pk]), headers={"HX-Request": "true"})
    job.refresh_from_db()
    assert response.status_code == 286 and response["HX-Refresh"] == "true"
    assert job.status == JobStatus.CANCELLED and "cancelled" in response.content.decode()


def test_a_running_job_cancelled_without_htmx_goes_back_to_its_page(client, curator):
    run = SynthesisRun.objects.create(dataset=DatasetFactory(), status=JobStatus.RUNNING)
    client.force_login(curator)
    response = client.post(reverse("curation:synthesis_run_cancel", args=[run.pk]))
    assert response.status_code == 302
    assert response["Location"] == reverse("curation:synthesis_run_detail", args=[run.pk])
    run.refresh_from_db()
    assert run.cancel_requested and run.status == JobStatus.RUNNING
    page = client.get(response["Location"]).content.decode()
    assert "Cancellation requested" in page


def test_a_policy_comparisons_page_shows_its_plan_and_status(viewer_client):
    comparison = PolicyComparison.objects.create(
        dataset=DatasetFactory(name="msmarco-sample"),
        name="rlhn",
        policies=["default", "relabel"],
        train_config={"base_model": "all-MiniLM-L6-v2", "method": "lora"},
        eval_tasks=["beir:scifact", f"dataset:{DatasetFactory(name='coffee-eval').pk}"],
        status=JobStatus.FAILED,
        error="the base model is not there",
    )
    page = viewer_client.get(
        reverse("experiments:comparison_detail", args=[comparison.pk])
    ).content.decode()
    assert "Policy comparison #" in page and "msmarco-sample" in page
    assert "default, relabel" in page and "the base model is not there" in page
    # The tasks by name, as the evaluation pages call them; not their specs.
    assert ">coffee-eval</span>" in page and ">dataset:" not in page
