"""Study 06's analyses of each model state, each cached in a folder and computed in the runner's workers:
probes on the first n principal components (in-domain and general-text PCA) against n random
dimensions, the explained-variance ratios, each single dimension's probe and the greedy salient
dimensions (Table 3), with every probe's test predictions for the verdicts."""
from __future__ import annotations

import logging
import pickle
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from ...data.tasks import TaskSpec, get_task
from ...paths import write_atomically
from ...runs.runner import map_jobs
from ...runs.runner import Runner
from ...stats.metrics import compute_metrics
from ...stats.probes import SEARCH_STRENGTH, STRENGTHS, greedy_forward_selection, probe_predictions, probe_results
from .features import Features, ModelState, digest

log = logging.getLogger(__name__)

RATIO_COMPONENTS = 20  # Fig. 4 shows the first 20 variance ratios
ANALYSIS_FORMAT = 2  # bump when the analysis changes, so cached analyses are recomputed
VARIANTS = ("PCA, in-domain", "PCA, general text", "random dimensions")
VERDICT_COMPONENTS = 5  # the paper's claim: 5 general-text components are within about 1 point of all
ALL, BEST_SINGLE = "all dimensions", "best single (validation)"


def natural_dimensions(spec: TaskSpec) -> int:
    """The paper's "natural" size: the number of classes; 1 for a regression."""
    return 1 if spec.is_regression else spec.num_labels


def chance_score(spec: TaskSpec, labels: dict[str, np.ndarray]) -> float:
    """Random column of Table 3: accuracy of always guessing train's majority class; 0 for Pearson r."""
    if spec.is_regression:
        return 0.0
    return float(np.mean(labels["test"] == np.bincount(labels["train"]).argmax()))


def fit_pca(features: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean (d,), components (d, d) as rows by decreasing variance, explained-variance ratio (d,)) of
    ``features`` (n, d)."""
    centred = features.astype(np.float64) - features.mean(0)
    values, vectors = np.linalg.eigh(centred.T @ centred / max(len(features) - 1, 1))
    values, vectors = np.clip(values[::-1], 0, None), vectors[:, ::-1].T
    return features.mean(0), vectors, values / values.sum()


def pca_points(hidden: int, count: int) -> list[int]:
    """``count`` log-spaced component counts from 1 to ``hidden``, with 5 (the paper's claim) added."""
    if count < 2:
        raise ValueError(f"pca_points must be >= 2 (1 and all {hidden} components at least), got {count}")
    points = set(np.round(np.geomspace(1, hidden, count)).astype(int).tolist()) | ({5} if hidden >= 5 else set())
    return sorted(points)


def variance_ratios(pretrained_pool: np.ndarray, fine_tuned_pool: np.ndarray, count: int = RATIO_COMPONENTS
                    ) -> np.ndarray:
    """Explained-variance ratio of general-text principal component i, fine-tuned over pretrained (count,)."""
    with threadpool_limits(1):  # a 384 x 384 eigh: threads only add synchronisation
        return fit_pca(fine_tuned_pool)[2][:count] / fit_pca(pretrained_pool)[2][:count]


def leading_ratio_index(ratios: np.ndarray) -> int:
    """The last index i (from 1) such that ratios 1..i all exceed 1 (Fig. 4's vertical lines); 0 if none."""
    above = np.asarray(ratios) > 1
    return int(len(above) if above.all() else np.argmin(above))


def _probe(features: dict[str, np.ndarray], labels, spec, transform, shared_scale: bool = False) -> float:
    """Test metric of the probe on ``transform(split features)``."""
    return _probe_predictions(features, labels, spec, transform, shared_scale)[0]


def _probe_predictions(features: dict[str, np.ndarray], labels, spec, transform, shared_scale: bool = False
                       ) -> tuple[float, np.ndarray]:
    """(test metric, test predictions (n,)) of the probe on ``transform(split features)``."""
    parts = [transform(features[split])[None] for split in ("train", "validation", "test")]
    guesses = probe_predictions(*parts, labels, spec, shared_scale=shared_scale)["test"][0]
    return float(compute_metrics(spec.metric, guesses, labels["test"])[spec.main_metric]), guesses


def pca_predictions(features: dict[str, np.ndarray], labels, spec: TaskSpec, n: int = VERDICT_COMPONENTS
                    ) -> dict[str, np.ndarray]:
    """Test predictions (n_test,) of the probe on the first ``n`` in-domain and general-text components."""
    bases = {VARIANTS[0]: fit_pca(features["train"]), VARIANTS[1]: fit_pca(features["pool"])}
    return {f"{variant}, {n} components": _probe_predictions(features, labels, spec,
                                                             lambda x: (x - mean) @ components[:n].T, True)[1]
            for variant, (mean, components, _) in bases.items()}


def pca_curve(features: dict[str, np.ndarray], labels, spec: TaskSpec, points: list[int], seed: int) -> list[dict]:
    """Probe test metric on the first n principal components (in-domain, general; one shared scale, so
    components keep their variances) and on n random dimensions (each standardised)."""
    bases = {VARIANTS[0]: fit_pca(features["train"]), VARIANTS[1]: fit_pca(features["pool"])}
    order = np.random.default_rng(seed).permutation(features["train"].shape[1])
    rows = []
    for n in points:
        for variant, (mean, components, _) in bases.items():
            rows.append({"variant": variant, "components": n,
                         "test_score": _probe(features, labels, spec, lambda x: (x - mean) @ components[:n].T, True)})
        rows.append({"variant": VARIANTS[2], "components": n,
                     "test_score": _probe(features, labels, spec, lambda x: x[:, order[:n]])})
    return rows


def single_neuron_scores(features: dict[str, np.ndarray], labels, spec: TaskSpec) -> dict[str, np.ndarray]:
    """Validation and test metric (each (hidden,)) of a probe on each single dimension (Fig. 6), at the
    search's fixed small L2 (one input leaves nothing to regularise away; a grid would cost 7 times as much)."""
    parts = [features[split].T[:, :, None] for split in ("train", "validation", "test")]  # (hidden, n, 1)
    return probe_results(*parts, labels, spec, strengths=(SEARCH_STRENGTH,))


def best_single_predictions(features: dict[str, np.ndarray], labels, spec: TaskSpec, validation: np.ndarray
                            ) -> tuple[int, np.ndarray]:
    """(dimension, test predictions) of the single-dimension probe with the best *validation* score
    (the first of ties): choosing the best of the test scores would report selection optimism."""
    dim = int(np.argmax(validation))
    parts = [features[split][None, :, dim:dim + 1] for split in ("train", "validation", "test")]
    return dim, probe_predictions(*parts, labels, spec, strengths=(SEARCH_STRENGTH,))["test"][0]


def salient_scores(features: dict[str, np.ndarray], labels, spec: TaskSpec, seed: int, folds: int
                   ) -> tuple[list[dict], dict[str, np.ndarray]]:
    """Table 3 for one model state: probes on all dimensions and on the greedy first 1, 5 and natural
    (rows), and each probe's test predictions (n_test,) by name (``ALL``, "greedy 1", ...)."""
    sizes = {"1": 1, "5": 5, "natural": natural_dimensions(spec)}
    hidden = features["train"].shape[1]
    steps = min(hidden, max(sizes.values()))
    chosen = greedy_forward_selection(features["train"], labels["train"], spec.num_labels, steps, folds, seed)
    score, guesses = _probe_predictions(features, labels, spec, lambda x: x)
    rows, kept = [{"subset": "All", "dims": (), "test_score": score}], {ALL: guesses}
    for name, size in sizes.items():
        dims = chosen[:min(size, hidden)]
        score, kept[f"greedy {name}"] = _probe_predictions(features, labels, spec, lambda x: x[:, dims])
        rows.append({"subset": name, "dims": tuple(dims), "test_score": score})
    return rows, kept


@dataclass
class Analysis:
    curves: pd.DataFrame  # task, state, seed, variant, components, test_score
    singles: pd.DataFrame  # task, state, seed, dim, validation_score, test_score
    salient: pd.DataFrame  # task, state, seed, subset, dims, test_score
    ratios: pd.DataFrame  # task, seed, component, ratio
    predictions: pd.DataFrame  # task, state, seed, probe, predictions (n_test,): what the verdicts compare


def _analyse_state(key: ModelState, features, labels, points: list[int], folds: int, path: Path) -> None:
    """Writes one model state's PCA curves, single-neuron scores and Table 3 rows to ``path`` (pickle)."""
    spec, tag = get_task(key.task), {"task": key.task, "state": key.state, "seed": key.seed}
    singles = single_neuron_scores(features, labels, spec)
    salient_rows, kept = salient_scores(features, labels, spec, key.seed, folds)
    dim, kept[BEST_SINGLE] = best_single_predictions(features, labels, spec, singles["validation"])
    kept.update(pca_predictions(features, labels, spec))
    rows = {"curves": [{**tag, **row} for row in pca_curve(features, labels, spec, points, key.seed)],
            "singles": [{**tag, "dim": d, "validation_score": v, "test_score": s, "chosen": d == dim}
                        for d, (v, s) in enumerate(zip(singles["validation"], singles["test"]))],
            "salient": [{**tag, **row} for row in salient_rows],
            "predictions": [{**tag, "probe": name, "predictions": guesses} for name, guesses in kept.items()]}
    write_atomically(path, lambda tmp: tmp.write_bytes(pickle.dumps(rows)))


def _ratio_rows(features: Features) -> list[dict]:
    rows = []
    for state in (s for s in features.states if s.state == "fine-tuned"):
        pretrained = next(s for s in features.states if s.task == state.task and s.state == "pretrained")
        for i, ratio in enumerate(variance_ratios(features.states[pretrained]["pool"], features.states[state]["pool"])):
            rows.append({"task": state.task, "seed": state.seed, "component": i + 1, "ratio": ratio})
    return rows


def analyse(features: Features, folder: Path, runner: Runner, pca_points_count: int = 9, folds: int = 5
            ) -> Analysis:
    """Every analysis of every model state; each state's is cached in ``folder`` by its features and
    the parameters, so a rerun only reads them; computed in ``runner``'s worker processes."""
    parameters = [pca_points_count, folds, STRENGTHS, SEARCH_STRENGTH, ANALYSIS_FORMAT]
    paths = {state: folder / f"analysis-{digest([key, *parameters])}.pkl" for state, key in features.keys.items()}
    jobs = [(state, arrays, features.labels[state.task], pca_points(arrays["train"].shape[1], pca_points_count), folds,
             paths[state]) for state, arrays in features.states.items() if not paths[state].exists()]
    start = time.perf_counter()
    map_jobs(runner, _analyse_state, jobs, "analysing", one_thread=True)
    log.info("analysis: %d model states computed in %.0f s, %d read from %s", len(jobs), time.perf_counter() - start,
             len(paths) - len(jobs), folder)
    rows = {"curves": [], "singles": [], "salient": [], "predictions": []}
    for path in paths.values():
        for name, part in pickle.loads(path.read_bytes()).items():
            rows[name] += part
    return Analysis(*(pd.DataFrame(rows[name]) for name in ("curves", "singles", "salient")),
                    pd.DataFrame(_ratio_rows(features)), pd.DataFrame(rows["predictions"]))
