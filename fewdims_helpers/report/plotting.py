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


def _task_panels_by_variant(summary: pd.DataFrame, task_column: str):
    """(tasks, fig, axes, variants, colors): one panel per task of ``summary``, one colour per variant."""
    tasks = list(dict.fromkeys(summary[task_column]))
    fig, axes = task_panels(tasks)
    variants = list(dict.fromkeys(summary["variant"]))
    return tasks, fig, axes, variants, dict(zip(variants, sns.color_palette("colorblind", len(variants))))


def metric_by_layer(summary: pd.DataFrame, baseline: pd.DataFrame, scale: float = 100.0) -> matplotlib.figure.Figure:
    """Per task: mean ± std of each variant against the layer read; dashed: the all-layers baseline (03: at the
    baseline recipe, beside the layers' points at theirs)."""
    tasks, fig, axes, variants, colors = _task_panels_by_variant(summary, "data.task")
    for ax, task in zip(axes, tasks):
        for variant in variants:
            part = summary[(summary["data.task"] == task) & (summary.variant == variant)]
            ax.errorbar(part["model.layer"], part["mean"] * scale, yerr=part["std"] * scale, marker="o", capsize=3,
                        color=colors[variant], label=variant)
        base = baseline.loc[baseline["data.task"] == task, "test_score"]
        ax.axhline(base.mean() * scale, color="k", ls="--", lw=1, label="all layers, [CLS], baseline recipe (notebook 01)")
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


def update_profiles(profiles: dict, ncols: int = 2) -> matplotlib.figure.Figure:
    """Zhang et al.'s Fig. 4: |V theta_t| along each layer's flattened parameters (largest value per
    block), one row per task, intrinsic and random subspace side by side; layers end to end."""
    tasks = list(dict.fromkeys(task for task, _ in profiles))
    kinds = list(dict.fromkeys(kind for _, kind in profiles))
    fig, axes = plt.subplots(len(tasks), len(kinds), figsize=(5.5 * len(kinds), 2.4 * len(tasks)), squeeze=False,
                             sharey="row")
    for row, task in enumerate(tasks):
        for col, kind in enumerate(kinds):
            ax, frame = axes[row][col], profiles[task, kind]
            ax.plot(frame["layer"] - 1 + frame["position"], frame["max_abs_update"], lw=0.6)
            ax.set_title(f"{task}: {kind}", fontsize="small")
            ax.set_xlabel("encoder layer (parameters in order)" if row == len(tasks) - 1 else "")
            ax.set_ylabel("max |Vθₜ| per block" if col == 0 else "")
    fig.tight_layout()
    return fig


def transfer_heatmap(matrix: pd.DataFrame, scale: float = 100.0) -> matplotlib.figure.Figure:
    """Test score of each target (columns) fine-tuned in each source's subspace (rows), as the drop
    against the target's own subspace (the diagonal), annotated with the score itself."""
    own = pd.Series(np.diag(matrix.loc[matrix.columns, matrix.columns]), index=matrix.columns)
    drop = (matrix - own) * scale
    fig, ax = plt.subplots(figsize=(4.8, 3.8))
    limit = float(np.nanmax(np.abs(drop.to_numpy()))) or 1.0
    sns.heatmap(drop, annot=(matrix * scale).round(1), fmt="", cmap="RdBu", center=0, vmin=-limit, vmax=limit, ax=ax,
                cbar_kws={"label": "points against own subspace"})
    ax.set_xlabel("target task")
    ax.set_ylabel("subspace of")
    ax.set_title("Transfer of intrinsic subspaces (score)", fontsize="medium")
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- study 06 (Matton & de Oliveira)
def pca_curves(summary: pd.DataFrame, state: str, scale: float = 100.0) -> matplotlib.figure.Figure:
    """Per task: test metric (mean ± std over seeds) of a probe on the first n principal components
    (in-domain and general-text PCA) and on n random dimensions, against n (Figs. 1-3)."""
    tasks, fig, axes, variants, colors = _task_panels_by_variant(summary, "task")
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


VERDICT_COLORS = {"holds": "tab:green", "does not hold": "tab:red", "unresolved at this power": "tab:gray"}


def verdict_intervals(table: pd.DataFrame) -> matplotlib.figure.Figure:
    """Every verdict of ``figures/verdicts.csv`` as A - B with its 95% interval, coloured by verdict,
    with the margin of its equivalence test shaded; one panel per study, one row per claim and task."""
    studies = list(dict.fromkeys(table["study"]))
    sizes = [int((table["study"] == study).sum()) for study in studies]
    fig, axes = plt.subplots(len(studies), 1, figsize=(8.0, 1.2 + 0.17 * sum(sizes) + 0.5 * len(studies)),
                             gridspec_kw={"height_ratios": sizes}, squeeze=False)
    for ax, study in zip(axes[:, 0], studies):
        block = table[table["study"] == study].reset_index(drop=True)
        y = np.arange(len(block))[::-1]
        margin = float(block["margin"].max())
        ax.axvspan(-margin, margin, color="tab:green", alpha=0.08, lw=0)
        ax.axvline(0, color="black", lw=0.6)
        for verdict, color in VERDICT_COLORS.items():
            rows = block["verdict"] == verdict
            ax.errorbar(block.loc[rows, "difference"], y[rows.to_numpy()],
                        xerr=[block.loc[rows, "difference"] - block.loc[rows, "ci_low"],
                              block.loc[rows, "ci_high"] - block.loc[rows, "difference"]],
                        fmt="o", ms=3, lw=1, color=color, label=verdict)
        labels = [f"{r.task}: {r.a} vs {r.b}" for r in block.itertuples()]
        ax.set_yticks(y, labels, fontsize=6)
        ax.set_title(f"study {int(study):02d}" if str(study).isdigit() else str(study), fontsize=9, loc="left")
    axes[-1, 0].set_xlabel("A - B, points of the test metric x 100 (95% interval; shaded: the margin)")
    handles, names = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, names, loc="upper right", fontsize="small", ncols=3)
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    return fig
