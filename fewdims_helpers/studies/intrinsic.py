"""Study 07, intrinsic task subspaces (Zhang, Liu & Shao, ACL 2023, Sec. 4) on our tasks.

1. Trajectories: one fine-tuning per task records t checkpoints of every encoder layer (a seed
   disjoint from the evaluation seeds, so no evaluated run shares its batch order with it).
2. Table 1: Full (the profile's baseline fine-tuning, ``Profile.baseline``), Freeze (encoder layers
   frozen, embeddings and head trained: V theta_t = 0), Random (random d-dim subspace per layer) and
   Intrinsic (the top-d directions of the task's own trajectory), over the profile's seeds.
3. Outlier dimensions (Sec. 4.5): coordinates of V theta_t beyond 3 sigma of their layer's mean;
   zeroed in the fine-tuned model against as many random coordinates (Table 3), and where they sit
   (Table 4: weight matrix and layer of each layer's top 10).
4. Transfer (Sec. 4.3): task B fine-tuned in the subspace of task A. Unified subspace (Sec. 4.4):
   one checkpoint per task (dim = number of tasks), its zero-shot variant without B, and a random
   subspace of the same dimension. Ablation over d (Appendix A.2).

The learning rate of theta_t (the paper's 0.01) is one of the readings that matter at our scale: the
paper fine-tunes for thousands of steps, the default profile for 50. It is selected per task on
validation from a small grid, separately for the intrinsic and the random subspace, with the
profile's ``selection_seed`` (``select_rates``): no selection run is a reported run, so Table 1's
runs with the profile's seeds are fresh. Every verdict (``verdicts``, ``zeroing_verdicts``) is a
interval over seeds (t, paired by seed) and test examples (jackknife) of per-example test predictions (``verdicts.py``).
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..config import RunConfig, SubspaceConfig
from ..models import pretrained_encoder
from ..paths import write_atomically
from ..planning import PlannedRun, StudyPlan
from ..store import RunStore
from ..subspace import basis_affinity, deltas, encoder_layers, materialize, parameter_slices
from ..tasks import get_task
from ..training import evaluate_and_encode, resolve_device, resolve_precision, total_steps
from ..verdicts import DEFAULT_MARGIN, Outcomes, compare, run_outcomes, verdict_row

SETTINGS = ("Full", "Freeze", "Random", "Intrinsic")
# Zhang, Liu & Shao (2023), Table 6 (ablation over d, RoBERTa-base, GLUE dev, mean of 5 seeds, metric x 100)
ZHANG_ROBERTA_TABLE6 = {
    "cola": {8: 58.04, 16: 60.27, 32: 61.07}, "mrpc": {8: 75.59, 16: 78.20, 32: 87.21},
    "sst2": {8: 91.93, 16: 92.34, 32: 92.43}, "stsb": {8: 84.10, 16: 88.10, 32: 89.43},
    "qqp": {8: 87.58, 16: 89.25, 32: 90.18}, "mnli": {8: 79.96, 16: 81.77, 32: 82.32},
    "qnli": {8: 89.35, 16: 89.14, 32: 90.57}, "rte": {8: 74.30, 16: 78.56, 32: 78.77}}
SELECTION_TEST_EXAMPLES = 64  # rate-selection runs are read on validation only: a token test slice keeps them cheap
VERDICT_SEEDS = 3  # the analysis tables (transfer, unified, ablation) carry verdicts only with at least this many seeds


def trajectory_config(profile, task: str, seed: int, checkpoints: int) -> RunConfig:
    """The profile's baseline fine-tuning of ``task`` that records ``checkpoints`` checkpoints, spread over
    the whole step cap (no early stop)."""
    config = profile.run_config(task, seed)
    return dataclasses.replace(config, record_trajectory=checkpoints,
                               train=dataclasses.replace(config.train, patience=0))


def subspace_config(profile, task: str, seed: int, save_model: bool = False, **subspace_fields) -> RunConfig:
    return dataclasses.replace(profile.run_config(task, seed), subspace=SubspaceConfig(**subspace_fields),
                               save_model=save_model)


@dataclasses.dataclass(frozen=True)
class Design:
    """Everything the study varies, from the notebook's parameters."""
    dim: int = 32
    checkpoints: int = 32
    trajectory_seed: int = 100
    ablation_dims: tuple[int, ...] = (8, 16)
    analysis_seeds: tuple[int, ...] = (0,)  # seeds of the transfer, unified and ablation runs
    rates: dict = dataclasses.field(default_factory=dict)  # task -> learning rate of theta_t, intrinsic subspaces
    random_rates: dict = dataclasses.field(default_factory=dict)  # task -> learning rate of theta_t, random subspaces

    def with_rates(self, rates: dict[str, float], random_rates: dict[str, float]) -> "Design":
        return dataclasses.replace(self, rates=dict(rates), random_rates=dict(random_rates))

    def source(self, profile, task: str) -> str:
        return trajectory_config(profile, task, self.trajectory_seed, self.checkpoints).run_id

    def intrinsic(self, profile, task: str, seed: int, source_task: str | None = None, dim: int | None = None,
                  save_model: bool = False) -> RunConfig:
        return subspace_config(profile, task, seed, save_model=save_model, basis="intrinsic", dim=dim or self.dim,
                               sources=(self.source(profile, source_task or task),), learning_rate=self.rates[task])

    def random(self, profile, task: str, seed: int, dim: int | None = None) -> RunConfig:
        return subspace_config(profile, task, seed, basis="random", dim=dim or self.dim,
                               learning_rate=self.random_rates[task])


def trajectories(profile, design: Design, store: RunStore, background: list[RunConfig] = ()) -> pd.DataFrame:
    configs = [trajectory_config(profile, t, design.trajectory_seed, design.checkpoints) for t in profile.tasks]
    return store.execute_all(configs, background=background)


def selection_config(config: RunConfig) -> RunConfig:
    """A rate-selection run: read on validation only, so its test split is cut to a token slice."""
    cap = min(SELECTION_TEST_EXAMPLES, config.data.max_test_examples or SELECTION_TEST_EXAMPLES)
    return dataclasses.replace(config, data=dataclasses.replace(config.data, max_test_examples=cap))


def rate_sweep_configs(profile, design: Design, rates: tuple[float, ...]) -> pd.DataFrame:
    """One selection run per task, subspace (intrinsic, random) and rate, on ``profile.selection_seed``."""
    seed, rows = profile.selection_seed, []
    for task in profile.tasks:
        for rate in rates:
            trial = dataclasses.replace(design, rates={task: rate}, random_rates={task: rate})
            rows.append((task, "Intrinsic", rate, selection_config(trial.intrinsic(profile, task, seed))))
            rows.append((task, "Random", rate, selection_config(trial.random(profile, task, seed))))
    return pd.DataFrame(rows, columns=["task", "subspace", "learning_rate", "config"])


def select_rates(profile, design: Design, store: RunStore, rates: tuple[float, ...], background: list[RunConfig] = ()
                 ) -> tuple[dict[str, float], dict[str, float], pd.DataFrame]:
    """Per task, the learning rate of theta_t with the best validation score, tuned the same way for
    the intrinsic and for the random subspace (runs on ``profile.selection_seed``, never reported);
    returns (intrinsic rates, random rates, the sweep)."""
    plan = rate_sweep_configs(profile, design, rates)
    runs = store.execute_all(list(plan["config"]), background=background)
    sweep = plan.drop(columns="config").assign(seed=profile.selection_seed,
                                               validation_score=runs["validation_score"].to_numpy())
    best = sweep.loc[sweep.groupby(["task", "subspace"], sort=False)["validation_score"].idxmax()]
    chosen = {kind: dict(zip(group["task"], group["learning_rate"])) for kind, group in best.groupby("subspace")}
    return chosen["Intrinsic"], chosen["Random"], sweep


def freeze_config(profile, task: str, seed: int) -> RunConfig:
    """Table 1's Freeze: encoder layers frozen (V theta_t = 0), embeddings and head trained."""
    return subspace_config(profile, task, seed, basis="none")


def freeze_configs(profile) -> list[RunConfig]:
    """Every Freeze run of Table 1: they need no trajectory and no chosen rate, so they can start first."""
    return [freeze_config(profile, task, seed) for task in profile.tasks for seed in profile.seeds]


def table_configs(profile, design: Design) -> tuple[list[RunConfig], list[str]]:
    """Table 1: every task, seed and setting."""
    configs, labels = [], []
    for task in profile.tasks:
        for seed in profile.seeds:
            configs += [profile.baseline(task, seed),
                        freeze_config(profile, task, seed),
                        design.random(profile, task, seed),
                        design.intrinsic(profile, task, seed, save_model=True)]
            labels += list(SETTINGS)
    return configs, labels


def analysis_configs(profile, design: Design) -> pd.DataFrame:
    """Transfer, unified, zero-shot, random-of-the-same-dimension and ablation runs, one row each.
    Unified and Zero-shot use the rate tuned for the task's own intrinsic subspace, Random (d = number
    of tasks) the rate tuned for its random subspace at Table 1's d (no sweep of their own: budget)."""
    tasks, rows = profile.tasks, []
    unified_sources = tuple(design.source(profile, t) for t in tasks)
    for seed in design.analysis_seeds:
        for target in tasks:
            rate = design.rates[target]
            for source in tasks:
                if source != target:
                    rows.append(("transfer", source, target, seed, design.intrinsic(profile, target, seed, source)))
            others = tuple(design.source(profile, t) for t in tasks if t != target)
            rows.append(("Unified", "all", target, seed, subspace_config(
                profile, target, seed, basis="intrinsic", dim=len(tasks), sources=unified_sources, checkpoints="last",
                learning_rate=rate)))
            if others:
                rows.append(("Zero-shot", "others", target, seed, subspace_config(
                    profile, target, seed, basis="intrinsic", dim=len(others), sources=others, checkpoints="last",
                    learning_rate=rate)))
            rows.append(("Random", "none", target, seed, design.random(profile, target, seed, dim=len(tasks))))
            for dim in design.ablation_dims:
                rows.append((f"dim={dim}", target, target, seed, design.intrinsic(profile, target, seed, dim=dim)))
    return pd.DataFrame(rows, columns=["setting", "source", "task", "seed", "config"])


def run_table(profile, design: Design, store: RunStore, background: list[RunConfig] = ()) -> pd.DataFrame:
    configs, labels = table_configs(profile, design)
    return store.execute_all(configs, background=background).assign(setting=labels)


def run_analysis(profile, design: Design, store: RunStore) -> pd.DataFrame:
    plan = analysis_configs(profile, design)
    frame = store.execute_all(list(plan["config"]))
    return frame.assign(setting=plan["setting"].to_numpy(), source=plan["source"].to_numpy(),
                        config=plan["config"].to_numpy())


def planned_runs(profile, store: RunStore, dim: int = 32, checkpoints: int = 32, trajectory_seed: int = 100,
                 rates: tuple[float, ...] = (0.01, 0.03, 0.1), ablation_dims: tuple[int, ...] = (8, 16),
                 analysis_seeds: tuple[int, ...] = (0,)) -> StudyPlan:
    """The runs the notebook executes, for ``run_all.py --plan``: trajectories, Freeze, the rate sweep,
    Table 1 and the analysis runs. The subspace runs' rates are chosen on the sweep: exact when the sweep
    is in the store, else counted from the design with the first rate as a stand-in."""
    design = design_for(profile, store, dim, checkpoints, trajectory_seed, ablation_dims, analysis_seeds)
    sweep = list(rate_sweep_configs(profile, design, tuple(rates))["config"])
    runs = [PlannedRun(trajectory_config(profile, t, design.trajectory_seed, design.checkpoints)) for t in profile.tasks]
    runs += [PlannedRun(c) for c in freeze_configs(profile) + sweep]
    known = all(store.is_complete(c) for c in sweep)
    if known:
        chosen, chosen_random, _ = select_rates(profile, design, store, tuple(rates))
    else:
        chosen = chosen_random = {task: rates[0] for task in profile.tasks}
    design = design.with_rates(chosen, chosen_random)

    def depends(config: RunConfig) -> bool:  # on the chosen rates
        return config.subspace is not None and config.subspace.basis != "none"
    runs += [PlannedRun(c, known or not depends(c)) for c in table_configs(profile, design)[0]]
    runs += [PlannedRun(c, known) for c in analysis_configs(profile, design)["config"]]
    return StudyPlan(runs)


# ----------------------------------------------------------------------------- outlier dimensions
SIGMAS, TOP, BINS = 3.0, 10, 400  # the paper's 3-sigma rule; Table 4's top 10 per layer; blocks of Fig. 4


def outlier_mask(delta: np.ndarray, sigmas: float = SIGMAS) -> np.ndarray:
    """Coordinates of one layer's update V theta_t deviating more than ``sigmas`` std from its mean."""
    return np.abs(delta - delta.mean()) > sigmas * delta.std()


def stored_deltas(config: RunConfig, store: RunStore) -> list[np.ndarray]:
    """V theta_t of every layer of a finished subspace run, from its saved theta_t (the basis is rebuilt)."""
    model = store.initial_model(config)
    thetas = store.subspace(config)
    for index, layer in enumerate(encoder_layers(model)):
        layer.theta.data = torch.from_numpy(thetas[f"layer_{index}"])
    return deltas(model)


@torch.no_grad()
def _disable(model, masks: list[np.ndarray], originals: list[torch.Tensor] | None) -> None:
    """Set the masked coordinates of every (materialised) layer to 0, or to theta_0 if ``originals``."""
    for index, (layer, mask) in enumerate(zip(encoder_layers(model), masks)):
        for (name, start, stop), p in zip(parameter_slices(layer), layer.parameters()):
            part = torch.from_numpy(mask[start:stop])
            if part.any():
                flat = p.view(-1)
                flat[part] = 0.0 if originals is None else originals[index][start:stop][part].to(p.dtype)


ZEROINGS = ("outliers zeroed", "random zeroed")  # Table 3's settings beside the run as trained


def _zeroing_logits(config: RunConfig, store: RunStore, layer_deltas: list[np.ndarray], sigmas: float
                    ) -> dict[str, list]:
    """Table 3 for one run, the current protocol (no retraining): test logits of the fine-tuned model
    with its 3-sigma outlier coordinates of V theta_t set to 0 (the paper's "disable"), and with as
    many random coordinates of each layer set to 0 (seeded by the run's seed)."""
    model = materialize(store.model(config))
    spec, test = get_task(config.data.task), store.tokens(config)["test"]
    torch_device = resolve_device(store.options.device)
    precision = resolve_precision(config.train.precision, torch_device)
    rng = np.random.default_rng(config.train.seed)
    outliers = [outlier_mask(d, sigmas) for d in layer_deltas]
    randoms = []
    for mask in outliers:
        chosen = np.zeros_like(mask)
        chosen[rng.choice(len(mask), int(mask.sum()), replace=False)] = True
        randoms.append(chosen)

    def logits(masks) -> list:
        edited = copy.deepcopy(model)
        _disable(edited, masks, None)
        return evaluate_and_encode(edited.to(torch_device), test, spec.metric, torch_device, precision)[1].tolist()

    return {"idx": test.idx.tolist(), **{name: logits(masks) for name, masks in zip(ZEROINGS, (outliers, randoms))}}


def _analysis_path(config: RunConfig, store: RunStore, key: dict) -> Path:
    return (store.root.parent / "analysis" /
            f"{config.run_id}-outliers-s{key['sigmas']:g}-t{key['top']}-b{key['bins']}-z{int(key['zeroing'])}.json")


def _analysis_key(zeroing: bool, sigmas: float, top: int, bins: int) -> dict:
    return {"format": 2, "sigmas": sigmas, "top": top, "bins": bins, "zeroing": zeroing}


def outlier_analysis(config: RunConfig, store: RunStore, zeroing: bool = True, sigmas: float = SIGMAS, top: int = TOP,
                     bins: int = BINS) -> dict:
    """Everything Sec. 4.5 needs from one subspace run, computed once and cached next to the store
    (``results/analysis/``), so a rerun only re-renders: the share of 3-sigma outlier coordinates of
    V theta_t, their count per weight matrix, the weight matrix of each layer's ``top`` outliers, the
    largest |V theta_t| per block of each layer (``bins`` blocks, for Fig. 4) and, if ``zeroing``
    (intrinsic runs saved with ``save_model``), the Table 3 test logits (``_zeroing_logits``)."""
    key = _analysis_key(zeroing, sigmas, top, bins)
    path = _analysis_path(config, store, key)
    if path.exists():
        return json.loads(path.read_text())
    layer_deltas = stored_deltas(config, store)
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
        result["zeroing"] = _zeroing_logits(config, store, layer_deltas, sigmas)
    write_atomically(path, lambda tmp: tmp.write_text(json.dumps(result) + "\n"))
    return result


def outlier_analyses(configs: list[RunConfig], store: RunStore, zeroing: bool = True) -> list[dict]:
    """``outlier_analysis`` of every config, in the order given. Those not cached yet are computed in
    the store's worker processes (``RunStore.map``: behind any runs still training there), grouped by
    subspace, so a process builds each basis once."""
    key = _analysis_key(zeroing, SIGMAS, TOP, BINS)
    missing = sorted((c for c in dict.fromkeys(configs) if not _analysis_path(c, store, key).exists()),
                     key=basis_affinity)
    store.map(functools.partial(outlier_analysis, store=store, zeroing=zeroing), missing, desc="outlier analysis")
    return [outlier_analysis(c, store, zeroing=zeroing) for c in configs]


def outlier_share(analyses: list[dict]) -> float:
    """Share of encoder-layer coordinates of V theta_t beyond 3 sigma, over the analysed runs."""
    return sum(sum(a["outliers"]) for a in analyses) / sum(sum(a["parameters"]) for a in analyses)


def zeroing_outcomes(configs: list[RunConfig], analyses: list[dict], store: RunStore) -> dict[str, Outcomes]:
    """Per Table 3 setting ("as trained" and ``ZEROINGS``), the test predictions of the runs of one task
    (``configs``, one per seed, with their ``outlier_analyses``), on the same examples in the same order."""
    trained = run_outcomes(store, configs)
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


def zeroing_table(configs: list[RunConfig], analyses: list[dict], store: RunStore) -> pd.DataFrame:
    """Table 3 rows (task, seed, setting, test_score, disabled_share), from the per-example predictions."""
    rows = []
    for task, (runs, found) in _by_task(configs, analyses).items():
        share = {a["seed"]: sum(a["outliers"]) / sum(a["parameters"]) for a in found}
        for setting, outcomes in zeroing_outcomes(runs, found, store).items():
            rows += [{"task": task, "seed": seed, "setting": setting, "test_score": score, "disabled_share": share[seed]}
                     for seed, score in zip(outcomes.seeds, outcomes.per_seed())]
    return pd.DataFrame(rows)


def zeroing_verdicts(configs: list[RunConfig], analyses: list[dict], store: RunStore, margin: float = DEFAULT_MARGIN
                     ) -> list[dict]:
    """Sec. 4.5 under the current protocol (zeroing in the fine-tuned model, no retraining): zeroing the
    outliers costs more than zeroing as many random coordinates, and more than nothing; zeroing random
    coordinates matches the model as trained."""
    rows = []
    for task, (runs, found) in _by_task(configs, analyses).items():
        sides = zeroing_outcomes(runs, found, store)
        for a, b, claim, text in (
                ("outliers zeroed", "random zeroed", "worse", "zeroing 3-sigma outliers hurts more than zeroing random coordinates"),
                ("outliers zeroed", "as trained", "worse", "zeroing 3-sigma outliers degrades the model"),
                ("random zeroed", "as trained", "equivalent", "zeroing as many random coordinates leaves the model intact")):
            rows.append(verdict_row("07", text + " (zeroed after fine-tuning, not retrained)", task, a, b,
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


# ----------------------------------------------------------------------------- tables and verdict
def transfer_matrix(analysis: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """Mean test score of B (columns) in the subspace of A (rows); the diagonal is B's own subspace
    (Table 1's intrinsic runs with the same seeds)."""
    transfer = analysis[analysis.setting == "transfer"].assign(target=lambda f: f["data.task"])
    seeds = set(transfer["train.seed"])
    own = table[(table.setting == "Intrinsic") & table["train.seed"].isin(seeds)]
    own = own.assign(source=own["data.task"], target=own["data.task"])
    both = pd.concat([transfer, own])
    tasks = list(dict.fromkeys(table["data.task"]))
    matrix = both.pivot_table(index="source", columns="target", values="test_score", aggfunc="mean")
    return matrix.reindex(index=tasks, columns=tasks)


def theta_similarity(analysis: pd.DataFrame, store: RunStore) -> pd.DataFrame:
    """Cosine similarity of the learned theta_t (ensemble mean) between tasks in the unified
    subspace, averaged over layers and seeds (the paper's Fig. 3)."""
    unified = analysis[analysis.setting == "Unified"]
    vectors: dict[str, list] = {}
    for config, task in zip(unified["config"], unified["data.task"]):
        stored = store.subspace(config)
        vectors.setdefault(task, []).append([stored[f"layer_{i}"].mean(0) for i in range(len(stored))])
    tasks = list(vectors)
    matrix = pd.DataFrame(index=tasks, columns=tasks, dtype=float)
    for a in tasks:
        for b in tasks:
            cosines = [float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y)))
                       for run_a, run_b in zip(vectors[a], vectors[b]) for x, y in zip(run_a, run_b)]
            matrix.loc[a, b] = np.mean(cosines)
    return matrix


def setting_outcomes(profile, design: Design, store: RunStore, task: str, setting: str) -> Outcomes:
    """Test predictions of one Table 1 setting of ``task``, one row per seed of the profile."""
    configs, labels = table_configs(profile, design)
    return run_outcomes(store, [c for c, s in zip(configs, labels) if s == setting and c.data.task == task])


TABLE_CLAIMS = (("Intrinsic", "Full", "equivalent", "intrinsic subspace fine-tuning matches full fine-tuning"),
                ("Intrinsic", "Random", "better", "the intrinsic subspace beats a random subspace of the same dimension"),
                ("Random", "Freeze", "better", "a random subspace beats freezing the encoder"))


def verdicts(profile, design: Design, store: RunStore, margin: float = DEFAULT_MARGIN) -> list[dict]:
    """Table 1's claims per task (``TABLE_CLAIMS``), paired by seed and test example."""
    rows = []
    for task in profile.tasks:
        sides = {s: setting_outcomes(profile, design, store, task, s) for s in SETTINGS}
        rows += [verdict_row("07", text, task, a, b, compare(sides[a], sides[b], claim, margin))
                 for a, b, claim, text in TABLE_CLAIMS]
    return rows


def analysis_verdicts(profile, design: Design, store: RunStore, analysis: pd.DataFrame,
                      margin: float = DEFAULT_MARGIN) -> list[dict]:
    """The transfer, unified and ablation claims, paired by seed and example, only when the analysis
    runs have at least ``VERDICT_SEEDS`` seeds (else []: those tables are descriptive)."""
    seeds = sorted(set(analysis["train.seed"]))
    if len(seeds) < VERDICT_SEEDS:
        return []
    configs, labels = table_configs(profile, design)

    def table_side(task, setting):
        return run_outcomes(store, [c for c, s in zip(configs, labels)
                                    if s == setting and c.data.task == task and c.train.seed in seeds])

    def side(task, setting, source=None):
        chosen = analysis[(analysis["data.task"] == task) & (analysis.setting == setting)]
        if source is not None:
            chosen = chosen[chosen.source == source]
        return run_outcomes(store, list(chosen.sort_values("train.seed")["config"]))

    rows = []
    for task in profile.tasks:
        own, full = table_side(task, "Intrinsic"), table_side(task, "Full")
        for source in profile.tasks:
            if source != task:
                rows.append(verdict_row("07", "a transferred subspace matches the task's own", task,
                                        f"Intrinsic of {source}", "Intrinsic (own)",
                                        compare(side(task, "transfer", source), own, "equivalent", margin)))
        rows.append(verdict_row("07", "the unified subspace matches full fine-tuning", task, "Unified", "Full",
                                compare(side(task, "Unified"), full, "equivalent", margin)))
        if (analysis.setting == "Zero-shot").any():
            rows.append(verdict_row("07", "the zero-shot subspace beats a random one of its size", task, "Zero-shot",
                                    "Random (d = tasks)", compare(side(task, "Zero-shot"), side(task, "Random"),
                                                                  "better", margin)))
        for dim in design.ablation_dims:
            rows.append(verdict_row("07", f"d = {dim} matches d = {design.dim}", task, f"dim={dim}", f"dim={design.dim}",
                                    compare(side(task, f"dim={dim}"), own, "equivalent", margin)))
    return rows


def is_roberta(model: str) -> bool:
    """Whether ``model`` (a profile's model name or folder) is a RoBERTa, Zhang et al.'s second model."""
    return pretrained_encoder(model).config.model_type in ("roberta", "xlm-roberta")


def beside_zhang_roberta(ablation_table: pd.DataFrame, model: str) -> pd.DataFrame:
    """The ablation table (rows ``dim=d``, columns tasks) with, when ``model`` is a RoBERTa, Zhang et al.'s
    RoBERTa-base numbers of Table 6 for the same d and task after each row ("—" for a task the paper did
    not run), where the paper has a number for that d and one of the table's tasks. Unchanged for any
    other model."""
    if not is_roberta(model):
        return ablation_table
    rows = []
    for setting, row in ablation_table.iterrows():
        rows.append((setting, row))
        if str(setting).startswith("dim="):
            dim = int(str(setting).removeprefix("dim="))
            paper = [ZHANG_ROBERTA_TABLE6.get(task, {}).get(dim) for task in ablation_table.columns]
            if all(v is None for v in paper):
                continue
            rows.append((f"{setting} Zhang et al. RoBERTa-base (Table 6)",
                         pd.Series([f"{v:.2f}" if v is not None else "—" for v in paper], index=ablation_table.columns)))
    table = pd.DataFrame([r for _, r in rows], index=[name for name, _ in rows])
    table.index.name = ablation_table.index.name
    return table


def oracle_table(profile, design: Design, trajectory_runs: pd.DataFrame) -> pd.DataFrame:
    """The oracle theta_t of each task's intrinsic subspace at d = t (``design.dim == design.checkpoints``):
    the SVD rows are the displacements theta_i - theta_0 and the last is the run's end point, so its
    projection onto the subspace is the end point itself, evaluated with no training inside the
    subspace. It is the trajectory run's kept model only where that run kept its last checkpoint
    (``is_end_point``); one run per task (the trajectory seed): descriptive, no verdict."""
    frame = trajectory_runs.assign(is_end_point=trajectory_runs["best_step"] == trajectory_runs["last_step"],
                                   d=design.checkpoints, exact=design.dim == design.checkpoints)
    return frame[["data.task", "train.seed", "d", "best_step", "is_end_point", "exact", "test_score"]].rename(
        columns={"test_score": "oracle_test_score"})


def design_for(profile, store: RunStore, dim: int, checkpoints: int, trajectory_seed: int, ablation_dims, analysis_seeds) -> Design:
    """The notebook's parameters as a ``Design``, capped to what the profile's runs allow: at most one
    checkpoint per optimizer step, and subspace dimensions no larger than the checkpoints recorded."""
    steps = min(total_steps(profile.run_config(t, 0), len(store.tokens(profile.run_config(t, 0))["train"]))
                for t in profile.tasks)
    checkpoints = min(checkpoints, steps)
    if checkpoints < 2:
        raise ValueError(f"the profile's runs have {steps} optimizer step(s); a trajectory needs at least 2")
    dims = tuple(d for d in ablation_dims if d < min(dim, checkpoints))
    seeds = tuple(s for s in profile.seeds if s in tuple(analysis_seeds)) or profile.seeds[:1]
    return Design(dim=min(dim, checkpoints), checkpoints=checkpoints, trajectory_seed=trajectory_seed,
                  ablation_dims=dims, analysis_seeds=seeds)
