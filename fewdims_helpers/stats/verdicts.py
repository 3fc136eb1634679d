"""Verdicts with their uncertainty: intervals over seeds and examples, and three-way verdicts. The scores over a
batch axis are ``scores``', the outcomes of a condition and the variance of their score ``intervals``'.

Every comparison of the studies is computed from per-example predictions (``Outcomes``: one row of
predictions per seed, on the same held-out examples for both sides). The difference A - B of the
seed-averaged metric has two sources of variance (Dodge et al. 2020; Bouthillier et al. 2021):
- **seeds**: the spread of the per-seed differences (paired by seed when both sides share their
  seeds: a run and its variant trained with one seed share data order and head initialisation), or
  of each side's per-seed scores (Welch) when they do not: ``var / seeds``;
- **examples**: the test set is a sample too. Its variance is the delete-one **jackknife** over test
  examples (Efron & Stein 1981; Efron 1982), the same example left out of both sides and every seed.
  Every metric here (accuracy, Pearson, MCC, F1) is a function of per-example sums, so each
  leave-one-out score is exact and cheap, and the interval has no Monte Carlo error at all.
Both terms contain the seed x example interaction once, so it is estimated from the residuals of the
(seeds x examples) table of jackknife pseudo-values and subtracted once: the unbiased variance of a
two-way random crossed design, (MS_seed + MS_example - MS_residual) / (seeds x examples). The interval
is a t interval on it with Welch-Satterthwaite degrees of freedom (Satterthwaite 1946): when seeds
dominate, the seed-level t interval on the per-seed differences (4 degrees of freedom at 5 seeds);
when examples dominate, a normal interval on the jackknife. Earlier
versions used a two-level (seeds x examples) percentile bootstrap, which under-covers when seed
variance dominates (80% for a nominal 90% at a seed SD of 4 points with 5 seeds); tests/test_verdicts.py
measures the coverage of this interval in both regimes.

A side whose runs did not train is no evidence: ``Outcomes.degenerate`` flags a seed whose
classifier predicts one class for at least 97% of the examples where the labels' majority is below
80%, or whose regression output takes one value for 97% of them. A comparison with such a side is **invalid**.

A claim is decided against a declared margin (``DEFAULT_MARGIN``: 2 points of the metric x 100):
- ``equivalent`` ("matches", "enough", "comparable"): two one-sided tests (TOST) at 5% each, i.e.
  the 90% interval of the difference lies inside (-margin, +margin): **holds**; the 90% interval lies
  wholly beyond the margin: **does not hold**; otherwise **unresolved at this power** (and when that
  interval excludes 0, the sides differ, by less than the margin could be shown: "differs").
- ``better`` / ``worse`` (A beats B, A falls short of B): the one-sided 95% bound excludes 0 in the
  claimed direction: holds; it excludes 0 in the other direction: does not hold; else unresolved.
Tables and printed lines show the 90% interval the decision used beside the 95% one.

How robust a verdict is, in three columns of every verdict table (``Comparison``):
- ``loo_same`` of ``loo_runs``: the verdict re-decided with each seed left out (of both sides when they share
  it; a side with a single seed keeps it); a row where they disagree reads **fragile**;
- ``outlier_seeds``: a seed whose score lies more than 3 standard deviations from the other seeds of its
  side, reckoned for their number: outside their 99.73% prediction interval (the share of a normal within
  3 SD; a t interval with their degrees of freedom). It is kept, never dropped, and named. A rule on the
  median absolute deviation of so few seeds flags a normal side most of the time (about 6 in 10 at 5
  seeds, by simulation); this one flags about 1 in 80 at 5 seeds, and a seed 15 SDs down 9 times in 10;
- ``borderline``: the 90% bound that decides the row lies within ``BORDERLINE`` points of its threshold
  (plus or minus the margin, or 0 for a one-sided claim).
A side with a single seed (04's converged probe) has no seed variance of its own: the seed term and its
degrees of freedom are the other side's alone.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from .intervals import Outcomes, Spread, spread

DEFAULT_MARGIN = 2.0  # points of the metric x 100
HOLDS, DOES_NOT_HOLD, UNRESOLVED, INVALID = "holds", "does not hold", "unresolved at this power", "invalid"
CLAIMS = ("equivalent", "better", "worse")
BORDERLINE = 0.1  # points: a deciding 90% bound this close to its threshold marks the row borderline


# ----------------------------------------------------------------------------- the comparison
@dataclass(frozen=True)
class Comparison:
    """A - B on the metric x 100: point estimate, 95% and 90% intervals, and the verdict."""
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
    seed_sd: float = float("nan")  # standard error of the estimate from the spread of the seeds
    example_sd: float = float("nan")  # standard error of the estimate from the examples (jackknife)
    df: float = float("inf")
    invalid: str = ""  # "a", "b" or "a and b": the side(s) with a run that did not train
    loo_same: float = float("nan")  # leave-one-seed-out re-decisions that give this verdict (nan: none possible)
    loo_runs: int = 0  # leave-one-seed-out re-decisions made
    outlier_seeds: str = ""  # e.g. "a: seed 1 (77.2)": seeds far from the rest of their side (kept)
    borderline: bool = False  # the deciding 90% bound lies within BORDERLINE points of its threshold

    @property
    def fragile(self) -> bool:
        """Some leave-one-seed-out re-decision differs from the verdict."""
        return self.loo_runs > 0 and self.loo_same < self.loo_runs

    def interval(self) -> str:
        return f"{self.estimate:+.1f} [{self.low:+.1f}, {self.high:+.1f}]"

    def describe(self) -> str:
        """e.g. '-2.3 points [-4.1, -0.6] (95% CI; 90% [-3.8, -0.9]), margin 2: unresolved at this power'."""
        return f"{self.estimate:+.1f} points [{self.low:+.1f}, {self.high:+.1f}] (95% CI; 90% [{self.low90:+.1f}, " \
               f"{self.high90:+.1f}]), margin {self.margin:g}: {self.verdict}"

    def as_row(self) -> dict:
        return {"difference": self.estimate, "ci_low": self.low, "ci_high": self.high, "ci90_low": self.low90,
                "ci90_high": self.high90, "margin": self.margin, "kind": self.claim, "verdict": self.verdict,
                "seeds": self.seeds, "examples": self.examples, "paired_seeds": self.paired_seeds,
                "seed_se": self.seed_sd, "example_se": self.example_sd, "df": self.df, "invalid_side": self.invalid,
                "loo_same": self.loo_same, "loo_runs": self.loo_runs, "outlier_seeds": self.outlier_seeds,
                "borderline": self.borderline}


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


def borderline(claim: str, low90: float, high90: float, margin: float) -> bool:
    """Whether a bound of the 90% interval lies within ``BORDERLINE`` points of a threshold that decides
    ``claim`` (plus or minus the margin for equivalence, 0 for a one-sided claim)."""
    thresholds = (-margin, margin) if claim == "equivalent" else (0.0,)
    return any(abs(bound - t) <= BORDERLINE for bound in (low90, high90) for t in thresholds)


def compare(a: Outcomes, b: Outcomes, claim: str = "equivalent", margin: float = DEFAULT_MARGIN,
            robustness: bool = True) -> Comparison:
    """A - B (metric x 100) with its 95% and 90% intervals (module docstring) and the verdict on ``claim``;
    **invalid** when a run of either side did not train (``Outcomes.degenerate``).

    The examples must be the same on both sides (same ids, same order). Seeds are paired when both
    sides have the same seeds, else independent. ``robustness``: with the leave-one-seed-out re-decisions,
    the outlier seeds and the borderline mark (module docstring)."""
    if a.metric != b.metric:
        raise ValueError(f"cannot compare {a.metric} with {b.metric}")
    if len(a.idx) != len(b.idx) or not np.array_equal(a.idx, b.idx):
        raise ValueError("the two sides were scored on different examples; compare predictions on the same split")
    result = spread(a, b)
    (low, high), (low90, high90) = result.interval(0.95), result.interval(0.90)
    invalid = " and ".join(side for side, o in (("a", a), ("b", b)) if o.degenerate().any())
    verdict = INVALID if invalid else decide(claim, low90, high90, margin)
    comparison = Comparison(result.estimate, float(low), float(high), float(low90), float(high90), float(margin),
                            claim, verdict, max(len(a.seeds), len(b.seeds)), len(a.labels), a.seeds == b.seeds,
                            float(np.sqrt(result.seed)), float(np.sqrt(result.example)), result.df, invalid)
    if not robustness or invalid:
        return comparison
    left_out = [(a.without(s), b.without(s)) for s in dict.fromkeys(a.seeds + b.seeds)]
    verdicts = [compare(x, y, claim, margin, robustness=False).verdict for x, y in left_out if x is not a or y is not b]
    outliers = "; ".join(f"{side}: seed {seed} ({score:.1f})" for side, o in (("a", a), ("b", b))
                         for seed, score in o.outlier_seeds())
    return replace(comparison, loo_same=float(sum(v == verdict for v in verdicts)) if verdicts else float("nan"),
                   loo_runs=len(verdicts), outlier_seeds=outliers,
                   borderline=borderline(claim, comparison.low90, comparison.high90, margin))


def score_interval(outcomes: Outcomes) -> tuple[float, float, float]:
    """(score, low, high) x 100: the seed-averaged metric and its 95% interval over seeds and examples."""
    result = spread(outcomes)
    low, high = result.interval(0.95)
    return result.estimate, float(low), float(high)


def validation_noise(score: float, metric: str, n: int) -> float:
    """One standard error (points) of a validation score from ``n`` examples: binomial for accuracy, Fisher's
    (1 - r^2) / sqrt(n) for a correlation. Two checkpoints' scores differing by less are indistinguishable."""
    value = score / 100
    if metric == "accuracy":
        return 100 * float(np.sqrt(max(value * (1 - value), 0.0) / max(n, 1)))
    return 100 * float((1 - min(value ** 2, 1.0)) / np.sqrt(max(n, 1)))



# ----------------------------------------------------------------------------- tables
def verdict_row(study: str, claim_text: str, task: str, a: str, b: str, comparison: Comparison, **extra) -> dict:
    """One row of a study's verdict table (and of ``figures/verdicts.csv``): the study ("01"), the
    paper's claim in words, the task, the two sides compared (A - B), and the comparison."""
    return {"study": study, "claim": claim_text, "task": task, "a": a, "b": b, **comparison.as_row(), **extra}


SAME = 1e-4  # points: rows whose estimate and interval bounds agree this closely are one comparison


def distinct(table: pd.DataFrame) -> pd.DataFrame:
    """Each comparison once: rows with the same task, estimate and interval (within ``SAME`` points: two
    computations of one comparison differ in the last float digits) are the same comparison under two names
    (03's top layer is 02's baseline; on a regression task, a head refit on one dimension and that dimension
    selected at inference give the same Pearson). The first valid row is kept, and its ``same_as`` names
    the rows dropped (kept from earlier tables)."""
    if table.empty:
        return table
    values = table[["difference", "ci_low", "ci_high"]].to_numpy(dtype=float)
    order = list((table["verdict"] == INVALID).astype(int).sort_values(kind="stable").index)  # valid rows first
    kept: dict[int, list[str]] = {}
    for index in order:
        twin = next((k for k in kept if table.at[k, "task"] == table.at[index, "task"]
                     and np.allclose(values[k], values[index], rtol=0, atol=SAME)), None)
        if twin is None:
            kept[index] = []
        else:
            row = table.loc[index]
            kept[twin].append(f"{row['study']}: {row['claim']} ({row['a']} vs {row['b']})")
    result = table.loc[sorted(kept)].copy()
    earlier = result["same_as"].astype(object).fillna("") if "same_as" in result else pd.Series("", index=result.index)
    result["same_as"] = ["; ".join(filter(None, [before, *kept[i]])) for i, before in zip(result.index, earlier)]
    return result.reset_index(drop=True)


ABOVE = "A is better, beyond the margin"
DIFFERS = "differs, within the margin not shown"


def _above(table: pd.DataFrame) -> pd.Series:
    """Equivalence claims that fail because A lies significantly *above* B + margin (not below)."""
    return (table["kind"] == "equivalent") & (table["verdict"] == DOES_NOT_HOLD) & (table["ci90_low"] >= table["margin"])


def _differs(table: pd.DataFrame) -> pd.Series:
    """Unresolved equivalence claims whose 90% interval excludes 0: the sides differ, by less than could be
    shown to exceed the margin."""
    return (table["kind"] == "equivalent") & (table["verdict"] == UNRESOLVED) & \
        ((table["ci90_low"] > 0) | (table["ci90_high"] < 0))


def _invalid_sides(table: pd.DataFrame) -> pd.Series:
    sides = table["invalid_side"] if "invalid_side" in table else pd.Series("", index=table.index)
    return sides.fillna("").astype(str)


def verdict_text(table: pd.DataFrame) -> list[str]:
    """Each row's verdict as printed. An equivalence claim ("A matches B") does not hold both when A is
    significantly worse and when it is significantly better than B by more than the margin; the second
    is named, so that "does not hold" is never read as "worse" where A is in fact better. An unresolved
    row whose 90% interval excludes 0 says the sides differ; an invalid row names the side that did not train."""
    texts = []
    for row, above, differs, sides in zip(table.itertuples(), _above(table), _differs(table), _invalid_sides(table)):
        if row.verdict == INVALID:
            names = [getattr(row, side) for side in sides.split(" and ") if side]
            texts.append(f"invalid: {' and '.join(names)} did not train")
        else:
            text = f"{row.verdict} ({ABOVE})" if above else f"{row.verdict} ({DIFFERS})" if differs else row.verdict
            texts.append(text + "".join(f"; {mark}" for mark in _marks(row)))
    return texts


def _marks(row) -> list[str]:
    """The robustness marks of one verdict row (a ``table.itertuples()`` row): fragile, borderline, outlier seeds."""
    marks = []
    loo_same, loo_runs = getattr(row, "loo_same", float("nan")), getattr(row, "loo_runs", 0)
    if loo_runs and loo_runs > 0 and loo_same < loo_runs:
        marks.append(f"fragile: {int(loo_same)} of {int(loo_runs)} leave-one-seed-out re-decisions agree")
    if getattr(row, "borderline", False) is True:
        marks.append(f"borderline: a bound within {BORDERLINE:g} points of its threshold")
    outliers = getattr(row, "outlier_seeds", "")
    if isinstance(outliers, str) and outliers:
        marks.append(f"outlier seed {outliers}, kept")
    return marks


def fragile(table: pd.DataFrame) -> pd.Series:
    """Rows where some leave-one-seed-out re-decision differs from the verdict."""
    if "loo_runs" not in table:
        return pd.Series(False, index=table.index)
    return (table["loo_runs"].fillna(0) > 0) & (table["loo_same"] < table["loo_runs"])


def verdict_lines(table: pd.DataFrame) -> str:
    """One printed line per verdict: task, A vs B, the estimate with its 95% and 90% intervals, the verdict."""
    return "\n".join(f"- {r.task}: {r.a} vs {r.b}: {r.difference:+.1f} points [{r.ci_low:+.1f}, {r.ci_high:+.1f}] "
                      f"(95% CI; 90% [{r.ci90_low:+.1f}, {r.ci90_high:+.1f}], {r.seeds} seeds x {r.examples} examples), "
                      f"margin {r.margin:g}: {text}"
                      for r, text in zip(table.itertuples(), verdict_text(table)))


def tally(table: pd.DataFrame) -> str:
    """'3 hold, 5 do not hold, 1 unresolved at this power, 1 invalid (of 10)', with how many of those that do
    not hold have A better than B beyond the margin, and how many unresolved rows differ from 0."""
    counts = table["verdict"].value_counts()
    above, differs = int(_above(table).sum()), int(_differs(table).sum())
    return (f"{counts.get(HOLDS, 0)} hold, {counts.get(DOES_NOT_HOLD, 0)} do not hold"
            + (f" ({above} of them because A is better beyond the margin)" if above else "")
            + f", {counts.get(UNRESOLVED, 0)} unresolved at this power"
            + (f" ({differs} of them differ from 0, within the margin not shown)" if differs else "")
            + (f", {counts.get(INVALID, 0)} invalid (a side did not train)" if counts.get(INVALID, 0) else "")
            + f" (of {len(table)})" + _robustness(table))


def _robustness(table: pd.DataFrame) -> str:
    """'; 3 fragile, 1 borderline, 2 with an outlier seed', or '' when none is."""
    parts = [(int(fragile(table).sum()), "fragile"),
             (int(table["borderline"].fillna(False).astype(bool).sum()) if "borderline" in table else 0, "borderline"),
             (int((table["outlier_seeds"].fillna("") != "").sum()) if "outlier_seeds" in table else 0,
              "with an outlier seed")]
    found = [f"{count} {name}" for count, name in parts if count]
    return f"; {', '.join(found)}" if found else ""


# ----------------------------------------------------------------------------- coverage of the interval
def simulated_pair(rng: np.random.Generator, n: int, seeds: int, p_a: float, p_b: float, seed_sd: float,
                   failing: float = 0.0, failing_share: float = 0.2) -> tuple[Outcomes, Outcomes]:
    """Per-seed correctness of two conditions on the same ``n`` examples drawn from a population: a shared
    example difficulty (SD 0.1), and an independent effect of each run on each side (SD ``seed_sd``: the
    variance of fine-tuning over seeds). ``failing``: each run of side A fails with probability
    ``failing_share`` and then loses that much accuracy (a seed that trains badly). The population
    difference is ``p_a - failing_share * failing - p_b`` (x 100 points)."""
    labels = rng.integers(0, 2, n)
    difficulty = rng.normal(0, 0.1, n)
    rows_a, rows_b = [], []
    for _ in range(seeds):
        effect_a, effect_b = rng.normal(0, seed_sd, 2)
        loss = failing if rng.random() < failing_share else 0.0
        rows_a.append(np.where(rng.random(n) < np.clip(p_a - loss + effect_a + difficulty, 0, 1), labels, 1 - labels))
        rows_b.append(np.where(rng.random(n) < np.clip(p_b + effect_b + difficulty, 0, 1), labels, 1 - labels))
    side = lambda rows: Outcomes(np.stack(rows), labels, np.arange(n), tuple(range(seeds)), "accuracy")  # noqa: E731
    return side(rows_a), side(rows_b)


def coverage(replicates: int, n: int, seeds: int, seed_sd: float, p_a: float = 0.78, p_b: float = 0.74,
             seed: int = 0, failing: float = 0.0, failing_share: float = 0.2) -> dict[str, float]:
    """How often the 90% and 95% intervals of ``compare`` cover the population difference, over ``replicates``
    simulated studies (``simulated_pair``, with its failing-seed regime when ``failing`` > 0), the 90%
    interval's mean width, and how often a side had an outlier seed (``Outcomes.outlier_seeds``)."""
    rng, planted = np.random.default_rng(seed), 100 * (p_a - failing_share * failing - p_b)
    hits90, hits95, widths, outliers = [], [], [], []
    for _ in range(replicates):
        a, b = simulated_pair(rng, n, seeds, p_a, p_b, seed_sd, failing, failing_share)
        result = compare(a, b, robustness=False)
        hits90.append(result.low90 <= planted <= result.high90)
        hits95.append(result.low <= planted <= result.high)
        widths.append(result.high90 - result.low90)
        outliers.append(bool(a.outlier_seeds() or b.outlier_seeds()))
    return {"coverage90": float(np.mean(hits90)), "coverage95": float(np.mean(hits95)),
            "width90": float(np.mean(widths)), "outlier_seed_share": float(np.mean(outliers))}


# ----------------------------------------------------------------------------- power with fewer seeds
def projected(table: pd.DataFrame, seeds: int) -> pd.DataFrame:
    """Each verdict row as it would be decided with ``seeds`` seeds instead of its own, the estimate kept: the
    seed variance of the mean scales with (its seeds / ``seeds``), the example variance stays, and the
    degrees of freedom follow (Welch-Satterthwaite, seeds - 1 for the seed term). A power argument from the
    stored predictions for cutting seeds: a row whose projected verdict differs would lose its resolution."""
    needed = {"seed_se", "example_se", "seeds", "difference", "margin", "kind"}
    if not needed <= set(table.columns):
        raise ValueError(f"the verdict table has no {sorted(needed - set(table.columns))}: it predates the variance "
                         f"components; regenerate it (python run_all.py)")
    rows = []
    for row in table.itertuples():
        seed_var = float(row.seed_se) ** 2 * row.seeds / seeds if row.seeds > 1 else 0.0
        spread = Spread(float(row.difference), seed_var, float(row.example_se) ** 2, 0.0,
                        seeds - 1.0 if seeds > 1 and seed_var > 0 else 0.0, float(row.examples) - 1, 0.0)
        low90, high90 = spread.interval(0.90)
        verdict = row.verdict if row.verdict == INVALID else decide(row.kind, low90, high90, float(row.margin))
        rows.append({"projected_seeds": seeds, "projected_ci90_low": low90, "projected_ci90_high": high90,
                     "projected_verdict": verdict, "same_verdict": verdict == row.verdict})
    return pd.concat([table.reset_index(drop=True), pd.DataFrame(rows)], axis=1)
