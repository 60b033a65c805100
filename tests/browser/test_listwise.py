"""The list-wise review mode in a real browser, keyboard only: L switches to it, J / K and the
arrows move the outlined row, the verdict keys answer it and move on to the next unanswered
row, the last answer sends the list by itself, Enter sends a partly answered one (the rest
comes back). Blind: no judge's verdict on a row before it is answered; the reveal comes with
the answers. A hostile passage renders as text."""

import pytest

from curation.models import CandidateRole, Judgment, RaterKind, Verdict
from review.models import ReviewLock, ReviewSubmission
from review.services.campaigns import review_campaign_create
from tests.browser.conftest import counter, log_in, press_and_wait, screenshot
from tests.factories import CandidateFactory, DatasetFactory, PassageFactory, QueryFactory
from tests.support.users import user_with_role

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

HOSTILE = '<img src=x onerror="window.__pwned = 1"> a kettle at 3000 m'
STAGE1 = "llm:gpt-4o-mini:stage1"


@pytest.fixture
def campaign(django_user_model):
    """Two queries, with three and two negatives that stage 1 judged not relevant (the
    unflagged stratum); a blind campaign over all five for ann1 (overlap 1)."""
    dataset = DatasetFactory(name="list-study")
    for q, negatives in ((0, 3), (1, 2)):
        query = QueryFactory(dataset=dataset, text=f"boiling point of water at altitude {q}")
        CandidateFactory(
            query=query,
            role=CandidateRole.POSITIVE,
            passage=PassageFactory(corpus=dataset.corpus, text=f"Water boils lower up high {q}."),
        )
        for rank in range(1, negatives + 1):
            text = HOSTILE if (q, rank) == (0, 2) else f"Negative {rank} of query {q}."
            negative = CandidateFactory(
                query=query, role=CandidateRole.NEGATIVE, rank=rank,
                passage=PassageFactory(corpus=dataset.corpus, text=text),
            )  # fmt: skip
            Judgment.objects.create(
                candidate=negative, rater=STAGE1, rater_kind=RaterKind.MACHINE,
                verdict=Verdict.NOT_RELEVANT, model_name="gpt-4o-mini",
                rationale=f"Judge sentence about candidate {negative.pk}.",
            )  # fmt: skip
    ann1 = user_with_role(django_user_model, "ann1", "annotator")
    curator = user_with_role(django_user_model, "cora", "curator")
    return review_campaign_create(
        name="List study", dataset=dataset, strata={"unflagged": 5}, annotators=[ann1],
        overlap=1, blind=True, seed=1, created_by=curator,
    )  # fmt: skip


def rows(page) -> list[int]:
    ids = page.eval_on_selector_all("[data-row]", "els => els.map(e => e.dataset.row)")
    return [int(pk) for pk in ids]


def current_row(page) -> int:
    return int(page.get_attribute("[data-row].current", "data-row"))


def test_a_query_s_rows_answered_with_the_keyboard(live_server, new_page, campaign):
    page = new_page()
    log_in(page, live_server, "ann1", "pw-ann1")
    page.goto(f"{live_server.url}/review/{campaign.pk}/work/")
    page.wait_for_selector("#review-pane [data-item]")
    # As on a loaded machine (CI): keys pressed before htmx settled a swapped pane still work.
    page.evaluate("htmx.config.defaultSettleDelay = 1500")

    press_and_wait(page, "l")
    page.wait_for_selector("[data-listwise] [data-row]")
    listed = rows(page)
    assert len(listed) in (2, 3)  # the seeded order may start with either query
    assert "Judge sentence" not in page.content()  # blind: no verdict before the answer
    assert page.evaluate("window.__pwned") is None
    assert current_row(page) == listed[0]
    holds = ReviewLock.objects.filter(user__username="ann1")
    assert set(holds.values_list("item_id", flat=True)) == set(listed)

    # J, K and the arrows move the outlined row.
    page.keyboard.press("j")
    assert current_row(page) == listed[1]
    page.keyboard.press("k")
    assert current_row(page) == listed[0]
    page.keyboard.press("ArrowDown")
    assert current_row(page) == listed[1]
    page.keyboard.press("ArrowUp")
    page.keyboard.press("ArrowDown")

    # A verdict answers the outlined row and moves on to the next unanswered one (wrapping);
    # the last one sends the list.
    expected = {listed[1]: "not_relevant"}
    page.keyboard.press("2")
    assert current_row(page) == (listed[2] if len(listed) == 3 else listed[0])
    if len(listed) == 3:
        page.keyboard.press("1")
        expected[listed[2]] = "relevant"
        assert current_row(page) == listed[0]
    screenshot(page, "review_listwise")
    expected[listed[0]] = "partly_relevant"
    press_and_wait(page, "3")

    saved = ReviewSubmission.objects.filter(user__username="ann1", undone_at__isnull=True)
    assert {s.item_id: s.judgment.verdict for s in saved} == expected
    assert all(s.blind for s in saved)
    assert counter(page, "mine") == str(len(listed))
    # The reveal comes with the answers, the next list stays blind.
    last = page.locator(".last-answer")
    assert "Judge sentence" in last.text_content()
    assert "Judge sentence" not in page.inner_html(".review-list")

    # The other query: one row answered, Enter sends it; the rest comes back held.
    second = rows(page)
    assert not set(second) & set(listed)
    page.keyboard.press("2")
    press_and_wait(page, "Enter")
    assert rows(page) == second[1:]
    assert ReviewSubmission.objects.get(item_id=second[0]).judgment.verdict == "not_relevant"

    # L goes back to one item at a time: a remaining row, now the only hold.
    press_and_wait(page, "l")
    assert page.locator("[data-listwise]").count() == 0
    item = int(page.get_attribute("#review-pane [data-item]", "data-item"))
    assert item in second[1:]
    holds = ReviewLock.objects.filter(user__username="ann1")
    assert list(holds.values_list("item_id", flat=True)) == [item]
    assert page.errors == [] and page.dialogs == []
    assert page.evaluate("window.__pwned") is None
