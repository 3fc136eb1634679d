"""GLUE metric definitions with scikit-learn and scipy (``evaluate``'s scripts need the hub).

Matthews correlation (CoLA), F1 and accuracy (MRPC, QQP), Pearson and Spearman (STS-B,
rt-valence), accuracy otherwise. ``degenerate``: whether a run's predictions show it did not train.
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


# A degenerate run (did not train): a classifier that predicts one class for at least ONE_CLASS_SHARE of
# the examples where the labels' majority class is below MAJORITY_BELOW, or a regression output that takes
# one value for at least ONE_CLASS_SHARE of the examples. The regression rule is scale-free, as Pearson is:
# a head whose outputs vary little in absolute terms (one dimension read at inference) still ranks the
# examples, and only an output that does not vary carries no correlation.
ONE_CLASS_SHARE, MAJORITY_BELOW = 0.97, 0.80


def degenerate(predictions: np.ndarray, labels: np.ndarray, regression: bool) -> np.ndarray:
    """(rows,) True for each row of ``predictions`` (rows, n) (class ids or regression outputs) that shows
    a run that did not train, against ``labels`` (n,)."""
    predictions, labels = np.atleast_2d(predictions), np.asarray(labels)
    top = np.array([np.unique(row, return_counts=True)[1].max() for row in predictions]) / predictions.shape[1]
    if regression:
        return top >= ONE_CLASS_SHARE
    majority = np.unique(labels, return_counts=True)[1].max() / len(labels)
    return (top >= ONE_CLASS_SHARE) & (majority < MAJORITY_BELOW)
