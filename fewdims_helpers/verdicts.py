"""Verdicts with their uncertainty: paired bootstrap intervals and three-way equivalence verdicts.

Every comparison of the studies is computed from per-example predictions (``Outcomes``: one row of
predictions per seed, on the same held-out examples for both sides). Its interval comes from a
two-level paired bootstrap (Dror et al. 2018; rliable's stratified bootstrap): each replicate draws
the test examples with replacement, the same draw for both sides, and the seeds with replacement,
the same draw for both sides when they share their seeds (a run and its variant trained with one
seed share data order and head initialisation). Seeds and examples are both sources of variance
(Dodge et al. 2020), so both are resampled. ``scipy.stats.bootstrap`` resamples one axis of paired
samples; the two-level draw is what it does not do, so it is written out here, vectorised. Seeds
and examples are crossed, not nested, so resampling both counts their interaction twice: the
interval is somewhat conservative (Owen 2007, the "pigeonhole" bootstrap; tests/test_verdicts.py
measures about 97% coverage for a nominal 95% with fine-tuning-like seed variance), which errs
against calling a claim resolved.

A claim is decided against a declared margin (``DEFAULT_MARGIN``: 2 points of the metric x 100):
- ``equivalent`` ("matches", "enough", "comparable"): two one-sided tests (TOST) at 5% each, i.e.
  the 90% interval of the difference lies inside (-margin, +margin): **holds**; the 90% interval lies
  wholly beyond the margin: **does not hold**; otherwise **unresolved at this power**.
- ``better`` / ``worse`` (A beats B, A falls short of B): the one-sided 95% bound excludes 0 in the
  claimed direction: holds; it excludes 0 in the other direction: does not hold; else unresolved.
The printed interval is the 95% one.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from .metrics import predictions_from_logits

DEFAULT_MARGIN = 2.0  # points of the metric x 100
RESAMPLES = 2000
HOLDS, DOES_NOT_HOLD, UNRESOLVED = "holds", "does not hold", "unresolved at this power"
CLAIMS = ("equivalent", "better", "worse")
_CHUNK = 250  # bootstrap replicates computed at once (bounds memory: seeds x chunk x examples)


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
        if self.metric not in SCORES:
            raise ValueError(f"no bootstrap score for metric {self.metric!r}; choose one of {sorted(SCORES)}")

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
        return _scores(self.metric, self.predictions, self.labels, np.arange(len(self.labels))[None])[:, 0]


# ----------------------------------------------------------------------------- vectorised scores
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


def _scores(metric: str, predictions: np.ndarray, labels: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """(seeds, draws) scores: each seed's predictions scored on each row of example indices ``draws``."""
    out = np.empty((predictions.shape[0], len(draws)))
    for start in range(0, len(draws), _CHUNK):
        rows = draws[start:start + _CHUNK]  # (chunk, n)
        out[:, start:start + _CHUNK] = SCORES[metric](predictions[:, rows], labels[rows][None])
    return out


def _resampled(outcomes: Outcomes, draws: np.ndarray, seed_draws: np.ndarray) -> np.ndarray:
    """(resamples,) seed-averaged scores: replicate r scores the examples ``draws[r]`` and averages the
    seeds ``seed_draws[r]``."""
    scores = _scores(outcomes.metric, outcomes.predictions, outcomes.labels, draws)  # (seeds, resamples)
    return scores.T[np.arange(len(draws))[:, None], seed_draws].mean(1)


# ----------------------------------------------------------------------------- the comparison
@dataclass(frozen=True)
class Comparison:
    """A - B on the metric x 100: point estimate, 95% and 90% bootstrap intervals, and the verdict."""
    estimate: float
    low: float
    high: float
    low90: float
    high90: float
    margin: float
    claim: str
    verdict: str
    seeds: int
    examples: int
    paired_seeds: bool

    def interval(self) -> str:
        return f"{self.estimate:+.1f} [{self.low:+.1f}, {self.high:+.1f}]"

    def describe(self) -> str:
        """e.g. '-2.3 points [-4.1, -0.6], 95% CI; margin 2: unresolved at this power'."""
        return f"{self.estimate:+.1f} points [{self.low:+.1f}, {self.high:+.1f}] (95% CI), margin {self.margin:g}: " \
               f"{self.verdict}"

    def as_row(self) -> dict:
        return {"difference": self.estimate, "ci_low": self.low, "ci_high": self.high, "ci90_low": self.low90,
                "ci90_high": self.high90, "margin": self.margin, "kind": self.claim, "verdict": self.verdict,
                "seeds": self.seeds, "examples": self.examples, "paired_seeds": self.paired_seeds}


def decide(claim: str, low90: float, high90: float, margin: float) -> str:
    """The three-way verdict from the 90% interval (two one-sided 5% tests)."""
    if claim not in CLAIMS:
        raise ValueError(f"unknown claim {claim!r}; choose one of {CLAIMS}")
    if claim == "equivalent":
        if -margin < low90 and high90 < margin:
            return HOLDS
        return DOES_NOT_HOLD if (high90 <= -margin or low90 >= margin) else UNRESOLVED
    sign = 1.0 if claim == "better" else -1.0
    low, high = sorted((sign * low90, sign * high90))
    return HOLDS if low > 0 else DOES_NOT_HOLD if high < 0 else UNRESOLVED


def compare(a: Outcomes, b: Outcomes, claim: str = "equivalent", margin: float = DEFAULT_MARGIN,
            resamples: int = RESAMPLES, seed: int = 0) -> Comparison:
    """A - B (metric x 100) with its paired bootstrap intervals and the verdict on ``claim``.

    The examples must be the same on both sides (same ids, same order). Seeds are paired when both
    sides have the same seeds, else resampled independently."""
    if a.metric != b.metric:
        raise ValueError(f"cannot compare {a.metric} with {b.metric}")
    if len(a.idx) != len(b.idx) or not np.array_equal(a.idx, b.idx):
        raise ValueError("the two sides were scored on different examples; compare predictions on the same split")
    rng = np.random.default_rng(seed)
    n = len(a.labels)
    draws = rng.integers(0, n, size=(resamples, n))  # the same examples on both sides
    paired = a.seeds == b.seeds
    seeds_a = rng.integers(0, len(a.seeds), size=(resamples, len(a.seeds)))
    seeds_b = seeds_a if paired else rng.integers(0, len(b.seeds), size=(resamples, len(b.seeds)))
    boot = _resampled(a, draws, seeds_a) - _resampled(b, draws, seeds_b)
    estimate = a.score() - b.score()
    low, high, low90, high90 = np.percentile(boot, [2.5, 97.5, 5.0, 95.0]) * 100
    return Comparison(100 * estimate, float(low), float(high), float(low90), float(high90), float(margin), claim,
                      decide(claim, low90, high90, margin), max(len(a.seeds), len(b.seeds)), n, paired)


def score_interval(outcomes: Outcomes, resamples: int = RESAMPLES, seed: int = 0) -> tuple[float, float, float]:
    """(score, low, high) x 100: the seed-averaged metric and its 95% bootstrap interval over seeds and examples."""
    rng = np.random.default_rng(seed)
    n = len(outcomes.labels)
    draws = rng.integers(0, n, size=(resamples, n))
    boot = _resampled(outcomes, draws, rng.integers(0, len(outcomes.seeds), size=(resamples, len(outcomes.seeds))))
    low, high = np.percentile(boot, [2.5, 97.5]) * 100
    return 100 * outcomes.score(), float(low), float(high)


# ----------------------------------------------------------------------------- tables
VERDICT_FILE = "verdicts"  # figures/<NN>_verdicts.csv per notebook; figures/verdicts.csv gathers them all


def verdict_row(study: str, claim_text: str, task: str, a: str, b: str, comparison: Comparison, **extra) -> dict:
    """One row of a study's verdict table (and of ``figures/verdicts.csv``): the study ("01"), the
    paper's claim in words, the task, the two sides compared (A - B), and the comparison."""
    return {"study": study, "claim": claim_text, "task": task, "a": a, "b": b, **comparison.as_row(), **extra}


def write_verdicts(rows: list[dict] | pd.DataFrame, figures: Path, study: str) -> pd.DataFrame:
    """``figures/<study>_verdicts.{csv,md}`` from ``verdict_row``s; returns the table."""
    from .reporting import write_table

    table = pd.DataFrame(rows).reset_index(drop=True)
    note = (f"A - B in points (metric x 100) with its 95% paired bootstrap interval over seeds and test examples; "
            f"verdict by two one-sided tests at 5% against the margin (equivalence), or a one-sided 5% test "
            f"(better / worse). {tally(table)}.")
    write_table(table, Path(figures) / f"{study}_{VERDICT_FILE}", note=note)
    return table


def gather_verdicts(figures: Path) -> pd.DataFrame:
    """Every notebook's verdict table in one: ``figures/verdicts.{csv,md}`` (run_all.py writes it)."""
    from .reporting import write_table

    parts = [pd.read_csv(path, dtype={"study": str}) for path in sorted(Path(figures).glob(f"[0-9][0-9]_{VERDICT_FILE}.csv"))]
    if not parts:
        return pd.DataFrame()
    table = pd.concat(parts, ignore_index=True)
    write_table(table, Path(figures) / VERDICT_FILE, note=f"All verdicts of the notebooks: {tally(table)}.")
    return table


ABOVE = "A is better, beyond the margin"


def _above(table: pd.DataFrame) -> pd.Series:
    """Equivalence claims that fail because A lies significantly *above* B + margin (not below)."""
    return (table["kind"] == "equivalent") & (table["verdict"] == DOES_NOT_HOLD) & (table["ci90_low"] >= table["margin"])


def verdict_text(table: pd.DataFrame) -> list[str]:
    """Each row's verdict as printed. An equivalence claim ("A matches B") does not hold both when A is
    significantly worse and when it is significantly better than B by more than the margin; the second
    is named, so that "does not hold" is never read as "worse" where A is in fact better."""
    return [f"{verdict} ({ABOVE})" if above else verdict for verdict, above in zip(table["verdict"], _above(table))]


def verdict_lines(table: pd.DataFrame) -> str:
    """One printed line per verdict: task, A vs B, the interval and the verdict."""
    return "\n".join(f"- {r.task}: {r.a} vs {r.b}: {r.difference:+.1f} points [{r.ci_low:+.1f}, {r.ci_high:+.1f}] "
                      f"(95% CI, {r.seeds} seeds x {r.examples} examples), margin {r.margin:g}: {text}"
                      for r, text in zip(table.itertuples(), verdict_text(table)))


def tally(table: pd.DataFrame) -> str:
    """'3 hold, 5 do not hold, 1 unresolved at this power (of 9)', with how many of those that do not
    hold have A better than B beyond the margin."""
    counts = table["verdict"].value_counts()
    above = int(_above(table).sum())
    return (f"{counts.get(HOLDS, 0)} hold, {counts.get(DOES_NOT_HOLD, 0)} do not hold"
            + (f" ({above} of them because A is better beyond the margin)" if above else "")
            + f", {counts.get(UNRESOLVED, 0)} unresolved at this power (of {len(table)})")


def run_outcomes(store, configs: Iterable, split: str = "test") -> Outcomes:
    """The saved predictions of runs that differ only in their seed (``save_predictions`` of ``split``),
    read through the run store, one row per run in the order given."""
    from .tasks import get_task

    configs = list(configs)
    if not configs:
        raise ValueError("no runs to read predictions from")
    saved = [store.predictions(config, split) for config in configs]
    first = saved[0]
    for config, other in zip(configs[1:], saved[1:]):
        if not np.array_equal(other["idx"], first["idx"]):
            raise ValueError(f"run {config.run_id} was scored on other {split} examples than {configs[0].run_id}")
    spec = get_task(configs[0].data.task)
    return Outcomes.from_logits([s["logits"] for s in saved], first["labels"], first["idx"],
                                [c.train.seed for c in configs], spec.main_metric)
