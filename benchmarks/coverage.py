#!/usr/bin/env python
"""Coverage of the verdicts' intervals (fewdims_helpers/stats/verdicts.py), measured by simulation.

Simulated studies of this package's size (5 seeds x 2,113 test items, a planted difference of 4
points of accuracy) with seed effects of 0 to 4 points per side, then the failing-seed regime (each
seed of side A loses 8 points with probability 0.2); prints and writes
``benchmarks/results/coverage.csv``: how often the 90% interval (the one the equivalence tests read)
and the 95% interval cover the population difference, the 90% interval's mean width, and how often a
side had an outlier seed.

    python benchmarks/coverage.py              # 1,000 replicates per regime (about two minutes)
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fewdims_helpers.stats.verdicts import coverage  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
FAILING_SHARE = 0.2  # a failing seed: one in five on average


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--replicates", type=int, default=1000)
    args = parser.parse_args()
    rows = []
    regimes = [(sd, 0.0) for sd in (0.002, 0.01, 0.02, 0.03, 0.04)] + [(sd, 0.08) for sd in (0.002, 0.01, 0.02, 0.04)]
    for seed_sd, failing in regimes:
        measured = coverage(args.replicates, 2113, 5, seed_sd, failing=failing, failing_share=FAILING_SHARE)
        rows.append({"seed_sd_points": 100 * seed_sd, "failing_seed_loss_points": 100 * failing,
                     "failing_share": FAILING_SHARE if failing else 0.0, "seeds": 5, "examples": 2113,
                     "replicates": args.replicates, **{k: round(v, 4) for k, v in measured.items()}})
        print(rows[-1])
    pd.DataFrame(rows).to_csv(RESULTS / "coverage.csv", index=False)
    print(f"wrote {RESULTS / 'coverage.csv'}")


if __name__ == "__main__":
    main()
