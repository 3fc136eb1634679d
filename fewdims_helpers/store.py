"""The run store: every run in its own folder, named by its config, written atomically.

``<root>/<run_id>/`` holds ``config.json`` (the full config, package versions, git commit, device,
data split), ``metrics.json`` (per-epoch validation and final test metrics) and the artifacts the
config declares (``RunConfig.artifacts``). This module is the only code that knows those file
names: studies read a run's head, features, predictions, model, trajectory and subspace through
``RunStore``'s methods. A run is written to a hidden temporary folder and renamed into place when
complete, so a run killed at any moment leaves no half-written result, and it counts as complete
only when every artifact its config declares exists. Runs are pure functions of their config, so a
list of configs can be split across processes or machines unchanged.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import platform
import shutil
import subprocess
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .config import RunConfig
from .data import TokenizedSplit, sorted_batches, split_fingerprint, tokenized_task
from .features import frozen_features
from .head import SequenceClassifier
from .metrics import compute_metrics, predictions_from_logits
from .models import pretrained_encoder
from .options import RunOptions
from .paths import HOST, REPO_ROOT, remove_stale_temporaries, write_atomically
from .subspace import TrajectoryRecorder, basis_affinity, materialize, reparameterize, subspace_state
from .tasks import duplicates_removed, get_task
from .training import TrainResult, autocast, build_model, evaluate_and_encode, predict, relative_weight_change, \
    total_steps, train
from .workers import WorkerPool, worker_count

log = logging.getLogger(__name__)

PACKAGES = ("torch", "transformers", "datasets", "numpy", "scikit-learn", "scipy", "pandas")
CONFIG_FILE, METRICS_FILE = "config.json", "metrics.json"
HEAD_FILE, MODEL_FILE, SUBSPACE_FILE, TRAJECTORY_DIR = "head.npz", "model.pt", "subspace.npz", "trajectory"
# A run folder exported as a summary (the committed reference) holds this file; it is never a finished run.
SUMMARY_FILE = "summary.json"
LEDGER_DIR = ".ledgers"  # one file per run_all.py invocation: the runs it computed and used
INVOCATION_ENV = "FEWDIMS_INVOCATION"  # set by run_all.py; the notebooks' stores note their runs under it


def _features_files(split: str) -> list[str]:
    return [f"features-{split}.npy", f"labels-{split}.npy"]


def _predictions_file(split: str) -> str:
    return f"predictions-{split}.npz"


def _source_predictions_file(split: str) -> str:
    return f"source-predictions-{split}.npz"


def _trajectory_file(layer_index: int) -> str:
    return f"{TRAJECTORY_DIR}/layer_{layer_index}.npy"


def encoder_depth(config: RunConfig) -> int:
    """Encoder layers a run computes: up to ``config.model.layer``, else all of the pretrained model's."""
    layers = pretrained_encoder(config.model.model).config.num_hidden_layers
    return min(config.model.layer or layers, layers)


def artifact_files(config: RunConfig) -> list[str]:
    """File names (relative to the run folder) of every artifact ``config`` declares."""
    files = []
    for artifact in config.artifacts:
        kind, _, split = artifact.partition(":")
        files += {"features": lambda: _features_files(split), "head": lambda: [HEAD_FILE],
                  "predictions": lambda: [_predictions_file(split)], "model": lambda: [MODEL_FILE],
                  "source_predictions": lambda: [_source_predictions_file(split)],
                  "subspace": lambda: [SUBSPACE_FILE],
                  "trajectory": lambda: [_trajectory_file(i) for i in range(encoder_depth(config))]
                  + [f"{TRAJECTORY_DIR}/steps.json"]}[kind]()
    return files


def environment() -> dict[str, Any]:
    """Package versions, git commit and the machine, recorded next to every result."""
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
    return {"versions": versions, "git_commit": commit, "host": HOST, "cpu": _cpu_model(), "cpu_bf16": cpu_bf16_path(),
            "cpu_count": os.cpu_count(), "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None}


def cpu_bf16_path() -> str:
    """The CPU's bf16 matrix path from /proc/cpuinfo flags: 'amx' (AMX-BF16), 'avx512_bf16' or 'none'.
    oneDNN picks its bf16 kernels by these flags, so two CPUs with different paths need not agree bitwise."""
    try:
        flags = next((line.split(":", 1)[1].split() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("flags")), [])
    except OSError:
        return "none"
    return "amx" if "amx_bf16" in flags else "avx512_bf16" if "avx512_bf16" in flags else "none"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _write_json(path: Path, payload: dict) -> None:
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")


@dataclass
class _Trained:
    """What the artifact writers need from one finished training. Each split is passed through the kept
    model at most once (the test pass is the one that scored test), so features and predictions of one
    split come from the same pass."""
    config: RunConfig
    result: TrainResult
    tokens: dict[str, TokenizedSplit]
    cached: dict[str, torch.Tensor]
    passes: dict[str, tuple[np.ndarray, np.ndarray | None]]  # split -> (logits, features or None)
    recorder: TrajectoryRecorder | None
    store: "RunStore"

    def source_pass(self, split: str) -> tuple[np.ndarray, TokenizedSplit]:
        """Logits (n, num_labels) of the source run's task (``init_from``) on ``split``, with the source
        run's own head on this run's encoder, and that split: how much of task A survives task B."""
        key = f"source:{split}"
        if key not in self.passes:
            source_config = self.store.stored_config(self.config.init_from)
            source = build_model(source_config)
            source.load_state_dict(self.store._state_dict(self.config.init_from))
            source.encoder.load_state_dict(self.result.model.encoder.state_dict())
            device = torch.device(self.result.device)
            tokens = self.store.tokens(source_config)[split]
            logits = predict(source.to(device), tokens, device, self.result.precision,
                             self.config.train.eval_batch_size)[0]
            self.passes[key] = (logits, tokens)
        return self.passes[key]

    def logits_and_features(self, split: str) -> tuple[np.ndarray, np.ndarray | None]:
        if split not in self.passes:
            model, device = self.result.model, torch.device(self.result.device)
            self.passes[split] = predict(model, self.tokens[split], device, self.result.precision,
                                         self.config.train.eval_batch_size,
                                         return_features=split in self.config.save_features,
                                         cached=self.cached.get(split))
        return self.passes[split]


def _write_features(folder: Path, run: _Trained, split: str) -> None:
    features = run.logits_and_features(split)[1]
    np.save(folder / _features_files(split)[0], features)
    np.save(folder / _features_files(split)[1], run.tokens[split].labels)


def _write_head(folder: Path, run: _Trained, split: str) -> None:
    first = run.result.model.head[0].eval()  # the effective weights: selected-dims mask applied, no DropConnect
    np.savez(folder / HEAD_FILE, weight=first.masked_weight().detach().float().cpu().numpy(),
             bias=first.bias.detach().float().cpu().numpy())


def _write_predictions(folder: Path, run: _Trained, split: str) -> None:
    logits = run.logits_and_features(split)[0]
    np.savez(folder / _predictions_file(split), idx=run.tokens[split].idx, logits=logits,
             labels=run.tokens[split].labels)


def _write_source_predictions(folder: Path, run: _Trained, split: str) -> None:
    logits, tokens = run.source_pass(split)
    np.savez(folder / _source_predictions_file(split), idx=tokens.idx, logits=logits, labels=tokens.labels)


def _write_model(folder: Path, run: _Trained, split: str) -> None:
    torch.save(run.result.model.state_dict(), folder / MODEL_FILE)


def _write_trajectory(folder: Path, run: _Trained, split: str) -> None:
    (folder / TRAJECTORY_DIR).mkdir()
    for index, rows in enumerate(run.recorder.rows):
        np.save(folder / _trajectory_file(index), rows)
    _write_json(folder / TRAJECTORY_DIR / "steps.json", {"steps": run.recorder.steps.tolist()})


def _write_subspace(folder: Path, run: _Trained, split: str) -> None:
    np.savez(folder / SUBSPACE_FILE, **subspace_state(run.result.model))


WRITERS: dict[str, Callable[[Path, _Trained, str], None]] = {
    "features": _write_features, "head": _write_head, "predictions": _write_predictions, "model": _write_model,
    "source_predictions": _write_source_predictions,
    "trajectory": _write_trajectory, "subspace": _write_subspace}


def _execute_in_worker(root: str, options: RunOptions, config: RunConfig) -> dict:
    return RunStore(root, options).execute(config, progress=False)


class RunStore:
    """The runs under ``root``, executed with ``options``. One object per store and notebook: it also
    keeps the worker processes and the runs queued in the background between calls."""

    def __init__(self, root: str | os.PathLike, options: RunOptions | None = None):
        self.root = Path(root)
        self.options = options if options is not None else RunOptions()
        self._pool: WorkerPool | None = None

    def __repr__(self) -> str:
        return f"RunStore({str(self.root)!r})"

    def __getstate__(self) -> dict:  # sent to worker processes without the pool itself
        return {"root": self.root, "options": self.options, "_pool": None}

    # ------------------------------------------------------------------------- layout and reading
    def folder(self, config: RunConfig | str) -> Path:
        return self.root / (config if isinstance(config, str) else config.run_id)

    def sweep(self) -> list[Path]:
        """Remove every temporary in the store whose writer is gone (a killed process of this host, or
        another host's writer that stopped touching it: a lost node); returns what was removed."""
        removed = remove_stale_temporaries(self.root)
        if removed:
            log.info("removed %d temporaries left by writers that are gone: %s", len(removed),
                     ", ".join(p.name for p in removed))
        return removed

    def is_complete(self, config: RunConfig) -> bool:
        """True when the run's metrics and every artifact its config declares exist (never for a summary)."""
        folder = self.folder(config)
        return all((folder / name).exists() for name in [CONFIG_FILE, METRICS_FILE, *artifact_files(config)]) \
            and not self.is_summary(config)

    def metrics(self, config: RunConfig | str) -> dict:
        return json.loads(self._require(config, METRICS_FILE).read_text())

    def record(self, config: RunConfig | str) -> dict:
        """The run's ``config.json``: its config, provenance (versions, commit, machine) and data split."""
        return json.loads(self._require(config, CONFIG_FILE).read_text())

    def stored_config(self, run_id: str) -> RunConfig:
        return RunConfig.from_dict(self.record(run_id)["config"])

    def head(self, config: RunConfig) -> tuple[np.ndarray, np.ndarray]:
        """(weight (num_labels, hidden), bias (num_labels,)) of the run's linear head, as trained (masked)."""
        with np.load(self._require(config, HEAD_FILE, "save_features=(...) and a 1-layer head")) as stored:
            return stored["weight"], stored["bias"]

    def features(self, config: RunConfig, split: str) -> tuple[np.ndarray, np.ndarray]:
        """(head inputs (n, hidden), labels (n,)) of ``split`` under the run's kept model."""
        names = _features_files(split)
        hint = f"save_features including {split!r}"
        return np.load(self._require(config, names[0], hint)), np.load(self._require(config, names[1], hint))

    def predictions(self, config: RunConfig | str, split: str) -> dict[str, np.ndarray]:
        """``idx`` (example ids), ``logits`` (n, num_labels) and ``labels`` of ``split`` under the kept model."""
        with np.load(self._require(config, _predictions_file(split), f"save_predictions including {split!r}")) as f:
            return {name: f[name] for name in f.files}

    def source_predictions(self, config: RunConfig, split: str = "test") -> dict[str, np.ndarray]:
        """``idx``, ``logits`` and ``labels`` of the source task (``init_from``) on ``split``, read with the
        source run's own head on this run's encoder."""
        with np.load(self._require(config, _source_predictions_file(split), "init_from")) as f:
            return {name: f[name] for name in f.files}

    def subspace(self, config: RunConfig) -> dict[str, np.ndarray]:
        """theta_t (h, d) of every re-parameterised layer, keyed ``layer_<i>``."""
        with np.load(self._require(config, SUBSPACE_FILE, "a subspace")) as stored:
            return {name: stored[name] for name in stored.files}

    def trajectory(self, run_id: str, layer_index: int, checkpoints: str = "all") -> torch.Tensor:
        """Recorded displacements (t, D) of one layer ('last': only the final one), in their stored float16."""
        rows = np.load(self._require(run_id, _trajectory_file(layer_index), "record_trajectory > 0"), mmap_mode="r")
        return torch.from_numpy(np.array(rows[-1:] if checkpoints == "last" else rows))  # into memory, writable

    def trajectory_stamp(self, run_id: str, layer_index: int) -> tuple:
        path = self.folder(run_id).resolve() / _trajectory_file(layer_index)
        return (str(path), path.stat().st_mtime_ns if path.exists() else None)

    def initial_model(self, config: RunConfig) -> SequenceClassifier:
        """The model a run starts from: pretrained, or the encoder of run ``config.init_from``; its
        encoder layers put into a subspace if ``config.subspace`` says so."""
        model = build_model(config)
        if config.init_from is not None:
            state = self._state_dict(config.init_from)
            model.encoder.load_state_dict({k.removeprefix("encoder."): v for k, v in state.items()
                                           if k.startswith("encoder.")})
        if config.subspace is not None:
            reparameterize(model, config.subspace, self, config.train.seed)
        return model

    def model(self, config: RunConfig) -> SequenceClassifier:
        """The kept model of a finished run with ``save_model=True`` (subspace runs: still re-parameterised)."""
        model = self.initial_model(dataclasses.replace(config, init_from=None))
        model.load_state_dict(self._state_dict(config.run_id))
        return model.eval()

    def tokens(self, config: RunConfig) -> dict[str, TokenizedSplit]:
        """The run's tokenised splits, from the data sources of this store's options."""
        return tokenized_task(config.data, config.model.model, self.options.sources)

    def collect(self, configs: Iterable[RunConfig | str] | None = None) -> pd.DataFrame:
        """One row per complete run (all of the store's if ``configs`` is None): flattened config
        (``data.task``, ``model.token_selection``, ...), ``test.<metric>``, ``validation.<metric>``,
        ``test_score`` (the task's main metric), timings."""
        if configs is None:
            run_ids = sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))
        else:
            run_ids = [c if isinstance(c, str) else c.run_id for c in configs]
        self._note("used", run_ids)
        rows = []
        for run_id in run_ids:
            stored, metrics = self.record(run_id), self.metrics(run_id)
            row: dict[str, Any] = {"run_id": run_id}
            _flatten("", stored["config"], row)
            for key in ("test", "validation", "weight_change", "source_after", "token_choice"):
                _flatten(key, metrics.get(key, {}), row)
            row.update(test_score=metrics["test"][metrics["main_metric"]],
                       validation_score=metrics["validation"][metrics["main_metric"]], main_metric=metrics["main_metric"],
                       best_epoch=metrics["best_epoch"], train_seconds=metrics["train_seconds"],
                       device=stored["device"], precision_used=stored["precision_used"])
            rows.append(row)
        return pd.DataFrame(rows)

    def _require(self, config: RunConfig | str, name: str, asked_by: str | None = None) -> Path:
        path = self.folder(config) / name
        if not path.exists():
            run_id = config if isinstance(config, str) else config.run_id
            fix = f"run it with {asked_by}" if asked_by else "run it first (RunStore.execute_all)"
            raise FileNotFoundError(f"run {run_id} in {self.root} has no {name}; {fix}")
        return path

    def _state_dict(self, run_id: str) -> dict[str, torch.Tensor]:
        return torch.load(self._require(run_id, MODEL_FILE, "save_model=True"), map_location="cpu", weights_only=True)

    # ------------------------------------------------------------------------- summaries (the reference)
    def run_ids(self) -> list[str]:
        """The runs in this store (finished runs or summaries), sorted."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))

    def is_summary(self, config: RunConfig | str) -> bool:
        """True for a run exported by ``export_summary``: read it for comparison, never as a finished run."""
        return (self.folder(config) / SUMMARY_FILE).exists()

    def has_predictions(self, config: RunConfig | str, split: str) -> bool:
        return (self.folder(config) / _predictions_file(split)).exists()

    def export_summary(self, config: RunConfig | str, destination_root: str | os.PathLike) -> dict:
        """Copy the run's config, metrics and, when it has them, test predictions to
        ``destination_root/<run_id>/``, marked as a summary (so no store ever counts it as finished).
        Returns what ``summary.json`` records: the run id and whether the test predictions came along."""
        run_id = config if isinstance(config, str) else config.run_id
        source = self.folder(run_id)
        names = [CONFIG_FILE, METRICS_FILE]
        names += [_predictions_file("test")] if self.has_predictions(run_id, "test") else []
        for name in names[:2]:
            self._require(run_id, name)
        summary = {"run_id": run_id, "files": names, "test_predictions": len(names) == 3,
                   "exported": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "exported_from": HOST}

        def write(tmp: Path) -> None:
            tmp.mkdir()
            for name in names:
                shutil.copy2(source / name, tmp / name)
            _write_json(tmp / SUMMARY_FILE, summary)
        write_atomically(Path(destination_root) / run_id, write)
        return summary

    # ------------------------------------------------------------------------- accounting per invocation
    def begin_invocation(self) -> str:
        """Start accounting for one run_all.py invocation: returns its id and puts it in the environment
        the notebook kernels inherit, so every store they open notes the runs it computes and uses."""
        invocation = f"{time.strftime('%Y%m%dT%H%M%S')}-{HOST}-{os.getpid()}"
        os.environ[INVOCATION_ENV] = invocation
        (self.root / LEDGER_DIR).mkdir(parents=True, exist_ok=True)
        return invocation

    def end_invocation(self) -> None:
        """Stop noting runs in this process (the ledger itself stays)."""
        os.environ.pop(INVOCATION_ENV, None)

    def invocation_runs(self, invocation: str) -> dict[str, list[str]]:
        """The runs of one invocation: ``computed`` (trained by it), ``reused`` (read from this store,
        finished by an earlier invocation) and ``summaries`` (used runs that are exported summaries here;
        none, since ``execute`` refuses them), each sorted."""
        path = self.root / LEDGER_DIR / f"{invocation}.jsonl"
        events = [json.loads(line) for line in path.read_text().splitlines() if line] if path.exists() else []
        computed = {e["run_id"] for e in events if e["event"] == "computed"}
        used = {e["run_id"] for e in events}
        return {"computed": sorted(computed), "reused": sorted(used - computed),
                "summaries": sorted(r for r in used if self.is_summary(r))}

    def _note(self, event: str, run_ids: Iterable[str]) -> None:
        invocation = os.environ.get(INVOCATION_ENV)
        if not invocation:
            return
        lines = "".join(json.dumps({"event": event, "run_id": r, "pid": os.getpid()}) + "\n" for r in run_ids)
        (self.root / LEDGER_DIR).mkdir(parents=True, exist_ok=True)
        with open(self.root / LEDGER_DIR / f"{invocation}.jsonl", "a") as ledger:  # appends of whole lines
            ledger.write(lines)

    # ------------------------------------------------------------------------- executing
    def execute(self, config: RunConfig, progress: bool | None = None) -> dict:
        """Metrics of the run ``config``: read from the store, or computed here and stored."""
        progress = self.options.progress if progress is None else progress
        if self.is_summary(config):
            raise RuntimeError(f"run {config.run_id} in {self.root} is an exported summary (a reference), "
                               f"never computed into or read as a finished run; use a local store")
        if not self.options.force and self.is_complete(config):
            self._note("used", [config.run_id])
            return self.metrics(config)
        remove_stale_temporaries(self.root, config.run_id)  # left by a killed writer of this run, on any host
        metrics: dict = {}
        write_atomically(self.folder(config), lambda tmp: metrics.update(self._compute(config, tmp, progress)))
        self._note("computed", [config.run_id])
        log.info("%s: test %s = %.4f (best epoch %d, %.1f s)", config.run_id, metrics["main_metric"],
                 metrics["test"][metrics["main_metric"]], metrics["best_epoch"], metrics["train_seconds"])
        return metrics

    def _compute(self, config: RunConfig, folder: Path, progress: bool) -> dict:
        """Train ``config`` and write its config, metrics and declared artifacts into ``folder``."""
        folder.mkdir()
        spec, tokens = get_task(config.data.task), self.tokens(config)
        cached = frozen_features(config, tokens, self.options) if config.model.freeze_pretrained else {}
        model = self.initial_model(config)
        recorder = (TrajectoryRecorder(model, config.record_trajectory, total_steps(config, len(tokens["train"])))
                    if config.record_trajectory else None)
        result = train(config, tokens, device=self.options.device, progress=progress, model=model,
                       cached_features=cached or None, on_step=recorder)
        device = torch.device(result.device)
        # test metrics, logits and, if saved, test features from one pass
        test, logits, features = evaluate_and_encode(result.model, tokens["test"], spec.metric, device, result.precision,
                                                     config.train.eval_batch_size, cached.get("test"),
                                                     features="test" in config.save_features)
        run = _Trained(config, result, tokens, cached, {"test": (logits, features)}, recorder, self)
        for artifact in config.artifacts:
            kind, _, split = artifact.partition(":")
            WRITERS[kind](folder, run, split)
        if "predictions:test" not in config.artifacts:  # every run keeps its test predictions (the reference's)
            _write_predictions(folder, run, "test")
        moved = materialize(result.model)  # subspace layers become plain theta_0 + V theta_t (nothing else changes)
        metrics = {"run_id": config.run_id, "task": spec.name, "main_metric": spec.main_metric,
                   "best_epoch": result.best_epoch, "history": result.history,
                   "validation": result.history[result.best_epoch - 1]["validation"], "test": test,
                   "train_seconds": result.train_seconds,
                   "weight_change": relative_weight_change(moved, pretrained_encoder(config.model.model))}
        for measure in config.measures:
            metrics[measure] = MEASURES[measure](self, config, run)
        _write_json(folder / CONFIG_FILE, {"run_id": config.run_id, "config": config.to_dict(),
                                           "device": result.device, "precision_used": result.precision,
                                           "dropout_rng": result.dropout_rng, "threads": torch.get_num_threads(),
                                           "split": split_fingerprint(tokens),
                                           "duplicates_removed": duplicates_removed(config.data.task, self.options.sources),
                                           "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **environment()})
        _write_json(folder / METRICS_FILE, metrics)
        return metrics

    def workers(self) -> int:
        if self.options.backend == "ray":
            return self._worker_pool(0).size  # the runs the cluster holds at once
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
        on_ray = self.options.backend == "ray"  # even one run goes to the cluster (its GPUs); none: Ray not started
        size = self.workers() if not on_ray or fresh or pending or later else 1
        parallel = (size > 1 or on_ray) and (len(fresh) > (0 if on_ray else 1) or pending or later)
        log.info("%d runs: %d in the store, %d to compute with %d worker(s)%s%s", len(configs), len(configs) - len(todo),
                 len(todo), size if parallel else 1, f" ({len(pending)} started earlier)" if pending else "",
                 f"; {len(later)} more queued behind them" if parallel and later else "")
        for config in dict.fromkeys(fresh + later):
            self.tokens(config)  # tokenise once here, not once per worker
        bar = tqdm(total=len(todo), desc="runs", disable=not self.options.progress)
        if not parallel:
            for config in fresh:
                self.execute(config)
                bar.update()
        else:
            pool = self._worker_pool(size)
            self.root.mkdir(parents=True, exist_ok=True)  # Ray workers check that they see it
            root, later = str(self.root.resolve()), self.schedule(later)
            futures = list(pending.values()) + pool.submit_runs(_execute_in_worker, root, self.options,
                                                                self.schedule(fresh))
            pool.pending.update(zip([c.run_id for c in later],
                                    pool.submit_runs(_execute_in_worker, root, self.options, later)))
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
        bar = tqdm(total=len(items), desc=desc, disable=not self.options.progress)
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


def _source_after(store: RunStore, config: RunConfig, run: _Trained) -> dict[str, float]:
    """Test metrics of the source run's task with the source run's own head on this run's encoder
    (the pass whose logits ``source_predictions`` saves)."""
    logits, tokens = run.source_pass("test")
    spec = get_task(store.stored_config(config.init_from).data.task)
    return compute_metrics(spec.metric, predictions_from_logits(logits, logits.shape[1]), tokens.labels)


@torch.no_grad()
def _token_choice(store: RunStore, config: RunConfig, run: _Trained) -> dict[str, float]:
    """Share of test examples whose ``max_norm_token`` read is [CLS] (position 0), the final [SEP]
    (the last real token) or another token, under the kept model."""
    model, split, device = run.result.model.eval(), run.tokens["test"], torch.device(run.result.device)
    counts = np.zeros(3)
    for rows in sorted_batches(split.lengths, config.train.eval_batch_size):
        with autocast(device, run.result.precision):
            position = model.chosen_positions(**split.batch(rows, device)).cpu().numpy()
        last = split.lengths[rows] - 1
        counts += [(position == 0).sum(), ((position == last) & (position != 0)).sum(),
                   ((position != 0) & (position != last)).sum()]
    return dict(zip(("cls", "sep", "other"), (counts / counts.sum()).tolist()))


MEASURES: dict[str, Callable[[RunStore, RunConfig, _Trained], dict]] = {"source_after": _source_after,
                                                                        "token_choice": _token_choice}


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


def _flatten(prefix: str, value: Any, row: dict) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}" if prefix else key, inner, row)
    else:
        row[prefix] = tuple(value) if isinstance(value, list) else value
