"""Outcomes of one condition (one row of predictions per seed on the same held-out examples) and the variance of
their score over seeds and examples: jackknife pseudo-values, the variance components of a seeds x examples
crossed design and their Welch-Satterthwaite t interval (``verdicts``' module docstring says why)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
from scipy import stats

from .metrics import degenerate, predictions_from_logits
from .scores import METRICS, batch_scores, leave_one_out

OUTLIER_LEVEL = float(stats.norm.cdf(3) - stats.norm.cdf(-3))  # prediction level of "beyond 3 SD" (outlier seeds)


@dataclass(frozen=True)
class Outcomes:
    """Predictions of one condition on one held-out split: ``predictions`` (seeds, n) class ids or
    regression outputs, ``labels`` (n,), the example ids ``idx`` (n,), the ``seeds`` of the rows and
    the ``metric`` (a task's main metric: accuracy, pearson, matthews_correlation, f1)."""
    predictions: np.ndarray
    labels: np.ndarray
    idx: np.ndarray
    seeds: tuple[int, ...]
    metric: str

    def __post_init__(self) -> None:
        predictions = np.atleast_2d(np.asarray(self.predictions))
        object.__setattr__(self, "predictions", predictions)
        if predictions.shape[1] != len(self.labels) or len(self.idx) != len(self.labels):
            raise ValueError(f"predictions {predictions.shape} do not match {len(self.labels)} labels and "
                             f"{len(self.idx)} example ids; give one row of predictions per seed")
        if len(self.seeds) != predictions.shape[0]:
            raise ValueError(f"{predictions.shape[0]} rows of predictions but {len(self.seeds)} seeds")
        if self.metric not in METRICS:
            raise ValueError(f"no bootstrap score for metric {self.metric!r}; choose one of {sorted(METRICS)}")

    @classmethod
    def from_logits(cls, logits: Iterable[np.ndarray], labels: np.ndarray, idx: np.ndarray, seeds: Iterable[int],
                    metric: str) -> "Outcomes":
        """From one (n, num_labels) logits array per seed."""
        rows = [predictions_from_logits(np.asarray(l), np.asarray(l).shape[1]) for l in logits]
        return cls(np.stack(rows), np.asarray(labels), np.asarray(idx), tuple(int(s) for s in seeds), metric)

    def score(self) -> float:
        """The metric, averaged over seeds, on all examples."""
        return float(self.per_seed().mean())

    def per_seed(self) -> np.ndarray:
        return batch_scores(self.metric, self.predictions, self.labels[None])

    def without(self, seed: int) -> "Outcomes":
        """These outcomes with ``seed``'s row left out; unchanged when the seed is not here or is the only one."""
        if seed not in self.seeds or len(self.seeds) == 1:
            return self
        keep = [i for i, s in enumerate(self.seeds) if s != seed]
        return Outcomes(self.predictions[keep], self.labels, self.idx, tuple(self.seeds[i] for i in keep), self.metric)

    def outlier_seeds(self) -> list[tuple[int, float]]:
        """(seed, score x 100) of each seed whose score lies outside the ``OUTLIER_LEVEL`` prediction interval
        of the other seeds' scores (mean +- t quantile x SD x sqrt(1 + 1/m), m of them): "more than 3 standard
        deviations" reckoned for a handful of seeds. Needs at least 3 seeds."""
        scores = 100 * self.per_seed()
        if len(scores) < 3:
            return []
        found = []
        for i, seed in enumerate(self.seeds):
            rest = np.delete(scores, i)
            bound = stats.t.ppf(0.5 + OUTLIER_LEVEL / 2, len(rest) - 1) * np.sqrt(1 + 1 / len(rest))
            spread_, distance = np.std(rest, ddof=1), abs(scores[i] - rest.mean())
            if distance > bound * spread_ if spread_ > 0 else distance > 0:
                found.append((int(seed), float(scores[i])))
        return found

    def degenerate(self) -> np.ndarray:
        """(seeds,) True where that seed's run did not train: a classifier that predicts one class for at
        least 97% of the examples although the labels' majority class is below 80%, or a regression
        output that takes one value for at least 97% of them (``metrics.degenerate``: scale-free)."""
        return degenerate(self.predictions, self.labels, regression=self.metric == "pearson")


def _pseudo_values(outcomes: "Outcomes") -> np.ndarray:
    """(seeds, n) jackknife pseudo-values x 100: n * score - (n - 1) * leave-one-out score, per seed and example
    (for accuracy, exactly each example's 0/1 correctness); their mean over examples is the seed's score."""
    n = len(outcomes.labels)
    loo = leave_one_out(outcomes.metric, outcomes.predictions, outcomes.labels)
    return 100 * (n * outcomes.per_seed()[:, None] - (n - 1) * loo)


@dataclass(frozen=True)
class Spread:
    """An estimate (metric x 100) with the variance components of a seeds x examples crossed design:
    ``seed`` (the spread of the seed means), ``example`` (the jackknife over examples of the seed-averaged
    estimate) and ``interaction`` (the residual seed x example term, which both of the others contain once
    and the estimate only once: it is subtracted), each with its degrees of freedom."""
    estimate: float
    seed: float
    example: float
    interaction: float
    seed_df: float  # 0: not estimable (a side with one seed)
    example_df: float
    interaction_df: float

    @property
    def variance(self) -> float:
        """Var of the estimate: seed + example - interaction (the unbiased estimator of a two-way random
        crossed design, (MS_seed + MS_example - MS_residual) / (seeds x examples)), never below either main term."""
        return max(self.seed + self.example - self.interaction, self.seed, self.example)

    @property
    def df(self) -> float:
        """Welch-Satterthwaite degrees of freedom of ``variance``."""
        terms = [(self.seed, self.seed_df), (self.example, self.example_df), (self.interaction, self.interaction_df)]
        denominator = sum(v ** 2 / df for v, df in terms if df > 0 and v > 0)
        return float(self.variance ** 2 / denominator) if denominator > 0 else np.inf

    def interval(self, level: float) -> tuple[float, float]:
        half = stats.t.ppf(0.5 + level / 2, self.df) * np.sqrt(self.variance)
        return self.estimate - half, self.estimate + half


def _components(scores: np.ndarray, pseudo: np.ndarray) -> tuple[float, float, float, float, float, float]:
    """(seed, example, interaction) variances of the seed-and-example mean and their degrees of freedom, from
    per-seed scores (S,) and pseudo-values (S, n) of one side or of a paired difference."""
    seeds, n = pseudo.shape
    example = float(np.var(pseudo.mean(0), ddof=1) / n)
    if seeds < 2:
        return 0.0, example, 0.0, 0.0, n - 1.0, 0.0
    residual = pseudo - pseudo.mean(1, keepdims=True) - pseudo.mean(0, keepdims=True) + pseudo.mean()
    interaction = float((residual ** 2).sum() / ((seeds - 1) * (n - 1)) / (seeds * n))
    return float(np.var(scores, ddof=1) / seeds), example, interaction, seeds - 1.0, n - 1.0, (seeds - 1.0) * (n - 1)


def spread(a: "Outcomes", b: "Outcomes | None" = None) -> Spread:
    """A's seed-averaged score (x 100), or A - B, with its variance components (module docstring)."""
    score_a, pseudo_a = 100 * a.per_seed(), _pseudo_values(a)
    if b is None:
        return Spread(float(score_a.mean()), *_components(score_a, pseudo_a))
    score_b, pseudo_b = 100 * b.per_seed(), _pseudo_values(b)
    estimate = float(score_a.mean() - score_b.mean())
    if a.seeds == b.seeds:  # paired by seed: the components of the per-seed, per-example difference
        return Spread(estimate, *_components(score_a - score_b, pseudo_a - pseudo_b))
    # independent seeds: each side's seed and interaction terms (Welch); the examples are shared
    sa, _, ia, dfa, _, ida = _components(score_a, pseudo_a)
    sb, _, ib, dfb, _, idb = _components(score_b, pseudo_b)
    n = pseudo_a.shape[1]
    example = float(np.var(pseudo_a.mean(0) - pseudo_b.mean(0), ddof=1) / n)
    seed, seed_df = _welch((sa, dfa), (sb, dfb))
    interaction, interaction_df = _welch((ia, ida), (ib, idb))
    return Spread(estimate, seed, example, interaction, seed_df, n - 1.0, interaction_df)


def _welch(*terms: tuple[float, float]) -> tuple[float, float]:
    """The sum of variance terms (variance, degrees of freedom) and its Welch-Satterthwaite degrees of freedom,
    over the terms that are estimable (df > 0): a side with a single seed adds no seed term, so the sum's
    degrees of freedom are the other side's, not 0 (which would let the examples' thousands stand in)."""
    known = [(v, df) for v, df in terms if df > 0]
    total = float(sum(v for v, _ in known))
    denominator = sum(v ** 2 / df for v, df in known)
    return total, (total ** 2 / denominator if total > 0 and denominator > 0 else 0.0)
