#!/usr/bin/env python
"""A family's recipe before and after a longer step cap, on the reported seeds: the plateau rule
(``sizing.convergence``) and the mean validation and test scores of each.

The families the reference's reported runs left climbing (``benchmarks/convergence.py``) are trained again
with a longer cap, every reported seed, into a scratch store; a run the reference already holds (the current
cap) is read from it. ``benchmarks/results/convergence_candidates.{csv,md}`` holds what was measured.

    python benchmarks/convergence_candidates.py --store /tmp/candidates            # trains what is missing
    python benchmarks/convergence_candidates.py --store /tmp/candidates --only-stored  # tabulates what is there
    python benchmarks/convergence_candidates.py --families frozen                   # one family
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from fewdims_helpers.studies import sizing  # noqa: E402
from fewdims_helpers.options import RunOptions  # noqa: E402
from fewdims_helpers.setup.profiles import BASELINE_FEATURES, get_profile  # noqa: E402
from fewdims_helpers.report.tables import setup_logging, write_table  # noqa: E402
from fewdims_helpers.runs.runner import Runner  # noqa: E402
from fewdims_helpers.runs.store import RunStore  # noqa: E402

TASK = "rt-valence"  # the task whose families the reference left climbing


def candidates(profile) -> dict[str, list[tuple[str, int, dict, object]]]:
    """family key -> (family, epochs, ModelConfig fields, recipe) of each cap compared: the current one first."""
    frozen, lower = profile.frozen_head_train, profile.layer_recipe()
    return {"frozen": [("04 (b): frozen encoder, linear head", epochs, {"freeze_pretrained": True}, frozen)
                       for epochs in (20, 60)],
            "layers": [(f"03: head on layer {layer}", epochs, {"layer": layer}, lower)
                       for layer in (1, 3) for epochs in (10, 20)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", default=str(REPO / "results" / "runs"), help="where the candidates' runs are trained")
    parser.add_argument("--reference", default=str(REPO / "reference" / "runs"), help="runs read, not trained")
    parser.add_argument("--families", nargs="+", default=["frozen", "layers"], choices=["frozen", "layers"])
    parser.add_argument("--only-stored", action="store_true", help="tabulate the candidates whose runs are all stored")
    parser.add_argument("--workers", default="1")
    parser.add_argument("--output", default=str(REPO / "benchmarks" / "results" / "convergence_candidates"))
    args = parser.parse_args()
    setup_logging()
    options = RunOptions(workers=int(args.workers) if args.workers.isdigit() else args.workers)
    profile = get_profile("default").resolve(options.sources)
    scratch, reference = Runner(RunStore(args.store), options), RunStore(args.reference)
    rows = []
    for key in args.families:
        for family, epochs, fields, recipe in candidates(profile)[key]:
            configs = [profile.run_config(TASK, seed, recipe=dataclasses.replace(recipe, epochs=epochs), **fields)
                       for seed in profile.seeds]
            if "layer" in fields:  # as 03 runs them (its pair scans read the features): the same run ids
                configs = [dataclasses.replace(c, save_features=BASELINE_FEATURES) for c in configs]
            store = next((s for s in (reference, scratch.store) if all(s.is_complete(c) or s.is_summary(c) and
                                                                  (s.folder(c) / "metrics.json").exists()
                                                                  for c in configs)), None)
            if store is None:
                if args.only_stored:
                    continue
                scratch.execute_all(configs)
                store = scratch.store
            found = sizing.convergence(store, [c.run_id for c in configs], profile.seeds)
            metrics = [store.metrics(c) for c in configs]
            score = {split: float(np.mean([100 * m[split][m["main_metric"]] for m in metrics]))
                     for split in ("validation", "test")}
            rows.append({"family": family, "task": TASK, "epochs": epochs,
                         "store": "reference" if store is reference else "scratch",
                         **found.drop(columns=["task", "family", "notebooks"]).iloc[0].to_dict(),
                         "validation_mean": score["validation"], "test_mean": score["test"],
                         "best_steps": " ".join(str(m["best_step"]) for m in metrics)})
    table = pd.DataFrame(rows)
    write_table(table, Path(args.output), note=f"{TASK}, reported seeds {list(profile.seeds)}: the plateau rule "
                f"(median last-third gain at most {sizing.PLATEAU_GAIN:g} point) at the reference's cap (store: reference, the "
                "runs it records) and a longer one (store: scratch, trained by this script); validation and test means "
                "x 100 over the seeds.")
    with pd.option_context("display.width", 250):
        print(table.to_string(index=False))


if __name__ == "__main__":
    main()
