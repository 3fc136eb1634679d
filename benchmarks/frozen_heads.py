#!/usr/bin/env python
"""Frozen-encoder heads: training on cached features against training the frozen model directly.

Same config (default profile, every pretrained parameter frozen, the paper's 2-layer head), 5 epochs,
same seed: ``training.train`` with the frozen encoder running every step, and with its features
computed once (``freezing.encode``) and reused. Prints both times (the cached side includes the
encoding pass), the ratio, and both test metrics; writes ``benchmarks/results/frozen_heads.csv``.

    python benchmarks/frozen_heads.py             # measure, write the CSV and the plot
    python benchmarks/frozen_heads.py --plot-only # redraw the plot from the CSV
"""
from __future__ import annotations

import dataclasses
import os
import tempfile
import time
import sys
from pathlib import Path

import pandas as pd
import torch

import plots
from fewdims_helpers import profiles
from fewdims_helpers.data import tokenized_task
from fewdims_helpers.freezing import encode
from fewdims_helpers.metrics import compute_metrics, predictions_from_logits
from fewdims_helpers.tasks import get_task
from fewdims_helpers.training import predict, train

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    setup = profiles.get_profile("default")
    base = setup.run_config("rt-polarity", 0, freeze_pretrained=True, head_layers=2)
    config = dataclasses.replace(base, train=dataclasses.replace(base.train, epochs=5))
    tokens = tokenized_task(config.data, config.model.model)
    spec = get_task(config.data.task)
    rows = []
    for name in ("frozen model, encoder runs every step", "cached features, encoder runs once"):
        with tempfile.TemporaryDirectory() as cache:
            os.environ["FEWDIMS_CACHE"] = cache  # the cached side pays for its encoding pass
            start = time.perf_counter()
            cached = encode(config, tokens, "cpu") if name.startswith("cached") else None
            result = train(config, tokens, device="cpu", progress=False, cached_features=cached)
            seconds = time.perf_counter() - start
            logits, _ = predict(result.model, tokens["test"], torch.device("cpu"), result.precision,
                                cached=None if cached is None else cached["test"])
        test = compute_metrics(spec.metric, predictions_from_logits(logits, spec.num_labels), tokens["test"].labels)
        rows.append({"method": name, "seconds": seconds, "test_score": test[spec.main_metric], "epochs": 5})
        print(f"{name}: {seconds:.1f} s, test {spec.main_metric} {test[spec.main_metric]:.4f}", flush=True)
    frame = pd.DataFrame(rows)
    print(f"cached features are {frame.seconds[0] / frame.seconds[1]:.1f}x faster "
          f"(test {frame.test_score[0]:.4f} vs {frame.test_score[1]:.4f})")
    RESULTS.mkdir(exist_ok=True)
    frame.to_csv(RESULTS / "frozen_heads.csv", index=False)
    print(f"wrote {RESULTS / 'frozen_heads.csv'}")
    plots.frozen_heads(frame)


if __name__ == "__main__":
    if sys.argv[1:] == ["--plot-only"]:
        plots.frozen_heads(pd.read_csv(RESULTS / "frozen_heads.csv"))
    else:
        main()
