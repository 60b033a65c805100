"""Blind campaigns: an answer changed after the reveal is a revision kept beside the blind
answer, never in its place (issue 9). The queue records it, the annotator and the curator
see it, the item goes to a curator when the revision changed the verdict; open campaigns
keep "undo and answer again replaces the answer"."""

import importlib
import re

from django.db import connection
from django.urls import reverse
from rest_framework.test import APIClient

from curation.models import Verdict
from review.models import ReviewItem, ReviewSubmission
from review.selectors import adjudication_page, items_in_consensus
from review.services.blind import AnswerKind, answer_kind
from review.services.decisions import campaign_consensus_decide
from review.services.queue import (
    judgment_submit,
    review_item_next_for_user,
    review_submission_undo,
)

HX = {"HTTP_HX_REQUEST": "true"}
_tokens = iter(range(10**6))


def answer(campaign, user, item, verdict):
    return judgment_submit(
        campaign=campaign, item_id=item.pk, user=user, verdict=verdict,
        client_token=f"blind-{next(_tokens):06d}",
    ).submission  # fmt: skip


def answer_undo_answer(campaign, user, first: str, second: str):
    """Answer the next item, take it back after the reveal, answer it again."""
    item = review_item_next_for_user(campaign=campaign, user=user)
    blind = answer(campaign, user, item, first)
    assert review_submission_undo(campaign=campaign, user=user).pk == item.pk
    return item, blind, answer(campaign, user, item, second)


# --- what an answer is --------------------------------------------------------------------


def test_answer_kind_in_blind_and_open_campaigns():
    # A blind campaign: the first answer is blind, any later one revises it.
    assert answer_kind(campaign_blind=True, blind_answer_id=None, answered_before=False) == (
        AnswerKind(blind=True, revises_id=None)
    )
    assert answer_kind(campaign_blind=True, blind_answer_id=7, answered_before=True) == (
        AnswerKind(blind=False, revises_id=7)
    )
    # Opened since: the person still saw the reveal after their blind answer.
    assert answer_kind(campaign_blind=False, blind_answer_id=7, answered_before=True) == (
        AnswerKind(blind=False, revises_id=7)
    )
    # An open campaign, or one made blind after the person had seen the verdicts: plain.
    plain = AnswerKind(blind=False, revises_id=None)
    assert answer_kind(campaign_blind=False, blind_answer_id=None, answered_before=False) == plain
    assert answer_kind(campaign_blind=True, blind_answer_id=None, answered_before=True) == plain


# --- the queue ----------------------------------------------------------------------------


def test_blind_undo_and_new_answer_is_a_revision_beside_the_blind_answer(
    make_campaign, make_annotator
):
    a = make_annotator("a1")
    campaign = make_campaign([a], strata={"stage2_flagged": 3}, blind=True)
    item, blind, revision = answer_undo_answer(campaign, a, Verdict.NOT_RELEVANT, Verdict.RELEVANT)
    blind.refresh_from_db()
    assert blind.blind and blind.revises_id is None and blind.undone_at is not None
    assert not revision.blind and revision.revises_id == blind.pk
    assert revision.undone_at is None
    # The queue counts the revision as the person's one answer to the item.
    item.refresh_from_db()
    assert item.judgment_count == 1 and item.done
    # It changed the blind verdict: a curator settles the item, not the bulk action.
    assert item.agreed is False
    assert not items_in_consensus(campaign=campaign).filter(pk=item.pk).exists()

    # Taking the revision back and answering again: still a revision of the BLIND answer.
    review_submission_undo(campaign=campaign, user=a)
    again = answer(campaign, a, item, Verdict.PARTLY_RELEVANT)
    assert again.revises_id == blind.pk and not again.blind
    assert ReviewSubmission.objects.filter(item=item, user=a, blind=True).count() == 1


def test_a_revision_that_keeps_the_blind_verdict_changes_nothing(make_campaign, make_annotator):
    a = make_annotator("a1")
    campaign = make_campaign([a], strata={"stage2_flagged": 3}, blind=True)
    item, blind, revision = answer_undo_answer(campaign, a, Verdict.RELEVANT, Verdict.RELEVANT)
    assert revision.revises_id == blind.pk
    item.refresh_from_db()
    assert item.agreed is True
    assert campaign_consensus_decide(campaign=campaign, user=a).relevant == 1


def test_open_campaigns_keep_undo_and_answer_again(make_campaign, make_annotator, curator):
    a = make_annotator("a1")
    campaign = make_campaign([a], strata={"stage2_flagged": 3}, blind=False)
    item, first, second = answer_undo_answer(campaign, a, Verdict.NOT_RELEVANT, Verdict.RELEVANT)
    first.refresh_from_db()
    assert not first.blind and not second.blind
    assert first.revises_id is None and second.revises_id is None
    item.refresh_from_db()
    assert item.agreed is True  # the new answer replaced the old one
    result = campaign_consensus_decide(campaign=campaign, user=curator)
    assert (result.decided, result.relevant) == (1, 1)


def test_a_campaign_opened_after_a_blind_answer_still_records_the_revision(
    make_campaign, make_annotator
):
    a = make_annotator("a1")
    campaign = make_campaign([a], strata={"stage2_flagged": 3}, blind=True)
    item = review_item_next_for_user(campaign=campaign, user=a)
    blind = answer(campaign, a, item, Verdict.NOT_RELEVANT)
    campaign.blind = False
    campaign.save(update_fields=["blind"])
    review_submission_undo(campaign=campaign, user=a)
    assert answer(campaign, a, item, Verdict.RELEVANT).revises_id == blind.pk


def test_curators_see_the_blind_answer_beside_the_revision(
    make_campaign, make_annotator, curator, client
):
    a, b = make_annotator("a1"), make_annotator("b1")
    campaign = make_campaign([a, b], overlap=2, strata={"stage2_flagged": 2}, blind=True)
    item, _, _ = answer_undo_answer(campaign, a, Verdict.NOT_RELEVANT, Verdict.RELEVANT)
    # b agrees with a's revision; the item still waits for a curator.
    b_item = review_item_next_for_user(campaign=campaign, user=b)
    while b_item.pk != item.pk:
        answer(campaign, b, b_item, Verdict.RELEVANT)
        b_item = review_item_next_for_user(campaign=campaign, user=b)
    answer(campaign, b, b_item, Verdict.RELEVANT)
    item.refresh_from_db()
    assert item.done and item.agreed is False

    (view, answers), *_ = adjudication_page(campaign=campaign).items
    assert view.item.pk == item.pk
    by_rater = {row.rater: row for row in answers}
    assert by_rater["user:a1"].blind_verdict == Verdict.NOT_RELEVANT
    assert by_rater["user:b1"].blind_verdict == ""
    client.force_login(curator)
    html = client.get(reverse("review:adjudication_queue", args=[campaign.pk])).content.decode()
    assert 'data-revised-from="not_relevant"' in html
    assert "revised after seeing the LLM: was not relevant" in html


def test_the_answers_api_shows_revisions(make_campaign, make_annotator, viewer):
    a = make_annotator("a1")
    campaign = make_campaign([a], strata={"stage2_flagged": 2}, blind=True)
    _, blind, revision = answer_undo_answer(campaign, a, Verdict.NOT_RELEVANT, Verdict.RELEVANT)
    other = review_item_next_for_user(campaign=campaign, user=a)
    plain = answer(campaign, a, other, Verdict.RELEVANT)
    api = APIClient()
    api.force_authenticate(viewer)
    rows = api.get(reverse("api:campaign-answers", args=[campaign.pk])).json()["results"]
    by_id = {row["id"]: row for row in rows}
    assert set(by_id) == {revision.pk, plain.pk}  # the undone blind answer is not active
    assert (by_id[revision.pk]["revises"], by_id[revision.pk]["blind_verdict"]) == (
        blind.pk, "not_relevant",
    )  # fmt: skip
    assert not by_id[revision.pk]["blind"]
    assert by_id[plain.pk]["blind"] and by_id[plain.pk]["revises"] is None
    assert by_id[plain.pk]["blind_verdict"] == ""


# --- what the annotator sees --------------------------------------------------------------


def _item(html: str) -> int:
    return int(re.search(r'name="item" value="(\d+)"', html).group(1))


def _token(html: str) -> str:
    return re.search(r'name="token" value="([0-9a-f]+)"', html).group(1)


def test_the_review_page_says_a_new_answer_is_a_post_reveal_revision(
    client, make_campaign, make_annotator
):
    a = make_annotator("a1")
    campaign = make_campaign([a], strata={"stage2_flagged": 3}, blind=True)
    client.force_login(a)
    submit_url = reverse("review:review_submit", args=[campaign.pk])
    html = client.get(reverse("review:review_page", args=[campaign.pk])).content.decode()
    item = _item(html)
    html = client.post(
        submit_url, {"item": item, "token": _token(html), "verdict": "not_relevant"}, **HX
    ).content.decode()
    assert "Revised after seeing the LLM" not in html
    html = client.post(reverse("review:review_undo", args=[campaign.pk]), **HX).content.decode()
    assert _item(html) == item
    assert "blind answer stays on record" in html
    # The item is back, and the page says what a new answer will be.
    assert 'data-blind-verdict="not_relevant"' in html
    assert "a new answer is recorded beside it as a revision after seeing the LLM" in html
    html = client.post(
        submit_url, {"item": item, "token": _token(html), "verdict": "relevant"}, **HX
    ).content.decode()
    last = html[html.index('class="last-answer"') :]
    assert 'data-last-verdict="relevant"' in last
    assert 'data-revised-from="not_relevant"' in last
    assert "Revised after seeing the LLM: was" in last
    # The next item is a fresh one: no revision notice on it.
    assert _item(html) != item and "data-blind-verdict" not in html


# --- existing answers: the migration ------------------------------------------------------


def test_the_migration_classifies_answers_given_before_it(make_campaign, make_annotator):
    a, b = make_annotator("a1"), make_annotator("b1")
    blind_campaign = make_campaign([a, b], strata={"stage2_flagged": 3}, blind=True, name="b")
    open_campaign = make_campaign([a], strata={"stage1_only": 2}, blind=False, name="o")
    item, blind, revision = answer_undo_answer(
        blind_campaign, a, Verdict.NOT_RELEVANT, Verdict.RELEVANT
    )
    kept = answer(blind_campaign, b, review_item_next_for_user(campaign=blind_campaign, user=b),
                  Verdict.RELEVANT)  # fmt: skip
    _, open_first, open_second = answer_undo_answer(
        open_campaign, a, Verdict.NOT_RELEVANT, Verdict.RELEVANT
    )
    # As the rows were before the migration: nothing told blind answers and revisions apart.
    ReviewSubmission.objects.update(blind=False, revises=None)
    ReviewItem.objects.filter(done=True).update(agreed=True)

    migration = importlib.import_module("review.migrations.0004_submission_blind_revision")
    with connection.cursor() as cursor:
        for sql in (migration.MARK_BLIND, migration.LINK_REVISIONS,
                    migration.REVISED_ITEMS_TO_ADJUDICATION):  # fmt: skip
            cursor.execute(sql)
    rows = dict(ReviewSubmission.objects.values_list("pk", "blind"))
    assert rows[blind.pk] and rows[kept.pk] and not rows[revision.pk]
    assert not rows[open_first.pk] and not rows[open_second.pk]
    links = dict(ReviewSubmission.objects.values_list("pk", "revises_id"))
    assert links[revision.pk] == blind.pk
    assert links[blind.pk] is links[kept.pk] is links[open_second.pk] is None
    item.refresh_from_db()
    assert item.agreed is False
    assert ReviewItem.objects.get(campaign=open_campaign, done=True).agreed is True
