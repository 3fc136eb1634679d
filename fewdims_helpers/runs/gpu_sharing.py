"""How many runs share one GPU: from its free memory, a run's footprint and the host's cores (issue 29).

One small run leaves most of a GPU idle: its step is a few milliseconds of kernels and the host's
Python between them, so several runs in separate processes on one GPU train several times the samples
per second of one (four MiniLM-shaped runs 5.5x on an H200, ``benchmarks/results/gpu_check.csv``).
``workers="auto"`` on CUDA therefore starts as many worker processes as

- the GPU's free memory holds (``torch.cuda.mem_get_info``), each run taking its footprint times
  ``FOOTPRINT_MARGIN`` plus a process's CUDA context (``CUDA_CONTEXT_BYTES``), within ``HEADROOM`` of it;
- the host has cores (each process feeds its GPU work from one core).

A run's footprint is measured where the plan calibrated it (``torch.cuda.max_memory_allocated`` over a
calibration run of its recipe, kept per GPU under the cache folder: ``record_footprint``), else estimated
from its model's parameters and its batch (``estimated_run_bytes``). ``gpu_concurrency`` and
``estimated_run_bytes`` are pure functions of numbers.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from ..config import content_key

log = logging.getLogger(__name__)

GIB = 2 ** 30
CUDA_CONTEXT_BYTES = 600 * 2 ** 20  # per process: the CUDA context, its kernels and cuBLAS's workspace
HEADROOM = 0.9  # the share of the GPU's free memory the runs may take
FOOTPRINT_MARGIN = 1.25  # on a run's measured peak: the allocator's fragmentation, a longer batch than measured


@dataclass(frozen=True)
class Concurrency:
    """How many runs share the GPU, and why (for the log and the plan)."""
    runs: int
    free_bytes: int
    run_bytes: int
    cores: int
    measured: bool  # the footprint was measured (else estimated)

    def reason(self) -> str:
        limit = "cores" if self.by_memory() >= self.cores else "memory"
        return (f"{self.runs} run(s) share the GPU: {self.free_bytes / GIB:.1f} GiB free, "
                f"{self.run_bytes / GIB:.2f} GiB per run ({'measured' if self.measured else 'estimated'}) "
                f"x {FOOTPRINT_MARGIN} + {CUDA_CONTEXT_BYTES / GIB:.2f} GiB of CUDA context, {self.cores} cores; "
                f"limited by {limit}")

    def by_memory(self) -> int:
        return memory_limit(self.free_bytes, self.run_bytes)


def memory_limit(free_bytes: float, run_bytes: float, context_bytes: float = CUDA_CONTEXT_BYTES,
                 headroom: float = HEADROOM, margin: float = FOOTPRINT_MARGIN) -> int:
    """Runs of ``run_bytes`` each (and a process's context) that ``headroom`` of ``free_bytes`` holds."""
    return int(free_bytes * headroom // (run_bytes * margin + context_bytes))


def gpu_concurrency(free_bytes: float, run_bytes: float, cores: int, context_bytes: float = CUDA_CONTEXT_BYTES,
                    headroom: float = HEADROOM, margin: float = FOOTPRINT_MARGIN) -> int:
    """Runs to train at once on one GPU with ``free_bytes`` free: as many as its memory holds at ``run_bytes``
    per run (``memory_limit``), at most one per core, and at least one (a run too big for the free memory
    is tried alone, and fails there with torch's out-of-memory error)."""
    return max(1, min(memory_limit(free_bytes, run_bytes, context_bytes, headroom, margin), max(1, cores)))


def estimated_run_bytes(parameters: int, trainable: int, batch: int, tokens: int, hidden: int, layers: int,
                        heads: int, bf16: bool, eval_batch: int = 0) -> int:
    """An upper estimate of one fine-tuning's GPU memory, without a measurement:
    - fp32 weights, and autocast's bf16 copies of them;
    - per trainable parameter its gradient, AdamW's two moments and the kept best checkpoint (4 x 4 bytes);
    - training activations at ``batch`` x ``tokens`` (every example at the sequence length): per layer and
      token 34 x hidden bytes in 16-bit plus 5 x heads x tokens for attention scores (Korthikanti et al. 2022,
      eq. 1), twice that in fp32;
    - one layer's transient activations of a validation batch of ``eval_batch`` (no gradients kept)."""
    width = 1 if bf16 else 2
    weights = 4 * parameters + (2 * parameters if bf16 else 0)
    optimizer = 16 * trainable
    activations = layers * batch * tokens * (34 * hidden + 5 * heads * tokens) * width
    evaluation = eval_batch * tokens * (12 * hidden + 2 * heads * tokens) * width
    return int(weights + optimizer + activations + evaluation)


def model_run_bytes(config) -> int:
    """``estimated_run_bytes`` for a ``RunConfig``: its model's sizes (the shared pretrained encoder, read
    once per process), its batch and sequence length, every parameter trainable (an upper bound)."""
    from ..model.pretrained import pretrained_encoder
    from ..training.device_step import NEAR_CHIP_EVAL_BATCH

    encoder = pretrained_encoder(config.model.model)
    model = encoder.config
    parameters = sum(p.numel() for p in encoder.parameters())
    return estimated_run_bytes(parameters, parameters, config.train.batch_size, config.data.max_seq_length,
                               model.hidden_size, model.num_hidden_layers, model.num_attention_heads,
                               config.train.precision != "fp32",
                               max(config.train.eval_batch_size, NEAR_CHIP_EVAL_BATCH))


# ----------------------------------------------------------------------------- measured footprints
def footprint_path(cache_dir: str | Path, key: tuple, gpu: str) -> Path:
    """Where the measured footprint of runs with ``key`` (``config.rate_key``) on ``gpu`` is kept."""
    digest = content_key(json.dumps({"key": key, "gpu": gpu}, default=str).encode())  # keys in this order
    return Path(cache_dir) / "calibration" / f"footprint-{digest}.json"


def record_footprint(cache_dir: str | Path, key: tuple, gpu: str, peak_bytes: int) -> None:
    from ..paths import write_atomically

    path = footprint_path(cache_dir, key, gpu)
    payload = {"peak_bytes": int(peak_bytes), "key": [str(k) for k in key], "gpu": gpu}
    write_atomically(path, lambda tmp: tmp.write_text(json.dumps(payload) + "\n"))


def measured_footprint(cache_dir: str | Path, key: tuple, gpu: str) -> int | None:
    path = footprint_path(cache_dir, key, gpu)
    return json.loads(path.read_text())["peak_bytes"] if path.exists() else None


def run_footprint(config, cache_dir: str | Path, gpu: str) -> tuple[int, bool]:
    """(bytes, measured) of one run of ``config``: the plan's measurement of its recipe on ``gpu``, else the
    estimate."""
    from ..config import rate_key

    measured = measured_footprint(cache_dir, rate_key(config), gpu)
    return (measured, True) if measured is not None else (model_run_bytes(config), False)


def choose(run_bytes: int, measured: bool, cores: int | None = None) -> Concurrency:
    """The concurrency on this process's CUDA device for runs of ``run_bytes``, from its free memory now."""
    import torch

    free, _ = torch.cuda.mem_get_info()
    cores = (os.cpu_count() or 1) if cores is None else cores
    chosen = Concurrency(gpu_concurrency(free, run_bytes, cores), int(free), int(run_bytes), cores, measured)
    log.info("%s", chosen.reason())
    return chosen


def choose_for(configs, cache_dir: str | Path) -> Concurrency:
    """The concurrency for ``configs`` (the largest footprint among their recipes decides)."""
    import torch

    from ..config import rate_key

    gpu = torch.cuda.get_device_name()
    footprints = [run_footprint(config, cache_dir, gpu) for config in {rate_key(c): c for c in configs}.values()]
    run_bytes, measured = max(footprints)
    return choose(run_bytes, measured)


# ----------------------------------------------------------------------------- rates with runs packed
@dataclass(frozen=True)
class Packing:
    """One run's speed while ``runs`` runs of its recipe train at once on the GPU, as a share of its speed
    alone (train and evaluation examples per second): what the plan's rates are scaled by."""
    runs: int
    train_share: float
    eval_share: float

    def text(self) -> str:
        return (f"rates calibrated with {self.runs} runs at once: each trains at {self.train_share:.2f} of its speed "
                f"alone, {self.runs * self.train_share:.1f}x one run's throughput")


def packing_path(cache_dir: str | Path, key: tuple, gpu: str, runs: int) -> Path:
    digest = content_key(json.dumps({"key": key, "gpu": gpu, "runs": runs}, default=str).encode())  # keys in this order
    return Path(cache_dir) / "calibration" / f"packing-{digest}.json"


def cached_packing(cache_dir: str | Path, key: tuple, gpu: str, runs: int) -> Packing | None:
    path = packing_path(cache_dir, key, gpu, runs)
    if not path.exists():
        return None
    stored = json.loads(path.read_text())
    return Packing(runs, stored["train_share"], stored["eval_share"])


def record_packing(cache_dir: str | Path, key: tuple, gpu: str, packing: Packing) -> None:
    from ..paths import write_atomically

    payload = {"train_share": packing.train_share, "eval_share": packing.eval_share, "runs": packing.runs,
               "key": [str(k) for k in key], "gpu": gpu}
    write_atomically(packing_path(cache_dir, key, gpu, packing.runs),
                     lambda tmp: tmp.write_text(json.dumps(payload) + "\n"))


def _packed_run(config, tokens: dict, execution, threads: int, barrier, queue) -> None:
    """One of the packed processes: a warm-up on one batch, then (all together) a timed fine-tuning on
    ``tokens``; puts (train, eval) examples per second, or the error's text, on ``queue``."""
    import dataclasses

    import torch

    from ..training.loop import build_model, train

    try:
        torch.set_num_threads(threads)
        model = build_model(config)
        batch = config.train.batch_size
        warm = {split: _head(tokens[split], batch) for split in tokens}
        one_epoch = dataclasses.replace(config, train=dataclasses.replace(config.train, epochs=1, eval_every=0,
                                                                          patience=0))
        train(one_epoch, warm, device=execution, progress=False, model=model)
        barrier.wait()
        history = train(one_epoch, tokens, device=execution, progress=False, model=model).history
        queue.put((len(tokens["train"]) / max(sum(h["train_seconds"] for h in history), 1e-6),
                   len(tokens["validation"]) / max(history[-1]["validation_seconds"], 1e-6)))
    except BaseException as error:  # noqa: BLE001 (reported to the parent, which raises it)
        barrier.abort()
        queue.put(f"{type(error).__name__}: {error}")


def _head(split, rows: int):
    from ..data.tokenized import TokenizedSplit

    keep = slice(0, min(rows, len(split)))
    return TokenizedSplit(split.input_ids[keep], split.token_type_ids[keep], split.lengths[keep], split.labels[keep],
                          split.idx[keep])


def measure_packing(config, tokens: dict, execution, runs: int, alone: tuple[float, float],
                    train_rows: int, eval_rows: int, threads: int = 1, timeout: float = 600.0) -> Packing:
    """``runs`` spawned processes train ``config`` at once (with ``execution``, the driver's ``Execution``) on the
    first ``train_rows`` and ``eval_rows`` rows
    of its splits, started together after a warm-up; their mean rates against ``alone`` (train, eval rates
    of one run by itself) give the ``Packing``."""
    import multiprocessing

    sample = {"train": _head(tokens["train"], train_rows), "validation": _head(tokens["validation"], eval_rows)}
    sample["test"] = sample["validation"]
    context = multiprocessing.get_context("spawn")
    barrier, queue = context.Barrier(runs), context.Queue()
    processes = [context.Process(target=_packed_run, args=(config, sample, execution, threads, barrier, queue),
                                 daemon=True) for _ in range(runs)]
    for process in processes:
        process.start()
    try:
        results = [queue.get(timeout=timeout) for _ in processes]
    finally:
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
    errors = [r for r in results if isinstance(r, str)]
    if errors:
        raise RuntimeError(f"a packed calibration run failed: {errors[0]}")
    train_rate = sum(r[0] for r in results) / runs
    eval_rate = sum(r[1] for r in results) / runs
    return Packing(runs, train_rate / alone[0], eval_rate / alone[1])
