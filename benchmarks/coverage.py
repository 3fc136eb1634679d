#!/usr/bin/env python
"""Coverage of the verdicts' intervals (fewdims_helpers/verdicts.py), measured by simulation.

Simulated studies of this package's size (5 seeds x 2,113 test items, a planted difference of 4
points of accuracy) with seed effects of 0 to 4 points per side; prints and writes
``benchmarks/results/coverage.csv``: how often the 90% interval (the one the equivalence tests read)
and the 95% interval cover the planted difference, and the 90% interval's mean width.

    python benchmarks/coverage.py              # 400 replicates per regime (about a minute)
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fewdims_helpers.verdicts import coverage  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--replicates", type=int, default=400)
    args = parser.parse_args()
    rows = []
    for seed_sd in (0.002, 0.01, 0.02, 0.03, 0.04):
        measured = coverage(args.replicates, 2113, 5, seed_sd)
        rows.append({"seed_sd_points": 100 * seed_sd, "seeds": 5, "examples": 2113, "replicates": args.replicates,
                     **{k: round(v, 4) for k, v in measured.items()}})
        print(rows[-1])
    pd.DataFrame(rows).to_csv(RESULTS / "coverage.csv", index=False)
    print(f"wrote {RESULTS / 'coverage.csv'}")


if __name__ == "__main__":
    main()
