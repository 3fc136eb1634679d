"""Run configuration: one frozen dataclass per concern, validated on construction.

A run (one fine-tuning of one model on one task with one seed) is fully described by a
``RunConfig``. Its hash names the run's folder in the store, so the same config always maps to the
same folder and a finished run is never recomputed (see ``runs/store.py``). Variants are made with
``dataclasses.replace``; nothing here is ever mutated.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from .task_specs import TASKS

TOKEN_SELECTIONS = ("cls", "max_norm_token", "max", "mean", "pooler", "last")
HEAD_ACTIVATIONS = ("tanh", "relu", "gelu")
PRECISIONS = ("auto", "bf16", "fp32")


class ConfigError(ValueError):
    """A configuration value is invalid; the message says which and how to fix it."""


def content_key(content: Any, digits: int = 16, default: Any = None) -> str:
    """The first ``digits`` hex digits of the sha256 of ``content``: bytes as given, any other value as its JSON
    with sorted keys (``default``: ``json.dumps``'s, for values JSON cannot hold). The package's one content hash:
    a run's id, the names of cached features, tokenisations and calibrations."""
    data = content if isinstance(content, bytes) else json.dumps(content, sort_keys=True, default=default).encode()
    return hashlib.sha256(data).hexdigest()[:digits]


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


@dataclass(frozen=True)
class DataConfig:
    task: str = field(metadata={"help": "task name from fewdims_helpers.data.tasks.TASKS"})
    max_seq_length: int = field(default=128, metadata={"help": "tokens per example after truncation"})
    max_train_examples: int | None = field(
        default=None, metadata={"help": "stratified seeded subsample of train (None: all)"})
    max_eval_examples: int | None = field(
        default=None, metadata={"help": "stratified seeded subsample of validation (None: all)"})
    max_test_examples: int | None = field(
        default=None, metadata={"help": "stratified seeded subsample of test (None: all, the verdicts' power)"})
    split_seed: int = field(default=0, metadata={"help": "seed of the train/validation/test split and subsamples"})

    def __post_init__(self) -> None:
        _require(self.task in TASKS, f"unknown task {self.task!r}; choose one of {sorted(TASKS)}")
        _require(self.max_seq_length >= 8, f"max_seq_length must be >= 8, got {self.max_seq_length}")
        for name in ("max_train_examples", "max_eval_examples", "max_test_examples"):
            value = getattr(self, name)
            _require(value is None or value >= 2, f"{name} must be None or >= 2, got {value}")


@dataclass(frozen=True)
class ModelConfig:
    model: str = field(default="minilm", metadata={
        "help": "'minilm' (offline default), 'tiny' (random, tests), a hub name or a local model folder"})
    token_selection: str = field(default="cls", metadata={"help": f"one of {TOKEN_SELECTIONS}"})
    layer: int | None = field(default=None, metadata={
        "help": "read hidden layer k (1..num_hidden_layers); layers above k are not computed; None: last"})
    selected_dims: tuple[int, ...] | None = field(default=None, metadata={
        "help": "indices of the hidden vector the classifier sees (DropConnect mask); None: all"})
    head_layers: int = field(default=1, metadata={"help": "1: linear head; 2: linear, activation, linear"})
    head_activation: str = field(default="tanh", metadata={"help": f"activation of a 2-layer head: {HEAD_ACTIVATIONS}"})
    dropout: float = field(default=0.1, metadata={"help": "dropout before the head (the paper's 0.1)"})
    head_dropconnect: float = field(default=0.0, metadata={
        "help": "probability of dropping each input weight of the head's first layer while training"})
    max_norm_include_special: bool = field(default=True, metadata={
        "help": "max_norm_token may pick [CLS]/[SEP] (the paper's literal reading) if True"})
    freeze_pretrained: bool = field(default=False, metadata={"help": "freeze every pretrained parameter"})
    frozen_layers: int = field(default=0, metadata={
        "help": "freeze the embeddings and the first k encoder layers (0: none)"})

    def __post_init__(self) -> None:
        _require(self.token_selection in TOKEN_SELECTIONS,
                 f"unknown token_selection {self.token_selection!r}; choose one of {TOKEN_SELECTIONS}")
        _require(self.layer is None or self.layer >= 1, f"layer must be >= 1 (1 = first encoder layer), got {self.layer}")
        if self.selected_dims is not None:
            dims = tuple(int(d) for d in self.selected_dims)
            _require(len(dims) > 0, "selected_dims is empty; pass None to use all dimensions")
            _require(len(set(dims)) == len(dims), f"selected_dims has duplicates: {list(self.selected_dims)}")
            _require(min(dims) >= 0, f"selected_dims must be >= 0, got {min(dims)}")
            object.__setattr__(self, "selected_dims", tuple(sorted(dims)))
        _require(self.head_layers in (1, 2), f"head_layers must be 1 or 2, got {self.head_layers}")
        _require(self.head_activation in HEAD_ACTIVATIONS,
                 f"unknown head_activation {self.head_activation!r}; choose one of {HEAD_ACTIVATIONS}")
        _require(0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout}")
        _require(0.0 <= self.head_dropconnect < 1.0, f"head_dropconnect must be in [0, 1), got {self.head_dropconnect}")
        _require(self.frozen_layers >= 0, f"frozen_layers must be >= 0, got {self.frozen_layers}")


@dataclass(frozen=True)
class TrainConfig:
    learning_rate: float = field(default=5e-5, metadata={"help": "AdamW learning rate of the encoder (paper: 5e-5)"})
    batch_size: int = field(default=64, metadata={"help": "training batch size (paper: 64)"})
    epochs: int = field(default=5, metadata={
        "help": "maximum epochs (the step cap); the best validation checkpoint is kept"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    warmup_ratio: float = field(default=0.0, metadata={"help": "share of the step cap with linear warm-up"})
    head_learning_rate: float | None = field(default=None, metadata={
        "help": "AdamW learning rate of the head (None: learning_rate); a freshly initialised head on a "
                "low layer needs more than the encoder's rate to leave its start within the budget"})
    eval_every: int = field(default=0, metadata={
        "help": "validate every this many optimizer steps (0: at the end of each epoch); the validation "
                "curve is recorded at this grain and the best checkpoint on it is kept"})
    patience: int = field(default=0, metadata={
        "help": "stop after this many validations without a new best (0: train to the step cap)"})
    seed: int = field(default=0, metadata={"help": "seed of head initialisation, dropout and batch order"})
    precision: str = field(default="auto", metadata={
        "help": "'auto' (bf16 autocast where the hardware supports it), 'bf16' or 'fp32'"})
    eval_batch_size: int = field(default=64, metadata={
        "help": "batch size for evaluation (no effect on results; length-sorted batches of 64 pad less than 256)"})
    fast_dropout: bool = field(default=True, metadata={
        "help": "on CPU, draw dropout masks from numpy's PCG64 (fast_dropout.py) instead of torch's bernoulli_"})

    def __post_init__(self) -> None:
        _require(self.learning_rate > 0, f"learning_rate must be > 0, got {self.learning_rate}")
        _require(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        _require(self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        _require(0.0 <= self.warmup_ratio < 1.0, f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        _require(self.precision in PRECISIONS, f"unknown precision {self.precision!r}; choose one of {PRECISIONS}")
        _require(self.head_learning_rate is None or self.head_learning_rate > 0,
                 f"head_learning_rate must be None or > 0, got {self.head_learning_rate}")
        _require(self.eval_every >= 0, f"eval_every must be >= 0 steps (0: once per epoch), got {self.eval_every}")
        _require(self.patience >= 0, f"patience must be >= 0 validations (0: no early stop), got {self.patience}")


ZEROED_COORDINATES = ("outliers", "random")
SUBSPACE_BASES = ("intrinsic", "random", "none")
SUBSPACE_READINGS = ("displacement", "raw", "centered")


@dataclass(frozen=True)
class SubspaceConfig:
    """Fine-tuning every encoder layer in a d-dimensional subspace (Zhang, Liu & Shao 2023, Eq. 4):
    theta_layer = theta0_layer + V_layer @ mean_i(theta_t^(i)); embeddings and head train in full."""
    basis: str = field(default="intrinsic", metadata={
        "help": "'intrinsic' (SVD of recorded fine-tuning trajectories), 'random' (random orthonormal), "
                "'none' (encoder layers frozen: the paper's Freeze baseline, V theta_t = 0)"})
    dim: int = field(default=32, metadata={"help": "subspace dimension d per layer (top-d singular directions)"})
    sources: tuple[str, ...] = field(default=(), metadata={
        "help": "run ids (same store) whose recorded trajectories give an intrinsic basis"})
    checkpoints: str = field(default="all", metadata={
        "help": "'all' recorded checkpoints of each source, or 'last' (one per source: the unified subspace)"})
    reading: str = field(default="displacement", metadata={
        "help": "rows given to the SVD: 'displacement' theta_i - theta_0 (default), 'raw' theta_i, 'centered' "
                "displacements minus their mean"})
    ensemble: int = field(default=16, metadata={"help": "h: number of averaged theta_t vectors (paper: 16)"})
    learning_rate: float = field(default=0.01, metadata={"help": "learning rate of theta_t (paper: 0.01)"})
    init_std: float = field(default=0.01, metadata={
        "help": "std of each theta_t^(i) at initialisation (not given by the paper; 0 starts exactly at theta_0)"})

    def __post_init__(self) -> None:
        _require(self.basis in SUBSPACE_BASES, f"unknown subspace basis {self.basis!r}; choose one of {SUBSPACE_BASES}")
        _require(self.reading in SUBSPACE_READINGS,
                 f"unknown subspace reading {self.reading!r}; choose one of {SUBSPACE_READINGS}")
        _require(self.checkpoints in ("all", "last"), f"checkpoints must be 'all' or 'last', got {self.checkpoints!r}")
        _require(self.basis == "none" or self.dim >= 1, f"subspace dim must be >= 1, got {self.dim}")
        _require(self.basis != "intrinsic" or len(self.sources) > 0,
                 "an intrinsic subspace needs sources: the run ids of trajectory runs (record_trajectory > 0)")
        _require(self.ensemble >= 1, f"ensemble must be >= 1, got {self.ensemble}")
        _require(self.learning_rate > 0, f"subspace learning_rate must be > 0, got {self.learning_rate}")
        _require(self.init_std >= 0, f"init_std must be >= 0, got {self.init_std}")
        object.__setattr__(self, "sources", tuple(self.sources))


@dataclass(frozen=True)
class ZeroingConfig:
    """Coordinates of the pretrained encoder layers set to 0 before fine-tuning (Zhang, Liu & Shao 2023,
    Sec. 4.5, their protocol: "we disable them by setting them to zero ... and fine-tune the model in the
    full parameter space"). The coordinates come from a finished subspace run's update V theta_t: those
    beyond ``sigmas`` standard deviations of their layer's mean ('outliers'), or as many per layer drawn
    at random with the run's seed ('random'). They are zeroed once, at the start; fine-tuning may move them."""
    source: str = field(metadata={"help": "run id (same store) of a finished subspace run whose V theta_t names the coordinates"})
    coordinates: str = field(default="outliers", metadata={"help": f"one of {ZEROED_COORDINATES}"})
    sigmas: float = field(default=3.0, metadata={"help": "the outlier threshold in standard deviations (paper: 3)"})

    def __post_init__(self) -> None:
        _require(self.coordinates in ZEROED_COORDINATES,
                 f"unknown zeroed coordinates {self.coordinates!r}; choose one of {ZEROED_COORDINATES}")
        _require(self.sigmas > 0, f"zeroing sigmas must be > 0, got {self.sigmas}")


@dataclass(frozen=True)
class RunConfig:
    data: DataConfig
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    save_features: tuple[str, ...] = field(default=(), metadata={
        "help": "splits whose head-input features of the kept model are saved ('validation', 'test', 'train')"})
    save_predictions: tuple[str, ...] = field(default=(), metadata={
        "help": "splits whose logits of the kept model are saved with the example ids", "omit_if_default": True})
    save_model: bool = field(default=False, metadata={
        "help": "save the kept model's weights (model.pt) so later runs can start from it", "omit_if_default": True})
    init_from: str | None = field(default=None, metadata={
        "help": "run id (same store) whose fine-tuned encoder initialises this run; the head is new",
        "omit_if_default": True})
    record_trajectory: int = field(default=0, metadata={
        "help": "record this many evenly spaced checkpoints of every encoder layer while training (trajectory/)",
        "omit_if_default": True})
    subspace: SubspaceConfig | None = field(default=None, metadata={
        "help": "fine-tune the encoder layers in a subspace (Zhang et al.); None: the full space",
        "omit_if_default": True})
    zeroed: ZeroingConfig | None = field(default=None, metadata={
        "help": "set coordinates of the pretrained encoder layers to 0 before fine-tuning (Zhang et al.'s "
                "outlier protocol); None: the pretrained weights as they are", "omit_if_default": True})

    def __post_init__(self) -> None:
        _require(self.record_trajectory == 0 or self.record_trajectory >= 2,
                 f"record_trajectory must be 0 or >= 2 checkpoints, got {self.record_trajectory}")
        _require(self.record_trajectory == 0 or self.train.patience == 0,
                 "a trajectory run records checkpoints spread over its whole step cap; give it patience 0")
        _require(self.subspace is None or not (self.model.freeze_pretrained or self.model.frozen_layers),
                 "a subspace run trains the embeddings and head in full; do not also freeze the encoder")
        _require(self.zeroed is None or (self.subspace is None and self.init_from is None),
                 "a zeroed run fine-tunes the pretrained encoder in the full space; give it no subspace and no "
                 "init_from")
        for name in ("save_features", "save_predictions"):
            for split in getattr(self, name):
                _require(split in ("train", "validation", "test"),
                         f"{name} has unknown split {split!r}; use 'train', 'validation' or 'test'")
            object.__setattr__(self, name, tuple(getattr(self, name)))

    @property
    def artifacts(self) -> tuple[str, ...]:
        """What the run leaves in its folder besides its config and metrics, as ``kind`` or ``kind:split``.
        The run store writes each one and counts the run complete only when all of them exist."""
        names = [f"features:{split}" for split in self.save_features]
        if self.save_features and self.model.head_layers == 1:
            names.append("head")  # the linear head's effective weights: subset scoring reads them
        names += [f"predictions:{split}" for split in self.save_predictions]
        if self.init_from is not None:
            names.append("source_predictions:test")  # the source task's test logits with its own head, after this run
        if self.save_model:
            names.append("model")
        if self.record_trajectory:
            names.append("trajectory")
        if self.subspace is not None and self.subspace.basis != "none":
            names.append("subspace")
        return tuple(names)

    @property
    def measures(self) -> tuple[str, ...]:
        """Measurements stored in the run's metrics beside the standard ones: ``source_after`` (the
        source task's test metrics with its own head on this run's encoder) for an ``init_from`` run;
        ``token_choice`` (how often the read token is [CLS], the final [SEP] or another) for a
        ``max_norm_token`` run."""
        return (("source_after",) if self.init_from is not None else ()) + \
            (("token_choice",) if self.model.token_selection == "max_norm_token" else ())

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunConfig":
        model = dict(data["model"])
        if model.get("selected_dims") is not None:
            model["selected_dims"] = tuple(model["selected_dims"])
        subspace = data.get("subspace")
        return cls(data=DataConfig(**data["data"]), model=ModelConfig(**model),
                   train=TrainConfig(**data["train"]), save_features=tuple(data.get("save_features", ())),
                   save_predictions=tuple(data.get("save_predictions", ())),
                   save_model=data.get("save_model", False), init_from=data.get("init_from"),
                   record_trajectory=data.get("record_trajectory", 0),
                   subspace=SubspaceConfig(**subspace) if subspace is not None else None,
                   zeroed=ZeroingConfig(**data["zeroed"]) if data.get("zeroed") is not None else None)

    @property
    def run_id(self) -> str:
        """Stable name of this run: task, selection, seed, and a hash of the whole config.

        Fields marked ``omit_if_default`` leave the hash alone while at their default, so adding
        such a field to the package does not rename the runs already in a store."""
        identity = self.to_dict()
        for spec in dataclasses.fields(self):
            if spec.metadata.get("omit_if_default") and identity[spec.name] == spec.default:
                del identity[spec.name]
        digest = content_key(identity, 12)
        return f"{self.data.task}-{self.model.token_selection}-s{self.train.seed}-{digest}"


# ----------------------------------------------------------------------------- what a run's cost depends on
def run_kind(config: RunConfig) -> str:
    """'subspace' for training in a (random or intrinsic) subspace, else 'full' (its rates differ)."""
    return "subspace" if config.subspace is not None and config.subspace.basis != "none" else "full"


def rate_key(config: RunConfig) -> tuple:
    """What the calibrated rates of a run depend on besides the machine: model, task (its lengths),
    sequence length, batch sizes, precision and kind of run. A subspace run is measured once, on one
    task, as a ratio to that task's full fine-tuning (``Rates.relative_to``): its extra cost per step,
    V theta_t, is small beside the encoder's and hardly depends on the task or on d."""
    if run_kind(config) == "subspace":
        return (config.model.model, None, None, config.train.batch_size, config.train.eval_batch_size,
                config.train.precision, "subspace")
    return (config.model.model, config.data.task, config.data.max_seq_length, config.train.batch_size,
            config.train.eval_batch_size, config.train.precision, "full")
