"""Study 03, layer-wise (Fukuhata & Kano 2025, Sec. 4.3): which layers carry the task?

For each layer k = 1..L the head reads layer k's [CLS] vector; the layers above k are not computed
(``ModelConfig.layer``), so a low-layer run costs proportionally less. Two variants per layer:
the full vector (fine-tuned), and the paper's 2 selected dimensions of layer k, chosen as in study
02's way 2 (every pair scored at inference on the layer-k run's head, best on validation) and
reported on test both as scored at inference and with the head refit on the pair (way 3).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from ..config import RunConfig
from ..profiles import BASELINE_FEATURES
from ..reporting import summarize
from ..store import RunStore
from ..subsets import cached_head, pair_table, refit_scores, scan_all_pairs, score_subsets


def layer_configs(profile) -> list[tuple[int, RunConfig]]:
    """(layer k, its run) for every task, seed and layer. The top layer's run is the profile's baseline
    (the head on the last layer is the full model), which study 01 has already trained."""
    top = profile.num_layers
    return [(layer, profile.baseline(task, seed) if layer == top else
             dataclasses.replace(profile.run_config(task, seed, layer=layer), save_features=BASELINE_FEATURES))
            for task in profile.tasks for seed in profile.seeds for layer in range(1, top + 1)]


def run(profile, store: RunStore) -> pd.DataFrame:
    """Every layer-k run, plus the 2-dimension variant computed from its cached head and features."""
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


VARIANTS = {"test_score": "full vector (fine-tuned)",
            "pair_refit_test": "2 dims: best pair at inference, head refit",
            "pair_inference_test": "2 dims: best pair at inference, masked head"}


def summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds of each variant, per task and layer (long format)."""
    long = runs.melt(id_vars=["data.task", "model.layer", "train.seed"], value_vars=list(VARIANTS),
                     var_name="variant", value_name="score")
    long["variant"] = long["variant"].map(VARIANTS)
    return summarize(long, ["data.task", "variant", "model.layer"], value="score")


def verdict(summary: pd.DataFrame, baseline: pd.DataFrame, points: float = 2.0) -> str:
    """Per task and variant: the lowest layer within ``points`` of the all-layers baseline."""
    lines = []
    for (task, variant), block in summary.groupby(["data.task", "variant"], sort=False):
        base = baseline.loc[baseline["data.task"] == task, "test_score"].mean()
        close = block[100 * (base - block["mean"]) <= points].sort_values("model.layer")
        first, last = block.sort_values("model.layer")["mean"].iloc[[0, -1]]
        found = f"layer {close['model.layer'].iloc[0]} is the lowest within {points:g} points" if len(close) else \
            f"no layer comes within {points:g} points"
        lines.append(f"- {task}, {variant}: {found} of the all-layers baseline ({100 * base:.1f}); "
                     f"layer 1 {100 * first:.1f}, top layer {100 * last:.1f}")
    return "\n".join(lines)
