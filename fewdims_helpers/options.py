"""The options of a study, each declared once, as a field with its help text: the profile overrides
(``ProfileOverrides``), where data lives (``DataSources``) and how runs execute (``RunOptions``: device,
workers, force, progress, backend: the local process pool or a Ray cluster, its address and the GPU
share of a run, and on CUDA the changes of the training step near the chip).

A ``RunConfig`` says *what* a run computes (its hash names its folder); ``RunOptions`` says *how*
runs are executed and where their inputs come from, which never changes a result. The overrides
change what a study computes (caps and epochs enter every run id). ``setup/parameters.py`` derives
``run_all.py``'s arguments and the notebooks' ``options`` dictionary from these fields (as
``HfArgumentParser`` does for ``TrainingArguments``): adding a field here adds the flag and the
notebook option. A field's ``metadata`` holds its ``help`` and, where the annotation does not say
enough, the ``type`` that converts and checks a value (a command-line string or a notebook value),
a ``metavar`` and ``choices``.

``RunOptions`` is built once, from ``run_all.py``'s arguments or a notebook's ``options``, and handed
to the runner (``runs.runner.Runner``), which passes it on to every place that loads data or executes
runs (transformers' ``TrainingArguments`` plays the same part); its ``device`` is resolved once, at the
same edge, into the ``execution.Execution`` that travels beside it. Every data loader takes ``DataSources`` as a required
argument, so no call can silently fall back to the Hugging Face hub when the user gave a local GLUE folder.
"""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field, fields
from pathlib import Path

from .config import ConfigError

BACKENDS = ("local", "ray")
# the changes of the training step near the chip (device_step.py), each a switch; on CUDA only
STEP_CHANGES = ("resident_batches", "sync_free", "device_checkpoint", "pad_multiple", "eval_batch", "sdpa",
                "fused_adamw", "compile")
DEFAULT_STEP_CHANGES = tuple(c for c in STEP_CHANGES if c != "compile")


# ---------------------------------------------------------------------------- value types
# Each converts a command-line string or a notebook value and checks it, raising ArgumentTypeError
# (argparse prints "argument --NAME: ..."; the dataclasses raise ConfigError("NAME: ...")).
def _int_at_least(value, low: int, or_auto: bool = False) -> int | str:
    if or_auto and value == "auto":
        return "auto"
    expected = f"an integer >= {low}" + (' or "auto"' if or_auto else "")
    try:
        number = int(value) if not isinstance(value, (bool, float)) else None
    except ValueError:
        number = None
    if number is None:
        raise argparse.ArgumentTypeError(f"{value!r} is not {expected}")
    if number < low:
        raise argparse.ArgumentTypeError(f"{number} is not {expected}")
    return number


def positive_int(value) -> int:
    """An integer >= 1 (epochs)."""
    return _int_at_least(value, 1)


def example_cap(value) -> int:
    """An example cap; at least 2, since the stratified split needs two examples."""
    return _int_at_least(value, 2)


def seed(value) -> int:
    """A seed >= 0 (numpy's generators reject negative seeds)."""
    return _int_at_least(value, 0)


def worker_count(value) -> int | str:
    """"auto" or a positive number of parallel runs."""
    return _int_at_least(value, 1, or_auto=True)


def step_change(value) -> str:
    """A name of ``STEP_CHANGES``, or 'none' (the plain loop)."""
    if value not in (*STEP_CHANGES, "none"):
        raise argparse.ArgumentTypeError(f"{value!r} is not a step change; choose from {', '.join(STEP_CHANGES)} "
                                         f"or none")
    return value


def gpu_share(value) -> float:
    """GPUs per run, a fraction in (0, 1] or a whole number (Ray's rule for GPU requests)."""
    try:
        share = float(value) if not isinstance(value, bool) else None
    except (TypeError, ValueError):
        share = None
    if share is None:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of GPUs")
    if not (share > 0 and (share <= 1 or share.is_integer())):
        raise argparse.ArgumentTypeError(f"{value} is not a fraction in (0, 1] or a whole number of GPUs; "
                                         f"e.g. 1, 0.5 or 0.25")
    return share


def check_fields(options) -> None:
    """Convert and check every field that declares a ``type`` (a tuple: each element), in place."""
    for spec in fields(options):
        convert, value = spec.metadata.get("type"), getattr(options, spec.name)
        if convert is None or value is None:
            continue
        try:
            checked = tuple(convert(v) for v in value) if spec.metadata.get("many") else convert(value)
        except argparse.ArgumentTypeError as error:
            raise ConfigError(f"{spec.name}: {error}") from None
        object.__setattr__(options, spec.name, checked)


@dataclass(frozen=True)
class ProfileOverrides:
    """Changes to the profile, for pilots of a big profile (any profile); None: the profile's own.
    Caps and epochs are part of each run's configuration (its run id), so a pilot's runs are stored
    beside the full runs, never in their place."""
    model: str | None = field(default=None, metadata={"help": "model name on the hub or a local model folder"})
    tasks: tuple[str, ...] | None = field(default=None, metadata={"help": "override the profile's tasks",
                                                                  "many": True, "type": str})
    seeds: tuple[int, ...] | None = field(default=None, metadata={
        "help": "seeds of every study (distinct integers >= 0)", "many": True, "type": seed, "metavar": "S"})
    max_train_examples: int | None = field(default=None, metadata={
        "help": "cap on training examples per task (>= 2)", "type": example_cap, "metavar": "N"})
    max_eval_examples: int | None = field(default=None, metadata={
        "help": "cap on validation and on test examples per task (>= 2)", "type": example_cap, "metavar": "N"})
    epochs: int | None = field(default=None, metadata={"help": "training epochs (>= 1)", "type": positive_int,
                                                       "metavar": "N"})

    def __post_init__(self) -> None:
        for name in ("tasks", "seeds"):
            if isinstance(getattr(self, name), (str, int)):
                object.__setattr__(self, name, (getattr(self, name),))
        check_fields(self)
        if self.seeds is not None and len(self.seeds) == 0:
            raise ConfigError("seeds is empty; give at least one seed (three or more to report mean ± std)")
        if self.seeds is not None and len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"seeds {' '.join(map(str, self.seeds))} repeats a seed; give distinct seeds")


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
    device: str | None = field(default=None, metadata={"help": "torch device (default: CUDA when present, else CPU)"})
    workers: int | str = field(default="auto", metadata={
        "help": 'parallel training runs: "auto" (on a GPU, as many as its free memory holds at the runs\' '
                "footprint, at most one per CPU core; on a CPU one per core up to 4) or a number "
                "(default: the profile's)", "type": worker_count, "metavar": "W"})
    force: bool = field(default=False, metadata={"help": "recompute runs already in the store"})
    progress: bool = field(default=True, metadata={"help": "progress bars"})
    backend: str = field(default="local", metadata={
        "help": "local: this machine's worker processes (default); ray: Ray tasks on a cluster (ray_backend.py)",
        "choices": BACKENDS})
    ray_address: str | None = field(default=None, metadata={
        "help": 'with backend ray: "auto" (the cluster `ray start` made on this machine) or host:port of its '
                "head; default: a private Ray on this machine", "metavar": "ADDR"})
    gpus_per_run: float | None = field(default=None, metadata={
        "help": "with backend ray: GPUs one run asks for (default: 1 where the cluster has GPUs, else a CPU); "
                "a fraction such as 0.25 packs several runs onto one GPU", "type": gpu_share, "metavar": "F"})

    step_changes: tuple[str, ...] | None = field(default=None, metadata={
        "help": "on CUDA, the changes of the training step near the chip to make (default: "
                f"{' '.join(DEFAULT_STEP_CHANGES)}; 'none': the plain loop; device_step.py); a CPU always "
                "trains with the plain loop", "many": True, "type": step_change, "metavar": "C"})

    def __post_init__(self) -> None:
        if isinstance(self.step_changes, str):
            object.__setattr__(self, "step_changes", (self.step_changes,))
        check_fields(self)
        if self.backend not in BACKENDS:
            raise ConfigError(f"unknown backend {self.backend!r}; choose one of {BACKENDS}")
        if self.backend != "ray" and (self.ray_address is not None or self.gpus_per_run is not None):
            raise ConfigError("ray_address and gpus_per_run need backend ray; set it or leave them out")
        if self.ray_address is not None and (not isinstance(self.ray_address, str) or not self.ray_address.strip()):
            raise ConfigError(f"ray_address must be 'auto' or 'host:port', got {self.ray_address!r}")
