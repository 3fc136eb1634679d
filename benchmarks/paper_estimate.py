#!/usr/bin/env python
"""Estimated cost of the paper profile (bert-base-uncased, 8 GLUE tasks, 3 seeds, 5 epochs, 128 tokens).

An estimate, not a measurement: no GPU and no GLUE here. Method:
1. Runs per notebook from the notebooks' default parameters (mirrored in ``NOTEBOOK_DEFAULTS``), the
   paper profile's tasks and seeds, and bert-base's shape (``transformers.BertConfig()`` defaults).
2. FLOPs per run: 6 x non-embedding parameters per training token and 2 x per evaluated token
   (forward only), with every example counted at 128 tokens: an upper bound, since dynamic padding
   trains on each batch's longest example. Layer-k runs compute k of 12 layers; frozen-encoder heads
   train on features encoded once per task; "frozen but the top k" runs back-propagate through k layers.
3. Hours = FLOPs / achieved FLOP/s: on one GPU at an assumed model-FLOP utilisation (``--mfu``) of an
   assumed peak (``--peak-tflops``; default an A100's 312 dense bf16 TFLOP/s); on this CPU at the
   FLOP/s the cost curve measured (``benchmarks/results/cost_curve.csv``: MiniLM, so bert-base's
   larger matrices probably run somewhat faster per FLOP). The cost curve also checks the model's
   premise: time grows linearly with the number of training examples.

Training-set sizes are GLUE's (train / official dev = our test; validation is 10% of train).

    python benchmarks/paper_estimate.py [--peak-tflops 312] [--mfu 0.35]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results"

GLUE_SIZES = {  # train, dev (GLUE; MNLI dev = matched)
    "cola": (8_551, 1_043), "sst2": (67_349, 872), "mrpc": (3_668, 408), "stsb": (5_749, 1_500),
    "qqp": (363_846, 40_430), "mnli": (392_702, 9_815), "qnli": (104_743, 5_463), "rte": (2_490, 277)}
NOTEBOOK_DEFAULTS = {"token_selections": 5, "subsets_per_k": 3, "ks": 3, "top_layers": (1, 3), "rates": 3,
                     "ablation_dims": 2, "analysis_seeds": 1}


def run_flops(task: str, parameters: int, layers_share: float = 1.0, backward_share: float = 1.0,
              epochs: int = 5, tokens: int = 128, validation_fraction: float = 0.1) -> float:
    """FLOPs of one fine-tuning: forward (2x) and backward (4x, times ``backward_share``) per training
    token, forward per validation token every epoch and per test token once."""
    train, test = GLUE_SIZES[task]
    validation = validation_fraction * train
    per_token = parameters * layers_share
    return (epochs * (1 - validation_fraction) * train * tokens * per_token * (2 + 4 * backward_share)
            + (epochs * validation + test) * tokens * 2 * per_token)


def encode_flops(task: str, parameters: int, tokens: int = 128) -> float:
    return sum(GLUE_SIZES[task]) * tokens * 2 * parameters


def notebook_flops(parameters: int, layers: int, tasks: list[str], seeds: int) -> dict[str, float]:
    d = NOTEBOOK_DEFAULTS
    full = {t: run_flops(t, parameters) for t in tasks}
    n = len(tasks)
    return {
        "01_token_wise": sum(d["token_selections"] * seeds * full[t] for t in tasks),
        # scan runs (every seed) + random subsets per k (first seed) + scan-best pair and triple
        # + best 2- and 3-subsets with the other seeds + drop-one of the best triple
        "02_dimension_wise": sum((seeds + d["ks"] * d["subsets_per_k"] + 2 + 2 * (seeds - 1) + 3) * full[t] for t in tasks),
        "03_layer_wise": sum(seeds * run_flops(t, parameters, layers_share=k / layers) for t in tasks
                             for k in range(1, layers + 1)),
        # (a) full; (b), (c) heads on features encoded once per task; (d) back-propagation through the top k
        "04_freezing": sum(seeds * full[t] + encode_flops(t, parameters) + sum(
            seeds * run_flops(t, parameters, backward_share=k / layers) for k in d["top_layers"]) for t in tasks),
        "05_cross_fine_tuning": sum((n - 1) * seeds * full[t] for t in tasks),
        "06_salient_neurons_pca": 0.0,  # reads the fine-tuned models of 04/05; encodes a small text pool
        # trajectories, rate sweep, Freeze/Random/Intrinsic over seeds, transfer, unified (3 settings), ablation
        "07_intrinsic_subspaces": sum((1 + d["rates"] + 3 * seeds - 1 + d["analysis_seeds"] * (
            (n - 1) + 3 + d["ablation_dims"])) * full[t] for t in tasks),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peak-tflops", type=float, default=312.0, help="GPU peak dense bf16 TFLOP/s (A100: 312)")
    parser.add_argument("--mfu", type=float, default=0.35, help="assumed model-FLOP utilisation on the GPU")
    args = parser.parse_args()
    from transformers import BertConfig

    from fewdims_helpers.model.pretrained import pretrained_encoder

    bert = BertConfig()  # bert-base's shape: 12 layers, hidden 768, FFN 3072
    h, f = bert.hidden_size, bert.intermediate_size
    parameters = bert.num_hidden_layers * (4 * h * h + 4 * h + 2 * h * f + f + h + 4 * h)
    curve = pd.read_csv(RESULTS / "cost_curve.csv")
    minilm = pretrained_encoder("minilm")  # the model the cost curve timed
    minilm_parameters = sum(p.numel() for n, p in minilm.named_parameters() if not n.startswith("embeddings"))
    cpu_flops = 6 * minilm_parameters * (curve.train_tokens.sum() / curve.train_seconds.sum())
    size = curve[curve.sweep == "size"]
    linear = size.train_seconds.corr(size.train_examples)
    flops = notebook_flops(parameters, bert.num_hidden_layers, list(GLUE_SIZES), seeds=3)
    gpu = args.peak_tflops * 1e12 * args.mfu
    frame = pd.DataFrame({"notebook": list(flops), "PFLOP": [v / 1e15 for v in flops.values()],
                          "GPU-hours (estimate)": [v / gpu / 3600 for v in flops.values()],
                          "CPU-days on this machine (estimate)": [v / cpu_flops / 86400 for v in flops.values()]})
    frame.loc[len(frame)] = ["total", frame.PFLOP.sum(), frame.iloc[:, 2].sum(), frame.iloc[:, 3].sum()]
    print(f"bert-base: {parameters / 1e6:.1f}M non-embedding parameters; GPU at {args.mfu:.0%} of {args.peak_tflops:.0f} "
          f"TFLOP/s; this CPU at {cpu_flops / 1e9:.0f} GFLOP/s (cost curve; time vs examples correlation {linear:.3f})")
    print(frame.round(2).to_string(index=False))
    frame.to_csv(RESULTS / "paper_estimate.csv", index=False)
    print(f"wrote {RESULTS / 'paper_estimate.csv'}")


if __name__ == "__main__":
    main()
