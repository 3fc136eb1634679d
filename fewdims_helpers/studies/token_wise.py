"""Study 01, token-wise (Fukuhata & Kano 2025, Sec. 4.1): is the [CLS] vector special?

For each task and seed, fine-tune once per token selection (``cls``, ``max_norm_token`` = the
paper's "MaxPooling", ``max``, ``mean``, ``pooler``) and compare test metrics. The paper reports
that MaxPooling matches [CLS] on 7 of 8 GLUE tasks (RTE being the exception).
"""
from __future__ import annotations

import pandas as pd

from ..config import RunConfig
from ..report.tables import summarize
from ..runs.outcomes import run_outcomes
from ..runs.runner import Runner
from ..setup.planning import PlannedRun, StudyPlan
from ..setup.profiles import Profile
from ..stats.verdicts import DEFAULT_MARGIN, HOLDS, Outcomes, compare, tally, verdict_lines, verdict_row

SELECTION_COLUMN = "model.token_selection"
PAPER_SELECTIONS = ("cls", "max_norm_token", "max", "mean", "pooler")  # ``last`` is cls on a decoder: not studied


def studied_selections(model: str) -> tuple[str, ...]:
    """The paper's selections that ``model`` has: ``pooler`` only where a pretrained pooler exists
    (BERT, RoBERTa; architectures.py)."""
    from ..model.pretrained import pretrained_encoder

    has_pooler = getattr(pretrained_encoder(model), "pooler", None) is not None
    return tuple(s for s in PAPER_SELECTIONS if s != "pooler" or has_pooler)


def configs(profile: Profile, selections: tuple[str, ...] | None = None) -> list[RunConfig]:
    """One run per task, seed and selection (None: ``studied_selections``); [CLS] is the profile's baseline
    run, which later studies reuse."""
    selections = selections or studied_selections(profile.model)
    return [profile.baseline(task, seed) if selection == "cls" else profile.run_config(task, seed, token_selection=selection)
            for task in profile.tasks for seed in profile.seeds for selection in selections]


def planned_runs(profile: Profile, runner: Runner) -> StudyPlan:
    """The runs ``run`` executes, for ``run_all.py --plan``."""
    return StudyPlan([PlannedRun(c) for c in configs(profile)])


def run(profile: Profile, runner: Runner) -> pd.DataFrame:
    """All runs of the study (computed, or read from the store), one row per run."""
    return runner.execute_all(configs(profile))


def summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean ± std of the test metric over seeds, per task and token selection."""
    table = summarize(runs, ["data.task", SELECTION_COLUMN])
    metrics = runs.groupby("data.task", sort=False)["main_metric"].first()
    return table.assign(metric=table["data.task"].map(metrics))


def outcomes(profile: Profile, runner: Runner, task: str, selection: str) -> Outcomes:
    """The test predictions of ``selection``'s runs of ``task``, one row per seed."""
    return run_outcomes(runner.store, [c for c in configs(profile, (selection,)) if c.data.task == task])


def verdicts(profile: Profile, runner: Runner, margin: float = DEFAULT_MARGIN, baseline: str = "cls",
             selections: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Per task and selection: does it match [CLS]? The difference to the baseline's test metric, paired
    by seed and example, with its interval and the equivalence verdict against ``margin``."""
    rows = []
    for task in profile.tasks:
        reference = outcomes(profile, runner, task, baseline)
        for selection in selections or studied_selections(profile.model):
            if selection != baseline:
                comparison = compare(outcomes(profile, runner, task, selection), reference, "equivalent", margin)
                rows.append(verdict_row("01", f"{selection} matches [CLS]", task, selection, baseline, comparison))
    return pd.DataFrame(rows)


def token_choice(runs: pd.DataFrame) -> pd.DataFrame:
    """How often ``max_norm_token`` reads [CLS], the final [SEP] or another token (test, mean over seeds)."""
    chosen = runs[runs[SELECTION_COLUMN] == "max_norm_token"]
    columns = ["token_choice.cls", "token_choice.sep", "token_choice.other"]
    return chosen.groupby("data.task", sort=False)[columns].mean().rename(columns=lambda c: c.split(".")[1])


def verdict(table: pd.DataFrame, selection: str = "max_norm_token") -> str:
    """The verdicts on ``selection`` (the paper's MaxPooling), one line per task, and their tally."""
    own = table[table["a"] == selection]
    held = int((own["verdict"] == HOLDS).sum())
    return (verdict_lines(own) + f"\n{selection} matches [CLS] within {own['margin'].iloc[0]:g} points on {held} of "
            f"{len(own)} tasks here ({tally(own)}; the paper: MaxPooling matches on 7 of 8).")
