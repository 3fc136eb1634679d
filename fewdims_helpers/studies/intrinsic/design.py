"""Study 07's design and runs: the trajectory runs, the rate selection, Table 1's settings (Full,
Freeze, Random, Intrinsic) and the analysis runs (transfer, unified subspace, ablation over d), all
as configs the runner executes."""
from __future__ import annotations

import dataclasses

import pandas as pd

from ...config import RunConfig, SubspaceConfig, ZeroingConfig
from ...runs.runner import Runner
from ...setup.planning import PlannedRun, StudyPlan
from ...training.loop import total_steps

SETTINGS = ("Full", "Freeze", "Random", "Intrinsic")
SELECTION_TEST_EXAMPLES = 64  # rate-selection runs are read on validation only: a token test slice keeps them cheap
VERDICT_SEEDS = 3  # the analysis tables (transfer, ablation, unified, zeroed) carry verdicts only with at least this many seeds
FREEZE_SCALES = (1.0, 3.0, 10.0)  # Freeze's rates tried: the profile's recipe (encoder and head rates) times these
ZEROED_SETTINGS = {"outliers": "outliers zeroed, then fine-tuned", "random": "random zeroed, then fine-tuned"}


def trajectory_config(profile, task: str, seed: int, checkpoints: int) -> RunConfig:
    """The profile's baseline fine-tuning of ``task`` that records ``checkpoints`` checkpoints, spread over
    the whole step cap (no early stop)."""
    config = profile.run_config(task, seed)
    return dataclasses.replace(config, record_trajectory=checkpoints,
                               train=dataclasses.replace(config.train, patience=0))


def with_epochs(config: RunConfig, epochs: int | None) -> RunConfig:
    """``config`` with its step cap set to ``epochs`` (None: as it is)."""
    return config if epochs is None else dataclasses.replace(config, train=dataclasses.replace(config.train, epochs=epochs))


def subspace_config(profile, task: str, seed: int, save_model: bool = False, epochs: int | None = None,
                    **subspace_fields) -> RunConfig:
    """The profile's run of ``task`` trained in a subspace (``SubspaceConfig``), up to ``epochs`` (None: the recipe's)."""
    config = dataclasses.replace(profile.run_config(task, seed), subspace=SubspaceConfig(**subspace_fields),
                                 save_model=save_model)
    return with_epochs(config, epochs)


@dataclasses.dataclass(frozen=True)
class Design:
    """Everything the study varies, from the notebook's parameters."""
    dim: int = 32
    checkpoints: int = 32
    trajectory_seed: int = 100
    ablation_dims: tuple[int, ...] = (8, 16)
    analysis_seeds: tuple[int, ...] = (0, 1, 2)  # seeds of the transfer and ablation runs (the informative tests)
    secondary_seeds: tuple[int, ...] = (0,)  # seeds of the unified-subspace and zeroed-then-fine-tuned runs
    rates: dict = dataclasses.field(default_factory=dict)  # task -> learning rate of theta_t, intrinsic subspaces
    random_rates: dict = dataclasses.field(default_factory=dict)  # task -> learning rate of theta_t, random subspaces
    freeze_scales: dict = dataclasses.field(default_factory=dict)  # task -> Freeze's rates over the recipe's (1: as is)
    # task -> step cap in epochs of every run of the task that trains less than the whole model (Freeze, Random,
    # Intrinsic, their rate sweep and the analysis runs); absent: the recipe's. Full (the baseline) keeps its recipe.
    subspace_epochs: dict = dataclasses.field(default_factory=dict)

    def with_rates(self, rates: dict[str, float], random_rates: dict[str, float],
                   freeze_scales: dict[str, float] | None = None) -> "Design":
        return dataclasses.replace(self, rates=dict(rates), random_rates=dict(random_rates),
                                   freeze_scales=dict(freeze_scales or {}))

    def source(self, profile, task: str) -> str:
        return trajectory_config(profile, task, self.trajectory_seed, self.checkpoints).run_id

    def intrinsic(self, profile, task: str, seed: int, source_task: str | None = None, dim: int | None = None,
                  save_model: bool = False) -> RunConfig:
        return subspace_config(profile, task, seed, save_model=save_model, epochs=self.subspace_epochs.get(task),
                               basis="intrinsic", dim=dim or self.dim,
                               sources=(self.source(profile, source_task or task),), learning_rate=self.rates[task])

    def random(self, profile, task: str, seed: int, dim: int | None = None) -> RunConfig:
        return subspace_config(profile, task, seed, epochs=self.subspace_epochs.get(task), basis="random",
                               dim=dim or self.dim, learning_rate=self.random_rates[task])

    def freeze(self, profile, task: str, seed: int) -> RunConfig:
        """Table 1's Freeze at its chosen rates (the recipe's until a sweep chose others)."""
        return freeze_config(profile, task, seed, self.freeze_scales.get(task, 1.0), self.subspace_epochs.get(task))

    def zeroed(self, profile, task: str, seed: int, coordinates: str) -> RunConfig:
        """Zhang et al.'s outlier protocol: the profile's fine-tuning of ``task`` from the pretrained model
        with the coordinates named by Table 1's intrinsic run of the same task and seed set to 0 first."""
        source = self.intrinsic(profile, task, seed, save_model=True).run_id
        return dataclasses.replace(profile.baseline(task, seed), zeroed=ZeroingConfig(source, coordinates))


def trajectories(profile, design: Design, runner: Runner, background: list[RunConfig] = ()) -> pd.DataFrame:
    configs = [trajectory_config(profile, t, design.trajectory_seed, design.checkpoints) for t in profile.tasks]
    return runner.execute_all(configs, background=background)


def selection_config(config: RunConfig) -> RunConfig:
    """A rate-selection run: read on validation only, so its test split is cut to a token slice."""
    cap = min(SELECTION_TEST_EXAMPLES, config.data.max_test_examples or SELECTION_TEST_EXAMPLES)
    return dataclasses.replace(config, data=dataclasses.replace(config.data, max_test_examples=cap))


def rate_sweep_configs(profile, design: Design, rates: tuple[float, ...],
                       freeze_scales: tuple[float, ...] = FREEZE_SCALES) -> pd.DataFrame:
    """One selection run per task, setting and rate, on ``profile.selection_seed``: theta_t's rate for the
    intrinsic and the random subspace (``rates``), and Freeze's encoder and head rates as the recipe's
    times ``freeze_scales`` (its ``learning_rate`` column: the head's rate, or the only rate)."""
    seed, rows = profile.selection_seed, []
    for task in profile.tasks:
        for rate in rates:
            trial = dataclasses.replace(design, rates={task: rate}, random_rates={task: rate})
            rows.append((task, "Intrinsic", rate, None, selection_config(trial.intrinsic(profile, task, seed))))
            rows.append((task, "Random", rate, None, selection_config(trial.random(profile, task, seed))))
        for scale in freeze_scales:
            config = selection_config(freeze_config(profile, task, seed, scale, design.subspace_epochs.get(task)))
            rows.append((task, "Freeze", config.train.head_learning_rate or config.train.learning_rate, scale, config))
    return pd.DataFrame(rows, columns=["task", "subspace", "learning_rate", "recipe_scale", "config"])


def select_rates(profile, design: Design, runner: Runner, rates: tuple[float, ...],
                 freeze_scales: tuple[float, ...] = FREEZE_SCALES, background: list[RunConfig] = ()
                 ) -> tuple[Design, pd.DataFrame]:
    """Per task, the rates with the best validation score, tuned the same way for each setting that
    trains less than the whole model: theta_t's for the intrinsic and for the random subspace, and
    Freeze's (runs on ``profile.selection_seed``, never reported); returns (``design`` with the chosen
    rates, the sweep)."""
    return _chosen(profile, design, runner, rate_sweep_configs(profile, design, rates, freeze_scales), background)


def _chosen(profile, design: Design, runner: Runner, plan: pd.DataFrame, background: list[RunConfig] = ()
            ) -> tuple[Design, pd.DataFrame]:
    """``design`` with the rates the sweep ``plan`` (``rate_sweep_configs``, some of its tasks) chooses, and the sweep."""
    runs = runner.execute_all(list(plan["config"]), background=background)
    sweep = plan.drop(columns="config").assign(seed=profile.selection_seed,
                                               validation_score=runs["validation_score"].to_numpy())
    best = sweep.loc[sweep.groupby(["task", "subspace"], sort=False)["validation_score"].idxmax()]
    chosen = {kind: dict(zip(group["task"], group["learning_rate"])) for kind, group in best.groupby("subspace")}
    scales = best[best.subspace == "Freeze"]
    return design.with_rates({**design.rates, **chosen["Intrinsic"]}, {**design.random_rates, **chosen["Random"]},
                             {**design.freeze_scales, **dict(zip(scales["task"], scales["recipe_scale"].astype(float)))}
                             ), sweep


def freeze_config(profile, task: str, seed: int, scale: float = 1.0, epochs: int | None = None) -> RunConfig:
    """Table 1's Freeze: encoder layers frozen (V theta_t = 0), embeddings and head trained, at the
    recipe's encoder and head rates times ``scale``, up to ``epochs`` (None: the recipe's)."""
    config = subspace_config(profile, task, seed, epochs=epochs, basis="none")
    if scale == 1.0:
        return config
    hp = config.train
    scaled = dict(learning_rate=float(f"{hp.learning_rate * scale:.6g}"))
    if hp.head_learning_rate is not None:
        scaled["head_learning_rate"] = float(f"{hp.head_learning_rate * scale:.6g}")
    return dataclasses.replace(config, train=dataclasses.replace(hp, **scaled))


def zeroed_configs(profile, design: Design) -> pd.DataFrame:
    """Zhang et al.'s outlier protocol on the secondary seeds: per task and seed, the fine-tuning from the
    pretrained model with its 3-sigma outlier coordinates zeroed first, and with as many random ones."""
    rows = [(label, task, seed, design.zeroed(profile, task, seed, coordinates))
            for seed in design.secondary_seeds for task in profile.tasks for coordinates, label in ZEROED_SETTINGS.items()]
    return pd.DataFrame(rows, columns=["setting", "task", "seed", "config"])


def table_configs(profile, design: Design) -> tuple[list[RunConfig], list[str]]:
    """Table 1: every task, seed and setting."""
    configs, labels = [], []
    for task in profile.tasks:
        for seed in profile.seeds:
            configs += [profile.baseline(task, seed),
                        design.freeze(profile, task, seed),
                        design.random(profile, task, seed),
                        design.intrinsic(profile, task, seed, save_model=True)]
            labels += list(SETTINGS)
    return configs, labels


def analysis_configs(profile, design: Design) -> pd.DataFrame:
    """Transfer and ablation runs over ``design.analysis_seeds``; unified, zero-shot and
    random-of-the-same-dimension runs over ``design.secondary_seeds``; one row each.
    Transfer (the target fine-tuned in the subspace of another task's trajectory: Zhang et al.'s inductive
    test) and the ablation at d < t are the informative tests: at d = t the task's own trajectory end point
    lies inside its subspace. The transferred and ablated subspaces, Unified and Zero-shot use the rate tuned
    for the task's own intrinsic subspace at Table 1's d, Random (d = number of tasks) the rate tuned for its
    random subspace (no sweep of their own: budget)."""
    tasks, rows = profile.tasks, []
    unified_sources = tuple(design.source(profile, t) for t in tasks)
    for seed in design.analysis_seeds:
        for target in tasks:
            for source in tasks:
                if source != target:
                    rows.append(("transfer", source, target, seed, design.intrinsic(profile, target, seed, source)))
            for dim in design.ablation_dims:
                rows.append((f"dim={dim}", target, target, seed, design.intrinsic(profile, target, seed, dim=dim)))
    for seed in design.secondary_seeds:
        for target in tasks:
            rate = design.rates[target]
            others = tuple(design.source(profile, t) for t in tasks if t != target)
            epochs = design.subspace_epochs.get(target)
            rows.append(("Unified", "all", target, seed, subspace_config(
                profile, target, seed, epochs=epochs, basis="intrinsic", dim=len(tasks), sources=unified_sources,
                checkpoints="last", learning_rate=rate)))
            if others:
                rows.append(("Zero-shot", "others", target, seed, subspace_config(
                    profile, target, seed, epochs=epochs, basis="intrinsic", dim=len(others), sources=others,
                    checkpoints="last", learning_rate=rate)))
            rows.append(("Random", "none", target, seed, design.random(profile, target, seed, dim=len(tasks))))
    return pd.DataFrame(rows, columns=["setting", "source", "task", "seed", "config"])


def selection_full(profile) -> list[RunConfig]:
    """Full fine-tuning on the selection seed, one run per task: the top of the sanity ordering that the
    rate sweep's chosen runs are held against (``tables.selection_orderings``). It is the profile's
    baseline run of that seed (05's sizing sources share it)."""
    return [profile.baseline(task, profile.selection_seed) for task in profile.tasks]


def run_table(profile, design: Design, runner: Runner, background: list[RunConfig] = ()) -> pd.DataFrame:
    configs, labels = table_configs(profile, design)
    return runner.execute_all(configs, background=background).assign(setting=labels)


def run_analysis(profile, design: Design, runner: Runner) -> pd.DataFrame:
    plan = analysis_configs(profile, design)
    frame = runner.execute_all(list(plan["config"]))
    return frame.assign(setting=plan["setting"].to_numpy(), source=plan["source"].to_numpy(),
                        config=plan["config"].to_numpy())


def design_for(profile, runner: Runner, dim: int, checkpoints: int, trajectory_seed: int, ablation_dims,
               analysis_seeds, secondary_seeds=(0,), subspace_epochs: dict | None = None) -> Design:
    """The notebook's parameters as a ``Design``, capped to what the profile's runs allow: at most one
    checkpoint per optimizer step, and subspace dimensions no larger than the checkpoints recorded; seeds
    outside the profile's are dropped (none left: the profile's first)."""
    steps = min(total_steps(profile.run_config(t, 0), len(runner.tokens(profile.run_config(t, 0))["train"]))
                for t in profile.tasks)
    checkpoints = min(checkpoints, steps)
    if checkpoints < 2:
        raise ValueError(f"the profile's runs have {steps} optimizer step(s); a trajectory needs at least 2")
    dims = tuple(d for d in ablation_dims if d < min(dim, checkpoints))

    def among_profile(seeds) -> tuple[int, ...]:
        return tuple(s for s in profile.seeds if s in tuple(seeds)) or profile.seeds[:1]
    return Design(dim=min(dim, checkpoints), checkpoints=checkpoints, trajectory_seed=trajectory_seed,
                  ablation_dims=dims, analysis_seeds=among_profile(analysis_seeds),
                  secondary_seeds=among_profile(secondary_seeds),
                  subspace_epochs={t: int(e) for t, e in (subspace_epochs or {}).items() if t in profile.tasks})


def planned_runs(profile, runner: Runner, dim: int = 32, checkpoints: int = 32, trajectory_seed: int = 100,
                 rates: tuple[float, ...] = (0.01, 0.03, 0.1), ablation_dims: tuple[int, ...] = (8, 16),
                 analysis_seeds: tuple[int, ...] = (0, 1, 2), secondary_seeds: tuple[int, ...] = (0,),
                 subspace_epochs: dict | None = None) -> StudyPlan:
    """The runs the notebook executes, for ``run_all.py --plan``: trajectories, the rate sweep and Full on the
    selection seed, Table 1 and the analysis runs. The subspace runs' rates are chosen on the sweep: exact
    when the sweep is in the store, else counted from the design with the first rate as a stand-in."""
    design = design_for(profile, runner, dim, checkpoints, trajectory_seed, ablation_dims, analysis_seeds,
                        secondary_seeds, subspace_epochs)
    plan = rate_sweep_configs(profile, design, tuple(rates))
    runs = [PlannedRun(trajectory_config(profile, t, design.trajectory_seed, design.checkpoints)) for t in profile.tasks]
    runs += [PlannedRun(c) for c in list(plan["config"]) + selection_full(profile)]
    stored = plan["config"].map(runner.store.is_complete).groupby(plan["task"]).all()
    known = {task for task, complete in stored.items() if complete}  # tasks whose chosen rates the store holds
    stand_in = {task: rates[0] for task in profile.tasks}
    design = design.with_rates(stand_in, stand_in)
    if known:
        design, _ = _chosen(profile, design, runner, plan[plan["task"].isin(known)])

    def certain(config: RunConfig) -> bool:  # its id does not depend on a rate still to choose
        return config.data.task in known or (config.subspace is None and config.zeroed is None)
    runs += [PlannedRun(c, certain(c)) for c in table_configs(profile, design)[0]]
    runs += [PlannedRun(c, certain(c)) for c in analysis_configs(profile, design)["config"]]
    runs += [PlannedRun(c, certain(c)) for c in zeroed_configs(profile, design)["config"]]
    return StudyPlan(runs)
