"""Study 01, token-wise (Fukuhata & Kano 2025, Sec. 4.1): is the [CLS] vector special?

For each task and seed, fine-tune once per token selection (``cls``, ``max_norm_token`` = the
paper's "MaxPooling", ``max``, ``mean``, ``pooler``) and compare test metrics. The paper reports
that MaxPooling matches [CLS] on 7 of 8 GLUE tasks (RTE being the exception).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..config import TOKEN_SELECTIONS, RunConfig
from ..profiles import Profile
from ..reporting import summarize
from ..store import RunStore

SELECTION_COLUMN = "model.token_selection"


def configs(profile: Profile, selections: tuple[str, ...] = TOKEN_SELECTIONS) -> list[RunConfig]:
    """One run per task, seed and selection; [CLS] is the profile's baseline run, which later studies reuse."""
    return [profile.baseline(task, seed) if selection == "cls" else profile.run_config(task, seed, token_selection=selection)
            for task in profile.tasks for seed in profile.seeds for selection in selections]


def run(profile: Profile, store: RunStore) -> pd.DataFrame:
    """All runs of the study (computed, or read from the store), one row per run."""
    return store.execute_all(configs(profile))


def summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean ± std of the test metric over seeds, per task and token selection."""
    table = summarize(runs, ["data.task", SELECTION_COLUMN])
    metrics = runs.groupby("data.task", sort=False)["main_metric"].first()
    return table.assign(metric=table["data.task"].map(metrics))


def paired_differences(runs: pd.DataFrame, baseline: str = "cls") -> pd.DataFrame:
    """Per task and selection: the test metric minus the baseline's, paired by seed.

    ``within_noise`` is True when |mean difference| < 2 standard errors of the paired differences
    or < 0.01 (one point): the rule this study uses to call a selection equivalent to [CLS]."""
    wide = runs.pivot_table(index=["data.task", "train.seed"], columns=SELECTION_COLUMN, values="test_score")
    rows = []
    for task, block in wide.groupby(level="data.task", sort=False):
        for selection in block.columns:
            if selection == baseline:
                continue
            diffs = (block[selection] - block[baseline]).dropna().to_numpy()
            mean = float(diffs.mean())
            stderr = float(diffs.std(ddof=1) / np.sqrt(len(diffs))) if len(diffs) > 1 else float("nan")
            rows.append({"task": task, "selection": selection, "mean_difference": mean, "stderr": stderr,
                         "seeds": len(diffs), "within_noise": bool(abs(mean) < 0.01 or abs(mean) < 2 * stderr)})
    return pd.DataFrame(rows)


def verdict(differences: pd.DataFrame, selection: str = "max_norm_token") -> str:
    """One sentence per task on whether ``selection`` matches [CLS], computed from the runs."""
    lines = []
    for row in differences[differences["selection"] == selection].itertuples():
        if row.within_noise:
            finding = "matches [CLS]"
        else:
            finding = "is better than [CLS]" if row.mean_difference > 0 else "falls short of [CLS]"
        lines.append(f"- {row.task}: {selection} {finding} ({100 * row.mean_difference:+.1f} points, "
                     f"s.e. {100 * row.stderr:.1f}, {row.seeds} seeds)")
    matched = int(differences[differences["selection"] == selection]["within_noise"].sum())
    total = int((differences["selection"] == selection).sum())
    lines.append(f"{selection} matches [CLS] on {matched} of {total} tasks here (the paper: MaxPooling matches on 7 of 8).")
    return "\n".join(lines)
