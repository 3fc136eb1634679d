"""Executing runs into a store: ``Runner`` holds the worker processes (or the Ray tasks) kept between calls,
the runs queued in the background, and the one ``Execution`` (device, precision, threads) they compute
with. It takes the store; the store holds none of it. One runner per notebook:

    runner = Runner(RunStore(root), options, execution)
    frame = runner.execute_all(configs)          # run or read every config; one row per run
    runner.store.predictions(config, "test")     # reading is the store's
"""
from __future__ import annotations

import logging
import os
from functools import partial
from typing import Any, Callable, Iterable

import pandas as pd
import torch
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from ..config import RunConfig
from ..data.tokenized import TokenizedSplit
from ..execution import Execution, resolve
from ..options import RunOptions
from .execute import execute_in_worker, execute_run, run_tokens
from .gpu_sharing import Concurrency, choose_for
from .scheduling import schedule
from .store import RunStore
from .workers import WorkerPool, worker_count

log = logging.getLogger(__name__)


def progress_bar(total: int, desc: str, enabled: bool = True) -> tqdm:
    """A ``tqdm.auto`` bar over ``total`` items: a widget in JupyterLab, text on a terminal. None is drawn
    when progress is off or there is nothing to count (no empty "runs: 0it" bar)."""
    return tqdm(total=total, desc=desc, disable=not enabled or total == 0)


class Runner:
    """Runs ``store``'s missing runs with ``options`` (workers, force, progress, backend, data sources) on
    ``execution`` (resolved at the edge: ``execution.resolve``; None: resolved here from ``options.device``)."""

    def __init__(self, store: RunStore, options: RunOptions | None = None, execution: Execution | None = None):
        self.store = store
        self.options = options if options is not None else RunOptions()
        self.execution = execution if execution is not None else resolve(self.options.device)
        self._pool: Any = None  # a WorkerPool, or a RayPool with backend ray
        self._gpu_concurrency: Concurrency | None = None  # chosen at the first call with runs to size (CUDA, "auto")

    def __repr__(self) -> str:
        return f"Runner({self.store!r}, {self.execution.device}, workers {self.options.workers})"

    def __getstate__(self) -> dict:  # sent to worker processes (an analysis of stored runs) without the pool
        return {"store": self.store, "options": self.options, "execution": self.execution}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["store"], state["options"], state["execution"])

    def tokens(self, config: RunConfig) -> dict[str, TokenizedSplit]:
        """The run's tokenised splits, from the options' data sources."""
        return run_tokens(config, self.options.sources)

    def execute(self, config: RunConfig, progress: bool | None = None) -> dict:
        """Metrics of the run ``config``: read from the store, or computed here and stored."""
        return execute_run(self.store, config, self.options, self.execution, progress)

    def workers(self, configs: Iterable[RunConfig] = ()) -> int:
        """Parallel runs: ``options.workers``; "auto" on a GPU: as many as its free memory holds at the
        footprint of ``configs``' recipes, at most one per core (``gpu_sharing.choose_for``), chosen at the first
        call with runs to size and kept for this runner's later calls (its pool keeps its size)."""
        if self.options.backend == "ray":
            return self._worker_pool(0).size  # the runs the cluster holds at once
        if self.options.workers == "auto" and self.execution.kind == "cuda":
            configs = list(configs)
            if self._gpu_concurrency is None and configs:
                self._gpu_concurrency = choose_for(configs, self.options.sources.cache)
            return self._gpu_concurrency.runs if self._gpu_concurrency is not None else 1
        return worker_count(self.options.workers, self.execution)

    def _worker_pool(self, size: int):
        if self.options.backend == "ray":  # one RayPool per runner, whatever the cluster's size
            if self._pool is None:
                from .ray_backend import RayPool  # ray is an optional dependency (requirements-ray.txt)
                self._pool = RayPool(self.options)
            return self._pool
        if self._pool is None or self._pool.size != size:
            if self._pool is not None:
                self._pool.shutdown()
            self._pool = WorkerPool(size, self.execution.with_threads((os.cpu_count() or 1) // size))
        return self._pool

    def _run_in_worker(self) -> Callable[[str, RunOptions, RunConfig], dict]:
        """What a worker runs for one config: this execution with the worker's threads (a Ray task on another
        node resolves its own)."""
        if self.options.backend == "ray":
            return execute_in_worker
        return partial(execute_in_worker, execution=self._pool.execution)

    def execute_all(self, configs: Iterable[RunConfig], background: Iterable[RunConfig] = ()) -> pd.DataFrame:
        """Run (or read) every config and return ``RunStore.collect`` over them, in the order given.

        With more than one worker the missing runs are spread over that many processes (kept for the
        next call), longest first; finished runs are stored as they complete, so an interruption
        loses only the runs in flight. ``background``: runs to queue behind these and leave training
        when this call returns, e.g. while the notebook analyses; a later call over them waits for
        them instead of starting them again. With one worker they are not started here. With
        ``options.backend == "ray"`` the missing runs are Ray tasks (``ray_backend.RayPool``)."""
        store, configs, force = self.store, list(dict.fromkeys(configs)), self.options.force
        store.sweep()
        todo = [c for c in configs if force or not store.is_complete(c)]
        pool, waiting = self._pool, set(todo)
        queued = {c: pool.pending.pop(c.run_id, None) for c in configs} if pool is not None else {}  # by an earlier call
        pending = {c: future for c, future in queued.items() if c in waiting and future is not None
                   and pool.live(future)}
        fresh = [c for c in todo if c not in pending]
        later = [c for c in dict.fromkeys(background) if c not in waiting and (force or not store.is_complete(c))
                 and not (pool is not None and c.run_id in pool.pending)]
        for config in dict.fromkeys(todo + later):
            store.set_aside(config)  # a corrupt run: here, so that its one line reaches the terminal, not a worker's
        on_ray = self.options.backend == "ray"  # even one run goes to the cluster (its GPUs); none: Ray not started
        size = self.workers([*fresh, *later, *pending]) if not on_ray or fresh or pending or later else 1
        parallel = (size > 1 or on_ray) and (len(fresh) > (0 if on_ray else 1) or pending or later)
        log.info("%d runs: %d in the store, %d to compute with %d worker(s)%s%s", len(configs), len(configs) - len(todo),
                 len(todo), size if parallel else 1, f" ({len(pending)} started earlier)" if pending else "",
                 f"; {len(later)} more queued behind them" if parallel and later else "")
        for config in dict.fromkeys(fresh + later):
            self.tokens(config)  # tokenise once here, not once per worker
        bar = progress_bar(len(todo), "runs", self.options.progress)
        if not parallel:
            for config in fresh:
                self.execute(config)
                bar.update()
        else:
            pool = self._worker_pool(size)
            store.root.mkdir(parents=True, exist_ok=True)  # Ray workers check that they see it
            root, later, run = str(store.root.resolve()), schedule(later, self.tokens), self._run_in_worker()
            futures = list(pending.values()) + pool.submit_runs(run, root, self.options, schedule(fresh, self.tokens))
            pool.pending.update(zip([c.run_id for c in later], pool.submit_runs(run, root, self.options, later)))
            pool.wait(futures, bar, lambda m: log.info("%s: test %s = %.4f", m["run_id"], m["main_metric"],
                                                       m["test"][m["main_metric"]]))
            store.sweep()  # a worker lost mid-run (a dead node) leaves its temporary; its retry wrote the run
        bar.close()
        return store.collect(configs)

    def map(self, function: Callable[[Any], Any], items: Iterable, desc: str = "") -> list:
        """``[function(item) for item in items]``, in the order given, spread over this runner's worker
        processes when there is more than one. For analyses of stored runs: they queue behind the runs
        left in the background, and use the bases the workers keep. ``function`` must be picklable (a
        module-level function or a ``functools.partial`` of one)."""
        items, size = list(items), self.workers()
        bar = progress_bar(len(items), desc, self.options.progress)
        if size <= 1 and self.options.backend != "ray":
            results = []
            for item in items:
                results.append(function(item))
                bar.update()
        else:
            pool = self._worker_pool(size)
            futures = [pool.submit(function, item) for item in items]
            pool.wait(futures, bar)
            results = pool.results(futures)
        bar.close()
        return results

    def close(self) -> None:
        """Stop the worker processes (the runs queued behind a call are dropped; finished runs stay stored)."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


def on_one_thread(function, job: tuple) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):  # numpy's BLAS (PCA, scikit-learn's L-BFGS)
            function(*job)
    finally:
        torch.set_num_threads(threads)


def map_jobs(runner: Runner, function, jobs: list[tuple], desc: str, one_thread: bool = False) -> None:
    """``function(*job)`` for every job (results go to disk), here (on one thread if ``one_thread``) or
    in the runner's kept pool of one-thread worker processes (``Runner.map``). The
    probes' small matrices run faster on one thread: on the 2-core reference machine, while another
    process shared the cores, two threads made the batched Newton fits 2-80x and numpy's eigh and
    scikit-learn's fits 4-10x slower; and the run store found two one-thread processes faster than one
    two-thread process."""
    if runner.workers() > 1 and len(jobs) > 1:
        runner.map(partial(on_one_thread, function), jobs, desc=desc)
        return
    bar = progress_bar(len(jobs), desc, runner.options.progress)
    for job in jobs:
        if one_thread:
            on_one_thread(function, job)
        else:
            function(*job)
        bar.update()
    bar.close()
