"""The queue under real concurrency: annotators in threads, each with its own PostgreSQL
connection, racing for the same items. No item may get more than k answers, none may be
lost, and with k = 1 no two people may hold the same item."""

import threading
from collections import Counter

import pytest
from django.contrib.auth.models import Group
from django.db import connection

from core.roles import Role
from curation.models import Judgment, Verdict
from review.models import ReviewItem, ReviewLock, ReviewSubmission
from review.services.queue import judgment_submit, review_item_next_for_user
from tests.review.test_campaigns import ALL

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _postgres_only(transactional_db):
    if connection.vendor != "postgresql":
        pytest.skip("row locks and SKIP LOCKED need PostgreSQL (SQLite runs one writer at a time)")
    # A transactional test starts from a flushed database: the role groups the migrations
    # created are gone.
    for role in Role.values:
        Group.objects.get_or_create(name=role)


def run_threads(target, args_list):
    barrier = threading.Barrier(len(args_list))
    errors = []

    def wrapped(*args):
        try:
            barrier.wait()
            target(*args)
        except Exception as exc:  # reported by the test, not lost in the thread
            errors.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=wrapped, args=args) for args in args_list]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return errors


def test_racing_annotators_give_every_item_exactly_k_answers(make_campaign, make_annotator):
    people = [make_annotator(f"a{i}") for i in range(6)]
    campaign = make_campaign(people, overlap=2, strata=ALL)
    answered = Counter()

    def annotate(user):
        item = review_item_next_for_user(campaign=campaign, user=user)
        n = 0
        while item is not None:
            token = f"{user.username}-{n:06d}"
            result = judgment_submit(
                campaign=campaign, item_id=item.pk, user=user,
                verdict=Verdict.NOT_RELEVANT, client_token=token,
            )  # fmt: skip
            # A retried POST (same token) must not count twice.
            judgment_submit(
                campaign=campaign, item_id=item.pk, user=user,
                verdict=Verdict.NOT_RELEVANT, client_token=token,
            )  # fmt: skip
            answered[user.username] += 1
            n += 1
            item = result.next_item

    assert run_threads(annotate, [(p,) for p in people]) == []
    items = ReviewItem.objects.filter(campaign=campaign)
    assert items.count() == 26
    per_item = Counter(
        ReviewSubmission.objects.filter(
            item__campaign=campaign, undone_at__isnull=True
        ).values_list("item_id", flat=True)
    )
    assert set(per_item.values()) == {2} and len(per_item) == 26
    assert all(item.judgment_count == 2 and item.done for item in items)
    assert Judgment.objects.filter(source_run=f"campaign:{campaign.pk}").count() == 52
    assert sum(answered.values()) == 52
    campaign.refresh_from_db()
    assert campaign.done_count == 26


def test_with_k1_simultaneous_requests_get_different_items(make_campaign, make_annotator):
    people = [make_annotator(f"a{i}") for i in range(8)]
    campaign = make_campaign(people, overlap=1, strata=ALL)
    got = {}

    def take(user):
        got[user.username] = review_item_next_for_user(campaign=campaign, user=user).pk

    assert run_threads(take, [(p,) for p in people]) == []
    assert len(set(got.values())) == 8
    held = Counter(ReviewLock.objects.values_list("item_id", flat=True))
    assert len(held) == 8 and set(held.values()) == {1}


def test_simultaneous_double_submit_writes_one_judgment(make_campaign, make_annotator):
    a = make_annotator("a1")
    campaign = make_campaign([a])
    item = review_item_next_for_user(campaign=campaign, user=a)
    results = []

    def submit():
        results.append(
            judgment_submit(
                campaign=campaign, item_id=item.pk, user=a,
                verdict=Verdict.RELEVANT, client_token="double-click-1",
            ).duplicate
        )  # fmt: skip

    assert run_threads(submit, [(), (), ()]) == []
    assert sorted(results) == [False, True, True]
    assert Judgment.objects.filter(rater="user:a1").count() == 1
    item.refresh_from_db()
    assert item.judgment_count == 1


def test_an_open_item_locked_by_someone_answering_is_waited_for_not_reported_gone(
    make_campaign, make_annotator
):
    """The end of a campaign: the last open item's row is locked by another annotator's
    transaction (their verdict is being saved). SKIP LOCKED walks past it; the queue must not
    answer "nothing left" (the asker would stop and leave the item one answer short) but
    wait for that transaction and serve the item."""
    a = make_annotator("a1")
    campaign = make_campaign([a, make_annotator("b1")], overlap=2, strata={"unflagged": 1})
    item = ReviewItem.objects.get(campaign=campaign)
    locked, release, got = threading.Event(), threading.Event(), {}

    def holder():
        from django.db import transaction

        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(
                    f"SELECT id FROM {ReviewItem._meta.db_table} WHERE id = %s FOR UPDATE",
                    [item.pk],
                )
            locked.set()
            release.wait(10)

    def asker():
        locked.wait(10)
        threading.Timer(0.5, release.set).start()
        got["item"] = review_item_next_for_user(campaign=campaign, user=a)

    assert run_threads(lambda f: f(), [(holder,), (asker,)]) == []
    assert got["item"] is not None and got["item"].pk == item.pk
