#!/usr/bin/env python
"""The sizing study (fewdims_helpers/studies/sizing/): every family's validation curve on the selection seed.

Trains each family of runs once per task on the profile's ``selection_seed`` with the profile's recipe
and no early stop (the whole curve to the step cap), into the local run store, then writes
``figures/sizing_curves.png``, ``figures/sizing.{csv,md}`` (the pre-check per family and task on the selection
seed, with the sanity orderings, and the plateau rule on the reference's reported runs, as
``benchmarks/convergence.py`` computes it) and ``figures/recipes.{csv,md}`` (the recipe table the README shows).

    python benchmarks/sizing.py                    # default profile, every core
    python benchmarks/sizing.py --profile smoke --output-dir /tmp/sizing   # the code path in seconds
    python benchmarks/sizing.py --recipes-only     # the recipe table (figures/recipes.*, the README) alone
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import pandas as pd  # noqa: E402

from fewdims_helpers.studies import sizing  # noqa: E402
from fewdims_helpers.options import RunOptions  # noqa: E402
from fewdims_helpers.paths import output_paths  # noqa: E402
from fewdims_helpers.setup.profiles import get_profile  # noqa: E402
from fewdims_helpers.report.tables import replace_section, setup_logging, to_markdown, write_table  # noqa: E402
from fewdims_helpers.runs.runner import Runner  # noqa: E402
from fewdims_helpers.runs.store import RunStore  # noqa: E402


def rate_selection(profile, runner: Runner):
    """07 on the selection seed: its trajectories and its rate sweep (the runs notebook 07 itself starts with,
    so none is wasted); returns (the design with the chosen rates, the sweep)."""
    from fewdims_helpers.studies import intrinsic

    design = intrinsic.design_for(profile, runner, 32, 32, 100, (8, 16), (0,))  # notebook 07's defaults
    intrinsic.trajectories(profile, design, runner)
    return intrinsic.select_rates(profile, design, runner, (0.01, 0.03, 0.1))


def freeze_runs(profile, design) -> dict:
    """07's Freeze on the selection seed at the rates its sweep chose, per task."""
    from fewdims_helpers.studies import intrinsic

    return {task: intrinsic.freeze_config(profile, task, profile.selection_seed, design.freeze_scales.get(task, 1.0))
            for task in profile.tasks}


def subspace_orderings(profile, sweep: pd.DataFrame, checked: pd.DataFrame) -> pd.DataFrame:
    """Full >= Intrinsic >= Random at their chosen rates, on validation (selection seed)."""
    best = sweep.groupby(["task", "subspace"])["validation_score"].max().unstack() * 100
    baseline = checked[checked.family.str.startswith("baseline")].set_index("task")
    rows = []
    for task in profile.tasks:
        full, intrinsic, random = baseline.loc[task, "best"], best.loc[task, "Intrinsic"], best.loc[task, "Random"]
        noise = float(baseline.loc[task, "allowed_gain"])  # one validation standard error of a score near Full's
        for ordering, a, b in (("07 Full >= Intrinsic (best rate)", full, intrinsic),
                               ("07 Intrinsic >= Random (best rates)", intrinsic, random)):
            rows.append({"task": task, "ordering": ordering, "a": a, "b": b, "holds": bool(a >= b),
                         "tolerance": noise, "within_noise": bool(a >= b - noise)})
    return pd.DataFrame(rows)


def write_recipes(profile, out: dict, repository: bool) -> None:
    """``figures/recipes.{csv,md}``; in the repository on the default profile, the README's table too."""
    recipes = sizing.recipe_table(profile)
    write_table(recipes, Path(out["figures"]) / "recipes", note=f"Recipes of the {profile.name} profile.")
    if repository and profile.name == "default":  # the repository's own figures: the README shows them
        replace_section(out["root"] / "README.md", to_markdown(recipes), sizing.RECIPES_START, sizing.RECIPES_END)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="default")
    parser.add_argument("--output-dir", default=None, help="where figures/ and results/runs/ are (default: the repo)")
    parser.add_argument("--workers", default="auto")
    parser.add_argument("--recipes-only", action="store_true", help="write the recipe table only; train nothing")
    args = parser.parse_args()
    setup_logging()
    options = RunOptions(workers=int(args.workers) if args.workers.isdigit() else args.workers)
    profile = get_profile(args.profile).resolve(options.sources)
    out = output_paths(args.output_dir)
    if args.recipes_only:
        write_recipes(profile, out, args.output_dir is None)
        return
    runner = Runner(RunStore(out["runs"]), options)
    store = runner.store
    design, sweep = rate_selection(profile, runner)
    runs = sizing.sizing_runs(profile, freeze=freeze_runs(profile, design))
    runner.execute_all(sizing.sources(profile))
    runner.execute_all(list(runs.config))
    checked = sizing.check(store, runs)
    refits = sizing.pair_refits(store, runs)
    orderings = sizing.sanity_orderings(checked, refits)
    subspaces = subspace_orderings(profile, sweep, checked)
    orderings = pd.concat([orderings, subspaces], ignore_index=True)
    figures = Path(out["figures"])
    sizing.plot(sizing.curves(store, runs), checked, figures / "sizing_curves.png")
    write_table(checked, figures / "sizing", note=f"Pre-check on seed {profile.selection_seed} ({profile.name} "
                f"profile), one curve per family and task: {sizing.summary_line(checked)}.")
    reference = out["root"] / "reference"
    if (reference / "reference.json").exists():  # the plateau rule, decided on the reported runs
        sizing.put_convergence(figures / "sizing.md", sizing.reference_convergence(reference, profile.seeds))
    write_table(orderings, figures / "sizing_orderings", note="Sanity orderings on validation, selection seed.")
    write_table(refits, figures / "sizing_pair_refits",
                note="03's heads on a low layer against a refit on one pair of their dimensions: the pair chosen on "
                     "train (the ordering's) and the best pair on validation (as 03 chooses; optimistic).")
    write_table(sweep, figures / "sizing_rate_sweep", note=f"07's rate sweep on seed {profile.selection_seed}: "
                "theta_t's rate (intrinsic, random) and Freeze's (the head's; its encoder-embedding rate scaled alike).")
    write_recipes(profile, out, args.output_dir is None)
    print(checked.to_string(index=False))
    print(orderings.to_string(index=False))
    print(sizing.summary_line(checked))


if __name__ == "__main__":
    main()
