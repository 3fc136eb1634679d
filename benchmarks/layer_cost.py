#!/usr/bin/env python
"""Layer-wise cost: time of one fine-tuning with the head on layer k, against k.

``ModelConfig.layer = k`` removes the layers above k, so they are never computed; the time of a run
should grow about linearly in k (plus the embeddings, head and data costs). The default
profile's recipe on 800 rt-polarity examples per layer (enough that fixed costs do not hide the
trend), training time only, one process; the ratio to the full model is printed per layer. Writes ``benchmarks/results/layer_cost.csv``.

    python benchmarks/layer_cost.py             # measure, write the CSV and the plot
    python benchmarks/layer_cost.py --plot-only # redraw the plot from the CSV
"""
from __future__ import annotations

import dataclasses
import tempfile
import sys
from pathlib import Path

import pandas as pd

import plots
from fewdims_helpers import profiles
from fewdims_helpers.layer_wise import num_layers
from fewdims_helpers.store import execute

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    setup = profiles.get_profile("default")
    rows = []
    for layer in range(1, num_layers(setup) + 1):
        config = setup.run_config("rt-polarity", 0, layer=layer)
        config = dataclasses.replace(config, data=dataclasses.replace(config.data, max_train_examples=800))
        with tempfile.TemporaryDirectory() as runs:
            metrics = execute(config, Path(runs), progress=False)
        rows.append({"layer": layer, "train_seconds": sum(epoch["train_seconds"] for epoch in metrics["history"]),
                     "test_accuracy": metrics["test"]["accuracy"]})
    frame = pd.DataFrame(rows)
    frame["share_of_full"] = frame.train_seconds / frame.train_seconds.iloc[-1]
    for row in frame.itertuples():
        print(f"layer {row.layer}: {row.train_seconds:.1f} s, {row.share_of_full:.2f} of the full model "
              f"(layer share {row.layer / len(frame):.2f}), test accuracy {row.test_accuracy:.3f}")
    RESULTS.mkdir(exist_ok=True)
    frame.to_csv(RESULTS / "layer_cost.csv", index=False)
    print(f"wrote {RESULTS / 'layer_cost.csv'}")
    plots.layer_cost(frame)


if __name__ == "__main__":
    if sys.argv[1:] == ["--plot-only"]:
        plots.layer_cost(pd.read_csv(RESULTS / "layer_cost.csv"))
    else:
        main()
