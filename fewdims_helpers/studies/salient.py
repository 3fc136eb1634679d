"""Study 06: Matton & de Oliveira (2020), "Emergent Properties of Finetuned Language Representation
Models": how compressible is the [CLS] vector, and are there salient neurons?

Reproduced, for the pretrained model and for each fine-tuned model (study 04's standard runs):
- Sec. 3.1.1-3.1.2 (Figs. 1-3): test metric of a linear probe on the first n principal components,
  PCA fitted in-domain (task train features) or on general text, against n random dimensions;
- Sec. 3.1.3 (Fig. 4): explained-variance ratios of the general-text PCA, fine-tuned over pretrained,
  and the last leading index where they exceed 1, against the number of classes;
- Sec. 3.2 (Table 3, Figs. 5-6): each single dimension's probe, and greedy forward selection with
  5-fold cross-validation on train to 1, 5 and "natural" (number of classes) dimensions.
Probes (``probes.py``): logistic or ridge on features standardised on train, strength chosen on
validation, scored on test; the greedy search is vectorised (all candidates x folds as one batch of
Newton fits, closed-form ridge for regression) instead of scikit-learn's SequentialFeatureSelector.

Where our setting differs: MiniLM (hidden 384) and small packaged tasks instead of BERT-base on IMDB,
AG-news and DBpedia; the general text is a seeded sample of ``pool_size`` tweets, Amazon-review and
NYT-editorial snippets (vaderSentiment's archive) with every task text removed, instead of 1M
Wikipedia sentences; rt-valence is a regression (ridge, Pearson r; "natural" = 1 dimension); the
fine-tuned "All" column is a probe refit on all dimensions (the run's own head is shown beside it).

Verdicts (``verdicts``), for the fine-tuned models: a probe on the first ``VERDICT_COMPONENTS``
principal components (in-domain and general text), on the best single dimension (chosen on
validation, not the best of the test scores), and on the greedy first 1, 5 and natural dimensions,
each against the probe on all dimensions; from the probes' per-example test predictions, paired by
seed (the baseline runs' seeds) and test example; equivalence at the margin.
"""
from __future__ import annotations

import hashlib
import json
import logging
import pickle
import time
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from ..data import TokenizedSplit, tokenize_split
from ..features import frozen_features
from ..models import load_tokenizer
from ..options import DataSources
from ..paths import save_npz_atomically, write_atomically
from ..planning import ExtraPass, PlannedRun, StudyPlan
from ..profiles import BASELINE_FEATURES
from ..metrics import compute_metrics
from ..probes import SEARCH_STRENGTH, STRENGTHS, greedy_forward_selection, probe_predictions, probe_results
from ..reporting import format_mean_std, mean_std, summarize
from ..store import RunStore
from ..tasks import TaskSpec, get_task, load_task, read_vader_file
from ..training import build_model, predict, resolve_device, resolve_precision
from ..verdicts import DEFAULT_MARGIN, Outcomes, compare, tally, verdict_lines, verdict_row

log = logging.getLogger(__name__)

GENERAL_SOURCES = ("tweets", "amazonReviewSnippets", "nytEditorialSnippets")
RATIO_COMPONENTS = 20  # Fig. 4 shows the first 20 variance ratios
ANALYSIS_FORMAT = 2  # bump when the analysis changes, so cached analyses are recomputed
STATES = ("pretrained", "fine-tuned")
VARIANTS = ("PCA, in-domain", "PCA, general text", "random dimensions")
VERDICT_COMPONENTS = 5  # the paper's claim: 5 general-text components are within about 1 point of all
ALL, BEST_SINGLE = "all dimensions", "best single (validation)"


# ----------------------------------------------------------------------------- general text
@lru_cache(maxsize=None)
def read_general_text(sources: DataSources) -> tuple[str, ...]:
    """Distinct sentences of vaderSentiment's tweets, Amazon and NYT snippets, in file order."""
    texts: dict[str, None] = {}
    for source in GENERAL_SOURCES:
        for line in filter(str.strip, read_vader_file(sources, source).splitlines()):
            texts[line.split("\t", 2)[2].strip()] = None
    return tuple(t for t in texts if t)


@lru_cache(maxsize=None)
def task_texts(task: str, sources: DataSources) -> frozenset[str]:
    """Every text (each field, stripped) in any split of ``task``'s full source."""
    dataset = load_task(task, sources)
    return frozenset(str(text).strip() for split in dataset.values() for field in get_task(task).text_fields
                     for text in split[field])


def general_pool(tasks: tuple[str, ...], pool_size: int, sources: DataSources, seed: int = 0) -> tuple[str, ...]:
    """A seeded sample of ``pool_size`` general-text sentences, none of which occurs in any of ``tasks``."""
    excluded = set().union(*(task_texts(task, sources) for task in tasks))
    general = read_general_text(sources)
    candidates = [text for text in general if text not in excluded]
    if not 2 <= pool_size <= len(candidates):
        raise ValueError(f"pool_size must be between 2 and {len(candidates)} (the general sentences not in "
                         f"the tasks' data), got {pool_size}")
    rows = np.sort(np.random.default_rng(seed).choice(len(candidates), pool_size, replace=False))
    log.info("general pool: %d of %d sentences (%d removed: also in the tasks' data)", pool_size,
             len(candidates), len(general) - len(candidates))
    return tuple(candidates[i] for i in rows)


def tokenize_pool(texts: tuple[str, ...], model: str, max_seq_length: int) -> TokenizedSplit:
    import datasets

    rows = datasets.Dataset.from_dict({"text": list(texts), "label": [0] * len(texts), "idx": list(range(len(texts)))})
    return tokenize_split(rows, ("text",), load_tokenizer(model), max_seq_length)


# ----------------------------------------------------------------------------- features
@dataclass(frozen=True)
class ModelState:
    task: str
    state: str  # "pretrained" or "fine-tuned"
    seed: int  # fine-tuning seed; pretrained: the seed of its random-dimension control


@dataclass
class Features:
    states: dict[ModelState, dict[str, np.ndarray]]  # split or "pool" -> (n, hidden) [CLS] vectors
    labels: dict[str, dict[str, np.ndarray]]  # task -> split -> (n,)
    test_idx: dict[str, np.ndarray]  # task -> (n,) example ids of the test split, in the features' order
    keys: dict[ModelState, str]  # identity of each state's features (run, pool, precision): names its analysis


def _digest(payload) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _on_one_thread(function, job: tuple) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):  # numpy's BLAS (PCA, scikit-learn's L-BFGS)
            function(*job)
    finally:
        torch.set_num_threads(threads)


def _map(store: RunStore, function, jobs: list[tuple], desc: str, one_thread: bool = False) -> None:
    """``function(*job)`` for every job (results go to disk), here (on one thread if ``one_thread``) or
    in the run store's kept pool of one-thread worker processes (``RunStore.map``). The
    probes' small matrices run faster on one thread: on the 2-core reference machine, while another
    process shared the cores, two threads made the batched Newton fits 2-80x and numpy's eigh and
    scikit-learn's fits 4-10x slower; and the run store found two one-thread processes faster than one
    two-thread process."""
    if store.workers() > 1 and len(jobs) > 1:
        store.map(partial(_on_one_thread, function), jobs, desc=desc)
        return
    bar = tqdm(total=len(jobs), desc=desc, disable=not store.options.progress)
    for job in jobs:
        if one_thread:
            _on_one_thread(function, job)
        else:
            function(*job)
        bar.update()
    bar.close()


def _encode_state(config, fine_tuned: bool, store: RunStore, splits: dict[str, TokenizedSplit], path: Path,
                  precision: str) -> None:
    """Writes the features (n, hidden) of every split in ``splits`` under the pretrained encoder of
    ``config`` or, if ``fine_tuned``, under its fine-tuned run's kept weights, to ``path`` (.npz)."""
    torch_device = resolve_device(store.options.device)
    model = (store.model(config) if fine_tuned else build_model(config)).to(torch_device)
    save_npz_atomically(path, {name: predict(model, split, torch_device, precision, config.train.eval_batch_size,
                                   return_features=True)[1] for name, split in splits.items()})


def _trained_stamp(config, store: RunStore) -> str:
    """Digest of when the run was trained: features of a run retrained under the same id are not reused."""
    return _digest(store.record(config)["created"])[:8]


def _load(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as stored:
        return {name: stored[name] for name in stored.files}


def encode_states(profile, store: RunStore, pool_texts: tuple[str, ...], folder: Path) -> Features:
    """[CLS] features of train/validation/test and of the general pool for the pretrained model and
    each fine-tuned run of every task. The splits come from where they were computed already (the
    frozen-encoder cache of study 04; the fine-tuned runs' own saved features); the pool is encoded
    here (at the longest of the tasks' sequence lengths), cached in ``folder`` by run (id and training
    time), precision and pool."""
    precision = resolve_precision(profile.train.precision, resolve_device(store.options.device))
    pool = tokenize_pool(pool_texts, profile.model, max(length for _, length in profile.seq_lengths))
    pool_key = hashlib.sha256(pool.input_ids.tobytes() + pool.lengths.tobytes()).hexdigest()[:16]
    pretrained = folder / f"pretrained-{_digest([profile.model, precision])}-{pool_key}.npz"
    jobs = [(profile.run_config(profile.tasks[0], profile.seeds[0]), False, store, {"pool": pool}, pretrained,
             precision)]
    paths = {}
    for config in profile.baselines():
        name = f"{config.run_id}-{_trained_stamp(config, store)}-{precision}-pool-{pool_key}.npz"
        paths[ModelState(config.data.task, "fine-tuned", config.train.seed)] = path = folder / name
        jobs.append((config, True, store, {"pool": pool}, path, precision))
    jobs = [job for job in jobs if not job[4].exists()]
    start = time.perf_counter()
    _map(store, _encode_state, jobs, "encoding")
    log.info("features: %d model states encoded in %.0f s, %d read from %s", len(jobs), time.perf_counter() - start,
             len(paths) + 1 - len(jobs), folder)
    states, keys, labels, test_idx = {}, {}, {}, {}
    for task in profile.tasks:
        frozen = profile.run_config(task, profile.seeds[0], freeze_pretrained=True)
        tokens = store.tokens(frozen)
        labels[task] = {split: part.labels for split, part in tokens.items()}
        test_idx[task] = tokens["test"].idx
        state = ModelState(task, "pretrained", profile.seeds[0])
        encoded = frozen_features(frozen, tokens, store.options)
        states[state] = {**{s: a.numpy() for s, a in encoded.items()}, **_load(pretrained)}
        keys[state] = _digest([frozen.run_id, precision, pretrained.name])
        for seed in profile.seeds:
            state = ModelState(task, "fine-tuned", seed)
            saved = {split: store.features(profile.baseline(task, seed), split)[0] for split in BASELINE_FEATURES}
            states[state] = {**saved, **_load(paths[state])}
            keys[state] = paths[state].name
    return Features(states, labels, test_idx, keys)


def planned_runs(profile, store: RunStore, pool_size: int = 2000) -> StudyPlan:
    """The runs the notebook executes (the baselines) and its encoder passes over the general pool (the
    pretrained model and each fine-tuned one; ``encode_states``), for ``run_all.py --plan``. The splits'
    features come from 04's frozen-encoder cache and the baselines' saved features."""
    baselines = profile.baselines()
    return StudyPlan([PlannedRun(c) for c in baselines],
                     [ExtraPass(baselines[0], pool_size * (1 + len(baselines)), "general pool, every model state")])


def fine_tuned_runs(profile, store: RunStore) -> pd.DataFrame:
    """The profile's baseline fine-tunings (kept weights and features): read from the store, or trained."""
    return store.execute_all(profile.baselines())


# ----------------------------------------------------------------------------- analyses
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


def analyse(features: Features, folder: Path, store: RunStore, pca_points_count: int = 9, folds: int = 5
            ) -> Analysis:
    """Every analysis of every model state; each state's is cached in ``folder`` by its features and
    the parameters, so a rerun only reads them; computed in ``store``'s worker processes."""
    parameters = [pca_points_count, folds, STRENGTHS, SEARCH_STRENGTH, ANALYSIS_FORMAT]
    paths = {state: folder / f"analysis-{_digest([key, *parameters])}.pkl" for state, key in features.keys.items()}
    jobs = [(state, arrays, features.labels[state.task], pca_points(arrays["train"].shape[1], pca_points_count), folds,
             paths[state]) for state, arrays in features.states.items() if not paths[state].exists()]
    start = time.perf_counter()
    _map(store, _analyse_state, jobs, "analysing", one_thread=True)
    log.info("analysis: %d model states computed in %.0f s, %d read from %s", len(jobs), time.perf_counter() - start,
             len(paths) - len(jobs), folder)
    rows = {"curves": [], "singles": [], "salient": [], "predictions": []}
    for path in paths.values():
        for name, part in pickle.loads(path.read_bytes()).items():
            rows[name] += part
    return Analysis(*(pd.DataFrame(rows[name]) for name in ("curves", "singles", "salient")),
                    pd.DataFrame(_ratio_rows(features)), pd.DataFrame(rows["predictions"]))


# ----------------------------------------------------------------------------- tables and verdict
def curve_summary(curves: pd.DataFrame) -> pd.DataFrame:
    """Mean, std and count over seeds of each (task, state, variant, components)."""
    return summarize(curves, ["task", "state", "variant", "components"])


def curve_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Rows (task, state, components), one "mean ± std" column (metric x 100) per variant."""
    cells = summary.assign(cell=[format_mean_std(m, s) for m, s in zip(summary["mean"], summary["std"])])
    table = cells.pivot_table(index=["task", "state", "components"], columns="variant", values="cell",
                              aggfunc="first", sort=False)[list(VARIANTS)]
    return table.reset_index().rename_axis(columns=None)  # flat, so write_table keeps task, state, components


def single_neuron_summary(singles: pd.DataFrame, salient: pd.DataFrame) -> pd.DataFrame:
    """Per (task, state), mean over seeds (x 100): the test score of the single dimension with the best
    validation score (not the best test score: that would be selection optimism), the 90th-percentile
    and median of the single dimensions' test scores, and the probe on all dimensions."""
    per_seed = singles.groupby(["task", "state", "seed"], sort=False)["test_score"]
    chosen = singles[singles["chosen"]].set_index(["task", "state", "seed"])["test_score"]
    table = pd.DataFrame({BEST_SINGLE: chosen, "90th pct single": per_seed.quantile(0.9),
                          "median single": per_seed.median()})
    table["all dimensions"] = salient[salient.subset == "All"].set_index(["task", "state", "seed"])["test_score"]
    return (100 * table.groupby(["task", "state"], sort=False).mean()).round(1).reset_index()


def ratio_table(ratios: pd.DataFrame) -> pd.DataFrame:
    """Rows (task, seed): number of classes, leading index where ratios exceed 1, and the ratios."""
    wide = ratios.pivot_table(index=["task", "seed"], columns="component", values="ratio", sort=False)
    index = [leading_ratio_index(row) for row in wide.to_numpy()]
    classes = [natural_dimensions(get_task(task)) for task, _ in wide.index]
    wide.columns = [f"r{c}" for c in wide.columns]
    wide = wide.map(lambda ratio: f"{ratio:.3f}")  # strings: the Markdown table would print 4 decimals
    return wide.assign(classes=classes, index=index)[["classes", "index", *wide.columns]].reset_index()


def salient_table(profile, analysis: Analysis, features: Features, runs: pd.DataFrame) -> pd.DataFrame:
    """Table 3: rows tasks; Random, pretrained All/1/5/natural, fine-tuned All/1/5/natural (mean ± std
    over seeds, metric x 100), and the fine-tuned runs' own heads."""
    rows = []
    for task in profile.tasks:
        spec = get_task(task)
        row = {"task": task, "natural": natural_dimensions(spec),
               "Random": f"{100 * chance_score(spec, features.labels[task]):.1f}"}
        for state in STATES:
            block = analysis.salient[(analysis.salient.task == task) & (analysis.salient.state == state)]
            for subset, scores in block.groupby("subset", sort=False)["test_score"]:
                row[f"{state} {subset}"] = _mean_std(scores)
        row["fine-tuned own head"] = _mean_std(runs.loc[runs["data.task"] == task, "test_score"])
        rows.append(row)
    return pd.DataFrame(rows).set_index("task")


def _mean_std(scores: pd.Series) -> str:
    mean, std, n = mean_std(scores)
    return format_mean_std(mean, std) if n > 1 else f"{100 * mean:.1f}"


def best_neurons(features: Features, analysis: Analysis, seed: int) -> dict[str, tuple[int, pd.DataFrame]]:
    """Per task: the fine-tuned model's (seed ``seed``) greedy-first dimension and its test activations
    with the labels (Fig. 5)."""
    frames = {}
    for task in features.labels:
        rows = analysis.salient
        dim = rows[(rows.task == task) & (rows.state == "fine-tuned") & (rows.seed == seed) & (rows.subset == "1")]
        dim = int(dim["dims"].item()[0])
        activation = features.states[ModelState(task, "fine-tuned", seed)]["test"][:, dim]
        frames[task] = dim, pd.DataFrame({"activation": activation, "label": features.labels[task]["test"]})
    return frames


def verdicts(profile, analysis: Analysis, features: Features, margin: float = DEFAULT_MARGIN,
             state: str = "fine-tuned") -> pd.DataFrame:
    """Per task: each compressed probe (first ``VERDICT_COMPONENTS`` principal components, best single
    dimension chosen on validation, greedy 1 / 5 / natural) against the probe on all dimensions, from
    their test predictions, paired by seed and example; equivalence verdict against ``margin``."""
    rows = []
    for task in profile.tasks:
        spec = get_task(task)
        block = analysis.predictions[(analysis.predictions.task == task) & (analysis.predictions.state == state)]

        def outcomes(probe: str) -> Outcomes:
            chosen = block[block.probe == probe].set_index("seed").loc[list(profile.seeds)]
            return Outcomes(np.stack(chosen["predictions"].to_list()), features.labels[task]["test"],
                            features.test_idx[task], tuple(profile.seeds), spec.main_metric)
        reference = outcomes(ALL)
        # "greedy natural" is the same probe as "greedy 1" or "greedy 5" when the task's natural size is 1 or 5
        # (rt-valence, bbc-news): one verdict, not two
        same = {f"greedy {natural_dimensions(spec)}"} & set(block.probe)
        for probe in (p for p in dict.fromkeys(block.probe) if p != ALL and not (p == "greedy natural" and same)):
            claim = ("n principal components match all dimensions" if "components" in probe else
                     "a few salient neurons match all dimensions")
            rows.append(verdict_row("06", claim, task, probe, ALL, compare(outcomes(probe), reference, "equivalent",
                                                                           margin)))
    return pd.DataFrame(rows)


def verdict(table: pd.DataFrame, analysis: Analysis) -> str:
    """The verdict lines with their intervals and tally, and per task the variance-ratio index per seed
    against the number of classes (a description, not a test)."""
    lines = [verdict_lines(table), f"{tally(table)}."]
    for task, ratios in ratio_table(analysis.ratios).groupby("task", sort=False):
        natural, index = int(ratios["classes"].iloc[0]), ratios["index"]
        lines.append(f"- {task}: variance-ratio index per seed {index.tolist()} vs {natural} "
                     f"{'(regression, taken as 1)' if get_task(task).is_regression else 'classes'}: exact in "
                     f"{(index == natural).sum()}/{len(index)} seeds, within 1 in "
                     f"{((index - natural).abs() <= 1).sum()}/{len(index)}")
    return "\n".join(lines)
