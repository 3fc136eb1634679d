"""Study 04, freezing (Fukuhata & Kano 2025, Sec. 4.4): must the pretrained layers move?

Frozen-encoder runs train their head on the encoder's head inputs computed once per split
(``features.frozen_features``; the run store does this for every ``freeze_pretrained`` run).
Frozen configurations that still train some layers (``frozen_layers``) run normally.
"""
from __future__ import annotations

import pandas as pd

from ..config import RunConfig
from ..features import frozen_features
from ..probes import refit
from ..store import RunStore
from ..tasks import get_task


def variants(profile, top_layers: tuple[int, ...], num_layers: int) -> dict[str, dict]:
    """The compared settings as ``ModelConfig`` fields: standard, frozen with a linear or 2-layer
    head, and frozen except the top k layers (k values that would freeze no layer are skipped)."""
    settings = {"(a) standard: all trained, linear head": {},
                "(b) frozen, linear head": {"freeze_pretrained": True},
                "(c) frozen, 2-layer head (the paper's)": {"freeze_pretrained": True, "head_layers": 2}}
    for k in (k for k in top_layers if 0 < k < num_layers):
        settings[f"(d) frozen but top {k} layer{'s' if k > 1 else ''}"] = {"frozen_layers": num_layers - k}
    return settings


def layer_movement(runs: pd.DataFrame) -> pd.DataFrame:
    """Long table of relative weight change per block (embeddings, layer_1, ...) per run."""
    columns = [c for c in runs.columns if c.startswith("weight_change.")]
    long = runs.melt(id_vars=["setting", "data.task", "train.seed"], value_vars=columns,
                     var_name="block", value_name="relative_change")
    return long.assign(block=long["block"].str.removeprefix("weight_change."))


def configs(profile, top_layers: tuple[int, ...]) -> tuple[list[RunConfig], list[str]]:
    """(configs, setting label of each) for every task, seed and setting. The standard setting is the
    profile's baseline run (01's [CLS] runs; 05 and 06 reuse its weights)."""
    chosen, labels = [], []
    for label, fields in variants(profile, top_layers, profile.num_layers).items():
        for task in profile.tasks:
            for seed in profile.seeds:
                chosen.append(profile.baseline(task, seed) if not fields else profile.run_config(task, seed, **fields))
                labels.append(label)
    return chosen, labels


def run(profile, store: RunStore, top_layers: tuple[int, ...] = (1, 3)) -> pd.DataFrame:
    chosen, labels = configs(profile, top_layers)
    return store.execute_all(chosen).assign(setting=labels)


def verdict(summary: pd.DataFrame) -> str:
    """Per task: each setting's test metric against the standard setting (a), from the runs."""
    lines = []
    for task, block in summary.groupby("data.task", sort=False):
        standard = block.loc[block.setting.str.startswith("(a)"), "mean"].item()
        parts = [f"{row.setting.split(':')[0].split(',')[0]} {100 * (row.mean - standard):+.1f}"
                 for row in block.itertuples() if not row.setting.startswith("(a)")]
        lines.append(f"- {task} (standard {100 * standard:.1f}): " + ", ".join(parts) + " points")
    return "\n".join(lines)


PROBE_SETTING = "(b*) frozen, linear probe fit to convergence (reference)"


def linear_probes(profile, store: RunStore) -> pd.DataFrame:
    """The package's one linear-head refit (``probes.refit``: L2-regularised logistic or ridge regression,
    its strength chosen on validation) fit to convergence on the frozen encoder's cached train features,
    scored on test: what the frozen features support when the head is not the limit. Deterministic
    (frozen features do not depend on the seed), so one row per task."""
    rows = []
    for task in profile.tasks:
        config = profile.run_config(task, profile.seeds[0], freeze_pretrained=True)
        tokens = store.tokens(config)
        features = {split: array.numpy() for split, array in frozen_features(config, tokens, store.options).items()}
        scores = refit(features, {split: part.labels for split, part in tokens.items()}, get_task(task))
        rows.append({"data.task": task, "setting": PROBE_SETTING, "mean": scores["test"], "std": 0.0, "n": 1})
    return pd.DataFrame(rows)
