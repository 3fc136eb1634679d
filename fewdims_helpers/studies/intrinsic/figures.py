"""Study 07's figures: the update profiles along the layers (Zhang et al.'s Fig. 4) and the transfer of subspaces."""
from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns


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

