"""The pure report builder (review/agreement/report.py) and the confusion-matrix bootstrap,
on plain arrays: against scikit-learn, statsmodels, krippendorff and scipy's bootstrap, and
on the edge cases (latest rating wins, ties, one class only, no humans)."""

import csv
import io
import math
from datetime import UTC, datetime

import krippendorff
import numpy as np
import pytest
from scipy.stats import bootstrap
from sklearn.metrics import cohen_kappa_score, f1_score, precision_score, recall_score
from statsmodels.stats.proportion import proportion_confint

from core.csv_export import csv_write
from review.agreement import report as rep
from review.agreement import stats
from review.agreement.report import (
    CASCADE_FINAL,
    HUMAN,
    MACHINE,
    Rater,
    Ratings,
    ReportOptions,
    Slicing,
    agreement_report,
)
from review.agreement.report_csv import csv_rows

M = stats.MISSING
HUMANS = (Rater("user:a", "a", HUMAN), Rater("user:b", "b", HUMAN), Rater("user:c", "c", HUMAN))
STAGE1 = Rater("llm:mini:stage1", "stage 1", MACHINE, 1)
STAGE2 = Rater("llm:big:stage2", "stage 2", MACHINE, 2)
TEACHER = Rater("teacher:minilm:margin", "teacher", MACHINE, 0)
HUMAN_INDEX = {rater.key: i for i, rater in enumerate(HUMANS)}


def long_format(matrix: np.ndarray, raters, *, time=None, slicings=()) -> Ratings:
    """``items × raters`` codes (M = none) as the report's long-format input."""
    item, rater = np.nonzero(matrix != M)
    return Ratings(
        n_items=matrix.shape[0],
        raters=tuple(raters),
        item=item,
        rater=rater,
        code=matrix[item, rater],
        order=np.arange(len(item)),
        time=None if time is None else time[item],
        slicings=slicings,
    )


def close(ours, reference) -> bool:
    if ours is None or (isinstance(ours, float) and math.isnan(ours)):
        return reference is None or math.isnan(reference)
    return math.isclose(ours, reference, abs_tol=1e-9)


def random_review(seed: int, n: int = 400):
    rng = np.random.default_rng(seed)
    truth = rng.random(n) < 0.3
    humans = np.stack(
        [
            np.where(
                rng.random(n) < 0.75,
                np.where(truth, rep.RELEVANT, rep.NOT_RELEVANT),
                rng.integers(0, 4, n),
            )
            for _ in HUMANS
        ],
        axis=1,
    )
    humans[rng.random(humans.shape) < 0.2] = M  # missing ratings
    stage1 = np.where(rng.random(n) < 0.7, truth, ~truth).astype(int)
    stage1 = np.where(stage1 == 1, rep.RELEVANT, rep.NOT_RELEVANT)
    stage2 = np.where(rng.random(n) < 0.85, truth, ~truth)
    stage2 = np.where(stage2, rep.RELEVANT, rep.NOT_RELEVANT)
    stage2[stage1 != rep.RELEVANT] = M  # stage 2 only judges what stage 1 flagged
    matrix = np.column_stack([humans, stage1, stage2])
    return matrix, (*HUMANS, STAGE1, STAGE2)


@pytest.mark.parametrize("partly", [False, True])
@pytest.mark.parametrize("seed", range(3))
def test_report_equals_the_reference_libraries_on_random_reviews(seed, partly):
    matrix, raters = random_review(seed)
    result = agreement_report(
        long_format(matrix, raters), ReportOptions(partly_relevant_is_false_negative=partly)
    ).to_json()
    humans = matrix[:, :3]

    for pair in result["human_pairs"]:
        a, b = (HUMAN_INDEX[pair["rater_a"]], HUMAN_INDEX[pair["rater_b"]])
        both = (humans[:, a] != M) & (humans[:, b] != M)
        assert pair["n"] == both.sum()
        assert close(pair["kappa"], cohen_kappa_score(humans[both, a], humans[both, b]))
    alpha = krippendorff.alpha(
        reliability_data=np.where(humans == M, np.nan, humans).T, level_of_measurement="nominal"
    )
    verdicts = next(g for g in result["humans"] if g["scheme"] == "verdict")
    assert close(verdicts["krippendorff_alpha"], alpha)

    lookup = {rep.RELEVANT: 1, rep.NOT_RELEVANT: 0, rep.PARTLY_RELEVANT: int(partly)}
    flags = np.vectorize(lambda v: lookup.get(int(v), M))(humans)
    majority = []
    for row in flags:
        votes = [v for v in row if v != M]
        ones, zeros = votes.count(1), votes.count(0)
        majority.append(M if ones == zeros else int(ones > zeros))
    majority = np.array(majority)
    final = np.where(matrix[:, 4] != M, matrix[:, 4], matrix[:, 3])
    machines = ((STAGE1.key, matrix[:, 3]), (STAGE2.key, matrix[:, 4]), ("cascade_final", final))
    for key, column in machines:
        predicted = np.vectorize(lambda v: lookup.get(int(v), M))(column)
        both = (predicted != M) & (majority != M)
        p, r = predicted[both], majority[both]
        row = next(m for m in result["machines"] if m["rater"] == key)
        assert row["n"] == both.sum()
        assert close(row["kappa"], cohen_kappa_score(p, r))
        assert close(row["precision"], precision_score(r, p))
        assert close(row["recall"], recall_score(r, p))
        assert close(row["f1"], f1_score(r, p))
        assert row["ci_low"] < row["kappa"] < row["ci_high"]
        # Wilson intervals of precision (TP of the machine's flags) and recall (TP of the
        # majority's), at the report's level.
        tp = int(((p == 1) & (r == 1)).sum())
        for name, n in (("precision", (p == 1).sum()), ("recall", (r == 1).sum())):
            low, high = proportion_confint(tp, int(n), alpha=0.05, method="wilson")
            assert close(row[f"{name}_ci_low"], low) and close(row[f"{name}_ci_high"], high)
            assert row[f"{name}_ci_low"] < row[name] < row[f"{name}_ci_high"]


def test_latest_rating_wins_and_unknown_codes_are_ignored():
    ratings = Ratings(
        n_items=2,
        raters=(HUMANS[0], STAGE1),
        item=np.array([0, 0, 0, 1, 1]),
        rater=np.array([0, 0, 1, 1, 1]),
        code=np.array([rep.UNSURE, rep.RELEVANT, rep.NOT_RELEVANT, rep.RELEVANT, 9]),
        order=np.array([5, 9, 1, 2, 7]),
    )
    rows = rep.latest_ratings(ratings)
    matrix = rep.rating_matrix(ratings, rows)
    assert matrix.tolist() == [[rep.RELEVANT, rep.NOT_RELEVANT], [M, rep.RELEVANT]]


def test_cascade_final_is_the_highest_stage_that_judged():
    matrix = np.array(
        [
            [rep.RELEVANT, rep.NOT_RELEVANT, rep.RELEVANT],  # stage 2 overrides stage 1
            [rep.RELEVANT, M, rep.NOT_RELEVANT],  # stage 2 did not judge: stage 1
            [M, M, rep.RELEVANT],  # the teacher is not part of the cascade
        ]
    )
    ratings = long_format(matrix, (STAGE1, STAGE2, TEACHER))
    final = rep.cascade_final(ratings, rep.latest_ratings(ratings))
    assert final.tolist() == [rep.NOT_RELEVANT, rep.RELEVANT, M]
    result = agreement_report(ratings).to_json()
    keys = [r["key"] for r in result["raters"]]
    assert keys == [TEACHER.key, STAGE1.key, STAGE2.key, "cascade_final"]
    assert result["raters"][-1]["kind"] == CASCADE_FINAL


def test_partly_relevant_option_and_unsure():
    verdicts = np.array([rep.RELEVANT, rep.NOT_RELEVANT, rep.PARTLY_RELEVANT, rep.UNSURE, M])
    strict = rep.flag_codes(verdicts, partly_relevant_is_false_negative=False)
    loose = rep.flag_codes(verdicts, partly_relevant_is_false_negative=True)
    assert strict.tolist() == [1, 0, 0, M, M]
    assert loose.tolist() == [1, 0, 1, M, M]


def test_weeks_start_on_monday_utc():
    times = np.array(
        [
            datetime(2026, 11, 22, 23, 59, tzinfo=UTC).timestamp(),  # Sunday
            datetime(2026, 11, 23, 0, 0, tzinfo=UTC).timestamp(),  # Monday
            datetime(2026, 11, 29, 12, 0, tzinfo=UTC).timestamp(),  # the Sunday after
        ]
    )
    matrix = np.array([[rep.RELEVANT], [rep.RELEVANT], [rep.NOT_RELEVANT]])
    ratings = long_format(matrix, HUMANS[:1], time=times)
    weeks = rep.item_weeks(ratings, rep.latest_ratings(ratings))
    assert weeks.labels == ("2026-11-16", "2026-11-23")
    assert weeks.codes.tolist() == [0, 1, 1]


def test_slices_cover_their_items_only():
    matrix, raters = random_review(7, n=300)
    codes = np.arange(300) % 3
    codes[::10] = M  # items outside every slice value
    slicing = Slicing("stratum", ("x", "y", "z"), codes)
    result = agreement_report(long_format(matrix, raters, slicings=(slicing,))).to_json()
    rows = {row["value"]: row for row in result["slices"]["stratum"]}
    for value, label in enumerate("xyz"):
        block = codes == value
        sub = agreement_report(long_format(matrix[block], raters)).to_json()
        assert rows[label]["items"] == block.sum()
        for ours, whole in zip(rows[label]["machines"], sub["machines"], strict=True):
            assert ours["n"] == whole["n"] and close(ours["kappa"], whole["kappa"])
            assert (ours["ci_low"], ours["ci_high"]) == (whole["ci_low"], whole["ci_high"])


def test_undefined_statistics_are_null_not_zero():
    # Everybody says "not relevant": κ, Fleiss and α are undefined (one class only).
    matrix = np.full((20, 4), rep.NOT_RELEVANT)
    result = agreement_report(long_format(matrix, (*HUMANS, STAGE1))).to_json()
    assert result["human_pairs"][0]["kappa"] is None
    assert result["human_pairs"][0]["percent_agreement"] == 1.0
    assert result["humans"][0]["fleiss_kappa"] is None
    assert result["humans"][0]["krippendorff_alpha"] is None
    stage1 = result["machines"][0]
    assert stage1["kappa"] is None and stage1["precision"] is None and stage1["n"] == 20
    # No flag at all: neither interval is defined, and both are stored as null.
    assert [stage1[f"{name}_ci_{end}"] for name in ("precision", "recall")
            for end in ("low", "high")] == [None] * 4  # fmt: skip


def test_machines_only_and_nothing_at_all():
    matrix = np.array([[rep.RELEVANT, rep.RELEVANT], [rep.NOT_RELEVANT, rep.RELEVANT]])
    result = agreement_report(long_format(matrix, (STAGE1, STAGE2))).to_json()
    assert result["human_pairs"] == [] and result["human_items"] == 0
    assert all(m["n"] == 0 for m in result["machines"])  # no majority to compare with
    assert {(p["rater_a"], p["rater_b"]) for p in result["flag_pairs"]} >= {
        (STAGE1.key, STAGE2.key)
    }
    empty = agreement_report(long_format(np.zeros((0, 1), dtype=int), HUMANS[:1])).to_json()
    assert empty["items"] == 0 and empty["machines"] == []


# --- the bootstrap ---------------------------------------------------------------------------


def test_confusion_bootstrap_matches_scipy_and_item_resampling():
    rng = np.random.default_rng(11)
    a = rng.integers(0, 2, 600)
    b = np.where(rng.random(600) < 0.75, a, 1 - a)
    matrix = stats.confusion_matrix(a, b, n_categories=2)
    low, high = stats.kappa_bootstrap_ci(matrix, n_boot=4000, seed=1)
    reference = bootstrap(
        (a, b),
        lambda x, y: cohen_kappa_score(x, y),
        paired=True,
        vectorized=False,
        n_resamples=4000,
        method="percentile",
        random_state=np.random.default_rng(2),
    ).confidence_interval
    # Two independent Monte Carlo estimates of the same quantiles: within ~0.02 of each other.
    assert low == pytest.approx(reference.low, abs=0.02)
    assert high == pytest.approx(reference.high, abs=0.02)
    items = stats.cohen_kappa_ci(a, b, n_categories=2, n_boot=4000, seed=3)
    assert low == pytest.approx(items.ci_low, abs=0.02)
    assert high == pytest.approx(items.ci_high, abs=0.02)


def test_a_pairs_interval_depends_only_on_its_own_data():
    matrix = np.array([[40, 5], [7, 48]])
    first = stats.kappa_bootstrap_ci(matrix, seed=0)
    assert stats.kappa_bootstrap_ci(matrix, seed=0) == first
    assert stats.kappa_bootstrap_ci(matrix, seed=1) != first
    assert all(math.isnan(x) for x in stats.kappa_bootstrap_ci([[1, 0], [0, 0]]))
    assert stats.cohen_kappa_from_confusion(matrix) == pytest.approx(
        cohen_kappa_score([0] * 45 + [1] * 55, [0] * 40 + [1] * 5 + [0] * 7 + [1] * 48)
    )


# --- CSV ---------------------------------------------------------------------------------------


def test_csv_has_every_section_and_neutralises_formulas():
    matrix, raters = random_review(1, n=200)
    slicing = Slicing("dataset", ("=HYPERLINK(1)",), np.zeros(200, dtype=int))
    result = agreement_report(long_format(matrix, raters, slicings=(slicing,))).to_json()
    text = io.StringIO()
    csv_write(text, csv_rows(result))  # what the CSV view writes
    rows = list(csv.DictReader(io.StringIO(text.getvalue())))
    assert {r["section"] for r in rows} == {
        "humans", "human_pairs", "flag_pairs", "machine_vs_majority", "slice_humans",
        "slice_machine_vs_majority",
    }  # fmt: skip
    assert {r["slice"] for r in rows if r["dimension"] == "dataset"} == {"'=HYPERLINK(1)"}
    machines = [r for r in rows if r["section"] == "machine_vs_majority"]
    stage2 = next(r for r in machines if r["rater_a"] == STAGE2.key)
    assert float(stage2["paper_kappa"]) == 0.39
    stored = next(m for m in result["machines"] if m["rater"] == STAGE2.key)
    for column in ("precision_ci_low", "precision_ci_high", "recall_ci_low", "recall_ci_high"):
        assert float(stage2[column]) == pytest.approx(stored[column], abs=1e-6)  # 6 decimals
