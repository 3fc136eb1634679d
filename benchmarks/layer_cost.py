#!/usr/bin/env python
"""Layer-wise cost: time of one fine-tuning with the head on layer k, against k.

``ModelConfig.layer = k`` removes the layers above k, so they are never computed; the time of a run
should grow about linearly in k (plus the embeddings, head and data costs). The default
profile's recipe on 800 rt-polarity examples per layer (enough that fixed costs do not hide the
trend), training time only, one process; the ratio to the full model is printed per layer. The
layers are timed in ``--repeats`` interleaved rounds and each keeps its fastest round: on a shared
VM a burst of outside load lands on one measurement, not on one layer. Writes
``benchmarks/results/layer_cost.csv``.

    python benchmarks/layer_cost.py [--repeats 3]  # measure, write the CSV and the plot
    python benchmarks/layer_cost.py --plot-only    # redraw the plot from the CSV
"""
from __future__ import annotations

import argparse
import dataclasses
import tempfile
from pathlib import Path

import pandas as pd

import plots
from fewdims_helpers.setup import profiles
from fewdims_helpers.options import DataSources, RunOptions
from fewdims_helpers.runs.runner import Runner
from fewdims_helpers.runs.store import RunStore

RESULTS = Path(__file__).resolve().parent / "results"


def main(repeats: int) -> None:
    setup = profiles.get_profile("default").resolve(DataSources())
    rows = []
    for round_ in range(repeats):
        for layer in range(1, setup.num_layers + 1):
            config = setup.run_config("rt-polarity", 0, layer=layer)
            config = dataclasses.replace(config, data=dataclasses.replace(config.data, max_train_examples=800))
            with tempfile.TemporaryDirectory() as runs:
                metrics = Runner(RunStore(runs), RunOptions(progress=False)).execute(config, progress=False)
            rows.append({"layer": layer, "round": round_,
                         "train_seconds": sum(epoch["train_seconds"] for epoch in metrics["history"]),
                         "test_accuracy": metrics["test"]["accuracy"]})
    timed = pd.DataFrame(rows)
    frame = timed.groupby("layer", as_index=False).agg(
        train_seconds=("train_seconds", "min"), slowest_seconds=("train_seconds", "max"),
        test_accuracy=("test_accuracy", "first"))
    frame["repeats"] = repeats
    frame["share_of_full"] = frame.train_seconds / frame.train_seconds.iloc[-1]
    for row in frame.itertuples():
        print(f"layer {row.layer}: {row.train_seconds:.1f} s (fastest of {repeats}; slowest {row.slowest_seconds:.1f}), "
              f"{row.share_of_full:.2f} of the full model (layer share {row.layer / len(frame):.2f}), "
              f"test accuracy {row.test_accuracy:.3f}")
    RESULTS.mkdir(exist_ok=True)
    frame.to_csv(RESULTS / "layer_cost.csv", index=False)
    print(f"wrote {RESULTS / 'layer_cost.csv'}")
    plots.layer_cost(frame)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds; each layer keeps its fastest")
    parser.add_argument("--plot-only", action="store_true", help="redraw the plot from the CSV")
    args = parser.parse_args()
    if args.plot_only:
        plots.layer_cost(pd.read_csv(RESULTS / "layer_cost.csv"))
    else:
        main(args.repeats)
