#!/usr/bin/env python
"""What the whole study costs on this machine, from an empty run store: ``run_all.py --plan``'s table, kept.

Plans every notebook of a profile against a fresh, empty store (so nothing counts as already computed) with
the rates calibrated on this machine (``calibration.calibrate``, cached per machine under the cache folder;
delete its ``calibration/`` on a new or busy machine first), and writes
``benchmarks/results/plan_<profile>.{csv,md}``: per notebook the runs, the training examples, the
evaluation items and the planned minutes, with the machine they were planned on.

    python benchmarks/plan.py                    # the default profile
    python benchmarks/plan.py --profile smoke
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import pandas as pd  # noqa: E402

import run_all  # noqa: E402
from fewdims_helpers.runs.provenance import cpu_bf16_path, cpu_model  # noqa: E402
from fewdims_helpers.report.tables import to_markdown  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def plan_frame(plan) -> pd.DataFrame:
    """One row per notebook of a ``planning.Plan`` and a total row."""
    rows = [{"notebook": n.notebook, "runs": len(n.to_compute), "train_examples": n.train_examples,
             "eval_items": n.eval_items, "minutes": round(n.seconds / 60, 1) if n.seconds is not None else None}
            for n in plan.notebooks]
    total = {"notebook": "total", "runs": sum(r["runs"] for r in rows),
             "train_examples": sum(r["train_examples"] for r in rows), "eval_items": sum(r["eval_items"] for r in rows),
             "minutes": round(plan.seconds / 60, 1) if plan.seconds is not None else None}
    return pd.DataFrame(rows + [total]).assign(workers=plan.workers, threads=plan.threads, precision=plan.precision,
                                               cpu=cpu_model(), cpu_bf16=cpu_bf16_path())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="default")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as empty:
        options = run_all.parse_args(["--profile", args.profile, "--output-dir", empty])
        plan = run_all.make_plan(options, run_all.output_root(options), run_all.select_notebooks(None))
    print(plan.text())
    frame = plan_frame(plan)
    RESULTS.mkdir(exist_ok=True)
    frame.to_csv(RESULTS / f"plan_{args.profile}.csv", index=False)
    (RESULTS / f"plan_{args.profile}.md").write_text(
        to_markdown(frame) + f"\n\nPlanned from an empty store with `python benchmarks/plan.py --profile {args.profile}`"
        f"{'' if plan.calibrated else ' (not calibrated: no minutes)'}; runs and kernel starts only, analysis cells "
        "not counted; a run that stops early on its validation plateau takes less than planned.\n")


if __name__ == "__main__":
    main()
