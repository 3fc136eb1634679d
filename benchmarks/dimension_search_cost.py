#!/usr/bin/env python
"""Cost of searching dimension subsets: the paper's way against the cached-feature scan, in one run.

- paper's way: one full fine-tuning per sampled subset (``ModelConfig.selected_dims``); timed on one
  subset of the default profile, the time for all pairs extrapolated from it;
- this package's way: the exhaustive pair scan of one cached head (``subsets.scan_all_pairs``),
  timed for hidden size 384 (MiniLM) and 768 (bert-base) on synthetic features of the right shape
  (300 validation examples, 2 and 5 labels).

Prints seconds per subset scored and the total time to score all pairs, as ratios; writes
``benchmarks/results/dimension_search_cost.csv``.

    python benchmarks/dimension_search_cost.py             # measure, write the CSV and the plot
    python benchmarks/dimension_search_cost.py --plot-only # redraw the plot from the CSV
"""
from __future__ import annotations

import math
import tempfile
import time
import sys
from pathlib import Path

import numpy as np
import pandas as pd

import plots
from fewdims_helpers.setup import profiles
from fewdims_helpers.options import DataSources, RunOptions
from fewdims_helpers.runs.runner import Runner
from fewdims_helpers.runs.store import RunStore
from fewdims_helpers.stats.subsets import CachedHead, scan_all_pairs
from fewdims_helpers.data.tasks import get_task

RESULTS = Path(__file__).resolve().parent / "results"
SPECS = {2: get_task("rt-polarity"), 5: get_task("bbc-news")}  # by number of labels; both scored on accuracy


def synthetic_head(hidden: int, num_labels: int, n: int = 300, seed: int = 0) -> CachedHead:
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n, hidden)).astype(np.float32)
    return CachedHead(rng.normal(size=(num_labels, hidden)).astype(np.float32), np.zeros(num_labels, np.float32),
                      {"validation": features}, {"validation": rng.integers(0, num_labels, n)}, SPECS[num_labels])


def main() -> None:
    setup = profiles.get_profile("default").resolve(DataSources())
    config = setup.run_config("rt-polarity", 0, selected_dims=(11, 222))
    with tempfile.TemporaryDirectory() as runs:
        start = time.perf_counter()
        metrics = Runner(RunStore(runs), RunOptions(progress=False)).execute(config, progress=False)
        per_subset_finetune = time.perf_counter() - start
    rows = [{"method": "fine-tune per subset (paper)", "hidden": 384, "labels": 2,
             "seconds_per_subset": per_subset_finetune,
             "seconds_all_pairs": per_subset_finetune * math.comb(384, 2), "measured_subsets": 1}]
    print(f"one fine-tuning on a fixed pair (default profile, rt-polarity): {per_subset_finetune:.1f} s, "
          f"test accuracy {metrics['test']['accuracy']:.3f}")
    for hidden in (384, 768):
        for labels in (2, 5):
            head = synthetic_head(hidden, labels)
            start = time.perf_counter()
            scan_all_pairs(head, "validation")
            seconds = time.perf_counter() - start
            pairs = math.comb(hidden, 2)
            rows.append({"method": "exhaustive scan on cached features", "hidden": hidden, "labels": labels,
                         "seconds_per_subset": seconds / pairs, "seconds_all_pairs": seconds, "measured_subsets": pairs})
            print(f"exhaustive scan, hidden {hidden}, {labels} labels: {pairs:,} pairs in {seconds:.2f} s")
    frame = pd.DataFrame(rows)
    paper = frame.seconds_per_subset.iloc[0]
    frame["speedup_per_subset"] = paper / frame.seconds_per_subset
    scan = frame[(frame.hidden == 384) & (frame.method != frame.method.iloc[0])]
    print(f"per subset scored, the scan is {scan.speedup_per_subset.min():,.0f}x to {scan.speedup_per_subset.max():,.0f}x "
          f"cheaper than fine-tuning on it; all 73,536 pairs the paper's way would take about "
          f"{frame.seconds_all_pairs.iloc[0] / 86400:.1f} days on this machine")
    RESULTS.mkdir(exist_ok=True)
    frame.to_csv(RESULTS / "dimension_search_cost.csv", index=False)
    print(f"wrote {RESULTS / 'dimension_search_cost.csv'}")
    plots.dimension_search_cost(frame)


if __name__ == "__main__":
    if sys.argv[1:] == ["--plot-only"]:
        plots.dimension_search_cost(pd.read_csv(RESULTS / "dimension_search_cost.csv"))
    else:
        main()
