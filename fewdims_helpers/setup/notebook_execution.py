"""Executing a study notebook so that a failure never replaces a good rendering.

papermill writes the executed notebook into a temporary file under ``<output>/build/``; it is moved onto
``notebooks/NN_name.ipynb`` only when every cell succeeded. A failed (or interrupted) execution goes to
``<output>/build/failed/NN_name.ipynb`` instead, with its traceback. ``figures/`` is copied aside before the
notebook starts and, when it fails, put back byte for byte: the tables and figures the failed notebook
wrote are discarded, so a notebook's tables and figures are replaced only when it succeeds.
"""
from __future__ import annotations

import filecmp
import os
import shutil
from pathlib import Path

from ..paths import REPO_ROOT, remove_stale_temporaries, temporary_name


def build_folder(root: Path) -> Path:
    return Path(root) / "build"


def failed_copy(root: Path, notebook: Path) -> Path:
    """Where the executed copy of ``notebook`` goes when it fails."""
    return build_folder(root) / "failed" / Path(notebook).name


def record_relative_paths(written: Path, notebook: Path, target: Path, root: Path) -> None:
    """Papermill records where it read and wrote a notebook; keep those paths relative (to the
    repository and to the output folder), so a notebook does not record where its checkout lies (nor
    the temporary it was executed into)."""
    import nbformat

    executed = nbformat.read(written, as_version=4)
    recorded = executed.metadata.get("papermill", {})
    recorded.update(input_path=str(notebook.relative_to(REPO_ROOT)), output_path=str(target.relative_to(root)))
    nbformat.write(executed, written)


def restore(folder: Path, snapshot: Path) -> None:
    """Make ``folder`` hold exactly the files of ``snapshot`` again: what was added goes, what changed is
    copied back (bytes and times); files that did not change are left alone."""
    for path in sorted(folder.rglob("*"), reverse=True):  # a folder's files before the folder
        if (snapshot / path.relative_to(folder)).exists():
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    for source in sorted(snapshot.rglob("*")):
        destination = folder / source.relative_to(snapshot)
        if source.is_dir():
            destination.mkdir(exist_ok=True)
        elif not destination.is_file() or not filecmp.cmp(source, destination, shallow=False):
            shutil.copy2(source, destination)


def execute_notebook(notebook: Path, target: Path, root: Path, **papermill_options) -> None:
    """Execute ``notebook`` with papermill into ``target`` (under the output folder ``root``), leaving
    ``target`` and ``root/figures`` as they were unless every cell succeeds; a failed execution is kept
    at ``failed_copy(root, notebook)`` and papermill's error re-raised."""
    import papermill

    build = build_folder(root)
    build.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(build)  # left by an invocation that was killed
    written = build / f"{temporary_name(notebook.name)}.ipynb"
    figures, snapshot = Path(root) / "figures", build / temporary_name("figures")
    figures.mkdir(parents=True, exist_ok=True)
    shutil.copytree(figures, snapshot, symlinks=True)
    try:
        try:
            papermill.execute_notebook(str(notebook), str(written), **papermill_options)
        except BaseException:
            restore(figures, snapshot)
            if written.exists():
                failed_copy(root, notebook).parent.mkdir(parents=True, exist_ok=True)
                os.replace(written, failed_copy(root, notebook))
            raise
        if written.exists():  # nothing is written by an executor that saves elsewhere
            record_relative_paths(written, notebook, target, root)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(written, target)
    finally:
        shutil.rmtree(snapshot, ignore_errors=True)
        written.unlink(missing_ok=True)
