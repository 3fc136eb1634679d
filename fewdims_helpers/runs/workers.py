"""The runner's worker processes: a pool kept between calls, and the runs queued behind a call.

Spawned processes each run one training at a time with ``threads`` torch threads. A worker's start
(imports, model load) costs seconds and it keeps caches (the pretrained model, subspace bases), so
a ``WorkerPool`` is started once per ``Runner`` and reused by its later calls. Runs queued with
``background`` keep training after a call returns; a later call over them waits for them.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from typing import Any, Callable

import torch

from ..model.subspace import default_cache_bytes, set_basis_cache
from ..execution import Execution


def default_workers(execution: Execution) -> int:
    """Parallel runs for ``workers="auto"`` on a CPU: one per core up to 4. On a GPU the count depends on
    the runs' footprint and the GPU's free memory, so the runner chooses it for its runs
    (``gpu_sharing.choose_for``, ``Runner.workers``); without runs to size it by, one.

    On the 2-core reference machine, two 1-thread processes train 1.25-1.3x more samples per
    second than one 2-thread process (small matrices parallelise poorly within one run)."""
    if execution.kind != "cpu":
        return 1
    return max(1, min(4, os.cpu_count() or 1))


def worker_count(workers: int | str, execution: Execution) -> int:
    return default_workers(execution) if workers == "auto" else int(workers)


PARENT_CHECK_SECONDS = 2.0


def exit_with_parent(parent: int, every: float = PARENT_CHECK_SECONDS) -> threading.Thread:
    """A daemon thread that ends this process when its parent ``parent`` is gone (the process is then
    re-parented): a killed notebook or ``run_all.py`` leaves no worker training on. The run in flight is
    lost; its temporary folder is swept by the run's next writer (``paths.remove_stale_temporaries``)."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every)
        os._exit(1)
    thread = threading.Thread(target=watch, name="exit-with-parent", daemon=True)
    thread.start()
    return thread


def initialize_worker(threads: int, workers: int, parent: int | None = None) -> None:
    """Set up one worker process: its threads, its share of the basis cache, quiet logs, and an exit when
    ``parent``, the process that started it, dies (its pid is passed in: it may be gone before this runs)."""
    exit_with_parent(os.getppid() if parent is None else parent)
    # an interrupt reaches the notebook, which drops the queued runs; a run in flight finishes and is stored
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(threads)
    set_basis_cache(default_cache_bytes(workers))  # the workers share the memory kept for subspace bases
    logging.getLogger("fewdims_helpers").setLevel(logging.WARNING)


class WorkerPool:
    """``size`` spawned processes computing with ``execution`` (its ``threads`` each), and the futures queued
    behind a call."""

    def __init__(self, size: int, execution: Execution):
        self.size, self.execution = size, execution
        self.pending: dict[str, Future] = {}  # run id -> future of a run queued by an earlier call's background
        self._executor: ProcessPoolExecutor | None = None

    def executor(self) -> ProcessPoolExecutor:
        broken = self._executor is not None and (getattr(self._executor, "_broken", False)
                                                 or getattr(self._executor, "_shutdown_thread", False))
        if self._executor is None or broken:
            context = multiprocessing.get_context("spawn")
            self._executor = ProcessPoolExecutor(self.size, mp_context=context, initializer=initialize_worker,
                                                 initargs=(self.execution.threads, self.size, os.getpid()))
        return self._executor

    def submit(self, function: Callable, *args, **kwargs) -> Future:
        return self.executor().submit(function, *args, **kwargs)

    def submit_runs(self, function: Callable, root: str, options: Any, configs: list) -> list[Future]:
        """``function(root, options, config)`` for each config, in order (the runner's runs)."""
        return [self.submit(function, root, options, config) for config in configs]

    @staticmethod
    def live(future: Future) -> bool:
        return not future.cancelled()

    @staticmethod
    def results(futures: list[Future]) -> list:
        return [future.result() for future in futures]

    def wait(self, futures: list[Future], bar, each: Callable[[Any], None] | None = None) -> None:
        """Wait for ``futures`` as they complete, re-raising a worker's error here. On an error or an
        interrupt, the work not started is dropped (background runs included); finished work stays stored."""
        try:
            for future in as_completed(futures):
                result = future.result()
                if each is not None:
                    each(result)
                bar.update()
        except BaseException:
            for future in [*futures, *self.pending.values()]:
                future.cancel()
            raise

    def shutdown(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
