"""From human answers to Decisions: agreeing answers in bulk, disagreements by a curator;
the Decisions are what snapshots read."""

import pytest
from django.urls import reverse

from curation.datasets.selectors import dataset_candidates_stream, decision_cutoff
from curation.models import Decision, DecisionSource, Verdict
from review.models import ReviewItem
from review.selectors import items_in_consensus, items_to_adjudicate
from review.services.decisions import campaign_consensus_decide
from review.services.queue import judgment_submit, review_item_next_for_user

_n = iter(range(10**6))


def answer_all(campaign, user, choose):
    """``user`` answers every item the queue serves, with ``choose(item) -> (verdict, edit)``."""
    item = review_item_next_for_user(campaign=campaign, user=user)
    while item is not None:
        verdict, edit = choose(item)
        item = judgment_submit(
            campaign=campaign, item_id=item.pk, user=user, verdict=verdict,
            client_token=f"t-{next(_n):08d}", edited_query=edit, note=f"note by {user}",
        ).next_item  # fmt: skip


@pytest.fixture
def two_reviews(make_campaign, make_annotator):
    """k = 2 over 12 unflagged negatives and 2 synthetic triplets. By position: 0-3 both say
    not relevant, 4-5 both relevant, 6-7 disagree, 8-9 both partly relevant, 10-11 one unsure.
    Synthetic: one triplet gets the same edit from both, the other two different edits."""
    a, b = make_annotator("a1"), make_annotator("b1")
    campaign = make_campaign([a, b], overlap=2, strata={"unflagged": 12, "synthetic": 2})
    negatives = ReviewItem.objects.filter(campaign=campaign, stratum="unflagged").order_by(
        "position"
    )
    R, N, P, U = Verdict.RELEVANT, Verdict.NOT_RELEVANT, Verdict.PARTLY_RELEVANT, Verdict.UNSURE
    pairs = [(N, N)] * 4 + [(R, R)] * 2 + [(R, N)] * 2 + [(P, P)] * 2 + [(U, N)] * 2
    plan = {item.pk: pair for item, pair in zip(negatives, pairs, strict=True)}
    synthetic = list(
        ReviewItem.objects.filter(campaign=campaign, stratum="synthetic").order_by("pk")
    )
    edits = {synthetic[0].pk: ("how old is the bridge", "how old is the bridge"),
             synthetic[1].pk: ("bridge age", "age of the bridge")}  # fmt: skip
    for who, user in enumerate((a, b)):
        answer_all(
            campaign, user,
            lambda item, who=who: (plan[item.pk][who], "")
            if item.pk in plan else (Verdict.RELEVANT, edits[item.pk][who]),
        )  # fmt: skip
    return campaign, negatives, synthetic


def test_consensus_and_disagreement_are_told_apart(two_reviews):
    campaign, negatives, synthetic = two_reviews
    by_rank = {item.pk: rank for rank, item in enumerate(negatives)}
    agree = {by_rank.get(i.pk, "s") for i in items_in_consensus(campaign=campaign)}
    disagree = {by_rank.get(i.pk, "s") for i in items_to_adjudicate(campaign=campaign)}
    assert agree == {0, 1, 2, 3, 4, 5, "s"}
    assert disagree == {6, 7, 8, 9, 10, 11, "s"}
    assert {i.pk for i in items_in_consensus(campaign=campaign) if i.stratum == "synthetic"} == {
        synthetic[0].pk
    }


def test_bulk_consensus_records_review_decisions_once(two_reviews, curator):
    campaign, negatives, synthetic = two_reviews
    original = synthetic[0].candidate.query.text
    result = campaign_consensus_decide(campaign=campaign, user=curator)
    assert (result.decided, result.relevant, result.not_relevant, result.queries_edited) == (
        7, 3, 4, 1,
    )  # fmt: skip
    decisions = Decision.objects.filter(source=DecisionSource.REVIEW)
    assert decisions.count() == 7
    assert set(decisions.filter(label="relevant").values_list("candidate_id", flat=True)) == {
        negatives[4].candidate_id, negatives[5].candidate_id, synthetic[0].candidate_id,
    }  # fmt: skip
    # The agreed rewrite is applied; the original text is kept in the decision's note.
    synthetic[0].candidate.query.refresh_from_db()
    assert synthetic[0].candidate.query.text == "how old is the bridge"
    assert repr(original) in decisions.get(candidate=synthetic[0].candidate).note
    # A second press finds nothing new.
    assert campaign_consensus_decide(campaign=campaign, user=curator).decided == 0
    assert items_in_consensus(campaign=campaign).count() == 0


def test_curator_adjudicates_a_disagreement_and_snapshots_see_it(client, curator, two_reviews):
    campaign, negatives, synthetic = two_reviews
    client.force_login(curator)
    url = reverse("review:adjudication_queue", args=[campaign.pk])
    html = client.get(url).content.decode()
    assert html.count('class="adjudication-item"') == 7
    assert "note by a1" in html
    # Annotators by their user names; the stored rater name only on hover.
    assert '<td title="user:b1">b1</td>' in html and ">user:b1<" not in html
    assert "age of the bridge" in html and "bridge age" in html

    disputed = negatives[6]
    response = client.post(
        reverse("review:adjudication_submit", args=[campaign.pk]),
        {"item": disputed.pk, "label": "relevant", "note": "it names the same dose"},
    )
    assert response.status_code == 302
    decision = Decision.objects.get(candidate=disputed.candidate)
    assert (decision.source, decision.label, decision.created_by) == (
        "adjudication", "relevant", curator,
    )  # fmt: skip
    assert "it names the same dose" in decision.note
    assert f'id="adjudicate-{disputed.pk}"' not in client.get(url).content.decode()

    # The synthetic triplet with two different rewrites: the curator writes the final one.
    client.post(
        reverse("review:adjudication_submit", args=[campaign.pk]),
        {"item": synthetic[1].pk, "label": "relevant", "query_text": "how old is bridge one"},
    )
    synthetic[1].candidate.query.refresh_from_db()
    assert synthetic[1].candidate.query.text == "how old is bridge one"

    # The export stream (what snapshots write) now marks the negative a false negative.
    query_id = disputed.candidate.query.query_id
    exported = next(
        q for q in dataset_candidates_stream(
            dataset=campaign.dataset, decision_cutoff=decision_cutoff()
        ) if q.query_id == query_id
    )  # fmt: skip
    flagged = [n for n in exported.negatives if n.false_negative]
    assert [n.text for n in flagged] == [disputed.candidate.passage.text]


def test_adjudication_refuses_unfinished_items(client, curator, make_campaign, make_annotator):
    a, b = make_annotator("a1"), make_annotator("b1")
    campaign = make_campaign([a, b], overlap=2)
    item = review_item_next_for_user(campaign=campaign, user=a)
    judgment_submit(campaign=campaign, item_id=item.pk, user=a, verdict="relevant",
                    client_token="only-one-answer")  # fmt: skip
    client.force_login(curator)
    response = client.post(
        reverse("review:adjudication_submit", args=[campaign.pk]),
        {"item": item.pk, "label": "relevant"},
    )
    assert response.status_code == 400
    assert b"does not have its answers yet" in response.content
    assert not Decision.objects.exists()


def test_consensus_button_on_the_page(client, curator, two_reviews):
    campaign, *_ = two_reviews
    client.force_login(curator)
    html = client.get(reverse("review:adjudication_queue", args=[campaign.pk])).content.decode()
    assert "Record 7 decisions" in html
    response = client.post(reverse("review:consensus_decide", args=[campaign.pk]), follow=True)
    assert b"7 decisions recorded" in response.content
    assert Decision.objects.filter(source="review").count() == 7


def test_the_agreed_flag_follows_answers_and_undo(two_reviews):
    """ReviewItem.agreed is set when an item is done (the queue's rule), cleared by an undo
    and set again by the new answer; the migration's set-based backfill gives the same."""
    import importlib

    from django.db import connection

    from review.services.queue import review_submission_undo

    campaign, negatives, synthetic = two_reviews
    flags = dict(ReviewItem.objects.filter(campaign=campaign).values_list("pk", "agreed"))
    expected = [True] * 6 + [False] * 6
    assert [flags[item.pk] for item in negatives] == expected
    assert [flags[item.pk] for item in synthetic] == [True, False]

    backfill = importlib.import_module("review.migrations.0002_item_agreed").BACKFILL
    ReviewItem.objects.filter(campaign=campaign).update(agreed=None)
    with connection.cursor() as cursor:
        cursor.execute(backfill)
    assert dict(ReviewItem.objects.filter(campaign=campaign).values_list("pk", "agreed")) == flags

    # b takes back their last answer (on a synthetic item): it is open again, flag cleared.
    b = campaign.annotators.get(username="b1")
    reopened = review_submission_undo(campaign=campaign, user=b)
    reopened.refresh_from_db()
    assert not reopened.done and reopened.agreed is None
    theirs = reopened.submissions.get(undone_at__isnull=True).judgment.verdict
    other = Verdict.NOT_RELEVANT if theirs == Verdict.RELEVANT else Verdict.RELEVANT
    judgment_submit(
        campaign=campaign, item_id=reopened.pk, user=b, verdict=other,
        client_token="undo-again-0001",
    )  # fmt: skip
    reopened.refresh_from_db()
    assert reopened.done and reopened.agreed is False  # two different answers
