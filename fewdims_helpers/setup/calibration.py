"""Calibration of this machine for the plan (``planning``): training and evaluation examples per second of
the real training function on a sample of each task's own tokens, at the run's precision and the thread count
a worker gets, in at most ``CALIBRATION_SECONDS`` in all, cached per machine (CPU model and flags, or GPU),
precision, threads, model, sequence length and kind of run, under the cache folder; on a GPU shared by several
runs, the rates of one run among them (``share_gpu``)."""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import RunConfig, content_key, rate_key, run_kind
from ..data.tokenized import TokenizedSplit

log = logging.getLogger(__name__)

CALIBRATION_SECONDS = 60.0  # the whole calibration of one plan, model loading included
CALIBRATION_FORMAT = 1  # bump when the measurement changes: older cached rates are then ignored


def machine_key() -> dict:
    """The machine as the rates depend on it: CPU model and flags (bf16 path), cores, GPU, torch."""
    import torch

    from ..runs.provenance import cpu_bf16_path, cpu_model

    flags = ""
    try:
        flags = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("flags")), "")
    except OSError:
        pass
    return {"cpu": cpu_model(), "flags": content_key(flags.encode(), 12), "bf16": cpu_bf16_path(),
            "cpu_count": os.cpu_count(), "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
            "torch": torch.__version__, "machine": platform.machine()}


@dataclass(frozen=True)
class Rates:
    """Measured on one run's recipe: encoder examples per second in training and in evaluation, and the
    seconds to build the model (load the encoder, set up the head)."""
    train_per_second: float
    eval_per_second: float
    load_seconds: float
    relative_to: tuple | None = None  # a subspace kind: the full run's key of the task it was measured on
    load_average: float | None = None  # the machine's 1-minute load when measured (busy: rates too low)
    estimated: bool = False  # not measured: the calibration ran out of time (``_estimated``)
    peak_bytes: int | None = None  # on a GPU: the run's peak memory (torch.cuda.max_memory_allocated)


def _subset(split: TokenizedSplit, rows: np.ndarray) -> TokenizedSplit:
    return TokenizedSplit(split.input_ids[rows], split.token_type_ids[rows], split.lengths[rows], split.labels[rows],
                          split.idx[rows])


def _measure(config: RunConfig, tokens: dict[str, TokenizedSplit], seconds: float, runner) -> Rates:
    """Train ``config`` with the training function on a seeded sample of its own training split and
    evaluate a sample of validation: a probe of one batch each (which also warms the kernels up), then,
    on the same model, as many examples as fit in about ``seconds`` in all (the probe's rates if none fit)."""
    from ..runs.models import initial_model
    from ..training.loop import build_model, train

    rng = np.random.default_rng(0)
    start = time.perf_counter()
    model = initial_model(runner.store, config) if config.subspace is not None else build_model(config)
    load_seconds = time.perf_counter() - start

    def timed(train_rows: int, eval_rows: int, epochs: int) -> tuple[float, float]:
        rows = {"train": rng.choice(len(tokens["train"]), min(train_rows, len(tokens["train"])), replace=False),
                "validation": rng.choice(len(tokens["validation"]), min(eval_rows, len(tokens["validation"])),
                                         replace=False)}
        sample = {split: _subset(tokens[split], rows[split]) for split in rows}
        sample["test"] = sample["validation"]
        short = dataclasses.replace(config, train=dataclasses.replace(config.train, epochs=epochs))
        history = train(short, sample, device=runner.execution, progress=False, model=model).history
        return (len(rows["train"]) * epochs / max(sum(h["train_seconds"] for h in history), 1e-6),
                len(rows["validation"]) / max(history[-1]["validation_seconds"], 1e-6))

    import torch

    batch, eval_batch = config.train.batch_size, config.train.eval_batch_size
    probe_train, probe_eval = timed(batch, eval_batch, 1)
    on_gpu = next(model.parameters()).is_cuda  # train() moved it to the device the runs use
    left = seconds - (time.perf_counter() - start)
    if left < 2 * (batch / probe_train + eval_batch / probe_eval):
        return Rates(probe_train, probe_eval, load_seconds, peak_bytes=torch.cuda.max_memory_allocated() if on_gpu
                     else None)
    if on_gpu:
        torch.cuda.reset_peak_memory_stats()
    train_rows = max(batch, int(probe_train * left * 0.55))
    epochs = min(20, max(1, math.ceil(train_rows / len(tokens["train"]))))
    eval_rows = max(eval_batch, int(probe_eval * left * 0.2))
    train_rate, eval_rate = timed(min(train_rows, len(tokens["train"])), eval_rows, epochs)
    return Rates(train_rate, eval_rate, load_seconds, peak_bytes=torch.cuda.max_memory_allocated() if on_gpu else None)


def calibration_config(config: RunConfig) -> RunConfig:
    """The run measured for ``config``'s rates: its task, recipe and kind with the whole encoder computed
    and trained, nothing saved and no source run (an intrinsic subspace measured in a random one of its
    dimension: the same cost per step, no trajectory needed)."""
    model = dataclasses.replace(config.model, layer=None, selected_dims=None, freeze_pretrained=False,
                                frozen_layers=0, head_dropconnect=0.0)
    subspace = config.subspace
    if subspace is not None and subspace.basis == "intrinsic":
        subspace = dataclasses.replace(subspace, basis="random", sources=())
    return RunConfig(data=config.data, model=model, train=config.train, subspace=subspace)


def calibration_path(cache_dir: Path, config: RunConfig, threads: int, device: str | None) -> Path:
    identity = {"machine": machine_key(), "threads": threads, "device": device or "auto", "rates": rate_key(config),
                "format": CALIBRATION_FORMAT}
    digest = content_key(identity, default=str)
    task = config.data.task if run_kind(config) == "full" else "any-task"
    return Path(cache_dir) / "calibration" / f"{task}-{run_kind(config)}-{digest}.json"


def run_rates(rates: dict[tuple, Rates], config: RunConfig) -> Rates | None:
    """The rates of ``config``: its task's plain rates, scaled for a subspace run by the subspace's
    measured ratio to the plain run of the task it was measured on."""
    plain = rates.get(rate_key(dataclasses.replace(config, subspace=None)))
    if run_kind(config) == "full" or plain is None:
        return plain
    sub = rates.get(rate_key(config))
    base = rates.get(sub.relative_to) if sub is not None and sub.relative_to else None
    if base is None:
        return None
    return Rates(plain.train_per_second * sub.train_per_second / base.train_per_second,
                 plain.eval_per_second * sub.eval_per_second / base.eval_per_second, sub.load_seconds)


def calibrate(configs: list[RunConfig], runner, threads: int, seconds: float = CALIBRATION_SECONDS,
              measure: bool = True) -> dict[tuple, Rates]:
    """Rates per ``rate_key`` of ``configs`` (one representative run each), read from the cache or measured
    with ``threads`` torch threads, all of them in at most ``seconds``. ``measure=False``: cached ones only."""
    import torch

    from ..paths import write_atomically

    chosen = {}
    for config in configs:
        if run_kind(config) == "subspace":  # measured beside the plain run of its task
            plain = dataclasses.replace(calibration_config(config), subspace=None)
            chosen.setdefault(rate_key(plain), plain)
        chosen.setdefault(rate_key(config), calibration_config(config))
    rates, missing = {}, []
    for key, config in chosen.items():
        path = calibration_path(runner.options.sources.cache, config, threads, runner.options.device)
        if path.exists():
            stored = json.loads(path.read_text())
            rates[key] = Rates(stored["train_per_second"], stored["eval_per_second"], stored["load_seconds"],
                               None if stored.get("relative_to") is None else tuple(stored["relative_to"]),
                               stored.get("load_average"), peak_bytes=stored.get("peak_bytes"))
        else:
            missing.append((key, config, path))
    if not measure or not missing:
        return rates
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    start = time.perf_counter()
    try:
        for index, (key, config, path) in enumerate(missing):
            budget = (seconds - (time.perf_counter() - start)) / (len(missing) - index)
            if budget < 1.0:  # out of time: estimated from the measured rates below, not cached
                continue
            measured = dataclasses.replace(_measure(config, runner.tokens(config), budget, runner),
                                           load_average=os.getloadavg()[0])
            if run_kind(config) == "subspace":
                measured = dataclasses.replace(measured, relative_to=rate_key(dataclasses.replace(config, subspace=None)))
            rates[key] = measured
            payload = {**dataclasses.asdict(measured), "machine": machine_key(), "threads": threads,
                       "rates": [str(k) for k in key], "measured": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            write_atomically(path, lambda tmp: tmp.write_text(json.dumps(payload, indent=2) + "\n"))
            if measured.peak_bytes is not None:  # the run store sizes its GPU workers by it (gpu_sharing.py)
                from ..runs.gpu_sharing import record_footprint

                record_footprint(runner.options.sources.cache, key, torch.cuda.get_device_name(), measured.peak_bytes)
            log.info("calibrated %s: %.1f train / %.1f eval examples per second", key, rates[key].train_per_second,
                     rates[key].eval_per_second)
    finally:
        torch.set_num_threads(previous)
    for key, config, _ in missing:
        if key not in rates:
            rates[key] = _estimated(rates, config)
    return {key: rate for key, rate in rates.items() if rate is not None}


def _estimated(rates: dict[tuple, Rates], config: RunConfig) -> Rates | None:
    """Rates of a key the calibration had no time for: a measured plain run of the same model, scaled by
    sequence length (a subspace: as costly as a plain run). Marked ``estimated``."""
    if run_kind(config) == "subspace":
        plain = next((k for k, r in rates.items() if k[6] == "full" and k[0] == config.model.model), None)
        return None if plain is None else dataclasses.replace(rates[plain], relative_to=plain, estimated=True)
    for key, rate in rates.items():
        if key[6] == "full" and key[0] == config.model.model and not rate.estimated:
            scale = key[2] / config.data.max_seq_length
            return Rates(rate.train_per_second * scale, rate.eval_per_second * scale, rate.load_seconds,
                         estimated=True)
    return None


def process_start_seconds(cache_dir: Path, measure: bool = True) -> float | None:
    """Seconds for a fresh Python process to import the run store (a worker's or a kernel's start), cached
    per machine; None when not cached and ``measure`` is False."""
    digest = content_key(machine_key())
    path = Path(cache_dir) / "calibration" / f"process-start-{digest}.json"
    if path.exists():
        return json.loads(path.read_text())["seconds"]
    if not measure:
        return None
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import fewdims_helpers.runs.store"], check=True, capture_output=True)
    seconds = time.perf_counter() - start
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"seconds": seconds}) + "\n")
    return seconds


PACKED_SECONDS = 10.0  # about how long each packed calibration run trains


def share_gpu(rates: dict[tuple, Rates], configs: list[RunConfig], runner, measure: bool
               ) -> tuple[dict[tuple, Rates], int, str]:
    """On a GPU with workers "auto": how many runs share it (``gpu_sharing.choose``, from its free memory and
    the largest footprint the calibration measured, else estimated) and the rates scaled to one run's speed
    with that many at once, measured on the most common plain recipe (``gpu_sharing.measure_packing``, cached
    per GPU) and applied to every recipe. Returns (rates, workers, what the plan says of it)."""
    import collections

    import torch

    from ..runs import gpu_sharing

    cache, gpu = runner.options.sources.cache, torch.cuda.get_device_name()
    by_key = {rate_key(c): c for c in configs}
    footprints = [(rates[key].peak_bytes, True) if key in rates and rates[key].peak_bytes
                  else gpu_sharing.run_footprint(config, cache, gpu) for key, config in by_key.items()]
    concurrency = gpu_sharing.choose(*max(footprints))
    runs = concurrency.runs
    plain = [rate_key(c) for c in configs if run_kind(c) == "full" and not c.model.freeze_pretrained]
    if runs == 1 or not plain:
        return rates, runs, concurrency.reason()
    key = collections.Counter(plain).most_common(1)[0][0]
    packing = gpu_sharing.cached_packing(cache, key, gpu, runs)
    if packing is None and measure and key in rates and not rates[key].estimated:
        config, alone = calibration_config(by_key[key]), rates[key]
        tokens = runner.tokens(config)
        guess = 2.0 / runs  # each run's share of its speed alone if the GPU gave twice one run's throughput
        train_rows = min(len(tokens["train"]), max(config.train.batch_size,
                                                   int(alone.train_per_second * guess * PACKED_SECONDS)))
        eval_rows = min(len(tokens["validation"]), max(config.train.eval_batch_size,
                                                        int(alone.eval_per_second * guess * PACKED_SECONDS / 5)))
        packing = gpu_sharing.measure_packing(config, tokens, runner.execution, runs,
                                              (alone.train_per_second, alone.eval_per_second), train_rows, eval_rows,
                                              threads=max(1, (os.cpu_count() or 1) // runs))
        gpu_sharing.record_packing(cache, key, gpu, packing)
        log.info("%s", packing.text())
    if packing is None:
        return rates, runs, f"{concurrency.reason()}; rates of one run alone (no packed calibration yet)"
    scaled = {k: dataclasses.replace(r, train_per_second=r.train_per_second * packing.train_share,
                                     eval_per_second=r.eval_per_second * packing.eval_share) for k, r in rates.items()}
    return scaled, runs, f"{concurrency.reason()}; {packing.text()}"
