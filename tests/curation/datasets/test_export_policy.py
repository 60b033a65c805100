"""The RLHN policies on one query, as plain data (no database)."""

import pytest

from curation.datasets.export import Candidate, Outcome, PolicyCounts, QueryData, policy_apply


def pos(doc_id, order=0, **kw):
    return Candidate(doc_id=doc_id, title="", text=f"text {doc_id}", order=order, **kw)


def neg(doc_id, rank, fn=False, **kw):
    return Candidate(
        doc_id=doc_id, title="", text=f"text {doc_id}", rank=rank, false_negative=fn, **kw
    )


def ids(candidates):
    return [c.doc_id for c in candidates]


QUERY = QueryData(
    query_id="q1",
    text="what is a false negative",
    positives=(pos("p2", order=2), pos("p1", order=1)),
    negatives=(neg("n3", 3), neg("n1", 1), neg("n2", 2, fn=True), neg("n4", None)),
)


def test_default_keeps_everything_in_output_order():
    result = policy_apply(QUERY, policy="default", max_false_negatives=7)
    assert result.outcome is Outcome.KEPT
    # positives in import order, negatives by rank, unranked last
    assert ids(result.query.positives) == ["p1", "p2"]
    assert ids(result.query.negatives) == ["n1", "n2", "n3", "n4"]
    assert result.false_negatives == 1
    assert result.false_negatives_removed == result.false_negatives_relabelled == 0


def test_remove_drops_the_query():
    result = policy_apply(QUERY, policy="remove", max_false_negatives=7)
    assert result.outcome is Outcome.DROPPED_REMOVE
    assert result.query is None


def test_remove_hn_drops_only_the_false_negative():
    result = policy_apply(QUERY, policy="remove_hn", max_false_negatives=7)
    assert result.outcome is Outcome.KEPT
    assert ids(result.query.positives) == ["p1", "p2"]
    assert ids(result.query.negatives) == ["n1", "n3", "n4"]
    assert result.false_negatives_removed == 1


def test_relabel_moves_the_false_negative_after_the_positives():
    result = policy_apply(QUERY, policy="relabel", max_false_negatives=7)
    assert ids(result.query.positives) == ["p1", "p2", "n2"]
    assert ids(result.query.negatives) == ["n1", "n3", "n4"]
    assert result.false_negatives_relabelled == 1


def test_negatives_with_equal_rank_sort_by_doc_id():
    query = QueryData(
        "q", "t", (pos("p"),), (neg("b", 1), neg("a", 1), neg("c", None), neg("0", None))
    )
    result = policy_apply(query, policy="default", max_false_negatives=7)
    assert ids(result.query.negatives) == ["a", "b", "0", "c"]


def _with_fns(count):
    return QueryData(
        "q",
        "t",
        (pos("p"),),
        tuple(neg(f"n{i}", i, fn=True) for i in range(1, count + 1)) + (neg("x", 99),),
    )


@pytest.mark.parametrize("policy", ["remove", "remove_hn", "relabel"])
def test_more_than_k_false_negatives_is_ambiguous(policy):
    assert (
        policy_apply(_with_fns(8), policy=policy, max_false_negatives=7).outcome
        is Outcome.DROPPED_AMBIGUOUS
    )


def test_exactly_k_false_negatives_is_kept():
    result = policy_apply(_with_fns(7), policy="relabel", max_false_negatives=7)
    assert result.outcome is Outcome.KEPT
    assert len(result.query.positives) == 8
    assert ids(result.query.negatives) == ["x"]
    assert (
        policy_apply(_with_fns(7), policy="remove", max_false_negatives=7).outcome
        is Outcome.DROPPED_REMOVE
    )
    # a smaller k changes the verdict
    assert (
        policy_apply(_with_fns(7), policy="relabel", max_false_negatives=6).outcome
        is Outcome.DROPPED_AMBIGUOUS
    )


def test_default_ignores_k():
    result = policy_apply(_with_fns(20), policy="default", max_false_negatives=7)
    assert result.outcome is Outcome.KEPT
    assert len(result.query.negatives) == 21


def test_query_without_positive_is_dropped_unless_relabel_gives_it_one():
    query = QueryData("q", "t", (), (neg("n1", 1, fn=True), neg("n2", 2)))
    assert (
        policy_apply(query, policy="default", max_false_negatives=7).outcome
        is Outcome.DROPPED_NO_POSITIVE
    )
    assert (
        policy_apply(query, policy="remove_hn", max_false_negatives=7).outcome
        is Outcome.DROPPED_NO_POSITIVE
    )
    relabelled = policy_apply(query, policy="relabel", max_false_negatives=7)
    assert relabelled.outcome is Outcome.KEPT
    assert ids(relabelled.query.positives) == ["n1"]


def test_counts_add_up():
    counts = PolicyCounts()
    for query in (QUERY, _with_fns(8), QueryData("q", "t", (), (neg("n", 1),))):
        result = policy_apply(query, policy="relabel", max_false_negatives=7)
        counts.add(result, rows_written=1 if result.query else 0)
    assert counts.as_dict() == {
        "queries_in": 3,
        "queries_out": 1,
        "dropped_ambiguous": 1,
        "dropped_remove": 0,
        "dropped_no_positive": 1,
        "dropped_no_negative": 0,
        "positives": 3,
        "negatives": 3,
        "false_negatives_confirmed": 9,
        "false_negatives_removed": 0,
        "false_negatives_relabelled": 1,
        "positives_removed": 0,
        "rows": 1,
    }


def test_unknown_policy_is_refused():
    with pytest.raises(ValueError):
        policy_apply(QUERY, policy="keep_some", max_false_negatives=7)


@pytest.mark.parametrize("policy", ["remove", "remove_hn", "relabel"])
def test_a_positive_decided_not_relevant_is_left_out(policy):
    query = QueryData(
        "q", "t", (pos("p1", order=1, not_relevant=True), pos("p2", order=2)), (neg("n1", 1),)
    )
    result = policy_apply(query, policy=policy, max_false_negatives=7)
    assert ids(result.query.positives) == ["p2"] and result.positives_removed == 1
    # Its only positive rejected (a rejected synthetic triplet): the query goes.
    alone = QueryData("q", "t", (pos("p1", not_relevant=True),), (neg("n1", 1),))
    gone = policy_apply(alone, policy=policy, max_false_negatives=7)
    assert gone.outcome is Outcome.DROPPED_NO_POSITIVE and gone.positives_removed == 1
    # The default policy ignores decisions.
    kept = policy_apply(alone, policy="default", max_false_negatives=7)
    assert ids(kept.query.positives) == ["p1"] and kept.positives_removed == 0
