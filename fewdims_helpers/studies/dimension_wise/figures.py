"""Study 02's figures: the score of every k-subset at inference, every pair's rank, and how the three ways agree."""
from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from ...report.plotting import task_panels


def subset_score_distributions(distributions: dict, inference: pd.DataFrame, fixed: pd.DataFrame,
                               seed: int, scale: float = 100.0) -> matplotlib.figure.Figure:
    """A grid, k down and tasks across: histogram of the validation score of every k-subset scored
    at inference on the scanned head (way 2: all singles, all pairs, sampled triples), the head's
    all-dimensions score (dashed), and the test scores of the random k-subsets fine-tuned on (way 1)."""
    tasks = list(dict.fromkeys(inference["task"]))
    ks = sorted(distributions[tasks[0], seed])
    fig, axes = plt.subplots(len(ks), len(tasks), figsize=(4.2 * len(tasks), 2.6 * len(ks)), squeeze=False)
    palette = sns.color_palette("colorblind")
    for column, task in enumerate(tasks):
        rows = inference[(inference.task == task) & (inference.seed == seed)]
        everything = rows.loc[rows.subset.astype(str) == "all", "validation"].item() * scale
        tuned = fixed[(fixed["data.task"] == task) & (fixed.source == "random")]
        for row, k in enumerate(ks):
            ax = axes[row][column]
            scores = distributions[task, seed][k]
            ax.hist(scores[np.isfinite(scores)] * scale, bins=50, color=palette[0], alpha=0.8,
                    label=f"{k}-subsets at inference (val)")
            ax.axvline(everything, color="k", ls="--", label="all dimensions at inference (val)")
            for value in tuned.loc[tuned.k == k, "test_score"] * scale:
                ax.axvline(value, color=palette[3], lw=2, label=f"fine-tuned on a random {k}-subset (test)")
            ax.set_title(f"{task}, k = {k} ({len(scores):,} subsets)", fontsize="small")
            handles, labels = ax.get_legend_handles_labels()
            unique = dict(zip(labels, handles))
            ax.legend(unique.values(), unique.keys(), fontsize="xx-small", loc="upper left")
        axes[-1][column].set_xlabel("metric × 100")
    fig.tight_layout()
    return fig


def pair_rankings(matrices: dict, inference: pd.DataFrame, seed: int, scale: float = 100.0) -> matplotlib.figure.Figure:
    """Every pair's validation score, sorted (way 2), against the all-dimensions score, per task."""
    tasks = list(dict.fromkeys(inference["task"]))
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for task, color in zip(tasks, sns.color_palette("colorblind", len(tasks))):
        scores = np.sort(matrices[task, seed][np.isfinite(matrices[task, seed])])[::-1] * scale
        ax.plot(np.arange(1, len(scores) + 1), scores, color=color, label=f"{task} ({len(scores):,} pairs)")
        rows = inference[(inference.task == task) & (inference.seed == seed)]
        ax.axhline(rows.loc[rows.subset.astype(str) == "all", "validation"].item() * scale, color=color, ls="--", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("pair rank (validation, exhaustive)")
    ax.set_ylabel("validation metric × 100")
    ax.set_title("Every dimension pair, head masked at inference (dashed: all dimensions)")
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def agreement_scatter(agreement: pd.DataFrame, scale: float = 100.0) -> matplotlib.figure.Figure:
    """Inference score of a subset (x) against its fine-tuned and refit test scores (y), per task."""
    tasks = list(dict.fromkeys(agreement["task"]))
    fig, axes = task_panels(tasks)
    for ax, task in zip(axes, tasks):
        block = agreement[agreement.task == task]
        ax.scatter(block.inference_validation * scale, block.fine_tuned_test * scale, label="fine-tuned on it (way 1)")
        ax.scatter(block.inference_validation * scale, block.refit_test * scale, marker="x", label="head refit (way 3)")
        ax.set_xlabel("selected at inference, validation × 100")
    axes[0].set_ylabel("test metric × 100")
    axes[-1].legend(fontsize="small")
    fig.tight_layout()
    return fig

