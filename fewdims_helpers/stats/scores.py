"""Scores over a batch axis: the main metric of every task (accuracy, Pearson, MCC, F1) of many rows of predictions
at once, and each row's score with each example left out, exactly, from per-example sums. ``metrics.py`` stays the
scikit-learn and scipy oracle the tests hold these to."""
from __future__ import annotations

import numpy as np


def _accuracy(predictions: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return (predictions == labels).mean(axis=-1)


def _pearson(predictions: np.ndarray, labels: np.ndarray) -> np.ndarray:
    x = predictions - predictions.mean(axis=-1, keepdims=True)
    y = labels - labels.mean(axis=-1, keepdims=True)
    denominator = np.sqrt((x * x).sum(axis=-1) * (y * y).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (x * y).sum(axis=-1) / denominator
    return np.where(denominator > 0, r, 0.0)  # a constant prediction has no correlation (metrics.py: 0)


def _binary_counts(predictions: np.ndarray, labels: np.ndarray):
    p, y = predictions == 1, labels == 1
    return (p & y).sum(-1).astype(float), (~p & ~y).sum(-1).astype(float), (p & ~y).sum(-1).astype(float), \
        (~p & y).sum(-1).astype(float)


def _matthews(predictions: np.ndarray, labels: np.ndarray) -> np.ndarray:
    tp, tn, fp, fn = _binary_counts(predictions, labels)
    denominator = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (tp * tn - fp * fn) / denominator, 0.0)


def _f1(predictions: np.ndarray, labels: np.ndarray) -> np.ndarray:
    tp, _, fp, fn = _binary_counts(predictions, labels)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(tp > 0, 2 * tp / (2 * tp + fp + fn), 0.0)


SCORES = {"accuracy": _accuracy, "pearson": _pearson, "matthews_correlation": _matthews, "f1": _f1}


def leave_one_out(metric: str, predictions: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(seeds, n): each seed's score with example i left out, for every i, exactly, from per-example sums."""
    predictions, labels, n = np.asarray(predictions, dtype=float), np.asarray(labels, dtype=float), len(labels)
    if metric == "accuracy":
        correct = (predictions == labels[None]).astype(float)
        return (correct.sum(1, keepdims=True) - correct) / (n - 1)
    if metric == "pearson":
        x, y = predictions, labels[None]
        sums = [(x.sum(1, keepdims=True), x), (np.full_like(x[:, :1], y.sum()), np.broadcast_to(y, x.shape)),
                ((x * x).sum(1, keepdims=True), x * x), (np.full_like(x[:, :1], (y * y).sum()), np.broadcast_to(y * y, x.shape)),
                ((x * y).sum(1, keepdims=True), x * y)]
        sx, sy, sxx, syy, sxy = (total - each for total, each in sums)
        m = n - 1
        covariance, vx, vy = sxy - sx * sy / m, sxx - sx * sx / m, syy - sy * sy / m
        with np.errstate(invalid="ignore", divide="ignore"):
            r = covariance / np.sqrt(vx * vy)
        return np.where((vx > 0) & (vy > 0), r, 0.0)
    p, t = predictions == 1, (labels == 1)[None]
    cells = [p & t, ~p & ~t, p & ~t, ~p & t]  # tp, tn, fp, fn per example
    tp, tn, fp, fn = (c.sum(1, keepdims=True) - c for c in (cell.astype(float) for cell in cells))
    with np.errstate(invalid="ignore", divide="ignore"):
        if metric == "f1":
            return np.where(tp > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
        denominator = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
        return np.where(denominator > 0, (tp * tn - fp * fn) / denominator, 0.0)
