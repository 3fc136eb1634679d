"""Figures of the benchmarks, drawn from their CSVs (``python benchmarks/<name>.py --plot-only`` redraws one)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def save(fig, name: str) -> Path:
    path = RESULTS / f"{name}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"wrote {path}")
    return path


def dimension_search_cost(frame: pd.DataFrame) -> Path:
    """Seconds to score all pairs: one fine-tuning per pair (extrapolated) against the exhaustive scan."""
    labels = [f"{m.split(' (')[0].split(' on ')[0]}\nhidden {h}, {k} labels" for m, h, k in
              zip(frame.method, frame.hidden, frame.labels)]
    fig, ax = plt.subplots(figsize=(7, 3.4))
    ax.barh(labels, frame.seconds_all_pairs, color=["tab:red"] + ["tab:blue"] * (len(frame) - 1))
    ax.set_xscale("log")
    ax.set_xlabel("seconds to score every pair (log scale)")
    for y, seconds in enumerate(frame.seconds_all_pairs):
        ax.text(seconds, y, f" {seconds:,.2f} s" if seconds < 100 else f" {seconds / 86400:.1f} days", va="center",
                fontsize="small")
    ax.invert_yaxis()
    return save(fig, "dimension_search_cost")


def frozen_heads(frame: pd.DataFrame) -> Path:
    """Seconds of each way of training frozen-encoder heads, with its test score."""
    fig, ax = plt.subplots(figsize=(7.5, 0.8 + 0.6 * len(frame)))
    labels = [f"{c}:\n{m}" if "comparison" in frame else m for c, m in
              zip(frame.get("comparison", frame.method), frame.method)]
    ax.barh(labels, frame.seconds, color="tab:blue")
    for y, row in enumerate(frame.itertuples()):
        ax.text(row.seconds, y, f" {row.seconds:.1f} s, test {row.test_score:.3f}", va="center", fontsize="small")
    ax.set_xlabel("seconds")
    ax.invert_yaxis()
    ax.set_xlim(0, frame.seconds.max() * 1.4)
    return save(fig, "frozen_heads")


def layer_cost(frame: pd.DataFrame) -> Path:
    """Training time of a run reading layer k, as a share of the full model, against k."""
    fig, ax = plt.subplots(figsize=(5, 3.4))
    ax.plot(frame.layer, frame.share_of_full, "o-", label="measured")
    ax.plot(frame.layer, frame.layer / frame.layer.max(), "--", color="grey", label="layers computed / all")
    ax.set_xlabel("head on layer k (layers above k not computed)")
    ax.set_ylabel("time / time of the full model")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize="small")
    return save(fig, "layer_cost")
