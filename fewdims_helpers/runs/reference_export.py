"""Exported summaries (the committed reference): a run's config, metrics and test predictions copied to
another folder, marked so that no store ever counts them as a finished run."""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from ..config import RunConfig
from ..paths import HOST, write_atomically
from .run_files import CONFIG_FILE, METRICS_FILE, SUMMARY_FILE, predictions_file, write_json


class ReferenceExport:
    """``RunStore``'s summaries (a mixin: it uses the store's ``root``, ``folder`` and ``_require``)."""

    def run_ids(self) -> list[str]:
        """The runs in this store (finished runs or summaries), sorted."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))

    def is_summary(self, config: RunConfig | str) -> bool:
        """True for a run exported by ``export_summary``: read it for comparison, never as a finished run."""
        return (self.folder(config) / SUMMARY_FILE).exists()

    def has_predictions(self, config: RunConfig | str, split: str) -> bool:
        return (self.folder(config) / predictions_file(split)).exists()

    def export_summary(self, config: RunConfig | str, destination_root: str | os.PathLike) -> dict:
        """Copy the run's config, metrics and, when it has them, test predictions to
        ``destination_root/<run_id>/``, marked as a summary (so no store ever counts it as finished).
        Returns what ``summary.json`` records: the run id and whether the test predictions came along."""
        run_id = config if isinstance(config, str) else config.run_id
        source = self.folder(run_id)
        names = [CONFIG_FILE, METRICS_FILE]
        names += [predictions_file("test")] if self.has_predictions(run_id, "test") else []
        for name in names[:2]:
            self._require(run_id, name)
        summary = {"run_id": run_id, "files": names, "test_predictions": len(names) == 3,
                   "exported": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "exported_from": HOST}

        def write(tmp: Path) -> None:
            tmp.mkdir()
            for name in names:
                shutil.copy2(source / name, tmp / name)
            write_json(tmp / SUMMARY_FILE, summary)
        write_atomically(Path(destination_root) / run_id, write)
        return summary
