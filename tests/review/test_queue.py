"""The review queue: breadth-first order, overlap k, holds that expire, idempotent
submits, undo."""

from datetime import timedelta

import pytest
from django.utils import timezone

from core.errors import ApplicationError
from curation.models import Decision, Judgment, RaterKind, Verdict
from review.models import ReviewItem, ReviewLock, ReviewSubmission
from review.services.decisions import campaign_consensus_decide
from review.services.queue import judgment_submit, review_item_next_for_user, review_submission_undo

_tokens = iter(range(10**6))


def token() -> str:
    return f"tok-{next(_tokens):08d}"


def answer(campaign, user, item, verdict=Verdict.NOT_RELEVANT, **kwargs):
    return judgment_submit(
        campaign=campaign,
        item_id=item.pk,
        user=user,
        verdict=verdict,
        client_token=kwargs.pop("client_token", None) or token(),
        **kwargs,
    )


def work_through(campaign, user, verdict=Verdict.NOT_RELEVANT) -> list[int]:
    """Answer everything the queue serves ``user``; returns the positions in serving order."""
    served = []
    item = review_item_next_for_user(campaign=campaign, user=user)
    while item is not None:
        served.append(item.position)
        item = answer(campaign, user, item, verdict).next_item
    return served


def test_one_annotator_gets_every_item_once_in_the_seeded_order(make_campaign, make_annotator):
    a = make_annotator("a1")
    campaign = make_campaign([a])
    assert work_through(campaign, a) == list(range(12))
    campaign.refresh_from_db()
    assert campaign.done_count == campaign.item_count == 12
    assert ReviewItem.objects.filter(campaign=campaign, done=False).count() == 0
    judgments = Judgment.objects.filter(source_run=f"campaign:{campaign.pk}")
    assert judgments.count() == 12
    assert set(judgments.values_list("rater", "rater_kind")) == {("user:a1", RaterKind.HUMAN)}


def test_breadth_first_items_with_fewer_answers_come_first(make_campaign, make_annotator):
    a, b = make_annotator("a1"), make_annotator("b1")
    campaign = make_campaign([a, b], overlap=2)
    item = review_item_next_for_user(campaign=campaign, user=a)
    for _ in range(3):
        item = answer(campaign, a, item).next_item
    # Items 0-2 have one answer; b starts with the first unanswered item, 3, not with item 0
    # (with k = 2, a's hold on item 3 leaves room for b) ...
    assert review_item_next_for_user(campaign=campaign, user=b).position == 3
    # ... and a, who holds item 3, is served it again (a reload does not skip it).
    assert review_item_next_for_user(campaign=campaign, user=a).position == 3
    # Once every item has an answer, b gets the items a answered, in order.
    answer(campaign, a, item)
    served = work_through(campaign, b)
    assert served[:9] == list(range(3, 12)) and served[9:] == [0, 1, 2]


def test_overlap_k_every_item_gets_exactly_k_answers(make_campaign, make_annotator):
    people = [make_annotator(f"a{i}") for i in range(3)]
    campaign = make_campaign(people, overlap=2)
    served = {p.username: work_through(campaign, p) for p in people}
    # The first two annotators take everything; nothing is left for the third.
    assert sorted(served["a0"]) == sorted(served["a1"]) == list(range(12))
    assert served["a2"] == []
    for item in ReviewItem.objects.filter(campaign=campaign):
        active = ReviewSubmission.objects.filter(item=item, undone_at__isnull=True)
        assert active.count() == item.judgment_count == 2
        assert item.done
    campaign.refresh_from_db()
    assert campaign.done_count == 12


def test_with_k1_two_people_never_hold_the_same_item(make_campaign, make_annotator):
    a, b = make_annotator("a1"), make_annotator("b1")
    campaign = make_campaign([a, b])
    first = review_item_next_for_user(campaign=campaign, user=a)
    second = review_item_next_for_user(campaign=campaign, user=b)
    assert first.pk != second.pk
    # Answering in turns, nobody is ever served an item the other holds or answered.
    seen = {first.pk, second.pk}
    while first or second:
        if first:
            first = answer(campaign, a, first).next_item
            assert first is None or first.pk not in seen
            seen |= {first.pk} if first else set()
        if second:
            second = answer(campaign, b, second).next_item
            assert second is None or second.pk not in seen
            seen |= {second.pk} if second else set()
    assert len(seen) == 12
    assert ReviewSubmission.objects.filter(item__campaign=campaign).count() == 12


def test_an_expired_hold_frees_the_item(make_campaign, make_annotator):
    a, b = make_annotator("a1"), make_annotator("b1")
    campaign = make_campaign([a, b])
    held = review_item_next_for_user(campaign=campaign, user=a)
    assert review_item_next_for_user(campaign=campaign, user=b).pk != held.pk
    # a walks away; ten minutes later the hold has lapsed.
    ReviewLock.objects.filter(user=a).update(expires_at=timezone.now() - timedelta(seconds=1))
    ReviewLock.objects.filter(user=b).delete()
    taken = review_item_next_for_user(campaign=campaign, user=b)
    assert taken.pk == held.pk
    # a comes back and answers the item on their screen: b holds it now, so it is refused ...
    with pytest.raises(ApplicationError) as error:
        answer(campaign, a, held)
    assert error.value.detail["code"] == "item_full"
    # ... and b's answer counts.
    assert answer(campaign, b, taken).submission.item_id == held.pk
    assert ReviewSubmission.objects.filter(item=held).count() == 1


def test_double_submit_is_one_answer(make_campaign, make_annotator):
    a = make_annotator("a1")
    campaign = make_campaign([a])
    item = review_item_next_for_user(campaign=campaign, user=a)
    first = answer(campaign, a, item, Verdict.RELEVANT, client_token="same-token-1")
    again = answer(campaign, a, item, Verdict.RELEVANT, client_token="same-token-1")
    assert not first.duplicate and again.duplicate
    assert again.submission.pk == first.submission.pk
    assert again.next_item.pk == first.next_item.pk  # the same next item, still held
    assert Judgment.objects.filter(rater="user:a1").count() == 1
    item.refresh_from_db()
    campaign.refresh_from_db()
    assert item.judgment_count == 1 and campaign.done_count == 1
    # A second answer with a new token (another tab) is refused, not counted.
    with pytest.raises(ApplicationError) as error:
        answer(campaign, a, item, Verdict.NOT_RELEVANT)
    assert error.value.detail["code"] == "already_answered"


def test_a_token_cannot_be_replayed_by_someone_else(make_campaign, make_annotator):
    a, b = make_annotator("a1"), make_annotator("b1")
    campaign = make_campaign([a, b], overlap=2)
    item = review_item_next_for_user(campaign=campaign, user=a)
    answer(campaign, a, item, client_token="a-token-123")
    review_item_next_for_user(campaign=campaign, user=b)
    with pytest.raises(ApplicationError):
        answer(campaign, b, item, client_token="a-token-123")
    assert ReviewSubmission.objects.filter(user=b).count() == 0


def test_undo_takes_the_answer_back_and_serves_the_item_again(make_campaign, make_annotator):
    a, b = make_annotator("a1"), make_annotator("b1")
    campaign = make_campaign([a, b])
    item = review_item_next_for_user(campaign=campaign, user=a)
    result = answer(campaign, a, item, Verdict.RELEVANT)
    following = result.next_item
    campaign.refresh_from_db()
    assert campaign.done_count == 1

    again = review_submission_undo(campaign=campaign, user=a)
    assert again.pk == item.pk
    assert review_item_next_for_user(campaign=campaign, user=a).pk == item.pk
    # The judgment stays in history; the submission no longer counts.
    assert Judgment.objects.filter(pk=result.submission.judgment_id).exists()
    result.submission.refresh_from_db()
    assert result.submission.undone_at is not None
    item.refresh_from_db()
    campaign.refresh_from_db()
    assert (item.judgment_count, item.done, campaign.done_count) == (0, False, 0)
    # The item a held before the undo is free again for others.
    assert review_item_next_for_user(campaign=campaign, user=b).pk == following.pk

    # Pressing U twice (the same submission) changes nothing more.
    review_submission_undo(campaign=campaign, user=a, submission_id=result.submission.pk)
    item.refresh_from_db()
    assert item.judgment_count == 0

    answer(campaign, a, item, Verdict.NOT_RELEVANT)
    item.refresh_from_db()
    assert item.judgment_count == 1 and item.done
    assert Judgment.objects.filter(candidate=item.candidate, rater="user:a1").count() == 2


def test_undo_is_refused_once_a_curator_decided(make_campaign, make_annotator, curator):
    a = make_annotator("a1")
    campaign = make_campaign([a])
    item = review_item_next_for_user(campaign=campaign, user=a)
    answer(campaign, a, item, Verdict.RELEVANT)
    assert campaign_consensus_decide(campaign=campaign, user=curator).decided == 1
    with pytest.raises(ApplicationError) as error:
        review_submission_undo(campaign=campaign, user=a)
    assert error.value.detail["code"] == "settled"
    assert Decision.objects.get(candidate=item.candidate).label == "relevant"


def test_unsure_is_an_answer_and_the_campaign_ends(make_campaign, make_annotator):
    a = make_annotator("a1")
    campaign = make_campaign([a])
    assert len(work_through(campaign, a, Verdict.UNSURE)) == 12
    assert review_item_next_for_user(campaign=campaign, user=a) is None


def test_a_closed_campaign_serves_nothing_and_takes_no_answer(make_campaign, make_annotator):
    a = make_annotator("a1")
    campaign = make_campaign([a])
    item = review_item_next_for_user(campaign=campaign, user=a)
    campaign.status = "closed"
    campaign.save()
    assert review_item_next_for_user(campaign=campaign, user=a) is None
    with pytest.raises(ApplicationError) as error:
        answer(campaign, a, item)
    assert error.value.detail["code"] == "closed"


def test_synthetic_items_take_approve_edit_reject_only(make_campaign, make_annotator):
    a = make_annotator("a1")
    campaign = make_campaign([a], strata={"synthetic": 2})
    item = review_item_next_for_user(campaign=campaign, user=a)
    with pytest.raises(ApplicationError):
        answer(campaign, a, item, Verdict.PARTLY_RELEVANT)
    with pytest.raises(ApplicationError):
        answer(campaign, a, item, Verdict.NOT_RELEVANT, edited_query="a rejected rewrite")
    result = answer(campaign, a, item, Verdict.RELEVANT, edited_query="  when was it built?  ")
    judgment = result.submission.judgment
    assert (judgment.verdict, judgment.tag, judgment.rationale) == (
        "relevant", "query_edit", "when was it built?",
    )  # fmt: skip
    # The query itself is untouched until a curator decides.
    assert item.candidate.query.text.startswith("when was bridge")
