"""The run store: every run in its own folder, named by its config, written atomically.

``<root>/<run_id>/`` holds ``config.json``, ``metrics.json`` and the artifacts the config declares
(``run_files`` names them). Studies read a run's head, features, predictions, model, trajectory and
subspace through ``RunStore``'s methods, never by file name. A run is written to a hidden temporary
folder and renamed into place when complete, so a run killed at any moment leaves no half-written
result, and it counts as complete only when every artifact its config declares exists, each the size
the run's manifest records. A file read for a result is checked against the manifest's sha256 first,
and a run whose files do not match is moved into the store's quarantine and computed again
(``integrity``). Runs are pure functions of their config, so a list of configs can be split across
processes or machines unchanged.

``RunStore`` is the one object a notebook holds; each of its duties lives in its own module: the
folder layout (``run_files``) and the reading API (here), executing a run (``runner``, with
``artifacts`` and ``measures``), workers and scheduling (``scheduling``), manifests and the quarantine
(``integrity``), provenance (``provenance``), the invocation ledger (``ledger``) and exported summaries
(``reference_export``).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd
import torch

from ..config import RunConfig
from ..data.tokenized import TokenizedSplit, tokenized_task
from ..model.architectures import encoder_layers
from ..model.head import SequenceClassifier
from ..model.subspace import deltas, reparameterize, zero_coordinates, zeroing_masks
from ..options import RunOptions
from ..paths import remove_stale_temporaries
from ..training.loop import build_model
from .integrity import RunIntegrity
from .ledger import InvocationLedger
from .reference_export import ReferenceExport
from .run_files import CONFIG_FILE, HEAD_FILE, METRICS_FILE, MODEL_FILE, SUBSPACE_FILE, features_files, \
    predictions_file, source_predictions_file, trajectory_file
from .runner import RunExecution
from .scheduling import RunScheduling
from .workers import WorkerPool

log = logging.getLogger(__name__)


class RunStore(RunExecution, RunScheduling, RunIntegrity, InvocationLedger, ReferenceExport):
    """The runs under ``root``, executed with ``options``. One object per store and notebook: it also
    keeps the worker processes and the runs queued in the background between calls."""

    def __init__(self, root: str | os.PathLike, options: RunOptions | None = None):
        self.root = Path(root)
        self.options = options if options is not None else RunOptions()
        self._pool: WorkerPool | None = None

    def __repr__(self) -> str:
        return f"RunStore({str(self.root)!r})"

    def __getstate__(self) -> dict:  # sent to worker processes without the pool itself (or the files it checked)
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
        """True when the run's metrics and every artifact its config declares exist, each file the size the
        run's manifest records (``integrity``; never for a summary)."""
        return self.folder(config).is_dir() and not self.is_summary(config) and not self.run_problems(config)

    def metrics(self, config: RunConfig | str) -> dict:
        return self._load(config, METRICS_FILE, _json)

    def record(self, config: RunConfig | str) -> dict:
        """The run's ``config.json``: its config, provenance (versions, commit, machine) and data split."""
        return self._load(config, CONFIG_FILE, _json)

    def stored_config(self, run_id: str) -> RunConfig:
        return RunConfig.from_dict(self.record(run_id)["config"])

    def head(self, config: RunConfig) -> tuple[np.ndarray, np.ndarray]:
        """(weight (num_labels, hidden), bias (num_labels,)) of the run's linear head, as trained (masked)."""
        stored = self._load(config, HEAD_FILE, _arrays, "save_features=(...) and a 1-layer head")
        return stored["weight"], stored["bias"]

    def features(self, config: RunConfig, split: str) -> tuple[np.ndarray, np.ndarray]:
        """(head inputs (n, hidden), labels (n,)) of ``split`` under the run's kept model."""
        names = features_files(split)
        hint = f"save_features including {split!r}"
        return self._load(config, names[0], np.load, hint), self._load(config, names[1], np.load, hint)

    def predictions(self, config: RunConfig | str, split: str) -> dict[str, np.ndarray]:
        """``idx`` (example ids), ``logits`` (n, num_labels) and ``labels`` of ``split`` under the kept model."""
        return self._load(config, predictions_file(split), _arrays, f"save_predictions including {split!r}")

    def source_predictions(self, config: RunConfig, split: str = "test") -> dict[str, np.ndarray]:
        """``idx``, ``logits`` and ``labels`` of the source task (``init_from``) on ``split``, read with the
        source run's own head on this run's encoder."""
        return self._load(config, source_predictions_file(split), _arrays, "init_from")

    def subspace(self, config: RunConfig) -> dict[str, np.ndarray]:
        """theta_t (h, d) of every re-parameterised layer, keyed ``layer_<i>``."""
        return self._load(config, SUBSPACE_FILE, _arrays, "a subspace")

    def trajectory(self, run_id: str, layer_index: int, checkpoints: str = "all") -> torch.Tensor:
        """Recorded displacements (t, D) of one layer ('last': only the final one), in their stored float16."""
        def rows(path: Path) -> np.ndarray:
            stored = np.load(path, mmap_mode="r")
            return np.array(stored[-1:] if checkpoints == "last" else stored)  # into memory, writable
        return torch.from_numpy(self._load(run_id, trajectory_file(layer_index), rows, "record_trajectory > 0"))

    def trajectory_stamp(self, run_id: str, layer_index: int) -> tuple:
        path = self.folder(run_id).resolve() / trajectory_file(layer_index)
        return (str(path), path.stat().st_mtime_ns if path.exists() else None)

    def initial_model(self, config: RunConfig) -> SequenceClassifier:
        """The model a run starts from: pretrained, or the encoder of run ``config.init_from``; its
        encoder layers put into a subspace if ``config.subspace`` says so."""
        model = build_model(config)
        if config.init_from is not None:
            state = self._state_dict(config.init_from)
            model.encoder.load_state_dict({k.removeprefix("encoder."): v for k, v in state.items()
                                           if k.startswith("encoder.")})
        if config.zeroed is not None:
            zeroed = config.zeroed
            zero_coordinates(model, zeroing_masks(self.stored_deltas(zeroed.source), zeroed.coordinates, zeroed.sigmas,
                                                  config.train.seed))
        if config.subspace is not None:
            reparameterize(model, config.subspace, self, config.train.seed)
        return model

    def stored_deltas(self, run_id: str) -> list[np.ndarray]:
        """V theta_t of every encoder layer of a finished subspace run, from its saved theta_t (the basis
        is rebuilt from its config)."""
        source = self.stored_config(run_id)
        if source.subspace is None or source.subspace.basis == "none":
            raise ValueError(f"run {run_id} was not trained in a subspace; zeroing needs a subspace run's V theta_t")
        model = self.initial_model(source)
        thetas = self.subspace(source)
        for index, layer in enumerate(encoder_layers(model)):
            layer.theta.data = torch.from_numpy(thetas[f"layer_{index}"])
        return deltas(model)

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
                       best_epoch=metrics["best_epoch"], best_step=metrics.get("best_step"),
                       last_step=metrics["history"][-1].get("step"),
                       degenerate=metrics.get("degenerate"), train_seconds=metrics["train_seconds"],
                       device=stored["device"], precision_used=stored["precision_used"])
            rows.append(row)
        return pd.DataFrame(rows)

    def _load(self, config: RunConfig | str, name: str, load: Callable[[Path], Any], asked_by: str | None = None):
        """``load(path)`` of the run's file ``name``, checked against the run's manifest first; any error while
        loading it is one line naming the run, the file and the fix (``CorruptRun``)."""
        path = self._require(config, name, asked_by)
        try:
            return load(path)
        except Exception as error:
            raise self.unreadable(config, name, error) from error

    def _require(self, config: RunConfig | str, name: str, asked_by: str | None = None) -> Path:
        """The path of the run's file ``name``, checked against the run's manifest (``check_file``)."""
        self.check_file(config, name)
        path = self.folder(config) / name
        if not path.exists():
            run_id = config if isinstance(config, str) else config.run_id
            fix = f"run it with {asked_by}" if asked_by else "run it first (RunStore.execute_all)"
            raise FileNotFoundError(f"run {run_id} in {self.root} has no {name}; {fix}")
        return path

    def _state_dict(self, run_id: str) -> dict[str, torch.Tensor]:
        return self._load(run_id, MODEL_FILE, lambda path: torch.load(path, map_location="cpu", weights_only=True),
                          "save_model=True")


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def _arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array of an npz file, read whole (so a damaged member fails here, not later)."""
    with np.load(path) as stored:
        return {name: stored[name] for name in stored.files}


def _flatten(prefix: str, value: Any, row: dict) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}" if prefix else key, inner, row)
    else:
        row[prefix] = tuple(value) if isinstance(value, list) else value
