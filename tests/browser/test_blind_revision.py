"""Issue 9 in a real browser: in a blind campaign an annotator answers, sees the LLM's verdict
in the reveal, presses U and answers the other way. The page records the new answer as a
revision after seeing the LLM, and the agreement report a curator computes rates the item
with the blind answer and counts the revision as a post-reveal change toward the LLM."""

import pytest

from curation.models import CandidateRole, Judgment, RaterKind, Verdict
from review.agreement.services import agreement_report_run
from review.models import AgreementReport, ReviewItem, ReviewSubmission
from review.services.campaigns import review_campaign_create
from tests.browser.conftest import counter, current_item, log_in, press_and_wait
from tests.factories import CandidateFactory, DatasetFactory, PassageFactory, QueryFactory
from tests.support.users import user_with_role

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

STAGE2 = "llm:gpt-4o:stage2"


@pytest.fixture
def campaign(django_user_model):
    """Three negatives that both LLM stages flag as false negatives; a blind campaign over
    them for ann1 (overlap 1), created by the curator cora."""
    dataset = DatasetFactory(name="blind-study")
    for n in range(3):
        query = QueryFactory(dataset=dataset, text=f"boiling point of water at altitude {n}")
        CandidateFactory(
            query=query,
            role=CandidateRole.POSITIVE,
            passage=PassageFactory(corpus=dataset.corpus, text=f"Water boils lower up high {n}."),
        )
        negative = CandidateFactory(
            query=query,
            role=CandidateRole.NEGATIVE,
            rank=1,
            passage=PassageFactory(corpus=dataset.corpus, text=f"At 3000 m it boils at 90 C {n}."),
        )
        for rater, model in (("llm:gpt-4o-mini:stage1", "gpt-4o-mini"), (STAGE2, "gpt-4o")):
            Judgment.objects.create(
                candidate=negative, rater=rater, rater_kind=RaterKind.MACHINE,
                verdict=Verdict.RELEVANT, tag="better", model_name=model,
                rationale=f"It answers the question as the positive does ({negative.pk}).",
            )  # fmt: skip
    ann1 = user_with_role(django_user_model, "ann1", "annotator")
    curator = user_with_role(django_user_model, "cora", "curator")
    return review_campaign_create(
        name="Blind study", dataset=dataset, strata={"stage2_flagged": 3}, annotators=[ann1],
        overlap=1, blind=True, seed=1, created_by=curator,
    )  # fmt: skip


def test_blind_answer_then_undo_counts_the_blind_answer_and_shows_the_revision(
    live_server, new_page, campaign
):
    page = new_page()
    log_in(page, live_server, "ann1", "pw-ann1")
    page.goto(f"{live_server.url}/review/{campaign.pk}/work/")
    page.wait_for_selector("#review-pane [data-item]")
    # As on a loaded machine (CI): htmx attaches its handlers to a swapped-in pane only when
    # it settles. Keys pressed before that must still post through htmx, not as a plain form.
    page.evaluate("htmx.config.defaultSettleDelay = 1500")
    item = current_item(page)
    assert "gpt-4o" not in page.content()  # blind: no verdict before the answer

    # Blind answer: not relevant. The reveal shows the LLM said relevant.
    press_and_wait(page, "2")
    assert "Stage 2" in page.inner_text(".last-answer .reveal")
    assert page.locator(".last-answer [data-revised-from]").count() == 0

    # U: the item comes back, and the page says the blind answer stays on record.
    press_and_wait(page, "u")
    assert current_item(page) == item
    assert "blind answer stays on record" in page.inner_text("#review-pane")
    notice = page.locator(".revision-notice")
    assert notice.get_attribute("data-blind-verdict") == "not_relevant"
    assert "revision after seeing the LLM" in notice.inner_text()

    # Answered the other way: the LLM's. Recorded as a revision, visibly.
    press_and_wait(page, "1")
    revised = page.locator(".last-answer [data-revised-from]")
    assert revised.get_attribute("data-revised-from") == "not_relevant"
    assert "Revised after seeing the LLM: was not relevant" in revised.inner_text()
    # One more item, answered once: relevant.
    other = current_item(page)
    press_and_wait(page, "1")
    assert counter(page, "mine") == "2"
    assert page.errors == [] and page.dialogs == []

    blind = ReviewSubmission.objects.get(item_id=item, blind=True)
    revision = ReviewSubmission.objects.get(item_id=item, undone_at__isnull=True)
    assert (blind.judgment.verdict, revision.judgment.verdict) == ("not_relevant", "relevant")
    assert revision.revises_id == blind.pk
    assert ReviewItem.objects.get(pk=other).done

    # The curator computes the campaign's agreement report.
    cora = new_page()
    log_in(cora, live_server, "cora", "pw-cora")
    cora.goto(f"{live_server.url}/review/agreement/")
    cora.select_option("#id_campaign", str(campaign.pk))
    cora.click("text=Compute report")
    cora.wait_for_selector("#job-status")
    agreement_report_run(report_id=AgreementReport.objects.latest("id").pk)  # the worker
    cora.wait_for_selector("#machines")

    # ann1 is the human majority of each item. Counted with the blind answer, stage 2's
    # "relevant" on the revised item is a false positive (TP 1 on the other item); had the
    # revision replaced it, stage 2 would have agreed on both (2 / 0 / 0).
    row = f'#machines tr[data-rater="{STAGE2}"]'
    assert cora.inner_text(f'{row} [data-stat="n"]').strip() == "2"
    assert cora.inner_text(f'{row} [data-stat="counts"]').strip() == "1 / 1 / 0"
    # The revision, as a post-reveal change toward the LLM.
    revisions = '#revisions tr[data-rater="user:ann1"]'
    for stat, value in (("blind_answers", "2"), ("revised", "1"), ("changed", "1"),
                        ("toward_llm", "1"), ("away_from_llm", "0")):  # fmt: skip
        assert cora.inner_text(f'{revisions} [data-stat="{stat}"]').strip() == value, stat
    assert cora.errors == [] and cora.dialogs == []
