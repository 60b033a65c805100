"""Approvals through the pages, the REST API and ``manage.py approve_verdicts``: who may do
what, the gate shown before approving, a refused gate, the reason on the snapshot page, revoke,
and the job on a real worker."""

import time

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from core.models import JobStatus
from curation.cascade.approvals import approval_execute
from curation.datasets.snapshots import snapshot_create
from curation.models import Approval, Decision

from .test_approvals import QUERIES, _judged_dataset, _reviewed_report

pytestmark = pytest.mark.django_db

REASON = "replayed RLHN outputs: <b>no humans</b> in this study"


@pytest.fixture
def judged():
    return _judged_dataset()


def test_the_form_shows_the_gate_and_refuses_a_failing_one_without_a_reason(curator_client, judged):
    dataset, run = judged
    page = curator_client.get(reverse("review:approval_new"), {"run": run.pk})
    assert page.status_code == 200
    gate = curator_client.get(
        reverse("review:approval_new"),
        {"cascade_run": run.pk, "kappa_min": "0.3", "precision_low_min": "0.5"},
        HTTP_HX_REQUEST="true",
    )
    html = gate.content.decode()
    assert 'id="gate"' in html and "not met" in html and "nothing was measured" in html

    refused = curator_client.post(
        reverse("review:approval_create"),
        {"cascade_run": run.pk, "kappa_min": "0.3", "precision_low_min": "0.5", "reason": ""},
    )
    assert refused.status_code == 400
    assert "write the reason" in refused.content.decode()
    assert not Approval.objects.exists()

    created = curator_client.post(
        reverse("review:approval_create"),
        {"cascade_run": run.pk, "kappa_min": "0.3", "precision_low_min": "0.5", "reason": REASON},
    )
    approval = Approval.objects.get()
    assert created.status_code == 302
    assert created["Location"] == reverse("review:approval_detail", args=[approval.pk])
    approval_execute(run_id=approval.pk)

    detail = curator_client.get(created["Location"]).content.decode()
    assert "<b>no humans</b>" not in detail and "&lt;b&gt;no humans&lt;/b&gt;" in detail
    assert "yes: new snapshots use it" in detail
    listing = curator_client.get(reverse("review:approval_index"), {"dataset": dataset.pk})
    assert f"approval #{approval.pk}" in listing.content.decode()

    snapshot = snapshot_create(dataset=dataset, policy="relabel", format="bge")
    page = curator_client.get(reverse("curation:snapshot_detail", args=[snapshot.pk]))
    html = page.content.decode()
    assert "not met" in html and "&lt;b&gt;no humans&lt;/b&gt;" in html
    assert f"approval #{approval.pk}" in html and 'id="snapshot-effects-by-source"' in html

    revoked = curator_client.post(
        reverse("review:approval_revoke", args=[approval.pk]), {"reason": "wrong prompt"}
    )
    assert revoked.status_code == 302
    html = curator_client.get(created["Location"]).content.decode()
    assert "no: revoked" in html and "wrong prompt" in html


def test_the_form_measures_a_real_report(curator_client, judged, django_user_model):
    from tests.support.users import user_with_role

    dataset, run = judged
    report = _reviewed_report(dataset, run, user_with_role(django_user_model, "alice", "annotator"))
    html = curator_client.get(
        reverse("review:approval_new"),
        {"cascade_run": run.pk, "report": report.pk, "stage": "2", "kappa_min": "0.3",
         "precision_low_min": "0.5"},
    ).content.decode()  # fmt: skip
    assert "llm:gpt-4o:stage2" in html and "RLHN's published κ for this stage" in html


def test_a_reason_given_with_a_met_gate_is_shown_as_a_reason(curator_client, judged):
    dataset, run = judged
    approval = Approval.objects.create(
        dataset=dataset, cascade_run=run, gate_passed=True, status=JobStatus.SUCCEEDED,
        reason="checked by hand as well",
    )  # fmt: skip
    html = curator_client.get(reverse("review:approval_detail", args=[approval.pk])).content
    html = html.decode()
    assert "checked by hand as well" in html and "gate was not met" not in html
    approval.gate_passed = False
    approval.save(update_fields=["gate_passed"])
    html = curator_client.get(reverse("review:approval_detail", args=[approval.pk])).content
    assert "Approved although the gate was not met" in html.decode()


def test_cancel_stops_a_queued_approval(curator_client, judged):
    _, run = judged
    curator_client.post(
        reverse("review:approval_create"),
        {"cascade_run": run.pk, "kappa_min": "0.3", "precision_low_min": "0.5", "reason": "r"},
    )
    approval = Approval.objects.get()
    curator_client.post(reverse("review:approval_cancel", args=[approval.pk]))
    approval_execute(run_id=approval.pk)
    approval.refresh_from_db()
    assert approval.status == JobStatus.CANCELLED
    assert not Decision.objects.filter(approval=approval).exists()


def test_roles_curators_write_viewers_read_annotators_nothing(
    client, curator, viewer, annotator, api_as, judged
):
    _, run = judged
    body = {"cascade_run": run.pk, "reason": "replay"}
    assert api_as(viewer).post("/api/approvals/", body, format="json").status_code == 403
    assert api_as(annotator).post("/api/approvals/", body, format="json").status_code == 403
    assert api_as(annotator).get("/api/approvals/").status_code == 403

    api = api_as(curator)
    refused = api.post("/api/approvals/", {"cascade_run": run.pk}, format="json")
    assert refused.status_code == 400 and refused.json()["field"] == "reason"
    created = api.post("/api/approvals/", body, format="json")
    assert created.status_code == 202, created.json()
    pk = created.json()["id"]
    approval_execute(run_id=pk)

    listed = api_as(viewer).get("/api/approvals/").json()["results"]
    assert [row["id"] for row in listed] == [pk]
    detail = api_as(viewer).get(f"/api/approvals/{pk}/").json()
    assert detail["in_force"] is True and detail["decision_count"] == QUERIES * 4
    assert detail["gate_passed"] is False and detail["reason"] == "replay"
    assert api_as(viewer).post(f"/api/approvals/{pk}/revoke", {}, format="json").status_code == 403
    revoked = api.post(f"/api/approvals/{pk}/revoke", {"reason": "x"}, format="json")
    assert revoked.status_code == 200 and revoked.json()["in_force"] is False
    assert api.post(f"/api/approvals/{pk}/revoke", {}, format="json").status_code == 409
    assert api.post(f"/api/approvals/{pk}/cancel").status_code == 202

    client.force_login(annotator)
    for url in (
        reverse("review:approval_index"),
        reverse("review:approval_detail", args=[pk]),
        reverse("review:approval_new"),
    ):
        assert client.get(url).status_code == 403
    client.force_login(viewer)
    assert client.get(reverse("review:approval_detail", args=[pk])).status_code == 200
    assert client.get(reverse("review:approval_new")).status_code == 403


def test_the_command_prints_the_gate_refuses_without_a_reason_and_applies(judged, capsys):
    dataset, run = judged
    with pytest.raises(CommandError, match="write the reason"):
        call_command("approve_verdicts", dataset.name, "--run", str(run.pk))
    assert "NOT met" in capsys.readouterr().out
    call_command("approve_verdicts", dataset.name, "--run", str(run.pk), "--reason", "replay")
    out = capsys.readouterr().out
    approval = Approval.objects.get()
    assert approval.status == JobStatus.SUCCEEDED
    assert f"approval #{approval.pk}: {QUERIES * 4} verdicts applied" in out
    with pytest.raises(CommandError, match="no cascade run"):
        call_command("approve_verdicts", dataset.name, "--run", "999999", "--reason", "x")


@pytest.mark.django_db(transaction=True)
def test_an_approval_runs_on_a_real_worker(celery_worker_process, curator, api_as):
    dataset, run = _judged_dataset()
    created = api_as(curator).post(
        "/api/approvals/", {"cascade_run": run.pk, "reason": "replay"}, format="json"
    )
    approval = Approval.objects.get(pk=created.json()["id"])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        approval.refresh_from_db()
        if approval.status in (JobStatus.SUCCEEDED, JobStatus.FAILED):
            break
        time.sleep(0.2)
    log = celery_worker_process.log_text()
    assert approval.status == JobStatus.SUCCEEDED, approval.error or log
    assert approval.false_negative_count == QUERIES // 2
