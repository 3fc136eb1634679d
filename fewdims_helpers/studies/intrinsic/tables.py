"""Study 07's tables and verdicts: transfer between tasks' subspaces, the similarity of theta_t, Table
1's settings against full fine-tuning, the analysis runs' claims and the oracle of d = t."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ... import published
from ...models import pretrained_encoder
from ...store import RunStore
from ...verdicts import DEFAULT_MARGIN, Outcomes, compare, run_outcomes, verdict_row
from .design import SETTINGS, VERDICT_SEEDS, Design, table_configs


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
