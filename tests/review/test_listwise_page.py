"""The list-wise review page: the mode switch (kept in the session), the list with every row
held, one POST answering the rows, escaping, the blind reveal only after answering, and a
bound on the statements of the list's submit that does not grow with its rows."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from curation.models import CandidateRole
from review.models import ReviewItem, ReviewLock, ReviewSubmission
from tests.factories import CandidateFactory, PassageFactory
from tests.review.conftest import RATIONALE

from .test_listwise import ALL_NEGATIVES
from .test_review_page import HX, SCRIPT, page_url
from .test_review_request_cost import statements


@pytest.fixture
def ann(make_annotator):
    return make_annotator("ann1")


@pytest.fixture
def ann_client(client, ann):
    client.force_login(ann)
    return client


def list_mode(client, campaign, mode="list", **kwargs):
    return client.post(reverse("review:review_mode", args=[campaign.pk]), {"mode": mode}, **kwargs)


def rows(html: str) -> list[int]:
    return [int(pk) for pk in re.findall(r'data-row="(\d+)"', html)]


def list_token(html: str) -> str:
    return re.search(r'name="token" value="([0-9a-f]+)"', html).group(1)


def send(client, campaign, html, verdicts: dict, *, htmx=True):
    data = {"token": list_token(html), "item": rows(html)}
    data |= {f"verdict-{pk}": verdict for pk, verdict in verdicts.items()}
    url = reverse("review:review_list_submit", args=[campaign.pk])
    return client.post(url, data, **(HX if htmx else {}))


def test_the_mode_switch_shows_every_row_of_a_query_held(ann_client, ann, make_campaign):
    campaign = make_campaign([ann], strata=ALL_NEGATIVES)
    single = ann_client.get(page_url(campaign)).content.decode()
    assert "data-listwise" not in single and 'name="mode" value="list"' in single
    html = list_mode(ann_client, campaign, **HX).content.decode()
    assert "data-listwise" in html and 'name="mode" value="single"' in html
    assert len(rows(html)) == 4
    # The same words as one item at a time.
    assert html.count("<kbd>3</kbd> Partly relevant</label>") == 4
    assert html.count("<kbd>0</kbd> Unsure <small>(a curator decides)</small></label>") == 4
    assert set(ReviewLock.objects.filter(user=ann).values_list("item_id", flat=True)) == set(
        rows(html)
    )
    # Kept in the session: the page itself opens in the list-wise mode now.
    page = ann_client.get(page_url(campaign)).content.decode()
    assert rows(page) == rows(html) and "<kbd>J</kbd>" in page
    # And back: one item, one hold.
    back = list_mode(ann_client, campaign, "single").content.decode()
    assert back == "" and "data-listwise" not in ann_client.get(page_url(campaign)).content.decode()
    assert ReviewLock.objects.filter(user=ann).count() == 1


def test_one_post_answers_the_rows_and_reveals_only_then(ann_client, ann, make_campaign):
    campaign = make_campaign([ann], strata=ALL_NEGATIVES, blind=True)
    html = list_mode(ann_client, campaign, **HX).content.decode()
    assert RATIONALE not in html and "gpt-4o" not in html  # blind: nothing before the answer
    shown = rows(html)
    answers = dict(
        zip(shown, ["relevant", "not_relevant", "partly_relevant", "unsure"], strict=True)
    )
    after = send(ann_client, campaign, html, answers).content.decode()
    assert "message-error" not in after
    saved = ReviewSubmission.objects.filter(user=ann, undone_at__isnull=True)
    assert {s.item_id: s.judgment.verdict for s in saved} == answers
    assert all(s.blind for s in saved)
    # The answers just saved, with what the judges said about them; the next list is blind.
    last = after.split('class="last-answer"')[1]
    assert set(map(int, re.findall(r'data-last-item="(\d+)"', last))) == set(shown)
    assert RATIONALE in last and RATIONALE not in after.split('class="last-answer"')[0]
    assert re.search(r'data-counter="mine">4<', after)
    assert not set(rows(after)) & set(shown)


def test_rows_left_unanswered_come_back_and_plain_posts_redirect(ann_client, ann, make_campaign):
    campaign = make_campaign([ann], strata=ALL_NEGATIVES)
    list_mode(ann_client, campaign)
    html = ann_client.get(page_url(campaign)).content.decode()
    first, *rest = rows(html)
    response = send(ann_client, campaign, html, {first: "not_relevant"}, htmx=False)
    assert response.status_code == 302 and response.url == page_url(campaign)
    assert rows(ann_client.get(page_url(campaign)).content.decode()) == rest
    # Nothing answered: said, nothing saved.
    again = ann_client.get(page_url(campaign)).content.decode()
    refused = send(ann_client, campaign, again, {}).content.decode()
    assert "answer at least one row" in refused
    assert ReviewSubmission.objects.filter(user=ann).count() == 1
    url = reverse("review:review_list_submit", args=[campaign.pk])
    bad = {"token": list_token(again), "item": rest[0], f"verdict-{rest[0]}": "maybe"}
    assert ann_client.post(url, bad).status_code == 400
    assert list_mode(ann_client, campaign, "both").status_code == 400


def test_passage_text_is_escaped_in_the_list(ann_client, ann, make_campaign, review_dataset):
    campaign = make_campaign([ann], strata=ALL_NEGATIVES)
    item = ReviewItem.objects.filter(campaign=campaign).order_by("position").first()
    passage = item.candidate.passage
    passage.text = f"{SCRIPT} the negative"
    passage.save()
    positive = item.candidate.query.candidates.get(role=CandidateRole.POSITIVE).passage
    positive.title = SCRIPT
    positive.save()
    html = list_mode(ann_client, campaign, **HX).content.decode()
    assert item.pk in rows(html)
    assert SCRIPT not in html and "&lt;script&gt;" in html


def test_the_list_submit_runs_as_many_statements_for_eleven_rows_as_for_three(
    client, make_annotator, make_campaign, review_dataset
):
    if connection.vendor != "postgresql":
        pytest.skip("the rows' verdicts are one statement on PostgreSQL; SQLite writes each")
    ann = make_annotator("ann1")
    # Give query q0 eight more unflagged negatives: a list of 4 + 8 rows.
    query = review_dataset.queries.get(query_id="q0")
    for rank in range(5, 13):
        CandidateFactory(
            query=query, role=CandidateRole.NEGATIVE, rank=rank,
            passage=PassageFactory(corpus=review_dataset.corpus, text=f"more negative {rank}"),
        )  # fmt: skip
    campaign = make_campaign([ann], strata={"unflagged": 20, "stage1_only": 6}, blind=False)
    client.force_login(ann)
    counts = {}
    html = list_mode(client, campaign, **HX).content.decode()
    for _ in range(3):
        shown = rows(html)
        if not shown:
            break
        with CaptureQueriesContext(connection) as captured:
            response = send(client, campaign, html, dict.fromkeys(shown, "not_relevant"))
        html = response.content.decode()
        assert "message-error" not in html
        sql = statements(captured)
        writes = [s for s in sql if s.lstrip().startswith(("INSERT", "UPDATE", "DELETE", "WITH"))]
        # The answered rows in one statement, the next list's holds and the release of other
        # holds: nothing else writes.
        assert len(writes) == 1 + (2 if rows(html) else 0), writes
        counts[len(shown)] = len(sql)
    assert len(counts) >= 2, counts  # lists of different lengths were measured
    # session + user, campaign (3); row locks, states, the write (3); the next list: my held
    # rows, the pick, its query's rows, their states, holds, other holds (6); the pane:
    # passages, reveal, counters (3). The same for 3 rows as for 11.
    assert len(set(counts.values())) == 1 and max(counts.values()) <= 15, counts
