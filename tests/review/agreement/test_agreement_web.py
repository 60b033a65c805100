"""The agreement report on the web and in the API: who may see and compute it, the page's
figures and plots, the htmx job status, the CSV and JSON downloads."""

import csv
import io
import json
import time

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from core.models import JobStatus
from review.agreement.services import agreement_report_create, agreement_report_run
from review.models import AgreementReport

from .conftest import STAGE1, STAGE2, build_reviewed, machine_judge
from .reference import Reference


@pytest.fixture
def reviewed(db, django_user_model):
    return build_reviewed(django_user_model)


@pytest.fixture
def finished(reviewed, curator):
    report, _ = agreement_report_create(dataset=reviewed.dataset, user=curator)
    agreement_report_run(report_id=report.pk)
    report.refresh_from_db()
    return report


def _api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.mark.django_db
def test_annotators_and_strangers_never_reach_the_report(
    client, finished, annotator, django_user_model
):
    urls = [
        reverse("review:agreement_index"),
        reverse("review:agreement_detail", args=[finished.pk]),
        reverse("review:agreement_csv", args=[finished.pk]),
        reverse("review:agreement_json", args=[finished.pk]),
    ]
    client.force_login(annotator)
    for url in urls:
        assert client.get(url).status_code == 403, url
    assert client.post(reverse("review:agreement_create"), {}).status_code == 403
    api = _api(annotator)
    assert api.get(reverse("api:agreement-list")).status_code == 403
    assert api.get(reverse("api:agreement-detail", args=[finished.pk])).status_code == 403
    assert APIClient().get(reverse("api:agreement-list")).status_code in (401, 403)
    client.logout()
    response = client.get(urls[1])
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


@pytest.mark.django_db
def test_viewers_read_reports_but_cannot_start_one(client, finished, viewer, reviewed):
    client.force_login(viewer)
    page = client.get(reverse("review:agreement_index"))
    assert page.status_code == 200
    assert b"Compute report" not in page.content
    assert client.get(reverse("review:agreement_detail", args=[finished.pk])).status_code == 200
    assert client.post(reverse("review:agreement_create"), {}).status_code == 403
    api = _api(viewer)
    assert api.get(reverse("api:agreement-detail", args=[finished.pk])).status_code == 200
    response = api.post(reverse("api:agreement-list"), {"dataset": reviewed.dataset.pk})
    assert response.status_code == 403


@pytest.mark.django_db
def test_report_page_shows_the_figures_and_the_paper_beside_them(
    client, curator, finished, reviewed
):
    client.force_login(curator)
    page = client.get(reverse("review:agreement_detail", args=[finished.pk]))
    html = page.content.decode()
    ref = Reference(campaigns=[reviewed.full, reviewed.partial])
    for rater in (STAGE1, STAGE2, "cascade_final"):
        expected = ref.machine_vs_majority(rater)
        assert f'data-rater="{rater}"' in html
        assert f"{expected['kappa']:.3f}" in html
        assert f"{expected['f1']:.3f}" in html
    assert "0.320" in html and "0.390" in html and "670" in html
    # Plots are inline SVG (no script, no CDN): κ per stage, heatmaps and κ by week.
    assert html.count("<svg") >= 1 + 4 + 1
    assert '<script src="http' not in html
    assert "Out of date" not in html and "Up to date" in html
    assert f'href="/review/agreement/{finished.pk}/agreement.csv"' in html
    # The count has one name here and in the list; the cut-off says what its number is.
    assert "<dt>Human verdicts</dt>" in html
    cutoff = finished.judgment_cutoff
    assert f"with an id up to #{cutoff}, the newest when it was computed" in html
    assert f">up to judgment #{cutoff}</dd>" in html
    listing = client.get(reverse("review:agreement_index")).content.decode()
    assert '<th class="num">Human verdicts</th>' in listing and "Human ratings" not in listing


@pytest.mark.django_db
def test_a_stale_report_says_so_and_offers_recompute(client, curator, finished, reviewed):
    candidate_id = reviewed.full.items.values_list("candidate_id", flat=True).first()
    machine_judge(candidate_id=candidate_id, rater=STAGE1, verdict="relevant")
    client.force_login(curator)
    html = client.get(reverse("review:agreement_detail", args=[finished.pk])).content.decode()
    assert "Out of date" in html and "new judgments arrived" in html
    response = client.post(reverse("review:agreement_recompute", args=[finished.pk]))
    newer = AgreementReport.objects.latest("id")
    assert newer.pk != finished.pk and newer.scope == finished.scope
    assert response["Location"] == reverse("review:agreement_detail", args=[newer.pk])


@pytest.mark.django_db
def test_compute_from_the_form_reuses_a_report_that_is_still_good(
    client, curator, finished, reviewed
):
    client.force_login(curator)
    response = client.post(reverse("review:agreement_create"), {"dataset": reviewed.dataset.pk})
    assert response["Location"] == reverse("review:agreement_detail", args=[finished.pk])
    response = client.post(reverse("review:agreement_create"), {"campaign": reviewed.full.pk})
    report = AgreementReport.objects.latest("id")
    assert report.campaign_id == reviewed.full.pk and report.status == JobStatus.QUEUED
    assert response["Location"] == reverse("review:agreement_detail", args=[report.pk])
    # A campaign of another dataset is refused with a message, not a crash.
    from tests.factories import DatasetFactory

    other = DatasetFactory()
    response = client.post(
        reverse("review:agreement_create"), {"campaign": reviewed.full.pk, "dataset": other.pk}
    )
    assert response.status_code == 400
    assert "is not a campaign of dataset" in response.content.decode()


@pytest.mark.django_db
def test_job_status_polls_until_done_then_reloads(client, curator, reviewed):
    report, _ = agreement_report_create(campaign=reviewed.full, user=curator)
    client.force_login(curator)
    url = reverse("review:agreement_detail", args=[report.pk])
    page = client.get(url).content.decode()
    assert 'hx-trigger="every 1s"' in page and "queued" in page
    fragment = client.get(url, headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and "<html" not in fragment.content.decode()
    agreement_report_run(report_id=report.pk)
    done = client.get(url, headers={"HX-Request": "true"})
    assert done.status_code == 286  # htmx: stop polling
    assert done["HX-Refresh"] == "true"


@pytest.mark.django_db
def test_csv_and_json_downloads_carry_the_same_figures(client, viewer, finished):
    client.force_login(viewer)
    response = client.get(reverse("review:agreement_csv", args=[finished.pk]))
    assert response["Content-Disposition"] == f'attachment; filename="agreement-{finished.pk}.csv"'
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    stage1 = next(
        r for r in rows if r["section"] == "machine_vs_majority" and r["rater_a"] == STAGE1
    )
    expected = next(m for m in finished.result["machines"] if m["rater"] == STAGE1)
    assert float(stage1["kappa"]) == pytest.approx(expected["kappa"], abs=1e-6)
    assert int(stage1["n"]) == expected["n"]
    assert float(stage1["paper_kappa"]) == 0.32
    sections = {r["section"] for r in rows}
    assert {"humans", "human_pairs", "flag_pairs", "slice_machine_vs_majority"} <= sections

    response = client.get(reverse("review:agreement_json", args=[finished.pk]))
    body = json.loads(response.content)
    assert body["result"] == finished.result
    assert body["judgment_cutoff"] == finished.judgment_cutoff
    assert "NaN" not in response.content.decode()


@pytest.mark.django_db
def test_api_creates_reuses_and_returns_reports(curator, reviewed):
    api = _api(curator)
    url = reverse("api:agreement-list")
    created = api.post(url, {"campaign": reviewed.full.pk}, format="json")
    assert created.status_code == 202
    body = created.json()
    assert body["status"] == "queued" and body["campaign"] == reviewed.full.pk
    assert body["scope"]["partly_relevant_is_false_negative"] is False
    # Asking again while it is queued gives the same report, not a second job.
    assert api.post(url, {"campaign": reviewed.full.pk}, format="json").json()["id"] == body["id"]

    agreement_report_run(report_id=body["id"])
    detail = api.get(reverse("api:agreement-detail", args=[body["id"]])).json()
    assert detail["status"] == "succeeded" and detail["stale"] is False
    ref = Reference(campaigns=[reviewed.full])
    stage2 = next(m for m in detail["result"]["machines"] if m["rater"] == STAGE2)
    assert stage2["kappa"] == pytest.approx(ref.machine_vs_majority(STAGE2)["kappa"], abs=1e-9)

    reused = api.post(url, {"campaign": reviewed.full.pk}, format="json")
    assert reused.status_code == 200 and reused.json()["id"] == body["id"]
    forced = api.post(url, {"campaign": reviewed.full.pk, "force": True}, format="json")
    assert forced.status_code == 202 and forced.json()["id"] != body["id"]

    listed = api.get(url, {"campaign": reviewed.full.pk}).json()
    assert [r["id"] for r in listed["results"]] == [forced.json()["id"], body["id"]]
    assert "result" not in listed["results"][0]
    assert api.get(url, {"campaign": "x"}).status_code == 400
    assert api.post(url, {"campaign": 999999}, format="json").status_code == 400


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_report_job_runs_on_a_real_worker(celery_worker_process, django_user_model):
    reviewed = build_reviewed(django_user_model)
    report, created = agreement_report_create(campaign=reviewed.partial)
    assert created
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        report.refresh_from_db()
        if report.status in (JobStatus.SUCCEEDED, JobStatus.FAILED):
            break
        time.sleep(0.2)
    assert report.status == JobStatus.SUCCEEDED, report.error or celery_worker_process.log_text()
    assert report.result["items"] == reviewed.partial.items.count()
    assert report.stats["judgment_cutoff"] == report.judgment_cutoff > 0


@pytest.mark.django_db
def test_names_from_users_are_escaped_on_the_page_and_in_the_plots(client, curator, reviewed):
    hostile = '<img src=x onerror="alert(1)">'
    reviewed.full.name = hostile
    reviewed.full.save(update_fields=["name"])
    reviewed.dataset.name = "<script>alert(2)</script>"
    reviewed.dataset.save(update_fields=["name"])
    # A model name is typed by a curator in the cascade settings: it reaches the plots' labels.
    for candidate_id in reviewed.full.items.values_list("candidate_id", flat=True)[:10]:
        machine_judge(candidate_id=candidate_id, rater="llm:<b>bold</b>:stage1", verdict="relevant")
    report, _ = agreement_report_create(dataset=reviewed.dataset, user=curator)
    agreement_report_run(report_id=report.pk)
    client.force_login(curator)
    for url in (
        reverse("review:agreement_detail", args=[report.pk]),
        reverse("review:agreement_index"),
    ):
        html = client.get(url).content.decode()
        assert hostile not in html and "<script>alert(2)" not in html
        assert "&lt;script&gt;alert(2)&lt;/script&gt;" in html
    html = client.get(reverse("review:agreement_detail", args=[report.pk])).content.decode()
    assert "<b>bold</b>" not in html and "&lt;b&gt;bold&lt;/b&gt; · stage 1" in html


@pytest.mark.django_db
def test_precision_and_recall_intervals_on_the_page_and_in_older_reports(client, viewer, finished):
    client.force_login(viewer)
    url = reverse("review:agreement_detail", args=[finished.pk])
    html = client.get(url).content.decode()
    stage1 = next(m for m in finished.result["machines"] if m["rater"] == STAGE1)
    row = html[html.index(f'<tr data-rater="{STAGE1}">') :]
    for name in ("precision", "recall"):
        low, high = stage1[f"{name}_ci_low"], stage1[f"{name}_ci_high"]
        assert f'data-stat="{name}_ci">[{low:.3f}, {high:.3f}]<' in row
    assert "95% Wilson score interval" in html

    # A report stored before the intervals existed: the page and the CSV still work.
    older = finished.result
    for machine in older["machines"]:
        for end in ("precision_ci_low", "precision_ci_high", "recall_ci_low", "recall_ci_high"):
            machine.pop(end)
    AgreementReport.objects.filter(pk=finished.pk).update(result=older)
    page = client.get(url)
    assert page.status_code == 200
    assert 'data-stat="precision_ci">—<' in page.content.decode()
    rows = list(csv.DictReader(io.StringIO(
        client.get(reverse("review:agreement_csv", args=[finished.pk])).content.decode()
    )))  # fmt: skip
    stage1_row = next(
        r for r in rows if r["section"] == "machine_vs_majority" and r["rater_a"] == STAGE1
    )
    assert stage1_row["precision_ci_low"] == "" and stage1_row["kappa"] != ""


@pytest.mark.django_db
def test_an_older_report_reads_with_todays_names(client, viewer, finished):
    """A report keeps the labels of the day it was computed; its page names machines and
    strata as pages do now (reports before 2026-12-05 stored "stage 1 · model" and the
    stratum "unflagged mined negatives")."""
    older = finished.result
    for rater in older["raters"]:
        if rater["key"] == STAGE1:
            rater["label"] = "stage 1 · old-label"
    older.setdefault("slices", {})["stratum"] = [
        {**row, "value": "unflagged mined negatives"}
        for row in (older["slices"].get("stratum") or [])[:1]
    ] or [{"value": "unflagged mined negatives", "items": 3, "human_items": 3,
           "humans": {}, "machines": []}]  # fmt: skip
    AgreementReport.objects.filter(pk=finished.pk).update(result=older)
    client.force_login(viewer)
    html = client.get(reverse("review:agreement_detail", args=[finished.pk])).content.decode()
    model = STAGE1.split(":")[1]
    assert f"{model} · stage 1" in html and "old-label" not in html
    assert '<th scope="row">unflagged hard negatives</th>' in html
    assert "unflagged mined negatives" not in html
