#!/usr/bin/env python
"""Does ``torch.compile`` (inductor) speed up the default training loop on this CPU?

The default profile's baseline run (MiniLM, rt-polarity, 400 examples, 2 epochs, batch 16, bf16 where
the CPU computes it), eager against the encoder compiled with ``dynamic=True`` (dynamic padding gives
every batch its own length; dynamic shapes avoid one compilation per length). Per seed, one thread
(as one worker of the study): the second epoch's training seconds (the first pays for compilation),
the validation pass's seconds, the compile overhead, and the kept epoch's validation accuracy, so a
speed-up is never bought with a different result. The package adopts compilation only at 1.25x or more with metrics
equal within the seed noise. A third side compiles the run with torch's dropout, which dynamo traces
(the fast dropout's numpy draws break the graph), at the price of other dropout masks.

Then, for the first seed, one more epoch of each under the torch profiler (after the timed runs,
so compilation is done): self CPU time by group of operators, grouped as ``profile_run.py`` does, with
inductor's generated kernels as a group of their own, to show which part of the step compilation changed.

Writes ``benchmarks/results/compiled_step.csv``, ``compiled_step_profile.csv`` and ``compiled_step.png``
(``plot`` redraws the figure from the two CSVs).

    python benchmarks/compiled_step.py [--seeds 0 1 2]
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import torch
from torch.profiler import ProfilerActivity, profile

from fewdims_helpers.setup import profiles
from fewdims_helpers.data.tokenized import tokenized_task
from fewdims_helpers.options import DataSources
from fewdims_helpers.training.loop import build_model, train
from profile_run import group_of  # a sibling script (benchmarks/ is on the path when run as a script)

RESULTS = Path(__file__).resolve().parent / "results"


INDUCTOR_KERNELS = ("cpp_fused", "compiledfunction", "torch-compiled", "graph_", "inductor")
SIDES = {False: "eager", True: "compiled", "torch-dropout": "compiled, torch's dropout (other masks)"}


def torch_dropout(config):
    """The same run with torch's dropout instead of the fast numpy one: dynamo traces it (no graph break),
    at the price of other dropout masks, so its metrics are another draw, not the same run."""
    return dataclasses.replace(config, train=dataclasses.replace(config.train, fast_dropout=False))


def compiled_model(config, compiled: bool):
    model = build_model(config)
    if compiled:
        model.encoder = torch.compile(model.encoder, dynamic=True)
    return model


def one_run(config, tokens, compiled: bool) -> dict:
    result = train(config, tokens, device="cpu", progress=False, model=compiled_model(config, compiled))
    first, second = result.history[0], result.history[-1]
    return {"compiled": compiled, "seed": config.train.seed, "precision": result.precision,
            "first_epoch_seconds": first["train_seconds"], "steady_epoch_seconds": second["train_seconds"],
            "validation_seconds": second["validation_seconds"],
            "validation_accuracy": result.history[result.best_epoch - 1]["validation"]["accuracy"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    torch.set_num_threads(1)
    setup = profiles.get_profile("default").resolve(DataSources())
    rows = []
    for seed in args.seeds:
        config = setup.run_config("rt-polarity", seed)
        tokens = tokenized_task(config.data, config.model.model, DataSources())
        for compiled, side_config in ((False, config), (True, config), ("torch-dropout", torch_dropout(config))):
            torch._dynamo.reset()
            rows.append(dict(one_run(side_config, tokens, bool(compiled)), side=SIDES[compiled]))
            row = rows[-1]
            print(f"seed {seed} {row['side']:40s}: epoch 1 {row['first_epoch_seconds']:.1f} s, "
                  f"epoch 2 {row['steady_epoch_seconds']:.1f} s, validation {row['validation_seconds']:.2f} s, "
                  f"validation accuracy {row['validation_accuracy']:.4f} ({row['precision']})", flush=True)
    frame = pd.DataFrame(rows)
    profiles_by_group = pd.concat([profile_groups(setup.run_config("rt-polarity", args.seeds[0]), compiled)
                                   for compiled in (False, True)])
    table = profiles_by_group.pivot_table(index="group", columns="side", values="self_cpu_seconds", aggfunc="sum",
                                          fill_value=0.0).sort_values("eager", ascending=False)
    print("self CPU seconds of one profiled run (2 epochs), by group of operators:")
    print(table.round(3).to_string())
    eager = frame[frame.side == SIDES[False]]
    for side in (SIDES[True], SIDES["torch-dropout"]):
        compiled = frame[frame.side == side]
        train_ratio = eager.steady_epoch_seconds.sum() / compiled.steady_epoch_seconds.sum()
        eval_ratio = eager.validation_seconds.sum() / compiled.validation_seconds.sum()
        overhead = (compiled.first_epoch_seconds - compiled.steady_epoch_seconds).mean()
        frame.loc[frame.side == side, ["train_speedup", "validation_speedup"]] = train_ratio, eval_ratio
        print(f"{side} / eager speed: training {train_ratio:.2f}x, validation {eval_ratio:.2f}x (steady state, "
              f"{len(args.seeds)} seeds); compilation costs about {overhead:.0f} s per process; validation accuracy "
              f"{statistics.mean(compiled.validation_accuracy):.4f} against eager's "
              f"{statistics.mean(eager.validation_accuracy):.4f} (mean over seeds)")
    RESULTS.mkdir(exist_ok=True)
    frame.to_csv(RESULTS / "compiled_step.csv", index=False)
    profiles_by_group.to_csv(RESULTS / "compiled_step_profile.csv", index=False)
    plot(frame, profiles_by_group)
    print(f"wrote {RESULTS / 'compiled_step.csv'}, compiled_step_profile.csv and compiled_step.png")


def plot(frame: pd.DataFrame, profiles_by_group: pd.DataFrame) -> None:
    """Left: steady-state training and validation seconds per side (mean over seeds). Right: self CPU
    seconds by operator group, eager against compiled."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    means = frame.groupby("side", sort=False)[["steady_epoch_seconds", "validation_seconds"]].mean()
    means.plot.barh(ax=axes[0])
    axes[0].set(xlabel="seconds (mean over seeds)", ylabel="", title="one epoch, 1 thread")
    groups = profiles_by_group.pivot_table(index="group", columns="side", values="self_cpu_seconds", aggfunc="sum",
                                           fill_value=0.0)
    groups.sort_values("eager").plot.barh(ax=axes[1])
    axes[1].set(xlabel="self CPU seconds of one run", ylabel="", title="where the time goes")
    fig.tight_layout()
    fig.savefig(RESULTS / "compiled_step.png", dpi=120)


def profile_groups(config, compiled: bool) -> pd.DataFrame:
    """Self CPU seconds by operator group of one run under the profiler (compilation already cached)."""
    tokens = tokenized_task(config.data, config.model.model, DataSources())
    model = compiled_model(config, compiled)
    train(config, tokens, device="cpu", progress=False, model=model)  # compiles (or hits the cache) outside the profile
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        train(config, tokens, device="cpu", progress=False, model=model)
    rows = []
    for event in prof.key_averages():
        name = event.key.lower()
        group = "inductor kernels" if any(key in name for key in INDUCTOR_KERNELS) else group_of(event.key)
        rows.append({"side": "compiled" if compiled else "eager", "group": group, "operator": event.key,
                     "self_cpu_seconds": event.self_cpu_time_total / 1e6})
    return pd.DataFrame(rows)


if __name__ == "__main__":
    main()
