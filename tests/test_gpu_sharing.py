"""Many runs at once on one GPU (``gpu_sharing.py``): the concurrency chosen from free memory, a run's
footprint and the cores (pure functions, fake numbers), the run store's choice on a GPU it only pretends to
have, the plan's rates scaled by a packed calibration, and that calibration itself on a CPU."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from conftest import synthetic_split, tiny_config
from fewdims_helpers.runs import gpu_sharing
from fewdims_helpers.setup import calibration
from fewdims_helpers.runs.gpu_sharing import CUDA_CONTEXT_BYTES, FOOTPRINT_MARGIN, GIB, HEADROOM, Packing, \
    estimated_run_bytes, gpu_concurrency, memory_limit
from fewdims_helpers.execution import Execution
from fewdims_helpers.options import DataSources, RunOptions
from fewdims_helpers.config import rate_key
from fewdims_helpers.setup.calibration import Rates
from fewdims_helpers.runs.store import RunStore
from fewdims_helpers.runs.runner import Runner


def test_the_concurrency_is_what_the_free_memory_holds_at_most_one_per_core():
    per_run = 1.0 * GIB * FOOTPRINT_MARGIN + CUDA_CONTEXT_BYTES
    free = 20 * per_run / HEADROOM  # room for exactly 20 runs of 1 GiB
    assert memory_limit(free, GIB) == 20
    assert gpu_concurrency(free, GIB, cores=16) == 16  # the cores limit
    assert gpu_concurrency(free, GIB, cores=64) == 20  # the memory limit
    assert gpu_concurrency(free, 4 * GIB, cores=64) == int(free * HEADROOM // (4 * GIB * FOOTPRINT_MARGIN
                                                                              + CUDA_CONTEXT_BYTES))
    assert gpu_concurrency(2 * GIB, 40 * GIB, cores=16) == 1  # too big for the GPU: tried alone
    assert gpu_concurrency(80 * GIB, GIB, cores=0) == 1
    # an H100's 79 GiB free, a MiniLM-sized run of about 1 GiB and 16 cores: the cores decide
    assert gpu_concurrency(79 * GIB, 1 * GIB, cores=16) == 16
    # a bert-base run of about 9 GiB: memory decides
    assert gpu_concurrency(79 * GIB, 9 * GIB, cores=16) == int(79 * GIB * HEADROOM // (9 * GIB * FOOTPRINT_MARGIN
                                                                                       + CUDA_CONTEXT_BYTES)) == 6


def test_the_footprint_estimate_grows_with_the_model_the_batch_and_the_precision():
    minilm = estimated_run_bytes(22_700_000, 22_700_000, batch=16, tokens=64, hidden=384, layers=6, heads=12,
                                 bf16=True)
    bert = estimated_run_bytes(109_500_000, 109_500_000, batch=64, tokens=128, hidden=768, layers=12, heads=12,
                               bf16=True)
    weights_and_optimizer = 22_700_000 * (4 + 2 + 16)
    assert weights_and_optimizer < minilm < 1 * GIB < bert < 16 * GIB
    assert estimated_run_bytes(10, 10, 8, 16, 32, 2, 4, bf16=False) > estimated_run_bytes(10, 10, 8, 16, 32, 2, 4,
                                                                                         bf16=True) - 20
    assert estimated_run_bytes(10, 0, 8, 16, 32, 2, 4, True) < estimated_run_bytes(10, 10, 8, 16, 32, 2, 4, True)
    assert estimated_run_bytes(10, 10, 8, 16, 32, 2, 4, True, eval_batch=512) > \
        estimated_run_bytes(10, 10, 8, 16, 32, 2, 4, True)


@pytest.fixture
def pretend_gpu(monkeypatch):
    """A CUDA device as far as the choice can see: its name and its free memory (set ``free[0]``)."""
    free = [20 * GIB]
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "Pretend GPU")
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda *a: (free[0], 80 * GIB))
    monkeypatch.setattr("os.cpu_count", lambda: 16)
    return free


def test_the_runner_chooses_its_gpu_workers_once_from_the_measured_footprint(pretend_gpu, tmp_path):
    sources = DataSources(cache_dir=str(tmp_path / "cache"))
    runner = Runner(RunStore(tmp_path / "runs"), RunOptions(sources=sources, device="cuda"))
    config = tiny_config()
    assert runner.workers() == 1  # nothing to size yet
    gpu_sharing.record_footprint(sources.cache, rate_key(config), "Pretend GPU", 3 * GIB)
    expected = memory_limit(20 * GIB, 3 * GIB)
    assert 1 < expected < 16 and runner.workers([config]) == expected
    assert runner._gpu_concurrency.measured and runner._gpu_concurrency.run_bytes == 3 * GIB
    assert "measured" in runner._gpu_concurrency.reason() and "memory" in runner._gpu_concurrency.reason()
    pretend_gpu[0] = 80 * GIB
    assert runner.workers([config]) == expected  # kept: the runner's pool keeps its size
    other = Runner(RunStore(tmp_path / "runs"), RunOptions(sources=sources, device="cuda"))
    assert other.workers([dataclasses.replace(config, data=dataclasses.replace(config.data, max_seq_length=24))]) \
        == 16  # no measurement of that recipe: estimated (a tiny model), and the cores decide
    assert not other._gpu_concurrency.measured
    assert Runner(RunStore(tmp_path / "runs"), RunOptions(sources=sources, device="cuda", workers=3)).workers([config]) == 3


class FakeRunner:
    def __init__(self, cache):
        self.options = RunOptions(sources=DataSources(cache_dir=str(cache)), device="cuda")
        self.execution = Execution("cuda", True, 1)

    def tokens(self, config):
        return {"train": synthetic_split(64, 0), "validation": synthetic_split(32, 1), "test": synthetic_split(32, 2)}


def test_the_plan_on_a_gpu_scales_its_rates_by_the_packed_calibration_and_says_so(pretend_gpu, tmp_path, monkeypatch):
    config = tiny_config()
    rates = {rate_key(config): Rates(100.0, 400.0, 1.0, peak_bytes=2 * GIB)}
    measured = []

    def measure_packing(config, tokens, device, runs, alone, train_rows, eval_rows, threads=1, timeout=600.0):
        measured.append((runs, alone, train_rows, eval_rows))
        return Packing(runs, 0.25, 0.5)
    monkeypatch.setattr(gpu_sharing, "measure_packing", measure_packing)
    runner = FakeRunner(tmp_path)
    scaled, workers, text = calibration.share_gpu(rates, [config, dataclasses.replace(config, save_features=("test",))],
                                                runner, measure=True)
    assert workers == memory_limit(20 * GIB, 2 * GIB) and measured[0][:2] == (workers, (100.0, 400.0))
    assert scaled[rate_key(config)].train_per_second == 25.0 and scaled[rate_key(config)].eval_per_second == 200.0
    assert f"calibrated with {workers} runs at once" in text and "measured" in text
    again = calibration.share_gpu(rates, [config], runner, measure=False)  # the packing is cached per GPU
    assert again[0] == scaled and len(measured) == 1
    pretend_gpu[0] = 1 * GIB  # one run: nothing to pack
    alone = calibration.share_gpu(rates, [config], runner, measure=True)
    assert alone[0] == rates and alone[1] == 1 and "1 run(s) share the GPU" in alone[2]


@pytest.mark.slow  # spawns two training processes
def test_packed_runs_train_together_in_separate_processes_on_a_cpu():
    """The packed calibration itself (``measure_packing``), on a CPU: two spawned processes train the tiny
    model at once and report their rates as shares of a given speed alone."""
    config = tiny_config()
    tokens = {"train": synthetic_split(32, 0), "validation": synthetic_split(16, 1), "test": synthetic_split(16, 2)}
    packing = gpu_sharing.measure_packing(config, tokens, "cpu", 2, (1.0, 1.0), 32, 16, timeout=240)
    assert packing.runs == 2 and packing.train_share > 0 and packing.eval_share > 0
