"""The list-wise queue under real concurrency, beside the one-item queue: annotators in
threads (each with its own PostgreSQL connection), some answering lists and some one item at
a time, racing for the same items. No item may get more than k answers, none may be lost,
and with k = 1 no two people may hold the same item."""

from collections import Counter

import pytest

from curation.models import Judgment, Verdict
from review.models import ReviewCampaign, ReviewItem, ReviewLock, ReviewSubmission
from review.services.listwise import review_list_next_for_user, review_list_submit
from review.services.queue import judgment_submit, review_item_next_for_user
from tests.review.test_campaigns import ALL
from tests.review.test_queue_concurrency import _postgres_only, run_threads  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)


def test_lists_and_single_items_together_give_every_item_exactly_k_answers(
    make_campaign, make_annotator
):
    people = [make_annotator(f"a{i}") for i in range(6)]
    campaign = make_campaign(people, overlap=2, strata=ALL)

    def by_lists(user):
        rows, n = review_list_next_for_user(campaign=campaign, user=user), 0
        while rows:
            token, n = f"{user.username}-{n:06d}", n + 1
            answers = [(row.pk, Verdict.NOT_RELEVANT) for row in rows]
            result = review_list_submit(
                campaign=campaign, user=user, answers=answers, client_token=token
            )
            # A resent list (same token) must not count twice.
            review_list_submit(campaign=campaign, user=user, answers=answers, client_token=token)
            rows = result.next_items

    def one_by_one(user):
        item, n = review_item_next_for_user(campaign=campaign, user=user), 0
        while item is not None:
            result = judgment_submit(
                campaign=campaign, item_id=item.pk, user=user, verdict=Verdict.NOT_RELEVANT,
                client_token=f"{user.username}-{n:06d}",
            )  # fmt: skip
            item, n = result.next_item, n + 1

    work = [(by_lists if i % 2 == 0 else one_by_one, p) for i, p in enumerate(people)]
    assert run_threads(lambda f, user: f(user), work) == []
    active = ReviewSubmission.objects.filter(item__campaign=campaign, undone_at__isnull=True)
    per_item = Counter(active.values_list("item_id", flat=True))
    assert set(per_item.values()) == {2} and len(per_item) == 26
    items = ReviewItem.objects.filter(campaign=campaign)
    assert all(item.judgment_count == 2 and item.done for item in items)
    assert Judgment.objects.filter(source_run=f"campaign:{campaign.pk}").count() == 52
    assert ReviewCampaign.objects.get(pk=campaign.pk).done_count == 26


def test_with_k1_simultaneous_lists_hold_different_items(make_campaign, make_annotator):
    people = [make_annotator(f"a{i}") for i in range(6)]
    campaign = make_campaign(people, overlap=1, strata=ALL)
    got = {}

    def take(user):
        got[user.username] = [
            row.pk for row in review_list_next_for_user(campaign=campaign, user=user)
        ]

    assert run_threads(take, [(p,) for p in people]) == []
    shown = [pk for rows in got.values() for pk in rows]
    assert all(got.values()) and len(shown) == len(set(shown))
    held = Counter(ReviewLock.objects.values_list("item_id", flat=True))
    assert set(held) == set(shown) and set(held.values()) == {1}
