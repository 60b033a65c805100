"""Post-reveal revisions counted per annotator (review/agreement/revisions.py), on plain
arrays: revised, changed, toward and away from the LLM's flag, and how the report carries
them."""

import numpy as np

from review.agreement import report as rep
from review.agreement.report import HUMAN, MACHINE, Rater, Ratings, agreement_report
from review.agreement.revisions import Revisions, revision_counts
from review.agreement.stats import MISSING as M

R, N, P, U = rep.RELEVANT, rep.NOT_RELEVANT, rep.PARTLY_RELEVANT, rep.UNSURE
ALICE, BOB = Rater("user:alice", "alice", HUMAN), Rater("user:bob", "bob", HUMAN)
STAGE2 = Rater("llm:big:stage2", "stage 2", MACHINE, 2)


def strict(codes):
    return rep.flag_codes(codes, partly_relevant_is_false_negative=False)


def test_counts_per_annotator_toward_and_away_from_the_llm():
    # The LLM flags items 0-3 as false negatives, 4-5 not; item 6 it never judged.
    llm = np.array([1, 1, 1, 1, 0, 0, M])
    revisions = Revisions(
        item=np.array([0, 1, 2, 3, 4, 6, 5]),
        rater=np.array([0, 0, 0, 0, 0, 0, 1]),
        blind_code=np.array([N, R, U, N, R, N, N]),
        code=np.array([R, N, R, N, N, R, P]),
    )
    counts = revision_counts(
        revisions,
        rater_keys=["user:alice", "user:bob"],
        blind_raters=np.array([0] * 9 + [1] * 4),
        llm_flag=llm,
        flag=strict,
    )
    alice, bob = counts
    assert (alice.rater, alice.blind_answers, alice.revised, alice.changed) == (
        "user:alice", 9, 6, 5,
    )  # fmt: skip
    # Toward: items 0 (no → yes), 2 (unsure → yes) and 4 (yes → no; there the LLM says no).
    # Away: item 1 (yes → no; the LLM says yes). Item 3 did not change; item 6 has no LLM
    # verdict, so its change counts in neither.
    assert (alice.toward_llm, alice.away_from_llm) == (3, 1)
    # Bob: not relevant → partly relevant is a change, but both read "not a false negative".
    assert (bob.blind_answers, bob.revised, bob.changed, bob.toward_llm, bob.away_from_llm) == (
        4, 1, 1, 0, 0,
    )  # fmt: skip


def test_nothing_revised():
    counts = revision_counts(
        None, rater_keys=["user:alice"], blind_raters=None, llm_flag=np.array([1]), flag=strict
    )
    assert [(c.blind_answers, c.revised, c.toward_llm) for c in counts] == [(0, 0, 0)]


def test_the_report_counts_blind_answers_and_revisions_of_its_annotators_only():
    # Alice answered both items blind (not relevant) and revised item 0 after the reveal to
    # the LLM's "relevant"; Bob answered in an open campaign (nothing blind).
    ratings = Ratings(
        n_items=2,
        raters=(ALICE, BOB, STAGE2),
        item=np.array([0, 1, 0, 1, 0, 1]),
        rater=np.array([0, 0, 1, 1, 2, 2]),
        code=np.array([N, N, R, N, R, R]),
        order=np.arange(6),
        blind=np.array([True, True, False, False, False, False]),
        revisions=Revisions(
            item=np.array([0]), rater=np.array([0]), blind_code=np.array([N]), code=np.array([R])
        ),
    )
    result = agreement_report(ratings).to_json()
    assert result["revisions"] == [
        {"rater": "user:alice", "blind_answers": 2, "revised": 1, "changed": 1,
         "toward_llm": 1, "away_from_llm": 0},
        {"rater": "user:bob", "blind_answers": 0, "revised": 0, "changed": 0,
         "toward_llm": 0, "away_from_llm": 0},
    ]  # fmt: skip
    # The ratings themselves are what the report compares: Alice's blind "not relevant".
    pair = next(p for p in result["human_pairs"])
    assert pair["confusion"][N][R] == 1 and pair["n"] == 2
