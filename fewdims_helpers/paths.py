"""Where things live (the repository, figures, notebooks) and the one way files are written atomically."""
from __future__ import annotations

import os
import shutil
import socket
import uuid
from pathlib import Path
from typing import Callable

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
HOST = socket.gethostname().replace("-", "_") or "host"  # '-' separates the parts of a temporary name


def output_paths(output_dir: str | os.PathLike | None = None) -> dict[str, Path]:
    """Results, figures and notebooks folders under ``output_dir`` (default: the repository)."""
    root = Path(output_dir) if output_dir is not None else REPO_ROOT
    paths = {"root": root, "runs": root / "results" / "runs", "figures": root / "figures",
             "notebooks": root / "notebooks"}
    for key in ("runs", "figures"):
        paths[key].mkdir(parents=True, exist_ok=True)
    return paths


def temporary_name(name: str) -> str:
    """A hidden name for ``name`` being written: host, process and a unique id, so two writers (two
    processes, or two machines sharing a filesystem) never write into the same temporary file."""
    return f".tmp-{name}-{HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def write_atomically(path: Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary sibling of ``path`` (a file or a folder), then rename it into
    place: readers see the old content or the whole new one, never a part, and a writer killed midway
    leaves only a hidden temporary behind. ``write`` must create exactly the path it is given."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp, aside = path.with_name(temporary_name(path.name)), path.with_name(temporary_name(path.name))
    try:
        write(tmp)
        if path.is_dir() and tmp.is_dir():  # os.replace cannot overwrite a non-empty folder: move it aside whole,
            try:                            # so that no reader ever sees it half deleted
                os.rename(path, aside)
            except FileNotFoundError:
                pass  # another writer moved it first
        try:
            os.replace(tmp, path)
        except OSError:
            if not (tmp.is_dir() and path.is_dir()):
                raise
            # another writer (a second driver over one store) put its complete folder there first: it stays
    finally:
        for leftover in (tmp, aside):
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            elif leftover.exists():
                leftover.unlink()
    return path


def save_npz_atomically(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    """``np.savez`` of ``arrays`` to ``path`` through ``write_atomically`` (written through a file object,
    since ``np.savez`` would append ".npz" to the temporary's name)."""
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)
    return write_atomically(path, write)
