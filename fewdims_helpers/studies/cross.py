"""Study 05, cross-fine-tuning (Fukuhata & Kano 2025, Sec. 4.5): does BERT have room for several tasks?

For ordered task pairs (A, B): fine-tune on A, keep the encoder, put a fresh head for B and
fine-tune on B (``RunConfig.init_from``). B's test metric is compared with B fine-tuned directly
(paired by seed), and A's test metric with A's own saved head on the encoder after B (how much of
A survives) with A's direct metric.

Verdicts (``verdicts``): B after A against B direct, and A read with its own head after B against A
direct (the store keeps A's test predictions after B, ``RunStore.source_predictions``), each from
per-example test predictions paired by seed and example (interval over seeds and examples, equivalence at the margin:
"room for several tasks").
"""
from __future__ import annotations

import dataclasses

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from ..config import RunConfig
from ..data.tasks import get_task
from ..report.tables import mean_std
from ..runs.outcomes import run_outcomes
from ..runs.runner import Runner
from ..setup.planning import PlannedRun, StudyPlan
from ..stats.verdicts import DEFAULT_MARGIN, Outcomes, compare, tally, verdict_lines, verdict_row

def shares_text(first: str, second: str) -> bool:
    """True when two tasks read the same sentences (rt-polarity and rt-valence label one pool of snippets):
    B after A then trains twice on one text, and A's head after B reads text the encoder was tuned on twice."""
    corpus = get_task(first).corpus
    return corpus is not None and corpus == get_task(second).corpus


MIN_TASKS = 2  # an ordered pair (A, B) of distinct tasks


def missing_tasks(profile) -> str | None:
    """None when the profile has the tasks the study needs (two), else the one line saying so: with one
    task there is no pair, so the notebook runs nothing and writes no table."""
    if len(profile.tasks) >= MIN_TASKS:
        return None
    return (f"cross fine-tuning needs at least {MIN_TASKS} tasks (an ordered pair A, B); given {len(profile.tasks)} "
            f"({', '.join(profile.tasks)}): nothing run, no table written")


def pairs(profile) -> list[tuple[str, str, int]]:
    """(A, B, seed) of every cross run: ordered pairs of distinct tasks, every seed."""
    return [(a, b, s) for a in profile.tasks for b in profile.tasks if a != b for s in profile.seeds]


def cross_configs(profile) -> list[RunConfig]:
    """Every cross run, in the order of ``pairs``."""
    return [cross_config(profile, a, b, s) for a, b, s in pairs(profile)]


def cross_config(profile, first: str, second: str, seed: int) -> RunConfig:
    """B fine-tuned from the encoder of A's direct run (the profile's baseline, whose weights are kept)."""
    return dataclasses.replace(profile.run_config(second, seed), init_from=profile.baseline(first, seed).run_id)


def planned_runs(profile, runner: Runner) -> StudyPlan:
    """The runs ``run`` executes (none, with a note, on one task), for ``run_all.py --plan``."""
    if missing_tasks(profile):
        return StudyPlan(note=missing_tasks(profile))
    return StudyPlan([PlannedRun(c) for c in profile.baselines() + cross_configs(profile)])


def run(profile, runner: Runner) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(direct runs, cross runs) with ``first``/``second`` task columns on the cross runs."""
    if missing_tasks(profile):
        raise ValueError(missing_tasks(profile))
    direct = runner.execute_all(profile.baselines())
    ordered = pairs(profile)
    cross = runner.execute_all(cross_configs(profile))
    return direct, cross.assign(first=[a for a, _, _ in ordered], second=[b for _, b, _ in ordered])


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


def verdicts(profile, runner: Runner, cross_runs: pd.DataFrame, margin: float = DEFAULT_MARGIN) -> pd.DataFrame:
    """Per ordered pair (A, B): B after A against B direct, and A with its own head after B against A
    direct, each from per-example test predictions (interval over seeds and test examples) and an
    equivalence verdict against ``margin``."""
    rows = []
    for (first, second), block in cross_runs.groupby(["first", "second"], sort=False):
        seeds = [int(s) for s in block["train.seed"]]
        runs = [cross_config(profile, first, second, s) for s in seeds]
        after = run_outcomes(runner.store, runs)
        reference = run_outcomes(runner.store, [profile.baseline(second, s) for s in seeds])
        shared = " (same sentences as A: twice the training on one text)" if shares_text(first, second) else ""
        rows.append(verdict_row("05", "B fine-tuned after A matches B direct (room for several tasks)", second,
                                f"{second} fine-tuned after {first}{shared}", f"{second} direct",
                                compare(after, reference, "equivalent", margin), shared_text=bool(shared)))
        saved = [runner.store.source_predictions(config) for config in runs]
        kept = Outcomes.from_logits([p["logits"] for p in saved], saved[0]["labels"], saved[0]["idx"], seeds,
                                    get_task(first).main_metric)
        own = run_outcomes(runner.store, [profile.baseline(first, s) for s in seeds])
        rows.append(verdict_row("05", "A read with its own head after fine-tuning on B matches A direct", first,
                                f"{first}, own head after fine-tuning on {second}{shared}", f"{first} direct",
                                compare(kept, own, "equivalent", margin), shared_text=bool(shared)))
    return pd.DataFrame(rows)


def verdict(table: pd.DataFrame) -> str:
    """One line per comparison (B after A; A retained) and the tally."""
    return verdict_lines(table) + f"\n{tally(table)}."


# ----------------------------------------------------------------------------- figure

def pair_matrix(effects: pd.DataFrame, column: str, title: str, scale: float = 100.0) -> matplotlib.figure.Figure:
    """Heatmap of ``column`` (× ``scale``) with the first task as rows and the second as columns."""
    matrix = effects.pivot(index="first (A)", columns="second (B)", values=column) * scale
    fig, ax = plt.subplots(figsize=(4.8, 3.8))
    limit = float(np.nanmax(np.abs(matrix.to_numpy()))) or 1.0
    sns.heatmap(matrix, annot=True, fmt=".1f", cmap="RdBu", center=0, vmin=-limit, vmax=limit, ax=ax,
                cbar_kws={"label": "points"})
    ax.set_title(title, fontsize="medium")
    fig.tight_layout()
    return fig
