"""The annotator's counters (issue 10, item 4): my answers and what I can still answer,
apart from the campaign's finished items; the pace over the working session's active time,
not per wall hour since the first answer."""

import re
from datetime import datetime, timedelta

import pytest
from django.urls import reverse

from review.counters import ReviewCounters, session_span
from review.models import ReviewSubmission

from .test_review_page import HX, current_item, page_url, submit

T0 = datetime(2026, 1, 5, 9, 0)


def at(*seconds: float) -> list[datetime]:
    return [T0 + timedelta(seconds=s) for s in seconds]


def counters(answers: int, seconds: float) -> ReviewCounters:
    return ReviewCounters(
        items=19, done=0, overlap=2, mine=answers, remaining=19 - answers,
        session_answers=answers, session_seconds=seconds,
    )  # fmt: skip


def test_fifteen_answers_in_two_minutes_is_a_fast_pace_not_fifteen_an_hour():
    answers, seconds = session_span(at(*range(0, 120, 8)))  # 15 answers, 8 s apart
    assert (answers, seconds) == (15, 112.0)
    assert counters(answers, seconds).pace_per_hour == 450


def test_a_long_pause_counts_two_minutes_and_a_break_starts_a_new_session():
    # Three answers, a 10-minute pause (counted as 2), two more.
    answers, seconds = session_span(at(0, 10, 20, 620, 630))
    assert (answers, seconds) == (5, 10 + 10 + 120 + 10)
    # A 40-minute break: the session is the two answers after it.
    assert session_span(at(0, 10, 20, 2420, 2430)) == (2, 10.0)
    assert session_span([]) == (0, 0.0)


def test_no_pace_before_a_few_answers():
    assert counters(1, 0).pace_per_hour is None
    assert counters(2, 100).pace_per_hour is None
    assert counters(3, 20).pace_per_hour is None  # seconds of work: too short to say
    assert counters(3, 60).pace_per_hour == 120


def count(html: str, name: str) -> str:
    return re.search(rf'data-counter="{name}">([^<]*)<', html).group(1)


def test_my_answers_and_remaining_are_mine_the_campaign_counts_finished_items(
    client, make_annotator, make_campaign
):
    ann, other = make_annotator("ann1"), make_annotator("ann2")
    campaign = make_campaign([ann, other], overlap=2, strata={"unflagged": 5})
    client.force_login(ann)
    html = client.get(page_url(campaign)).content.decode()
    assert (count(html, "mine"), count(html, "remaining"), count(html, "pace")) == ("0", "5", "—")
    answered = []
    for verdict in ("relevant", "not_relevant", "relevant"):
        answered.append(current_item(html))
        html = submit(client, campaign, html, verdict).content.decode()
    # Three answers of mine, none finished (k = 2): the campaign still reads 0 / 5.
    assert (count(html, "mine"), count(html, "remaining")) == ("3", "2")
    assert count(html, "campaign") == "0 / 5"
    assert count(html, "pace") == "—"  # a test answers in milliseconds: no pace yet
    assert "3 answers this session" in html
    assert 'data-progress="mine" max="100" value="60"' in html

    # The other annotator finishes one of my items: the campaign moves, my counts do not.
    client.force_login(other)
    html = client.get(page_url(campaign)).content.decode()
    assert current_item(html) not in answered  # breadth-first: an unanswered one first
    for _ in range(3):
        html = submit(client, campaign, html, "relevant").content.decode()
    assert count(html, "campaign") == "1 / 5"
    assert (count(html, "mine"), count(html, "remaining")) == ("3", "2")
    client.force_login(ann)
    html = client.get(page_url(campaign)).content.decode()
    assert (count(html, "mine"), count(html, "remaining")) == ("3", "2")

    # An undone answer is no longer mine, and its item is one I can answer again.
    last = ReviewSubmission.objects.filter(user=ann).order_by("-id").first()
    undo = reverse("review:review_undo", args=[campaign.pk])
    html = client.post(undo, {"submission": last.pk}, **HX).content.decode()
    assert current_item(html) == last.item_id
    assert (count(html, "mine"), count(html, "remaining")) == ("2", "3")


@pytest.mark.parametrize("blind", [True, False])
def test_answers_of_another_campaign_are_not_mine_here(
    client, make_annotator, make_campaign, blind
):
    ann = make_annotator("ann1")
    first = make_campaign([ann], strata={"unflagged": 3}, blind=blind, name="first")
    second = make_campaign([ann], strata={"stage2_flagged": 2}, blind=blind, name="second")
    client.force_login(ann)
    html = client.get(page_url(first)).content.decode()
    for _ in range(2):
        html = submit(client, first, html, "relevant").content.decode()
    html = client.get(page_url(second)).content.decode()
    assert (count(html, "mine"), count(html, "remaining")) == ("0", "2")


def test_items_held_by_others_are_said_to_be_held_not_answered(
    client, make_annotator, make_campaign
):
    """With overlap 1 and two annotators, the items the other one holds are still mine to
    answer (they may come back) but not now: the counter and the empty pane say so, instead
    of "I can still answer 2" beside "you answered every item"."""
    ann, other = make_annotator("ann1"), make_annotator("ann2")
    campaign = make_campaign([ann, other], overlap=1, strata={"unflagged": 3})
    client.force_login(other)
    client.get(page_url(campaign))  # ann2 holds one item
    client.force_login(ann)
    html = client.get(page_url(campaign)).content.decode()
    assert 'data-counter="held"' not in html  # an item to judge: nothing to explain
    html = submit(client, campaign, html, "relevant").content.decode()
    assert current_item(html) is not None
    html = submit(client, campaign, html, "relevant").content.decode()
    # Two answered, the third held by ann2.
    assert count(html, "remaining") == "1"
    assert "held by others right now" in html
    assert "The 1 item you can still answer is held by other annotators right now" in html
    assert "You answered every item" not in html

    # ann2 answers it: nothing is left for anyone, and the page says so plainly.
    client.force_login(other)
    submit(client, campaign, client.get(page_url(campaign)).content.decode(), "relevant")
    client.force_login(ann)
    html = client.get(page_url(campaign)).content.decode()
    assert count(html, "remaining") == "0"
    assert 'data-counter="held"' not in html
    assert "You answered every item that still needs an answer from you." in html
