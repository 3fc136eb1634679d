#!/usr/bin/env python
"""The GPU check: what one GPU does with this package's training loop, measured, for when a GPU is lent.

For a MiniLM-shaped model (6 layers, hidden 384: the default profile's) and a bert-base-shaped one
(12 layers, hidden 768: the paper profile's), both randomly initialised (speed does not depend on the
weights' values, and the GPU machine has no internet to fetch real ones):
1. the GPU's measured bf16 matrix-product peak (8192^3, after warm-up): the roofline, not a data-sheet number;
2. training samples/s and model FLOP/s (6 x non-embedding parameters x real tokens per second) of
   ``training.train`` in bf16 autocast, and its utilisation of the measured peak;
3. 1, 2 and 4 runs trained at once on the one GPU, in separate processes (as the run store would with
   fractional GPUs): their summed samples/s, to see whether packing small runs pays;
4. the paper profile's GPU-hours (``paper_estimate.notebook_flops``) recomputed at the bert-base-shaped
   model's measured FLOP/s instead of an assumed 35% of an assumed peak.
The batches are synthetic token ids with the default profile's shape (batch 16, 8 to 64 tokens) for
MiniLM and GLUE's (batch 64, 16 to 128 tokens) for bert-base; every batch is dynamically padded as in
the real loop. Writes ``gpu_check.csv``, ``gpu_check_paper_estimate.csv`` and ``gpu_check.json`` to
``--out``. ``benchmarks/gpu_check.sh`` runs it within 8 minutes.

    python benchmarks/gpu_check.py --out benchmarks/results
    python benchmarks/gpu_check.py --device cpu --quick --out /tmp/check   # the script itself, on a CPU
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from fewdims_helpers.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from fewdims_helpers.data import TokenizedSplit
from fewdims_helpers.head import SequenceClassifier
from fewdims_helpers.training import train

sys.path.insert(0, str(Path(__file__).resolve().parent))
from paper_estimate import GLUE_SIZES, notebook_flops  # noqa: E402  (a sibling script)

SHAPES = {  # BertConfig fields; batch, token range and examples of the measured run
    "minilm-shaped": dict(config=dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                                      intermediate_size=1536), batch=16, tokens=(8, 64), examples=4000),
    "bert-base-shaped": dict(config=dict(), batch=64, tokens=(16, 128), examples=8000),
}
CONCURRENCY = (1, 2, 4)
QUICK_CONFIG = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128)  # --quick


def synthetic_split(n: int, tokens: tuple[int, int], seed: int) -> TokenizedSplit:
    """Binary task on random word-piece ids, lengths uniform in ``tokens``, [CLS] ... [SEP], right-padded."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(tokens[0], tokens[1] + 1, n).astype(np.int32)
    ids = np.zeros((n, tokens[1]), dtype=np.int32)
    for i, length in enumerate(lengths):
        ids[i, :length] = rng.integers(1000, 30000, length)
        ids[i, 0], ids[i, length - 1] = 101, 102
    return TokenizedSplit(ids, np.zeros_like(ids, dtype=np.int8), lengths, rng.integers(0, 2, n).astype(np.int64),
                          np.arange(n))


def model_of(shape: str, quick: bool) -> SequenceClassifier:
    from transformers import BertConfig, BertModel

    encoder = BertModel(BertConfig(**(QUICK_CONFIG if quick else SHAPES[shape]["config"])), add_pooling_layer=False)
    return SequenceClassifier(encoder, ModelConfig(model=shape), num_labels=2, special_token_ids=(101, 102))


def non_embedding_parameters(model: SequenceClassifier) -> int:
    return sum(p.numel() for name, p in model.encoder.named_parameters() if not name.startswith("embeddings"))


def train_once(shape: str, device: str, quick: bool, seed: int = 0) -> dict:
    """One measured fine-tuning (after a short warm-up run in the same process)."""
    spec = SHAPES[shape]
    examples = spec["batch"] * 2 if quick else spec["examples"]
    config = RunConfig(data=DataConfig("rt-polarity", max_seq_length=spec["tokens"][1]),
                       model=ModelConfig(model=shape), train=TrainConfig(batch_size=spec["batch"], epochs=1,
                                                                         learning_rate=5e-5, seed=seed))
    tokens = {"train": synthetic_split(examples, spec["tokens"], seed),
              "validation": synthetic_split(spec["batch"], spec["tokens"], seed + 1),
              "test": synthetic_split(spec["batch"], spec["tokens"], seed + 2)}
    warm = {split: synthetic_split(spec["batch"] * 2, spec["tokens"], seed + 3) for split in tokens}
    train(config, warm, device=device, progress=False, model=model_of(shape, quick))  # kernels, allocator, tuning
    model = model_of(shape, quick)
    result = train(config, tokens, device=device, progress=False, model=model)
    seconds = result.history[0]["train_seconds"]
    real_tokens = int(tokens["train"].lengths.sum())
    return {"shape": shape, "precision": result.precision, "examples": examples, "train_seconds": seconds,
            "samples_per_second": examples / seconds, "tokens_per_second": real_tokens / seconds,
            "model_flops": 6 * non_embedding_parameters(model) * real_tokens / seconds,
            "non_embedding_parameters": non_embedding_parameters(model)}


def _worker(args: tuple) -> dict:
    return train_once(*args)


def concurrent(shape: str, device: str, quick: bool, processes: int) -> dict:
    """``processes`` runs at once on the one device, each in its own spawned process."""
    context = multiprocessing.get_context("spawn")
    start = time.perf_counter()
    with context.Pool(processes) as pool:
        results = pool.map(_worker, [(shape, device, quick, seed) for seed in range(processes)])
    wall = time.perf_counter() - start
    slowest = max(r["train_seconds"] for r in results)
    return {"shape": shape, "concurrent_runs": processes, "precision": results[0]["precision"],
            "samples_per_second": sum(r["examples"] for r in results) / slowest,
            "model_flops": sum(r["model_flops"] * r["train_seconds"] for r in results) / slowest,
            "slowest_train_seconds": slowest, "wall_seconds_with_start_up": wall}


def gemm_peak(device: str, size: int) -> float:
    """FLOP/s of a bf16 (size x size) @ (size x size) product, mean of ten after three warm-ups."""
    a = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    b = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    synchronize(device)
    start = time.perf_counter()
    for _ in range(10):
        a @ b
    synchronize(device)
    return 10 * 2 * size ** 3 / (time.perf_counter() - start)


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    parser.add_argument("--quick", action="store_true", help="tiny models and data: checks the script, measures nothing")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; run it where a GPU is (or --device cpu --quick to check the script)")
        return 2
    size = 1024 if args.quick else 8192
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    facts = {"device": torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor(),
             "torch": torch.__version__, "python": platform.python_version(), "quick": args.quick}
    peak = gemm_peak(args.device, size)
    facts["bf16_gemm_peak_tflops"] = peak / 1e12
    print(f"gpu_check: {facts['device']}: bf16 {size}^3 products at {peak / 1e12:.1f} TFLOP/s", flush=True)
    rows = []
    for shape in SHAPES:
        for processes in CONCURRENCY:
            row = (dict(train_once(shape, args.device, args.quick), concurrent_runs=1) if processes == 1
                   else concurrent(shape, args.device, args.quick, processes))
            row["utilisation_of_gemm_peak"] = row["model_flops"] / peak
            rows.append(row)
            print(f"gpu_check: {shape}, {processes} run(s) at once: {row['samples_per_second']:,.0f} samples/s, "
                  f"{row['model_flops'] / 1e12:.1f} TFLOP/s = {100 * row['utilisation_of_gemm_peak']:.1f}% of the "
                  f"measured peak", flush=True)
            pd.DataFrame(rows).to_csv(out / "gpu_check.csv", index=False)  # kept if the time limit stops it
    single = {r["shape"]: r for r in rows if r["concurrent_runs"] == 1}
    for shape in SHAPES:
        best = max((r for r in rows if r["shape"] == shape), key=lambda r: r["samples_per_second"])
        facts[f"{shape}_packing_gain"] = best["samples_per_second"] / single[shape]["samples_per_second"]
        facts[f"{shape}_best_concurrency"] = best["concurrent_runs"]
    bert = single["bert-base-shaped"]
    flops = notebook_flops(bert["non_embedding_parameters"], 12, list(GLUE_SIZES), seeds=3)  # (--quick: a tiny model)
    estimate = pd.DataFrame({"notebook": list(flops), "PFLOP": [v / 1e15 for v in flops.values()],
                             "GPU-hours at the measured FLOP/s": [v / bert["model_flops"] / 3600 for v in flops.values()]})
    estimate.loc[len(estimate)] = ["total", estimate.PFLOP.sum(), estimate.iloc[:, 2].sum()]
    facts["paper_profile_gpu_hours"] = float(estimate.iloc[-1, 2])
    estimate.to_csv(out / "gpu_check_paper_estimate.csv", index=False)
    (out / "gpu_check.json").write_text(json.dumps(facts, indent=2) + "\n")
    print(estimate.round(2).to_string(index=False))
    print(f"gpu_check: the paper profile at bert-base's measured {bert['model_flops'] / 1e12:.1f} TFLOP/s: "
          f"{facts['paper_profile_gpu_hours']:.1f} GPU-hours; wrote {out}/gpu_check*.csv and gpu_check.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
