"""Executing one run into a store: train its config, evaluate it, and write its config, metrics, artifacts
and measures, then its manifest (``integrity``), into a temporary folder that is renamed into place when
complete (``RunStore.write_run``), so a run killed at any moment leaves no half-written result. A function
of the store, the run, the options and the execution: a worker process calls it as the driver does."""
from __future__ import annotations

import logging
import time
from pathlib import Path

import torch

from ..config import RunConfig
from ..data.tasks import duplicates_removed, get_task
from ..data.tokenized import TokenizedSplit, split_fingerprint, tokenized_task
from ..execution import Execution, resolve
from ..model.pretrained import pretrained_encoder
from ..model.subspace import TrajectoryRecorder, materialize
from ..options import DataSources, RunOptions
from ..stats.metrics import degenerate, predictions_from_logits
from ..training.device_step import StepOptions
from ..training.features import frozen_features
from ..training.loop import evaluate_and_encode, relative_weight_change, total_steps, train
from .artifacts import WRITERS, Trained
from .integrity import write_manifest
from .measures import MEASURES
from .models import initial_model
from .provenance import environment
from .run_files import CONFIG_FILE, METRICS_FILE, write_json
from .store import RunStore

log = logging.getLogger(__name__)


def run_tokens(config: RunConfig, sources: DataSources) -> dict[str, TokenizedSplit]:
    """The run's tokenised splits, read from ``sources`` (tokenised once, cached: ``data.tokenized``)."""
    return tokenized_task(config.data, config.model.model, sources)


def execute_run(store: RunStore, config: RunConfig, options: RunOptions, execution: Execution,
                progress: bool | None = None) -> dict:
    """Metrics of the run ``config``: read from ``store``, or computed here with ``execution`` and stored."""
    progress = options.progress if progress is None else progress
    if store.is_summary(config):
        raise RuntimeError(f"run {config.run_id} in {store.root} is an exported summary (a reference), "
                           f"never computed into or read as a finished run; use a local store")
    if not options.force and store.is_complete(config):
        store.ledger.note("used", [config.run_id])
        return store.metrics(config)
    store.set_aside(config)  # a corrupt folder of this run: into the quarantine (one line), never overwritten
    metrics: dict = {}

    def write(tmp: Path) -> None:
        metrics.update(compute(store, config, tmp, options, execution, progress))
        write_manifest(tmp)  # last: the size and sha256 of every file above
    store.write_run(config, write)
    store.ledger.note("computed", [config.run_id])
    log.info("%s: test %s = %.4f (best epoch %d, %.1f s)", config.run_id, metrics["main_metric"],
             metrics["test"][metrics["main_metric"]], metrics["best_epoch"], metrics["train_seconds"])
    return metrics


def execute_in_worker(root: str, options: RunOptions, config: RunConfig, execution: Execution | None = None) -> dict:
    """One run in a worker process, into the store at ``root``. ``execution``: the driver's, with the worker's
    threads; None on a Ray node, which resolves its own (``execution.resolve``: it may hold another device)."""
    return execute_run(RunStore(root), config, options, execution or resolve(options.device), progress=False)


def compute(store: RunStore, config: RunConfig, folder: Path, options: RunOptions, execution: Execution,
            progress: bool) -> dict:
    """Train ``config`` and write its config, metrics and declared artifacts into ``folder``."""
    folder.mkdir()
    spec, tokens = get_task(config.data.task), run_tokens(config, options.sources)
    cached = frozen_features(config, tokens, execution, options.sources.cache) if config.model.freeze_pretrained else {}
    model = initial_model(store, config)
    recorder = (TrajectoryRecorder(model, config.record_trajectory, total_steps(config, len(tokens["train"])))
                if config.record_trajectory else None)
    result = train(config, tokens, device=execution, progress=progress, model=model,
                   cached_features=cached or None, on_step=recorder,
                   step_options=StepOptions.from_changes(options.step_changes))
    device = torch.device(result.device)
    # test metrics, logits and, if saved, test features from one pass
    test, logits, features = evaluate_and_encode(result.model, tokens["test"], spec.metric, device, result.precision,
                                                 config.train.eval_batch_size, cached.get("test"),
                                                 features="test" in config.save_features)
    run = Trained(config, result, tokens, cached, {"test": (logits, features)}, recorder, store,
                  lambda other: run_tokens(other, options.sources))
    for artifact in config.artifacts:
        kind, _, split = artifact.partition(":")
        WRITERS[kind](folder, run, split)
    if "predictions:test" not in config.artifacts:  # every run keeps its test predictions (the reference's)
        WRITERS["predictions"](folder, run, "test")
    moved = materialize(result.model)  # subspace layers become plain theta_0 + V theta_t (nothing else changes)
    metrics = {"run_id": config.run_id, "task": spec.name, "main_metric": spec.main_metric,
               "best_epoch": result.best_epoch, "best_step": result.best_step,
               "stopped_early": result.stopped_early, "history": result.history,
               "validation": result.history[result.best_index]["validation"], "test": test,
               "train_seconds": result.train_seconds,
               "degenerate": bool(degenerate(predictions_from_logits(logits, logits.shape[1]),
                                             tokens["test"].labels, spec.is_regression)[0]),
               "weight_change": relative_weight_change(moved, pretrained_encoder(config.model.model))}
    for measure in config.measures:
        metrics[measure] = MEASURES[measure](store, config, run)
    write_json(folder / CONFIG_FILE, {"run_id": config.run_id, "config": config.to_dict(),
                                       "device": result.device, "precision_used": result.precision,
                                       "dropout_rng": result.dropout_rng, "threads": torch.get_num_threads(),
                                       "split": split_fingerprint(tokens),
                                       "duplicates_removed": duplicates_removed(config.data.task, options.sources),
                                       "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **environment()})
    write_json(folder / METRICS_FILE, metrics)
    return metrics
