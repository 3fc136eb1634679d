"""Where things live (the repository, figures, notebooks), the one way files are written atomically, and
how a temporary whose writer is gone (a killed process, a lost node) is recognised and removed."""
from __future__ import annotations

import os
import shutil
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Callable

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
HOST = socket.gethostname().replace("-", "_") or "host"  # '-' separates the parts of a temporary name
# A writer touches its temporary this often while it writes; another host's temporary untouched for
# STALE_SECONDS has lost its writer (a dead node). The margin covers clock skew between hosts and the
# attribute caching of network filesystems (NFS caches a file's times for up to a minute).
HEARTBEAT_SECONDS = 10.0
STALE_SECONDS = 300.0


def output_paths(output_dir: str | os.PathLike | None = None, create: bool = True) -> dict[str, Path]:
    """Results, figures and notebooks folders under ``output_dir`` (default: the repository); the runs and
    figures folders are created unless ``create`` is False. This module alone knows the results layout:
    ``results/runs/`` (the run store), ``results/analysis/`` and ``results/features/`` (``results_folder``)
    and ``results/timings-<profile>.json`` (``timings_file``)."""
    root = Path(output_dir) if output_dir is not None else REPO_ROOT
    runs = root / "results" / "runs"
    paths = {"root": root, "results": root / "results", "runs": runs, "analysis": results_folder(runs, "analysis"),
             "features": results_folder(runs, "features"), "figures": root / "figures", "notebooks": root / "notebooks"}
    for key in ("runs", "figures") if create else ():
        paths[key].mkdir(parents=True, exist_ok=True)
    return paths


def results_folder(runs: str | os.PathLike, name: str) -> Path:
    """``results/<name>/`` beside the run store ``runs`` (``results/runs/``): "analysis", the cached analyses of
    stored runs (07's outliers), or "features", 06's features of its model states."""
    return Path(runs).parent / name


def timings_file(output_dir: str | os.PathLike, profile: str) -> Path:
    """Where ``run_all.py`` records each notebook's time with ``profile`` under ``output_dir``."""
    return Path(output_dir) / "results" / f"timings-{profile}.json"


def temporary_name(name: str) -> str:
    """A hidden name for ``name`` being written: host, process and a unique id, so two writers (two
    processes, or two machines sharing a filesystem) never write into the same temporary file."""
    return f".tmp-{name}-{HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def temporary_owner(path: Path) -> tuple[str, str, int] | None:
    """(name, host, pid) of a temporary named by ``temporary_name``; None for any other name."""
    parts = Path(path).name.split("-")
    if parts[0] != ".tmp" or len(parts) < 5 or not parts[-2].isdigit():
        return None
    return "-".join(parts[1:-3]), parts[-3], int(parts[-2])


def process_alive(pid: int) -> bool:
    """True while process ``pid`` of this host runs. A zombie counts as gone: a killed Ray worker whose
    raylet died too is re-parented to an init that may never reap it, so its pid exists forever."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc (not Linux): trust kill(0)
    return state not in ("Z", "X")


def owner_gone(path: Path) -> bool:
    """True when the writer of temporary ``path`` can no longer finish it: on this host, its process is
    gone; on another host, it has not touched the temporary for ``STALE_SECONDS`` (its heartbeat stopped)."""
    owner = temporary_owner(path)
    if owner is None:
        return False
    _, host, pid = owner
    if host == HOST:
        return not process_alive(pid)
    try:
        return time.time() - Path(path).lstat().st_mtime > STALE_SECONDS
    except FileNotFoundError:
        return False  # renamed into place or removed meanwhile


def remove_stale_temporaries(folder: Path, name: str | None = None) -> list[Path]:
    """Remove the temporaries in ``folder`` (of ``name`` only, when given) whose writer is gone, on any
    host; returns what was removed. Safe beside live writers: theirs are kept."""
    removed = []
    for tmp in sorted(Path(folder).glob(".tmp-*")) if Path(folder).is_dir() else []:
        owner = temporary_owner(tmp)
        if owner is None or (name is not None and owner[0] != name) or not owner_gone(tmp):
            continue
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed


def _heartbeat(tmp: Path, stop: threading.Event) -> None:
    """Touch ``tmp`` every ``HEARTBEAT_SECONDS`` until ``stop``: the sign, for other hosts, that its writer lives."""
    while not stop.wait(HEARTBEAT_SECONDS):
        try:
            os.utime(tmp)
        except OSError:
            pass  # not created yet


def write_atomically(path: Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary sibling of ``path`` (a file or a folder), then rename it into
    place: readers see the old content or the whole new one, never a part, and a writer killed midway
    leaves only a hidden temporary behind, which ``remove_stale_temporaries`` recognises (the writer
    touches it while it writes). ``write`` must create exactly the path it is given."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp, aside = path.with_name(temporary_name(path.name)), path.with_name(temporary_name(path.name))
    stop = threading.Event()
    heartbeat = threading.Thread(target=_heartbeat, args=(tmp, stop), daemon=True, name=f"heartbeat {tmp.name}")
    try:
        heartbeat.start()
        try:
            write(tmp)
        finally:
            stop.set()
            heartbeat.join()
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
