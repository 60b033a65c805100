"""The review campaigns API: list, detail with counts, and the answers export (keyset pages,
undone answers left out, annotators kept out)."""

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from curation.models import Verdict
from review.services.queue import (
    judgment_submit,
    review_item_next_for_user,
    review_submission_undo,
)

pytestmark = pytest.mark.django_db


def answer(campaign, user, verdict, n, **extra):
    item = review_item_next_for_user(campaign=campaign, user=user)
    judgment_submit(
        campaign=campaign, item_id=item.pk, user=user, verdict=verdict,
        client_token=f"api-{user.username}-{n:04d}", **extra,
    )  # fmt: skip
    return item


def test_campaigns_and_their_answers(make_campaign, make_annotator, viewer):
    a, b = make_annotator("a1"), make_annotator("b1")
    campaign = make_campaign([a, b], overlap=2, strata={"unflagged": 3})
    first = answer(campaign, a, Verdict.RELEVANT, 1, note="same facts")
    answer(campaign, a, Verdict.NOT_RELEVANT, 2)
    review_submission_undo(campaign=campaign, user=a)  # takes the second one back
    answer(campaign, b, Verdict.NOT_RELEVANT, 3)

    api = APIClient()
    api.force_authenticate(viewer)
    listed = api.get(reverse("api:campaign-list")).json()["results"]
    assert [c["id"] for c in listed] == [campaign.pk]
    detail = api.get(reverse("api:campaign-detail", args=[campaign.pk])).json()
    assert detail["overlap"] == 2 and detail["item_count"] == 3 and detail["status"] == "active"
    assert detail["strata_counts"] == [
        {"stratum": "unflagged", "requested": 3, "items": 3, "done": 0}
    ]

    url = reverse("api:campaign-answers", args=[campaign.pk])
    page = api.get(url, {"page_size": 1}).json()
    rows = page["results"]
    while page["next"]:
        page = api.get(page["next"]).json()
        rows += page["results"]
    assert [(r["annotator"], r["verdict"]) for r in rows] == [
        ("a1", "relevant"), ("b1", "not_relevant"),
    ]  # fmt: skip
    mine = rows[0]
    assert mine["item"] == first.pk and mine["note"] == "same facts"
    assert mine["query_id"] == first.candidate.query.query_id
    assert mine["doc_id"] == first.candidate.passage.doc_id


def test_annotators_and_strangers_cannot_read_answers(make_campaign, make_annotator):
    a = make_annotator("a1")
    campaign = make_campaign([a])
    url = reverse("api:campaign-answers", args=[campaign.pk])
    api = APIClient()
    assert api.get(url).status_code in (401, 403)
    api.force_authenticate(a)
    assert api.get(url).status_code == 403
    assert api.get(reverse("api:campaign-list")).status_code == 403
