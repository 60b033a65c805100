"""A word longer than the page is wide (a 3,000-character token in a passage, a query, an error,
a manifest; a name at its 200-character maximum) wraps where it is shown: no page becomes
wider than the window (issue 11, item 7: such a word widened pages to 2,400 px)."""

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from core.models import JobStatus
from curation.models import Approval, CascadeRun, ExportJob, ImportJob
from review.models import ReviewCampaign
from tests.browser.conftest import log_in
from tests.factories import (
    CandidateFactory,
    DatasetFactory,
    PassageFactory,
    QueryFactory,
    SnapshotFactory,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WINDOW = {"width": 1400, "height": 900}
WORD = "Sieve" + "x" * 2995  # 3,000 characters without a break opportunity
NAME = "n" * 200  # the longest dataset, corpus or campaign name


def pages_with_long_words() -> dict[str, str]:
    """One of each place a user's text is shown, each holding a long word; their URLs."""
    dataset = DatasetFactory(name=NAME, source=WORD[:500], description=WORD)
    query = QueryFactory(dataset=dataset, query_id=WORD[:200], text=WORD)
    passage = PassageFactory(corpus=dataset.corpus, doc_id=WORD[:200], title=WORD, text=WORD)
    CandidateFactory(query=query, passage=passage, role="positive")
    CandidateFactory(query=query, passage=PassageFactory(corpus=dataset.corpus, text=WORD))
    failed_import = ImportJob.objects.create(
        dataset_name=NAME,
        corpus_name=NAME,
        source_path="/nowhere/" + "u" * 200 + ".jsonl",
        source_name=WORD[:300],
        options={"split": WORD[:50]},
        status=JobStatus.FAILED,
        error=f"{WORD[:300]} line 3, field {WORD}: expected a string",
        error_detail={"file": WORD[:300], "line": 3, "field": WORD},
        stats={"note": WORD},
    )
    run = CascadeRun.objects.create(dataset=dataset, stages=[])
    failed_export = ExportJob.objects.create(
        dataset=dataset,
        policy="default",
        format="bge",
        status=JobStatus.FAILED,
        error=f"1 item failed: {WORD}",
        error_detail={"items_failed": 1, "reasons": [{"reason": WORD, "count": 1}]},
    )
    approval = Approval.objects.create(
        dataset=dataset, cascade_run=run, gate_passed=False, reason=WORD, status="succeeded"
    )
    snapshot = SnapshotFactory(
        dataset=dataset,
        manifest={
            "counts": {"queries": 1},
            "note": WORD,
            "approvals": [
                {
                    "id": approval.pk,
                    "cascade_run": run.pk,
                    "stage": None,
                    "decisions": 1,
                    "false_negatives": 0,
                    "gate_passed": False,
                    "reason": WORD,
                }
            ],
        },
    )
    campaign = ReviewCampaign.objects.create(name=NAME, dataset=dataset)
    return {
        "datasets": reverse("curation:dataset_list"),
        "dataset": reverse("curation:dataset_detail", args=[dataset.pk]),
        "query": reverse("curation:query_detail", args=[query.pk]),
        "imports": reverse("curation:import_page"),
        "import job": reverse("curation:import_job_detail", args=[failed_import.pk]),
        "export job": reverse("curation:export_job_detail", args=[failed_export.pk]),
        "snapshot": reverse("curation:snapshot_detail", args=[snapshot.pk]),
        "snapshots": reverse("curation:snapshot_list"),
        "cascade run": reverse("curation:cascade_run_detail", args=[run.pk]),
        "approval": reverse("review:approval_detail", args=[approval.pk]),
        "campaigns": reverse("review:campaign_list"),
        "campaign": reverse("review:campaign_detail", args=[campaign.pk]),
        "new campaign": reverse("review:campaign_create"),  # a <select> of dataset names
    }


def test_no_page_is_wider_than_the_window_whatever_words_it_shows(
    live_server, new_page, django_user_model
):
    urls = pages_with_long_words()
    user = django_user_model.objects.create_user(username="cora", password="pw-cora")
    user.groups.add(Group.objects.get(name="curator"))
    page = new_page()
    page.set_viewport_size(WINDOW)
    log_in(page, live_server, "cora", "pw-cora")

    widths = {}
    for name, url in urls.items():
        response = page.goto(live_server.url + url)
        assert response.status == 200, (name, url)
        html = page.content()
        assert WORD[:100] in html or NAME in html, name  # a long word is on the page
        page.wait_for_load_state("networkidle")  # htmx sections loaded
        widths[name] = page.evaluate("document.documentElement.scrollWidth")
    too_wide = {name: width for name, width in widths.items() if width > WINDOW["width"]}
    assert too_wide == {}
    assert page.errors == []
