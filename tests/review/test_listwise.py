"""The list-wise queue (review/services/listwise.py): every open item of one query at once,
all held, answered with one submit by the one-item queue's rules (k, holds, blind answers,
revisions, duplicates)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from core.errors import ApplicationError
from curation.models import Judgment, RaterKind, Verdict
from review.models import ReviewCampaign, ReviewItem, ReviewLock, ReviewSubmission
from review.services.campaigns import review_campaign_status_set
from review.services.listwise import review_list_next_for_user, review_list_submit
from review.services.queue import judgment_submit, review_item_next_for_user, review_submission_undo

# Four items per query: stage 2 flagged, stage 1 only, and the two unflagged negatives.
ALL_NEGATIVES = {"stage2_flagged": 6, "stage1_only": 6, "unflagged": 12}

_tokens = iter(range(10**6))


def token() -> str:
    return f"list-{next(_tokens):08d}"


def query_of(items) -> set[int]:
    return {
        item.candidate.query_id for item in ReviewItem.objects.filter(pk__in=[i.pk for i in items])
    }


def held(user) -> set[int]:
    live = ReviewLock.objects.filter(user=user, expires_at__gt=timezone.now())
    return set(live.values_list("item_id", flat=True))


def submit(campaign, user, items, verdict=Verdict.NOT_RELEVANT, client_token=None):
    return review_list_submit(
        campaign=campaign,
        user=user,
        answers=[(item.pk, verdict) for item in items],
        client_token=client_token or token(),
    )


def test_the_list_is_every_open_item_of_one_query_all_held(make_campaign, make_annotator):
    a = make_annotator("a1")
    campaign = make_campaign([a], strata=ALL_NEGATIVES)
    rows = review_list_next_for_user(campaign=campaign, user=a)
    assert len(rows) == 4 and len(query_of(rows)) == 1
    (query_id,) = query_of(rows)
    in_campaign = ReviewItem.objects.filter(campaign=campaign, candidate__query_id=query_id)
    assert {r.pk for r in rows} == set(in_campaign.values_list("pk", flat=True))
    assert held(a) == {r.pk for r in rows}
    # A reload serves the same list (the holds), not a new query.
    assert [r.pk for r in review_list_next_for_user(campaign=campaign, user=a)] == [
        r.pk for r in rows
    ]


def test_another_annotator_never_gets_held_rows_when_k_is_one(make_campaign, make_annotator):
    a, b = make_annotator("a1"), make_annotator("b1")
    campaign = make_campaign([a, b], strata=ALL_NEGATIVES)
    mine = review_list_next_for_user(campaign=campaign, user=a)
    theirs = review_list_next_for_user(campaign=campaign, user=b)
    assert theirs and not {r.pk for r in mine} & {r.pk for r in theirs}
    assert query_of(mine) != query_of(theirs)
    # The one-item queue respects the list's holds too.
    single = review_item_next_for_user(campaign=campaign, user=make_annotator("c1"))
    assert single.pk not in {r.pk for r in mine} | {r.pk for r in theirs}


def test_with_k_two_a_second_person_shares_the_list_and_a_third_does_not(
    make_campaign, make_annotator
):
    a, b, c = make_annotator("a1"), make_annotator("b1"), make_annotator("c1")
    campaign = make_campaign([a, b, c], overlap=2, strata=ALL_NEGATIVES)
    first = review_list_next_for_user(campaign=campaign, user=a)
    second = review_list_next_for_user(campaign=campaign, user=b)
    assert [r.pk for r in second] == [r.pk for r in first]  # room for two: breadth-first
    third = review_list_next_for_user(campaign=campaign, user=c)
    assert not {r.pk for r in third} & {r.pk for r in first}


def test_answering_the_list_writes_verdicts_counted_like_single_mode(make_campaign, make_annotator):
    a = make_annotator("a1")
    campaign = make_campaign([a], strata=ALL_NEGATIVES, blind=False)
    rows = review_list_next_for_user(campaign=campaign, user=a)
    verdicts = [Verdict.RELEVANT, Verdict.NOT_RELEVANT, Verdict.PARTLY_RELEVANT, Verdict.UNSURE]
    result = review_list_submit(
        campaign=campaign,
        user=a,
        answers=[(r.pk, v) for r, v in zip(rows, verdicts, strict=True)],
        client_token=token(),
    )
    assert result.refused == [] and len(result.submissions) == 4
    judgments = Judgment.objects.filter(source_run=f"campaign:{campaign.pk}")
    assert set(judgments.values_list("rater", "rater_kind")) == {("user:a1", RaterKind.HUMAN)}
    assert sorted(judgments.values_list("verdict", flat=True)) == sorted(verdicts)
    assert not ReviewSubmission.objects.filter(blind=True).exists()  # an open campaign
    for item in ReviewItem.objects.filter(pk__in=[r.pk for r in rows]):
        # k = 1: each answer finishes its item, settled in bulk when it is a decidable label.
        assert item.done and item.judgment_count == 1
        assert item.agreed is (Judgment.objects.get(submission__item=item).verdict in
                               (Verdict.RELEVANT, Verdict.NOT_RELEVANT))  # fmt: skip
    assert ReviewCampaign.objects.get(pk=campaign.pk).done_count == 4
    # The answered rows' holds are gone; the next list (another query) is held instead.
    assert result.next_items and query_of(result.next_items) != query_of(rows)
    assert held(a) == {r.pk for r in result.next_items}


def test_rows_left_unanswered_come_back_held(make_campaign, make_annotator):
    a = make_annotator("a1")
    campaign = make_campaign([a], strata=ALL_NEGATIVES)
    rows = review_list_next_for_user(campaign=campaign, user=a)
    result = submit(campaign, a, rows[:2])
    assert [r.pk for r in result.next_items] == [r.pk for r in rows[2:]]
    assert held(a) == {r.pk for r in rows[2:]}


def test_k_annotators_each_item_gets_exactly_k_answers(make_campaign, make_annotator):
    people = [make_annotator(f"a{i}") for i in range(3)]
    campaign = make_campaign(people, overlap=2, strata=ALL_NEGATIVES)
    for person in people:
        rows = review_list_next_for_user(campaign=campaign, user=person)
        while rows:
            rows = submit(campaign, person, rows).next_items
    for item in ReviewItem.objects.filter(campaign=campaign):
        assert item.done and item.judgment_count == 2 and item.agreed is True
        assert ReviewSubmission.objects.filter(item=item, undone_at__isnull=True).count() == 2
    assert ReviewCampaign.objects.get(pk=campaign.pk).done_count == 24
    assert not ReviewSubmission.objects.filter(user=people[2]).exists()


def test_a_row_filled_by_others_while_my_hold_expired_is_refused_alone(
    make_campaign, make_annotator
):
    a, b = make_annotator("a1"), make_annotator("b1")
    campaign = make_campaign([a, b], strata=ALL_NEGATIVES)
    rows = review_list_next_for_user(campaign=campaign, user=a)
    # a's holds expire; b is served one of the rows and answers it.
    ReviewLock.objects.filter(user=a).update(expires_at=timezone.now() - timedelta(seconds=1))
    taken = review_item_next_for_user(campaign=campaign, user=b)
    assert taken.pk in {r.pk for r in rows}
    judgment_submit(
        campaign=campaign, item_id=taken.pk, user=b, verdict=Verdict.RELEVANT,
        client_token=token(),
    )  # fmt: skip
    result = submit(campaign, a, rows)
    assert [item_id for item_id, _ in result.refused] == [taken.pk]
    assert "other annotators" in result.refused[0][1]
    assert len(result.submissions) == 3
    assert ReviewItem.objects.get(pk=taken.pk).judgment_count == 1  # never more than k


def test_the_same_token_twice_saves_nothing_new(make_campaign, make_annotator):
    a = make_annotator("a1")
    campaign = make_campaign([a], strata=ALL_NEGATIVES)
    rows = review_list_next_for_user(campaign=campaign, user=a)
    once = submit(campaign, a, rows, client_token="same-token-1")
    twice = submit(campaign, a, rows, client_token="same-token-1")
    assert twice.refused == []
    assert [s.pk for s in twice.submissions] == [s.pk for s in once.submissions]
    assert ReviewSubmission.objects.filter(user=a).count() == 4


def test_blind_answers_and_revisions_follow_the_one_item_rules(make_campaign, make_annotator):
    a = make_annotator("a1")
    campaign = make_campaign([a], strata=ALL_NEGATIVES, blind=True)
    rows = review_list_next_for_user(campaign=campaign, user=a)
    first = submit(campaign, a, rows, Verdict.NOT_RELEVANT)
    assert all(s.blind and s.revises_id is None for s in first.submissions)
    # U after the reveal: the last row comes back as a list of one, its blind answer known.
    undone = review_submission_undo(campaign=campaign, user=a)
    again = review_list_next_for_user(campaign=campaign, user=a)
    assert [r.pk for r in again] == [undone.pk]
    assert again[0].blind_answer_id == first.submissions[-1].pk
    revision = submit(campaign, a, again, Verdict.RELEVANT).submissions[0]
    assert not revision.blind and revision.revises_id == first.submissions[-1].pk
    blind = ReviewSubmission.objects.get(pk=first.submissions[-1].pk)
    assert blind.blind and blind.undone_at is not None  # still on record for agreement
    # The revision changed the blind answer: the item needs a curator.
    assert ReviewItem.objects.get(pk=undone.pk).agreed is False
    # Two answers taken back come back as one list, and both new answers are revisions
    # (written together in one statement on PostgreSQL), one repeating its blind answer.
    for _ in range(2):
        review_submission_undo(campaign=campaign, user=a)
    both = review_list_next_for_user(campaign=campaign, user=a)
    assert len(both) == 2 and len(query_of(both)) == 1
    blind_of = {s.item_id: s.pk for s in first.submissions}
    result = review_list_submit(
        campaign=campaign, user=a, client_token=token(),
        answers=[(both[0].pk, Verdict.NOT_RELEVANT), (both[1].pk, Verdict.RELEVANT)],
    )  # fmt: skip
    assert [(s.blind, s.revises_id) for s in result.submissions] == [
        (False, blind_of[both[0].pk]), (False, blind_of[both[1].pk])
    ]  # fmt: skip
    agreed = ReviewItem.objects.filter(pk__in=[b.pk for b in both]).order_by("pk")
    assert dict(agreed.values_list("pk", "agreed")) == {both[0].pk: True, both[1].pk: False}
    assert ReviewCampaign.objects.get(pk=campaign.pk).done_count == 4


def test_switching_back_to_one_item_keeps_one_hold(make_campaign, make_annotator):
    a = make_annotator("a1")
    campaign = make_campaign([a], strata=ALL_NEGATIVES)
    rows = review_list_next_for_user(campaign=campaign, user=a)
    item = review_item_next_for_user(campaign=campaign, user=a)
    assert item.pk in {r.pk for r in rows}
    assert held(a) == {item.pk}  # the list's other holds are released


def test_refused_when_closed_empty_or_malformed(make_campaign, make_annotator, curator):
    a = make_annotator("a1")
    campaign = make_campaign([a], strata=ALL_NEGATIVES)
    rows = review_list_next_for_user(campaign=campaign, user=a)
    with pytest.raises(ApplicationError, match="malformed"):
        submit(campaign, a, rows, client_token="bad token")
    with pytest.raises(ApplicationError, match="at least one"):
        submit(campaign, a, [])
    campaign = review_campaign_status_set(campaign=campaign, status="closed")
    with pytest.raises(ApplicationError, match="closed"):
        submit(campaign, a, rows)
    assert not ReviewSubmission.objects.exists()
    assert review_list_next_for_user(campaign=campaign, user=a) == []
