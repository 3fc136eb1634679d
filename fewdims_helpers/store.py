"""The run store: every run in its own folder, named by its config, written atomically.

``runs/<run_id>/`` holds ``config.json`` (the full config, package versions, git commit, device,
data split), ``metrics.json`` (per-epoch validation and final test metrics) and the artifacts the
config asked for (``features-<split>.npy`` with ``labels-<split>.npy``). A run is first written to a
hidden ``.tmp-`` folder and renamed into place when complete, so a run killed at any moment leaves
no half-written result and the next invocation redoes only what is missing. Runs are pure functions
of their config, so a list of configs can be split across processes or machines unchanged.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import multiprocessing
import os
import platform
import shutil
import signal
import subprocess
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .config import RunConfig
from .data import TokenizedSplit, split_fingerprint, tokenized_task
from .paths import REPO_ROOT
from .tasks import get_task
from .freezing import encode
from .head import SequenceClassifier
from .models import pretrained_encoder
from .subspace import (TrajectoryRecorder, default_cache_bytes, materialize, reparameterize, set_basis_cache,
                       subspace_state)
from .training import (build_model, evaluate, evaluate_and_encode, predict, relative_weight_change, resolve_device,
                       total_steps, train)

log = logging.getLogger(__name__)

PACKAGES = ("torch", "transformers", "datasets", "numpy", "scikit-learn", "scipy", "pandas")


def environment() -> dict[str, Any]:
    """Package versions and git commit, recorded next to every result."""
    versions = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                                timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"versions": versions, "git_commit": commit}


def _write_json(path: Path, payload: dict) -> None:
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")


def run_dir(config: RunConfig, runs: Path) -> Path:
    return Path(runs) / config.run_id


def is_complete(config: RunConfig, runs: Path) -> bool:
    folder = run_dir(config, runs)
    needed = (["config.json", "metrics.json"] + [f"features-{split}.npy" for split in config.save_features]
              + (["model.pt"] if config.save_model else []) + (["trajectory/layer_0.npy"] if config.record_trajectory else [])
              + (["subspace.npz"] if config.subspace is not None and config.subspace.basis != "none" else []))
    return all((folder / name).exists() for name in needed)


def load_metrics(config: RunConfig, runs: Path) -> dict:
    return json.loads((run_dir(config, runs) / "metrics.json").read_text())


def execute(config: RunConfig, runs: Path, force: bool = False, device: str | None = None,
            glue_dir: str | None = None, progress: bool = True) -> dict:
    """Metrics of the run ``config``: read from the store, or computed and stored."""
    runs = Path(runs)
    final = run_dir(config, runs)
    if not force and is_complete(config, runs):
        return load_metrics(config, runs)
    for stale in runs.glob(f".tmp-{config.run_id}-*"):  # left by a killed process
        shutil.rmtree(stale, ignore_errors=True)
    tmp = runs / f".tmp-{config.run_id}-{os.getpid()}"
    tmp.mkdir(parents=True)
    try:
        spec = get_task(config.data.task)
        tokens = tokenized_task(config.data, config.model.model, glue_dir)
        cached = encode(config, tokens, device) if config.model.freeze_pretrained else {}
        model = _initial_model(config, runs)
        recorder = (TrajectoryRecorder(model, config.record_trajectory, total_steps(config, len(tokens["train"])))
                    if config.record_trajectory else None)
        result = train(config, tokens, device=device, progress=progress, model=model, cached_features=cached or None,
                       on_step=recorder)
        device_used = torch.device(result.device)
        # test metrics and, if saved, test features from one pass
        test, test_features = evaluate_and_encode(result.model, tokens["test"], spec.metric, device_used,
                                                  result.precision, config.train.eval_batch_size, cached.get("test"),
                                                  features="test" in config.save_features)
        if config.save_features and config.model.head_layers == 1:
            first = result.model.head[0].eval()  # the effective weights: selected-dims mask applied, no DropConnect
            np.savez(tmp / "head.npz", weight=first.masked_weight().detach().float().cpu().numpy(),
                     bias=first.bias.detach().float().cpu().numpy())
        for split in config.save_features:
            features = test_features if split == "test" else predict(
                result.model, tokens[split], device_used, result.precision, config.train.eval_batch_size,
                return_features=True, cached=cached.get(split))[1]
            np.save(tmp / f"features-{split}.npy", features)
            np.save(tmp / f"labels-{split}.npy", tokens[split].labels)
        if config.save_model:
            torch.save(result.model.state_dict(), tmp / "model.pt")
        if recorder is not None:
            recorder.save(tmp)
        if config.subspace is not None and config.subspace.basis != "none":
            np.savez(tmp / "subspace.npz", **subspace_state(result.model))
        moved = materialize(result.model)  # subspace layers become plain theta_0 + V theta_t (nothing else changes)
        metrics = {"run_id": config.run_id, "task": spec.name, "main_metric": spec.main_metric,
                   "best_epoch": result.best_epoch, "history": result.history,
                   "validation": result.history[result.best_epoch - 1]["validation"], "test": test,
                   "train_seconds": result.train_seconds,
                   "weight_change": relative_weight_change(moved, pretrained_encoder(config.model.model))}
        if config.init_from is not None:
            metrics["source_after"] = _evaluate_source_task(config, runs, result.model, device_used, result.precision,
                                                            glue_dir)
        _write_json(tmp / "config.json", {"run_id": config.run_id, "config": config.to_dict(),
                                          "device": result.device, "precision_used": result.precision,
                                          "dropout_rng": result.dropout_rng, "threads": torch.get_num_threads(),
                                          "split": split_fingerprint(tokens), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                          **environment()})
        _write_json(tmp / "metrics.json", metrics)  # written last: its presence marks a complete run
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("%s: test %s = %.4f (best epoch %d, %.1f s)", config.run_id, spec.main_metric,
             test[spec.main_metric], result.best_epoch, result.train_seconds)
    return metrics


def _initial_model(config: RunConfig, runs: Path) -> SequenceClassifier:
    """The model a run starts from: pretrained, or the encoder of run ``config.init_from``; its
    encoder layers put into a subspace if ``config.subspace`` says so."""
    model = build_model(config)
    if config.init_from is not None:
        source = runs / config.init_from / "model.pt"
        if not source.exists():
            raise FileNotFoundError(f"run {config.init_from} has no model.pt; run it first with save_model=True")
        state = torch.load(source, map_location="cpu", weights_only=True)
        model.encoder.load_state_dict({k.removeprefix("encoder."): v for k, v in state.items() if k.startswith("encoder.")})
    if config.subspace is not None:
        reparameterize(model, config.subspace, runs, config.train.seed)
    return model


def load_model(config: RunConfig, runs: Path) -> SequenceClassifier:
    """The kept model of a finished run with ``save_model=True`` (subspace runs: still re-parameterised)."""
    path = run_dir(config, runs) / "model.pt"
    if not path.exists():
        raise FileNotFoundError(f"run {config.run_id} has no model.pt; run it with save_model=True")
    model = _initial_model(dataclasses.replace(config, init_from=None), runs)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()


def _evaluate_source_task(config: RunConfig, runs: Path, model: SequenceClassifier, device: torch.device,
                          precision: str, glue_dir: str | None) -> dict[str, float]:
    """Test metrics of the source run's task with the source run's own head on this run's encoder:
    how much of task A survives fine-tuning on task B."""
    source_config = RunConfig.from_dict(json.loads((runs / config.init_from / "config.json").read_text())["config"])
    source = build_model(source_config)
    source.load_state_dict(torch.load(runs / config.init_from / "model.pt", map_location="cpu", weights_only=True))
    source.encoder.load_state_dict(model.encoder.state_dict())
    source_spec = get_task(source_config.data.task)
    tokens = tokenized_task(source_config.data, source_config.model.model, glue_dir)
    return evaluate(source.to(device), tokens["test"], source_spec.metric, device, precision, config.train.eval_batch_size)


def default_workers(device: str | None = None) -> int:
    """Parallel runs for ``workers="auto"``: one on a GPU; on a CPU, one per core up to 4.

    On the 2-core reference machine, two 1-thread processes train 1.25-1.3x more samples per
    second than one 2-thread process (small matrices parallelise poorly within one run)."""
    if resolve_device(device).type != "cpu":
        return 1
    return max(1, min(4, os.cpu_count() or 1))


def _init_worker(threads: int, workers: int) -> None:
    # an interrupt reaches the notebook, which drops the queued runs; a run in flight finishes and is stored
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(threads)
    set_basis_cache(default_cache_bytes(workers))  # the workers share the memory kept for subspace bases
    logging.getLogger("fewdims_helpers").setLevel(logging.WARNING)


def _basis_affinity(config: RunConfig) -> tuple:
    """Runs with equal keys build the same subspace bases (``subspace.layer_basis`` keeps the last ones)."""
    sub = config.subspace
    if sub is None or sub.basis == "none":
        return ()
    if sub.basis == "random":
        return (sub.basis, sub.dim, config.train.seed)
    return (sub.basis, sub.sources, sub.checkpoints, sub.reading)  # every dim: leading directions of one basis


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


def schedule(configs: list[RunConfig], glue_dir: str | None = None) -> list[RunConfig]:
    """The order to hand runs to parallel workers: longest first (so no worker is left with a long run
    at the end while the others idle), runs in one subspace adjacent (so a worker reuses its bases),
    the most expensive subspace first."""
    layers = max((c.model.layer or 0 for c in configs), default=0)
    if layers:
        layers = max(layers, pretrained_encoder(configs[0].model.model).config.num_hidden_layers)
    costs = {c: expected_cost(c, tokenized_task(c.data, c.model.model, glue_dir), layers or 1) for c in configs}
    groups: dict[tuple, float] = {}
    for config, cost in costs.items():
        groups[_basis_affinity(config)] = groups.get(_basis_affinity(config), 0.0) + cost
    return sorted(configs, key=lambda c: (-groups[_basis_affinity(c)], _basis_affinity(c), -costs[c]))


_POOL: dict = {}  # (workers, threads) -> this process's worker pool, kept between execute_all calls
_PENDING: dict = {}  # (store, run_id) -> future of a run queued by an earlier call's ``background``


def worker_pool(workers: int, threads: int) -> ProcessPoolExecutor:
    """The process's pool of ``workers`` spawned processes with ``threads`` threads each, started once
    and reused by later calls: a worker's start (imports, model load) costs seconds, and it keeps its
    caches (the pretrained model, subspace bases) for the next batch of runs."""
    pool = _POOL.get((workers, threads))
    if pool is not None and not (getattr(pool, "_broken", False) or getattr(pool, "_shutdown_thread", False)):
        return pool
    for stale in _POOL.values():  # another size was asked for: finish what runs, drop what waits
        stale.shutdown(wait=True, cancel_futures=True)
    _POOL.clear()
    context = multiprocessing.get_context("spawn")
    _POOL[(workers, threads)] = pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                                                           initargs=(threads, workers))
    return pool


def execute_all(configs: Iterable[RunConfig], runs: Path, force: bool = False, device: str | None = None,
                glue_dir: str | None = None, progress: bool = True, workers: int | str = "auto",
                background: Iterable[RunConfig] = ()) -> pd.DataFrame:
    """Run (or read) every config and return ``collect`` over them, in the order given.

    With ``workers`` > 1 the missing runs are spread over that many processes (each a pure
    function of its config; the processes are kept for the next call), longest first; finished
    runs are stored as they complete, so an interruption loses only the runs in flight.
    ``background``: runs to queue behind these and leave training when this call returns, e.g.
    while the notebook analyses; a later call over them waits for them instead of starting them
    again. With one worker they are not started here."""
    configs = list(configs)
    runs = Path(runs)
    todo = [c for c in dict.fromkeys(configs) if force or not is_complete(c, runs)]
    waiting = set(todo)
    queued = {c: _PENDING.pop((str(runs), c.run_id), None) for c in dict.fromkeys(configs)}  # by an earlier call
    pending = {c: future for c, future in queued.items()
               if c in waiting and future is not None and not future.cancelled()}
    fresh = [c for c in todo if c not in pending]
    later = [c for c in dict.fromkeys(background) if c not in waiting and (str(runs), c.run_id) not in _PENDING
             and (force or not is_complete(c, runs))]
    size = default_workers(device) if workers == "auto" else int(workers)
    parallel = size > 1 and (len(fresh) > 1 or pending or later)
    log.info("%d runs: %d in the store, %d to compute with %d worker(s)%s%s", len(configs), len(configs) - len(todo),
             len(todo), size if parallel else 1, f" ({len(pending)} started earlier)" if pending else "",
             f"; {len(later)} more queued behind them" if parallel and later else "")
    for data, model in dict.fromkeys((c.data, c.model.model) for c in fresh + later):
        tokenized_task(data, model, glue_dir)  # tokenise once here, not once per worker
    options = dict(force=force, device=device, glue_dir=glue_dir)
    bar = tqdm(total=len(todo), desc="runs", disable=not progress)
    if not parallel:
        for config in fresh:
            execute(config, runs, progress=progress, **options)
            bar.update()
    else:
        pool = worker_pool(size, max(1, (os.cpu_count() or 1) // size))
        futures = {future: config for config, future in pending.items()}
        futures.update({pool.submit(execute, config, runs, progress=False, **options): config
                        for config in schedule(fresh, glue_dir)})
        for config in schedule(later, glue_dir):
            _PENDING[str(runs), config.run_id] = pool.submit(execute, config, runs, progress=False, **options)
        _wait_all(list(futures), bar, lambda metrics: log.info("%s: test %s = %.4f", metrics["run_id"],
                                                               metrics["main_metric"],
                                                               metrics["test"][metrics["main_metric"]]))
    bar.close()
    return collect(runs, [c.run_id for c in configs])


def map_in_workers(function: Callable[[Any], Any], items: Iterable, workers: int | str = "auto",
                   device: str | None = None, progress: bool = True, desc: str = "") -> list:
    """``[function(item) for item in items]``, spread over the kept worker pool (``worker_pool``) when
    ``workers`` > 1, in the order given. For analyses of stored runs: they queue behind runs an earlier
    call left in the background, and use the bases the workers keep. ``function`` must be picklable
    (a module-level function or a ``functools.partial`` of one)."""
    items = list(items)
    size = default_workers(device) if workers == "auto" else int(workers)
    bar = tqdm(total=len(items), desc=desc, disable=not progress)
    if size <= 1:
        results = []
        for item in items:
            results.append(function(item))
            bar.update()
    else:
        pool = worker_pool(size, max(1, (os.cpu_count() or 1) // size))
        futures = [pool.submit(function, item) for item in items]
        _wait_all(futures, bar)
        results = [future.result() for future in futures]
    bar.close()
    return results


def _wait_all(futures: list, bar, each: Callable[[Any], None] | None = None) -> None:
    """Wait for ``futures`` as they complete, re-raising a worker's error here. On an error or an
    interrupt, the work not started is dropped (background runs included); finished work stays stored."""
    try:
        for future in as_completed(futures):
            result = future.result()
            if each is not None:
                each(result)
            bar.update()
    except BaseException:
        for future in [*futures, *_PENDING.values()]:
            future.cancel()
        raise


def _flatten(prefix: str, value: Any, row: dict) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}" if prefix else key, inner, row)
    else:
        row[prefix] = tuple(value) if isinstance(value, list) else value


def collect(runs: Path, run_ids: Iterable[str] | None = None) -> pd.DataFrame:
    """One row per complete run: flattened config (``data.task``, ``model.token_selection``, ...),
    ``test.<metric>``, ``validation.<metric>``, ``test_score`` (the task's main metric), timings."""
    runs = Path(runs)
    folders = [runs / r for r in run_ids] if run_ids is not None else sorted(p for p in runs.iterdir() if p.is_dir()
                                                                              and not p.name.startswith("."))
    rows = []
    for folder in folders:
        if not (folder / "metrics.json").exists():
            raise FileNotFoundError(f"run {folder.name} is not in the store {runs}; run it first (execute_all)")
        stored = json.loads((folder / "config.json").read_text())
        metrics = json.loads((folder / "metrics.json").read_text())
        row: dict[str, Any] = {"run_id": folder.name}
        _flatten("", stored["config"], row)
        _flatten("test", metrics["test"], row)
        _flatten("validation", metrics["validation"], row)
        _flatten("weight_change", metrics.get("weight_change", {}), row)
        _flatten("source_after", metrics.get("source_after", {}), row)
        row.update(test_score=metrics["test"][metrics["main_metric"]],
                   validation_score=metrics["validation"][metrics["main_metric"]], main_metric=metrics["main_metric"],
                   best_epoch=metrics["best_epoch"], train_seconds=metrics["train_seconds"],
                   device=stored["device"], precision_used=stored["precision_used"])
        rows.append(row)
    return pd.DataFrame(rows)
