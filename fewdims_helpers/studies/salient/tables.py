"""Study 06's tables (Figs. 1-4, Table 3, Fig. 5) and its verdicts: the compressed probes of each
fine-tuned model against the probe on all dimensions, paired by seed and test example."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ...data.tasks import get_task
from ...report.tables import format_mean_std, mean_std, summarize
from ...stats.verdicts import DEFAULT_MARGIN, Outcomes, compare, tally, verdict_lines, verdict_row
from .analysis import ALL, BEST_SINGLE, VARIANTS, Analysis, chance_score, leading_ratio_index, natural_dimensions
from .features import Features, ModelState

STATES = ("pretrained", "fine-tuned")


def curve_summary(curves: pd.DataFrame) -> pd.DataFrame:
    """Mean, std and count over seeds of each (task, state, variant, components)."""
    return summarize(curves, ["task", "state", "variant", "components"])


def curve_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Rows (task, state, components), one "mean ± std" column (metric x 100) per variant."""
    cells = summary.assign(cell=[format_mean_std(m, s) for m, s in zip(summary["mean"], summary["std"])])
    table = cells.pivot_table(index=["task", "state", "components"], columns="variant", values="cell",
                              aggfunc="first", sort=False)[list(VARIANTS)]
    return table.reset_index().rename_axis(columns=None)  # flat, so write_table keeps task, state, components


def single_neuron_summary(singles: pd.DataFrame, salient: pd.DataFrame) -> pd.DataFrame:
    """Per (task, state), mean over seeds (x 100): the test score of the single dimension with the best
    validation score (not the best test score: that would be selection optimism), the 90th-percentile
    and median of the single dimensions' test scores, and the probe on all dimensions."""
    per_seed = singles.groupby(["task", "state", "seed"], sort=False)["test_score"]
    chosen = singles[singles["chosen"]].set_index(["task", "state", "seed"])["test_score"]
    table = pd.DataFrame({BEST_SINGLE: chosen, "90th pct single": per_seed.quantile(0.9),
                          "median single": per_seed.median()})
    table["all dimensions"] = salient[salient.subset == "All"].set_index(["task", "state", "seed"])["test_score"]
    return (100 * table.groupby(["task", "state"], sort=False).mean()).round(1).reset_index()


def ratio_table(ratios: pd.DataFrame) -> pd.DataFrame:
    """Rows (task, seed): number of classes, leading index where ratios exceed 1, and the ratios."""
    wide = ratios.pivot_table(index=["task", "seed"], columns="component", values="ratio", sort=False)
    index = [leading_ratio_index(row) for row in wide.to_numpy()]
    classes = [natural_dimensions(get_task(task)) for task, _ in wide.index]
    wide.columns = [f"r{c}" for c in wide.columns]
    wide = wide.map(lambda ratio: f"{ratio:.3f}")  # strings: the Markdown table would print 4 decimals
    return wide.assign(classes=classes, index=index)[["classes", "index", *wide.columns]].reset_index()


def salient_table(profile, analysis: Analysis, features: Features, runs: pd.DataFrame) -> pd.DataFrame:
    """Table 3: rows tasks; Random, pretrained All/1/5/natural, fine-tuned All/1/5/natural (mean ± std
    over seeds, metric x 100), and the fine-tuned runs' own heads."""
    rows = []
    for task in profile.tasks:
        spec = get_task(task)
        row = {"task": task, "natural": natural_dimensions(spec),
               "Random": f"{100 * chance_score(spec, features.labels[task]):.1f}"}
        for state in STATES:
            block = analysis.salient[(analysis.salient.task == task) & (analysis.salient.state == state)]
            for subset, scores in block.groupby("subset", sort=False)["test_score"]:
                row[f"{state} {subset}"] = _mean_std(scores)
        row["fine-tuned own head"] = _mean_std(runs.loc[runs["data.task"] == task, "test_score"])
        rows.append(row)
    return pd.DataFrame(rows).set_index("task")


def _mean_std(scores: pd.Series) -> str:
    mean, std, n = mean_std(scores)
    return format_mean_std(mean, std) if n > 1 else f"{100 * mean:.1f}"


def best_neurons(features: Features, analysis: Analysis, seed: int) -> dict[str, tuple[int, pd.DataFrame]]:
    """Per task: the fine-tuned model's (seed ``seed``) greedy-first dimension and its test activations
    with the labels (Fig. 5)."""
    frames = {}
    for task in features.labels:
        rows = analysis.salient
        dim = rows[(rows.task == task) & (rows.state == "fine-tuned") & (rows.seed == seed) & (rows.subset == "1")]
        dim = int(dim["dims"].item()[0])
        activation = features.states[ModelState(task, "fine-tuned", seed)]["test"][:, dim]
        frames[task] = dim, pd.DataFrame({"activation": activation, "label": features.labels[task]["test"]})
    return frames


def verdicts(profile, analysis: Analysis, features: Features, margin: float = DEFAULT_MARGIN,
             state: str = "fine-tuned") -> pd.DataFrame:
    """Per task: each compressed probe (first ``VERDICT_COMPONENTS`` principal components, best single
    dimension chosen on validation, greedy 1 / 5 / natural) against the probe on all dimensions, from
    their test predictions, paired by seed and example; equivalence verdict against ``margin``."""
    rows = []
    for task in profile.tasks:
        spec = get_task(task)
        block = analysis.predictions[(analysis.predictions.task == task) & (analysis.predictions.state == state)]

        def outcomes(probe: str) -> Outcomes:
            chosen = block[block.probe == probe].set_index("seed").loc[list(profile.seeds)]
            return Outcomes(np.stack(chosen["predictions"].to_list()), features.labels[task]["test"],
                            features.test_idx[task], tuple(profile.seeds), spec.main_metric)
        reference = outcomes(ALL)
        # "greedy natural" is the same probe as "greedy 1" or "greedy 5" when the task's natural size is 1 or 5
        # (rt-valence, bbc-news): one verdict, not two
        same = {f"greedy {natural_dimensions(spec)}"} & set(block.probe)
        for probe in (p for p in dict.fromkeys(block.probe) if p != ALL and not (p == "greedy natural" and same)):
            claim = ("n principal components match all dimensions" if "components" in probe else
                     "a few salient neurons match all dimensions")
            rows.append(verdict_row("06", claim, task, probe, ALL, compare(outcomes(probe), reference, "equivalent",
                                                                           margin)))
    return pd.DataFrame(rows)


def verdict(table: pd.DataFrame, analysis: Analysis) -> str:
    """The verdict lines with their intervals and tally, and per task the variance-ratio index per seed
    against the number of classes (a description, not a test)."""
    lines = [verdict_lines(table), f"{tally(table)}."]
    for task, ratios in ratio_table(analysis.ratios).groupby("task", sort=False):
        natural, index = int(ratios["classes"].iloc[0]), ratios["index"]
        lines.append(f"- {task}: variance-ratio index per seed {index.tolist()} vs {natural} "
                     f"{'(regression, taken as 1)' if get_task(task).is_regression else 'classes'}: exact in "
                     f"{(index == natural).sum()}/{len(index)} seeds, within 1 in "
                     f"{((index - natural).abs() <= 1).sum()}/{len(index)}")
    return "\n".join(lines)
