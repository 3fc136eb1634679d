"""The figures' common parts (matplotlib with seaborn's style): panels per task, grouped bars, saving, and every
verdict's interval (``verdicts.png``). Each study's own figures are beside it, in ``studies/``."""
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


def task_panels_by_variant(summary: pd.DataFrame, task_column: str):
    """(tasks, fig, axes, variants, colors): one panel per task of ``summary``, one colour per variant."""
    tasks = list(dict.fromkeys(summary[task_column]))
    fig, axes = task_panels(tasks)
    variants = list(dict.fromkeys(summary["variant"]))
    return tasks, fig, axes, variants, dict(zip(variants, sns.color_palette("colorblind", len(variants))))


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
