"""Scores over a batch axis: the main metric of every task (accuracy, Pearson, MCC, F1) of many rows of predictions
at once, optionally over a mask of examples, and each row's score with each example left out, exactly, from
per-example sums. The package's one implementation of a score over rows: the verdicts score seeds with it (numpy),
``subsets`` every candidate subset of dimensions and ``probes`` every probe and fold (torch). ``metrics.py`` stays
the scikit-learn and scipy oracle the tests hold these to (and a single run's metrics)."""
from __future__ import annotations

import numpy as np
import torch

TINY = 1e-12  # a Pearson denominator at most this is a constant prediction: no correlation (metrics.py: 0)


def _float(array):
    """Floating values as they are (their precision is the caller's); class ids and truth values as float64."""
    if isinstance(array, torch.Tensor):
        return array if array.is_floating_point() else array.double()
    array = np.asarray(array)
    return array if array.dtype.kind == "f" else array.astype(np.float64)


def _sqrt(array):
    return torch.sqrt(array) if isinstance(array, torch.Tensor) else np.sqrt(array)


def _where(condition, values):
    if isinstance(values, torch.Tensor):
        return torch.where(condition, values, torch.zeros((), dtype=values.dtype))
    return np.where(condition, values, 0.0)


def _total(values, mask):
    """Sums over the examples (last axis), of the masked examples only with a mask (0/1, float)."""
    return values.sum(-1) if mask is None else (values * mask).sum(-1)


def _accuracy(predictions, labels, mask):
    correct = _float(predictions == labels)
    return correct.mean(-1) if mask is None else _total(correct, mask) / mask.sum(-1)


def _pearson(predictions, labels, mask):
    predictions, labels = _float(predictions), _float(labels)
    if mask is None:
        x = predictions - predictions.mean(-1)[..., None]
        y = labels - labels.mean(-1)[..., None]
    else:
        count = mask.sum(-1)[..., None]
        x = predictions - _total(predictions, mask)[..., None] / count
        y = labels - _total(labels, mask)[..., None] / count
    denominator = _sqrt(_total(x * x, mask) * _total(y * y, mask))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = _total(x * y, mask) / denominator
    return _where(denominator > TINY, r)


def _binary_counts(predictions, labels, mask):
    p, y = predictions == 1, labels == 1
    return tuple(_total(_float(cell), mask) for cell in (p & y, ~p & ~y, p & ~y, ~p & y))  # tp, tn, fp, fn


def _matthews(predictions, labels, mask):
    tp, tn, fp, fn = _binary_counts(predictions, labels, mask)
    denominator = _sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    with np.errstate(invalid="ignore", divide="ignore"):
        return _where(denominator > 0, (tp * tn - fp * fn) / denominator)


def _f1(predictions, labels, mask):
    tp, _, fp, fn = _binary_counts(predictions, labels, mask)
    with np.errstate(invalid="ignore", divide="ignore"):
        return _where(tp > 0, 2 * tp / (2 * tp + fp + fn))


_SCORES = {"accuracy": _accuracy, "pearson": _pearson, "matthews_correlation": _matthews, "f1": _f1}
METRICS = tuple(_SCORES)


def batch_scores(metric: str, predictions, labels, mask=None):
    """The main metric ``metric`` of every row of ``predictions`` (..., n) against ``labels`` (n,): of
    all n examples, or of those where ``mask`` (..., n; 0/1, float) is 1. numpy arrays give numpy, torch tensors
    torch. Predictions are class ids (classification; ``predictions_of`` turns outputs into them), counted in float64, or
    values (regression), correlated in their own precision."""
    if metric not in _SCORES:
        raise ValueError(f"no batched score for metric {metric!r}; choose one of {sorted(_SCORES)}")
    return _SCORES[metric](predictions, labels, mask)


def predictions_of(outputs: torch.Tensor, regression: bool) -> torch.Tensor:
    """Predictions (..., n) from outputs (..., n, k): the value (regression, k = 1); for classification the class
    of a binary logit or margin (k = 1: class 1 when above 0, so a tie is class 0, as argmax picks) or the argmax."""
    if regression:
        return outputs[..., 0]
    return (outputs[..., 0] > 0).long() if outputs.shape[-1] == 1 else outputs.argmax(-1)


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
