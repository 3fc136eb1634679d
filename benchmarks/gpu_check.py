#!/usr/bin/env python
"""The GPU check of issue 29: the training step near the chip, change by change, and runs packed on one GPU.

For a MiniLM-shaped model (6 layers, hidden 384: the default profile's) and a bert-base-shaped one
(12 layers, hidden 768: the paper profile's), both randomly initialised (speed does not depend on the
weights' values; the GPU machine has no internet to fetch real ones), on synthetic batches of the
default profile's shape (batch 16, 8 to 64 tokens) and GLUE's (batch 64, 16 to 128 tokens):
1. the GPU's measured bf16 matrix-product peak (8192^3, after warm-up): the roofline;
2. ``training.loop.train`` of one run per step variant (``gpu_check_steps.csv``): the plain loop (as before
   issue 29), the step near the chip (``device_step.StepOptions()``), that step with each change switched
   off in turn, in fp32 instead of bf16 autocast, and with ``torch.compile`` (last, if time is left). Per
   variant: the fit's wall seconds (validation included), samples/s, model FLOP/s of training (6 x
   non-embedding parameters x real tokens / the training seconds), its share of the measured peak, the
   peak memory, and for the plain loop and the near step the host synchronisations that torch's sync debug
   mode reports over a short fit;
3. the packing curve (``gpu_check_packing.csv``): 1, 2, 4, ... up to the concurrency that
   ``gpu_sharing.gpu_concurrency`` chooses from the free memory, the MiniLM-shaped run's measured peak and
   the cores, MiniLM-shaped runs at once in separate processes (kept between levels, started together at a
   barrier) with the near step; then bert-base-shaped runs at their own chosen concurrency, if time is left.
   The order is what matters most first (``check``), each part skipped when the deadline is near;
4. ``--paper-plan`` (a separate call): the paper profile's GPU-hours (``paper_estimate.notebook_flops``) at the
   best bert-base-shaped throughput measured (``gpu_check_paper_plan.csv``).
Every file is rewritten as each row is measured, so a time limit keeps what was measured. ``--deadline``
skips what would not finish in time. ``gpu_check_near_chip.json`` holds the facts (device, peak, concurrency);
the committed ``gpu_check.csv`` and ``gpu_check.json`` are the H200's measurements of the loop before issue 29.

    python benchmarks/gpu_check.py --out benchmarks/results --deadline 190
    python benchmarks/gpu_check.py --paper-plan --out benchmarks/results
    python benchmarks/gpu_check.py --device cpu --quick --out /tmp/check   # the script itself, on a CPU
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import multiprocessing
import os
import platform
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from fewdims_helpers.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from fewdims_helpers.data.tokenized import TokenizedSplit
from fewdims_helpers.training.device_step import StepOptions
from fewdims_helpers.runs.gpu_sharing import gpu_concurrency
from fewdims_helpers.model.head import SequenceClassifier
from fewdims_helpers.options import STEP_CHANGES
from fewdims_helpers.training.loop import train

sys.path.insert(0, str(Path(__file__).resolve().parent))
from paper_estimate import GLUE_SIZES, notebook_flops  # noqa: E402  (a sibling script)

SHAPES = {  # BertConfig fields; batch, token range, training and validation examples of a measured run
    "minilm-shaped": dict(config=dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                                      intermediate_size=1536), batch=16, tokens=(8, 64), examples=1600, validation=500),
    "bert-base-shaped": dict(config=dict(), batch=64, tokens=(16, 128), examples=3200, validation=500),
}
QUICK_CONFIG = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128)  # --quick
SYNC_STEPS = 20  # steps of the fit whose host synchronisations are counted
START = time.perf_counter()


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

    torch.manual_seed(0)
    encoder = BertModel(BertConfig(**(QUICK_CONFIG if quick else SHAPES[shape]["config"])), add_pooling_layer=False)
    return SequenceClassifier(encoder, ModelConfig(model=shape), num_labels=2, special_token_ids=(101, 102))


def non_embedding_parameters(model: SequenceClassifier) -> int:
    return sum(p.numel() for name, p in model.encoder.named_parameters() if not name.startswith("embeddings"))


def task_of(shape: str, quick: bool, seed: int = 0, examples: int | None = None) -> dict[str, TokenizedSplit]:
    spec = SHAPES[shape]
    n = spec["batch"] * 3 if quick else examples or spec["examples"]
    validation = spec["batch"] if quick else spec["validation"]
    return {"train": synthetic_split(n, spec["tokens"], seed),
            "validation": synthetic_split(validation, spec["tokens"], seed + 1),
            "test": synthetic_split(spec["batch"], spec["tokens"], seed + 2)}


def config_of(shape: str, precision: str = "auto", seed: int = 0) -> RunConfig:
    spec = SHAPES[shape]
    return RunConfig(data=DataConfig("rt-polarity", max_seq_length=spec["tokens"][1]), model=ModelConfig(model=shape),
                     train=TrainConfig(batch_size=spec["batch"], epochs=1, learning_rate=5e-5, seed=seed,
                                       precision=precision))


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def fit(shape: str, device: str, quick: bool, step: StepOptions, precision: str = "auto", base=None,
        tokens=None, seed: int = 0) -> dict:
    """One measured fine-tuning of a fresh copy of ``base`` (wall seconds between synchronisations)."""
    model = copy.deepcopy(base) if base is not None else model_of(shape, quick)
    tokens = tokens or task_of(shape, quick, seed)
    on_gpu = device.startswith("cuda")
    if on_gpu:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    synchronize(device)
    start = time.perf_counter()
    result = train(config_of(shape, precision, seed), tokens, device=device, progress=False, model=model,
                   step_options=step)
    synchronize(device)
    seconds = time.perf_counter() - start
    examples, train_seconds = len(tokens["train"]), result.history[0]["train_seconds"]
    real_tokens = int(tokens["train"].lengths.sum())
    parameters = non_embedding_parameters(model)
    return {"shape": shape, "precision": result.precision, "step_changes": " ".join(step.changes()) or "none",
            "examples": examples, "seconds": seconds, "train_seconds": train_seconds,
            "samples_per_second": examples / seconds, "train_samples_per_second": examples / train_seconds,
            "model_flops": 6 * parameters * real_tokens / train_seconds, "non_embedding_parameters": parameters,
            "peak_memory_bytes": torch.cuda.max_memory_allocated() if on_gpu else None}


def count_syncs(shape: str, device: str, quick: bool, step: StepOptions, base) -> int | None:
    """Host synchronisations torch's sync debug mode reports over a fit of ``SYNC_STEPS`` steps and its
    one validation (None off CUDA)."""
    if not device.startswith("cuda"):
        return None
    spec = SHAPES[shape]
    tokens = {"train": synthetic_split(spec["batch"] * SYNC_STEPS, spec["tokens"], 5),
              "validation": synthetic_split(spec["batch"], spec["tokens"], 6),
              "test": synthetic_split(spec["batch"], spec["tokens"], 7)}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            train(config_of(shape), tokens, device=device, progress=False, model=copy.deepcopy(base),
                  step_options=step)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message).lower() for w in caught)


def variants() -> list[tuple[str, StepOptions, str]]:
    """(name, step, precision) of every measured variant, the plain loop and the near step first."""
    near = StepOptions()
    rows = [("plain", StepOptions.plain(), "auto"), ("near_chip", near, "auto")]
    rows += [(f"near_chip-{change}", near.without(change), "auto") for change in STEP_CHANGES
             if change != "compile"]
    rows.append(("near_chip-bf16", near, "fp32"))
    rows.append(("near_chip+compile", dataclasses.replace(near, compile=True), "auto"))
    return rows


# ----------------------------------------------------------------------------- packed runs (one pool)
_BASES: dict = {}


def _packed_job(shape: str, device: str, quick: bool, seed: int, examples: int, barrier) -> dict:
    """One run of a packing level, in a pool process: waits for the level's other runs, then fits."""
    torch.set_num_threads(1)
    if shape not in _BASES:
        _BASES[shape] = model_of(shape, quick)
    tokens = task_of(shape, quick, seed, examples)
    barrier.wait(timeout=300)
    began = time.time()
    row = fit(shape, device, quick, StepOptions(), base=_BASES[shape], tokens=tokens, seed=seed)
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return {**row, "began": began, "ended": time.time()}


def packed(pool: ProcessPoolExecutor, manager, shape: str, device: str, quick: bool, runs: int, examples: int) -> dict:
    """``runs`` runs at once, one per pool process, started together: their summed samples/s over the span
    from the first start to the last end."""
    barrier = manager.Barrier(runs)
    rows = [f.result() for f in [pool.submit(_packed_job, shape, device, quick, seed, examples, barrier)
                                 for seed in range(runs)]]
    span = max(r["ended"] for r in rows) - min(r["began"] for r in rows)
    return {"shape": shape, "concurrent_runs": runs, "precision": rows[0]["precision"],
            "examples_per_run": rows[0]["examples"], "span_seconds": span,
            "samples_per_second": sum(r["examples"] for r in rows) / span,
            "model_flops": sum(r["model_flops"] * r["train_seconds"] for r in rows) / span,
            "slowest_seconds": max(r["seconds"] for r in rows)}


def levels(chosen: int) -> list[int]:
    """1, 2, 4, ... below ``chosen``, and ``chosen``."""
    return sorted({2 ** k for k in range(8) if 2 ** k < chosen} | {chosen})


# ----------------------------------------------------------------------------- main
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


def left(deadline: float | None) -> float:
    return float("inf") if deadline is None else deadline - (time.perf_counter() - START)


def check(args) -> int:
    """In order of what matters most, each skipped when the deadline is near: bert-base-shaped and
    MiniLM-shaped runs in the plain loop and the near step; the MiniLM-shaped packing curve; the near step's
    changes off one at a time, and fp32 (bert-base-shaped); bert-base-shaped runs packed; torch.compile."""
    out, device, quick = Path(args.out), args.device, args.quick
    out.mkdir(parents=True, exist_ok=True)
    on_gpu = device.startswith("cuda")
    facts = {"device": torch.cuda.get_device_name() if on_gpu else platform.processor() or platform.machine(),
             "torch": torch.__version__, "python": platform.python_version(), "quick": quick, "cores": os.cpu_count()}

    def save_facts():
        (out / "gpu_check_near_chip.json").write_text(json.dumps(facts, indent=2) + "\n")
    peak = gemm_peak(device, 1024 if quick else 8192)
    facts["bf16_gemm_peak_tflops"] = peak / 1e12
    save_facts()
    print(f"gpu_check: {facts['device']}: bf16 products at {peak / 1e12:.1f} TFLOP/s", flush=True)

    steps: list[dict] = []
    bases = {shape: model_of(shape, quick) for shape in SHAPES}

    def measure(shape: str, name: str, step: StepOptions, precision: str) -> None:
        needed = 90 if step.compile else 20
        if left(args.deadline) < needed or (step.compile and not args.compile):
            print(f"gpu_check: {shape} {name} skipped ({left(args.deadline):.0f} s left)", flush=True)
            return
        on_this = dataclasses.replace(step, devices="any") if quick and not on_gpu else step
        try:
            row = {"variant": name, **fit(shape, device, quick, on_this, precision, base=bases[shape])}
        except Exception as error:  # e.g. compile on this image: recorded, the others go on
            row = {"variant": name, "shape": shape, "error": f"{type(error).__name__}: {error}"[:300]}
        if name in ("plain", "near_chip") and "error" not in row:
            row["syncs_in_sync_steps"] = count_syncs(shape, device, quick, on_this, bases[shape])
            row["sync_steps"] = SYNC_STEPS
        row["utilisation_of_gemm_peak"] = row.get("model_flops", float("nan")) / peak
        steps.append(row)
        pd.DataFrame(steps).to_csv(out / "gpu_check_steps.csv", index=False)
        if "error" in row:
            print(f"gpu_check: {shape} {name}: {row['error']}", flush=True)
            return
        print(f"gpu_check: {shape} {name}: {row['samples_per_second']:,.0f} samples/s end to end, "
              f"{row['model_flops'] / 1e12:.2f} TFLOP/s training = {100 * row['utilisation_of_gemm_peak']:.2f}%"
              f" of the peak" + (f"; {row['syncs_in_sync_steps']} syncs in {SYNC_STEPS} steps"
                                 if row.get("syncs_in_sync_steps") is not None else ""), flush=True)

    first, rest = variants()[:2], variants()[2:]
    for shape in ("bert-base-shaped", "minilm-shaped"):
        fit(shape, device, quick, StepOptions(), base=bases[shape])  # warm-up: kernels, allocator, cuBLAS heuristics
        fit(shape, device, quick, StepOptions.plain(), base=bases[shape])
        for name, step, precision in first:
            measure(shape, name, step, precision)

    if on_gpu:
        torch.cuda.empty_cache()
    free = torch.cuda.mem_get_info()[0] if on_gpu else 8 * 2 ** 30
    cores = os.cpu_count() or 1
    by_shape = {r["shape"]: r for r in steps if r.get("variant") == "near_chip" and "error" not in r}
    chosen = {shape: gpu_concurrency(free, (row["peak_memory_bytes"] or 2 ** 28), cores) if on_gpu else min(2, cores)
              for shape, row in by_shape.items()}
    facts.update({f"{shape}_chosen_concurrency": n for shape, n in chosen.items()}, free_bytes=int(free))
    save_facts()
    packing: list[dict] = []

    def pack(pool, manager, shape: str, runs: int) -> None:
        if left(args.deadline) < (15 if shape == "minilm-shaped" else 30):
            print(f"gpu_check: {shape} x{runs} skipped ({left(args.deadline):.0f} s left)", flush=True)
            return
        examples = SHAPES[shape]["examples"] // (1 if shape == "minilm-shaped" else 2)
        row = packed(pool, manager, shape, device, quick, runs, examples)
        row["utilisation_of_gemm_peak"] = row["model_flops"] / peak
        packing.append(row)
        pd.DataFrame(packing).to_csv(out / "gpu_check_packing.csv", index=False)
        print(f"gpu_check: {shape}, {runs} run(s) at once: {row['samples_per_second']:,.0f} samples/s, "
              f"{row['model_flops'] / 1e12:.2f} TFLOP/s = {100 * row['utilisation_of_gemm_peak']:.2f}% "
              f"of the peak", flush=True)

    context = multiprocessing.get_context("spawn")
    most = max(chosen.values(), default=1)
    if "minilm-shaped" in chosen and left(args.deadline) > 40:
        with context.Manager() as manager, ProcessPoolExecutor(most, mp_context=context) as pool:
            packed(pool, manager, "minilm-shaped", device, quick, most, 2 * SHAPES["minilm-shaped"]["batch"])  # warm
            for runs in levels(chosen["minilm-shaped"]):
                pack(pool, manager, "minilm-shaped", runs)
            for name, step, precision in rest:  # the pool waits idle meanwhile (its memory stays in use)
                if not step.compile:
                    measure("bert-base-shaped", name, step, precision)
            if "bert-base-shaped" in chosen and chosen["bert-base-shaped"] > 1:
                pack(pool, manager, "bert-base-shaped", min(chosen["bert-base-shaped"], most))
    else:
        for name, step, precision in rest:
            if not step.compile:
                measure("bert-base-shaped", name, step, precision)
    for name, step, precision in rest:
        if step.compile:
            measure("bert-base-shaped", name, step, precision)
    for shape in chosen:
        mine = [r for r in packing if r["shape"] == shape]
        if mine and shape in by_shape:
            best = max(mine, key=lambda r: r["samples_per_second"])
            facts[f"{shape}_packing_gain"] = best["samples_per_second"] / by_shape[shape]["samples_per_second"]
            facts[f"{shape}_best_concurrency"] = best["concurrent_runs"]
    save_facts()
    print(f"gpu_check: wrote {out}/gpu_check_steps.csv, gpu_check_packing.csv and gpu_check_near_chip.json",
          flush=True)
    return 0


def paper_plan(args) -> int:
    """The paper profile's GPU-hours at the best bert-base-shaped throughput measured (one run or packed)."""
    out = Path(args.out)
    measured = []
    for name in ("gpu_check_steps.csv", "gpu_check_packing.csv"):
        if (out / name).exists():
            frame = pd.read_csv(out / name)
            if "model_flops" in frame:
                frame = frame[(frame["shape"] == "bert-base-shaped") & frame["model_flops"].notna()]
                measured += [dict(r, source=name) for r in frame.to_dict("records")]
    if not measured:
        print("gpu_check: no bert-base-shaped measurement to plan the paper profile at", flush=True)
        return 1
    best = max(measured, key=lambda r: r["model_flops"])
    what = (f"{best['concurrent_runs']:.0f} runs at once" if "concurrent_runs" in best and
            not pd.isna(best.get("concurrent_runs")) else f"one run, {best.get('variant')}")
    with torch.device("meta"):  # sizes only, no memory
        parameters = non_embedding_parameters(model_of("bert-base-shaped", quick=False))
    flops = notebook_flops(parameters, 12, list(GLUE_SIZES), seeds=3)
    plan = pd.DataFrame({"notebook": list(flops), "PFLOP": [v / 1e15 for v in flops.values()],
                         "GPU-hours": [v / best["model_flops"] / 3600 for v in flops.values()]})
    plan.loc[len(plan)] = ["total", plan.PFLOP.sum(), plan["GPU-hours"].sum()]
    plan["measured_tflops"], plan["measured_as"] = best["model_flops"] / 1e12, what
    plan.to_csv(out / "gpu_check_paper_plan.csv", index=False)
    print(plan.round(2).to_string(index=False))
    print(f"gpu_check: the paper profile at bert-base-shaped's measured {best['model_flops'] / 1e12:.1f} TFLOP/s "
          f"({what}): {plan['GPU-hours'].iloc[-1]:.1f} GPU-hours; wrote {out}/gpu_check_paper_plan.csv", flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    parser.add_argument("--quick", action="store_true", help="tiny models and data: checks the script, measures nothing")
    parser.add_argument("--deadline", type=float, default=None, help="seconds: skip what would not finish by then")
    parser.add_argument("--no-compile", dest="compile", action="store_false", help="skip the torch.compile variant")
    parser.add_argument("--paper-plan", action="store_true", help="only the paper profile's plan, from the files in --out")
    args = parser.parse_args()
    if args.paper_plan:
        return paper_plan(args)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; run it where a GPU is (or --device cpu --quick to check the script)")
        return 2
    if not args.device.startswith("cuda") and not args.quick:
        print("gpu_check: off CUDA, use --quick (the step near the chip is CUDA's; --quick forces it on to check)")
        return 2
    return check(args)


if __name__ == "__main__":
    sys.exit(main())
