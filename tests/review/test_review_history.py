"""History beyond one undo (issue 10): the annotator's recent answers, each undoable while the
campaign allows it — not once a curator settled the item, not in a closed campaign — and in
a blind campaign an older answer taken back still stays on record, the new one a revision."""

import re

import pytest
from django.urls import reverse

from core.errors import ApplicationError
from curation.models import DecisionSource
from review.models import ReviewSubmission
from review.services.campaigns import review_campaign_status_set
from review.services.queue import review_submission_undo
from tests.factories import DecisionFactory

from .conftest import RATIONALE
from .test_review_page import HX, current_item, page_url, submit


def history(client, campaign, **extra) -> str:
    return client.get(
        reverse("review:review_history", args=[campaign.pk]), **extra
    ).content.decode()


def answer(client, campaign, verdicts) -> tuple[str, list[int]]:
    html = client.get(page_url(campaign)).content.decode()
    items = []
    for verdict in verdicts:
        items.append(current_item(html))
        html = submit(client, campaign, html, verdict).content.decode()
    return html, items


def undo_buttons(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'data-undo="(\d+)"', html)]


@pytest.mark.parametrize("blind", [True, False])
def test_an_older_answer_is_undone_from_the_history(client, make_annotator, make_campaign, blind):
    ann = make_annotator("ann1")
    campaign = make_campaign([ann], strata={"stage2_flagged": 6}, blind=blind)
    client.force_login(ann)
    pane, items = answer(client, campaign, ["relevant", "not_relevant", "relevant", "unsure"])
    # The pane links the history; it is read only when opened (not on every verdict).
    url = reverse("review:review_history", args=[campaign.pk])
    assert f'data-history-url="{url}"' in pane and "data-history-item" not in pane
    fragment = history(client, campaign, **HX)
    assert "<html" not in fragment
    assert [int(i) for i in re.findall(r'data-history-item="(\d+)"', fragment)] == items[::-1]
    # Only what I answered: no machine verdict, blind or not.
    assert RATIONALE not in fragment and "llm:" not in fragment
    mine = list(
        ReviewSubmission.objects.filter(user=ann).order_by("-id").values_list("pk", flat=True)
    )
    assert undo_buttons(fragment) == mine
    # Without JavaScript: a page of its own.
    assert "<html" in history(client, campaign)

    # Take back the second answer (not the last): its item comes back to be judged.
    second = ReviewSubmission.objects.get(user=ann, item_id=items[1])
    response = client.post(
        reverse("review:review_undo", args=[campaign.pk]), {"submission": second.pk}, **HX
    )
    html = response.content.decode()
    assert current_item(html) == items[1]
    second.refresh_from_db()
    assert second.undone_at is not None
    assert re.search(r'data-counter="mine">3<', html)
    after = submit(client, campaign, html, "relevant").content.decode()
    again = ReviewSubmission.objects.get(user=ann, item_id=items[1], undone_at__isnull=True)
    if blind:
        # The blind answer stays on record; the new answer is a revision of it, visibly.
        assert second.blind and again.revises_id == second.pk
        assert 'data-revised-from="not_relevant"' in after
    else:
        assert not again.blind and again.revises_id is None
    assert ReviewSubmission.objects.filter(user=ann, undone_at__isnull=True).count() == 4


def test_settled_answers_and_closed_campaigns_offer_no_undo(client, make_annotator, make_campaign):
    ann = make_annotator("ann1")
    campaign = make_campaign([ann], strata={"stage2_flagged": 6})
    client.force_login(ann)
    _, items = answer(client, campaign, ["relevant", "not_relevant"])
    first = ReviewSubmission.objects.get(user=ann, item_id=items[0])
    DecisionFactory(candidate=first.item.candidate, source=DecisionSource.ADJUDICATION)
    fragment = history(client, campaign, **HX)
    assert first.pk not in undo_buttons(fragment) and "settled by a curator" in fragment
    assert len(undo_buttons(fragment)) == 1

    review_campaign_status_set(campaign=campaign, status="closed")
    campaign.refresh_from_db()
    assert undo_buttons(history(client, campaign, **HX)) == []
    with pytest.raises(ApplicationError, match="closed"):
        review_submission_undo(campaign=campaign, user=ann)


def test_only_the_campaigns_annotators_see_a_history(client, make_annotator, make_campaign):
    ann, other = make_annotator("ann1"), make_annotator("ann2")
    campaign = make_campaign([ann])
    client.force_login(other)
    assert client.get(reverse("review:review_history", args=[campaign.pk])).status_code == 403
