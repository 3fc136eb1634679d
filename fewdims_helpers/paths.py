"""Where things live: the repository, the run store, figures and the download cache."""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    """Download and tokenisation cache: ``$FEWDIMS_CACHE`` or ``~/.cache/fewdims``."""
    return Path(os.environ.get("FEWDIMS_CACHE", Path.home() / ".cache" / "fewdims"))


def output_paths(output_dir: str | os.PathLike | None = None) -> dict[str, Path]:
    """Results, figures and notebooks folders under ``output_dir`` (default: the repository)."""
    root = Path(output_dir) if output_dir is not None else REPO_ROOT
    paths = {"root": root, "runs": root / "results" / "runs", "figures": root / "figures",
             "notebooks": root / "notebooks"}
    for key in ("runs", "figures"):
        paths[key].mkdir(parents=True, exist_ok=True)
    return paths
