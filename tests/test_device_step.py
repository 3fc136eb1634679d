"""The training step near the chip (``device_step.py``), checked on a CPU: a CPU takes the plain loop by
default; the device path's logic, forced onto a CPU, trains bitwise as the plain loop where it changes no
arithmetic, reads nothing from the device between validations, and pads into few shapes without changing
predictions beyond rounding."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from conftest import synthetic_split, tiny_config
from fewdims_helpers.training import device_step
from fewdims_helpers.config import ConfigError
from fewdims_helpers.training.device_step import BestCheckpoint, LossMeter, ResidentSplit, StepOptions, predict_resident
from fewdims_helpers.options import STEP_CHANGES, RunOptions
from fewdims_helpers.training.loop import autocast, build_model, predict, train, validation_steps

CPU = torch.device("cpu")
# the device path's logic on a CPU, with the changes that alter no arithmetic (no wider padding, no other
# validation batch, the model's own attention)
EXACT = StepOptions(pad_multiple=1, eval_batch_size=None, attention=None, devices="any")


def task() -> dict:
    return {"train": synthetic_split(40, 0), "validation": synthetic_split(24, 1), "test": synthetic_split(16, 2)}


def recipe(**model_fields):
    config = tiny_config(epochs=3, **model_fields)
    return dataclasses.replace(config, train=dataclasses.replace(config.train, eval_every=2))


def test_a_cpu_takes_the_plain_loop_and_cuda_the_changes_asked_for():
    assert StepOptions().on(CPU).is_plain and StepOptions.from_changes(("sync_free",)).on(CPU).is_plain
    assert StepOptions().on(torch.device("cuda")) == StepOptions()
    assert StepOptions().changes() == tuple(c for c in STEP_CHANGES if c != "compile")
    assert StepOptions.from_changes(("none",)).on(torch.device("cuda")).is_plain
    only = StepOptions.from_changes(("sync_free", "eval_batch"))
    assert only.changes() == ("sync_free", "eval_batch", "fused_adamw") and only.eval_batch_size == device_step.NEAR_CHIP_EVAL_BATCH
    assert StepOptions().without("sdpa").attention == "eager" and "sdpa" not in StepOptions().without("sdpa").changes()
    assert not StepOptions().without("fused_adamw").fused_adamw and StepOptions.plain().fused_adamw
    with pytest.raises(ValueError, match="unknown step change"):
        StepOptions.from_changes(("warp",))
    assert RunOptions(step_changes=("sync_free",)).step_changes == ("sync_free",)
    with pytest.raises(ConfigError, match="step_changes"):
        RunOptions(step_changes=("warp",))


def test_a_cpu_run_by_default_never_enters_the_device_path(monkeypatch):
    """``train`` on a CPU with no step options: none of the device path's pieces is built or called, and the
    run is bitwise the plain loop's."""
    config, tokens = recipe(), task()
    plain = train(config, tokens, device="cpu", progress=False, step_options=StepOptions.plain())

    def refuse(*args, **kwargs):
        raise AssertionError("the device path was entered on a CPU")
    for name in ("ResidentSplit", "encoder_mask", "predict_resident", "prepare_model"):
        monkeypatch.setattr(f"fewdims_helpers.training.loop.{name}", refuse)
    monkeypatch.setattr("fewdims_helpers.training.loop.prepare_model", lambda model, step: refuse() if step.attention
                        or step.compile else None)
    default = train(config, tokens, device="cpu", progress=False)
    assert [h["validation"] for h in default.history] == [h["validation"] for h in plain.history]
    assert [h["train_loss"] for h in default.history] == [h["train_loss"] for h in plain.history]
    for name, value in plain.model.state_dict().items():
        assert torch.equal(default.model.state_dict()[name], value), name


@pytest.mark.parametrize("fast_dropout", [True, False], ids=["fast-dropout", "torch-dropout-sdpa"])
def test_the_device_path_on_a_cpu_trains_as_the_plain_loop(fast_dropout):
    """Resident batches, no per-step reads and the checkpoint kept in place change no arithmetic: with the
    fast dropout (the package's eager attention) the weights are bitwise the plain loop's; with torch's
    dropout and SDPA, where the encoder gets the prepared 4-D mask, equal to float rounding."""
    config = recipe()
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, fast_dropout=fast_dropout))
    tokens = task()
    plain = train(config, tokens, device="cpu", progress=False)
    near = train(config, tokens, device="cpu", progress=False, step_options=EXACT)
    assert [h["validation"] for h in near.history] == [h["validation"] for h in plain.history]
    assert near.best_step == plain.best_step and near.best_step != validation_steps(config, 40)[-1]  # restored
    np.testing.assert_allclose([h["train_loss"] for h in near.history], [h["train_loss"] for h in plain.history],
                               rtol=1e-12)
    plain_state, near_state = plain.model.state_dict(), near.model.state_dict()
    for name, value in plain_state.items():
        if fast_dropout:
            assert torch.equal(near_state[name], value), name
        else:
            torch.testing.assert_close(near_state[name], value, rtol=1e-5, atol=1e-6)


class DeviceReads:
    """Counts, by the optimizer step after which they happened, the reads of a tensor's values by the host
    (``item``, ``bool``, ``float``, ``int``, ``tolist``, ``numpy``, numpy conversions) and the host tensors made
    from numpy arrays (what a host-to-device copy starts from). On a GPU each read waits for the device."""
    READS = ("item", "__bool__", "__float__", "__int__", "__index__", "tolist", "numpy", "__array__")

    def __init__(self, monkeypatch):
        self.step, self.calls = 0, []
        for name in self.READS:
            original = getattr(torch.Tensor, name)
            monkeypatch.setattr(torch.Tensor, name, self._counted(name, original))
        monkeypatch.setattr(torch, "from_numpy", self._counted("from_numpy", torch.from_numpy))

    def _counted(self, name, original):
        def counted(*args, **kwargs):
            self.calls.append((self.step, name))
            return original(*args, **kwargs)
        return counted

    def on_step(self, step: int) -> None:
        self.step = step

    def steps_with(self, names=None) -> set[int]:
        return {step for step, name in self.calls if names is None or name in names}


def test_the_device_path_reads_the_device_only_at_validation_and_the_plain_loop_every_step(monkeypatch):
    config = recipe()
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, fast_dropout=False))  # SDPA
    tokens, checks = task(), set(validation_steps(config, 40))
    steps = validation_steps(config, 40)[-1]
    assert len(checks) < steps  # steps without a validation exist

    plain = DeviceReads(monkeypatch)
    train(config, tokens, device="cpu", progress=False, on_step=plain.on_step, step_options=StepOptions.plain())
    assert set(range(steps)) - checks <= plain.steps_with({"item"})  # the control: a loss read after every step
    assert set(range(steps)) - checks <= plain.steps_with({"from_numpy"})  # and a batch sent every step
    monkeypatch.undo()

    near = DeviceReads(monkeypatch)
    train(config, tokens, device="cpu", progress=False, on_step=near.on_step,
          step_options=dataclasses.replace(StepOptions(), devices="any"))
    assert near.calls, "the validations read the device"
    # a call tagged s happened after step s (tag 0: the set-up); reads only at validations, and an epoch's
    # batch order is sent once, before its first step (after the step ending the epoch before)
    reads = set(DeviceReads.READS)
    assert near.steps_with(reads) <= checks | {0}, sorted(near.steps_with(reads) - checks - {0})
    epoch_ends = set(range(0, steps, steps // config.train.epochs))
    assert near.steps_with({"from_numpy"}) <= checks | epoch_ends
    between = epoch_ends - checks - {0}  # epoch ends without a validation
    assert between and sum(name == "from_numpy" and step in between for step, name in near.calls) == len(between)


def test_resident_batches_are_the_host_batches_and_pad_to_a_multiple():
    split = synthetic_split(30, 3)
    resident = ResidentSplit(split, CPU)
    batches = [np.array([4, 1, 7]), np.array([0, 29, 12, 5])]
    for rows, index in resident.indexed(batches):
        assert np.array_equal(index.numpy(), rows)
        host, here = split.batch(rows, CPU), resident.batch(rows, index)
        for name in host:
            assert torch.equal(host[name], here[name]), name
    padded = ResidentSplit(split, CPU, pad_multiple=8)
    rows = np.array([2, 3])
    batch = padded.batch(rows, torch.from_numpy(rows))
    longest = int(split.lengths[rows].max())
    assert batch["input_ids"].shape[1] == min(-(-longest // 8) * 8, split.input_ids.shape[1])
    assert torch.equal(batch["attention_mask"].sum(1), torch.from_numpy(split.lengths[rows].astype(np.int64)))


@pytest.mark.parametrize("selection", ["cls", "mean", "max_norm_token"])
def test_dynamic_padding_gives_the_predictions_of_fixed_padding(selection):
    """An encoder with attention masks predicts the same (to float rounding) whether a batch is padded to its
    longest example, to a multiple of 8, or to the split's full width, with the 2-D or the prepared 4-D mask."""
    torch.manual_seed(0)
    model = build_model(tiny_config(token_selection=selection)).eval()
    split = synthetic_split(37, 4)
    exact, _ = predict(model, split, CPU, "fp32", batch_size=64)  # each batch padded to its longest
    full = split.input_ids.shape[1]

    def context():
        return autocast(CPU, "fp32")
    for multiple in (8, full):
        for sync_free in (False, True):
            padded = predict_resident(model, ResidentSplit(split, CPU, pad_multiple=multiple), context, 5, sync_free)
            np.testing.assert_allclose(padded, exact, rtol=1e-4, atol=1e-5)


def test_the_loss_is_read_once_per_validation_and_equals_the_plain_mean(monkeypatch):
    values = [0.7, 0.65, 0.61, 0.58]
    plain, near = LossMeter(sync_free=False), LossMeter(sync_free=True)
    for value in values:
        plain.add(torch.tensor(value))
    reads = []
    original = torch.Tensor.item
    monkeypatch.setattr(torch.Tensor, "item", lambda self: reads.append(1) or original(self))
    for value in values:
        near.add(torch.tensor(value))
    assert reads == []  # nothing read while adding
    assert near.mean() == pytest.approx(plain.mean(), rel=1e-12)
    assert np.isnan(near.mean())  # reset after each read


def test_the_best_checkpoint_on_the_device_is_overwritten_in_place_and_restored():
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Linear(2, 1))
    model[1].requires_grad_(False)
    best = BestCheckpoint(model, on_device=True)
    best.keep()
    buffers = {name: t.data_ptr() for name, t in best.state.items()}
    assert set(buffers) == {"0.weight", "0.bias"}  # trainable parameters only
    with torch.no_grad():
        model[0].weight.add_(1.0)
    best.keep()  # a new best: same buffers, new values
    assert {name: t.data_ptr() for name, t in best.state.items()} == buffers
    kept = model[0].weight.detach().clone()
    with torch.no_grad():
        model[0].weight.mul_(3.0)
    best.restore()
    assert torch.equal(model[0].weight, kept)
