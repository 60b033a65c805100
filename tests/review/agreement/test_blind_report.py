"""The agreement report on blind campaigns reviewed through the real queue: each annotator's
rating is their blind answer, however they undid and answered again after the reveal; the
revisions are counted per annotator (how many, how many toward the LLM) on the page, in the
CSV and in the API's JSON. An open campaign keeps "the latest active answer"."""

import csv
import io

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from curation.models import Verdict
from review.agreement import selectors as reads
from review.agreement.report import VERDICTS
from review.agreement.selectors import agreement_report_staleness
from review.agreement.services import agreement_report_create, agreement_report_run
from review.models import AgreementReport, ReviewItem
from review.services.queue import judgment_submit, review_item_next_for_user, review_submission_undo

pytestmark = pytest.mark.django_db

R, N = Verdict.RELEVANT, Verdict.NOT_RELEVANT
_tokens = iter(range(10**6))

# What alice does on the items she is served, in order: her blind answer, then (after undo)
# her revision; None: no undo. Every item's LLM verdict (stage 1 and 2) is "relevant".
ALICE = [
    (N, R),  # toward the LLM
    (R, N),  # away from it
    (N, N),  # answered again the same way: revised, unchanged
    (R, None),
    (N, None),
]
# Last: answered blind, undone, never answered again (the blind answer still counts).
ALICE_WITHDRAWN = R


def answer(campaign, user, item, verdict):
    judgment_submit(
        campaign=campaign, item_id=item.pk, user=user, verdict=verdict,
        client_token=f"report-{next(_tokens):06d}",
    )  # fmt: skip


def review(campaign, alice, bob) -> dict[int, str]:
    """Alice follows ALICE, Bob answers every item "not relevant"; returns alice's blind
    answer per candidate."""
    blind = {}
    for first, second in ALICE:
        item = review_item_next_for_user(campaign=campaign, user=alice)
        answer(campaign, alice, item, first)
        blind[item.candidate_id] = first
        if second is not None:
            review_submission_undo(campaign=campaign, user=alice)
            answer(campaign, alice, item, second)
    item = review_item_next_for_user(campaign=campaign, user=alice)
    answer(campaign, alice, item, ALICE_WITHDRAWN)
    blind[item.candidate_id] = ALICE_WITHDRAWN
    review_submission_undo(campaign=campaign, user=alice)
    while (item := review_item_next_for_user(campaign=campaign, user=bob)) is not None:
        answer(campaign, bob, item, N)
    return blind


@pytest.fixture
def people(make_annotator):
    return make_annotator("alice"), make_annotator("bob")


def computed(campaign, user=None) -> AgreementReport:
    report, _ = agreement_report_create(campaign=campaign, user=user)
    agreement_report_run(report_id=report.pk)
    report.refresh_from_db()
    return report


def human_codes(campaign) -> dict[tuple[str, int], str]:
    """(annotator, candidate) → the verdict the report reads for them."""
    ratings = reads.agreement_ratings_fetch(
        scope=reads.AgreementScope(campaign_id=campaign.pk),
        judgment_cutoff=reads.judgment_cutoff_now(),
    )
    candidates = sorted(ReviewItem.objects.filter(campaign=campaign).values_list(
        "candidate_id", flat=True))  # fmt: skip
    out = {}
    for item, rater, code in zip(ratings.item, ratings.rater, ratings.code, strict=True):
        if ratings.raters[rater].kind == "human":
            out[(ratings.raters[rater].key, candidates[item])] = VERDICTS[code]
    return out


def test_blind_answers_are_the_ratings_and_revisions_are_counted(make_campaign, people):
    alice, bob = people
    campaign = make_campaign([alice, bob], overlap=2, strata={"stage2_flagged": 6}, blind=True)
    blind = review(campaign, alice, bob)

    codes = human_codes(campaign)
    assert {c: v for (rater, c), v in codes.items() if rater == "user:alice"} == blind
    assert {v for (rater, _), v in codes.items() if rater == "user:bob"} == {N}

    result = computed(campaign).result
    by_rater = {row["rater"]: row for row in result["revisions"]}
    assert by_rater["user:alice"] == {
        "rater": "user:alice", "blind_answers": 6, "revised": 3, "changed": 2,
        "toward_llm": 1, "away_from_llm": 1,
    }  # fmt: skip
    assert (by_rater["user:bob"]["blind_answers"], by_rater["user:bob"]["revised"]) == (6, 0)
    # Alice and Bob compared on all six blind answers, the withdrawn one included: they agree
    # where alice said "not relevant" blind (items 1, 3 and 5 of hers).
    pair = result["human_pairs"][0]
    assert pair["n"] == 6
    assert pair["percent_agreement"] == pytest.approx(3 / 6)


def test_an_undo_in_a_blind_campaign_leaves_the_report_up_to_date(make_campaign, people):
    alice, bob = people
    campaign = make_campaign([alice, bob], overlap=2, strata={"stage2_flagged": 6}, blind=True)
    review(campaign, alice, bob)
    report = computed(campaign)
    # Bob takes an answer back: his blind answer still counts, nothing changed ...
    review_submission_undo(campaign=campaign, user=bob)
    assert not agreement_report_staleness(report=report).stale
    # ... his new answer is a revision the report has not counted yet.
    item = review_item_next_for_user(campaign=campaign, user=bob)
    answer(campaign, bob, item, R)
    assert agreement_report_staleness(report=report).new_judgments
    again = computed(campaign)
    bob_row = next(r for r in again.result["revisions"] if r["rater"] == "user:bob")
    assert (bob_row["revised"], bob_row["toward_llm"]) == (1, 1)


def test_open_campaigns_count_the_latest_answer_and_no_revision(make_campaign, people):
    alice, bob = people
    campaign = make_campaign([alice, bob], overlap=2, strata={"stage2_flagged": 6}, blind=False)
    review(campaign, alice, bob)
    codes = human_codes(campaign)
    alice_codes = sorted(v for (rater, _), v in codes.items() if rater == "user:alice")
    # The five answers in force (the re-answers replaced the first ones); the withdrawn one is
    # gone.
    assert alice_codes == sorted([R, N, N, R, N])
    result = computed(campaign).result
    assert all(row["blind_answers"] == row["revised"] == 0 for row in result["revisions"])


def test_page_csv_and_api_show_the_revisions(make_campaign, people, curator, client):
    alice, bob = people
    campaign = make_campaign([alice, bob], overlap=2, strata={"stage2_flagged": 6}, blind=True)
    review(campaign, alice, bob)
    report = computed(campaign, curator)
    client.force_login(curator)

    html = client.get(reverse("review:agreement_detail", args=[report.pk])).content.decode()
    row = html[html.index('id="revisions"') :]
    row = row[row.index('data-rater="user:alice"') :]
    for stat, value in (("blind_answers", 6), ("revised", 3), ("changed", 2),
                        ("toward_llm", 1), ("away_from_llm", 1)):  # fmt: skip
        assert f'data-stat="{stat}">{value}<' in row

    response = client.get(reverse("review:agreement_csv", args=[report.pk]))
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    revised = {r["rater_a"]: r for r in rows if r["section"] == "post_reveal_revisions"}
    assert set(revised) == {"user:alice", "user:bob"}
    assert (revised["user:alice"]["revised"], revised["user:alice"]["toward_llm"]) == ("3", "1")

    api = APIClient()
    api.force_authenticate(curator)
    body = api.get(reverse("api:agreement-detail", args=[report.pk])).json()
    alice_row = next(r for r in body["result"]["revisions"] if r["rater"] == "user:alice")
    assert (alice_row["changed"], alice_row["away_from_llm"]) == (2, 1)


def test_a_report_stored_before_revisions_and_intervals_still_renders(
    make_campaign, people, curator, client
):
    alice, bob = people
    campaign = make_campaign([alice, bob], overlap=2, strata={"stage2_flagged": 6}, blind=True)
    review(campaign, alice, bob)
    report = computed(campaign, curator)
    old = report.result
    old.pop("revisions")
    for machine in old["machines"]:
        for name in ("precision_ci_low", "precision_ci_high", "recall_ci_low", "recall_ci_high"):
            machine.pop(name)
    AgreementReport.objects.filter(pk=report.pk).update(result=old)
    client.force_login(curator)
    page = client.get(reverse("review:agreement_detail", args=[report.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="machines"' in html and 'id="revisions"' not in html
    assert 'data-stat="precision_ci">—<' in html
    response = client.get(reverse("review:agreement_csv", args=[report.pk]))
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    machine = next(r for r in rows if r["section"] == "machine_vs_majority")
    assert machine["precision_ci_low"] == "" and machine["n"] == "3"


def _read(campaign, **kwargs):
    ratings = reads.agreement_ratings_fetch(
        scope=reads.AgreementScope(campaign_id=campaign.pk),
        judgment_cutoff=reads.judgment_cutoff_now(),
        **kwargs,
    )
    rows = sorted(zip(ratings.item.tolist(), ratings.rater.tolist(), ratings.code.tolist(),
                      ratings.blind.tolist(), strict=True))  # fmt: skip
    revised = ratings.revisions
    columns = (revised.item, revised.rater, revised.blind_code, revised.code)
    revisions = sorted(zip(*(column.tolist() for column in columns), strict=True))
    return rows, revisions


def test_every_way_of_reading_gives_the_same_blind_answers_and_revisions(
    make_campaign, people, monkeypatch
):
    alice, bob = people
    campaign = make_campaign([alice, bob], overlap=2, strata={"stage2_flagged": 6}, blind=True)
    review(campaign, alice, bob)
    whole = _read(campaign)
    batched = _read(campaign, batch_size=2)
    monkeypatch.setattr(reads, "PACKED_VENDORS", ())
    plain = _read(campaign, batch_size=4)
    assert whole == batched == plain
    rows, revisions = whole
    assert len(rows) == 12 + 12 and sum(blind for *_, blind in rows) == 12  # + 2 LLM stages
    assert len(revisions) == 3
