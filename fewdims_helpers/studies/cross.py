"""Study 05, cross-fine-tuning (Fukuhata & Kano 2025, Sec. 4.5): does BERT have room for several tasks?

For ordered task pairs (A, B): fine-tune on A, keep the encoder, put a fresh head for B and
fine-tune on B (``RunConfig.init_from``). B's test metric is compared with B fine-tuned directly
(paired by seed), and A's test metric with A's own saved head on the encoder after B (how much of
A survives) with A's direct metric.
"""
from __future__ import annotations

import dataclasses

import pandas as pd

from ..config import RunConfig
from ..reporting import mean_std
from ..store import RunStore


def cross_config(profile, first: str, second: str, seed: int) -> RunConfig:
    """B fine-tuned from the encoder of A's direct run (the profile's baseline, whose weights are kept)."""
    return dataclasses.replace(profile.run_config(second, seed), init_from=profile.baseline(first, seed).run_id)


def run(profile, store: RunStore) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(direct runs, cross runs) with ``first``/``second`` task columns on the cross runs."""
    direct = store.execute_all(profile.baselines())
    pairs = [(a, b, s) for a in profile.tasks for b in profile.tasks if a != b for s in profile.seeds]
    cross = store.execute_all([cross_config(profile, a, b, s) for a, b, s in pairs])
    return direct, cross.assign(first=[a for a, _, _ in pairs], second=[b for _, b, _ in pairs])


def effects(direct: pd.DataFrame, cross: pd.DataFrame) -> pd.DataFrame:
    """Per ordered pair: B after A minus B direct, and A retained (A's head on the encoder after B)
    minus A direct; paired by seed; mean, std and seeds."""
    base = direct.set_index(["data.task", "train.seed"])["test_score"]
    rows = []
    for (first, second), block in cross.groupby(["first", "second"], sort=False):
        metric = direct.loc[direct["data.task"] == first, "main_metric"].iloc[0]
        gain = block["test_score"].to_numpy() - base.loc[[(second, s) for s in block["train.seed"]]].to_numpy()
        kept = block[f"source_after.{metric}"].to_numpy() - base.loc[[(first, s) for s in block["train.seed"]]].to_numpy()
        (gain_mean, gain_std, _), (kept_mean, kept_std, _) = mean_std(gain), mean_std(kept)
        rows.append({"first (A)": first, "second (B)": second, "B after A - B direct": gain_mean, "B std": gain_std,
                     "A after B - A direct": kept_mean, "A std": kept_std, "seeds": len(block)})
    return pd.DataFrame(rows)


def verdict(effects: pd.DataFrame, points: float = 1.0) -> str:
    """One line per ordered pair: whether B suffers and how much of A survives, from the runs."""
    lines = []
    for row in effects.itertuples(index=False):
        first, second, gain, _, kept, _, seeds = row
        b = "no worse than direct" if 100 * gain >= -points else f"{100 * -gain:.1f} points worse than direct"
        lines.append(f"- {first} then {second}: {second} is {b} ({100 * gain:+.1f}); {first} with its own head "
                     f"afterwards: {100 * kept:+.1f} points against direct ({seeds} seeds)")
    return "\n".join(lines)
