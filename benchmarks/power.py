#!/usr/bin/env python
"""Power with fewer seeds, from the stored predictions' variance components (verdicts.projected).

Reads ``figures/verdicts.csv`` (every verdict with its seed and example standard errors), decides each
row again as if it had 2, 3 or 4 seeds (the estimate kept, the seed term of the variance scaled), and
prints per notebook how many verdicts keep theirs; writes ``benchmarks/results/power.csv``. This is
the stated power argument a budget cut of seeds rests on (issue: "cut by a stated power argument from
the stored predictions, not by guess").

    python benchmarks/power.py [--figures figures]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fewdims_helpers.stats.verdicts import projected  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--figures", default=str(REPO / "figures"))
    args = parser.parse_args()
    table = pd.read_csv(Path(args.figures) / "verdicts.csv", dtype={"study": str})
    try:
        frames = [projected(table, seeds) for seeds in (2, 3, 4)]
    except ValueError as error:
        sys.exit(f"power: {error}")
    long = pd.concat(frames, ignore_index=True)
    summary = long.groupby(["study", "projected_seeds"])["same_verdict"].agg(["sum", "size"]).reset_index()
    summary.columns = ["study", "seeds", "same_verdict", "verdicts"]
    print(summary.to_string(index=False))
    long.to_csv(RESULTS / "power.csv", index=False)
    print(f"wrote {RESULTS / 'power.csv'}")


if __name__ == "__main__":
    main()
