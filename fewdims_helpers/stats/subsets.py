"""Subset scoring on cached features: a fine-tuned linear head and the head inputs it read, scored
with only some input dimensions (Fukuhata & Kano 2025, Sec. 4.2-4.3).

A subset's logits are the bias plus the sum of its dimensions' contributions ``x[:, d] * W[:, d]``,
so all pairs (73,536 for hidden 384; 294,528 for 768) are scored exhaustively, vectorised. Studies
02 and 03 select dimensions with it; ``refit_scores`` refits the head on a subset instead (the
package's one refit, ``probes.refit``).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import torch

from ..config import ConfigError
from ..task_specs import TaskSpec
from .probes import refit, refit_predictions
from .scores import batch_scores, predictions_of

# ----------------------------------------------------------------------------- subsets


def sample_subsets(hidden_size: int, k: int, n: int, seed: int, exclude: set[tuple[int, ...]] = frozenset()
                   ) -> list[tuple[int, ...]]:
    """``n`` distinct sorted k-subsets of ``range(hidden_size)``, seeded, none in ``exclude``."""
    total = math.comb(hidden_size, k)
    if n > total - len(exclude):
        raise ConfigError(f"cannot sample {n} distinct {k}-subsets of {hidden_size} dimensions "
                          f"({total} exist, {len(exclude)} excluded)")
    if n > total // 2:  # dense request: enumerate and shuffle instead of rejection sampling
        pool = [s for s in itertools.combinations(range(hidden_size), k) if s not in exclude]
        order = np.random.default_rng(seed).permutation(len(pool))[:n]
        return [pool[i] for i in order]
    rng = np.random.default_rng(seed)
    chosen: dict[tuple[int, ...], None] = {}
    while len(chosen) < n:  # draw with replacement, drop rows with a repeated dimension or a repeated subset
        rows = np.sort(rng.integers(0, hidden_size, (2 * (n - len(chosen)) + 16, k)), axis=1)
        rows = rows[(np.diff(rows, axis=1) > 0).all(axis=1)]
        for row in rows:
            subset = tuple(int(d) for d in row)
            if subset not in exclude and subset not in chosen:
                chosen[subset] = None
                if len(chosen) == n:
                    break
    return list(chosen)


def drop_one(subset: tuple[int, ...]) -> list[tuple[int, ...]]:
    """The subsets with one dimension removed (the paper's "effective dimensions" step)."""
    return [tuple(d for d in subset if d != removed) for removed in subset]


# ----------------------------------------------------------------------------- cached head and features


@dataclass(frozen=True)
class CachedHead:
    """A fine-tuned linear head and the features it reads, from one run in the store (``runs.outcomes.cached_head``)."""
    weight: np.ndarray  # (num_labels, hidden)
    bias: np.ndarray  # (num_labels,)
    features: dict[str, np.ndarray]  # split -> (n, hidden)
    labels: dict[str, np.ndarray]  # split -> (n,)
    spec: TaskSpec

    @property
    def metric(self) -> str:
        return self.spec.metric

    @property
    def main_metric(self) -> str:
        return self.spec.main_metric

    @property
    def hidden_size(self) -> int:
        return self.weight.shape[1]

    @property
    def num_labels(self) -> int:
        return self.weight.shape[0]


# ----------------------------------------------------------------------------- vectorised scoring


def _scores(outputs: torch.Tensor, labels: torch.Tensor, main_metric: str, margin: bool = False) -> torch.Tensor:
    """Main metric (float32) of many predictors at once (``scores.batch_scores``). outputs: (m, n, num_labels)
    logits, or (m, n, 1) binary margins (logit 1 - logit 0) when ``margin``; labels: (n,). A regression's values
    are correlated in float64."""
    regression = outputs.shape[-1] == 1 and not margin
    if regression and main_metric != "pearson":
        raise ConfigError(f"vectorised scoring supports pearson for regression, not {main_metric}")
    predictions = predictions_of(outputs.double() if regression else outputs, regression)
    return batch_scores(main_metric, predictions, labels.double() if regression else labels).float()


def _contributions(head: CachedHead, split: str) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Per-dimension logit contributions x[:, d] * W[:, d] laid out (hidden, n, outputs), so that
    a sum over a subset's dimensions is contiguous per predictor; the bias; and whether they are
    binary margins: for two classes only logit 1 - logit 0 matters, half the work."""
    features = torch.from_numpy(head.features[split]).float()  # (n, hidden)
    weight, bias = torch.from_numpy(head.weight).float(), torch.from_numpy(head.bias).float()
    margin = head.num_labels == 2
    if margin:
        weight, bias = weight[1:] - weight[:1], bias[1:] - bias[:1]
    return (features.T.unsqueeze(-1) * weight.T.unsqueeze(1)).contiguous(), bias, margin


def score_subsets(head: CachedHead, subsets: np.ndarray, split: str, chunk: int = 4096) -> np.ndarray:
    """Main metric on ``split`` of the head masked to each subset. subsets: (m, k) int -> (m,)."""
    subsets = np.asarray(subsets, dtype=np.int64)
    contributions, bias, margin = _contributions(head, split)  # (hidden, n, outputs)
    labels = torch.from_numpy(head.labels[split])
    scores = np.empty(len(subsets), dtype=np.float32)
    for start in range(0, len(subsets), chunk):
        index = torch.from_numpy(subsets[start: start + chunk])  # (c, k)
        logits = contributions[index].sum(dim=1) + bias  # (c, n, outputs)
        scores[start: start + chunk] = _scores(logits, labels, head.main_metric, margin).numpy()
    return scores


def scan_all_pairs(head: CachedHead, split: str) -> np.ndarray:
    """Score of every pair (i < j) on ``split``: a (hidden, hidden) matrix, NaN on and below the diagonal."""
    hidden = head.hidden_size
    contributions, bias, margin = _contributions(head, split)  # (hidden, n, outputs)
    contributions = contributions + bias / 2  # each pair gets the bias once
    labels = torch.from_numpy(head.labels[split])
    matrix = np.full((hidden, hidden), np.nan, dtype=np.float32)
    for i in range(hidden - 1):
        logits = contributions[i: i + 1] + contributions[i + 1:]  # (hidden - i - 1, n, outputs)
        matrix[i, i + 1:] = _scores(logits, labels, head.main_metric, margin).numpy()
    return matrix


def pair_table(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(pairs (m, 2), scores (m,)) of the upper triangle of a ``scan_all_pairs`` matrix."""
    rows, cols = np.triu_indices(matrix.shape[0], k=1)
    return np.stack([rows, cols], axis=1), matrix[rows, cols]


def top_pairs(matrix: np.ndarray, n: int) -> list[tuple[int, int]]:
    """The ``n`` best pairs of a ``scan_all_pairs`` matrix, best first (ties: the lower pair first)."""
    pairs, scores = pair_table(matrix)
    order = np.lexsort((np.arange(len(scores)), -np.nan_to_num(scores, nan=-np.inf)))[:n]
    return [tuple(int(d) for d in pairs[i]) for i in order]


def masked_logits(head: CachedHead, subset, split: str) -> np.ndarray:
    """(n, num_labels) logits of the head masked to ``subset`` (all dimensions if "all") on ``split``:
    the per-example predictions of a subset selected at inference."""
    columns = slice(None) if isinstance(subset, str) and subset == "all" else list(subset)
    return head.features[split][:, columns] @ head.weight[:, columns].T + head.bias


# ----------------------------------------------------------------------------- refit


def refit_scores(head: CachedHead, subset: tuple[int, ...]) -> dict[str, float]:
    """Validation and test main metric of a head refit on the train features of ``subset`` only: the
    package's one refit (``probes.refit``, L2 strength chosen on validation)."""
    if not {"train", "validation", "test"} <= set(head.features):
        raise ConfigError("refit needs train, validation and test features; run with "
                          "save_features=('train', 'validation', 'test')")
    return refit(head.features, head.labels, head.spec, list(subset))


def subset_predictions(head: CachedHead, subset: tuple[int, ...], split: str = "test") -> np.ndarray:
    """(n,) per-example predictions on ``split`` (class ids, or values for regression) of the head refit on
    ``subset`` (the refit of ``refit_scores``; ``probes.refit_predictions`` on the subset's columns)."""
    if not {"train", "validation", "test"} <= set(head.features):
        raise ConfigError("refit needs train, validation and test features; run with "
                          "save_features=('train', 'validation', 'test')")
    return refit_predictions(head.features, head.labels, head.spec, list(subset))[split]
