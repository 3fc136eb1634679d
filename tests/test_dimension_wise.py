"""Dimension-wise invariants: cached-feature subset scoring equals masking the model's head;
the exhaustive pair scan agrees with per-subset scoring; subset sampling is distinct and seeded."""
import dataclasses
import itertools

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import pearsonr

from fewdims_helpers.config import ConfigError
from fewdims_helpers.stats.subsets import CachedHead, drop_one, masked_logits, pair_table, subset_predictions, \
    refit_scores, sample_subsets, scan_all_pairs, score_subsets, top_pairs
from fewdims_helpers.data.tasks import TaskSpec
from fewdims_helpers.training.loop import build_model

from conftest import tiny_config


def random_head(num_labels: int, hidden: int = 12, n: int = 60, seed: int = 0) -> CachedHead:
    rng = np.random.default_rng(seed)
    features = {s: rng.normal(size=(n, hidden)).astype(np.float32) for s in ("train", "validation", "test")}
    if num_labels == 1:
        labels = {s: (f[:, 3] + 0.1 * rng.normal(size=n)).astype(np.float32) for s, f in features.items()}
        metric, main = "pearson_spearman", "pearson"
    else:
        labels = {s: (f[:, 3] > 0).astype(np.int64) if num_labels == 2 else rng.integers(0, num_labels, n)
                  for s, f in features.items()}
        metric, main = "accuracy", "accuracy"
    return CachedHead(rng.normal(size=(num_labels, hidden)).astype(np.float32),
                      rng.normal(size=num_labels).astype(np.float32), features, labels, synthetic_spec(num_labels, metric, main))


def synthetic_spec(num_labels: int, metric: str = "accuracy", main: str = "accuracy") -> TaskSpec:
    return TaskSpec("synthetic", "packaged", ("text",), num_labels, metric, main)


def test_subset_scoring_on_cached_features_equals_masking_the_models_head():
    model = build_model(tiny_config()).eval()  # binary head on hidden 32
    rng = np.random.default_rng(1)
    features = rng.normal(size=(40, 32)).astype(np.float32)
    labels = rng.integers(0, 2, 40)
    head = CachedHead(model.head[0].weight.detach().numpy(), model.head[0].bias.detach().numpy(),
                      {"test": features}, {"test": labels}, synthetic_spec(2))
    for subset in [(0, 5), (3, 17, 31), (7,)]:
        masked = build_model(tiny_config(selected_dims=subset)).eval()
        masked.head.load_state_dict(model.head.state_dict())
        with torch.no_grad():
            logits = masked.classify(torch.from_numpy(features)).numpy()
        expected = float((logits.argmax(1) == labels).mean())
        assert score_subsets(head, np.array([subset]), "test")[0] == pytest.approx(expected)


@pytest.mark.parametrize("num_labels", [1, 2, 4])
def test_exhaustive_pair_scan_agrees_with_per_subset_scoring(num_labels):
    head = random_head(num_labels)
    pairs, scanned = pair_table(scan_all_pairs(head, "validation"))
    assert len(pairs) == 12 * 11 // 2
    assert np.allclose(scanned, score_subsets(head, pairs, "validation"), atol=1e-5)
    i, j = pairs[7]
    logits = head.features["validation"][:, [i, j]] @ head.weight[:, [i, j]].T + head.bias
    if num_labels == 1:
        expected = pearsonr(logits[:, 0], head.labels["validation"])[0]
    else:
        expected = (logits.argmax(1) == head.labels["validation"]).mean()
    assert scanned[7] == pytest.approx(expected, abs=1e-5)


def test_sampled_subsets_are_distinct_sorted_and_reproducible():
    subsets = sample_subsets(384, 3, 5000, seed=7)
    assert len(set(subsets)) == 5000
    assert all(len(s) == 3 and list(s) == sorted(set(s)) and max(s) < 384 for s in subsets)
    assert subsets == sample_subsets(384, 3, 5000, seed=7)
    assert subsets != sample_subsets(384, 3, 5000, seed=8)
    everything = sample_subsets(6, 2, 15, seed=0)  # all of them: the dense path
    assert sorted(everything) == list(itertools.combinations(range(6), 2))
    assert not set(sample_subsets(6, 2, 5, seed=0, exclude=set(everything[:10]))) & set(everything[:10])
    with pytest.raises(ConfigError, match="cannot sample 16 distinct 2-subsets"):
        sample_subsets(6, 2, 16, seed=0)


def test_drop_one_gives_each_smaller_subset():
    assert drop_one((4, 9, 11)) == [(9, 11), (4, 11), (4, 9)]


def test_refit_finds_the_informative_dimension():
    head = random_head(2)  # labels are the sign of dimension 3
    assert refit_scores(head, (3,))["test"] > 0.9
    assert refit_scores(head, (0, 1))["test"] < 0.75


@pytest.mark.parametrize("num_labels", [1, 2, 4])
def test_masked_logits_score_as_the_subset_scan_scores_them(num_labels):
    """The per-example predictions behind a verdict give the same metric as the vectorised scan."""
    from fewdims_helpers.stats.verdicts import Outcomes

    head = random_head(num_labels)
    for subset in [(2, 5), (3,), (0, 7, 11)]:
        logits = masked_logits(head, subset, "test")
        outcomes = Outcomes.from_logits([logits], head.labels["test"], np.arange(60), [0], head.main_metric)
        assert outcomes.score() == pytest.approx(float(score_subsets(head, np.array([subset]), "test")[0]), abs=1e-5)
    everything = masked_logits(head, "all", "test")
    assert np.allclose(everything, head.features["test"] @ head.weight.T + head.bias, atol=1e-5)


@pytest.mark.parametrize("num_labels", [1, 2])
def test_refit_predictions_score_as_the_refit_scores(num_labels):
    from fewdims_helpers.stats.metrics import compute_metrics

    head = random_head(num_labels)
    predicted = subset_predictions(head, (3, 4), "test")
    expected = refit_scores(head, (3, 4))["test"]
    assert compute_metrics(head.metric, predicted, head.labels["test"])[head.main_metric] == pytest.approx(expected)


def test_top_pairs_are_the_best_of_the_scan_best_first():
    head = random_head(2)
    matrix = scan_all_pairs(head, "validation")
    top = top_pairs(matrix, 5)
    scores = [matrix[p] for p in top]
    assert scores == sorted(scores, reverse=True) and len(set(top)) == 5
    assert scores[0] == np.nanmax(matrix) and all(i < j for i, j in top)
    assert scores[-1] >= np.sort(matrix[np.isfinite(matrix)])[::-1][4]


def test_way_one_selects_with_the_selection_seed_and_cuts_what_it_is_told():
    from fewdims_helpers.setup.profiles import get_profile
    from fewdims_helpers.studies.dimension_wise import random_subset_configs

    profile = dataclasses.replace(get_profile("smoke"), seq_lengths=tuple((t, 16) for t in get_profile("smoke").tasks))
    configs = random_subset_configs(profile, 2, cut=(("bbc-news", 1),))
    assert {c.train.seed for c in configs} == {profile.selection_seed} and profile.selection_seed not in profile.seeds
    assert not [c for c in configs if c.data.task == "bbc-news" and len(c.model.selected_dims) == 1]
    assert len(configs) == 2 * (3 * len(profile.tasks) - 1)


def _smoke_profile():
    from fewdims_helpers.setup.profiles import get_profile

    profile = get_profile("smoke")
    return dataclasses.replace(profile, seq_lengths=tuple((t, 16) for t in profile.tasks))


def test_a_random_control_is_drawn_afresh_per_seed_reproducibly_and_recorded_in_its_config(tmp_path):
    from fewdims_helpers.runs.runner import Runner
    from fewdims_helpers.runs.store import RunStore
    from fewdims_helpers.studies.dimension_wise import control_configs, control_subset, planned_runs

    profile = _smoke_profile()  # hidden 32, seeds 0, 1, 2
    for k in (1, 2, 3):
        draws = [control_subset(profile, "rt-polarity", 1, k, seed) for seed in range(6)]
        assert all(len(d) == k == len(set(d)) and list(d) == sorted(d) and max(d) < 32 for d in draws)
        assert draws == [control_subset(profile, "rt-polarity", 1, k, seed) for seed in range(6)]  # seeded, not random
        assert len(set(draws)) > 1, "a fresh draw per seed"
    # the task and the way are in the seed as well
    assert {control_subset(profile, task, way, 3, 0) for task in profile.tasks for way in (1, 2, 3)} != \
        {control_subset(profile, "rt-polarity", 1, 3, 0)}
    cut = (("bbc-news", 1),)
    configs = control_configs(profile, cut=cut)
    assert len(configs) == (3 * len(profile.tasks) - 1) * len(profile.seeds)
    for config in configs:  # the draw is in the config, trained with the reported seed it was drawn for
        k = len(config.model.selected_dims)
        assert config.model.selected_dims == control_subset(profile, config.data.task, 1, k, config.train.seed)
        assert config.train.seed in profile.seeds and (config.data.task, k) not in cut
        assert config.train == profile.run_config(config.data.task, config.train.seed).train  # the best subset's recipe
    planned = {run.config.run_id for run in planned_runs(profile, Runner(RunStore(tmp_path)), fixed_cut=cut).runs}
    assert {c.run_id for c in configs} <= planned


def test_a_random_draw_that_is_the_best_subset_is_kept_and_counted():
    from fewdims_helpers.studies.dimension_wise import Scan, control_draws, control_subset

    profile = _smoke_profile()
    task = profile.tasks[0]
    # way 1's best 2-subset happens to be seed 1's draw; way 2's best 1-subset of seed 2 is that seed's draw
    best_way1 = control_subset(profile, task, 1, 2, 1)
    fixed = pd.DataFrame([{"data.task": task, "source": "reported", "k": 2, "model.selected_dims": best_way1,
                           "train.seed": seed} for seed in profile.seeds])
    def other(subset):  # a subset of the same size that is not ``subset``
        return tuple(sorted((d + 1) % 32 for d in subset))
    scanned = pd.DataFrame([{"task": task, "seed": seed, "k": 1, "subset": control_subset(profile, task, 2, 1, seed)
                             if seed == 2 else other(control_subset(profile, task, 2, 1, seed))}
                            for seed in profile.seeds])
    scan = Scan(scanned, {}, {}, {}, {}, pd.DataFrame())
    draws = control_draws(profile, fixed, {"dropconnect": scan}, ks=(1, 2))
    one = draws[draws.way_key == 1]
    assert list(one.seed) == list(profile.seeds) and set(one.k) == {2}
    assert list(one.coincides) == [seed == 1 for seed in profile.seeds]
    two = draws[draws.way_key == 2]
    assert list(two.coincides) == [seed == 2 for seed in profile.seeds]
    assert not (draws.way_key == 3).any() or list(draws[draws.way_key == 3].best_subset) == list(two.best_subset)
    assert (draws.random_subset.map(len) == draws.k).all()
    assert draws.coincides.sum() == sum(a == b for a, b in zip(draws.random_subset, draws.best_subset))


def test_the_findings_read_the_random_controls_from_the_verdicts():
    from fewdims_helpers.report.findings import BEST_VS_ALL, BEST_VS_RANDOM, RANDOM_VS_ALL, subset_readings, \
        subset_summary
    from fewdims_helpers.stats.verdicts import HOLDS, UNRESOLVED

    def cell(task, k, best, beats, random):
        return [{"study": "02", "task": task, "way": "1: fine-tuned on subset", "k": k, "sides": c, "verdict": v}
                for c, v in ((BEST_VS_ALL, best), (BEST_VS_RANDOM, beats), (RANDOM_VS_ALL, random))]
    table = pd.DataFrame(cell("t", 1, HOLDS, UNRESOLVED, HOLDS) + cell("t", 2, HOLDS, HOLDS, UNRESOLVED)
                         + cell("t", 3, HOLDS, UNRESOLVED, UNRESOLVED))
    line, = subset_readings(table)
    assert line.startswith("- t, way 1: fine-tuned on subset: k = 1: a random 1-subset is enough too")
    assert "k = 2: the best 2-subset beats a random one and is enough: the chosen dimensions matter" in line
    assert "k = 3: the best 3-subset is enough but not shown to beat a random one" in line
    summary = subset_summary(table)
    assert "matter (best enough, beats random) at t way 1 k = 2;" in summary
    assert summary.endswith("(a random subset is enough) at t way 1 k = 1")
    assert subset_readings(table[table.sides == BEST_VS_ALL]) == []  # no controls, nothing read
