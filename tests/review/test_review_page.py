"""The review page: what an annotator sees, blind reveal, htmx fragments, escaping,
and who may open which review page."""

import re

import pytest
from django.urls import reverse

from curation.models import CandidateRole, Decision, Judgment, Verdict
from review.models import ReviewItem, ReviewSubmission
from review.services.queue import review_item_next_for_user
from tests.factories import CandidateFactory, PassageFactory, QueryFactory
from tests.review.conftest import RATIONALE, judge, rationale_for

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"
HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def ann(make_annotator):
    return make_annotator("ann1")


@pytest.fixture
def ann_client(client, ann):
    client.force_login(ann)
    return client


def page_url(campaign):
    return reverse("review:review_page", args=[campaign.pk])


def submit(client, campaign, html: str, verdict: str, *, htmx=True, **extra):
    data = {"item": current_item(html), "token": form_token(html), "verdict": verdict, **extra}
    kwargs = HX if htmx else {}
    return client.post(reverse("review:review_submit", args=[campaign.pk]), data, **kwargs)


def current_item(html: str) -> int:
    return int(re.search(r'name="item" value="(\d+)"', html).group(1))


def form_token(html: str) -> str:
    return re.search(r'name="token" value="([0-9a-f]+)"', html).group(1)


def test_page_shows_query_positive_candidate_and_counters(ann_client, ann, make_campaign):
    campaign = make_campaign([ann], strata={"stage2_flagged": 6})
    response = ann_client.get(page_url(campaign))
    assert response.status_code == 200
    html = response.content.decode()
    item = ReviewItem.objects.get(pk=current_item(html))
    candidate = item.candidate
    assert candidate.query.text in html
    positive = candidate.query.candidates.get(role=CandidateRole.POSITIVE)
    # The query's terms are marked in the passages.
    marked = re.sub(r"(aspirin|dose|child)", r"<mark>\1</mark>", positive.passage.text)
    assert marked.startswith("The <mark>aspirin</mark> <mark>dose</mark> for a <mark>child</mark>")
    assert marked in html
    assert candidate.passage.text in html
    assert re.search(r'data-counter="campaign">0 / 6<', html)
    assert re.search(r'data-counter="remaining">6<', html)
    assert re.search(r'data-counter="mine">0<', html)
    for key in ("1", "2", "3", "0"):
        assert f'data-key="{key}"' in html
    # Unsure is an answer like the others: the button and the keys say where it goes.
    assert "<kbd>0</kbd> Unsure <small>(a curator decides)</small></button>" in html
    assert "Unsure (counts as your answer; a curator decides)" in html
    assert "review.js" in html and 'id="review-help"' in html


def test_blind_campaign_reveals_machine_verdicts_only_after_the_answer(
    ann_client, ann, make_campaign
):
    campaign = make_campaign([ann], strata={"stage2_flagged": 6}, blind=True)
    html = ann_client.get(page_url(campaign)).content.decode()
    first = ReviewItem.objects.get(pk=current_item(html))
    # Nothing a machine said is on the page before the answer, not even the stratum.
    assert RATIONALE not in html
    assert "llm:gpt-4o" not in html
    assert "flagged by stage 2" not in html

    response = submit(ann_client, campaign, html, "relevant")
    assert response.status_code == 200
    after = response.content.decode()
    assert "<html" not in after and after.lstrip().startswith('<div id="review-pane"')
    # The answered item's verdicts and rationales are revealed ...
    reveal = after[after.index('class="last-answer"') :]
    assert rationale_for(first.candidate) in reveal
    assert "llm:gpt-4o:stage2" in reveal and "llm:gpt-4o-mini:stage1" in reveal
    # ... the next item's are still hidden.
    following = ReviewItem.objects.get(pk=current_item(after))
    assert following.pk != first.pk
    assert rationale_for(following.candidate) not in after
    assert after.count(RATIONALE) == 2  # stage 1 and stage 2 on the answered item only
    assert re.search(r'data-counter="mine">1<', after)


def test_open_campaign_shows_machine_verdicts_before_the_answer(ann_client, ann, make_campaign):
    campaign = make_campaign([ann], strata={"stage2_flagged": 6}, blind=False)
    html = ann_client.get(page_url(campaign)).content.decode()
    item = ReviewItem.objects.get(pk=current_item(html))
    assert rationale_for(item.candidate) in html
    assert "flagged by stage 2" in html


def test_hostile_passage_query_and_rationale_render_as_text(
    ann_client, ann, make_campaign, review_dataset
):
    query = QueryFactory(dataset=review_dataset, text=f"script alert {SCRIPT}")
    corpus = review_dataset.corpus
    CandidateFactory(
        query=query,
        role=CandidateRole.POSITIVE,
        passage=PassageFactory(corpus=corpus, text=f"positive {IMG}"),
    )
    hostile = CandidateFactory(
        query=query,
        role=CandidateRole.NEGATIVE,
        rank=1,
        passage=PassageFactory(corpus=corpus, title=SCRIPT, text=f"{SCRIPT} and {IMG}"),
    )
    judge(hostile, "llm:gpt-4o:stage2", Verdict.RELEVANT, rationale=f"because {IMG}")
    campaign = make_campaign([ann], strata={"stage2_flagged": 100}, blind=True)
    html = ann_client.get(page_url(campaign)).content.decode()
    while current_item(html) != ReviewItem.objects.get(campaign=campaign, candidate=hostile).pk:
        html = submit(ann_client, campaign, html, "not_relevant").content.decode()
    assert SCRIPT not in html and IMG not in html
    assert "&lt;img src=x onerror=<mark>alert</mark>(1)&gt;" in html
    # Escaped first, then the query's terms are marked.
    assert "&lt;<mark>script</mark>&gt;<mark>alert</mark>(1)&lt;/<mark>script</mark>&gt;" in html
    after = submit(ann_client, campaign, html, "relevant").content.decode()
    assert "because &lt;img src=x onerror=alert(1)&gt;" in after
    assert SCRIPT not in after and IMG not in after


def test_double_post_of_one_verdict_counts_once(ann_client, ann, make_campaign):
    campaign = make_campaign([ann])
    html = ann_client.get(page_url(campaign)).content.decode()
    first = submit(ann_client, campaign, html, "relevant").content.decode()
    again = submit(ann_client, campaign, html, "relevant").content.decode()
    assert Judgment.objects.filter(rater="user:ann1").count() == 1
    assert current_item(first) == current_item(again)
    assert re.search(r'data-counter="mine">1<', again)


def test_undo_serves_the_item_again(ann_client, ann, make_campaign):
    campaign = make_campaign([ann])
    html = ann_client.get(page_url(campaign)).content.decode()
    answered = current_item(html)
    after = submit(ann_client, campaign, html, "partly_relevant").content.decode()
    submission = re.search(r'name="submission" value="(\d+)"', after).group(1)
    response = ann_client.post(
        reverse("review:review_undo", args=[campaign.pk]), {"submission": submission}, **HX
    )
    undone = response.content.decode()
    assert current_item(undone) == answered
    assert "taken back" in undone
    assert ReviewSubmission.objects.get(pk=submission).undone_at is not None
    assert re.search(r'data-counter="mine">0<', undone)


def test_without_javascript_a_verdict_posts_and_redirects(ann_client, ann, make_campaign):
    campaign = make_campaign([ann])
    html = ann_client.get(page_url(campaign)).content.decode()
    response = submit(ann_client, campaign, html, "not_relevant", htmx=False)
    assert response.status_code == 302 and response["Location"] == page_url(campaign)
    assert Judgment.objects.filter(rater="user:ann1", verdict="not_relevant").count() == 1


def test_synthetic_triplet_is_approved_with_an_edited_query(ann_client, ann, make_campaign):
    campaign = make_campaign([ann], strata={"synthetic": 2})
    html = ann_client.get(page_url(campaign)).content.decode()
    assert "Approve" in html and "Reject" in html and 'name="edited_query"' in html
    assert 'value="partly_relevant"' not in html
    after = submit(
        ann_client, campaign, html, "approve", edited_query="when was it built"
    ).content.decode()
    judgment = Judgment.objects.get(rater="user:ann1")
    assert (judgment.verdict, judgment.tag, judgment.rationale) == (
        "relevant", "query_edit", "when was it built",
    )  # fmt: skip
    assert "approved" in after and "Your edit" in after
    submit(ann_client, campaign, after, "reject", edited_query="ignored on reject")
    assert Judgment.objects.filter(rater="user:ann1", verdict="not_relevant", tag="").count() == 1


def test_when_everything_is_answered_the_page_says_so(ann_client, ann, make_campaign):
    campaign = make_campaign([ann], strata={"synthetic": 1})
    html = ann_client.get(page_url(campaign)).content.decode()
    after = submit(ann_client, campaign, html, "approve").content.decode()
    assert "Nothing left for you here" in after
    assert 'name="item"' not in after


# --- who may do what ----------------------------------------------------------------------


def test_annotator_outside_the_campaign_gets_403(client, make_annotator, make_campaign):
    inside, outside = make_annotator("in1"), make_annotator("out1")
    campaign = make_campaign([inside])
    item = review_item_next_for_user(campaign=campaign, user=inside)
    client.force_login(outside)
    assert client.get(page_url(campaign)).status_code == 403
    post = {"item": item.pk, "token": "abcdefgh1234", "verdict": "relevant"}
    assert client.post(reverse("review:review_submit", args=[campaign.pk]), post).status_code == 403
    assert client.post(reverse("review:review_undo", args=[campaign.pk])).status_code == 403
    assert not Judgment.objects.filter(rater="user:out1").exists()


def test_curator_pages_are_refused_to_annotators(ann_client, ann, make_campaign):
    campaign = make_campaign([ann])
    for url in (
        reverse("review:campaign_list"),
        reverse("review:campaign_create"),
        reverse("review:campaign_detail", args=[campaign.pk]),
        reverse("review:adjudication_queue", args=[campaign.pk]),
    ):
        assert ann_client.get(url).status_code == 403, url
    for url in (
        reverse("review:campaign_create"),
        reverse("review:adjudication_submit", args=[campaign.pk]),
        reverse("review:consensus_decide", args=[campaign.pk]),
    ):
        assert ann_client.post(url).status_code == 403, url
    assert not Decision.objects.exists()


def test_viewer_reads_campaigns_but_cannot_review_or_decide(client, viewer, make_campaign, ann):
    campaign = make_campaign([ann])
    client.force_login(viewer)
    assert client.get(reverse("review:campaign_detail", args=[campaign.pk])).status_code == 200
    assert client.get(page_url(campaign)).status_code == 403
    assert client.post(reverse("review:consensus_decide", args=[campaign.pk])).status_code == 403


def test_logged_out_visitor_is_sent_to_login(client, make_campaign, ann):
    campaign = make_campaign([ann])
    response = client.get(page_url(campaign))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_annotator_home_lists_only_their_campaigns(ann_client, ann, make_annotator, make_campaign):
    mine = make_campaign([ann], name="mine-campaign")
    make_campaign([make_annotator("other1")], name="someone-elses")
    html = ann_client.get(reverse("home"), follow=True).content.decode()
    assert "mine-campaign" in html and page_url(mine) in html
    assert "someone-elses" not in html


def test_curator_who_is_an_annotator_reviews_too(client, curator, make_campaign):
    campaign = make_campaign([curator])
    client.force_login(curator)
    detail = client.get(reverse("review:campaign_detail", args=[campaign.pk])).content.decode()
    assert page_url(campaign) in detail
    assert client.get(page_url(campaign)).status_code == 200


def test_curator_creates_a_campaign_from_the_form(client, curator, review_dataset, ann):
    client.force_login(curator)
    assert client.get(reverse("review:campaign_create")).status_code == 200
    response = client.post(
        reverse("review:campaign_create"),
        {
            "name": "first look", "dataset": review_dataset.pk, "stage2_flagged": 4,
            "stage1_only": 0, "unflagged": 5, "synthetic": 1, "seed": 3, "overlap": 1,
            "blind": "on", "annotators": [ann.pk],
        },
    )  # fmt: skip
    assert response.status_code == 302
    detail = client.get(response["Location"]).content.decode()
    assert "first look" in detail
    campaign = ann.campaigns.get()
    assert (campaign.item_count, campaign.blind, campaign.seed) == (10, True, 3)
    # Overlap larger than the annotators is explained on the form.
    bad = client.post(
        reverse("review:campaign_create"),
        {"name": "x", "dataset": review_dataset.pk, "stage2_flagged": 1, "stage1_only": 0,
         "unflagged": 0, "synthetic": 0, "seed": 0, "overlap": 2, "annotators": [ann.pk]},
    )  # fmt: skip
    assert bad.status_code == 400 and b"needs at least 2 annotators" in bad.content
