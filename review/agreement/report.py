"""The agreement report, from plain rating arrays. Pure numpy: no Django, no I/O.

Input is long format, one row per rating: item index, rater index, verdict code and an
``order`` (the judgment id: when a rater judged an item twice, the later rating wins). The
service builds it with a few SQL statements; a notebook can build it from anything.

Two ways of reading a verdict:

* ``verdict`` — the four categories as judged (relevant, not relevant, partly relevant,
  unsure). Used between humans, who all see the same four keys.
* ``false_negative`` — the question the cascade answers: is this negative really a positive?
  relevant → 1, not relevant → 0, unsure → left out, partly relevant → 0 by default or 1 with
  ``partly_relevant_is_false_negative``. Used for every comparison that involves a machine,
  the human majority included, because LLM stages and the teacher only answer that question.

The default counts "partly relevant" as *not* a false negative: RLHN's false negatives are
negatives that answer the query *as well as the positive* ("better"); a partial answer is the
paper's "worse" tag, which its default pipeline keeps as a negative. Teams whose cascade treats
"worse" as a false negative should switch the option so both sides use the same rule.

A human's rating of an item in a blind campaign is their blind answer (given before the LLM
verdicts were revealed): the selectors pass those, and the answers changed after the reveal
apart (``Ratings.revisions``, counted per annotator by ``revisions.py``).

The human majority is taken over the humans' false-negative flags (ties left out), so it is
the reference the machine flags are scored against. "Cascade final" is, per item, the verdict
of the highest LLM stage that judged it (stage 2 where stage 2 re-judged the query, else
stage 1).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from itertools import combinations

import numpy as np

from . import stats
from .ratings import Rater, Ratings, Slicing
from .revisions import RevisionCount, revision_counts
from .stats import MISSING

VERDICTS = ("relevant", "not_relevant", "partly_relevant", "unsure")
# The graded scale of the verdicts, lowest first, for the ordinal statistics (weighted κ,
# ordinal α); "unsure" is no grade and counts as missing there.
GRADED = ("not_relevant", "partly_relevant", "relevant")
_GRADE_OF_VERDICT = np.array([GRADED.index(v) if v in GRADED else MISSING for v in VERDICTS])
RELEVANT, NOT_RELEVANT, PARTLY_RELEVANT, UNSURE = range(4)
FLAG_CATEGORIES = ("not a false negative", "false negative")

SCHEME_VERDICT = "verdict"
SCHEME_FLAG = "false_negative"

HUMAN = "human"
MAJORITY = "majority"
MACHINE = "machine"
CASCADE_FINAL = "cascade_final"

MAJORITY_KEY = "majority"
CASCADE_FINAL_KEY = "cascade_final"
WEEK = "week"

# RLHN (Thakur et al., 2025): three assessors judged 670 query-negative pairs blind to the
# LLM; Cohen's κ between the humans and each judge.
PAPER_REFERENCE = {
    "source": "RLHN (Thakur et al., 2025), human study",
    "assessors": 3,
    "pairs": 670,
    "kappa": [
        {"judge": "GPT-4o-mini", "stage": 1, "kappa": 0.320},
        {"judge": "GPT-4o", "stage": 2, "kappa": 0.390},
    ],
}
PAPER_KAPPA_BY_STAGE = {row["stage"]: row["kappa"] for row in PAPER_REFERENCE["kappa"]}

_WEEK_SECONDS = 7 * 86400
# 1970-01-01 was a Thursday: shifting by 4 days makes weeks start on Mondays.
_MONDAY_OFFSET = 4 * 86400


# --- input -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportOptions:
    partly_relevant_is_false_negative: bool = False
    n_boot: int = 1000
    seed: int = 0
    level: float = 0.95
    # Items with fewer human flags than this have no majority.
    majority_min_raters: int = 1


# --- output ------------------------------------------------------------------------------


@dataclass
class RaterSummary:
    key: str
    label: str
    kind: str
    stage: int | None
    items: int  # items this rater judged (after "latest wins")


@dataclass
class PairAgreement:
    rater_a: str
    rater_b: str
    scheme: str
    n: int  # items both judged
    percent_agreement: float
    kappa: float
    ci_low: float
    ci_high: float
    confusion: list[list[int]]  # rows: rater_a, columns: rater_b
    # On the graded scale (not relevant < partly < relevant; "unsure" left out), verdicts only.
    weighted_kappa_linear: float | None = None
    weighted_kappa_quadratic: float | None = None


@dataclass
class GroupAgreement:
    scheme: str
    raters: int
    items: int  # items with at least two ratings (α and the generalized Fleiss use these)
    ratings: int
    fleiss_kappa: float  # Fleiss (1971) on the complete items: every rater judged them
    fleiss_items: int
    fleiss_kappa_generalized: float  # items with ≥ 2 ratings, each with its own n_i
    krippendorff_alpha: float  # nominal
    krippendorff_alpha_ordinal: float | None = None  # verdicts on the graded scale


@dataclass
class FlagAgreement:
    """One machine rater's false-negative flags against the human majority."""

    rater: str
    stage: int | None
    n: int
    percent_agreement: float
    kappa: float
    ci_low: float
    ci_high: float
    precision: float
    precision_ci_low: float  # Wilson score interval at the report's level
    precision_ci_high: float
    recall: float
    recall_ci_low: float
    recall_ci_high: float
    f1: float
    true_positive: int
    false_positive: int
    false_negative: int
    confusion: list[list[int]]  # rows: the machine, columns: the majority
    paper_kappa: float | None = None


@dataclass
class SliceRow:
    value: str
    items: int
    human_items: int  # items with at least one human rating
    humans: GroupAgreement
    machines: list[FlagAgreement]


@dataclass
class AgreementReportData:
    options: dict
    categories: dict
    raters: list[RaterSummary]
    items: int
    human_items: int
    human_ratings: int
    humans: list[GroupAgreement]
    human_pairs: list[PairAgreement]
    flag_pairs: list[PairAgreement]
    machines: list[FlagAgreement]
    slices: dict[str, list[SliceRow]]
    paper: dict
    timings: dict = field(default_factory=dict)
    # Per annotator: blind answers and the changes made after the reveal.
    revisions: list[RevisionCount] = field(default_factory=list)

    def to_json(self) -> dict:
        """Plain JSON: NaN (an undefined statistic) becomes null."""
        return _json_clean(asdict(self))


def _json_clean(value):
    if isinstance(value, dict):
        return {key: _json_clean(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_clean(item) for item in value]
    if isinstance(value, float | np.floating):
        return None if math.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


# --- building blocks ---------------------------------------------------------------------


def latest_ratings(ratings: Ratings) -> np.ndarray:
    """Row indices of the rating in force for each (item, rater): the one with the highest
    ``order``. Rows with a code outside VERDICTS are ignored."""
    valid = np.flatnonzero((ratings.code >= 0) & (ratings.code < len(VERDICTS)))
    if len(valid) == 0:
        return valid
    n_raters = len(ratings.raters)
    cell = ratings.item[valid].astype(np.int64) * n_raters + ratings.rater[valid]
    # Sort by (cell, order); the last row of each cell is the latest rating.
    by_cell = np.lexsort((ratings.order[valid], cell))
    cell_sorted = cell[by_cell]
    last = np.ones(len(cell_sorted), dtype=bool)
    last[:-1] = cell_sorted[1:] != cell_sorted[:-1]
    return valid[by_cell[last]]


def rating_matrix(ratings: Ratings, rows: np.ndarray) -> np.ndarray:
    """``items × raters`` verdict codes of the given rating rows, MISSING elsewhere."""
    matrix = np.full((ratings.n_items, len(ratings.raters)), MISSING, dtype=np.int64)
    matrix[ratings.item[rows], ratings.rater[rows]] = ratings.code[rows]
    return matrix


def flag_codes(verdicts: np.ndarray, *, partly_relevant_is_false_negative: bool) -> np.ndarray:
    """Verdict codes → 1 (false negative), 0 (not), MISSING (unsure or no rating)."""
    lookup = np.array([1, 0, 1 if partly_relevant_is_false_negative else 0, MISSING])
    verdicts = np.asarray(verdicts, dtype=np.int64)
    return np.where(verdicts >= 0, lookup[np.clip(verdicts, 0, None)], MISSING)


def cascade_final(ratings: Ratings, rows: np.ndarray) -> np.ndarray:
    """Per item, the verdict of the highest LLM stage that judged it (the latest judgment
    among raters of that stage); MISSING where no LLM stage did."""
    final = np.full(ratings.n_items, MISSING, dtype=np.int64)
    stage_of = np.array(
        [r.stage if r.kind == MACHINE and r.stage else 0 for r in ratings.raters] or [0],
        dtype=np.int64,
    )
    llm = rows[stage_of[ratings.rater[rows]] >= 1]
    if len(llm) == 0:
        return final
    # Ascending (item, stage, order): the last row of each item wins.
    ordered = llm[np.lexsort((ratings.order[llm], stage_of[ratings.rater[llm]], ratings.item[llm]))]
    items = ratings.item[ordered]
    last = np.ones(len(items), dtype=bool)
    last[:-1] = items[1:] != items[:-1]
    final[items[last]] = ratings.code[ordered[last]]
    return final


def item_weeks(ratings: Ratings, rows: np.ndarray) -> Slicing | None:
    """Items by the week (Monday-based, UTC) of their latest counted human rating."""
    if ratings.time is None:
        return None
    human = np.array([r.kind == HUMAN for r in ratings.raters] or [False])
    rows = rows[human[ratings.rater[rows]]]
    if len(rows) == 0:
        return None
    latest = np.full(ratings.n_items, -np.inf)
    np.maximum.at(latest, ratings.item[rows], ratings.time[rows].astype(np.float64))
    judged = np.isfinite(latest)
    week = np.full(ratings.n_items, MISSING, dtype=np.int64)
    week[judged] = np.floor((latest[judged] - _MONDAY_OFFSET) / _WEEK_SECONDS).astype(np.int64)
    weeks, codes = np.unique(week[judged], return_inverse=True)
    slice_codes = np.full(ratings.n_items, MISSING, dtype=np.int64)
    slice_codes[judged] = codes
    mondays = (weeks * _WEEK_SECONDS + _MONDAY_OFFSET).astype("datetime64[s]")
    labels = tuple(str(day) for day in np.datetime_as_string(mondays, unit="D"))
    return Slicing(dimension=WEEK, labels=labels, codes=slice_codes)


class _Clock:
    """Splits the report's compute time into bootstrap and everything else."""

    def __init__(self):
        self.bootstrap = 0.0

    def ci(self, matrix: np.ndarray, options: ReportOptions) -> tuple[float, float]:
        started = time.perf_counter()
        try:
            return stats.kappa_bootstrap_ci(
                matrix, n_boot=options.n_boot, seed=options.seed, level=options.level
            )
        finally:
            self.bootstrap += time.perf_counter() - started


def _pair(
    a_key: str,
    b_key: str,
    a: np.ndarray,
    b: np.ndarray,
    *,
    scheme: str,
    n_categories: int,
    options: ReportOptions,
    clock: _Clock,
) -> PairAgreement:
    matrix = stats.confusion_matrix(a, b, n_categories=n_categories)
    n = int(matrix.sum())
    low, high = clock.ci(matrix, options)
    return PairAgreement(
        rater_a=a_key,
        rater_b=b_key,
        scheme=scheme,
        n=n,
        percent_agreement=float(np.trace(matrix) / n) if n else float("nan"),
        kappa=stats.cohen_kappa_from_confusion(matrix),
        ci_low=low,
        ci_high=high,
        confusion=matrix.tolist(),
    )


def _flag_agreement(
    rater: Rater, flags: np.ndarray, reference: np.ndarray, *, options: ReportOptions, clock: _Clock
) -> FlagAgreement:
    pair = _pair(
        rater.key,
        MAJORITY_KEY,
        flags,
        reference,
        scheme=SCHEME_FLAG,
        n_categories=2,
        options=options,
        clock=clock,
    )
    scores = stats.flag_scores(flags, reference, level=options.level)
    return FlagAgreement(
        rater=rater.key,
        stage=rater.stage,
        n=pair.n,
        percent_agreement=pair.percent_agreement,
        kappa=pair.kappa,
        ci_low=pair.ci_low,
        ci_high=pair.ci_high,
        precision=scores.precision,
        precision_ci_low=scores.precision_ci_low,
        precision_ci_high=scores.precision_ci_high,
        recall=scores.recall,
        recall_ci_low=scores.recall_ci_low,
        recall_ci_high=scores.recall_ci_high,
        f1=scores.f1,
        true_positive=scores.true_positive,
        false_positive=scores.false_positive,
        false_negative=scores.false_negative,
        confusion=pair.confusion,
        paper_kappa=PAPER_KAPPA_BY_STAGE.get(rater.stage) if rater.kind == MACHINE else None,
    )


def graded(verdict_codes: np.ndarray) -> np.ndarray:
    """Verdict codes (VERDICTS) as grades (GRADED); "unsure" and missing become MISSING."""
    codes = np.asarray(verdict_codes, dtype=np.int64)
    return np.where(codes == MISSING, MISSING, _GRADE_OF_VERDICT[np.maximum(codes, 0)])


def _group(matrix: np.ndarray, *, scheme: str, n_categories: int) -> GroupAgreement:
    rated = (matrix != MISSING).sum(axis=1)
    nan = float("nan")
    fleiss, fleiss_items = stats.fleiss_kappa(matrix, n_categories=n_categories)
    return GroupAgreement(
        scheme=scheme,
        raters=int(matrix.shape[1]),
        items=int((rated >= 2).sum()),
        ratings=int(rated.sum()),
        fleiss_kappa=fleiss,
        fleiss_items=fleiss_items,
        fleiss_kappa_generalized=stats.fleiss_kappa_generalized(matrix, n_categories=n_categories)
        if matrix.shape[1]
        else nan,
        krippendorff_alpha=stats.krippendorff_alpha_nominal(matrix, n_categories=n_categories)
        if matrix.shape[1]
        else nan,
        krippendorff_alpha_ordinal=(
            stats.krippendorff_alpha_ordinal(graded(matrix), n_categories=len(GRADED))
            if matrix.shape[1]
            else nan
        )
        if scheme == SCHEME_VERDICT
        else None,
    )


def _with_grades(pair: PairAgreement, a: np.ndarray, b: np.ndarray) -> PairAgreement:
    """A verdict pair with its weighted κ on the graded scale."""
    for weights in ("linear", "quadratic"):
        value = stats.weighted_kappa(
            graded(a), graded(b), n_categories=len(GRADED), weights=weights
        )
        setattr(pair, f"weighted_kappa_{weights}", value)
    return pair


# --- the report --------------------------------------------------------------------------


def agreement_report(ratings: Ratings, options: ReportOptions | None = None) -> AgreementReportData:
    options = options or ReportOptions()
    started = time.perf_counter()
    clock = _Clock()

    rows = latest_ratings(ratings)
    matrix = rating_matrix(ratings, rows)
    human_columns = [i for i, r in enumerate(ratings.raters) if r.kind == HUMAN]
    machine_columns = sorted(
        (i for i, r in enumerate(ratings.raters) if r.kind == MACHINE),
        key=lambda i: (ratings.raters[i].stage or 0, ratings.raters[i].key),
    )
    partly = options.partly_relevant_is_false_negative

    human_verdicts = matrix[:, human_columns]
    human_flags = flag_codes(human_verdicts, partly_relevant_is_false_negative=partly)
    majority = (
        stats.majority(human_flags, n_categories=2, min_raters=options.majority_min_raters)
        if human_columns
        else np.full(ratings.n_items, MISSING, dtype=np.int64)
    )

    # Every rater in false-negative terms: humans, the majority, machines, the cascade.
    flag_raters: list[tuple[Rater, np.ndarray]] = [
        (ratings.raters[i], human_flags[:, j]) for j, i in enumerate(human_columns)
    ]
    if human_columns:
        flag_raters.append((Rater(MAJORITY_KEY, "human majority", MAJORITY), majority))
    machine_raters: list[tuple[Rater, np.ndarray]] = [
        (ratings.raters[i], flag_codes(matrix[:, i], partly_relevant_is_false_negative=partly))
        for i in machine_columns
    ]
    final = cascade_final(ratings, rows)
    if any((ratings.raters[i].stage or 0) >= 1 for i in machine_columns):
        machine_raters.append(
            (
                Rater(CASCADE_FINAL_KEY, "cascade final", CASCADE_FINAL),
                flag_codes(final, partly_relevant_is_false_negative=partly),
            )
        )
    flag_raters += machine_raters

    human_pairs = [
        _with_grades(
            _pair(
                ratings.raters[human_columns[x]].key,
                ratings.raters[human_columns[y]].key,
                human_verdicts[:, x],
                human_verdicts[:, y],
                scheme=SCHEME_VERDICT,
                n_categories=len(VERDICTS),
                options=options,
                clock=clock,
            ),
            human_verdicts[:, x],
            human_verdicts[:, y],
        )
        for x, y in combinations(range(len(human_columns)), 2)
        if ((human_verdicts[:, x] != MISSING) & (human_verdicts[:, y] != MISSING)).any()
    ]
    flag_pairs = [
        _pair(
            a.key, b.key, fa, fb, scheme=SCHEME_FLAG, n_categories=2, options=options, clock=clock
        )
        for (a, fa), (b, fb) in combinations(flag_raters, 2)
        if ((fa != MISSING) & (fb != MISSING)).any()
    ]
    machines = [
        _flag_agreement(rater, flags, majority, options=options, clock=clock)
        for rater, flags in machine_raters
    ]
    humans = [
        _group(human_verdicts, scheme=SCHEME_VERDICT, n_categories=len(VERDICTS)),
        _group(human_flags, scheme=SCHEME_FLAG, n_categories=2),
    ]

    slicings = list(ratings.slicings)
    weeks = item_weeks(ratings, rows)
    if weeks is not None:
        slicings.append(weeks)
    slices = {
        slicing.dimension: _slice_rows(
            slicing, human_verdicts, majority, machine_raters, options=options, clock=clock
        )
        for slicing in slicings
    }

    summaries = [
        RaterSummary(r.key, r.label, r.kind, r.stage, int((flags != MISSING).sum()))
        for r, flags in flag_raters
    ]
    # A rater's own count is of verdicts, unsure included (flags leave unsure out).
    for summary, column in zip(summaries, human_columns, strict=False):
        summary.items = int((matrix[:, column] != MISSING).sum())
    by_key = {s.key: s for s in summaries}
    for i in machine_columns:
        by_key[ratings.raters[i].key].items = int((matrix[:, i] != MISSING).sum())

    revisions = revision_counts(
        ratings.revisions,
        rater_keys=[r.key for r in ratings.raters],
        blind_raters=None if ratings.blind is None else ratings.rater[rows[ratings.blind[rows]]],
        llm_flag=flag_codes(final, partly_relevant_is_false_negative=partly),
        flag=lambda codes: flag_codes(codes, partly_relevant_is_false_negative=partly),
    )
    total = time.perf_counter() - started
    return AgreementReportData(
        options=asdict(options),
        categories={SCHEME_VERDICT: list(VERDICTS), SCHEME_FLAG: list(FLAG_CATEGORIES)},
        raters=summaries,
        items=ratings.n_items,
        human_items=int(((human_verdicts != MISSING).sum(axis=1) > 0).sum())
        if human_columns
        else 0,
        human_ratings=int((human_verdicts != MISSING).sum()),
        humans=humans,
        human_pairs=human_pairs,
        flag_pairs=flag_pairs,
        machines=machines,
        slices=slices,
        paper=PAPER_REFERENCE,
        timings={"stats_s": total - clock.bootstrap, "bootstrap_s": clock.bootstrap},
        revisions=[revisions[i] for i in human_columns],
    )


def _slice_rows(
    slicing: Slicing,
    human_verdicts: np.ndarray,
    majority: np.ndarray,
    machine_raters: list[tuple[Rater, np.ndarray]],
    *,
    options: ReportOptions,
    clock: _Clock,
) -> list[SliceRow]:
    """One row per slice value. Items are sorted by slice once, so each slice is a
    contiguous block and the whole dimension costs one pass over the items."""
    codes = np.asarray(slicing.codes, dtype=np.int64)
    order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order]
    rows = []
    for value, label in enumerate(slicing.labels):
        start, stop = np.searchsorted(sorted_codes, [value, value + 1])
        if start == stop:
            continue
        block = order[start:stop]
        verdicts = human_verdicts[block]
        rows.append(
            SliceRow(
                value=label,
                items=int(stop - start),
                human_items=int(((verdicts != MISSING).sum(axis=1) > 0).sum()),
                humans=_group(verdicts, scheme=SCHEME_VERDICT, n_categories=len(VERDICTS)),
                machines=[
                    _flag_agreement(
                        rater, flags[block], majority[block], options=options, clock=clock
                    )
                    for rater, flags in machine_raters
                ],
            )
        )
    return rows
