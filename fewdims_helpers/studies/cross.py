"""Study 05, cross-fine-tuning (Fukuhata & Kano 2025, Sec. 4.5): does BERT have room for several tasks?

For ordered task pairs (A, B): fine-tune on A, keep the encoder, put a fresh head for B and
fine-tune on B (``RunConfig.init_from``). B's test metric is compared with B fine-tuned directly
(paired by seed), and A's test metric with A's own saved head on the encoder after B (how much of
A survives) with A's direct metric.

Verdicts (``verdicts``): B after A against B direct, from per-example test predictions paired by seed
and example (bootstrap, equivalence at the margin: "room for several tasks"). A after B against A
direct is measured by the run store as metrics only (``source_after``), so its interval is a
t-interval over the per-seed paired differences: it covers seed variance, not the test sample's.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
from scipy import stats

from ..config import RunConfig
from ..reporting import mean_std
from ..store import RunStore
from ..tasks import get_task
from ..verdicts import DEFAULT_MARGIN, Comparison, compare, decide, run_outcomes, tally, verdict_lines, verdict_row

SEEDS_ONLY = "t over seeds (metrics only)"


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


def seed_comparison(differences: np.ndarray, margin: float, examples: int, claim: str = "equivalent"
                    ) -> Comparison:
    """A comparison (points) from per-seed paired differences (metric units) alone: mean with its 95% and
    90% Student-t intervals over seeds, and the verdict on ``claim`` against ``margin``."""
    points = 100 * np.asarray(differences, dtype=float)
    mean, count = float(points.mean()), len(points)
    spread = float(points.std(ddof=1)) / np.sqrt(count) if count > 1 else np.inf
    low, high = (mean + sign * stats.t.ppf(0.975, max(count - 1, 1)) * spread for sign in (-1, 1))
    low90, high90 = (mean + sign * stats.t.ppf(0.95, max(count - 1, 1)) * spread for sign in (-1, 1))
    return Comparison(mean, low, high, low90, high90, float(margin), claim, decide(claim, low90, high90, margin),
                      count, examples, True)


def verdicts(profile, store: RunStore, cross_runs: pd.DataFrame, margin: float = DEFAULT_MARGIN) -> pd.DataFrame:
    """Per ordered pair (A, B): B after A against B direct (paired bootstrap over seeds and test examples),
    and A with its own head after B against A direct (t-interval over seeds: the store keeps metrics
    only), each an equivalence verdict against ``margin``."""
    direct = store.collect(profile.baselines()).set_index(["data.task", "train.seed"])
    rows = []
    for (first, second), block in cross_runs.groupby(["first", "second"], sort=False):
        seeds = [int(s) for s in block["train.seed"]]
        after = run_outcomes(store, [cross_config(profile, first, second, s) for s in seeds])
        reference = run_outcomes(store, [profile.baseline(second, s) for s in seeds])
        rows.append(verdict_row("05", "B after A matches B direct (room for several tasks)", second,
                                f"{second} after {first}", f"{second} direct", compare(after, reference, "equivalent",
                                                                                         margin),
                                interval="paired bootstrap"))
        metric = get_task(first).main_metric
        kept = block[f"source_after.{metric}"].to_numpy() - direct.loc[[(first, s) for s in seeds], "test_score"].to_numpy()
        examples = len(store.predictions(profile.baseline(first, seeds[0]), "test")["idx"])
        rows.append(verdict_row("05", "A (own head) after B matches A direct", first, f"{first} after {second}",
                                f"{first} direct", seed_comparison(kept, margin, examples), interval=SEEDS_ONLY))
    return pd.DataFrame(rows)


def verdict(table: pd.DataFrame) -> str:
    """One line per comparison (B after A; A retained), the interval's kind, and the tally."""
    return "\n".join(f"{line} [{kind}]" for line, kind in zip(verdict_lines(table).split("\n"), table["interval"])) \
        + f"\n{tally(table)}."
