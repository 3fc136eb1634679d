"""Study 07's outlier dimensions (Sec. 4.5): coordinates of V theta_t beyond 3 sigma of their layer's
mean, zeroed in the fine-tuned model against as many random ones (Table 3), and where they sit
(Table 4, Fig. 4); each run's analysis computed once in the runner's workers and cached next to the
store (``results/analysis/``)."""
from __future__ import annotations

import copy
import functools
import json
from pathlib import Path

import numpy as np
import pandas as pd

from ...config import RunConfig
from ...data.tasks import get_task
from ...model.pretrained import pretrained_encoder
from ...model.subspace import basis_affinity, encoder_layers, materialize, outlier_mask, parameter_slices, \
    zero_coordinates, zeroing_masks
from ...paths import results_folder, write_atomically
from ...runs.models import kept_model, stored_deltas
from ...runs.outcomes import run_outcomes
from ...runs.runner import Runner
from ...stats.verdicts import DEFAULT_MARGIN, Outcomes, compare, verdict_row
from ...training.loop import evaluate_and_encode
from .design import VERDICT_SEEDS, ZEROED_SETTINGS, Design, zeroed_configs

SIGMAS, TOP, BINS = 3.0, 10, 400  # the paper's 3-sigma rule; Table 4's top 10 per layer; blocks of Fig. 4


ZEROINGS = ("outliers zeroed", "random zeroed")  # Table 3's settings beside the run as trained


def _zeroing_logits(config: RunConfig, runner: Runner, layer_deltas: list[np.ndarray], sigmas: float
                    ) -> dict[str, list]:
    """Table 3 for one run, the current protocol (no retraining): test logits of the fine-tuned model
    with its 3-sigma outlier coordinates of V theta_t set to 0 (the paper's "disable"), and with as
    many random coordinates of each layer set to 0 (seeded by the run's seed)."""
    model = materialize(kept_model(runner.store, config))
    spec, test = get_task(config.data.task), runner.tokens(config)["test"]
    torch_device, precision = runner.execution.torch_device, runner.execution.precision(config.train.precision)
    outliers = zeroing_masks(layer_deltas, "outliers", sigmas, config.train.seed)
    randoms = zeroing_masks(layer_deltas, "random", sigmas, config.train.seed)

    def logits(masks) -> list:
        edited = copy.deepcopy(model)
        zero_coordinates(edited, masks)
        return evaluate_and_encode(edited.to(torch_device), test, spec.metric, torch_device, precision)[1].tolist()

    return {"idx": test.idx.tolist(), **{name: logits(masks) for name, masks in zip(ZEROINGS, (outliers, randoms))}}


def _analysis_path(config: RunConfig, runner: Runner, key: dict) -> Path:
    return (results_folder(runner.store.root, "analysis") /
            f"{config.run_id}-outliers-s{key['sigmas']:g}-t{key['top']}-b{key['bins']}-z{int(key['zeroing'])}.json")


def _analysis_key(zeroing: bool, sigmas: float, top: int, bins: int) -> dict:
    return {"format": 2, "sigmas": sigmas, "top": top, "bins": bins, "zeroing": zeroing}


def outlier_analysis(config: RunConfig, runner: Runner, zeroing: bool = True, sigmas: float = SIGMAS, top: int = TOP,
                     bins: int = BINS) -> dict:
    """Everything Sec. 4.5 needs from one subspace run, computed once and cached next to the store
    (``results/analysis/``), so a rerun only re-renders: the share of 3-sigma outlier coordinates of
    V theta_t, their count per weight matrix, the weight matrix of each layer's ``top`` outliers, the
    largest |V theta_t| per block of each layer (``bins`` blocks, for Fig. 4) and, if ``zeroing``
    (intrinsic runs saved with ``save_model``), the Table 3 test logits (``_zeroing_logits``)."""
    key = _analysis_key(zeroing, sigmas, top, bins)
    path = _analysis_path(config, runner, key)
    if path.exists():
        return json.loads(path.read_text())
    layer_deltas = stored_deltas(runner.store, config.run_id)
    slices = parameter_slices(encoder_layers(pretrained_encoder(config.model.model))[0])
    names, starts = [name for name, _, _ in slices], np.array([start for _, start, _ in slices])
    result = {"run_id": config.run_id, "task": config.data.task, "seed": config.train.seed, **key,
              "outliers": [int(outlier_mask(d, sigmas).sum()) for d in layer_deltas],
              "parameters": [len(d) for d in layer_deltas],
              "component_outliers": np.sum([np.add.reduceat(outlier_mask(d, sigmas).astype(np.int64), starts)
                                            for d in layer_deltas], axis=0).tolist(),
              "components": names,
              "top_components": [[names[np.searchsorted(starts, i, side="right") - 1]
                                  for i in np.argsort(-np.abs(d - d.mean()))[:top]] for d in layer_deltas],
              "profile": [[float(block.max()) for block in np.array_split(np.abs(d), bins)] for d in layer_deltas]}
    if zeroing:
        result["zeroing"] = _zeroing_logits(config, runner, layer_deltas, sigmas)
    write_atomically(path, lambda tmp: tmp.write_text(json.dumps(result) + "\n"))
    return result


def outlier_analyses(configs: list[RunConfig], runner: Runner, zeroing: bool = True) -> list[dict]:
    """``outlier_analysis`` of every config, in the order given. Those not cached yet are computed in
    the runner's worker processes (``Runner.map``: behind any runs still training there), grouped by
    subspace, so a process builds each basis once."""
    key = _analysis_key(zeroing, SIGMAS, TOP, BINS)
    missing = sorted((c for c in dict.fromkeys(configs) if not _analysis_path(c, runner, key).exists()),
                     key=basis_affinity)
    runner.map(functools.partial(outlier_analysis, runner=runner, zeroing=zeroing), missing, desc="outlier analysis")
    return [outlier_analysis(c, runner, zeroing=zeroing) for c in configs]


def outlier_share(analyses: list[dict]) -> float:
    """Share of encoder-layer coordinates of V theta_t beyond 3 sigma, over the analysed runs."""
    return sum(sum(a["outliers"]) for a in analyses) / sum(sum(a["parameters"]) for a in analyses)


def zeroing_outcomes(configs: list[RunConfig], analyses: list[dict], runner: Runner) -> dict[str, Outcomes]:
    """Per Table 3 setting ("as trained" and ``ZEROINGS``), the test predictions of the runs of one task
    (``configs``, one per seed, with their ``outlier_analyses``), on the same examples in the same order."""
    trained = run_outcomes(runner.store, configs)
    result = {"as trained": trained}
    for name in ZEROINGS:
        rows = []
        for config, analysis in zip(configs, analyses):
            if not np.array_equal(analysis["zeroing"]["idx"], trained.idx):
                raise ValueError(f"the zeroed model of {config.run_id} was scored on other test examples than the run")
            rows.append(np.asarray(analysis["zeroing"][name], dtype=np.float32))
        result[name] = Outcomes.from_logits(rows, trained.labels, trained.idx, trained.seeds, trained.metric)
    return result


def _by_task(configs: list[RunConfig], analyses: list[dict]) -> dict[str, tuple[list, list]]:
    tasks: dict[str, tuple[list, list]] = {}
    for config, analysis in zip(configs, analyses):
        tasks.setdefault(config.data.task, ([], []))
        tasks[config.data.task][0].append(config)
        tasks[config.data.task][1].append(analysis)
    return tasks


def zeroing_table(configs: list[RunConfig], analyses: list[dict], runner: Runner) -> pd.DataFrame:
    """Table 3 rows (task, seed, setting, test_score, disabled_share), from the per-example predictions."""
    rows = []
    for task, (runs, found) in _by_task(configs, analyses).items():
        share = {a["seed"]: sum(a["outliers"]) / sum(a["parameters"]) for a in found}
        for setting, outcomes in zeroing_outcomes(runs, found, runner).items():
            rows += [{"task": task, "seed": seed, "setting": setting, "test_score": score, "disabled_share": share[seed]}
                     for seed, score in zip(outcomes.seeds, outcomes.per_seed())]
    return pd.DataFrame(rows)


def zeroing_verdicts(configs: list[RunConfig], analyses: list[dict], runner: Runner, margin: float = DEFAULT_MARGIN
                     ) -> list[dict]:
    """Sec. 4.5 under the current protocol (zeroing in the fine-tuned model, no retraining): zeroing the
    outliers costs more than zeroing as many random coordinates, and more than nothing; zeroing random
    coordinates matches the model as trained."""
    rows = []
    for task, (runs, found) in _by_task(configs, analyses).items():
        sides = zeroing_outcomes(runs, found, runner)
        for a, b, claim, text in (
                ("outliers zeroed", "random zeroed", "worse", "zeroing 3-sigma outliers hurts more than zeroing random coordinates"),
                ("outliers zeroed", "as trained", "worse", "zeroing 3-sigma outliers degrades the model"),
                ("random zeroed", "as trained", "equivalent", "zeroing as many random coordinates leaves the model intact")):
            rows.append(verdict_row("07", text + " (zeroed after fine-tuning, not retrained)", task, a, b,
                                    compare(sides[a], sides[b], claim, margin)))
    return rows


def run_zeroed(profile, design: Design, runner: Runner) -> pd.DataFrame:
    """Zhang et al.'s protocol (Sec. 4.5): per task and secondary seed, Full fine-tuning beside the same
    fine-tuning from the pretrained model with its 3-sigma outlier coordinates zeroed first, and with as
    many random coordinates zeroed first (``design.zeroed_configs``); one row per run (``setting``,
    ``task``, ``seed``, ``test_score``, ``degenerate``, ``config``)."""
    plan = zeroed_configs(profile, design)
    full = pd.DataFrame([("Full", task, seed, profile.baseline(task, seed))
                         for seed in design.secondary_seeds for task in profile.tasks], columns=plan.columns)
    plan = pd.concat([full, plan], ignore_index=True)
    runs = runner.execute_all(list(plan["config"]))
    return plan.assign(test_score=runs["test_score"].to_numpy(), degenerate=runs["degenerate"].to_numpy())


def retrained_zeroing_verdicts(zeroed: pd.DataFrame, runner: Runner, margin: float = DEFAULT_MARGIN) -> list[dict]:
    """Sec. 4.5 under Zhang et al.'s protocol (zeroed, then fine-tuned), paired by seed and example, only
    with at least ``VERDICT_SEEDS`` seeds (else []: the table is descriptive)."""
    if zeroed["seed"].nunique() < VERDICT_SEEDS:
        return []
    outliers, random = ZEROED_SETTINGS["outliers"], ZEROED_SETTINGS["random"]
    rows = []
    for task, runs in zeroed.groupby("task", sort=False):
        sides = {setting: run_outcomes(runner.store, list(group.sort_values("seed")["config"]))
                 for setting, group in runs.groupby("setting")}
        for a, b, claim, text in (
                (outliers, random, "worse", "zeroing 3-sigma outliers hurts more than zeroing random coordinates"),
                (outliers, "Full", "worse", "zeroing 3-sigma outliers degrades the model"),
                (random, "Full", "equivalent", "zeroing as many random coordinates leaves the model intact")):
            rows.append(verdict_row("07", text + " (zeroed, then fine-tuned)", task, a, b,
                                    compare(sides[a], sides[b], claim, margin)))
    return rows


def outlier_locations(analyses: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Table 4: (weight matrix x layer counts of each layer's top outliers, summed over runs; per
    weight matrix, its count of 3-sigma outliers over all runs and layers)."""
    layers = len(analyses[0]["top_components"])
    counts = pd.DataFrame(0, index=analyses[0]["components"], columns=[f"layer {i + 1}" for i in range(layers)])
    for analysis in analyses:
        for index, names in enumerate(analysis["top_components"]):
            for name in names:
                counts.loc[name, f"layer {index + 1}"] += 1
    counts = counts[counts.sum(axis=1) > 0]
    counts.index.name = "component"
    totals = pd.DataFrame({"component": analyses[0]["components"],
                           "outliers": np.sum([a["component_outliers"] for a in analyses], axis=0)})
    return counts, totals.sort_values("outliers", ascending=False, kind="stable")


def delta_profile(analysis: dict) -> pd.DataFrame:
    """Largest |V theta_t| per block of every layer (spikes survive the downsampling), long format."""
    bins = analysis["bins"]
    return pd.DataFrame([{"layer": index + 1, "position": b / bins, "max_abs_update": value}
                         for index, profile in enumerate(analysis["profile"]) for b, value in enumerate(profile)])
