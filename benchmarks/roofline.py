#!/usr/bin/env python
"""A measured roofline: this machine's matrix-product throughput, and how much of it a training step uses.

In one run, on one machine, nothing assumed:
1. GEMM throughput (GFLOP/s = 2 m k n / seconds) in float32 and bfloat16, at large square sizes
   (2048, 4096) and at MiniLM's own shapes for the default profile's batches (640 tokens = 16
   examples x 40: the attention projections 640x384 @ 384x384, the FFN 640x384 @ 384x1536 and
   640x1536 @ 1536x384), with 1 thread (one worker of the default study) and with every core.
2. The training step's achieved model FLOP/s: one default-profile fine-tuning of rt-polarity (the
   baseline run: 400 examples, 2 epochs), 6 x non-embedding parameters x real (unpadded) training
   tokens per second of training, with 1 thread and with every core; and, from the same run, its
   evaluation samples/s (the validation passes: no gradient, length-sorted batches) against its
   training samples/s.
3. Utilisation: achieved over the big-GEMM peak and over the model-shape GEMMs, same precision
   (the one the run used) and threads.

The CPU model and its bf16 path (AMX, AVX512-BF16 or none) are recorded with every row. Where the
CPU has no bf16 path, bf16 products are emulated and hundreds of times slower than fp32: they are
timed only at the model's shapes, once each (the big ones would take minutes per product), which is
enough to show why ``precision="auto"`` trains in fp32 there. Writes ``benchmarks/results/roofline.csv``
(rows of other machine kinds already in it are kept; this kind's are replaced) and ``roofline.png``
(this machine).

    python benchmarks/roofline.py [--seconds 0.5]
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import torch

from fewdims_helpers.setup import profiles
from fewdims_helpers.model.pretrained import pretrained_encoder
from fewdims_helpers.options import DataSources, RunOptions
from fewdims_helpers.runs.runner import Runner
from fewdims_helpers.runs.store import RunStore
from fewdims_helpers.execution import resolve

RESULTS = Path(__file__).resolve().parent / "results"
BIG = {"square 2048": (2048, 2048, 2048), "square 4096": (4096, 4096, 4096)}
MODEL = {"attention projection 640x384x384": (640, 384, 384), "FFN in 640x384x1536": (640, 384, 1536),
         "FFN out 640x1536x384": (640, 1536, 384)}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def cpu_facts() -> dict[str, str]:
    """The CPU model and which bf16 matrix path it has, from /proc/cpuinfo's flags."""
    model, flags = "unknown", set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
        elif line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
    path = "AMX" if "amx_bf16" in flags else "AVX512-BF16" if "avx512_bf16" in flags else "none"
    return {"cpu": model, "bf16_path": path, "cores": str(os.cpu_count())}


def gemm_gflops(m: int, k: int, n: int, dtype: torch.dtype, threads: int, seconds: float = 0.5, trials: int = 5
                ) -> float:
    """Median over ``trials`` of the GFLOP/s of (m, k) @ (k, n), each trial repeating the product for at
    least ``seconds`` after a warm-up."""
    torch.set_num_threads(threads)
    a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
    for _ in range(3):
        torch.mm(a, b)
    rates = []
    for _ in range(trials):
        count, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds or count < 2:
            torch.mm(a, b)
            count += 1
        rates.append(2 * m * k * n * count / elapsed / 1e9)
    return statistics.median(rates)


def training_step(threads: int) -> dict:
    """Achieved model FLOP/s of one default-profile baseline fine-tuning with ``threads`` threads."""
    torch.set_num_threads(threads)
    setup = profiles.get_profile("default").resolve(DataSources())
    config = setup.run_config("rt-polarity", 0)
    with tempfile.TemporaryDirectory() as runs:
        runner = Runner(RunStore(runs), RunOptions(progress=False, workers=1))
        tokens = runner.tokens(config)
        metrics = runner.execute(config, progress=False)
        precision = runner.store.record(config)["precision_used"]
    encoder = pretrained_encoder(setup.model)
    non_embedding = sum(p.numel() for name, p in encoder.named_parameters() if not name.startswith("embeddings"))
    seconds = sum(epoch["train_seconds"] for epoch in metrics["history"])
    evaluated = sum(epoch["validation_seconds"] for epoch in metrics["history"])
    trained = int(tokens["train"].lengths.sum()) * config.train.epochs
    return {"threads": threads, "precision": precision, "train_seconds": seconds, "train_tokens": trained,
            "train_samples_per_second": len(tokens["train"]) * config.train.epochs / seconds,
            "eval_samples_per_second": len(tokens["validation"]) * len(metrics["history"]) / evaluated,
            "achieved_gflops": 6 * non_embedding * trained / seconds / 1e9, "test_score": metrics["test"]["accuracy"],
            "non_embedding_parameters": non_embedding}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=0.5, help="minimum seconds per timing trial")
    args = parser.parse_args()
    facts, cores = cpu_facts(), os.cpu_count() or 1
    thread_counts = sorted({1, cores})
    rows = []
    for threads in thread_counts:
        for kind, shapes in (("big", BIG), ("model", MODEL)):
            for name, (m, k, n) in shapes.items():
                for dtype_name, dtype in DTYPES.items():
                    emulated = dtype_name == "bf16" and facts["bf16_path"] == "none"
                    if emulated and kind == "big":
                        continue
                    rate = gemm_gflops(m, k, n, dtype, threads, 0.0 if emulated else args.seconds,
                                       trials=1 if emulated else 5)
                    rows.append({"measure": "gemm", "kind": kind, "shape": name, "dtype": dtype_name,
                                 "threads": threads, "gflops": rate, **facts})
                    print(f"gemm {name:34s} {dtype_name} {threads} thread(s): {rate:7.1f} GFLOP/s", flush=True)
    gemm = pd.DataFrame(rows)
    steps = [training_step(threads) for threads in thread_counts]
    for step in steps:
        same = gemm[(gemm.threads == step["threads"]) & (gemm.dtype == step["precision"])]
        peak, shaped = same[same.kind == "big"].gflops.max(), same[same.kind == "model"].gflops.mean()
        rows.append({"measure": "training step", "kind": "achieved", "shape": "MiniLM rt-polarity baseline run",
                     "dtype": step["precision"], "threads": step["threads"], "gflops": step["achieved_gflops"],
                     "utilisation_of_big_gemm": step["achieved_gflops"] / peak,
                     "utilisation_of_model_gemm": step["achieved_gflops"] / shaped, **facts,
                     **{k: v for k, v in step.items() if k not in ("threads", "precision", "achieved_gflops")}})
        print(f"training step, {step['threads']} thread(s), {step['precision']}: {step['achieved_gflops']:.1f} GFLOP/s "
              f"achieved (6 x {step['non_embedding_parameters'] / 1e6:.1f}M x {step['train_tokens']:,} tokens / "
              f"{step['train_seconds']:.1f} s); {100 * step['achieved_gflops'] / peak:.1f}% of the big-GEMM peak "
              f"({peak:.0f} GFLOP/s), {100 * step['achieved_gflops'] / shaped:.1f}% of the model-shape GEMMs "
              f"({shaped:.0f} GFLOP/s); evaluation {step['eval_samples_per_second']:.0f} samples/s against training "
              f"{step['train_samples_per_second']:.0f}: "
              f"{step['eval_samples_per_second'] / step['train_samples_per_second']:.1f}x", flush=True)
    print(f"machine: {facts['cpu']}, bf16 path {facts['bf16_path']}, {facts['cores']} cores; precision chosen for "
          f"training here: {resolve('cpu').precision('auto')}")
    frame = pd.DataFrame(rows)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "roofline.csv"
    if path.exists():  # keep what other machine kinds measured
        earlier = pd.read_csv(path)
        other = earlier[(earlier["cpu"] != facts["cpu"]) | (earlier["bf16_path"] != facts["bf16_path"])]
        frame = pd.concat([other, frame], ignore_index=True)
    frame.to_csv(path, index=False)
    fig, axes = plt.subplots(1, len(thread_counts), figsize=(5 * len(thread_counts), 4), squeeze=False)
    for axis, threads in zip(axes[0], thread_counts):
        part = gemm[gemm.threads == threads]
        labels = [f"{s}\n{d}" for s, d in zip(part["shape"], part["dtype"])]
        axis.barh(labels, part.gflops, color=["tab:blue" if d == "fp32" else "tab:orange" for d in part.dtype])
        for step in (s for s in steps if s["threads"] == threads):
            axis.axvline(step["achieved_gflops"], color="black", linestyle="--",
                         label=f"training step ({step['precision']})")
        axis.set(xlabel="GFLOP/s", title=f"{threads} thread(s), {facts['bf16_path']} bf16 path")
        axis.legend(loc="lower right", fontsize=8)
        axis.tick_params(axis="y", labelsize=7)
    fig.suptitle(facts["cpu"], fontsize=9)
    fig.tight_layout()
    fig.savefig(RESULTS / "roofline.png", dpi=120)
    print(f"wrote {RESULTS / 'roofline.csv'} and roofline.png")


if __name__ == "__main__":
    main()
