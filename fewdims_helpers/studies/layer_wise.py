"""Study 03, layer-wise (Fukuhata & Kano 2025, Sec. 4.3): which layers carry the task?

For each layer k = 1..L the head reads layer k's [CLS] vector; the layers above k are not computed
(``ModelConfig.layer``), so a low-layer run costs proportionally less. Each layer's full vector is
fine-tuned with every reported seed (``profile.seeds``); the top layer's run is the baseline. Two
2-dimension variants per run, chosen as in study 02's way 2 (every pair scored at inference on the
layer-k run's head, best on validation within the run) and reported on test as scored at inference
(masked head) and with the head refit on the pair (way 3).

Verdicts (``verdicts.compare``, from per-example test predictions): "layer k is as good as the top
layer" (layer k's full vector against the baseline, equivalence at the margin), and each best-pair
variant against its own layer's full vector. The paper's statement (lower layers contribute less;
higher layers differ little) is read off these verdicts by ``paper_statement``.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from ..config import RunConfig
from ..planning import PlannedRun, StudyPlan
from ..profiles import BASELINE_FEATURES
from ..reporting import summarize
from ..store import RunStore
from ..subsets import cached_head, masked_logits, pair_table, refit_predictions, refit_scores, scan_all_pairs, score_subsets
from ..verdicts import (DEFAULT_MARGIN, DOES_NOT_HOLD, HOLDS, Outcomes, compare, run_outcomes, tally, verdict_lines,
                        verdict_row)


def layer_config(profile, task: str, seed: int, layer: int) -> RunConfig:
    """The run whose head reads ``layer``; the top layer's is the profile's baseline (study 01 trained it)."""
    if layer == profile.num_layers:
        return profile.baseline(task, seed)
    return dataclasses.replace(profile.run_config(task, seed, layer=layer), save_features=BASELINE_FEATURES)


def layer_configs(profile) -> list[tuple[int, RunConfig]]:
    """(layer k, its run) for every task, seed and layer."""
    top = profile.num_layers
    return [(layer, layer_config(profile, task, seed, layer))
            for task in profile.tasks for seed in profile.seeds for layer in range(1, top + 1)]


def planned_runs(profile, store: RunStore) -> StudyPlan:
    """The runs the notebook executes (every layer-k run; the baselines among them), for ``run_all.py --plan``."""
    return StudyPlan([PlannedRun(c) for _, c in layer_configs(profile)] + [PlannedRun(c) for c in profile.baselines()])


def run(profile, store: RunStore) -> pd.DataFrame:
    """Every layer-k run, plus the 2-dimension variants computed from its cached head and features."""
    layers, chosen = zip(*layer_configs(profile))
    frame = store.execute_all(chosen).assign(**{"model.layer": list(layers)})
    pairs = []
    for config in chosen:
        head = cached_head(store, config)
        subsets, scores = pair_table(scan_all_pairs(head, "validation"))
        best = subsets[int(np.nanargmax(scores))]
        pairs.append({"pair": tuple(int(d) for d in best),
                      "pair_inference_test": float(score_subsets(head, best[None, :], "test")[0]),
                      "pair_refit_test": refit_scores(head, tuple(best))["test"]})
    return pd.concat([frame, pd.DataFrame(pairs)], axis=1)


FULL = "full vector (fine-tuned)"
VARIANTS = {"test_score": FULL,
            "pair_refit_test": "2 dims: best pair at inference, head refit",
            "pair_inference_test": "2 dims: best pair at inference, masked head"}


def summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds of each variant, per task and layer (long format; descriptive)."""
    long = runs.melt(id_vars=["data.task", "model.layer", "train.seed"], value_vars=list(VARIANTS),
                     var_name="variant", value_name="score")
    long["variant"] = long["variant"].map(VARIANTS)
    return summarize(long, ["data.task", "variant", "model.layer"], value="score")


def outcomes(profile, store: RunStore, runs: pd.DataFrame, task: str, layer: int) -> dict[str, Outcomes]:
    """Test predictions of layer ``layer``'s runs of ``task``, one row per seed: the full vector (saved
    predictions) and each seed's validation-best pair, masked head and refit head (in process, same examples)."""
    configs = [layer_config(profile, task, seed, layer) for seed in profile.seeds]
    full = run_outcomes(store, configs)
    chosen = runs[(runs["data.task"] == task) & (runs["model.layer"] == layer)].set_index("train.seed")
    masked, refit = [], []
    for config in configs:
        head, pair = cached_head(store, config), chosen.loc[config.train.seed, "pair"]
        if not np.array_equal(head.labels["test"], full.labels):
            raise ValueError(f"run {config.run_id}: cached test features and saved predictions differ in order")
        masked.append(masked_logits(head, pair, "test"))
        refit.append(refit_predictions(head, pair, "test"))
    return {FULL: full,
            VARIANTS["pair_inference_test"]: Outcomes.from_logits(masked, full.labels, full.idx, full.seeds, full.metric),
            VARIANTS["pair_refit_test"]: Outcomes(np.stack(refit), full.labels, full.idx, full.seeds, full.metric)}


def verdicts(profile, store: RunStore, runs: pd.DataFrame, margin: float = DEFAULT_MARGIN) -> pd.DataFrame:
    """Per task and layer: is layer k's full vector as good as the top layer (the baseline)? And is the best
    pair of layer k as good as layer k's full vector? Paired by seed and example; equivalence at ``margin``."""
    rows, top = [], profile.num_layers
    for task in profile.tasks:
        reference = None
        for layer in range(top, 0, -1):
            sides = outcomes(profile, store, runs, task, layer)
            reference = sides[FULL] if layer == top else reference
            if layer != top:
                rows.append(verdict_row("03", f"layer {layer} is as good as the top layer", task,
                                        f"layer {layer}, {FULL}", f"layer {top} (baseline)",
                                        compare(sides[FULL], reference, "equivalent", margin), layer=layer, variant=FULL))
            for variant in list(sides)[1:]:
                rows.append(verdict_row("03", f"2 dims of layer {layer} are as good as its full vector", task,
                                        f"layer {layer}, {variant}", f"layer {layer}, {FULL}",
                                        compare(sides[variant], sides[FULL], "equivalent", margin), layer=layer,
                                        variant=variant))
    return pd.DataFrame(rows).sort_values(["task", "variant", "layer"], key=lambda c: c.map(
        {t: i for i, t in enumerate(profile.tasks)}) if c.name == "task" else c, kind="stable", ignore_index=True)


def paper_statement(table: pd.DataFrame, top: int) -> str:
    """The paper's statement decided from the layer verdicts, per task: "lower layers contribute less" holds
    when layer 1 is significantly beyond the margin below the top layer (does not hold as good); "higher
    layers differ little" holds when layer ``top - 1`` is equivalent to the top layer within the margin."""
    layers = table[table.variant == FULL]
    lines = []
    for task, block in layers.groupby("task", sort=False):
        by_layer = block.set_index("layer")
        low, high = by_layer.loc[1], by_layer.loc[top - 1] if top - 1 in by_layer.index else None
        lower = ("holds" if low.difference < 0 else "does not hold") if low.verdict == DOES_NOT_HOLD else \
            "does not hold" if low.verdict == HOLDS else "unresolved at this power"
        higher = "no layer below the top" if high is None else high.verdict
        equivalent = [int(l) for l in block.layer[block.verdict == HOLDS]]
        lines.append(f"- {task}: lower layers contribute less (layer 1 vs top, {low.difference:+.1f} "
                     f"[{low.ci_low:+.1f}, {low.ci_high:+.1f}]): {lower}; higher layers differ little (layer {top - 1} "
                     f"vs top" + ("" if high is None else f", {high.difference:+.1f} [{high.ci_low:+.1f}, {high.ci_high:+.1f}]")
                     + f"): {higher}; layers shown as good as the top: {equivalent or 'none'}")
    return "\n".join(lines)


def verdict(table: pd.DataFrame, top: int) -> str:
    """Every verdict, one line each, the paper's statement per task, and the tally."""
    return (verdict_lines(table) + "\n\nThe paper's statement, from these verdicts:\n" + paper_statement(table, top)
            + f"\n({tally(table)}; margin {table['margin'].iloc[0]:g} points.)")
