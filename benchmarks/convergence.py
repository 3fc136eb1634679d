#!/usr/bin/env python
"""The plateau rule on the reported runs of a reference (fewdims_helpers/report/convergence.py, re-exported by
fewdims_helpers/studies/sizing).

Reads every run the reference records (``reference/reference.json``: each notebook's runs; each run's
``metrics.json`` holds its validation history), keeps those of the profile's reported seeds, groups them into
families (runs that differ only in their seed) and prints, per family, the median over its seeds of what the
last third of training added to the best validation score. Writes
``benchmarks/results/convergence_reference.{csv,md}`` and the same table into ``figures/sizing.md`` between
its markers. Trains nothing; seconds.

    python benchmarks/convergence.py                          # the committed reference, default profile
    python benchmarks/convergence.py --reference /tmp/ref --output /tmp/convergence   # another reference
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import pandas as pd  # noqa: E402

from fewdims_helpers.studies import sizing  # noqa: E402
from fewdims_helpers.setup.profiles import get_profile  # noqa: E402
from fewdims_helpers.report.tables import write_table  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reference", default=str(REPO / "reference"), help="the reference folder (reference.json, runs/)")
    parser.add_argument("--profile", default="default", help="whose reported seeds count")
    parser.add_argument("--output", default=str(REPO / "benchmarks" / "results" / "convergence_reference"),
                        help="stem of the CSV and Markdown tables")
    parser.add_argument("--sizing", default=str(REPO / "figures" / "sizing.md"),
                        help="the page that lists the table between its markers ('' to leave it)")
    args = parser.parse_args()
    table = sizing.reference_convergence(Path(args.reference), get_profile(args.profile).seeds)
    line = sizing.convergence_line(table)
    reference = Path(args.reference).resolve()
    shown = reference.relative_to(REPO) if reference.is_relative_to(REPO) else reference
    write_table(table, Path(args.output), note=f"The reported runs of `{shown}`: {line}.")
    if args.sizing:
        sizing.put_convergence(Path(args.sizing), table)
    with pd.option_context("display.width", 250, "display.max_colwidth", 90, "display.max_rows", 200):
        print(table.to_string(index=False, float_format=lambda v: f"{v:+.2f}"))
    print(line)


if __name__ == "__main__":
    main()
