"""The run store: every run in its own folder, named by its config, written atomically.

``<root>/<run_id>/`` holds ``config.json``, ``metrics.json`` and the artifacts the config declares
(``run_files`` names them). Studies read a run's head, features, predictions, model weights, trajectory and
subspace through ``RunStore``'s methods, never by file name. A run is written to a hidden temporary
folder and renamed into place when complete, so a run killed at any moment leaves no half-written
result, and it counts as complete only when every artifact its config declares exists, each the size
the run's manifest records. A file read for a result is checked against the manifest's sha256 first,
and a run whose files do not match is moved into the store's quarantine and computed again
(``integrity``). Runs are pure functions of their config, so a list of configs can be split across
processes or machines unchanged.

``RunStore`` owns the folder and its files, and nothing else: it holds no options and executes nothing.
Executing runs into it is ``runner.Runner``'s (which holds the worker pool and takes the store); the
model a run starts from and the one it kept are built by ``models``; its invocation ledger is
``ledger.InvocationLedger`` (``store.ledger``); exported summaries are ``reference_export``'s.
"""
from __future__ import annotations

import json
import logging
import os
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd
import torch

from ..config import RunConfig
from ..paths import HOST, remove_stale_temporaries, write_atomically
from .integrity import REPAIR, CorruptRun, Verification, declared_files, file_problem, files_of, folder_problems, \
    load_problem, manifest_of, one_line, read_manifest
from .ledger import InvocationLedger
from .run_files import CONFIG_FILE, HEAD_FILE, MANIFEST_FILE, METRICS_FILE, MODEL_FILE, QUARANTINE_DIR, \
    SUBSPACE_FILE, SUMMARY_FILE, features_files, predictions_file, source_predictions_file, trajectory_file, \
    write_json

log = logging.getLogger(__name__)


class RunStore:
    """The runs under ``root``: their folders, their files, and the checks of those files against each run's
    manifest. Cheap to make and to send to a worker process; two objects over one folder see the same runs."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.ledger = InvocationLedger(self.root, self.is_summary)
        self.checked_files: set[tuple] = set()  # (path, size, mtime) of files found intact in this process

    def __repr__(self) -> str:
        return f"RunStore({str(self.root)!r})"

    def __getstate__(self) -> dict:  # sent to worker processes without the files this process checked
        return {"root": self.root}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["root"])

    # ------------------------------------------------------------------------- layout
    def folder(self, config: RunConfig | str) -> Path:
        return self.root / (config if isinstance(config, str) else config.run_id)

    def run_ids(self) -> list[str]:
        """The runs in this store (finished runs or summaries), sorted."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))

    def is_summary(self, config: RunConfig | str) -> bool:
        """True for a run exported by ``reference_export.export_summary``: read it for comparison, never as a
        finished run."""
        return (self.folder(config) / SUMMARY_FILE).exists()

    def has_predictions(self, config: RunConfig | str, split: str) -> bool:
        return (self.folder(config) / predictions_file(split)).exists()

    def is_complete(self, config: RunConfig) -> bool:
        """True when the run's metrics and every artifact its config declares exist, each file the size the
        run's manifest records (``integrity``; never for a summary)."""
        return self.folder(config).is_dir() and not self.is_summary(config) and not self.run_problems(config)

    def sweep(self) -> list[Path]:
        """Remove every temporary in the store whose writer is gone (a killed process of this host, or
        another host's writer that stopped touching it: a lost node); returns what was removed."""
        removed = remove_stale_temporaries(self.root)
        if removed:
            log.info("removed %d temporaries left by writers that are gone: %s", len(removed),
                     ", ".join(p.name for p in removed))
        return removed

    def write_run(self, config: RunConfig, write: Callable[[Path], None]) -> Path:
        """Write run ``config``'s folder atomically: ``write(tmp)`` fills a temporary folder (it creates it),
        which is renamed into place when complete (``paths.write_atomically``)."""
        remove_stale_temporaries(self.root, config.run_id)  # left by a killed writer of this run, on any host
        return write_atomically(self.folder(config), write)

    # ------------------------------------------------------------------------- reading
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

    def state_dict(self, run_id: str) -> dict[str, torch.Tensor]:
        """The kept weights of a finished run with ``save_model=True`` (``models.kept_model`` builds the model)."""
        return self._load(run_id, MODEL_FILE, lambda path: torch.load(path, map_location="cpu", weights_only=True),
                          "save_model=True")

    def collect(self, configs: Iterable[RunConfig | str] | None = None) -> pd.DataFrame:
        """One row per complete run (all of the store's if ``configs`` is None): flattened config
        (``data.task``, ``model.token_selection``, ...), ``test.<metric>``, ``validation.<metric>``,
        ``test_score`` (the task's main metric), timings."""
        if configs is None:
            run_ids = self.run_ids()
        else:
            run_ids = [c if isinstance(c, str) else c.run_id for c in configs]
        self.ledger.note("used", run_ids)
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
        path = self.require(config, name, asked_by)
        try:
            return load(path)
        except Exception as error:
            raise self.unreadable(config, name, error) from error

    def require(self, config: RunConfig | str, name: str, asked_by: str | None = None) -> Path:
        """The path of the run's file ``name``, checked against the run's manifest (``check_file``)."""
        self.check_file(config, name)
        path = self.folder(config) / name
        if not path.exists():
            run_id = config if isinstance(config, str) else config.run_id
            fix = f"run it with {asked_by}" if asked_by else "run it first (Runner.execute_all)"
            raise FileNotFoundError(f"run {run_id} in {self.root} has no {name}; {fix}")
        return path

    # ------------------------------------------------------------------------- integrity of the files
    def run_problems(self, config: RunConfig, hashes: bool = False) -> list[str]:
        """What is wrong with the run's folder against its manifest and its config ([]: nothing; sizes only
        unless ``hashes``)."""
        return folder_problems(self.folder(config), declared_files(config), hashes)

    def set_aside(self, config: RunConfig) -> Path | None:
        """Move the run's folder into the quarantine when it is there but corrupt, saying so in one line, so
        that the run is computed again; returns where it went (None: nothing to move)."""
        if not self.folder(config).is_dir() or self.is_summary(config):
            return None
        problems = self.run_problems(config)
        moved = self.quarantine(config.run_id, problems) if problems else None
        if moved is not None:
            log.warning("corrupt run %s in %s: %s; its files were moved to %s (nothing deleted); computing it again",
                        config.run_id, self.root, "; ".join(problems), moved)
        return moved

    def quarantine(self, run_id: str, problems: list[str]) -> Path | None:
        """Move the run's folder whole into ``<root>/.quarantine/`` (which no store reads), with a note of why
        beside it; None when another process moved it first."""
        target = self.root / QUARANTINE_DIR / f"{run_id}.{time.strftime('%Y%m%dT%H%M%S')}.{uuid.uuid4().hex[:6]}"
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(self.folder(run_id), target)
        except FileNotFoundError:
            return None
        write_json(target.with_name(f"{target.name}.json"), {"run_id": run_id, "problems": problems, "host": HOST,
                                                             "moved": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        return target

    def check_file(self, config: RunConfig | str, name: str) -> None:
        """Compare the run's file ``name`` with the run's manifest before it is read (its sha256, once per
        process and version of the file). A listed file that is gone or differs makes the run corrupt: it is
        quarantined and ``CorruptRun`` raised. Files the manifest does not list (or a run without one) pass."""
        run_id = config if isinstance(config, str) else config.run_id
        folder = self.folder(run_id)
        path = folder / name
        key = (str(path), path.stat().st_size, path.stat().st_mtime_ns) if path.is_file() else None
        if key is not None and key in self.checked_files:
            return
        try:
            manifest = read_manifest(folder)
            problem = None if manifest is None or name not in manifest else file_problem(folder, name, manifest[name], True)
        except ValueError as error:
            problem = str(error)
        if problem is None:
            if key is not None:
                self.checked_files.add(key)
            return
        if self.is_summary(run_id):
            raise CorruptRun(f"{problem}: run {run_id} in {self.root}, an exported summary; restore it from git: "
                             f"git checkout -- {folder}")
        moved = self.quarantine(run_id, [problem])
        raise CorruptRun(f"corrupt run {run_id} in {self.root}: {problem}; its files were moved to "
                         f"{moved or 'the quarantine by another process'} (nothing deleted); run the notebook again "
                         f"to recompute it")

    def unreadable(self, config: RunConfig | str, name: str, error: BaseException) -> CorruptRun:
        """The one-line error for a run's file that failed to load: what failed, the run, the file, the fix."""
        run_id = config if isinstance(config, str) else config.run_id
        fix = (f"restore it from git: git checkout -- {self.folder(run_id)}" if self.is_summary(run_id) else REPAIR)
        return CorruptRun(f"{name} of run {run_id} in {self.root} does not load ({one_line(error)}); {fix}")

    def verify(self, repair: bool = False, read_only: bool = False) -> Verification:
        """Check every run of this store: against its manifest, sizes and sha256 (a run written before
        manifests existed: each of its files must load whole, and it is then given a manifest unless
        ``read_only``), and that it holds what its config declares. With ``repair``, move each corrupt run
        into the quarantine, so that the next invocation recomputes it. Exported summaries are only read."""
        report = Verification(self.root, read_only)
        for run_id in self.run_ids():
            report.runs += 1
            folder, summary = self.folder(run_id), self.is_summary(run_id)
            problems = folder_problems(folder, [], hashes=True)
            legacy = not problems and not (folder / MANIFEST_FILE).exists()
            if legacy:
                problems = [p for name in files_of(folder) if (p := load_problem(folder, name))]
            if not problems and not summary:
                problems = folder_problems(folder, self.declared(run_id))
            report.problems += [(run_id, problem) for problem in problems]
            if problems and repair and not (summary or read_only):
                report.quarantined[run_id] = self.quarantine(run_id, problems)
            elif legacy and not (problems or summary or read_only):
                write_atomically(folder / MANIFEST_FILE, lambda tmp: write_json(tmp, manifest_of(folder)))
                report.adopted.append(run_id)
        return report

    def declared(self, run_id: str) -> list[str]:
        """The files run ``run_id``'s stored config declares (its config and metrics alone when this code
        cannot rebuild that config: a run of an older design, which no notebook reads)."""
        try:  # read here, not through the reading methods above: verifying never moves a run by itself
            stored = json.loads((self.folder(run_id) / CONFIG_FILE).read_text())["config"]
            return declared_files(RunConfig.from_dict(stored))
        except Exception:  # an older design's config, not a corruption of its files (they loaded whole)
            return [CONFIG_FILE, METRICS_FILE]


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
