"""Closing and reopening a campaign (curators only)."""

import pytest
from django.urls import reverse

from core.errors import ApplicationError
from curation.models import Verdict
from review.models import CampaignStatus, ReviewLock
from review.services.queue import judgment_submit, review_item_next_for_user

pytestmark = pytest.mark.django_db


def test_a_curator_closes_and_reopens_a_campaign(client, curator, make_campaign, make_annotator):
    ann = make_annotator("ann1")
    campaign = make_campaign([ann])
    held = review_item_next_for_user(campaign=campaign, user=ann)
    assert ReviewLock.objects.filter(item__campaign=campaign).count() == 1

    client.force_login(curator)
    url = reverse("review:campaign_status", args=[campaign.pk])
    page = client.get(reverse("review:campaign_detail", args=[campaign.pk])).content.decode()
    assert "Close campaign" in page
    assert f"<dt>Annotators per item</dt><dd>{campaign.overlap}</dd>" in page  # not "Overlap (k)"
    listing = client.get(reverse("review:campaign_list")).content.decode()
    assert '<th class="num">Annotators per item</th>' in listing
    response = client.post(url, {"status": "closed"})
    assert response.status_code == 302
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.CLOSED
    assert not ReviewLock.objects.filter(item__campaign=campaign).exists()
    # Annotators get nothing more and cannot submit what was on their screen.
    assert review_item_next_for_user(campaign=campaign, user=ann) is None
    with pytest.raises(ApplicationError, match="closed"):
        judgment_submit(
            campaign=campaign, item_id=held.pk, user=ann,
            verdict=Verdict.RELEVANT, client_token="closed-token-1",
        )  # fmt: skip
    assert (
        "Reopen campaign"
        in client.get(reverse("review:campaign_detail", args=[campaign.pk])).content.decode()
    )

    client.post(url, {"status": "active"})
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.ACTIVE
    assert review_item_next_for_user(campaign=campaign, user=ann).pk == held.pk


def test_annotators_cannot_close_and_bad_status_is_refused(
    client, curator, make_campaign, make_annotator
):
    ann = make_annotator("ann1")
    campaign = make_campaign([ann])
    url = reverse("review:campaign_status", args=[campaign.pk])
    client.force_login(ann)
    assert client.post(url, {"status": "closed"}).status_code == 403
    client.force_login(curator)
    response = client.post(url, {"status": "archived"}, follow=True)
    assert "unknown status" in response.content.decode()
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.ACTIVE
