"""Study 06's figures (Matton & de Oliveira's Figs. 1 to 6): probes on n components, variance ratios, single neurons
and the best neuron's activations."""
from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import seaborn as sns

from ...report.plotting import task_panels, task_panels_by_variant


def pca_curves(summary: pd.DataFrame, state: str, scale: float = 100.0) -> matplotlib.figure.Figure:
    """Per task: test metric (mean ± std over seeds) of a probe on the first n principal components
    (in-domain and general-text PCA) and on n random dimensions, against n (Figs. 1-3)."""
    tasks, fig, axes, variants, colors = task_panels_by_variant(summary, "task")
    for ax, task in zip(axes, tasks):
        for variant in variants:
            part = summary[(summary.task == task) & (summary.state == state) & (summary.variant == variant)]
            mean, std = part["mean"] * scale, part["std"] * scale
            ax.plot(part["components"], mean, marker="o", ms=3, color=colors[variant], label=variant)
            ax.fill_between(part["components"], mean - std, mean + std, color=colors[variant], alpha=0.2, lw=0)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.set_xlabel("components (or random dimensions) kept")
    axes[0].set_ylabel("test metric × 100")
    axes[-1].legend(fontsize="small")
    fig.suptitle(f"{state} [CLS]: linear probe on n components", y=1.02)
    fig.tight_layout()
    return fig


def variance_ratio_curves(ratios: pd.DataFrame, table: pd.DataFrame) -> matplotlib.figure.Figure:
    """Per task: explained-variance ratio of general-text component i, fine-tuned over pretrained, one
    line per seed; dashed: each seed's last leading index above 1; dotted: the number of classes (Fig. 4)."""
    tasks = list(dict.fromkeys(ratios["task"]))
    fig, axes = task_panels(tasks)
    seeds = list(dict.fromkeys(ratios["seed"]))
    colors = dict(zip(seeds, sns.color_palette("colorblind", len(seeds))))
    for ax, task in zip(axes, tasks):
        for seed in seeds:
            part = ratios[(ratios.task == task) & (ratios.seed == seed)]
            ax.plot(part["component"], part["ratio"], marker="o", ms=3, color=colors[seed], label=f"seed {seed}")
            index = table.loc[(table.task == task) & (table.seed == seed), "index"].item()
            if index > 0:
                ax.axvline(index, color=colors[seed], ls="--", lw=1)
        classes = table.loc[table.task == task, "classes"].iloc[0]
        ax.axvline(classes, color="k", ls=":", lw=1.5, label=f"classes ({classes})")
        ax.axhline(1.0, color="grey", lw=1)
        ax.set_xlabel("principal component i (general text)")
    axes[0].set_ylabel("variance ratio, fine-tuned / pretrained")
    axes[-1].legend(fontsize="small")
    fig.tight_layout()
    return fig


def single_neuron_histograms(singles: pd.DataFrame, salient: pd.DataFrame, scale: float = 100.0
                             ) -> matplotlib.figure.Figure:
    """Per task: share of dimensions by the test metric of a probe on that dimension alone, pretrained
    against fine-tuned (seeds pooled); dashed: the probe on all dimensions (Fig. 6)."""
    tasks = list(dict.fromkeys(singles["task"]))
    fig, axes = task_panels(tasks)
    states = list(dict.fromkeys(singles["state"]))
    colors = dict(zip(states, sns.color_palette("colorblind", len(states))))
    for ax, task in zip(axes, tasks):
        block = singles[singles.task == task]
        bins = np.linspace(block.test_score.min() * scale, block.test_score.max() * scale, 40)
        for state in states:
            scores = block.loc[block.state == state, "test_score"] * scale
            ax.hist(scores, bins=bins, weights=np.full(len(scores), 1 / len(scores)), alpha=0.6, color=colors[state],
                    label=f"{state} ({len(scores)} probes)")
            everything = salient[(salient.task == task) & (salient.state == state) & (salient.subset == "All")]
            ax.axvline(everything.test_score.mean() * scale, color=colors[state], ls="--", lw=1.5)
        ax.set_xlabel("test metric × 100")
    axes[0].set_ylabel("share of dimensions")
    axes[-1].legend(fontsize="small")
    fig.suptitle("Probe on one dimension of [CLS] (dashed: on all dimensions)", y=1.02)
    fig.tight_layout()
    return fig


def best_neuron_activations(frames: dict[str, tuple[int, pd.DataFrame]]) -> matplotlib.figure.Figure:
    """Per task: test activations of the fine-tuned model's greedy-first dimension, by class (or against
    a float regression target) (Fig. 5)."""
    tasks = list(frames)
    fig, axes = task_panels(tasks)
    for ax, task in zip(axes, tasks):
        dim, frame = frames[task]
        if frame["label"].dtype.kind == "f":
            ax.scatter(frame["label"], frame["activation"], s=8, alpha=0.6)
            ax.set_xlabel("label (valence)")
        else:
            classes = sorted(frame["label"].unique())
            jitter = np.random.default_rng(0)  # seeded, so a rerun redraws the same figure
            for position, (label, color) in enumerate(zip(classes, sns.color_palette("colorblind", len(classes)))):
                values = frame.loc[frame["label"] == label, "activation"]
                ax.scatter(position + jitter.uniform(-0.25, 0.25, len(values)), values, s=9, color=color)
            ax.set_xticks(range(len(classes)), [str(label) for label in classes])
            ax.set_xlabel("class")
        ax.set_ylabel("")
        ax.set_title(f"{task}: dimension {dim}")
    axes[0].set_ylabel("activation (test)")
    fig.tight_layout()
    return fig

