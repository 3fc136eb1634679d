#!/usr/bin/env python
"""Frozen-encoder heads: training on cached features against training the frozen model directly.

Same config (default profile, every pretrained parameter frozen, the paper's 2-layer head), 5 epochs,
same seed: ``training.loop.train`` with the frozen encoder running every step, and with its features
computed once (``features.frozen_features``) and reused: for one run (the cached side pays for its encoding
pass), and for notebook 04's six frozen runs of one task (linear and 2-layer heads, 3 seeds), which
share one encoding. Prints both times, the ratios, and the test metrics; writes
``benchmarks/results/frozen_heads.{csv,png}``.

    python benchmarks/frozen_heads.py             # measure, write the CSV and the plot
    python benchmarks/frozen_heads.py --plot-only # redraw the plot from the CSV
"""
from __future__ import annotations

import dataclasses
import tempfile
import time
import sys
from pathlib import Path

import pandas as pd
import torch

import plots
from fewdims_helpers.setup import profiles
from fewdims_helpers.data.tokenized import tokenized_task
from fewdims_helpers.training.features import frozen_features
from fewdims_helpers.stats.metrics import compute_metrics, predictions_from_logits
from fewdims_helpers.execution import resolve
from fewdims_helpers.options import DataSources, RunOptions
from fewdims_helpers.data.tasks import get_task
from fewdims_helpers.training.loop import predict, train

RESULTS = Path(__file__).resolve().parent / "results"


def time_side(config, tokens, spec, cached_side: bool, encoded: dict | None, options: RunOptions
              ) -> tuple[float, float, dict | None]:
    """(seconds, test score, features) of one frozen-encoder run; the cached side encodes (into the feature
    cache of ``options``) unless given features."""
    start = time.perf_counter()
    cached = (encoded if encoded is not None else frozen_features(config, tokens, resolve("cpu"), options.sources.cache)) if cached_side else None
    result = train(config, tokens, device="cpu", progress=False, cached_features=cached)
    seconds = time.perf_counter() - start
    logits, _ = predict(result.model, tokens["test"], torch.device("cpu"), result.precision,
                        cached=None if cached is None else cached["test"])
    test = compute_metrics(spec.metric, predictions_from_logits(logits, spec.num_labels), tokens["test"].labels)
    return seconds, test[spec.main_metric], cached


def main() -> None:
    sources = DataSources()
    setup = profiles.get_profile("default").resolve(sources)
    base = setup.run_config("rt-polarity", 0, freeze_pretrained=True, head_layers=2)
    config = dataclasses.replace(base, train=dataclasses.replace(base.train, epochs=5))
    tokens = tokenized_task(config.data, config.model.model, sources)
    spec = get_task(config.data.task)
    rows = []
    # 1. one run, the cached side paying for its own encoding pass
    for name in ("frozen model, encoder runs every step", "cached features, encoder runs once"):
        with tempfile.TemporaryDirectory() as cache:  # an empty feature cache: the cached side encodes
            options = RunOptions(sources=DataSources(cache_dir=cache), device="cpu", progress=False)
            seconds, score, _ = time_side(config, tokens, spec, name.startswith("cached"), None, options)
        rows.append({"comparison": "one run", "method": name, "seconds": seconds, "test_score": score, "epochs": 5,
                     "runs": 1})
        print(f"one run, {name}: {seconds:.1f} s, test {spec.main_metric} {score:.4f}", flush=True)
    # 2. notebook 04's frozen runs of one task: 2 heads x 3 seeds sharing one encoding (as the study does)
    variants = [dataclasses.replace(config, model=dataclasses.replace(config.model, head_layers=h),
                                    train=dataclasses.replace(config.train, seed=s)) for h in (1, 2) for s in (0, 1, 2)]
    for name in ("frozen model, encoder runs every step", "cached features, encoder runs once"):
        with tempfile.TemporaryDirectory() as cache:
            options = RunOptions(sources=DataSources(cache_dir=cache), device="cpu", progress=False)
            total, scores, encoded = 0.0, [], None
            for variant in variants:
                seconds, score, encoded = time_side(variant, tokens, spec, name.startswith("cached"), encoded, options)
                total += seconds
                scores.append(score)
        rows.append({"comparison": "6 runs of one task (2 heads x 3 seeds)", "method": name, "seconds": total,
                     "test_score": float(sum(scores) / len(scores)), "epochs": 5, "runs": len(variants)})
        print(f"6 runs, {name}: {total:.1f} s, mean test {spec.main_metric} {rows[-1]['test_score']:.4f}", flush=True)
    frame = pd.DataFrame(rows)
    for comparison, block in frame.groupby("comparison", sort=False):
        direct, cached = block.seconds.iloc[0], block.seconds.iloc[1]
        print(f"{comparison}: cached features are {direct / cached:.1f}x faster "
              f"(test {block.test_score.iloc[0]:.4f} vs {block.test_score.iloc[1]:.4f})")
    RESULTS.mkdir(exist_ok=True)
    frame.to_csv(RESULTS / "frozen_heads.csv", index=False)
    print(f"wrote {RESULTS / 'frozen_heads.csv'}")
    plots.frozen_heads(frame)


if __name__ == "__main__":
    if sys.argv[1:] == ["--plot-only"]:
        plots.frozen_heads(pd.read_csv(RESULTS / "frozen_heads.csv"))
    else:
        main()
