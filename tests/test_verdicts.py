"""The verdicts' statistics: interval coverage in both variance regimes, the three-way TOST verdict, degenerate
runs, and the exact leave-one-out scores."""
import numpy as np
import pandas as pd
import pytest

from fewdims_helpers.stats.metrics import compute_metrics
from fewdims_helpers.stats.scores import leave_one_out
from fewdims_helpers.stats.verdicts import ABOVE, DIFFERS, DOES_NOT_HOLD, HOLDS, INVALID, UNRESOLVED, Outcomes, \
    borderline, compare, coverage, decide, distinct, score_interval, simulated_pair, tally, \
    verdict_row, verdict_text


def _outcomes(predictions, labels, seeds=None, metric="accuracy"):
    predictions = np.atleast_2d(predictions)
    return Outcomes(predictions, np.asarray(labels), np.arange(len(labels)),
                    tuple(seeds if seeds is not None else range(len(predictions))), metric)


def _simulate(rng, n, seeds, p_a, p_b, seed_sd=0.02):
    return simulated_pair(rng, n, seeds, p_a, p_b, seed_sd)


@pytest.mark.parametrize("seed_sd", [0.002, 0.04], ids=["examples dominate", "seed SD 4 points per side"])
def test_the_ninety_percent_interval_covers_a_planted_difference_in_both_regimes(seed_sd):
    """5 seeds x 2,000 examples, 240 replicates: the interval TOST uses covers the planted 4-point difference
    at 87% or more, whether example noise or seed variance dominates (the earlier two-level percentile
    bootstrap covered 80% at a seed SD of 4 points), and is not wildly conservative either."""
    measured = coverage(240, 2000, 5, seed_sd)
    assert 0.87 <= measured["coverage90"] <= 0.97, measured


def test_a_failing_seed_costs_coverage_but_not_much():
    """Each seed of side A fails (loses 8 points) with probability 0.2, at a seed SD of 1 point: a third of the
    studies draw no failing seed, so nothing in them shows the failures and their interval sits above the
    population difference. The 90% interval still covers it in at least 75% of studies (benchmarks/coverage.py
    measures the regime at 1,000 replicates; the README states what it prints), and a failing seed is often
    named as an outlier seed."""
    measured = coverage(240, 2000, 5, 0.01, failing=0.08)
    assert 0.75 <= measured["coverage90"] < 0.9, measured
    assert measured["outlier_seed_share"] > coverage(240, 2000, 5, 0.01)["outlier_seed_share"]


@pytest.mark.parametrize("metric", ["accuracy", "pearson", "matthews_correlation", "f1"])
def test_leave_one_out_scores_are_exact(metric):
    rng = np.random.default_rng(5)
    if metric == "pearson":
        labels, predictions = rng.normal(size=40), rng.normal(size=(2, 40))
        predictions[0] += labels
    else:
        labels, predictions = rng.integers(0, 2, 40), rng.integers(0, 2, (2, 40))
    loo = leave_one_out(metric, predictions, labels)
    for i in (0, 17, 39):
        keep = np.arange(40) != i
        expected = _outcomes(predictions[:, keep], labels[keep], metric=metric).per_seed()
        np.testing.assert_allclose(loo[:, i], expected, atol=1e-12)


def test_a_run_that_predicts_one_class_is_degenerate_and_its_verdict_invalid():
    rng = np.random.default_rng(6)
    labels = rng.integers(0, 2, 1000)  # balanced: majority about 50%
    trained = np.stack([np.where(rng.random(1000) < 0.8, labels, 1 - labels) for _ in range(3)])
    collapsed = trained.copy()
    collapsed[1] = 0  # seed 1 predicts one class for every item
    good, bad = _outcomes(trained, labels), _outcomes(collapsed, labels)
    assert list(bad.degenerate()) == [False, True, False] and not good.degenerate().any()
    comparison = compare(good, bad)
    assert comparison.verdict == INVALID and comparison.invalid == "b"
    row = pd.DataFrame([{"a": "2 dims", "b": "layer 1 full vector", "invalid_side": comparison.invalid,
                         **{k: v for k, v in comparison.as_row().items() if k != "invalid_side"}}])
    assert verdict_text(row) == ["invalid: layer 1 full vector did not train"]
    assert "1 invalid" in tally(row)
    # a task whose majority is 85%: predicting it 97% of the time is not flagged
    skewed = (rng.random(1000) < 0.15).astype(int)
    assert not _outcomes(np.zeros((1, 1000), dtype=int), skewed).degenerate().any()
    # a regression output with no spread
    valence = rng.normal(size=500)
    flat = _outcomes(np.full((2, 500), 0.3), valence, metric="pearson")
    assert flat.degenerate().all()
    assert not _outcomes(valence[None] + rng.normal(size=(1, 500)), valence, metric="pearson").degenerate().any()


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


def test_an_unresolved_row_whose_interval_excludes_zero_says_it_differs():
    table = pd.DataFrame([
        {"kind": "equivalent", "verdict": UNRESOLVED, "ci90_low": 0.4, "ci90_high": 2.6, "margin": 2.0},
        {"kind": "equivalent", "verdict": UNRESOLVED, "ci90_low": -0.4, "ci90_high": 2.6, "margin": 2.0}])
    assert verdict_text(table) == [f"{UNRESOLVED} ({DIFFERS})", UNRESOLVED]
    assert "(1 of them differ from 0" in tally(table)


def test_the_interval_is_deterministic_and_reads_both_variance_sources():
    rng = np.random.default_rng(7)
    a, b = _simulate(rng, 2000, 5, 0.78, 0.74, seed_sd=0.03)
    first, second = compare(a, b), compare(a, b)
    assert (first.low90, first.high90) == (second.low90, second.high90)  # no Monte Carlo error
    assert first.seed_sd > 0 and first.example_sd > 0 and 4 <= first.df < np.inf


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


def test_projecting_fewer_seeds_widens_the_interval_by_the_seed_term_only():
    from fewdims_helpers.stats.verdicts import projected

    rng = np.random.default_rng(8)
    a, b = _simulate(rng, 2000, 5, 0.78, 0.765, seed_sd=0.02)
    comparison = compare(a, b)
    table = pd.DataFrame([comparison.as_row()])
    same = projected(table, 5).iloc[0]
    assert same.projected_ci90_high - same.projected_ci90_low <= comparison.high90 - comparison.low90 + 0.5
    fewer = projected(table, 3).iloc[0]
    assert fewer.projected_ci90_high - fewer.projected_ci90_low > same.projected_ci90_high - same.projected_ci90_low
    with pytest.raises(ValueError, match="regenerate"):
        projected(table.drop(columns="seed_se"), 3)


def _accuracy_rows(rng, labels, accuracies):
    """One row of predictions per seed, right on a share ``accuracy`` of the items."""
    return np.stack([np.where(rng.random(len(labels)) < acc, labels, 1 - labels) for acc in accuracies])


def test_a_verdict_carried_by_one_seed_is_fragile_and_its_seed_an_outlier():
    """Side A's seed 3 lost 15 points: leaving it out flips the verdict (fragile), and it is named as an outlier
    seed, kept in the estimate."""
    rng = np.random.default_rng(11)
    labels = rng.integers(0, 2, 3000)
    b = _outcomes(_accuracy_rows(rng, labels, [0.90] * 5), labels)
    a = _outcomes(_accuracy_rows(rng, labels, [0.90, 0.905, 0.895, 0.75, 0.90]), labels)
    result = compare(a, b, "equivalent", 2.0)
    assert result.verdict != HOLDS and result.loo_runs == 5
    assert result.loo_same < 5 and result.fragile
    assert result.outlier_seeds.startswith("a: seed 3 (") and "b:" not in result.outlier_seeds
    assert result.seeds == 5  # kept, not dropped
    steady = compare(b, b, "equivalent", 2.0)
    assert steady.loo_same == steady.loo_runs == 5 and not steady.fragile and steady.outlier_seeds == ""
    row = pd.DataFrame([verdict_row("02", "claim", "t", "A", "B", result)])
    assert "fragile" in verdict_text(row)[0] and "outlier seed a: seed 3" in verdict_text(row)[0]
    assert "1 fragile" in tally(row) and "1 with an outlier seed" in tally(row)


def test_outlier_seeds_are_rare_on_a_normal_side():
    """The 3-SD rule reckoned for five seeds flags few sides whose seeds vary normally (simulated: about 1 in 80;
    a median-absolute-deviation rule flagged about 6 in 10)."""
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 2000)
    flagged = [bool(_outcomes(_accuracy_rows(rng, labels, 0.8 + rng.normal(0, 0.02, 5)), labels).outlier_seeds())
               for _ in range(200)]
    assert np.mean(flagged) <= 0.05


def test_borderline_marks_a_bound_within_a_tenth_of_a_point_of_its_threshold():
    assert borderline("equivalent", -1.0, 1.95, 2.0) and borderline("equivalent", -2.05, 1.0, 2.0)
    assert not borderline("equivalent", -1.5, 1.5, 2.0)
    assert borderline("better", 0.05, 3.0, 2.0) and not borderline("better", 0.5, 3.0, 2.0)


def test_a_single_seed_side_takes_the_other_sides_degrees_of_freedom():
    """04's converged probe has one seed: the seed term is the other side's, with its 4 degrees of freedom, so the
    interval's degrees of freedom stay near the seed level, not at the examples' thousands."""
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, 4000)
    a = _outcomes(_accuracy_rows(rng, labels, 0.8 + rng.normal(0, 0.03, 5)), labels)
    b = _outcomes(_accuracy_rows(rng, labels, [0.8]), labels, seeds=[0])
    result = compare(a, b)
    assert not result.paired_seeds and result.df < 50


def test_distinct_keeps_each_comparison_once_and_prefers_the_valid_twin():
    base = {"study": "02", "task": "rt-valence", "difference": -1.25, "ci_low": -3.0, "ci_high": 0.5, "verdict": HOLDS}
    table = pd.DataFrame([{**base, "claim": "way 2", "a": "best", "b": "all", "verdict": INVALID},
                          {**base, "claim": "way 3", "a": "best", "b": "all"},
                          {**base, "claim": "other", "a": "x", "b": "y", "difference": -1.0}])
    kept = distinct(table)
    assert list(kept["claim"]) == ["way 3", "other"]
    assert kept["same_as"].iloc[0] == "02: way 2 (best vs all)" and kept["same_as"].iloc[1] == ""


def test_the_regression_degeneracy_test_is_scale_free():
    """A head whose outputs vary by a millionth still ranks the examples (Pearson is scale-free); only an output
    that takes one value is degenerate."""
    rng = np.random.default_rng(4)
    valence = rng.normal(size=500)
    tiny = 0.3 + 1e-6 * (valence + rng.normal(size=500))
    assert not _outcomes(tiny[None], valence, metric="pearson").degenerate().any()
    mostly_flat = np.full(500, 0.3)
    mostly_flat[:5] = 1.0
    assert _outcomes(mostly_flat[None], valence, metric="pearson").degenerate().all()


@pytest.mark.parametrize("metric, key", [("accuracy", "accuracy"), ("matthews", "matthews_correlation"),
                                         ("f1_accuracy", "f1"), ("pearson_spearman", "pearson")])
def test_one_batched_score_for_numpy_and_torch_rows_with_a_mask_of_examples(metric, key):
    """scores.batch_scores is what the verdicts (numpy), the subset scans and the probes' folds (torch, masked) call:
    every row's score over its masked examples equals the oracle's on just those examples."""
    import torch

    from fewdims_helpers.stats.scores import batch_scores

    rng = np.random.default_rng(5)
    if key == "pearson":
        labels = rng.normal(size=150)
        predictions = labels[None] * rng.uniform(0, 2, (4, 1)) + rng.normal(size=(4, 150))
    else:
        labels, predictions = rng.integers(0, 2, 150), rng.integers(0, 2, (4, 150))
    mask = rng.random((4, 150)) < 0.7
    expected = [compute_metrics(metric, row[keep], labels[keep])[key] for row, keep in zip(predictions, mask)]
    masked = batch_scores(key, torch.from_numpy(predictions), torch.from_numpy(labels), torch.from_numpy(mask.astype(float)))
    np.testing.assert_allclose(masked.numpy(), expected, atol=1e-12)
    whole = [compute_metrics(metric, row, labels)[key] for row in predictions]
    np.testing.assert_allclose(batch_scores(key, predictions, labels), whole, atol=1e-12)
    on_torch = batch_scores(key, torch.from_numpy(predictions), torch.from_numpy(labels)).numpy()
    if key == "pearson":  # numpy and torch sum in different orders: equal to rounding
        np.testing.assert_allclose(on_torch, batch_scores(key, predictions, labels), rtol=0, atol=1e-15)
    else:  # counts: exactly
        np.testing.assert_array_equal(on_torch, batch_scores(key, predictions, labels))
    with pytest.raises(ValueError, match="no batched score for metric 'spearman'"):
        batch_scores("spearman", predictions, labels)
