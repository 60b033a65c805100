"""A curator computes the agreement report in a real browser (Debian's chromium) against the
live server; the numbers on the page equal those computed straight from the database with
scikit-learn and the krippendorff package. Saves docs/screenshots/agreement.png."""

import pytest
from django.contrib.auth.models import Group

from review.agreement.services import agreement_report_run
from review.models import AgreementReport
from tests.browser.conftest import log_in, screenshot
from tests.review.agreement.conftest import STAGE1, STAGE2, TEACHER, build_reviewed
from tests.review.agreement.reference import Reference

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _cell(page, row_selector: str, stat: str) -> str:
    return page.locator(f'{row_selector} [data-stat="{stat}"]').inner_text().strip()


def test_curator_computes_the_report_and_sees_the_database_numbers(
    live_server, new_page, django_user_model
):
    reviewed = build_reviewed(django_user_model)
    curator = django_user_model.objects.create_user(username="cora", password="pw-cora")
    curator.groups.add(Group.objects.get_or_create(name="curator")[0])
    page = new_page()

    log_in(page, live_server, "cora", "pw-cora")
    page.goto(f"{live_server.url}/review/agreement/")
    page.select_option("#id_dataset", str(reviewed.dataset.pk))
    page.click("text=Compute report")
    page.wait_for_selector("#job-status")
    assert "queued" in page.inner_text("#job-status")

    # The test plays the worker; the page polls, sees the job end and reloads itself.
    report = AgreementReport.objects.latest("id")
    agreement_report_run(report_id=report.pk)
    page.wait_for_selector("#machines")

    ref = Reference(campaigns=[reviewed.full, reviewed.partial])
    assert page.inner_text("#n-items") == str(len(ref.candidates))
    assert page.inner_text("#n-human-ratings") == str(len(ref.human))
    for rater in (TEACHER, STAGE1, STAGE2, "cascade_final"):
        expected = ref.machine_vs_majority(rater)
        row = f'#machines tr[data-rater="{rater}"]'
        assert _cell(page, row, "n") == str(expected["n"])
        assert _cell(page, row, "kappa") == f"{expected['kappa']:.3f}"
        assert _cell(page, row, "precision") == f"{expected['precision']:.3f}"
        assert _cell(page, row, "recall") == f"{expected['recall']:.3f}"
        assert _cell(page, row, "f1") == f"{expected['f1']:.3f}"
    assert _cell(page, f'#machines tr[data-rater="{STAGE1}"]', "paper_kappa") == "0.320"
    assert _cell(page, f'#machines tr[data-rater="{STAGE2}"]', "paper_kappa") == "0.390"
    for a, b in (
        ("user:alice", "user:bob"),
        ("user:alice", "user:carol"),
        ("user:bob", "user:carol"),
    ):
        n, _, kappa = ref.human_pair(a, b)
        row = f'#human-pairs tr[data-pair="{a}|{b}"]'
        assert _cell(page, row, "n") == str(n)
        assert _cell(page, row, "kappa") == f"{kappa:.3f}"
    alpha = _cell(page, '#humans tr[data-scheme="verdict"]', "krippendorff_alpha")
    assert alpha == f"{ref.krippendorff():.3f}"
    assert page.locator("figure.plot svg").count() >= 6
    assert page.errors == [] and page.dialogs == []

    screenshot(page, "agreement")
