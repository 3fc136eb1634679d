"""Where and how this process computes: the device, whether it computes bf16 natively, and its threads, as
one frozen value (``Execution``) resolved once at the edge and handed down, as transformers'
``TrainingArguments`` carries device and precision to every place that needs them.

``resolve`` is the package's one resolution of the device and the precision: ``run_all.py`` and a
notebook's setup call it on the options they were given (``RunOptions.device``), and everything below
them receives the ``Execution`` it returned. A run's precision stays part of its config
(``TrainConfig.precision``: "auto", "bf16" or "fp32"); ``Execution.precision`` says what "auto" means here.
A Ray task resolves again on its node, which may hold another device than the driver (``runs/ray_backend.py``).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch


@dataclass(frozen=True)
class Execution:
    """The device runs use in this process, whether it computes bf16 natively, and the torch threads of one
    run here. Never part of a run's id: it changes how fast a run computes, not what."""
    device: str  # a torch device: "cpu", "cuda", "cuda:1", "mps"
    bf16: bool  # the device computes bf16 natively: precision "auto" means bf16 here
    threads: int  # torch threads of one run in this process

    @property
    def torch_device(self) -> torch.device:
        return torch.device(self.device)

    @property
    def kind(self) -> str:
        """The device's type: "cpu", "cuda", "mps"."""
        return self.torch_device.type

    def precision(self, requested: str) -> str:
        """The precision a run asking for ``requested`` ("auto", "bf16", "fp32") computes in here."""
        if requested != "auto":
            return requested
        return "bf16" if self.bf16 else "fp32"

    def with_threads(self, threads: int) -> "Execution":
        """This execution in a worker process with ``threads`` torch threads (a pool shares the cores)."""
        return replace(self, threads=max(1, int(threads)))


def native_bf16(device: torch.device) -> bool:
    """bf16 where the hardware computes it natively: CUDA with bf16, CPUs with AMX or AVX512-BF16."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        return bool(torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())
    return False


def resolve(device: "str | Execution | None" = None, threads: int | None = None) -> Execution:
    """The execution of this process: ``device`` if given, else CUDA when present, else CPU; its bf16 support;
    ``threads`` torch threads (default: torch's current count). An ``Execution`` is returned as it is."""
    if isinstance(device, Execution):
        return device
    if device is None or device == "auto":
        chosen = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        chosen = torch.device(device)
    return Execution(str(chosen), native_bf16(chosen), threads if threads is not None else torch.get_num_threads())
