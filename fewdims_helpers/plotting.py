"""Figures shared by the study notebooks (matplotlib with seaborn's style)."""
from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

sns.set_theme(style="whitegrid", context="notebook")


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
