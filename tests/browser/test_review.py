"""The review flow in a real browser: an annotator judges with the keyboard only, undoes an
answer and sees the LLM verdicts revealed after answering; a second annotator completes the
items (overlap 2); a hostile passage renders as text; a curator sees the campaign and the
adjudication queue. Saves the screenshots the README shows (docs/screenshots/)."""

import re

import pytest

from curation.demo import DEMO_FALSE_NEGATIVES, demo_dataset_load
from curation.models import (
    Candidate,
    CandidateRole,
    CascadeItem,
    CascadeRun,
    Decision,
    Judgment,
    RaterKind,
    Verdict,
)
from review.models import ReviewItem, ReviewSubmission
from review.services.campaigns import review_campaign_create
from tests.browser.conftest import counter, current_item, log_in, press_and_wait, screenshot
from tests.factories import CandidateFactory, PassageFactory, QueryFactory
from tests.support.users import user_with_role

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

GUIDELINES = (
    "Relevant: the candidate answers the query as well as the labelled positive.\n"
    "Partly relevant: it answers part of it. <b>Unsure</b>: say why in a note."
)
HOSTILE_TEXT = (
    "Steeping tips <script>window.__pwned = 1</script> and "
    '<img src=x onerror="window.__pwned = 2"> four minutes for a french press.'
)


def rationale(candidate) -> str:
    return (
        f"The passage answers the question as well as the positive does (candidate {candidate.pk})."
    )


@pytest.fixture
def campaign(django_user_model):
    """The demo dataset with RLHN-style machine judgments on its twelve deliberate false
    negatives (stage 1 and stage 2 flag them), plus one hostile passage flagged by stage 2.
    A blind campaign over those 13 items, overlap 2, for ann1 and ann2."""
    dataset = demo_dataset_load().dataset
    flagged = []
    for query_text, passage_text in sorted(DEMO_FALSE_NEGATIVES):
        candidate = Candidate.objects.get(
            query__dataset=dataset, query__text=query_text, passage__text=passage_text
        )
        flagged.append(candidate)
    query = QueryFactory(dataset=dataset, text="how long to steep french press coffee")
    CandidateFactory(
        query=query,
        role=CandidateRole.POSITIVE,
        passage=PassageFactory(
            corpus=dataset.corpus, text="Let french press coffee steep for four minutes."
        ),
    )
    hostile = CandidateFactory(
        query=query,
        role=CandidateRole.NEGATIVE,
        rank=1,
        passage=PassageFactory(corpus=dataset.corpus, text=HOSTILE_TEXT),
    )
    flagged.append(hostile)
    # An older cascade run said "not relevant" (the reveal folds it away); the latest run,
    # the campaign's, numbered each query's negatives Doc (1..n) and flagged these.
    older, run = (CascadeRun.objects.create(dataset=dataset) for _ in range(2))
    for candidate in flagged:
        numbered = list(
            Candidate.objects.filter(query_id=candidate.query_id, role=CandidateRole.NEGATIVE)
            .order_by("rank", "id")
            .values_list("id", flat=True)
        )
        doc = numbered.index(candidate.pk) + 1
        # A list-wise paragraph: this candidate's sentence and another document's.
        said = f"Doc ({doc}): {rationale(candidate)} Doc ({doc + 1}) is off topic."
        for stage, model in ((1, "gpt-4o-mini"), (2, "gpt-4o")):
            CascadeItem.objects.get_or_create(
                run=run, stage=stage, query_id=candidate.query_id,
                defaults={"candidate_ids": numbered},
            )  # fmt: skip
            Judgment.objects.create(
                candidate=candidate, rater=f"llm:{model}:stage{stage}",
                rater_kind=RaterKind.MACHINE, verdict=Verdict.RELEVANT, tag="better",
                rationale=said, model_name=model, source_run=f"cascade:{run.pk}",
            )  # fmt: skip
        Judgment.objects.create(
            candidate=candidate, rater="llm:gpt-4o-mini:stage1", rater_kind=RaterKind.MACHINE,
            verdict=Verdict.NOT_RELEVANT, rationale="An older prompt's answer.",
            model_name="gpt-4o-mini", source_run=f"cascade:{older.pk}",
        )  # fmt: skip
    ann1 = user_with_role(django_user_model, "ann1", "annotator")
    ann2 = user_with_role(django_user_model, "ann2", "annotator")
    curator = user_with_role(django_user_model, "cora", "curator")
    campaign = review_campaign_create(
        name="Demo false negatives",
        dataset=dataset,
        strata={"stage2_flagged": 50},
        annotators=[ann1, ann2],
        overlap=2,
        blind=True,
        seed=4,
        guidelines=GUIDELINES,
        created_by=curator,
    )
    # Serve the hostile passage first, so the test looks at it for sure.
    ReviewItem.objects.filter(campaign=campaign, candidate=hostile).update(position=-1)
    campaign.hostile = hostile
    return campaign


def test_two_annotators_review_with_the_keyboard(live_server, new_page, campaign):
    assert campaign.item_count == 13
    page = new_page()
    log_in(page, live_server, "ann1", "pw-ann1")
    # The annotator's home lists the campaign.
    assert "Demo false negatives" in page.inner_text("main")
    screenshot(page, "annotator_home")
    page.click("text=Demo false negatives")
    page.wait_for_selector("#review-pane [data-item]")

    # The hostile passage is on screen: text, not markup.
    hostile_item = ReviewItem.objects.get(campaign=campaign, candidate=campaign.hostile)
    assert current_item(page) == hostile_item.pk
    shown = page.inner_text("#candidate-passage")
    assert "<script>window.__pwned = 1</script>" in shown
    assert '<img src=x onerror="window.__pwned = 2">' in shown
    assert page.locator("#candidate-passage img, #candidate-passage script").count() == 0
    assert page.locator("#candidate-passage mark").all_inner_texts() == ["french", "press"]
    assert page.evaluate("window.__pwned") is None and page.dialogs == []

    # Blind: nothing any judge said about the item on screen is in the page.
    assert rationale(campaign.hostile) not in page.content()
    assert "llm:gpt-4o" not in page.content()

    # The campaign's guidelines: open before the first answer, escaped; G folds them.
    assert page.is_visible("#campaign-guidelines[open] [data-guidelines]")
    assert "<b>Unsure</b>: say why" in page.inner_text("#campaign-guidelines")
    page.keyboard.press("g")
    page.wait_for_selector("#campaign-guidelines:not([open])")

    # Help overlay (with the guidelines in it).
    page.keyboard.press("?")
    page.wait_for_selector("#review-help[open]")
    assert "say why in a note" in page.inner_text("#review-help")
    screenshot(page, "review_help")
    page.keyboard.press("Escape")
    page.wait_for_selector("#review-help:not([open])", state="attached")

    # Ten answers, keyboard only; a note on the first.
    answered = []
    for n, key in enumerate("1212302120"):
        item = current_item(page)
        candidate = ReviewItem.objects.get(pk=item).candidate
        assert rationale(candidate) not in page.content()
        if n == 0:
            page.keyboard.press("n")
            page.keyboard.type("markup in the passage")
            page.keyboard.press("Escape")
        press_and_wait(page, key)
        answered.append(item)
        # The reveal: the answered item's LLM verdicts and rationale, now.
        reveal = page.inner_text(".last-answer .reveal")
        assert "Stage 2" in reveal and "gpt-4o" in reveal and rationale(candidate) in reveal
        assert f"Cascade run #{campaign.cascade_run_id}" in reveal
        assert re.search(r"this candidate was Doc \(\d+\) of \d+", reveal)
        # The other document's sentence and the older run are folded (not visible).
        assert "off topic" not in reveal and "older prompt" not in reveal
        assert page.locator(".last-answer .other-verdicts").count() == 1
        if n == 1:
            screenshot(page, "review")
    assert len(set(answered)) == 10
    # The counters: my answers and what I can still answer, not the campaign's finished
    # items (none yet: overlap 2). No pace yet: a robot's seconds of work are too short.
    assert counter(page, "mine") == "10"
    assert counter(page, "remaining") == "3"
    assert counter(page, "campaign") == "0 / 13"
    assert counter(page, "pace") == "—"
    assert "10 answers this session" in page.inner_text('[data-counter="session"]')
    assert page.get_attribute('[data-progress="mine"]', "value") == "77"
    assert ReviewSubmission.objects.filter(user__username="ann1").count() == 10
    first = Judgment.objects.get(rater="user:ann1", candidate=campaign.hostile)
    assert (first.verdict, first.note) == ("relevant", "markup in the passage")
    screenshot(page, "review_reveal")

    # Undo the last answer: its item comes back, the count goes down, history keeps it.
    press_and_wait(page, "u")
    assert current_item(page) == answered[-1]
    assert counter(page, "mine") == "9"
    assert counter(page, "remaining") == "4"
    assert "taken back" in page.inner_text("#review-pane")
    undone = ReviewSubmission.objects.get(user__username="ann1", item_id=answered[-1])
    assert undone.undone_at is not None
    press_and_wait(page, "2")
    assert counter(page, "mine") == "10"
    assert Judgment.objects.filter(rater="user:ann1").count() == 11  # 10 + the undone one

    # History beyond one undo: H opens my recent answers; undo the third one answered.
    page.keyboard.press("h")
    page.wait_for_selector(".history-body [data-history-item]")
    listed = [int(i) for i in page.locator("[data-history-item]").evaluate_all(
        "rows => rows.map(r => r.dataset.historyItem)"
    )]  # fmt: skip
    assert listed[0] == answered[-1] and set(listed) == set(answered)
    assert "gpt-4o" not in page.inner_text(".history-body")  # my answers only
    page.locator(".history").evaluate("el => el.scrollIntoView({block: 'start'})")
    screenshot(page, "review_history")
    page.evaluate("document.getElementById('review-pane').dataset.old = '1'")
    page.click(f'[data-history-item="{answered[2]}"] button[data-undo]')
    page.wait_for_function("!document.getElementById('review-pane').dataset.old")
    assert current_item(page) == answered[2]
    assert counter(page, "mine") == "9"
    press_and_wait(page, "1")  # the same answer again: a revision that changes nothing
    assert counter(page, "mine") == "10"
    assert Judgment.objects.filter(rater="user:ann1").count() == 12
    assert page.errors == [] and page.dialogs == []

    # The second annotator: unanswered items first, then the ones ann1 answered.
    other = new_page()
    log_in(other, live_server, "ann2", "pw-ann2")
    other.click("text=Demo false negatives")
    other.wait_for_selector("#review-pane [data-item]")
    served = []
    for key in "2222222":
        served.append(current_item(other))
        press_and_wait(other, key)
    assert len(set(served)) == 7
    unanswered = set(
        ReviewItem.objects.filter(campaign=campaign)
        .exclude(pk__in=answered)
        .values_list("pk", flat=True)
    )
    assert set(served[:3]) == unanswered  # breadth-first
    assert set(served[3:]) <= set(answered)
    campaign.refresh_from_db()
    assert campaign.done_count == 4
    assert counter(other, "campaign") == "4 / 13"
    assert counter(other, "mine") == "7"
    # ann2 answered 7 of the 13 items; the other 6 are open (ann1's answer only): 6 remain.
    assert counter(other, "remaining") == "6"
    for item in ReviewItem.objects.filter(campaign=campaign):
        active = ReviewSubmission.objects.filter(item=item, undone_at__isnull=True).count()
        assert active == item.judgment_count <= 2
    assert other.errors == [] and other.dialogs == []

    # The curator's side: the campaign and the adjudication queue.
    cora = new_page()
    log_in(cora, live_server, "cora", "pw-cora")
    cora.goto(f"{live_server.url}/review/")
    screenshot(cora, "campaign_list")
    cora.click("text=New campaign")
    # Choosing the dataset shows what each stratum holds (this run flagged 13 at stage 2).
    cora.select_option("#id_dataset", label=campaign.dataset.name)
    cora.wait_for_selector('[data-available="stage2_flagged"]')
    assert cora.inner_text('[data-available="stage2_flagged"]') == "13"
    assert f"cascade run #{campaign.cascade_run_id}" in cora.inner_text("#strata-available")
    screenshot(cora, "campaign_new")
    cora.goto(f"{live_server.url}/review/{campaign.pk}/")
    assert "Demo false negatives" in cora.inner_text("h1")
    screenshot(cora, "campaign")
    cora.click("text=Adjudication queue")
    cora.wait_for_selector("h1")
    screenshot(cora, "adjudication")
    # ann1 said 1 (relevant) on items ann2 called not relevant: they wait for a curator.
    disagreements = cora.locator(".adjudication-item").count()
    agreeing = int(cora.inner_text("[data-consensus-count]"))
    assert disagreements + agreeing == 4
    assert cora.locator(".adjudication-item script, .adjudication-item img").count() == 0

    # Adjudication from the keyboard: J / K move, N writes a note (Enter does not decide),
    # 2 decides the outlined item.
    assert disagreements >= 2, "the fixture's answers leave at least two splits"
    items = cora.locator("[data-adjudication-item]")
    first_id = items.nth(0).get_attribute("id")
    assert "current" in items.nth(0).get_attribute("class")
    cora.keyboard.press("j")
    assert "current" in items.nth(1).get_attribute("class")
    cora.keyboard.press("k")
    assert "current" in items.nth(0).get_attribute("class")
    cora.keyboard.press("n")
    cora.keyboard.type("adjudicated by keyboard")
    cora.keyboard.press("Enter")
    assert cora.locator("[data-adjudication-item]").count() == disagreements  # not decided
    item_pk = int(first_id.removeprefix("adjudicate-"))
    with cora.expect_navigation():
        cora.keyboard.press("2")
    assert cora.locator(f"#{first_id}").count() == 0
    assert cora.locator("[data-adjudication-item]").count() == disagreements - 1
    decision = Decision.objects.get(candidate=ReviewItem.objects.get(pk=item_pk).candidate)
    assert decision.label == "not_relevant" and decision.note.endswith("adjudicated by keyboard")
    assert cora.errors == [] and cora.dialogs == []
