"""Figures shared by the study notebooks (matplotlib with seaborn's style)."""
from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

sns.set_theme(style="whitegrid", context="notebook")


def task_panels(tasks: list[str], height: float = 3.6) -> tuple[matplotlib.figure.Figure, list]:
    """One panel per task, side by side, each titled with its task."""
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), height), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        ax.set_title(task)
    return fig, list(axes[0])


def grouped_bars(summary: pd.DataFrame, group: str, hue: str, ylabel: str, title: str,
                 scale: float = 100.0) -> matplotlib.figure.Figure:
    """Bars of ``summary['mean']`` with ``std`` error bars: one cluster per ``group``, one bar per ``hue``."""
    groups = list(dict.fromkeys(summary[group]))
    hues = list(dict.fromkeys(summary[hue]))
    width = 0.8 / len(hues)
    colors = sns.color_palette("colorblind", len(hues))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(groups) * len(hues) / 3), 4.0))
    for i, (name, color) in enumerate(zip(hues, colors)):
        part = summary[summary[hue] == name].set_index(group).reindex(groups)
        positions = np.arange(len(groups)) + (i - (len(hues) - 1) / 2) * width
        ax.bar(positions, part["mean"] * scale, width, yerr=part["std"] * scale, capsize=3, label=str(name),
               color=color)
    ax.set_xticks(np.arange(len(groups)), groups)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    low = float(np.nanmin((summary["mean"] - summary["std"]) * scale))
    ax.set_ylim(bottom=max(0.0, low - 10) if low > 0 else low - 5)
    ax.legend(title=hue.split(".")[-1], ncols=min(len(hues), 5), fontsize="small", loc="lower center",
              bbox_to_anchor=(0.5, 1.08))
    fig.tight_layout()
    return fig


def save(fig: matplotlib.figure.Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return path


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


def metric_by_layer(summary: pd.DataFrame, baseline: pd.DataFrame, scale: float = 100.0) -> matplotlib.figure.Figure:
    """Per task: mean ± std of each variant against the layer read; dashed: the all-layers baseline."""
    tasks = list(dict.fromkeys(summary["data.task"]))
    fig, axes = task_panels(tasks)
    variants = list(dict.fromkeys(summary["variant"]))
    colors = dict(zip(variants, sns.color_palette("colorblind", len(variants))))
    for ax, task in zip(axes, tasks):
        for variant in variants:
            part = summary[(summary["data.task"] == task) & (summary.variant == variant)]
            ax.errorbar(part["model.layer"], part["mean"] * scale, yerr=part["std"] * scale, marker="o", capsize=3,
                        color=colors[variant], label=variant)
        base = baseline.loc[baseline["data.task"] == task, "test_score"]
        ax.axhline(base.mean() * scale, color="k", ls="--", lw=1, label="all layers, [CLS] (notebook 01)")
        ax.set_xlabel("layer read by the head")
    axes[0].set_ylabel("test metric × 100")
    axes[-1].legend(fontsize="x-small")
    fig.tight_layout()
    return fig


def layer_movement(movement: pd.DataFrame) -> matplotlib.figure.Figure:
    """Relative weight change of each block against the pretrained weights, per setting (mean over tasks and seeds)."""
    order = list(dict.fromkeys(movement["block"]))
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    sns.pointplot(movement, x="block", y="relative_change", hue="setting", order=order, errorbar="sd", ax=ax,
                  dodge=0.3, markersize=4)
    ax.set_ylabel("||θ - θ₀|| / ||θ₀||")
    ax.set_xlabel("")
    ax.legend(fontsize="x-small")
    fig.tight_layout()
    return fig


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
