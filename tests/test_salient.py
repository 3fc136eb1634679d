"""Study 06 invariants: the vectorised probes equal scikit-learn's; greedy selection finds a planted
dimension; the general pool never holds task text and its PCA sees only pool features; the
variance-ratio index counts the leading ratios above 1; nothing breaks on tiny folds."""
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression, Ridge

from fewdims_helpers.data import general_text
from fewdims_helpers.stats import probes
from fewdims_helpers.options import DataSources, RunOptions
from fewdims_helpers.runs.store import RunStore
from fewdims_helpers.studies import salient
from fewdims_helpers.data.tasks import PACKAGED_TASKS, get_task, load_task, read_bbc_news, read_rotten_tomatoes
from fewdims_helpers.runs.runner import Runner, map_jobs


def planted(n: int, hidden: int, num_labels: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian features (n, hidden) whose labels depend on dimension ``dim`` only."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n, hidden)).astype(np.float32)
    signal = features[:, dim] + 0.3 * rng.normal(size=n)
    if num_labels == 1:
        return features, signal.astype(np.float32)
    return features, np.digitize(signal, np.quantile(signal, np.linspace(0, 1, num_labels + 1)[1:-1])).astype(np.int64)


@pytest.mark.parametrize("num_classes", [2, 4])
@pytest.mark.parametrize("strength", [0.1, 10.0])
def test_batched_logistic_equals_sklearn(num_classes, strength):
    rng = np.random.default_rng(num_classes)
    x = rng.normal(size=(80, 3))
    y = (x @ rng.normal(size=(3, num_classes)) + rng.normal(size=(80, num_classes))).argmax(1)
    theta = probes.fit_logistic(torch.from_numpy(x)[None], torch.from_numpy(y), num_classes,
                                torch.tensor([strength]))[0]  # (k, d + 1)
    reference = LogisticRegression(C=1 / strength, tol=1e-10, max_iter=10_000).fit(x, y)
    np.testing.assert_allclose(theta[:, :-1].numpy(), reference.coef_, atol=1e-5)
    outputs = probes.decision(theta[None], torch.from_numpy(x)[None])[0]  # (n, k)
    probabilities = torch.sigmoid(outputs[:, 0]) if num_classes == 2 else torch.softmax(outputs, -1)
    expected = reference.predict_proba(x)[:, 1] if num_classes == 2 else reference.predict_proba(x)
    np.testing.assert_allclose(probabilities.numpy(), expected, atol=1e-6)


def test_batched_ridge_with_row_weights_equals_sklearn_on_the_kept_rows():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(50, 4)), rng.normal(size=50)
    kept = rng.random(50) < 0.7
    theta = probes.fit_ridge(torch.from_numpy(x)[None], torch.from_numpy(y), torch.tensor([3.0]),
                             torch.from_numpy(kept.astype(float))[None])[0, 0]
    reference = Ridge(alpha=3.0).fit(x[kept], y[kept])
    np.testing.assert_allclose(theta[:-1].numpy(), reference.coef_, atol=1e-10)
    assert theta[-1].item() == pytest.approx(reference.intercept_, abs=1e-10)


def test_newton_and_sklearn_paths_of_probe_scores_agree(monkeypatch):
    features, labels = planted(90, 6, 3, dim=2)
    labels = labels * 2  # classes 0, 2 and 4 of five: outputs must stay in class-id columns
    splits = {"train": slice(0, 40), "validation": slice(40, 65), "test": slice(65, 90)}
    parts = [features[None, rows] for rows in splits.values()]
    spec = get_task("bbc-news")  # five labels, only three of which occur
    label_parts = {split: labels[rows] for split, rows in splits.items()}
    newton = probes.probe_scores(*parts, label_parts, spec)
    monkeypatch.setattr(probes, "NEWTON_MAX_PARAMETERS", 0)
    assert probes.probe_scores(*parts, label_parts, spec) == pytest.approx(newton)


@pytest.mark.parametrize("num_labels", [1, 2, 5])
def test_greedy_selection_recovers_a_planted_dimension(num_labels):
    features, labels = planted(200, 40, num_labels, dim=17)
    assert probes.greedy_forward_selection(features, labels, num_labels, steps=2)[0] == 17


def test_greedy_selection_survives_tiny_folds_and_a_class_missing_from_a_fold():
    features, labels = planted(24, 8, 5, dim=3)
    labels[labels == 4] = 0
    labels[0] = 4  # a class with a single member: absent from four of the five training folds
    chosen = probes.greedy_forward_selection(features, labels, 5, steps=5)
    assert len(set(chosen)) == 5 and all(0 <= d < 8 for d in chosen)


def test_folds_are_stratified_and_bad_sizes_fail_in_one_line():
    labels = np.repeat([0, 1, 2], [10, 20, 30])
    fold = probes.fold_ids(labels, 5, seed=0)
    for value, count in ((0, 2), (1, 4), (2, 6)):
        assert np.bincount(fold[labels == value], minlength=5).tolist() == [count] * 5
    with pytest.raises(ValueError, match="needs at least 5 training examples"):
        probes.fold_ids(labels[:3], 5, seed=0)
    with pytest.raises(ValueError, match="steps must be between 1 and the 4 dimensions"):
        probes.greedy_forward_selection(np.zeros((20, 4), np.float32), np.zeros(20, np.int64), 2, steps=5)


def test_general_pool_never_contains_task_text(monkeypatch):
    data = DataSources()
    sources = {t.strip() for t in read_rotten_tomatoes(data)[0] + read_bbc_news(data)[0]}
    small = {str(t).strip() for task in PACKAGED_TASKS for split in load_task(task, data, 0, 48, 24).values()
             for t in split[get_task(task).text_fields[0]]}
    pool = salient.general_pool(PACKAGED_TASKS, len(salient.read_general_text(data)) - 100, data)  # nearly all of it
    assert small <= sources and not sources & set(pool)
    clean = ("a clean sentence", "another one", "a third")
    monkeypatch.setattr(general_text, "read_general_text", lambda _: (*sorted(small)[:3], *clean))  # task texts planted
    assert set(salient.general_pool(PACKAGED_TASKS, 3, data)) == set(clean)
    with pytest.raises(ValueError, match="pool_size must be between 2 and 3 "):
        salient.general_pool(PACKAGED_TASKS, 4, data)


def test_general_pca_is_fitted_on_pool_features_only(monkeypatch):
    rng = np.random.default_rng(0)
    scale = {"train": [10.0, 0.1], "validation": [10.0, 0.1], "test": [10.0, 0.1], "pool": [0.1, 10.0]}
    features = {split: rng.normal(size=(120, 2)) * s for split, s in scale.items()}
    labels = {split: (f[:, 1] > 0).astype(np.int64) for split, f in features.items() if split != "pool"}
    fitted = []
    monkeypatch.setattr(salient.analysis, "fit_pca", lambda f, real=salient.fit_pca: fitted.append(f) or real(f))
    rows = salient.pca_curve(features, labels, get_task("rt-polarity"), [1], seed=0)
    assert fitted[0] is features["train"] and fitted[1] is features["pool"] and len(fitted) == 2
    score = {row["variant"]: row["test_score"] for row in rows}
    # the label lives on the pool's main axis, which is the task's minor one
    assert score["PCA, general text"] > 0.95 and score["PCA, in-domain"] < 0.7


def test_variance_ratio_index_counts_the_leading_ratios_above_one():
    assert salient.leading_ratio_index(np.array([3.7, 2.0, 1.3, 1.1, 0.76, 1.2])) == 4  # a later 1.2 does not count
    assert salient.leading_ratio_index(np.array([0.9, 2.0])) == 0
    assert salient.leading_ratio_index(np.array([1.0, 2.0])) == 0  # equal is not above
    assert salient.leading_ratio_index(np.array([1.5, 1.2])) == 2
    rng = np.random.default_rng(0)
    pretrained = rng.normal(size=(2000, 8))
    scale = np.ones(8)
    scale[:3] = [3.0, 2.5, 2.0]  # three directions gain a larger share of the variance after "fine-tuning"
    ratios = salient.variance_ratios(pretrained, rng.normal(size=(2000, 8)) * scale, count=8)
    assert salient.leading_ratio_index(ratios) == 3


def test_pca_points_are_log_spaced_and_include_five():
    assert salient.pca_points(384, 9) == [1, 2, 4, 5, 9, 20, 41, 87, 183, 384]
    with pytest.raises(ValueError, match="pca_points must be >= 2"):
        salient.pca_points(384, 1)


@pytest.mark.slow  # spawns worker processes
def test_jobs_run_in_parallel_workers_write_their_results(tmp_path):
    jobs = [(tmp_path / f"{name}.txt", name) for name in ("a", "b", "c")]
    runner = Runner(RunStore(tmp_path), RunOptions(workers=2, progress=False))
    map_jobs(runner, Path.write_text, jobs, "writing", one_thread=True)
    assert [path.read_text() for path, _ in jobs] == ["a", "b", "c"]


def test_best_single_neuron_is_chosen_on_validation_not_test():
    rng = np.random.default_rng(0)
    n = 300
    labels = {split: rng.integers(0, 2, n) for split in ("train", "validation", "test")}
    features = {}
    for split, y in labels.items():
        x = rng.normal(size=(n, 3))
        x[:, 0] += 0.8 * (2 * y - 1) if split != "test" else 0.0  # informative on train and validation only
        x[:, 1] += 0.8 * (2 * y - 1) if split != "validation" else 0.0  # informative on train and test only
        features[split] = x
    spec = get_task("rt-polarity")
    scores = salient.single_neuron_scores(features, labels, spec)
    assert np.argmax(scores["test"]) == 1  # the best of the test scores is the optimistic pick
    dim, guesses = salient.best_single_predictions(features, labels, spec, scores["validation"])
    assert dim == 0 and guesses.shape == (n,)
    assert np.mean(guesses == labels["test"]) == pytest.approx(scores["test"][0])


def test_probe_predictions_score_what_probe_results_report():
    features, labels = planted(240, 6, 5, dim=2)
    parts = {split: features[i * 80:(i + 1) * 80][None] for i, split in enumerate(("train", "validation", "test"))}
    y = {split: labels[i * 80:(i + 1) * 80] for i, split in enumerate(("train", "validation", "test"))}
    spec = get_task("bbc-news")
    guesses = probes.probe_predictions(parts["train"], parts["validation"], parts["test"], y, spec)
    scores = probes.probe_results(parts["train"], parts["validation"], parts["test"], y, spec)
    assert np.mean(guesses["test"][0] == y["test"]) == pytest.approx(scores["test"][0])
