"""RLHN false-negative policies applied to one query.

A confirmed false negative (FN) is a negative candidate whose latest decision says
``relevant``; the caller resolves "latest" and passes ``false_negative=True``. Policies:

* ``default``   everything as imported (decisions are ignored);
* ``remove``    drop every query with at least one FN;
* ``remove_hn`` drop only the FNs, keep the query;
* ``relabel``   move the FNs to the positives.

A positive whose latest decision says ``not_relevant`` (a rejected synthetic triplet, or an
imported label a reviewer overturned; the caller passes ``not_relevant=True``) is dropped
under the three non-default policies, like a false negative is; ``default`` keeps it.

For the three non-default policies a query with more than ``max_false_negatives`` FNs
(RLHN's k = 7) is dropped as ambiguous: that many "hard negatives" answering the query means
the query is too broad for its labels to be trusted. Under every policy a query left without
a positive is dropped, since no training format can use it.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field


class Policy(enum.StrEnum):
    DEFAULT = "default"
    REMOVE = "remove"
    REMOVE_HN = "remove_hn"
    RELABEL = "relabel"


class Outcome(enum.StrEnum):
    KEPT = "kept"
    DROPPED_AMBIGUOUS = "dropped_ambiguous"
    DROPPED_REMOVE = "dropped_remove"
    DROPPED_NO_POSITIVE = "dropped_no_positive"


@dataclass(frozen=True)
class Candidate:
    """One passage of a query. ``rank`` is the 1-based position among the negatives (None for
    positives); ``order`` is the import order, used to keep positives as the source listed
    them; ``false_negative`` only means something for a negative, ``not_relevant`` for a
    positive."""

    doc_id: str
    title: str
    text: str
    rank: int | None = None
    teacher_score: float | None = None
    order: int = 0
    false_negative: bool = False
    not_relevant: bool = False
    # Whose decision set false_negative / not_relevant: "human" or "approval:<id>".
    source: str = "human"


@dataclass(frozen=True)
class QueryData:
    query_id: str
    text: str
    positives: tuple[Candidate, ...] = ()
    negatives: tuple[Candidate, ...] = ()


@dataclass(frozen=True)
class PolicyResult:
    outcome: Outcome
    # The query as it is written, positives and negatives in output order; None when dropped.
    query: QueryData | None
    false_negatives: int = 0
    false_negatives_removed: int = 0
    false_negatives_relabelled: int = 0
    positives_removed: int = 0
    # The source of each false negative and of each positive removed (Candidate.source).
    false_negative_sources: tuple[str, ...] = ()
    removed_positive_sources: tuple[str, ...] = ()


def _positive_key(candidate: Candidate):
    return (candidate.order, candidate.doc_id)


def _negative_key(candidate: Candidate):
    # Unranked negatives (e.g. from a triplet file without order) go last, by doc_id.
    return (candidate.rank is None, candidate.rank or 0, candidate.doc_id)


def policy_apply(
    query: QueryData, *, policy: Policy | str, max_false_negatives: int
) -> PolicyResult:
    """What ``query`` becomes under ``policy``. Output order is fixed so that the same data
    always gives the same bytes: positives in import order, negatives by rank then doc_id;
    relabelled FNs follow the original positives, in their negative order."""
    policy = Policy(policy)
    if max_false_negatives < 0:
        raise ValueError("max_false_negatives must be >= 0")
    positives = sorted(query.positives, key=_positive_key)
    negatives = sorted(query.negatives, key=_negative_key)
    false_negatives = [n for n in negatives if n.false_negative]
    fn_count = len(false_negatives)
    fn_sources = tuple(n.source for n in false_negatives)

    def dropped(outcome: Outcome) -> PolicyResult:
        return PolicyResult(
            outcome=outcome,
            query=None,
            false_negatives=fn_count,
            false_negative_sources=fn_sources,
        )

    removed = relabelled = positives_removed = 0
    removed_sources: tuple[str, ...] = ()
    if policy is not Policy.DEFAULT:
        kept = [p for p in positives if not p.not_relevant]
        positives_removed = len(positives) - len(kept)
        removed_sources = tuple(p.source for p in positives if p.not_relevant)
        positives = kept
    if policy is not Policy.DEFAULT and fn_count:
        if fn_count > max_false_negatives:
            return dropped(Outcome.DROPPED_AMBIGUOUS)
        if policy is Policy.REMOVE:
            return dropped(Outcome.DROPPED_REMOVE)
        negatives = [n for n in negatives if not n.false_negative]
        if policy is Policy.REMOVE_HN:
            removed = fn_count
        else:
            positives = positives + false_negatives
            relabelled = fn_count
    if not positives:
        return PolicyResult(
            outcome=Outcome.DROPPED_NO_POSITIVE,
            query=None,
            false_negatives=fn_count,
            positives_removed=positives_removed,
            false_negative_sources=fn_sources,
            removed_positive_sources=removed_sources,
        )
    return PolicyResult(
        outcome=Outcome.KEPT,
        query=QueryData(
            query_id=query.query_id,
            text=query.text,
            positives=tuple(positives),
            negatives=tuple(negatives),
        ),
        false_negatives=fn_count,
        false_negatives_removed=removed,
        false_negatives_relabelled=relabelled,
        positives_removed=positives_removed,
        false_negative_sources=fn_sources,
        removed_positive_sources=removed_sources,
    )


@dataclass
class PolicyCounts:
    """Running totals for a snapshot's manifest. ``positives``/``negatives`` count what was
    written; ``rows`` counts output lines (one per query, or per triplet)."""

    queries_in: int = 0
    queries_out: int = 0
    dropped_ambiguous: int = 0
    dropped_remove: int = 0
    dropped_no_positive: int = 0
    # sentence-transformers triplets only: a query whose negatives are all gone forms no row.
    dropped_no_negative: int = 0
    positives: int = 0
    negatives: int = 0
    false_negatives_confirmed: int = 0
    false_negatives_removed: int = 0
    false_negatives_relabelled: int = 0
    # Positives decided not relevant, left out (non-default policies).
    positives_removed: int = 0
    rows: int = 0
    # The same effects split by whose decision caused them ("human", "approval:<id>"):
    # false negatives confirmed / removed / relabelled, positives removed, and queries
    # dropped (remove, ambiguous) with at least one false negative from that source.
    by_source: dict[str, dict[str, int]] = field(default_factory=dict)

    def _by_source(self, sources, name: str) -> None:
        for source in sources:
            counts = self.by_source.setdefault(source, {})
            counts[name] = counts.get(name, 0) + 1

    def add(self, result: PolicyResult, *, rows_written: int) -> None:
        self._by_source(result.false_negative_sources, "false_negatives_confirmed")
        self._by_source(result.removed_positive_sources, "positives_removed")
        if result.outcome in (Outcome.DROPPED_AMBIGUOUS, Outcome.DROPPED_REMOVE):
            self._by_source(sorted(set(result.false_negative_sources)), f"queries_{result.outcome}")
        elif result.outcome is Outcome.KEPT and rows_written:
            if result.false_negatives_removed:
                self._by_source(result.false_negative_sources, "false_negatives_removed")
            if result.false_negatives_relabelled:
                self._by_source(result.false_negative_sources, "false_negatives_relabelled")
        self.queries_in += 1
        self.false_negatives_confirmed += result.false_negatives
        self.positives_removed += result.positives_removed
        if result.outcome is Outcome.DROPPED_AMBIGUOUS:
            self.dropped_ambiguous += 1
        elif result.outcome is Outcome.DROPPED_REMOVE:
            self.dropped_remove += 1
        elif result.outcome is Outcome.DROPPED_NO_POSITIVE:
            self.dropped_no_positive += 1
        elif rows_written == 0:
            self.dropped_no_negative += 1
        else:
            self.queries_out += 1
            self.positives += len(result.query.positives)
            self.negatives += len(result.query.negatives)
            self.false_negatives_removed += result.false_negatives_removed
            self.false_negatives_relabelled += result.false_negatives_relabelled
            self.rows += rows_written

    def as_dict(self) -> dict[str, int]:
        """The totals; ``by_source`` is apart (the manifest's ``counts_by_source``)."""
        counts = asdict(self)
        del counts["by_source"]
        return counts
