"""The verdicts' statistics: bootstrap coverage, the three-way TOST verdict, and the vectorised scores."""
import numpy as np
import pandas as pd
import pytest

from fewdims_helpers.metrics import compute_metrics
from fewdims_helpers.verdicts import (ABOVE, DOES_NOT_HOLD, HOLDS, UNRESOLVED, Outcomes, compare, decide, score_interval,
                                      tally, verdict_text)


def _outcomes(predictions, labels, seeds=None, metric="accuracy"):
    predictions = np.atleast_2d(predictions)
    return Outcomes(predictions, np.asarray(labels), np.arange(len(labels)),
                    tuple(seeds if seeds is not None else range(len(predictions))), metric)


def _simulate(rng, n, seeds, p_a, p_b, seed_sd=0.02):
    """Per-seed correctness of two conditions on the same n examples drawn from a population: shared
    example difficulty, and a seed effect of each run (fine-tuning's variance over seeds)."""
    labels = rng.integers(0, 2, n)
    difficulty = rng.normal(0, 0.1, n)
    rows_a, rows_b = [], []
    for _ in range(seeds):
        effect_a, effect_b = rng.normal(0, seed_sd, 2)
        rows_a.append(np.where(rng.random(n) < np.clip(p_a + effect_a + difficulty, 0, 1), labels, 1 - labels))
        rows_b.append(np.where(rng.random(n) < np.clip(p_b + effect_b + difficulty, 0, 1), labels, 1 - labels))
    return _outcomes(np.stack(rows_a), labels), _outcomes(np.stack(rows_b), labels)


def test_bootstrap_interval_covers_a_planted_difference_at_the_nominal_rate():
    rng = np.random.default_rng(0)
    planted = 100 * (0.78 - 0.74)
    covered = []  # resampling both seeds and examples is conservative (Owen 2007): about 0.97 here
    for replicate in range(120):
        a, b = _simulate(rng, 400, 5, 0.78, 0.74)
        comparison = compare(a, b, resamples=600, seed=replicate)
        covered.append(comparison.low <= planted <= comparison.high)
    assert 0.88 <= np.mean(covered) <= 0.995, np.mean(covered)


def test_tost_holds_for_identical_predictions_and_does_not_hold_for_a_planted_five_point_gap():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 2000)
    predictions = np.stack([np.where(rng.random(2000) < 0.8, labels, 1 - labels) for _ in range(5)])
    same = _outcomes(predictions, labels)
    assert compare(same, same).verdict == HOLDS
    assert compare(same, same).estimate == 0.0
    worse = predictions.copy()
    for row in worse:  # 5 points of accuracy lost on every seed, on items it had right
        right = np.flatnonzero(row == labels)
        row[right[:100]] = 1 - labels[right[:100]]
    gap = compare(_outcomes(worse, labels), same)
    assert gap.estimate == pytest.approx(-5.0)
    assert gap.verdict == DOES_NOT_HOLD
    assert compare(_outcomes(worse, labels), same, claim="worse").verdict == HOLDS


def test_a_small_noisy_comparison_is_unresolved():
    rng = np.random.default_rng(2)
    a, b = _simulate(rng, 60, 3, 0.74, 0.72, seed_sd=0.05)
    assert compare(a, b).verdict == UNRESOLVED


def test_decide_reads_the_ninety_percent_interval_against_the_margin():
    assert decide("equivalent", -1.5, 1.9, 2.0) == HOLDS
    assert decide("equivalent", -2.1, 1.0, 2.0) == UNRESOLVED
    assert decide("equivalent", -5.0, -2.0, 2.0) == DOES_NOT_HOLD
    assert decide("better", 0.1, 3.0, 2.0) == HOLDS
    assert decide("better", -3.0, -0.1, 2.0) == DOES_NOT_HOLD
    assert decide("worse", -3.0, -0.1, 2.0) == HOLDS
    with pytest.raises(ValueError, match="unknown claim"):
        decide("similar", 0, 0, 2)


@pytest.mark.parametrize("metric, key", [("accuracy", "accuracy"), ("matthews", "matthews_correlation"),
                                         ("f1_accuracy", "f1"), ("pearson_spearman", "pearson")])
def test_vectorised_scores_equal_the_package_metrics(metric, key):
    rng = np.random.default_rng(3)
    if key == "pearson":
        labels, predictions = rng.normal(size=200), rng.normal(size=(3, 200))
        predictions[1] += labels
    else:
        labels, predictions = rng.integers(0, 2, 200), rng.integers(0, 2, (3, 200))
    outcomes = _outcomes(predictions, labels, metric=key)
    expected = [compute_metrics(metric, row, labels)[key] for row in predictions]
    np.testing.assert_allclose(outcomes.per_seed(), expected, atol=1e-12)


def test_unpaired_seeds_and_mismatched_examples():
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 2, 100)
    a = _outcomes(rng.integers(0, 2, (5, 100)), labels)
    b = _outcomes(rng.integers(0, 2, (3, 100)), labels, seeds=(7, 8, 9))
    assert not compare(a, b).paired_seeds
    shifted = Outcomes(b.predictions, labels, np.arange(1, 101), b.seeds, "accuracy")
    with pytest.raises(ValueError, match="different examples"):
        compare(a, shifted)
    score, low, high = score_interval(a)
    assert low <= score <= high


def test_an_equivalence_that_fails_because_a_is_better_says_so():
    table = pd.DataFrame([
        {"kind": "equivalent", "verdict": DOES_NOT_HOLD, "ci90_low": 3.1, "ci90_high": 7.0, "margin": 2.0},
        {"kind": "equivalent", "verdict": DOES_NOT_HOLD, "ci90_low": -7.0, "ci90_high": -3.1, "margin": 2.0},
        {"kind": "equivalent", "verdict": HOLDS, "ci90_low": -1.0, "ci90_high": 1.0, "margin": 2.0},
        {"kind": "better", "verdict": HOLDS, "ci90_low": 3.1, "ci90_high": 7.0, "margin": 2.0}])
    assert verdict_text(table) == [f"{DOES_NOT_HOLD} ({ABOVE})", DOES_NOT_HOLD, HOLDS, HOLDS]
    assert tally(table) == (f"2 hold, 2 do not hold (1 of them because A is better beyond the margin), "
                            f"0 {UNRESOLVED} (of 4)")
    assert tally(table.iloc[1:]) == f"2 hold, 1 do not hold, 0 {UNRESOLVED} (of 3)"
