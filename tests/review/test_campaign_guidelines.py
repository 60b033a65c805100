"""Campaign guidelines (issue 10): curators write them when creating the campaign or later;
annotators see them, escaped, folded on the review page (open until their first answer) and
in the help dialog."""

import re

from django.test import Client
from django.urls import reverse

from review.models import ReviewCampaign
from review.services.campaigns import review_campaign_create

from .test_review_page import page_url, submit

HOSTILE = (
    'Mark "relevant" only if it answers.\n<script>alert(1)</script> <img src=x onerror=alert(2)>'
)


def test_the_form_saves_guidelines_and_annotators_see_them_escaped(
    curator_client, review_dataset, make_annotator
):
    client = Client()  # the annotator's browser, beside the curator's
    ann = make_annotator("ann1")
    response = curator_client.post(
        reverse("review:campaign_create"),
        {
            "name": "with guidelines", "dataset": review_dataset.pk, "stage2_flagged": 0,
            "stage1_only": 0, "unflagged": 3, "synthetic": 0, "seed": 0, "overlap": 1,
            "blind": "on", "annotators": [ann.pk], "guidelines": HOSTILE,
        },
    )  # fmt: skip
    assert response.status_code == 302
    campaign = ReviewCampaign.objects.get(name="with guidelines")
    assert campaign.guidelines == HOSTILE

    client.force_login(ann)
    html = client.get(page_url(campaign)).content.decode()
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt; &lt;img src=x onerror=alert(2)&gt;"
    assert "<script>alert(1)" not in html and "<img src=x" not in html
    # Folded on the page (open before the first answer), and in the help dialog.
    assert re.search(r'<details class="guidelines" id="campaign-guidelines" open>', html)
    assert html.count(escaped) == 2
    assert "Mark &quot;relevant&quot; only if it answers.<br>" in html
    assert "<kbd>G</kbd>" in html
    # After an answer the page opens with them folded; the htmx pane does not repeat them.
    after = submit(client, campaign, html, "relevant").content.decode()
    assert escaped not in after
    html = client.get(page_url(campaign)).content.decode()
    assert '<details class="guidelines" id="campaign-guidelines">' in html


def test_a_curator_edits_the_guidelines_later(
    curator_client, review_dataset, make_annotator, curator
):
    client = Client()  # the annotator's browser, beside the curator's
    ann = make_annotator("ann1")
    campaign = review_campaign_create(
        name="c", dataset=review_dataset, strata={"unflagged": 2}, annotators=[ann],
        created_by=curator,
    )  # fmt: skip
    client.force_login(ann)
    assert "campaign-guidelines" not in client.get(page_url(campaign)).content.decode()
    url = reverse("review:campaign_guidelines", args=[campaign.pk])
    response = curator_client.post(
        url, {"guidelines": "  Partly relevant: <b>half</b> an answer. "}
    )
    assert response.status_code == 302
    campaign.refresh_from_db()
    assert campaign.guidelines == "Partly relevant: <b>half</b> an answer."
    detail = curator_client.get(reverse("review:campaign_detail", args=[campaign.pk]))
    assert "Partly relevant: &lt;b&gt;half&lt;/b&gt; an answer." in detail.content.decode()
    html = client.get(page_url(campaign)).content.decode()
    assert "Partly relevant: &lt;b&gt;half&lt;/b&gt; an answer." in html
    # Annotators may not edit them; too long is refused.
    assert client.post(url, {"guidelines": "mine"}).status_code == 403
    curator_client.post(url, {"guidelines": "x" * 20_001})
    campaign.refresh_from_db()
    assert campaign.guidelines == "Partly relevant: <b>half</b> an answer."
