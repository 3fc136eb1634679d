"""Study 02's runs: the scanned runs of ways 2 and 3, way 1's fixed subsets and its validation-best subset
retrained with every reported seed, and the random controls of every way (the package's docstring)."""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import time

import numpy as np
import pandas as pd

from ...config import RunConfig
from ...runs.outcomes import cached_head, run_outcomes
from ...runs.runner import Runner
from ...setup.planning import PlannedRun, StudyPlan
from ...stats.subsets import CachedHead, drop_one, masked_logits, pair_table, subset_predictions, refit_scores, \
    sample_subsets, scan_all_pairs, score_subsets, top_pairs
from ...stats.verdicts import Outcomes, score_interval

log = logging.getLogger(__name__)

SCAN_DROPCONNECT = 0.5  # random DropConnect on the head while training the run that is scanned
SCAN_SPLITS = ("train", "validation", "test")
WAYS = {1: "1: fine-tuned on subset", 2: "2: selected at inference", 3: "3: head refit on subset",
        "standard": "2 on the standard head: selected at inference", "standard-refit": "3 on the standard head: refit"}
ALL = "all dimensions (fine-tuned)"
TOP_PAIRS = 5  # the paper's Table: the 5 best pairs
CONTROL_WAYS = (1, 2, 3)  # the ways whose best k-subset gets a random control


# ----------------------------------------------------------------------------- way 2 and 3: the scanned runs

def scan_config(profile, task: str, seed: int) -> RunConfig:
    """Way 2's single fine-tuning: all dimensions, DropConnect on the head, features saved."""
    return dataclasses.replace(profile.run_config(task, seed, head_dropconnect=SCAN_DROPCONNECT),
                               save_features=SCAN_SPLITS)


def head_configs(profile, task: str, head: str) -> list[RunConfig]:
    """The scanned runs of ``task``, one per reported seed: ``"dropconnect"`` (way 2's runs) or ``"standard"``
    (the baseline runs, whose head was trained without DropConnect)."""
    return [scan_config(profile, task, seed) if head == "dropconnect" else profile.baseline(task, seed)
            for seed in profile.seeds]


def inference_selection(head: CachedHead, triples: int, seed: int
                        ) -> tuple[pd.DataFrame, dict[int, np.ndarray], np.ndarray, float]:
    """Way 2 on one cached head: every single dimension and every pair scored exhaustively on
    validation, ``triples`` sampled triples; the validation-best subset of each k scored on test.

    Returns (one row per k: best subset, validation and test score, subsets scored), the
    validation scores of every subset scored per k, the validation pair matrix, and the seconds
    the exhaustive pair scan took."""
    start = time.perf_counter()
    matrix = scan_all_pairs(head, "validation")
    pair_seconds = time.perf_counter() - start
    pairs, pair_scores = pair_table(matrix)
    singles = np.arange(head.hidden_size)[:, None]
    candidates = {1: (singles, score_subsets(head, singles, "validation")), 2: (pairs, pair_scores)}
    if triples:
        sampled = np.array(sample_subsets(head.hidden_size, 3, min(triples, math.comb(head.hidden_size, 3)), seed))
        candidates[3] = (sampled, score_subsets(head, sampled, "validation"))
    everything = np.arange(head.hidden_size)[None, :]
    rows = []
    for k, (subsets, scores) in candidates.items():
        best = subsets[int(np.nanargmax(scores))]
        rows.append({"k": k, "subset": tuple(int(d) for d in best), "validation": float(np.nanmax(scores)),
                     "test": float(score_subsets(head, best[None, :], "test")[0]), "scored": len(subsets),
                     "exhaustive": k < 3 or len(subsets) == math.comb(head.hidden_size, 3),
                     "validation_median": float(np.nanmedian(scores))})
    rows.append({"k": head.hidden_size, "subset": "all", "validation": float(score_subsets(head, everything, "validation")[0]),
                 "test": float(score_subsets(head, everything, "test")[0]), "scored": 1, "exhaustive": True,
                 "validation_median": float("nan")})
    return pd.DataFrame(rows), {k: scores for k, (_, scores) in candidates.items()}, matrix, pair_seconds


@dataclasses.dataclass
class Scan:
    """Way 2 (and 3) over every task and seed of one kind of head: ``rows`` (one per task, seed and k:
    the validation-best subset, its validation and test scores), ``distributions`` ((task, seed) -> k ->
    validation scores of every subset scored), ``matrices`` ((task, seed) -> validation pair matrix) and
    the per-example test predictions of each seed's selected subset: ``masked`` and ``refit`` ((task, k) ->
    ``Outcomes``, one row per seed)."""
    rows: pd.DataFrame
    distributions: dict
    matrices: dict
    masked: dict
    refit: dict
    top: pd.DataFrame


def scan(profile, runner: Runner, triples: int, head: str = "dropconnect", background: list[RunConfig] = ()) -> Scan:
    """Train (or read) the runs of ``head`` ("dropconnect": way 2's runs; "standard": the baseline runs) and
    scan each: selection on validation within the seed's run, test predictions of the selected subsets
    (masked head and refit head), and the top pairs (``TOP_PAIRS``) with their validation and test scores."""
    configs = [c for task in profile.tasks for c in head_configs(profile, task, head)]
    runner.execute_all(configs, background=background)
    frames, distributions, matrices, masked, refit, top, saved = [], {}, {}, {}, {}, [], {}
    for config in configs:
        task, seed = config.data.task, config.train.seed
        cached = cached_head(runner.store, config)
        rows, distributions[task, seed], matrices[task, seed], seconds = inference_selection(cached, triples, seed)
        saved[task] = runner.store.predictions(config, "test")  # the example ids of the cached test features (same pass)
        if not np.array_equal(saved[task]["labels"], cached.labels["test"]):
            raise ValueError(f"run {config.run_id}: saved test predictions and cached test features differ in order")
        refit_test = []
        for k, subset in zip(rows["k"], rows["subset"]):
            if isinstance(subset, str):  # "all"
                refit_test.append(np.nan)
                continue
            masked.setdefault((task, k), []).append(masked_logits(cached, subset, "test"))
            refit.setdefault((task, k), []).append(subset_predictions(cached, subset, "test"))
            refit_test.append(refit_scores(cached, subset)["test"])
        frames.append(rows.assign(task=task, seed=seed, refit_test=refit_test, pair_scan_seconds=seconds))
        for rank, pair in enumerate(top_pairs(matrices[task, seed], TOP_PAIRS), start=1):
            one = Outcomes.from_logits([masked_logits(cached, pair, "test")], cached.labels["test"], saved[task]["idx"],
                                       [seed], cached.main_metric)
            score, low, high = score_interval(one)
            top.append({"task": task, "seed": seed, "head": head, "rank": rank, "pair": pair,
                        "validation": 100 * float(matrices[task, seed][pair]), "test": score, "test_low": low,
                        "test_high": high})
        log.info("%s seed %d (%s head): %d pairs scored exhaustively in %.2f s", task, seed, head,
                 np.isfinite(matrices[task, seed]).sum(), seconds)
    metric = {task: cached_head(runner.store, head_configs(profile, task, head)[0]).main_metric for task in profile.tasks}
    seeds = tuple(profile.seeds)
    masked_outcomes = {(task, k): Outcomes.from_logits(rows, saved[task]["labels"], saved[task]["idx"], seeds, metric[task])
                       for (task, k), rows in masked.items()}
    refit_outcomes = {(task, k): Outcomes(np.stack(rows), saved[task]["labels"], saved[task]["idx"], seeds, metric[task])
                      for (task, k), rows in refit.items()}
    return Scan(pd.concat(frames, ignore_index=True), distributions, matrices, masked_outcomes, refit_outcomes,
                pd.DataFrame(top))


# ----------------------------------------------------------------------------- way 1: fixed subsets

def random_subset_configs(profile, subsets_per_k: int, ks: tuple[int, ...] = (1, 2, 3),
                          tasks: tuple[str, ...] | None = None, cut: tuple = ()) -> list[RunConfig]:
    """Way 1's selection stage: ``subsets_per_k`` random k-subsets per task and k, each one fine-tuning
    with ``profile.selection_seed`` (it selects; it is never reported). ``cut``: (task, k) pairs left out.
    They depend on nothing else, so the notebook can start them early (``background``)."""
    hidden, seed = profile.hidden_size, profile.selection_seed
    return [profile.run_config(task, seed, selected_dims=subset) for task in (tasks or profile.tasks) for k in ks
            if (task, k) not in cut for subset in sample_subsets(hidden, k, subsets_per_k, seed=1000 * k + seed)]


def best_on_validation(runs: pd.DataFrame) -> pd.Series:
    """The run with the highest validation score (ties: the first)."""
    validation = runs["validation." + runs["main_metric"].iloc[0]]
    return runs.loc[validation.idxmax()]


def fixed_configs(profile, task: str, subset: tuple[int, ...]) -> list[RunConfig]:
    """Way 1's reported runs of one subset: one fine-tuning per reported seed."""
    return [profile.run_config(task, seed, selected_dims=tuple(subset)) for seed in profile.seeds]


def run_fixed_subsets(profile, runner: Runner, subsets_per_k: int, ks: tuple[int, ...] = (1, 2, 3), cut: tuple = (),
                      effective: bool = False) -> pd.DataFrame:
    """Way 1, the paper's protocol, for every task and k not in ``cut``: ``subsets_per_k`` random k-subsets,
    each a fine-tuning with the selection seed ("random"); the validation-best one per k retrained with
    every reported seed ("reported"). ``effective``: the paper's "effective dimensions" step too, each
    dimension of the best 3-subset dropped in turn (selection seed, "drop-one": descriptive)."""
    selection = random_subset_configs(profile, subsets_per_k, ks, cut=cut)
    stage_one = runner.execute_all(selection).assign(source="random")
    labelled: list[tuple[RunConfig, str]] = [(c, "random") for c in selection]
    for task in profile.tasks:
        random_runs = stage_one[stage_one["data.task"] == task]
        for k in ks:
            if (task, k) in cut:
                continue
            subset = tuple(best_on_validation(random_runs[random_runs["model.selected_dims"].map(len) == k])
                           ["model.selected_dims"])
            labelled += selected_configs(profile, task, k, subset, effective)
    frame = runner.execute_all([c for c, _ in labelled]).assign(source=[s for _, s in labelled])
    return frame.assign(k=frame["model.selected_dims"].map(len))


def selected_configs(profile, task: str, k: int, subset: tuple[int, ...], effective: bool
                     ) -> list[tuple[RunConfig, str]]:
    """Way 1's second stage for the validation-best k-subset of ``task``: its reported runs and, if
    ``effective`` and k = 3, the drop-one runs (selection seed), each with its source label."""
    labelled = [(c, "reported") for c in fixed_configs(profile, task, subset)]
    if effective and k == 3:
        labelled += [(profile.run_config(task, profile.selection_seed, selected_dims=s), "drop-one")
                     for s in drop_one(subset)]
    return labelled


# ----------------------------------------------------------------------------- random controls

def control_seed(task: str, way, k: int, seed: int) -> int:
    """The seed of the random k-subset drawn for one task, way, k and reported seed: a hash of the four, so
    every draw is fresh, independent of the others and reproducible on any machine."""
    digest = hashlib.sha256(f"02 random control | {task} | way {way} | k {k} | seed {seed}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def control_subset(profile, task: str, way, k: int, seed: int) -> tuple[int, ...]:
    """The random k-subset (sorted) that ``way``'s control uses for ``task`` and reported ``seed``."""
    return sample_subsets(profile.hidden_size, k, 1, seed=control_seed(task, way, k, seed))[0]


def control_configs(profile, ks: tuple[int, ...] = (1, 2, 3), cut: tuple = ()) -> list[RunConfig]:
    """Way 1's random controls: per task, k not in ``cut`` (way 1 has no best subset there) and reported seed, a
    fine-tuning on that seed's random k-subset, with that seed (as the best subset's reported runs). They depend
    on nothing else, so the notebook can start them early (``background``)."""
    return [profile.run_config(task, seed, selected_dims=control_subset(profile, task, 1, k, seed))
            for task in profile.tasks for k in ks if (task, k) not in cut for seed in profile.seeds]


def control_draws(profile, fixed: pd.DataFrame, scans: dict[str, Scan], ks: tuple[int, ...] = (1, 2, 3),
                  cut: tuple = ()) -> pd.DataFrame:
    """One row per task, way (``CONTROL_WAYS``), k and reported seed: the random subset drawn, the best subset
    it is compared with (way 1: the validation-best subset retrained with every seed; ways 2 and 3: that
    seed's own validation-best subset of the DropConnect run), and whether the two coincide."""
    found = scans["dropconnect"].rows.set_index(["task", "seed", "k"])["subset"]
    reported = fixed[fixed.source == "reported"]
    rows = []
    for task in profile.tasks:
        for way in CONTROL_WAYS:
            for k in ks:
                if way == 1:
                    chosen = reported[(reported["data.task"] == task) & (reported.k == k)]["model.selected_dims"]
                    if (task, k) in cut or chosen.empty:
                        continue
                for seed in profile.seeds:
                    if way != 1 and (task, seed, k) not in found.index:  # no triples scanned: no best 3-subset
                        continue
                    best = tuple(chosen.iloc[0]) if way == 1 else tuple(found.loc[(task, seed, k)])
                    drawn = control_subset(profile, task, way, k, seed)
                    rows.append({"task": task, "way": WAYS[way], "k": k, "seed": seed, "random_subset": drawn,
                                 "best_subset": best, "coincides": drawn == best, "way_key": way})
    return pd.DataFrame(rows)


def run_controls(profile, runner: Runner, ks: tuple[int, ...] = (1, 2, 3), cut: tuple = ()) -> pd.DataFrame:
    """Way 1's random controls (``control_configs``), trained (or read): one row per run."""
    frame = runner.execute_all(control_configs(profile, ks, cut)).assign(source="control")
    return frame.assign(k=frame["model.selected_dims"].map(len))


def control_outcomes(profile, runner: Runner, draws: pd.DataFrame) -> dict[tuple[str, int, int], Outcomes]:
    """(task, way, k) -> the test predictions of the random controls, one row per reported seed, each trained
    and evaluated as that way's best subset: way 1 its own fine-tuning on the drawn subset, way 2 the seed's
    DropConnect head masked to it, way 3 a head refit on it from that run's features."""
    result, heads, order = {}, {}, {seed: i for i, seed in enumerate(profile.seeds)}
    for (task, way, k), block in draws.groupby(["task", "way_key", "k"], sort=False):
        block = block.sort_values("seed", key=lambda seeds: seeds.map(order))  # the best side's order: paired
        if way == 1:
            result[task, way, k] = run_outcomes(runner.store, [profile.run_config(task, int(seed), selected_dims=tuple(subset))
                                                        for seed, subset in zip(block.seed, block.random_subset)])
            continue
        rows = []
        for seed, subset in zip(block.seed, block.random_subset):
            config = scan_config(profile, task, int(seed))
            if config.run_id not in heads:
                heads[config.run_id] = cached_head(runner.store, config)
            head = heads[config.run_id]
            rows.append(masked_logits(head, subset, "test") if way == 2 else subset_predictions(head, subset, "test"))
        saved = runner.store.predictions(scan_config(profile, task, int(block.seed.iloc[0])), "test")
        if any(not np.array_equal(saved["labels"], head.labels["test"]) for head in heads.values()
               if head.spec.name == task):
            raise ValueError(f"{task}: saved test predictions and cached test features differ in order")
        metric = heads[scan_config(profile, task, int(block.seed.iloc[0])).run_id].main_metric
        seeds = tuple(int(s) for s in block.seed)
        result[task, way, k] = (Outcomes.from_logits(rows, saved["labels"], saved["idx"], seeds, metric) if way == 2
                                else Outcomes(np.stack(rows), saved["labels"], saved["idx"], seeds, metric))
    return result


def planned_runs(profile, runner: Runner, subsets_per_k: int = 3, fixed_cut: tuple = (),
                 effective_dimensions: bool = False, ks: tuple[int, ...] = (1, 2, 3)) -> StudyPlan:
    """The runs the notebook executes, for ``run_all.py --plan``: the scanned runs of both heads, way 1's
    random subsets, way 1's random controls, and per task and k the runs of the validation-best subset: exact
    when its random subsets are all in the store, else counted from the design with the first subset as a
    stand-in."""
    cut = tuple(tuple(c) for c in fixed_cut)
    runs = [PlannedRun(c) for head in ("dropconnect", "standard") for task in profile.tasks
            for c in head_configs(profile, task, head)]
    selection = random_subset_configs(profile, subsets_per_k, ks, cut=cut)
    runs += [PlannedRun(c) for c in selection]
    runs += [PlannedRun(c) for c in control_configs(profile, ks, cut)]
    for task in profile.tasks:
        for k in ks:
            candidates = [c for c in selection if c.data.task == task and len(c.model.selected_dims) == k]
            if not candidates:
                continue
            known = all(runner.store.is_complete(c) for c in candidates)
            subset = tuple(best_on_validation(runner.store.collect(candidates))["model.selected_dims"]) if known else \
                candidates[0].model.selected_dims
            runs += [PlannedRun(c, known) for c, _ in selected_configs(profile, task, k, subset, effective_dimensions)]
    return StudyPlan(runs)
