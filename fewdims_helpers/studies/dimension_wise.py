"""Study 02, dimension-wise (Fukuhata & Kano 2025, Sec. 4.2): how few dimensions of the final
layer's [CLS] vector are enough? Three ways to ask it, so their answers can be compared:

1. ``fine-tune on a fixed subset`` (the paper's protocol): the head sees only k dimensions during
   the whole fine-tuning (``ModelConfig.selected_dims``); N random subsets per k, the best chosen on
   validation and reported on test; then the "effective dimensions" step drops each dimension of the
   best 3-subset in turn.
2. ``train once, select at inference``: one fine-tuning with random DropConnect on the head, cached
   validation/test features, and every k-subset scored by masking the head at inference. A subset's
   logits are the bias plus the sum of its dimensions' contributions ``x[:, d] * W[:, d]``, so all
   pairs (73,536 for hidden 384; 294,528 for 768) are scored exhaustively, vectorised; the paper
   sampled at most 0.1% of them.
3. ``refit``: the package's one linear-head refit (``probes.refit``: L2-regularised logistic or ridge
   regression, its strength chosen on validation) on the cached train features of just the subset's
   dimensions; the encoder is unchanged.
The scoring and the refit live in the core module ``subsets`` (study 03 uses them too).
"""
from __future__ import annotations

import dataclasses
import logging
import math
import time

import numpy as np
import pandas as pd

from ..config import RunConfig
from ..reporting import mean_std
from ..store import RunStore
from ..subsets import (CachedHead, cached_head, drop_one, pair_table, refit_scores, sample_subsets, scan_all_pairs,
                       score_subsets)

log = logging.getLogger(__name__)

# ----------------------------------------------------------------------------- the study

SCAN_DROPCONNECT = 0.5  # random DropConnect on the head while training the run that is scanned
SCAN_SPLITS = ("train", "validation", "test")


def scan_config(profile, task: str, seed: int) -> RunConfig:
    """Way 2's single fine-tuning: all dimensions, DropConnect on the head, features saved."""
    return dataclasses.replace(profile.run_config(task, seed, head_dropconnect=SCAN_DROPCONNECT),
                               save_features=SCAN_SPLITS)


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


def fixed_subset_configs(profile, task: str, subsets: list[tuple[int, ...]], seed: int) -> list[RunConfig]:
    """Way 1: one full fine-tuning per subset, the head seeing only that subset throughout."""
    return [profile.run_config(task, seed, selected_dims=subset) for subset in subsets]


def best_on_validation(runs: pd.DataFrame) -> pd.Series:
    """The run with the highest validation score (ties: the first)."""
    validation = runs["validation." + runs["main_metric"].iloc[0]]
    return runs.loc[validation.idxmax()]


def run_inference_selection(profile, store: RunStore, triples: int, background: list[RunConfig] = ()
                            ) -> tuple[pd.DataFrame, dict[tuple[str, int], dict], dict[tuple[str, int], np.ndarray]]:
    """Way 2 for every task and seed: train (or read) the scanned runs, then scan them (``background``:
    runs to queue behind the scanned ones, training while the scans run).

    Returns one row per task, seed and k; the validation scores of every subset scored, per
    (task, seed) and k; and the validation pair matrix of each (task, seed)."""
    configs = [scan_config(profile, task, seed) for task in profile.tasks for seed in profile.seeds]
    store.execute_all(configs, background=background)
    frames, distributions, matrices = [], {}, {}
    for config in configs:
        task, seed = config.data.task, config.train.seed
        head = cached_head(store, config)
        rows, distributions[task, seed], matrices[task, seed], seconds = inference_selection(head, triples, seed)
        refit = [refit_scores(head, s)["test"] if s != "all" else np.nan for s in rows["subset"]]
        frames.append(rows.assign(task=task, seed=seed, refit_test=refit, pair_scan_seconds=seconds))
        log.info("%s seed %d: %d pairs scored exhaustively in %.2f s", task, seed, np.isfinite(matrices[task, seed]).sum(), seconds)
    return pd.concat(frames, ignore_index=True), distributions, matrices


def random_subset_configs(profile, subsets_per_k: int, ks: tuple[int, ...] = (1, 2, 3),
                          tasks: tuple[str, ...] | None = None) -> list[RunConfig]:
    """Way 1's first stage: ``subsets_per_k`` random k-subsets per task and k, each one fine-tuning
    (first seed). They depend on nothing else, so the notebook can start them early (``background``)."""
    hidden, first = profile.hidden_size, profile.seeds[0]
    return [profile.run_config(task, first, selected_dims=subset) for task in (tasks or profile.tasks) for k in ks
            for subset in sample_subsets(hidden, k, subsets_per_k, seed=1000 * k + first)]


def run_fixed_subsets(profile, store: RunStore, inference: pd.DataFrame, subsets_per_k: int,
                      ks: tuple[int, ...] = (1, 2, 3)) -> pd.DataFrame:
    """Way 1, the paper's protocol, for every task: ``subsets_per_k`` random k-subsets, each a full
    fine-tuning (first seed); the validation-best 2- and 3-subsets retrained with the other seeds;
    the scan's best pair and triple fine-tuned too (agreement between ways); and the "effective
    dimensions" step: each dimension of the best 3-subset dropped in turn."""
    first, others = profile.seeds[0], profile.seeds[1:]
    labelled: list[tuple[RunConfig, str]] = []
    for task in profile.tasks:
        labelled += [(config, "random") for config in random_subset_configs(profile, subsets_per_k, ks, (task,))]
        scan = inference[(inference.task == task) & (inference.seed == first) & inference.k.isin([2, 3])]
        for subset in scan["subset"]:
            labelled.append((profile.run_config(task, first, selected_dims=subset), "scan-best"))
    stage_one = store.execute_all([c for c, _ in labelled]).assign(source=[s for _, s in labelled])

    for task in profile.tasks:
        random_runs = stage_one[(stage_one["data.task"] == task) & (stage_one.source == "random")]
        for k in (2, 3):
            best = best_on_validation(random_runs[random_runs["model.selected_dims"].map(len) == k])
            subset = tuple(best["model.selected_dims"])
            labelled += [(profile.run_config(task, seed, selected_dims=subset), "best-reseeded") for seed in others]
            if k == 3:
                labelled += [(profile.run_config(task, first, selected_dims=s), "drop-one") for s in drop_one(subset)]
    frame = store.execute_all([c for c, _ in labelled]).assign(source=[s for _, s in labelled])
    return frame.assign(k=frame["model.selected_dims"].map(len))


def summary_table(inference: pd.DataFrame, fixed: pd.DataFrame, baseline: pd.DataFrame) -> pd.DataFrame:
    """Best subset per task and k for each way: test metric (mean, std over seeds) and its share
    of the all-dimensions fine-tuning baseline (``baseline``: the profile's [CLS] runs)."""
    rows = []

    def row(task: str, way: str, k: int, subset, scores) -> dict:
        mean, std, seeds = mean_std(scores)
        return {"task": task, "way": way, "k": k, "subset": subset, "test_mean": mean, "test_std": std, "seeds": seeds}
    for task, base in baseline.groupby("data.task", sort=False):
        rows.append(row(task, "all dimensions (fine-tuned)", int(inference["k"].max()), "all", base["test_score"]))
        ways = fixed[fixed["data.task"] == task]
        for k in sorted(ways["k"].unique()):
            chosen = best_on_validation(ways[(ways.k == k) & (ways.source == "random")])
            subset = chosen["model.selected_dims"]
            same = ways[(ways["model.selected_dims"] == subset) & ways.source.isin(["random", "best-reseeded"])]
            rows.append(row(task, "1: fine-tuned on subset", k, subset, same["test_score"]))
        scans = inference[(inference.task == task) & (inference.subset != "all")]
        for k, block in scans.groupby("k"):
            rows.append(row(task, "2: selected at inference", k, block["subset"].iloc[0], block["test"]))
            rows.append(row(task, "3: head refit on subset", k, block["subset"].iloc[0], block["refit_test"]))
    frame = pd.DataFrame(rows)
    order = {task: i for i, task in enumerate(dict.fromkeys(frame.task))}
    frame = frame.sort_values(["task", "way", "k"], key=lambda c: c.map(order) if c.name == "task" else c,
                              kind="stable", ignore_index=True)
    full = frame[frame.subset.astype(str) == "all"].set_index("task")["test_mean"]
    return frame.assign(share_of_full=frame["test_mean"] / frame["task"].map(full))


def agreement(fixed: pd.DataFrame, profile, store: RunStore) -> pd.DataFrame:
    """For every subset fine-tuned with the first seed (way 1): its score when selected at inference
    on the first seed's scanned head (way 2, validation) and when refit (way 3, test)."""
    first = fixed[fixed["train.seed"] == profile.seeds[0]]
    rows = []
    for task, block in first.groupby("data.task", sort=False):
        head = cached_head(store, scan_config(profile, task, profile.seeds[0]))
        subsets = list(block["model.selected_dims"])
        for k in sorted({len(s) for s in subsets}):
            chosen = [s for s in subsets if len(s) == k]
            inference = score_subsets(head, np.array(chosen), "validation")
            for subset, score in zip(chosen, inference):
                run = block[block["model.selected_dims"] == subset].iloc[0]
                rows.append({"task": task, "k": k, "subset": subset, "source": run["source"],
                             "inference_validation": float(score), "refit_test": refit_scores(head, subset)["test"],
                             "fine_tuned_test": run["test_score"]})
    return pd.DataFrame(rows)


def effective_dimensions(fixed: pd.DataFrame) -> pd.DataFrame:
    """The best random 3-subset (first seed) and the 2-subsets left by dropping each dimension."""
    rows = []
    for task, block in fixed.groupby("data.task", sort=False):
        best = best_on_validation(block[(block.k == 3) & (block.source == "random")])
        subset = tuple(best["model.selected_dims"])
        rows.append({"task": task, "subset": subset, "dropped": None, "test_score": best["test_score"], "change": 0.0})
        for smaller in drop_one(subset):
            run = block[(block.source == "drop-one") & (block["model.selected_dims"] == smaller)].iloc[0]
            rows.append({"task": task, "subset": smaller, "dropped": (set(subset) - set(smaller)).pop(),
                         "test_score": run["test_score"], "change": run["test_score"] - best["test_score"]})
    return pd.DataFrame(rows)


COMPARABLE_POINTS = 2.0  # "comparable to all dimensions": within this many points (metric x 100)


def verdict(table: pd.DataFrame) -> str:
    """Per task, the smallest k whose best subset is within ``COMPARABLE_POINTS`` of all dimensions,
    for each way; computed from the summary table."""
    lines = []
    for task, block in table.groupby("task", sort=False):
        full = block.loc[block.subset.astype(str) == "all", "test_mean"].item()
        parts = []
        for way, rows in block[block.subset.astype(str) != "all"].groupby("way", sort=True):
            close = rows[100 * (full - rows.test_mean) <= COMPARABLE_POINTS].sort_values("k")
            best = rows.loc[rows.test_mean.idxmax()]
            parts.append(f"{way.split(':')[0]}: " + (f"k = {close.k.iloc[0]} is enough" if len(close) else
                                                     f"no k <= {rows.k.max()} is enough (best k = {best.k}: "
                                                     f"{100 * best.test_mean:.1f} vs {100 * full:.1f})"))
        lines.append(f"- {task} (all dimensions {100 * full:.1f}): " + "; ".join(parts))
    lines.append(f"'Enough' means within {COMPARABLE_POINTS:g} points of the all-dimensions fine-tuning (test, mean over "
                 f"seeds). Ways: 1 fine-tuned on the subset, 2 selected at inference, 3 head refit on the subset.")
    return "\n".join(lines)
