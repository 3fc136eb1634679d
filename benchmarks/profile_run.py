#!/usr/bin/env python
"""Where the time of the default study goes: the run store's accounting, then one run under the torch profiler.

1. From ``results/runs`` (the default study's store) and ``results/timings-default.json``: the time
   spent inside training runs (fit and validation passes) against the notebooks' wall time.
2. One fine-tuning of the default profile (rt-polarity, [CLS]) under ``torch.profiler``: the top
   operators by self CPU time, and their grouping into matrix products, attention, normalisation,
   dropout, the optimizer step and the rest.

Writes ``benchmarks/results/profile_run.csv`` (operators) and prints both summaries.

    python benchmarks/profile_run.py
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pandas as pd
from torch.profiler import ProfilerActivity, profile

from fewdims_helpers.setup import profiles
from fewdims_helpers.options import DataSources, RunOptions
from fewdims_helpers.paths import REPO_ROOT
from fewdims_helpers.runs.runner import Runner
from fewdims_helpers.runs.store import RunStore

RESULTS = Path(__file__).resolve().parent / "results"
GROUPS = {"matrix products": ("addmm", "mm", "bmm", "linear", "matmul"),
          "attention": ("attention", "softmax", "baddbmm"),
          "normalisation": ("layer_norm", "native_layer_norm"),
          "dropout": ("dropout", "bernoulli", "fewdims_dropout", "mul"),
          "optimizer": ("adamw", "_fused_adamw", "fused_adam", "foreach"),
          "activations": ("gelu", "tanh")}


def group_of(name: str) -> str:
    lowered = name.lower()
    for group, keys in GROUPS.items():
        if any(key in lowered for key in keys):
            return group
    return "other"


def store_accounting() -> None:
    runs = REPO_ROOT / "results" / "runs"
    frame = RunStore(runs).collect()
    timings = json.loads((REPO_ROOT / "results" / "timings-default.json").read_text())
    print(f"run store: {len(frame)} runs, {frame.train_seconds.sum() / 60:.1f} min inside training runs "
          f"(fit and validation); notebook wall time recorded: "
          f"{sum(t['seconds'] for t in timings) / 60:.1f} min over {len(timings)} notebook executions "
          f"(first runs and reruns; runs in parallel workers overlap)")


def main() -> None:
    store_accounting()
    setup = profiles.get_profile("default").resolve(DataSources())
    config = setup.run_config("rt-polarity", 0)
    with tempfile.TemporaryDirectory() as runs, profile(activities=[ProfilerActivity.CPU]) as prof:
        Runner(RunStore(runs), RunOptions(progress=False)).execute(config, progress=False)
    rows = [{"operator": e.key, "self_cpu_seconds": e.self_cpu_time_total / 1e6, "calls": e.count}
            for e in prof.key_averages()]
    frame = pd.DataFrame(rows).sort_values("self_cpu_seconds", ascending=False)
    frame["share"] = frame.self_cpu_seconds / frame.self_cpu_seconds.sum()
    frame["group"] = frame.operator.map(group_of)
    print("top operators by self CPU time (one default-profile run):")
    print(frame.head(12).round(3).to_string(index=False))
    print("by group:")
    print(frame.groupby("group").share.sum().sort_values(ascending=False).round(3).to_string())
    RESULTS.mkdir(exist_ok=True)
    frame.to_csv(RESULTS / "profile_run.csv", index=False)
    print(f"wrote {RESULTS / 'profile_run.csv'}")


if __name__ == "__main__":
    main()
