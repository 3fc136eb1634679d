"""Runs as Ray tasks: the runner's backend for many GPUs or machines (``RunOptions(backend="ray")``).

A run is a pure function of its config that writes into its own folder, so each missing run becomes
one Ray core task and its result comes back through the shared store (the task returns only the
metrics). ``RayPool`` has the local ``WorkerPool``'s interface, so ``Runner.execute_all`` and
``Runner.map`` keep their duties unchanged: finished runs are skipped before anything is submitted,
runs are submitted longest first, ``background`` runs stay queued as ``ObjectRef``s between calls,
and an error or an interrupt cancels what is left with ``ray.cancel``.

- A run asks for ``gpus_per_run`` GPUs (default: one where the cluster has GPUs; a fraction packs
  several runs onto one GPU) or, on CPUs, one CPU; it trains with one torch thread per CPU it holds
  (Ray sets ``OMP_NUM_THREADS`` from its request, so the threads are set here, as the local pool does).
- A task whose worker process or node dies is retried (``MAX_RETRIES``); a Python error is not
  (``retry_exceptions=False``) and reaches the caller as its original type, naming the run.
- A run that reads other runs (``init_from``, an intrinsic subspace's ``sources``) gets their
  ``ObjectRef``s as arguments, so Ray starts it only after they are stored.
- Every node must see the store, the cache, the model and the data at the same paths (a shared
  filesystem); a task that does not says which path is missing on which host.
"""
from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any, Callable, Iterable

import ray
import torch
from ray.exceptions import RayTaskError

from ..config import RunConfig
from ..model.subspace import default_cache_bytes, set_basis_cache
from ..options import RunOptions
from ..paths import HOST

log = logging.getLogger(__name__)

MAX_RETRIES = 3  # attempts after a worker process or node dies
RAY_ENVIRONMENT = {"RAY_USAGE_STATS_ENABLED": "0"}


def connect(options: RunOptions) -> None:
    """Join the cluster at ``options.ray_address`` ('auto': the one ``ray start`` made on this machine),
    or start a private Ray on this machine when it is None; nothing when Ray is already initialised."""
    if ray.is_initialized():
        return
    for name, value in RAY_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    if options.ray_address is None:
        ray.init(address="local", include_dashboard=False, logging_level=logging.WARNING,
                 _node_ip_address="127.0.0.1")  # a private Ray listens on loopback only
    else:
        ray.init(address=options.ray_address, logging_level=logging.WARNING)
    log.info("ray: %s", ", ".join(f"{name} {value:g}" for name, value in sorted(ray.cluster_resources().items())
                                 if name in ("CPU", "GPU")))


def run_resources(options: RunOptions) -> dict[str, float]:
    """What one run asks Ray for: ``gpus_per_run`` GPUs and no CPU of its own, else one CPU (no GPU)."""
    gpus = options.gpus_per_run
    if gpus is None:
        gpus = 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
    return {"num_cpus": 0.0 if gpus else 1.0, "num_gpus": gpus}


def reads_runs(config: RunConfig) -> tuple[str, ...]:
    """Run ids whose stored files ``config`` reads: its ``init_from``, its subspace's ``sources`` and the
    subspace run that names its zeroed coordinates."""
    sources = config.subspace.sources if config.subspace is not None else ()
    zeroing = config.zeroed.source if config.zeroed is not None else None
    return tuple(run_id for run_id in (config.init_from, *sources, zeroing) if run_id is not None)


def sources_first(configs: list[RunConfig]) -> list[RunConfig]:
    """``configs`` in their order, except that a run comes after the runs of the list it reads."""
    by_id, placed, ordered = {c.run_id: c for c in configs}, set(), []

    def place(config: RunConfig) -> None:
        for run_id in reads_runs(config):
            if run_id in by_id and run_id not in placed:
                place(by_id[run_id])
        if config.run_id not in placed:
            placed.add(config.run_id)
            ordered.append(config)
    for config in configs:
        place(config)
    return ordered


def missing_paths(root: str, options: RunOptions) -> list[str]:
    """The store, cache and GLUE folders this node does not see (they must be on a shared filesystem)."""
    wanted = {"store": root, "cache": options.sources.cache_dir, "GLUE folder": options.sources.glue_dir}
    return [f"{what} {path}" for what, path in wanted.items() if path is not None and not Path(path).is_dir()]


def _run_in_task(threads: int, root: str | None, options: RunOptions, function: Callable, args: tuple,
                 *sources: Any) -> Any:
    """One task on a Ray worker: ``function(*args)`` with ``threads`` torch threads. ``sources`` are the
    results of the runs this one reads; Ray passes them only once they exist, which is all they are for."""
    if root is not None and (missing := missing_paths(root, options)):
        raise FileNotFoundError(f"host {HOST} does not see the {', '.join(missing)}; every Ray node needs the "
                                f"store, cache, model and data at the same paths (a shared filesystem)")
    torch.set_num_threads(threads)
    set_basis_cache(default_cache_bytes(max(1, (os.cpu_count() or 1) // threads)))
    logging.getLogger("fewdims_helpers").setLevel(logging.WARNING)
    return function(*args)


class RayPool:
    """Runs and analyses as Ray tasks, with the ``ObjectRef``s of runs queued behind a call (``pending``)."""

    def __init__(self, options: RunOptions):
        connect(options)
        self.options = options
        self.pending: dict[str, ray.ObjectRef] = {}  # run id -> ref of a run queued by an earlier call's background
        self._in_flight: dict[str, ray.ObjectRef] = {}  # run id -> ref, for the runs that read it
        self._labels: dict[ray.ObjectRef, str] = {}  # ref -> what it computes, for error messages
        self._task = ray.remote(_run_in_task)

    @property
    def size(self) -> int:
        """Runs the cluster holds at once (its GPUs over ``gpus_per_run``, or its CPUs)."""
        resources, request = ray.cluster_resources(), run_resources(self.options)
        if request["num_gpus"]:
            return max(1, math.floor(resources.get("GPU", 0) / request["num_gpus"]))
        return max(1, int(resources.get("CPU", 1)))

    @staticmethod
    def live(ref: ray.ObjectRef) -> bool:
        return True  # cancelled refs are dropped from ``pending`` when they are cancelled

    def submit(self, function: Callable, *args: Any) -> ray.ObjectRef:
        """``function(*args)`` as a one-CPU task (analyses of stored runs)."""
        ref = self._task.options(num_cpus=1, max_retries=MAX_RETRIES, retry_exceptions=False).remote(
            1, None, self.options, function, args)
        self._labels[ref] = getattr(function, "__name__", "task")
        return ref

    def submit_runs(self, function: Callable, root: str, options: RunOptions,
                    configs: list[RunConfig]) -> list[ray.ObjectRef]:
        """``function(root, options, config)`` for each config, in order, as tasks asking for
        ``run_resources``; a run reading a run of this or an earlier call waits for it."""
        request = run_resources(options)
        threads = max(1, int(request["num_cpus"]))
        for config in sources_first(configs):
            after = [self._in_flight[run_id] for run_id in reads_runs(config) if run_id in self._in_flight]
            ref = self._task.options(**request, max_retries=MAX_RETRIES, retry_exceptions=False,
                                     name=config.run_id).remote(threads, root, options, function,
                                                                (root, options, config), *after)
            self._in_flight[config.run_id], self._labels[ref] = ref, f"run {config.run_id}"
        return [self._in_flight[config.run_id] for config in configs]

    def wait(self, refs: list[ray.ObjectRef], bar, each: Callable[[Any], None] | None = None) -> None:
        """Wait for ``refs`` as they complete, re-raising a task's error here as its own type. On an
        error or an interrupt every task not finished (background runs included) is cancelled."""
        remaining = list(refs)
        try:
            while remaining:
                done, remaining = ray.wait(remaining, num_returns=1)
                result = self._result(done[0])
                if each is not None:
                    each(result)
                bar.update()
        except BaseException:
            self.cancel([*refs, *self.pending.values()])
            raise

    def results(self, refs: Iterable[ray.ObjectRef]) -> list:
        return [self._result(ref) for ref in refs]

    def cancel(self, refs: Iterable[ray.ObjectRef]) -> None:
        """``ray.cancel`` every task of ``refs`` still queued or running (a running one is interrupted and
        removes its temporary folder; one on a node that died leaves it, for the run's next writer or the
        store's next sweep to remove: ``paths.remove_stale_temporaries``)."""
        refs = list(dict.fromkeys(refs))
        finished, _ = ray.wait(refs, num_returns=len(refs), timeout=0) if refs else ([], [])
        for ref in set(refs) - set(finished):
            ray.cancel(ref)
        cancelled = set(refs) - set(finished)
        for table in (self.pending, self._in_flight):
            for run_id in [run_id for run_id, ref in table.items() if ref in cancelled]:
                del table[run_id]

    def shutdown(self) -> None:
        """Cancel the queued runs; Ray itself stays up for other stores of this process."""
        self.cancel(self.pending.values())

    def _result(self, ref: ray.ObjectRef) -> Any:
        try:
            return ray.get(ref)
        except RayTaskError as error:
            raise original_error(error, self._labels.get(ref, "task")) from None


def original_error(error: RayTaskError, label: str) -> BaseException:
    """The task's own exception, its message prefixed with ``label`` (the run), the remote traceback as a note."""
    cause = error.cause if isinstance(error.cause, BaseException) else error
    try:
        raised = type(cause)(f"{label}: {cause}")
    except Exception:  # an exception type whose constructor wants other arguments
        raised = cause
    raised.add_note(f"raised on a Ray worker:\n{error.traceback_str if hasattr(error, 'traceback_str') else error}")
    return raised
