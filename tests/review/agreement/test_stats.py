"""Agreement statistics against the reference implementations: scikit-learn, statsmodels
and the krippendorff package, on random data and on the edge cases."""

import math
import warnings

import krippendorff
import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score, f1_score, precision_score, recall_score
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa
from statsmodels.stats.proportion import proportion_confint

from review.agreement import stats

K = 4  # relevant, not relevant, partly, unsure


def _same(ours: float, reference: float) -> bool:
    return (math.isnan(ours) and math.isnan(reference)) or math.isclose(
        ours, reference, abs_tol=1e-9
    )


@pytest.mark.parametrize("seed", range(5))
def test_cohen_kappa_matches_sklearn_on_random_data(seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, K, 500)
    b = np.where(rng.random(500) < 0.6, a, rng.integers(0, K, 500))
    assert _same(stats.cohen_kappa(a, b, n_categories=K), cohen_kappa_score(a, b))


def test_cohen_kappa_skips_missing_like_sklearn_on_the_overlap():
    rng = np.random.default_rng(7)
    a = rng.integers(0, 3, 300)
    b = rng.integers(0, 3, 300)
    a[:40] = stats.MISSING
    b[20:70] = stats.MISSING
    both = (a != -1) & (b != -1)
    assert _same(stats.cohen_kappa(a, b, n_categories=3), cohen_kappa_score(a[both], b[both]))


def test_cohen_kappa_edge_cases():
    assert stats.cohen_kappa([1, 1, 1], [1, 1, 1], n_categories=K) != 1.0  # undefined, not 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = cohen_kappa_score([1, 1, 1], [1, 1, 1])
    assert _same(stats.cohen_kappa([1, 1, 1], [1, 1, 1], n_categories=K), reference)
    assert stats.cohen_kappa([0, 1, 0, 1], [0, 1, 0, 1], n_categories=K) == 1.0
    assert _same(
        stats.cohen_kappa([0, 1], [1, 0], n_categories=2), cohen_kappa_score([0, 1], [1, 0])
    )


def test_bootstrap_ci_brackets_kappa_and_is_seeded():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 2, 400)
    b = np.where(rng.random(400) < 0.7, a, 1 - a)
    first = stats.cohen_kappa_ci(a, b, n_categories=2, n_boot=500, seed=3)
    again = stats.cohen_kappa_ci(a, b, n_categories=2, n_boot=500, seed=3)
    assert first == again
    assert first.ci_low < first.kappa < first.ci_high
    assert first.n == 400
    # With 400 items, κ ≈ 0.4 has a standard error around 0.045: the 95% CI is ~0.18 wide.
    assert 0.08 < first.ci_high - first.ci_low < 0.35


@pytest.mark.parametrize("seed", range(5))
def test_fleiss_matches_statsmodels(seed):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 3, 200)
    ratings = np.stack(
        [np.where(rng.random(200) < 0.7, truth, rng.integers(0, 3, 200)) for _ in range(4)], axis=1
    )
    table = stats.category_counts(ratings, n_categories=3)
    kappa, items = stats.fleiss_kappa(ratings, n_categories=3)
    assert items == 200 and _same(kappa, sm_fleiss_kappa(table, method="fleiss"))
    # Without missing ratings the generalized variant is the same statistic.
    assert _same(stats.fleiss_kappa_generalized(ratings, n_categories=3), kappa)


def test_fleiss_all_agree_on_one_class_is_undefined_like_statsmodels():
    ratings = np.ones((10, 3), dtype=int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = sm_fleiss_kappa(stats.category_counts(ratings, n_categories=2), method="fleiss")
    assert _same(stats.fleiss_kappa(ratings, n_categories=2)[0], reference)


@pytest.mark.parametrize("seed", range(5))
def test_krippendorff_matches_package_with_missing(seed):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, K, 300)
    ratings = np.stack(
        [np.where(rng.random(300) < 0.6, truth, rng.integers(0, K, 300)) for _ in range(4)], axis=1
    )
    ratings[rng.random(ratings.shape) < 0.3] = stats.MISSING
    reliability = np.where(ratings == stats.MISSING, np.nan, ratings).T.astype(float)
    reference = krippendorff.alpha(reliability_data=reliability, level_of_measurement="nominal")
    assert math.isclose(
        stats.krippendorff_alpha_nominal(ratings, n_categories=K), reference, abs_tol=1e-9
    )


def test_krippendorff_perfect_agreement_and_one_class():
    ratings = np.array([[0, 0, -1], [1, 1, 1], [2, -1, 2]])
    assert stats.krippendorff_alpha_nominal(ratings, n_categories=3) == 1.0
    assert math.isnan(stats.krippendorff_alpha_nominal(np.ones((5, 2), dtype=int), n_categories=2))


def test_majority_and_flag_scores_match_sklearn():
    ratings = np.array([[0, 0, 1], [1, 1, 0], [0, 1, -1], [1, -1, -1]])
    assert stats.majority(ratings, n_categories=2).tolist() == [0, 1, -1, 1]
    rng = np.random.default_rng(4)
    truth = rng.integers(0, 2, 300)
    flags = np.where(rng.random(300) < 0.8, truth, 1 - truth)
    scores = stats.flag_scores(flags, truth)
    assert math.isclose(scores.precision, precision_score(truth, flags))
    assert math.isclose(scores.recall, recall_score(truth, flags))
    assert math.isclose(scores.f1, f1_score(truth, flags))


def test_confusion_matrix_counts_only_items_both_judged():
    matrix = stats.confusion_matrix([0, 1, 1, -1], [0, 1, 0, 1], n_categories=2)
    assert matrix.tolist() == [[1, 0], [1, 1]]


def _ratings_with_ties_and_missing(seed: int, *, items: int, raters: int, categories: int):
    """Raters who agree with a latent grade most of the time, often tie, and skip 30%."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, categories, items)
    ratings = np.stack(
        [
            np.where(rng.random(items) < 0.6, truth, rng.integers(0, categories, items))
            for _ in range(raters)
        ],
        axis=1,
    )
    ratings[rng.random(ratings.shape) < 0.3] = stats.MISSING
    return ratings


@pytest.mark.parametrize("seed", range(5))
def test_fleiss_with_missing_ratings_is_statsmodels_on_the_complete_items(seed):
    """The standard Fleiss κ uses the items every rater judged (0.5328 vs 0.5762 in the
    issue's example came from mixing in incomplete items); the generalized one is apart."""
    ratings = _ratings_with_ties_and_missing(seed, items=300, raters=4, categories=K)
    complete = ratings[(ratings != stats.MISSING).all(axis=1)]
    reference = sm_fleiss_kappa(stats.category_counts(complete, n_categories=K), method="fleiss")
    kappa, items = stats.fleiss_kappa(ratings, n_categories=K)
    assert items == len(complete) > 10
    assert math.isclose(kappa, reference, abs_tol=1e-9)
    assert not math.isclose(stats.fleiss_kappa_generalized(ratings, n_categories=K), kappa)


@pytest.mark.parametrize("weights", ["linear", "quadratic"])
@pytest.mark.parametrize("seed", range(5))
def test_weighted_kappa_matches_scikit_learn(seed, weights):
    ratings = _ratings_with_ties_and_missing(seed, items=250, raters=2, categories=3)
    both = (ratings != stats.MISSING).all(axis=1)
    reference = cohen_kappa_score(
        ratings[both, 0], ratings[both, 1], weights=weights, labels=[0, 1, 2]
    )
    ours = stats.weighted_kappa(ratings[:, 0], ratings[:, 1], n_categories=3, weights=weights)
    assert math.isclose(ours, reference, abs_tol=1e-9)


def test_weighted_kappa_charges_a_far_disagreement_more_than_a_near_one():
    near = stats.weighted_kappa([0, 1, 2, 0, 1, 2], [1, 1, 2, 0, 1, 2], n_categories=3,
                                weights="quadratic")  # fmt: skip
    far = stats.weighted_kappa([0, 1, 2, 0, 1, 2], [2, 1, 2, 0, 1, 2], n_categories=3,
                               weights="quadratic")  # fmt: skip
    assert near > far
    assert stats.cohen_kappa([0, 1, 2, 0, 1, 2], [1, 1, 2, 0, 1, 2], n_categories=3) == (
        stats.cohen_kappa([0, 1, 2, 0, 1, 2], [2, 1, 2, 0, 1, 2], n_categories=3)
    )  # unweighted κ cannot tell them apart


@pytest.mark.parametrize("seed", range(5))
def test_ordinal_krippendorff_matches_the_package_with_ties_and_missing(seed):
    ratings = _ratings_with_ties_and_missing(seed, items=300, raters=4, categories=3)
    reliability = np.where(ratings == stats.MISSING, np.nan, ratings).T.astype(float)
    reference = krippendorff.alpha(
        reliability_data=reliability, level_of_measurement="ordinal", value_domain=[0, 1, 2]
    )
    ours = stats.krippendorff_alpha_ordinal(ratings, n_categories=3)
    assert math.isclose(ours, reference, abs_tol=1e-9)


# --- Wilson score intervals (precision and recall of the false-negative flags) -------------


@pytest.mark.parametrize("level", [0.8, 0.9, 0.95, 0.99])
def test_wilson_interval_matches_statsmodels(level):
    for n in (1, 2, 3, 5, 10, 37, 100, 1000, 123457):
        for successes in sorted({0, 1, n // 3, n // 2, n - 1, n}):
            ours = stats.wilson_interval(successes, n, level=level)
            low, high = proportion_confint(successes, n, alpha=1 - level, method="wilson")
            assert ours == pytest.approx((low, high), abs=1e-9, rel=0), (successes, n)
            assert 0.0 <= ours[0] <= successes / n <= ours[1] <= 1.0


def test_wilson_interval_is_undefined_without_trials():
    assert all(math.isnan(x) for x in stats.wilson_interval(0, 0))


@pytest.mark.parametrize("seed", range(4))
def test_flag_scores_carry_wilson_intervals_of_precision_and_recall(seed):
    rng = np.random.default_rng(seed)
    reference = (rng.random(300) < 0.3).astype(int)
    predicted = np.where(rng.random(300) < 0.8, reference, 1 - reference)
    predicted[rng.random(300) < 0.1] = stats.MISSING
    scores = stats.flag_scores(predicted, reference, level=0.9)
    tp, fp, fn = scores.true_positive, scores.false_positive, scores.false_negative
    precision = proportion_confint(tp, tp + fp, alpha=0.1, method="wilson")
    recall = proportion_confint(tp, tp + fn, alpha=0.1, method="wilson")
    assert (scores.precision_ci_low, scores.precision_ci_high) == pytest.approx(
        precision, abs=1e-9, rel=0
    )
    assert (scores.recall_ci_low, scores.recall_ci_high) == pytest.approx(recall, abs=1e-9, rel=0)


def test_flag_intervals_are_undefined_without_flags():
    # The machine flags nothing: precision (and its interval) is undefined; recall is 0.
    scores = stats.flag_scores([0, 0, 0, 0], [1, 0, 1, 0])
    assert math.isnan(scores.precision_ci_low) and math.isnan(scores.precision_ci_high)
    assert scores.recall == 0.0 and scores.recall_ci_low == 0.0 < scores.recall_ci_high < 1.0
    nothing = stats.flag_scores([stats.MISSING], [1])
    assert all(
        math.isnan(x)
        for x in (nothing.precision_ci_low, nothing.precision_ci_high,
                  nothing.recall_ci_low, nothing.recall_ci_high)
    )  # fmt: skip
