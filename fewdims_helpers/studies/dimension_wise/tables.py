"""Study 02's tables and verdicts: the outcomes of every way against the all-dimensions baseline, the summary
table, the agreement of the ways and the effective dimensions (the package's docstring)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ...report.findings import BEST_VS_ALL, BEST_VS_RANDOM, RANDOM_VS_ALL, subset_readings
from ...runs.outcomes import cached_head, run_outcomes
from ...runs.runner import Runner
from ...stats.subsets import drop_one, refit_scores, score_subsets
from ...stats.verdicts import DEFAULT_MARGIN, HOLDS, Outcomes, compare, score_interval, tally, verdict_lines, verdict_row
from .runs import ALL, WAYS, Scan, best_on_validation, fixed_configs, scan_config


def baseline_outcomes(profile, runner: Runner, task: str) -> Outcomes:
    """All dimensions: the test predictions of the baseline runs (the profile's [CLS] runs), one row per seed."""
    return run_outcomes(runner.store, [profile.baseline(task, seed) for seed in profile.seeds])


def way_outcomes(profile, runner: Runner, fixed: pd.DataFrame, scans: dict[str, Scan]) -> dict[tuple[str, object, int], Outcomes]:
    """(task, way, k) -> the test predictions of the best k-subset, one row per reported seed: way 1 the
    reported runs of the validation-best random subset; ways 2 and 3 each seed's own validation-best subset."""
    result = {}
    reported = fixed[fixed.source == "reported"]
    for (task, k), block in reported.groupby(["data.task", "k"], sort=False):
        result[task, 1, k] = run_outcomes(runner.store, fixed_configs(profile, task, tuple(block["model.selected_dims"].iloc[0])))
    for name, found in scans.items():
        masked, refit = (2, 3) if name == "dropconnect" else ("standard", "standard-refit")
        for (task, k), outcomes in found.masked.items():
            result[task, masked, k] = outcomes
        for (task, k), outcomes in found.refit.items():
            result[task, refit, k] = outcomes
    return result


def verdicts(profile, runner: Runner, outcomes: dict, margin: float = DEFAULT_MARGIN, controls: dict | None = None,
             draws: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per task, way and k: is the best k-subset enough? Its test predictions against the all-dimensions
    baseline's, paired by seed and example, with the interval and the equivalence verdict. With ``controls``
    (``control_outcomes``), per way and k with a control also: does the best k-subset beat a random k-subset
    (one-sided, paired by seed), and is a random k-subset enough (equivalence against the same baseline)?
    ``draws`` (``control_draws``) gives the ``coinciding_draws`` column: seeds whose random draw is the best subset."""
    controls, rows = controls or {}, []
    coinciding = {} if draws is None or draws.empty else \
        draws.groupby(["task", "way_key", "k"])["coincides"].sum().astype(int).to_dict()
    for task in profile.tasks:
        reference = baseline_outcomes(profile, runner, task)
        for (other, way, k), side in outcomes.items():
            if other != task:
                continue
            name, best = WAYS[way], f"best {k}-subset, way {WAYS[way]}"
            rows.append(verdict_row("02", f"the best {k}-subset is enough (way {name})", task, best, ALL,
                                    compare(side, reference, "equivalent", margin), way=name, k=k,
                                    sides=BEST_VS_ALL))
            if (task, way, k) not in controls:
                continue
            control, drawn = controls[task, way, k], f"random {k}-subset, way {name}"
            extra = {"way": name, "k": k, "coinciding_draws": coinciding.get((task, way, k), 0)}
            rows.append(verdict_row("02", f"the best {k}-subset beats a random {k}-subset (way {name})", task, best,
                                    drawn, compare(side, control, "better", margin), sides=BEST_VS_RANDOM, **extra))
            rows.append(verdict_row("02", f"a random {k}-subset is enough (way {name})", task, drawn, ALL,
                                    compare(control, reference, "equivalent", margin), sides=RANDOM_VS_ALL,
                                    **extra))
    return pd.DataFrame(rows)


def summary_table(profile, runner: Runner, outcomes: dict, fixed: pd.DataFrame, scans: dict[str, Scan],
                  controls: dict | None = None, draws: pd.DataFrame | None = None) -> pd.DataFrame:
    """Best subset per task, k and way (``chosen``: "best on validation"), and its random control where it has one
    ("random, drawn per seed"): test metric x 100 with its 95% interval over seeds and examples, and the subset
    (way 1: the one retrained; ways 2 and 3, and every control: the first seed's)."""
    controls, rows = controls or {}, []
    for task in profile.tasks:
        score, low, high = score_interval(baseline_outcomes(profile, runner, task))
        rows.append({"task": task, "way": ALL, "k": profile.hidden_size, "chosen": "all", "subset": "all",
                     "test": score, "test_low": low, "test_high": high, "seeds": len(profile.seeds)})
        for (other, way, k), side in outcomes.items():
            if other != task:
                continue
            if way == 1:
                subset = fixed[(fixed.source == "reported") & (fixed["data.task"] == task) & (fixed.k == k)
                               ]["model.selected_dims"].iloc[0]
            else:
                found = scans["dropconnect" if way in (2, 3) else "standard"].rows
                subset = found[(found.task == task) & (found.k == k) & (found.seed == profile.seeds[0])]["subset"].iloc[0]
            score, low, high = score_interval(side)
            rows.append({"task": task, "way": WAYS[way], "k": k, "chosen": "best on validation", "subset": subset,
                         "test": score, "test_low": low, "test_high": high, "seeds": len(side.seeds)})
            if (task, way, k) in controls:
                drawn = draws[(draws.task == task) & (draws.way_key == way) & (draws.k == k)].sort_values("seed")
                score, low, high = score_interval(controls[task, way, k])
                rows.append({"task": task, "way": WAYS[way], "k": k, "chosen": "random, drawn per seed",
                             "subset": drawn.random_subset.iloc[0], "test": score, "test_low": low, "test_high": high,
                             "seeds": len(controls[task, way, k].seeds)})
    return pd.DataFrame(rows)


def agreement(fixed: pd.DataFrame, profile, runner: Runner) -> pd.DataFrame:
    """Descriptive: for every random subset fine-tuned in way 1's selection stage (selection seed), its
    score when selected at inference on the first seed's scanned head (way 2, validation) and when refit
    (way 3, test), beside its own fine-tuned test score."""
    chosen_runs = fixed[fixed.source == "random"]
    rows = []
    for task, block in chosen_runs.groupby("data.task", sort=False):
        head = cached_head(runner.store, scan_config(profile, task, profile.seeds[0]))
        subsets = list(block["model.selected_dims"])
        for k in sorted({len(s) for s in subsets}):
            chosen = [s for s in subsets if len(s) == k]
            inference = score_subsets(head, np.array(chosen), "validation")
            for subset, score in zip(chosen, inference):
                run = block[block["model.selected_dims"] == subset].iloc[0]
                rows.append({"task": task, "k": k, "subset": subset, "source": run["source"],
                             "inference_validation": float(score), "refit_test": refit_scores(head, subset)["test"],
                             "fine_tuned_test": run["test_score"]})
    return pd.DataFrame(rows)


def effective_dimensions(fixed: pd.DataFrame) -> pd.DataFrame:
    """Descriptive (one run each, selection seed): the best random 3-subset and the 2-subsets left by
    dropping each dimension, with their test scores."""
    rows = []
    for task, block in fixed[fixed.source.isin(["random", "drop-one"])].groupby("data.task", sort=False):
        if not (block.source == "drop-one").any():
            continue
        best = best_on_validation(block[(block.k == 3) & (block.source == "random")])
        subset = tuple(best["model.selected_dims"])
        rows.append({"task": task, "subset": subset, "dropped": None, "test_score": best["test_score"], "change": 0.0})
        for smaller in drop_one(subset):
            run = block[(block.source == "drop-one") & (block["model.selected_dims"] == smaller)].iloc[0]
            rows.append({"task": task, "subset": smaller, "dropped": (set(subset) - set(smaller)).pop(),
                         "test_score": run["test_score"], "change": run["test_score"] - best["test_score"]})
    return pd.DataFrame(rows)


def verdict(table: pd.DataFrame) -> str:
    """Every verdict, one line each, then per task and way the smallest k whose best subset is enough, and what the
    random controls say about it (``findings.subset_readings``: the same text as the generated findings)."""
    lines = [verdict_lines(table)]
    best = table[table.sides == BEST_VS_ALL] if "sides" in table else table
    for task, block in best.groupby("task", sort=False):
        parts = []
        for way, rows in block.groupby("way", sort=False):
            held = rows[rows.verdict == HOLDS].sort_values("k")
            parts.append(f"way {way}: " + (f"k = {held.k.iloc[0]} is enough" if len(held) else
                                           f"no k in {sorted(rows.k)} is shown enough"))
        lines.append(f"- {task}: " + "; ".join(parts))
    readings = subset_readings(table)
    if readings:
        lines += ["Against random subsets of the same size:", *readings]
    margin = table["margin"].iloc[0]
    lines.append(f"'Enough' holds when the 90% interval of the subset minus all dimensions (test, paired over seeds "
                 f"and examples) lies inside ±{margin:g} points; 'beats' when the one-sided 95% bound of best minus "
                 f"random excludes 0; {tally(table)}.")
    return "\n".join(lines)
