#!/usr/bin/env python
"""The cost curve: time of one fine-tuning against training-set size and sequence length, with the
fitted slopes, the achieved model FLOP/s utilisation (MFU) of the training loop, and an estimate of
the paper profile's cost from it.

- size: rt-polarity at 48 tokens, 100 to 800 training examples, one epoch each: seconds = a + b * n;
- length: bbc-news (every article fills the window) at 16 to 128 tokens, 200 examples, one epoch:
  seconds ~ L ** alpha (log-log fit);
- MFU: 6 x non-embedding parameters x training tokens per second over the machine's bf16 matrix-product
  throughput, measured in the same run with every core (``roofline.gemm_gflops`` at 4096^3, as in
  ``roofline.py``; no nominal peak is assumed).

Training time only (``history[*].train_seconds``), one process, all cores. Writes
``benchmarks/results/cost_curve.csv`` and ``cost_curve.png``.

    python benchmarks/cost_curve.py
"""
from __future__ import annotations

import argparse
import dataclasses
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from fewdims_helpers.setup import profiles
from fewdims_helpers.config import DataConfig
from fewdims_helpers.model.pretrained import pretrained_encoder
from fewdims_helpers.options import DataSources, RunOptions
from fewdims_helpers.runs.runner import Runner
from fewdims_helpers.runs.store import RunStore
from roofline import cpu_facts, gemm_gflops  # a sibling script (benchmarks/ is on the path when run as a script)

RESULTS = Path(__file__).resolve().parent / "results"


def one_epoch(setup, task: str, n: int, length: int) -> dict:
    config = setup.run_config(task, 0)
    config = dataclasses.replace(config, data=DataConfig(task, max_seq_length=length, max_train_examples=n,
                                                         max_eval_examples=100),
                                 train=dataclasses.replace(config.train, epochs=1))
    with tempfile.TemporaryDirectory() as runs:
        runner = Runner(RunStore(runs), RunOptions(progress=False))
        tokens = runner.tokens(config)
        metrics = runner.execute(config, progress=False)
    seconds = metrics["history"][0]["train_seconds"]
    return {"task": task, "train_examples": len(tokens["train"]), "max_seq_length": length,
            "train_tokens": int(tokens["train"].lengths.sum()), "train_seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.parse_args()
    setup = profiles.get_profile("default").resolve(DataSources())
    rows = [dict(one_epoch(setup, "rt-polarity", n, 48), sweep="size") for n in (100, 200, 400, 800)]
    rows += [dict(one_epoch(setup, "bbc-news", 200, length), sweep="length") for length in (16, 32, 64, 128)]
    frame = pd.DataFrame(rows)
    size = frame[frame.sweep == "size"]
    slope, intercept = np.polyfit(size.train_examples, size.train_seconds, 1)
    length = frame[frame.sweep == "length"]
    alpha = np.polyfit(np.log(length.max_seq_length), np.log(length.train_seconds), 1)[0]
    print(f"size: {slope * 1000:.1f} ms per training example (+{intercept:.1f} s fixed) at 48 tokens")
    print(f"length: time ~ L^{alpha:.2f} from 16 to 128 tokens (200 examples)")

    encoder = pretrained_encoder(setup.model)
    non_embedding = sum(p.numel() for n, p in encoder.named_parameters() if not n.startswith("embeddings"))
    tokens_per_second = frame.train_tokens.sum() / frame.train_seconds.sum()
    import torch

    threads = torch.get_num_threads()
    peak = gemm_gflops(4096, 4096, 4096, torch.bfloat16, threads) * 1e9
    achieved = 6 * non_embedding * tokens_per_second
    facts = cpu_facts()
    print(f"MFU: 6 x {non_embedding / 1e6:.1f}M non-embedding parameters x {tokens_per_second:,.0f} tokens/s = "
          f"{achieved / 1e9:.0f} GFLOP/s of the {peak / 1e9:.0f} GFLOP/s measured for bf16 4096^3 products with "
          f"{threads} threads ({facts['cpu']}, bf16 path {facts['bf16_path']}): {100 * achieved / peak:.1f}%")
    RESULTS.mkdir(exist_ok=True)
    frame.assign(ms_per_example_slope=slope * 1000, length_exponent=alpha, mfu=achieved / peak,
                 measured_bf16_gemm_gflops=peak / 1e9, cpu=facts["cpu"], bf16_path=facts["bf16_path"]).to_csv(
        RESULTS / "cost_curve.csv", index=False)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    axes[0].plot(size.train_examples, size.train_seconds, "o-")
    axes[0].set(xlabel="training examples (rt-polarity, 48 tokens)", ylabel="seconds per epoch")
    axes[1].loglog(length.max_seq_length, length.train_seconds, "o-")
    axes[1].set(xlabel="tokens per example (bbc-news, 200 examples)", ylabel="seconds per epoch")
    fig.tight_layout()
    fig.savefig(RESULTS / "cost_curve.png", dpi=120)
    print(f"wrote {RESULTS / 'cost_curve.csv'} and cost_curve.png")


if __name__ == "__main__":
    main()
