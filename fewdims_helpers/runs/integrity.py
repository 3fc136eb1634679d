"""The integrity of the run store: each run folder's manifest, the checks against it, and the quarantine a
corrupt run is moved into.

A run's ``manifest.json`` records the size and sha256 of every other file of the run. It is written last,
inside the run's atomic write (``execute``), so every run folder in place has one; runs written before
manifests existed get one from ``RunStore.verify`` once their files load cleanly. ``RunStore.is_complete``
compares the sizes (cheap, on every call); a file read for a result is compared with its sha256 first
(once per process and version of the file): ``RunStore``'s checks call the functions here. A run whose files do not match is corrupt: its folder is
moved whole into ``<store>/.quarantine/``, which no store reads (nothing is deleted), with one line saying
which run, what was wrong and where its files went, and the run is computed again. An error while
loading a run's file is one line naming the run, the file and the fix (``CorruptRun``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..config import RunConfig
from ..data.archives import sha256_of
from .run_files import CONFIG_FILE, MANIFEST_FILE, METRICS_FILE, artifact_files, write_json

MANIFEST_FORMAT = 1
REPAIR = ("python run_all.py --verify --repair sets the run aside so that the next invocation recomputes it, "
          "or rerun its notebook with --force")


class CorruptRun(RuntimeError):
    """A run's file does not load, or does not match the run's manifest. The message is one line: what is
    wrong, the run, the file, and what to do."""


def one_line(error: BaseException) -> str:
    return " ".join(f"{type(error).__name__}: {error}".split())


def files_of(folder: Path) -> list[str]:
    """Every file of a run folder ('/'-separated, relative, sorted), except the manifest and hidden files
    (a temporary being written)."""
    return sorted(p.relative_to(folder).as_posix() for p in Path(folder).rglob("*") if p.is_file()
                  and p.name != MANIFEST_FILE and not any(s.startswith(".") for s in p.relative_to(folder).parts))


def manifest_of(folder: Path) -> dict:
    return {"format": MANIFEST_FORMAT, "files": {name: {"size": (folder / name).stat().st_size,
                                                        "sha256": sha256_of(folder / name)} for name in files_of(folder)}}


def write_manifest(folder: Path) -> None:
    """Record the size and sha256 of every file of ``folder`` in its manifest: the last file a run writes."""
    write_json(Path(folder) / MANIFEST_FILE, manifest_of(Path(folder)))


def read_manifest(folder: Path) -> dict[str, dict] | None:
    """File name -> ``size`` and ``sha256``; None for a run written before manifests existed. ValueError
    (one line) when the manifest itself does not load."""
    path = Path(folder) / MANIFEST_FILE
    if not path.exists():
        return None
    try:
        files = json.loads(path.read_text())["files"]
        return {name: {"size": int(entry["size"]), "sha256": str(entry["sha256"])} for name, entry in files.items()}
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"{MANIFEST_FILE} does not load ({one_line(error)})") from error


def declared_files(config: RunConfig) -> list[str]:
    """The files a complete run of ``config`` holds at least: its config, metrics and declared artifacts."""
    return [CONFIG_FILE, METRICS_FILE, *artifact_files(config)]


def file_problem(folder: Path, name: str, entry: dict, hashes: bool) -> str | None:
    """What is wrong with one file the manifest lists (its ``entry``), or None: gone, another size, or (with
    ``hashes``) other bytes of the same size."""
    path = Path(folder) / name
    if not path.is_file():
        return f"{name} is missing (its manifest lists it)"
    size = path.stat().st_size
    if size != entry["size"]:
        return f"{name} has {size} bytes, its manifest says {entry['size']} (truncated or overwritten)"
    if hashes and sha256_of(path) != entry["sha256"]:
        return f"{name} has the size its manifest records but another sha256 (its bytes changed)"
    return None


def folder_problems(folder: Path, declared: list[str], hashes: bool = False) -> list[str]:
    """What is wrong with a run folder ([] when nothing): every file its manifest lists is there with its size
    (and sha256, with ``hashes``) and every ``declared`` file is listed. A folder written before manifests
    existed only needs its declared files."""
    try:
        manifest = read_manifest(folder)
    except ValueError as error:
        return [str(error)]
    if manifest is None:
        return [f"{name} is missing (its config declares it)" for name in declared if not (Path(folder) / name).exists()]
    problems = [f"{name} is missing (its config declares it; its manifest does not list it)"
                for name in declared if name not in manifest]
    return problems + [p for name, entry in manifest.items() if (p := file_problem(folder, name, entry, hashes))]


def load_problem(folder: Path, name: str) -> str | None:
    """None when the file loads whole as what its suffix says (JSON, npz, npy, a torch state), else what failed."""
    path = Path(folder) / name
    try:
        if path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".npz":
            with np.load(path) as stored:  # reading each array checks its zip CRC too
                for key in stored.files:
                    stored[key]
        elif path.suffix == ".npy":
            np.load(path)
        elif path.suffix == ".pt":
            torch.load(path, map_location="cpu", weights_only=True)
        else:
            path.read_bytes()
    except Exception as error:  # any failure to load is the finding
        return f"{name} does not load ({one_line(error)})"
    return None


@dataclass
class Verification:
    """What ``RunStore.verify`` found in one store: its runs, each problem (run id, what), the runs given a
    manifest (written before manifests existed, their files loaded cleanly) and the runs set aside."""
    root: Path
    read_only: bool
    runs: int = 0
    problems: list[tuple[str, str]] = field(default_factory=list)
    adopted: list[str] = field(default_factory=list)
    quarantined: dict[str, Path | None] = field(default_factory=dict)

    @property
    def corrupt(self) -> list[str]:
        return sorted({run_id for run_id, _ in self.problems})

    def lines(self) -> list[str]:
        """One line per problem, one per run set aside, and the summary."""
        lines = [f"corrupt run {run_id} in {self.root}: {problem}" for run_id, problem in self.problems]
        lines += [f"run {run_id} moved to {moved or 'the quarantine by another process'} (nothing deleted); the next "
                  f"invocation recomputes it" for run_id, moved in self.quarantined.items()]
        kind, intact = ("summaries, read-only", "load whole") if self.read_only else ("runs", "intact")
        fix = ""
        if self.corrupt and self.read_only:
            fix = f"; restore them from git: git checkout -- {self.root}"
        elif self.corrupt and not self.quarantined:
            fix = "; python run_all.py --verify --repair sets them aside so that the next invocation recomputes them"
        lines.append(f"{self.root} ({kind}): {self.runs} checked, {self.runs - len(self.corrupt)} {intact}, "
                     f"{len(self.corrupt)} corrupt" + (f", {len(self.adopted)} given a manifest" if self.adopted else "")
                     + (f", {len(self.quarantined)} set aside" if self.quarantined else "") + fix)
        return lines
