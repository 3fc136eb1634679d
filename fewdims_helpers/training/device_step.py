"""The training step near the chip: what ``loop.train`` does differently on a GPU, each change a switch.

A MiniLM step of batch 16 is a few milliseconds of kernels, yet on a GPU the plain loop spent tens of
milliseconds per step (issue 29): the host waited for the device at every step. ``StepOptions`` names each
change; ``StepOptions()`` (the default) applies them on CUDA only, and every other device trains with the
plain loop, statement for statement the loop before them (``tests/test_bert_unchanged.py``):

- ``resident_batches``: a split's token ids, types, lengths and labels are copied to the device once; a
  batch is a slice of one index tensor sent per epoch (pinned, non-blocking), so a step copies nothing from
  the host (a blocking host-to-device copy waits for the device);
- ``sync_free``: the loss is summed on the device and read at validation; the encoder gets a prepared 4-D
  padding mask (transformers' SDPA path otherwise asks the device whether a batch has padding), and ``cls``
  reads position 0 of the right-padded batch without asking the device whether it is real;
- ``device_checkpoint``: the best checkpoint lives in buffers allocated once on the device and overwritten in
  place (one device-to-device copy per improvement, none at the last validation), not a fresh clone each time;
- ``pad_multiple``: a batch is padded to its longest example rounded up to a multiple (8): dynamic padding
  into few shapes. Padding is masked, so this changes results at rounding level only;
- ``eval_batch_size``: validation in length-sorted batches of this size (512), its logits gathered on the
  device and read once;
- ``attention``: 'sdpa' (torch's fused attention, transformers' default) or 'eager' (for measuring);
- ``fused_adamw``: torch's fused AdamW (the plain loop's choice on CPUs and CUDA too);
- ``compile``: ``torch.compile`` of the encoder (off by default: the issue adopts it only at 1.2x or more).

bf16 autocast is the run's precision (``TrainConfig.precision``, resolved by ``execution.Execution.precision``).
``StepOptions.on(device)`` derives the step from the device ``train`` already resolved: it resolves nothing.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from ..data.tokenized import TokenizedSplit, sorted_batches
from ..model import architectures
from ..options import STEP_CHANGES

NEAR_CHIP_PAD_MULTIPLE = 8
NEAR_CHIP_EVAL_BATCH = 512


@dataclass(frozen=True)
class StepOptions:
    """The switches of the training step (module docstring). ``devices``: 'cuda' applies them on CUDA only
    (elsewhere the plain loop: ``on``), 'any' on whatever device trains (tests run the logic on a CPU)."""
    resident_batches: bool = True
    sync_free: bool = True
    device_checkpoint: bool = True
    pad_multiple: int = NEAR_CHIP_PAD_MULTIPLE
    eval_batch_size: int | None = NEAR_CHIP_EVAL_BATCH  # None: the run's own (TrainConfig.eval_batch_size)
    attention: str | None = "sdpa"  # None: the model's own
    fused_adamw: bool = True
    compile: bool = False
    devices: str = "cuda"

    def __post_init__(self) -> None:
        if self.pad_multiple < 1:
            raise ValueError(f"pad_multiple must be >= 1, got {self.pad_multiple}")
        if self.attention not in (None, "sdpa", "eager"):
            raise ValueError(f"attention must be None, 'sdpa' or 'eager', got {self.attention!r}")
        if self.devices not in ("cuda", "any"):
            raise ValueError(f"devices must be 'cuda' or 'any', got {self.devices!r}")

    @classmethod
    def plain(cls) -> "StepOptions":
        """The loop as it was before issue 29, on every device (a CPU always trains with it)."""
        return cls(resident_batches=False, sync_free=False, device_checkpoint=False, pad_multiple=1,
                   eval_batch_size=None, attention=None, fused_adamw=True, compile=False, devices="any")

    @classmethod
    def from_changes(cls, changes: tuple[str, ...] | None) -> "StepOptions":
        """The step with only ``changes`` (names of ``options.STEP_CHANGES``; None: the default ones) on CUDA,
        the plain loop's choice elsewhere."""
        if changes is None:
            return cls()
        unknown = set(changes) - set(STEP_CHANGES) - {"none"}
        if unknown:
            raise ValueError(f"unknown step change(s) {sorted(unknown)}; choose from {STEP_CHANGES}")
        plain = cls.plain()
        values = {field: CHANGE_ON[name] if name in changes else getattr(plain, field)
                  for name, field in CHANGE_FIELDS.items()}
        return cls(**values, devices="cuda")

    def without(self, change: str) -> "StepOptions":
        """This step with one change (a name of ``options.STEP_CHANGES``) switched off, for measuring it:
        'sdpa' off is eager attention, 'fused_adamw' off torch's multi-tensor AdamW."""
        return dataclasses.replace(self, **{CHANGE_FIELDS[change]: CHANGE_OFF[change]})

    def on(self, device: torch.device) -> "StepOptions":
        """The step ``train`` takes on ``device`` (already resolved): these switches, or the plain loop."""
        return self if self.devices == "any" or device.type == "cuda" else StepOptions.plain()

    @property
    def is_plain(self) -> bool:
        return all(getattr(self, f) == getattr(StepOptions.plain(), f) for f in CHANGE_FIELDS.values())

    def changes(self) -> tuple[str, ...]:
        """The names of the changes this step makes (fused AdamW was the plain loop's already)."""
        return tuple(name for name, f in CHANGE_FIELDS.items() if getattr(self, f) == CHANGE_ON[name])


# each change (options.STEP_CHANGES, the command line's names): its StepOptions field, made and switched off
CHANGE_FIELDS = {"resident_batches": "resident_batches", "sync_free": "sync_free",
                 "device_checkpoint": "device_checkpoint", "pad_multiple": "pad_multiple",
                 "eval_batch": "eval_batch_size", "sdpa": "attention", "fused_adamw": "fused_adamw",
                 "compile": "compile"}
CHANGE_ON = {"resident_batches": True, "sync_free": True, "device_checkpoint": True,
             "pad_multiple": NEAR_CHIP_PAD_MULTIPLE, "eval_batch": NEAR_CHIP_EVAL_BATCH, "sdpa": "sdpa",
             "fused_adamw": True, "compile": True}
CHANGE_OFF = {"resident_batches": False, "sync_free": False, "device_checkpoint": False, "pad_multiple": 1,
              "eval_batch": None, "sdpa": "eager", "fused_adamw": False, "compile": False}
assert tuple(CHANGE_FIELDS) == STEP_CHANGES == tuple(CHANGE_ON) == tuple(CHANGE_OFF), \
    "options.STEP_CHANGES and the tables here name the same changes"


def prepare_model(model: torch.nn.Module, step: StepOptions) -> None:
    """The attention implementation and compilation ``step`` asks of ``model`` (a ``SequenceClassifier``)."""
    encoder = model.encoder
    if step.attention is not None and hasattr(encoder, "set_attn_implementation"):
        if getattr(encoder.config, "_attn_implementation", None) != step.attention:
            encoder.set_attn_implementation(step.attention)
    if step.compile:
        encoder.compile(dynamic=True)  # in place: the module's parameters and names stay as they are


def encoder_mask(model: torch.nn.Module, attention_mask: torch.Tensor) -> torch.Tensor | None:
    """The padding mask as transformers' SDPA attention uses it, (batch, 1, 1, seq) boolean, for an encoder
    with BERT's attention modules running SDPA; None otherwise (the encoder then builds its own from the
    2-D mask). Given ready, transformers does not ask the device whether the batch has padding."""
    encoder = model.encoder
    family = architectures.family(encoder)
    if family.decoder or not family.bert_attention or getattr(encoder.config, "_attn_implementation", None) != "sdpa":
        return None
    return attention_mask.bool()[:, None, None, :]


class ResidentSplit:
    """A tokenised split on the device: ids, types, lengths and labels (and cached head inputs of a frozen
    encoder) copied once. A batch is (host rows, device index): its width comes from the host's lengths, its
    tensors from indexing the device's, so a step sends nothing from the host."""

    def __init__(self, split: TokenizedSplit, device: torch.device, pad_multiple: int = 1,
                 cached: torch.Tensor | None = None):
        self.split, self.device, self.pad_multiple = split, device, pad_multiple
        self.width = split.input_ids.shape[1]
        self.input_ids = torch.from_numpy(split.input_ids.astype(np.int64)).to(device)
        self.token_type_ids = torch.from_numpy(split.token_type_ids.astype(np.int64)).to(device)
        self.lengths = torch.from_numpy(split.lengths.astype(np.int64)).to(device)
        self.labels = torch.from_numpy(split.labels).to(device)
        self.positions = torch.arange(self.width, device=device)
        self.cached = None if cached is None else cached.to(device)
        self._sent: list[torch.Tensor] = []  # pinned host indices of copies that may be in flight

    def __len__(self) -> int:
        return len(self.split)

    def indexed(self, batches: list[np.ndarray]) -> list[tuple[np.ndarray, torch.Tensor]]:
        """Each batch's host rows with its device index; all of them sent in one copy."""
        flat = np.concatenate(batches).astype(np.int64) if batches else np.zeros(0, dtype=np.int64)
        host = torch.from_numpy(flat)
        if self.device.type == "cuda":
            host = host.pin_memory()
        self._sent = [host]
        sent, out, start = host.to(self.device, non_blocking=True), [], 0
        for rows in batches:
            out.append((rows, sent[start: start + len(rows)]))
            start += len(rows)
        return out

    def width_of(self, rows: np.ndarray) -> int:
        """The batch's padded width: its longest example, rounded up to ``pad_multiple`` (at most the split's)."""
        longest = int(self.split.lengths[rows].max())
        return min(-(-longest // self.pad_multiple) * self.pad_multiple, self.width)

    def batch(self, rows: np.ndarray, index: torch.Tensor) -> dict[str, torch.Tensor]:
        """``TokenizedSplit.batch``'s tensors (padded to ``width_of``), from the device's copy."""
        width = self.width_of(rows)
        mask = (self.positions[:width] < self.lengths[index][:, None]).long()
        return {"input_ids": self.input_ids[index, :width], "attention_mask": mask,
                "token_type_ids": self.token_type_ids[index, :width]}


def features(model: torch.nn.Module, split: ResidentSplit, rows: np.ndarray, index: torch.Tensor,
             sync_free: bool) -> torch.Tensor:
    """Head inputs (batch, hidden) of a resident batch: the cached ones, or the encoder's."""
    if split.cached is not None:
        return split.cached[index]
    batch = split.batch(rows, index)
    if not sync_free:
        return model.features(**batch)
    return model.features(**batch, encoder_mask=encoder_mask(model, batch["attention_mask"]), first_token_real=True)


@torch.no_grad()
def predict_resident(model: torch.nn.Module, split: ResidentSplit, autocast, batch_size: int,
                     sync_free: bool) -> np.ndarray:
    """Logits (n, num_labels) of ``split`` in split order, in length-sorted batches of ``batch_size``,
    gathered on the device and read once. ``autocast``: a context manager factory (the run's precision)."""
    was_training = model.training
    model.eval()
    logits = torch.zeros((len(split), model.num_labels), dtype=torch.float32, device=split.device)
    for rows, index in split.indexed(sorted_batches(split.split.lengths, batch_size)):
        with autocast():
            batch_logits = model.classify(features(model, split, rows, index, sync_free))
        logits.index_copy_(0, index, batch_logits.float())
    model.train(was_training)
    return logits.cpu().numpy()


class LossMeter:
    """The training loss between validations: read each step (``sync_free`` off: the plain loop's
    ``loss.item()``) or summed on the device and read once, at validation."""

    def __init__(self, sync_free: bool):
        self.sync_free = sync_free
        self.values: list[float] = []
        self.total: torch.Tensor | None = None
        self.count = 0

    def add(self, loss: torch.Tensor) -> None:
        if not self.sync_free:
            self.values.append(loss.item())
            return
        value = loss.detach().double()
        self.total = value if self.total is None else self.total + value
        self.count += 1

    def mean(self) -> float:
        """The mean since the last ``mean`` (then reset): one read of the device, in ``sync_free``."""
        if not self.sync_free:
            mean, self.values = float(np.mean(self.values)), []
            return mean
        mean = float("nan") if self.total is None else float(self.total / self.count)
        self.total, self.count = None, 0
        return mean


class BestCheckpoint:
    """The trainable parameters of the best validation so far. ``on_device`` off: a fresh clone per
    improvement, restored with ``load_state_dict`` (the plain loop). On: buffers allocated at the first
    improvement and overwritten in place (device-to-device, no host synchronisation)."""

    def __init__(self, model: torch.nn.Module, on_device: bool):
        self.model, self.on_device = model, on_device
        self.state: dict[str, torch.Tensor] | None = None

    def keep(self) -> None:
        named = [(name, p) for name, p in self.model.named_parameters() if p.requires_grad]
        if not self.on_device or self.state is None:
            self.state = {name: p.detach().clone() for name, p in named}
            return
        with torch.no_grad():
            for name, p in named:
                self.state[name].copy_(p, non_blocking=True)

    def restore(self) -> None:
        if self.state is None:
            return
        if not self.on_device:
            self.model.load_state_dict(self.state, strict=False)
            return
        with torch.no_grad():
            for name, p in self.model.named_parameters():
                if name in self.state:
                    p.copy_(self.state[name], non_blocking=True)
