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
from .store import RunStore


def export_summary(store: RunStore, config: RunConfig | str, destination_root: str | os.PathLike) -> dict:
    """Copy the run's config, metrics and, when it has them, test predictions from ``store`` to
    ``destination_root/<run_id>/``, marked as a summary (so no store ever counts it as finished).
    Returns what ``summary.json`` records: the run id and whether the test predictions came along."""
    run_id = config if isinstance(config, str) else config.run_id
    source = store.folder(run_id)
    names = [CONFIG_FILE, METRICS_FILE]
    names += [predictions_file("test")] if store.has_predictions(run_id, "test") else []
    for name in names[:2]:
        store.require(run_id, name)
    summary = {"run_id": run_id, "files": names, "test_predictions": len(names) == 3,
               "exported": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "exported_from": HOST}

    def write(tmp: Path) -> None:
        tmp.mkdir()
        for name in names:
            shutil.copy2(source / name, tmp / name)
        write_json(tmp / SUMMARY_FILE, summary)
    write_atomically(Path(destination_root) / run_id, write)
    return summary
