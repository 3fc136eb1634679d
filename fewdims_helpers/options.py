"""How runs execute, as one frozen value: device, data locations, workers, force, progress, backend.

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

BACKENDS = ("local",)


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
    backend: str = field(default="local", metadata={"help": f"where runs execute: {BACKENDS}"})

    def __post_init__(self) -> None:
        if not (self.workers == "auto" or (isinstance(self.workers, int) and self.workers >= 1)):
            raise ConfigError(f"workers must be 'auto' or a positive integer, got {self.workers!r}")
        if self.backend not in BACKENDS:
            raise ConfigError(f"unknown backend {self.backend!r}; choose one of {BACKENDS}")

    @classmethod
    def from_parameters(cls, glue_dir: str | None = None, device: str | None = None, workers: int | str | None = None,
                        force: bool = False, progress: bool = True, default_workers: int | str = "auto",
                        cache_dir: str | None = None) -> "RunOptions":
        """The options of a notebook's ``parameters`` cell (``workers=None``: the profile's ``default_workers``)."""
        sources = DataSources(glue_dir=glue_dir, **({"cache_dir": cache_dir} if cache_dir else {}))
        chosen = default_workers if workers is None else workers
        return cls(sources=sources, device=device, workers=int(chosen) if str(chosen).isdigit() else chosen,
                   force=bool(force), progress=bool(progress))
