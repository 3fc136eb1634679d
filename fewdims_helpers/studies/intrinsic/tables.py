"""Study 07's tables and verdicts: transfer between tasks' subspaces, the similarity of theta_t, Table
1's settings against full fine-tuning, the analysis runs' claims and the oracle of d = t."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ...data.tasks import get_task
from ...model.pretrained import pretrained_encoder
from ...report import published
from ...runs.outcomes import run_outcomes
from ...runs.runner import Runner
from ...stats.verdicts import DEFAULT_MARGIN, Outcomes, compare, validation_noise, verdict_row
from .design import SETTINGS, VERDICT_SEEDS, Design, selection_full, table_configs

CIRCULAR = ("near-circular at d = t: the source trajectory's end point lies in the subspace, so this mostly tests "
            "whether training reaches a point known to be there")
INFORMATIVE = "informative: the subspace does not contain the task's own fine-tuned end point"


def zhang_ablation(table: int) -> dict[str, dict[int, float]]:
    """Zhang et al.'s ablation over d (Table 5, BERT-base-cased; Table 6, RoBERTa-base; GLUE, mean of 5 seeds,
    metric x 100) from the package's published numbers (``published.csv``): {task: {d: value}}, the tasks
    named as the package names them (``sst2``, ``stsb``)."""
    found: dict[str, dict[int, float]] = {}
    rows = published.select("zhang", table)
    for task, column, value in zip(rows["task"], rows["column"], rows["value"]):
        found.setdefault(published.task_code(task), {})[int(column.removeprefix("dim="))] = value
    return found


ZHANG_ROBERTA_TABLE6 = zhang_ablation(6)  # RoBERTa-base, beside a RoBERTa's ablation table (beside_zhang_roberta)


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


def theta_similarity(analysis: pd.DataFrame, runner: Runner) -> pd.DataFrame:
    """Cosine similarity of the learned theta_t (ensemble mean) between tasks in the unified
    subspace, averaged over layers and seeds (the paper's Fig. 3)."""
    unified = analysis[analysis.setting == "Unified"]
    vectors: dict[str, list] = {}
    for config, task in zip(unified["config"], unified["data.task"]):
        stored = runner.store.subspace(config)
        vectors.setdefault(task, []).append([stored[f"layer_{i}"].mean(0) for i in range(len(stored))])
    tasks = list(vectors)
    matrix = pd.DataFrame(index=tasks, columns=tasks, dtype=float)
    for a in tasks:
        for b in tasks:
            cosines = [float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y)))
                       for run_a, run_b in zip(vectors[a], vectors[b]) for x, y in zip(run_a, run_b)]
            matrix.loc[a, b] = np.mean(cosines)
    return matrix


def setting_outcomes(profile, design: Design, runner: Runner, task: str, setting: str) -> Outcomes:
    """Test predictions of one Table 1 setting of ``task``, one row per seed of the profile."""
    configs, labels = table_configs(profile, design)
    return run_outcomes(runner.store, [c for c, s in zip(configs, labels) if s == setting and c.data.task == task])


TABLE_CLAIMS = (("Intrinsic", "Full", "equivalent", "intrinsic subspace fine-tuning matches full fine-tuning"),
                ("Intrinsic", "Random", "better", "the intrinsic subspace beats a random subspace of the same dimension"),
                ("Random", "Freeze", "better", "a random subspace beats freezing the encoder"))


def verdicts(profile, design: Design, runner: Runner, margin: float = DEFAULT_MARGIN) -> list[dict]:
    """Table 1's claims per task (``TABLE_CLAIMS``), paired by seed and test example. Each row's ``note`` says
    whether it is informative: with d = t the intrinsic subspace holds the trajectory's end point."""
    circular = design.dim >= design.checkpoints
    rows = []
    for task in profile.tasks:
        sides = {s: setting_outcomes(profile, design, runner, task, s) for s in SETTINGS}
        rows += [verdict_row("07", text, task, a, b, compare(sides[a], sides[b], claim, margin),
                             note=CIRCULAR if circular and a == "Intrinsic" else "")
                 for a, b, claim, text in TABLE_CLAIMS]
    return rows


def analysis_verdicts(profile, design: Design, runner: Runner, analysis: pd.DataFrame,
                      margin: float = DEFAULT_MARGIN) -> list[dict]:
    """Zhang et al.'s informative tests, paired by seed and example, over ``design.analysis_seeds``: a
    subspace transferred from another task's trajectory (inductive transfer) and the task's own subspace at
    d < t (ablation), each against the task's own subspace at Table 1's d (equivalence) and against a random
    subspace of Table 1's d (better); then the unified and zero-shot claims over ``design.secondary_seeds``.
    A family with fewer than ``VERDICT_SEEDS`` seeds has no verdicts (its table is descriptive)."""
    configs, labels = table_configs(profile, design)

    def table_side(task, setting, seeds):
        return run_outcomes(runner.store, [c for c, s in zip(configs, labels)
                                    if s == setting and c.data.task == task and c.train.seed in seeds])

    def side(task, setting, source=None):
        chosen = analysis[(analysis["data.task"] == task) & (analysis.setting == setting)]
        if source is not None:
            chosen = chosen[chosen.source == source]
        return run_outcomes(runner.store, list(chosen.sort_values("train.seed")["config"]))

    rows, seeds, secondary = [], design.analysis_seeds, design.secondary_seeds
    for task in profile.tasks if len(seeds) >= VERDICT_SEEDS else ():
        own, random = table_side(task, "Intrinsic", seeds), table_side(task, "Random", seeds)
        tested = [(f"Intrinsic of {source}", side(task, "transfer", source), "a transferred subspace")
                  for source in profile.tasks if source != task]
        tested += [(f"dim={dim}", side(task, f"dim={dim}"), f"the intrinsic subspace at d = {dim}")
                   for dim in design.ablation_dims]
        for name, outcomes, subject in tested:
            rows.append(verdict_row("07", f"{subject} matches the task's own at d = {design.dim}", task, name,
                                    f"Intrinsic (own, d = {design.dim})", compare(outcomes, own, "equivalent", margin),
                                    note=INFORMATIVE))
            rows.append(verdict_row("07", f"{subject} beats a random subspace of d = {design.dim}", task, name,
                                    f"Random (d = {design.dim})", compare(outcomes, random, "better", margin),
                                    note=INFORMATIVE))
    for task in profile.tasks if len(secondary) >= VERDICT_SEEDS else ():
        full = table_side(task, "Full", secondary)
        rows.append(verdict_row("07", "the unified subspace matches full fine-tuning", task, "Unified", "Full",
                                compare(side(task, "Unified"), full, "equivalent", margin), note=""))
        if (analysis.setting == "Zero-shot").any():
            rows.append(verdict_row("07", "the zero-shot subspace beats a random one of its size", task, "Zero-shot",
                                    "Random (d = tasks)", compare(side(task, "Zero-shot"), side(task, "Random"),
                                                                  "better", margin), note=""))
    return rows


def unified_runs(table: pd.DataFrame, analysis: pd.DataFrame, design: Design) -> pd.DataFrame:
    """Table 2's rows over the secondary seeds: Full (Table 1's), Random (d = number of tasks), Zero-shot and
    Unified, one row per run."""
    rows = pd.concat([table[table.setting == "Full"],
                      analysis[analysis.setting.isin(["Random", "Zero-shot", "Unified"])]])
    return rows[rows["train.seed"].isin(design.secondary_seeds)]


def ablation_runs(table: pd.DataFrame, analysis: pd.DataFrame, design: Design) -> pd.DataFrame:
    """The ablation over d on the analysis seeds: the ``dim=d`` runs beside Table 1's intrinsic runs
    (``dim=<Table 1's d>``), one row per run."""
    own = table[(table.setting == "Intrinsic") & table["train.seed"].isin(design.analysis_seeds)]
    return pd.concat([analysis[analysis.setting.str.startswith("dim=")], own.assign(setting=f"dim={design.dim}")])


def seeds_note(seeds: tuple[int, ...]) -> str:
    """'seeds [0, 1, 2]', with '(descriptive: too few seeds for a verdict)' under ``VERDICT_SEEDS``."""
    return f"seeds {list(seeds)}" + ("" if len(seeds) >= VERDICT_SEEDS else " (descriptive: too few seeds for a verdict)")


ORDERING = ("Full", "Intrinsic", "Random", "Freeze")  # on the selection seed, each at its chosen rate


def selection_orderings(profile, design: Design, runner: Runner, sweep: pd.DataFrame) -> pd.DataFrame:
    """The sanity ordering on the selection seed, on validation: Full >= Intrinsic >= Random >= Freeze > chance,
    Intrinsic, Random and Freeze at the rates chosen by the sweep (their best validation score: a maximum over
    the grid, so it leans upward against Full's single run). ``holds`` is the strict ordering; ``within_noise``
    allows one standard error of a validation score (``verdicts.validation_noise``) of the lower side."""
    best = sweep.groupby(["task", "subspace"], sort=False)["validation_score"].max()
    full = dict(zip(profile.tasks, runner.execute_all(selection_full(profile))["validation_score"]))
    rows = []
    for task, config in zip(profile.tasks, selection_full(profile)):
        labels = runner.store.predictions(config, "validation")["labels"]
        metric = get_task(task).main_metric
        chance = 0.0 if get_task(task).is_regression else float(np.unique(labels, return_counts=True)[1].max() / len(labels))
        scores = {"Full": full[task], **{s: best[(task, s)] for s in ORDERING[1:]}, "chance": chance}
        for a, b in zip(ORDERING, ORDERING[1:] + ("chance",)):
            tolerance = validation_noise(100 * scores[b], metric, len(labels)) if b != "chance" else 0.0
            higher, lower = 100 * scores[a], 100 * scores[b]
            strict = higher > lower if b == "chance" else higher >= lower
            rows.append({"task": task, "ordering": f"{a} {'>' if b == 'chance' else '>='} {b}", "a": higher, "b": lower,
                         "holds": bool(strict), "tolerance": tolerance,
                         "within_noise": bool(strict or (b != "chance" and higher >= lower - tolerance))})
    return pd.DataFrame(rows)


def rate_choices(sweep: pd.DataFrame) -> pd.DataFrame:
    """Per task and setting, the rate the sweep chose (``design.select_rates``: the best validation score) and
    where it sits in its grid: a choice at the grid's lowest or highest rate (``edge``) says the best rate may
    lie outside the grid, so that setting may not be at its best."""
    rows = []
    for (task, setting), group in sweep.groupby(["task", "subspace"], sort=False):
        best = group.loc[group["validation_score"].idxmax()]
        grid = sorted(group["learning_rate"])
        edge = "lowest" if best["learning_rate"] == grid[0] else "highest" if best["learning_rate"] == grid[-1] else ""
        rows.append({"task": task, "setting": setting, "grid": " ".join(f"{rate:g}" for rate in grid),
                     "chosen": best["learning_rate"], "validation_score": best["validation_score"], "edge": edge})
    return pd.DataFrame(rows)


def rate_choices_note(choices: pd.DataFrame) -> str:
    """One sentence: how many chosen rates sit at an edge of their grid, and which."""
    edges = choices[choices["edge"] != ""]
    named = "; ".join(f"{r.setting} on {r.task} ({r.edge}, {r.chosen:g})" for r in edges.itertuples())
    return (f"{len(edges)} of {len(choices)} chosen rates sit at an edge of their grid"
            + (f": {named}. There the best rate may lie outside the grid, and the setting may be short of its best."
               if len(edges) else "."))


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
