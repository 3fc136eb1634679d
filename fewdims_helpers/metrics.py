"""GLUE metric definitions with scikit-learn and scipy (``evaluate``'s scripts need the hub).

Matthews correlation (CoLA), F1 and accuracy (MRPC, QQP), Pearson and Spearman (STS-B,
rt-valence), accuracy otherwise.
"""
from __future__ import annotations

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef


def _pearson_spearman(predictions: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    if np.ptp(predictions) == 0:  # a constant prediction has no correlation; scipy would warn and give nan
        return {"pearson": 0.0, "spearman": 0.0}
    return {"pearson": float(pearsonr(predictions, labels)[0]),
            "spearman": float(spearmanr(predictions, labels)[0])}


METRICS = {
    "accuracy": lambda p, y: {"accuracy": float(accuracy_score(y, p))},
    "matthews": lambda p, y: {"matthews_correlation": float(matthews_corrcoef(y, p))},
    "f1_accuracy": lambda p, y: {"f1": float(f1_score(y, p)), "accuracy": float(accuracy_score(y, p))},
    "pearson_spearman": _pearson_spearman,
}


def predictions_from_logits(logits: np.ndarray, num_labels: int) -> np.ndarray:
    """Class ids (classification) or the scalar output (regression). logits: (n, num_labels)."""
    return logits[:, 0] if num_labels == 1 else logits.argmax(axis=-1)


def compute_metrics(metric: str, predictions: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """All metrics of one GLUE definition; ``metric`` is a key of ``METRICS``."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {sorted(METRICS)}")
    return METRICS[metric](np.asarray(predictions), np.asarray(labels))
