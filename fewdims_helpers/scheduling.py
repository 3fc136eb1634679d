"""Scheduling runs over workers: the store's pool of worker processes (or Ray tasks), the runs queued in
the background between calls, the order runs are handed out (longest first, subspaces together),
``map`` for analyses of stored runs, and ``map_jobs`` for analyses that write their results to disk
on one thread each."""
from __future__ import annotations

import logging
import os
from functools import partial
from typing import TYPE_CHECKING, Any, Callable, Iterable

import pandas as pd
import torch
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from .config import RunConfig
from .data import TokenizedSplit
from .gpu_sharing import choose_for
from .models import pretrained_encoder
from .options import RunOptions
from .subspace import basis_affinity
from .workers import WorkerPool, worker_count

if TYPE_CHECKING:  # annotations only: the store imports this module
    from .store import RunStore

log = logging.getLogger(__name__)


def progress_bar(total: int, desc: str, enabled: bool = True) -> tqdm:
    """A ``tqdm.auto`` bar over ``total`` items: a widget in JupyterLab, text on a terminal. None is drawn
    when progress is off or there is nothing to count (no empty "runs: 0it" bar)."""
    return tqdm(total=total, desc=desc, disable=not enabled or total == 0)


class RunScheduling:
    """``RunStore``'s workers and queue (a mixin: it uses the store's ``options``, ``root``, ``_pool``,
    ``tokens``, ``is_complete``, ``set_aside``, ``execute``, ``sweep`` and ``collect``; on a GPU it keeps the
    concurrency it chose as ``_gpu_concurrency``)."""

    @classmethod
    def _execute_in_worker(cls, root: str, options: RunOptions, config: RunConfig) -> dict:
        return cls(root, options).execute(config, progress=False)

    def workers(self, configs: Iterable[RunConfig] = ()) -> int:
        """Parallel runs: ``options.workers``; "auto" on a GPU: as many as its free memory holds at the
        footprint of ``configs``' recipes, at most one per core (``gpu_sharing.choose_for``), chosen at the first
        call with runs to size and kept for this store's later calls (its pool keeps its size)."""
        if self.options.backend == "ray":
            return self._worker_pool(0).size  # the runs the cluster holds at once
        if self.options.workers == "auto" and self.options.torch_device().type == "cuda":
            chosen = getattr(self, "_gpu_concurrency", None)
            configs = list(configs)
            if chosen is None and configs:
                chosen = self._gpu_concurrency = choose_for(configs, self.options.sources.cache)
            return chosen.runs if chosen is not None else 1
        return worker_count(self.options.workers, self.options.device)

    def _worker_pool(self, size: int) -> WorkerPool:
        if self.options.backend == "ray":  # one RayPool per store, whatever the cluster's size
            if self._pool is None:
                from .ray_backend import RayPool  # ray is an optional dependency (requirements-ray.txt)
                self._pool = RayPool(self.options)
            return self._pool
        if self._pool is None or self._pool.size != size:
            if self._pool is not None:
                self._pool.shutdown()
            self._pool = WorkerPool(size, max(1, (os.cpu_count() or 1) // size))
        return self._pool

    def execute_all(self, configs: Iterable[RunConfig], background: Iterable[RunConfig] = ()) -> pd.DataFrame:
        """Run (or read) every config and return ``collect`` over them, in the order given.

        With more than one worker the missing runs are spread over that many processes (kept for the
        next call), longest first; finished runs are stored as they complete, so an interruption
        loses only the runs in flight. ``background``: runs to queue behind these and leave training
        when this call returns, e.g. while the notebook analyses; a later call over them waits for
        them instead of starting them again. With one worker they are not started here. With
        ``options.backend == "ray"`` the missing runs are Ray tasks (``ray_backend.RayPool``)."""
        configs, force = list(dict.fromkeys(configs)), self.options.force
        self.sweep()
        todo = [c for c in configs if force or not self.is_complete(c)]
        pool, waiting = self._pool, set(todo)
        queued = {c: pool.pending.pop(c.run_id, None) for c in configs} if pool is not None else {}  # by an earlier call
        pending = {c: future for c, future in queued.items() if c in waiting and future is not None
                   and pool.live(future)}
        fresh = [c for c in todo if c not in pending]
        later = [c for c in dict.fromkeys(background) if c not in waiting and (force or not self.is_complete(c))
                 and not (pool is not None and c.run_id in pool.pending)]
        for config in dict.fromkeys(todo + later):
            self.set_aside(config)  # a corrupt run: here, so that its one line reaches the terminal, not a worker's
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
            self.root.mkdir(parents=True, exist_ok=True)  # Ray workers check that they see it
            root, later = str(self.root.resolve()), self.schedule(later)
            futures = list(pending.values()) + pool.submit_runs(self._execute_in_worker, root, self.options,
                                                                self.schedule(fresh))
            pool.pending.update(zip([c.run_id for c in later],
                                    pool.submit_runs(self._execute_in_worker, root, self.options, later)))
            pool.wait(futures, bar, lambda m: log.info("%s: test %s = %.4f", m["run_id"], m["main_metric"],
                                                       m["test"][m["main_metric"]]))
            self.sweep()  # a worker lost mid-run (a dead node) leaves its temporary; its retry wrote the run
        bar.close()
        return self.collect(configs)

    def map(self, function: Callable[[Any], Any], items: Iterable, desc: str = "") -> list:
        """``[function(item) for item in items]``, in the order given, spread over this store's worker
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

    def schedule(self, configs: list[RunConfig]) -> list[RunConfig]:
        """The order to hand runs to parallel workers: longest first (so no worker is left with a long run
        at the end while the others idle), runs in one subspace adjacent (so a worker reuses its bases),
        the most expensive subspace first."""
        costs = {c: expected_cost(c, self.tokens(c), pretrained_encoder(c.model.model).config.num_hidden_layers)
                 for c in configs}
        groups: dict[tuple, float] = {}
        for config, cost in costs.items():
            groups[basis_affinity(config)] = groups.get(basis_affinity(config), 0.0) + cost
        return sorted(configs, key=lambda c: (-groups[basis_affinity(c)], basis_affinity(c), -costs[c]))


def expected_cost(config: RunConfig, tokens: dict[str, TokenizedSplit], layers: int) -> float:
    """Relative cost of a run, for scheduling only: the tokens it trains on (a step costs about three
    forward passes) and evaluates, times the share of the ``layers`` encoder layers it computes. A
    frozen encoder runs once per split, so such a run is nearly free."""
    if config.model.freeze_pretrained:
        return 0.0
    hp, total = config.train, {name: float(split.lengths.sum()) for name, split in tokens.items()}
    work = (3 * total["train"] + total["validation"]) * hp.epochs + total["test"]
    work += sum(total[split] for split in config.save_features if split != "test")
    return work * min(config.model.layer or layers, layers) / layers


def on_one_thread(function, job: tuple) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):  # numpy's BLAS (PCA, scikit-learn's L-BFGS)
            function(*job)
    finally:
        torch.set_num_threads(threads)


def map_jobs(store: "RunStore", function, jobs: list[tuple], desc: str, one_thread: bool = False) -> None:
    """``function(*job)`` for every job (results go to disk), here (on one thread if ``one_thread``) or
    in the run store's kept pool of one-thread worker processes (``RunStore.map``). The
    probes' small matrices run faster on one thread: on the 2-core reference machine, while another
    process shared the cores, two threads made the batched Newton fits 2-80x and numpy's eigh and
    scikit-learn's fits 4-10x slower; and the run store found two one-thread processes faster than one
    two-thread process."""
    if store.workers() > 1 and len(jobs) > 1:
        store.map(partial(on_one_thread, function), jobs, desc=desc)
        return
    bar = progress_bar(len(jobs), desc, store.options.progress)
    for job in jobs:
        if one_thread:
            on_one_thread(function, job)
        else:
            function(*job)
        bar.update()
    bar.close()
