"""How runs execute, as one frozen value: device, data locations, workers, force, progress, backend
(the local process pool or a Ray cluster, its address and the GPU share of a run).

A ``RunConfig`` says *what* a run computes (its hash names its folder); ``RunOptions`` says *how*
runs are executed and where their inputs come from, which never changes a result. It is built once,
from ``run_all.py``'s arguments or a notebook's ``parameters`` cell, and handed to the run store,
which passes it on to every place that loads data or executes runs (transformers' ``TrainingArguments``
plays the same part). Every data loader takes ``DataSources`` as a required argument, so no call can
silently fall back to the Hugging Face hub when the user gave a local GLUE folder.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .config import ConfigError

BACKENDS = ("local", "ray")


def default_cache_dir() -> str:
    """Download and tokenisation cache: ``$FEWDIMS_CACHE`` or ``~/.cache/fewdims``."""
    return str(Path(os.environ.get("FEWDIMS_CACHE", Path.home() / ".cache" / "fewdims")).expanduser())


@dataclass(frozen=True)
class DataSources:
    """Where task data and caches live. Workers on other machines need the same paths (a shared filesystem)."""
    glue_dir: str | None = field(default=None, metadata={
        "help": "local GLUE copy in the original TSV layout (CoLA/, SST-2/, MRPC/, ...); None: the Hugging Face hub"})
    cache_dir: str = field(default_factory=default_cache_dir, metadata={
        "help": "downloaded archives, tokenised tasks and frozen-encoder features"})

    def __post_init__(self) -> None:
        if self.glue_dir is not None:
            object.__setattr__(self, "glue_dir", str(Path(self.glue_dir).expanduser().resolve()))
        object.__setattr__(self, "cache_dir", str(Path(self.cache_dir).expanduser()))

    @property
    def cache(self) -> Path:
        return Path(self.cache_dir)


@dataclass(frozen=True)
class RunOptions:
    """How a batch of runs executes; none of it changes what a run computes."""
    sources: DataSources = field(default_factory=DataSources, metadata={"help": "where data and caches live"})
    device: str | None = field(default=None, metadata={"help": "torch device; None: CUDA when present, else CPU"})
    workers: int | str = field(default="auto", metadata={
        "help": "parallel runs: 'auto' (1 on a GPU, one per CPU core up to 4) or a number"})
    force: bool = field(default=False, metadata={"help": "recompute runs already in the store"})
    progress: bool = field(default=True, metadata={"help": "progress bars"})
    backend: str = field(default="local", metadata={
        "help": f"where runs execute: {BACKENDS}: this machine's process pool, or Ray tasks (ray_backend.py)"})
    ray_address: str | None = field(default=None, metadata={
        "help": "backend='ray': None (a private Ray on this machine), 'auto' (the cluster started here with "
                "`ray start`) or 'host:port' of a cluster's head"})
    gpus_per_run: float | None = field(default=None, metadata={
        "help": "backend='ray': GPUs one run asks for; None: 1 where the cluster has GPUs, else a CPU; a fraction "
                "(0.25) packs several runs onto one GPU"})

    def __post_init__(self) -> None:
        if not (self.workers == "auto" or (isinstance(self.workers, int) and self.workers >= 1)):
            raise ConfigError(f"workers must be 'auto' or a positive integer, got {self.workers!r}")
        if self.backend not in BACKENDS:
            raise ConfigError(f"unknown backend {self.backend!r}; choose one of {BACKENDS}")
        if self.backend != "ray" and (self.ray_address is not None or self.gpus_per_run is not None):
            raise ConfigError("ray_address and gpus_per_run apply to the Ray backend only; set backend='ray' "
                              "(run_all.py --backend ray) or leave them out")
        if self.ray_address is not None and (not isinstance(self.ray_address, str) or not self.ray_address.strip()):
            raise ConfigError(f"ray_address must be 'auto' or 'host:port', got {self.ray_address!r}")
        if self.gpus_per_run is not None:
            share = self.gpus_per_run
            if isinstance(share, bool) or not isinstance(share, (int, float)) or not (
                    share > 0 and (share <= 1 or float(share).is_integer())):
                raise ConfigError(f"gpus_per_run must be a fraction in (0, 1] or a whole number of GPUs, got {share!r}"
                                  f"; e.g. 1, 0.5 or 0.25 (Ray's rule for GPU requests)")
            object.__setattr__(self, "gpus_per_run", float(share))

    @classmethod
    def from_parameters(cls, glue_dir: str | None = None, device: str | None = None, workers: int | str | None = None,
                        force: bool = False, progress: bool = True, default_workers: int | str = "auto",
                        cache_dir: str | None = None, backend: str = "local", ray_address: str | None = None,
                        gpus_per_run: float | None = None) -> "RunOptions":
        """The options of a notebook's ``parameters`` cell (``workers=None``: the profile's ``default_workers``)."""
        sources = DataSources(glue_dir=glue_dir, **({"cache_dir": cache_dir} if cache_dir else {}))
        chosen = default_workers if workers is None else workers
        return cls(sources=sources, device=device, workers=int(chosen) if str(chosen).isdigit() else chosen,
                   force=bool(force), progress=bool(progress), backend=backend or "local", ray_address=ray_address,
                   gpus_per_run=None if gpus_per_run is None else float(gpus_per_run))
