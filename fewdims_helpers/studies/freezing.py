"""Study 04, freezing (Fukuhata & Kano 2025, Sec. 4.4): must the pretrained layers move?

Frozen-encoder runs train their head on the encoder's head inputs computed once per split
(``features.frozen_features``; executing a run does this for every ``freeze_pretrained`` run).
Frozen configurations that still train some layers (``frozen_layers``) run normally.

A head on the wholly frozen encoder (b, c) trains with the profile's ``frozen_head_train`` recipe
(default: 20 epochs at lr 1e-3, the best validation kept): on cached features an epoch costs a
fraction of a second, and the fine-tuning recipe leaves such a head far from converged. The
partly frozen settings (d) train with the fine-tuning recipe (``Profile.recipe``). Verdicts
(``verdicts``): each frozen or partly frozen setting against all trained, and the converged linear
probe against all trained, as equivalence at the margin, from
per-example test predictions paired by seed and example.
"""
from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from ..config import RunConfig
from ..data.tasks import get_task
from ..runs.outcomes import run_outcomes
from ..runs.runner import Runner
from ..setup.planning import PlannedRun, StudyPlan
from ..stats.probes import refit, refit_predictions
from ..stats.verdicts import DEFAULT_MARGIN, Outcomes, compare, tally, verdict_lines, verdict_row
from ..training.features import frozen_features

def variants(profile, top_layers: tuple[int, ...], num_layers: int) -> dict[str, dict]:
    """The compared settings as ``ModelConfig`` fields: standard, frozen with a linear or 2-layer
    head, and frozen except the top k layers (k values that would freeze no layer are skipped)."""
    settings = {"(a) standard: all trained, linear head": {},
                "(b) frozen, linear head": {"freeze_pretrained": True},
                "(c) frozen, 2-layer head (the paper's)": {"freeze_pretrained": True, "head_layers": 2}}
    for k in (k for k in top_layers if 0 < k < num_layers):
        settings[f"(d) frozen but top {k} layer{'s' if k > 1 else ''}"] = {"frozen_layers": num_layers - k}
    return settings


def layer_movement(runs: pd.DataFrame) -> pd.DataFrame:
    """Long table of relative weight change per block (embeddings, layer_1, ...) per run."""
    columns = [c for c in runs.columns if c.startswith("weight_change.")]
    long = runs.melt(id_vars=["setting", "data.task", "train.seed"], value_vars=columns,
                     var_name="block", value_name="relative_change")
    return long.assign(block=long["block"].str.removeprefix("weight_change."))


def configs(profile, top_layers: tuple[int, ...]) -> tuple[list[RunConfig], list[str]]:
    """(configs, setting label of each) for every task, seed and setting. The standard setting is the
    profile's baseline run (01's [CLS] runs; 05 and 06 reuse its weights)."""
    chosen, labels = [], []
    for label, fields in variants(profile, top_layers, profile.num_layers).items():
        for task in profile.tasks:
            for seed in profile.seeds:
                chosen.append(profile.baseline(task, seed) if not fields else profile.run_config(task, seed, **fields))
                labels.append(label)
    return chosen, labels


def planned_runs(profile, runner: Runner, top_layers: tuple[int, ...] = (1, 3)) -> StudyPlan:
    """The runs ``run`` executes, for ``run_all.py --plan`` (the linear probes read the frozen runs' cached
    features: no encoder work of their own)."""
    return StudyPlan([PlannedRun(c) for c in configs(profile, tuple(top_layers))[0]])


def run(profile, runner: Runner, top_layers: tuple[int, ...] = (1, 3)) -> pd.DataFrame:
    chosen, labels = configs(profile, top_layers)
    return runner.execute_all(chosen).assign(setting=labels)


PROBE_SETTING = "(b*) frozen, linear probe fit to convergence (reference)"


def linear_probes(profile, runner: Runner) -> pd.DataFrame:
    """The package's one linear-head refit (``probes.refit``: L2-regularised logistic or ridge regression,
    its strength chosen on validation) fit to convergence on the frozen encoder's cached train features,
    scored on test: what the frozen features support when the head is not the limit. Deterministic
    (frozen features do not depend on the seed), so one row per task."""
    rows = []
    for task in profile.tasks:
        config = profile.run_config(task, profile.seeds[0], freeze_pretrained=True)
        tokens = runner.tokens(config)
        features = {split: array.numpy() for split, array in frozen_features(config, tokens, runner.execution, runner.options.sources.cache).items()}
        scores = refit(features, {split: part.labels for split, part in tokens.items()}, get_task(task))
        rows.append({"data.task": task, "setting": PROBE_SETTING, "mean": scores["test"], "std": 0.0, "n": 1})
    return pd.DataFrame(rows)


def probe_outcomes(profile, runner: Runner, task: str) -> Outcomes:
    """The linear probe's test predictions (one row: deterministic, frozen features do not depend on the
    seed), on the baseline runs' test examples in their order."""
    config = profile.run_config(task, profile.seeds[0], freeze_pretrained=True)
    tokens = runner.tokens(config)
    features = {split: array.numpy() for split, array in frozen_features(config, tokens, runner.execution, runner.options.sources.cache).items()}
    spec = get_task(task)
    guesses = refit_predictions(features, {split: part.labels for split, part in tokens.items()}, spec)["test"]
    return Outcomes(guesses, tokens["test"].labels, tokens["test"].idx, (profile.seeds[0],), spec.main_metric)


def verdicts(profile, runner: Runner, top_layers: tuple[int, ...] = (1, 3), margin: float = DEFAULT_MARGIN
             ) -> pd.DataFrame:
    """Per task: does each frozen or partly frozen setting, and the converged linear probe, match all
    trained (the baseline runs)? Paired by seed (the probe: one deterministic row, seeds unpaired) and
    by test example, with the interval and the equivalence verdict against ``margin``. (The paper reports
    that freezing the encoder collapses performance; the claim tested is the measured one.)"""
    chosen, labels = configs(profile, top_layers)
    rows = []
    for task in profile.tasks:
        by_setting: dict[str, list[RunConfig]] = {}
        for config, label in zip(chosen, labels):
            if config.data.task == task:
                by_setting.setdefault(label, []).append(config)
        settings = list(by_setting)
        reference = run_outcomes(runner.store, by_setting[settings[0]])
        sides = [(label, run_outcomes(runner.store, by_setting[label])) for label in settings[1:]]
        sides.append((PROBE_SETTING, probe_outcomes(profile, runner, task)))
        for label, side in sides:
            comparison = compare(side, reference, "equivalent", margin)
            rows.append(verdict_row("04", f"{label.split(':')[0].split(',')[0]} scores within the margin of all "
                                          f"trained", task, label, settings[0], comparison))
    return pd.DataFrame(rows)


def verdict(table: pd.DataFrame) -> str:
    """One line per task and setting, and the tally."""
    return verdict_lines(table) + f"\n{tally(table)}."


def convergence(runs: pd.DataFrame, runner: Runner, every: int = 10) -> pd.DataFrame:
    """Validation main metric x 100 of the frozen-encoder runs by epoch (epoch 1, every ``every``-th
    and the last), mean over seeds, per task and setting, with the mean kept (best) epoch."""
    frozen = runs[runs["model.freeze_pretrained"]]
    rows = []
    for (task, setting), block in frozen.groupby(["data.task", "setting"], sort=False):
        metric = block["main_metric"].iloc[0]
        curves = np.array([list({point["epoch"]: point["validation"][metric]  # each epoch's last validation
                                 for point in runner.store.metrics(run_id)["history"]}.values())
                           for run_id in block["run_id"]])  # (seeds, epochs)
        epochs = sorted({1, *range(every, curves.shape[1] + 1, every), curves.shape[1]})
        rows.append({"data.task": task, "setting": setting, "kept epoch (mean)": block["best_epoch"].mean(),
                     **{f"epoch {e}": round(100 * curves[:, e - 1].mean(), 1) for e in epochs}})
    return pd.DataFrame(rows).set_index(["data.task", "setting"])


# ----------------------------------------------------------------------------- figure

def movement_figure(movement: pd.DataFrame) -> matplotlib.figure.Figure:
    """Relative weight change of each block against the pretrained weights, per setting (mean over tasks and seeds)."""
    order = list(dict.fromkeys(movement["block"]))
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    sns.pointplot(movement, x="block", y="relative_change", hue="setting", order=order, errorbar="sd", ax=ax,
                  dodge=0.3, markersize=4)
    ax.set_ylabel("||θ - θ₀|| / ||θ₀||")
    ax.set_xlabel("")
    ax.legend(fontsize="x-small")
    fig.tight_layout()
    return fig
