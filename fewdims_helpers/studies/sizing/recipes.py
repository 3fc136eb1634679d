"""The recipes' sizing runs and checks (``sizing``'s package docstring): the runs per family, their curves and
plateaus, the pair refits and sanity orderings, the recipe table and its plot."""
from __future__ import annotations

import dataclasses
from typing import Iterator

import numpy as np
import pandas as pd

from ...config import RunConfig, SubspaceConfig
from ...report.convergence import PLATEAU_GAIN
from ...data.tasks import get_task
from ...runs.outcomes import cached_head
from ...runs.store import RunStore
from ...setup.profiles import BASELINE_FEATURES
from ...stats.subsets import pair_table, refit_scores, scan_all_pairs
from ...stats.verdicts import validation_noise



def _no_early_stop(config: RunConfig) -> RunConfig:
    return dataclasses.replace(config, train=dataclasses.replace(config.train, patience=0))


def family_configs(profile, task: str, freeze: RunConfig | None = None) -> Iterator[tuple[str, RunConfig]]:
    """(family, run) of every sized family for ``task`` on the selection seed, trained to the step cap;
    ``freeze``: 07's Freeze run of ``task`` on the selection seed at its chosen rates (None: the recipe's)."""
    seed, top = profile.selection_seed, profile.num_layers
    yield "baseline: all layers, [CLS], linear head (01-06, 07 Full)", profile.run_config(task, seed)
    for layer in dict.fromkeys((1, max(1, top // 2))):  # with its features: the 2-dimension refit reads them
        yield (f"03: head on layer {layer}",
               dataclasses.replace(profile.run_config(task, seed, layer=layer), save_features=BASELINE_FEATURES))
    if top > 1 and profile.layer_recipe() != profile.train:  # 03 compares every layer with the top at this recipe
        yield ("03: top layer at the lower layers' recipe",
               dataclasses.replace(profile.run_config(task, seed, recipe=profile.layer_recipe()),
                                   save_features=BASELINE_FEATURES))
    if top > 1:
        yield "04 (b): frozen encoder, linear head", profile.run_config(task, seed, freeze_pretrained=True)
        yield "04 (d): frozen but the top layer", profile.run_config(task, seed, frozen_layers=top - 1)
    others = [t for t in profile.tasks if t != task]
    if others:
        source = others[-1]  # with the packaged tasks, one of another text (rt-polarity and rt-valence share theirs)
        yield (f"05: fine-tuned after {source}",
               dataclasses.replace(profile.run_config(task, seed), init_from=profile.baseline(source, seed).run_id))
    yield "07: Freeze (encoder layers frozen)", freeze or dataclasses.replace(profile.run_config(task, seed),
                                                                             subspace=SubspaceConfig(basis="none"))


def sizing_runs(profile, freeze: dict[str, RunConfig] | None = None) -> pd.DataFrame:
    """One row per family and task: ``family``, ``task`` and its ``config`` (to the step cap, no early stop);
    ``freeze``: per task, 07's Freeze run at its chosen rates (``family_configs``)."""
    rows = [(family, task, _no_early_stop(config)) for task in profile.tasks
            for family, config in family_configs(profile, task, (freeze or {}).get(task))]
    return pd.DataFrame(rows, columns=["family", "task", "config"])


def sources(profile) -> list[RunConfig]:
    """The selection-seed baselines that 05's second fine-tunings start from (they keep their weights)."""
    return [profile.baseline(task, profile.selection_seed) for task in profile.tasks]


def curves(store: RunStore, runs: pd.DataFrame) -> pd.DataFrame:
    """Long table of validation curves: family, task, step, epoch, score (metric x 100)."""
    rows = []
    for row in runs.itertuples():
        metrics = store.metrics(row.config)
        for point in metrics["history"]:
            rows.append({"family": row.family, "task": row.task, "step": point["step"], "epoch": point["epoch"],
                         "score": 100 * point["validation"][metrics["main_metric"]]})
    return pd.DataFrame(rows)


def plateau(curve: pd.DataFrame, noise: float = 0.0) -> dict:
    """The plateau check of one curve (rows of one family and task, by step): the best score of its last third
    exceeds the best before it by at most ``PLATEAU_GAIN`` or one validation standard error (``noise``),
    whichever is larger."""
    curve = curve.sort_values("step")
    cut = curve["step"].max() * 2 / 3
    early, late = curve[curve["step"] <= cut]["score"], curve[curve["step"] > cut]["score"]
    best_step = int(curve.loc[curve["score"].idxmax(), "step"])
    gain = float(late.max() - early.max()) if len(early) and len(late) else float("nan")
    allowed = max(PLATEAU_GAIN, noise)
    return {"best": float(curve["score"].max()), "best_step": best_step, "cap": int(curve["step"].max()),
            "gain_last_third": gain, "allowed_gain": allowed, "plateaued": bool(gain <= allowed)}


def check(store: RunStore, runs: pd.DataFrame) -> pd.DataFrame:
    """Per family and task: the plateau check, whether the run is degenerate, and its chance level."""
    frame = curves(store, runs)
    rows = []
    for (family, task), curve in frame.groupby(["family", "task"], sort=False):
        config = runs[(runs.family == family) & (runs.task == task)]["config"].iloc[0]
        metrics = store.metrics(config)
        labels = store.predictions(config, "validation")["labels"]
        chance = 0.0 if get_task(task).is_regression else 100 * np.unique(labels, return_counts=True)[1].max() / len(labels)
        noise = validation_noise(float(curve["score"].max()), metrics["main_metric"], len(labels))
        rows.append({"family": family, "task": task, **plateau(curve, noise), "chance": chance,
                     "degenerate": bool(metrics.get("degenerate")), "test_score": 100 * metrics["test"][metrics["main_metric"]]})
    return pd.DataFrame(rows)


def best_pair(head, split: str) -> tuple[int, int]:
    """The pair whose masked head scores best on ``split`` (``subsets.scan_all_pairs``)."""
    subsets, scores = pair_table(scan_all_pairs(head, split))
    return tuple(int(d) for d in subsets[int(np.nanargmax(scores))])


def pair_refits(store: RunStore, runs: pd.DataFrame) -> pd.DataFrame:
    """03's families, per task and layer: the run's own validation score beside a head refit on one pair of
    its dimensions, the pair chosen on the training features (``pair_refit``: validation is then a fair
    test of the ordering; the refit's L2 strength is still chosen on validation, one scalar from a small
    grid). ``pair_refit_best`` is the refit on the best pair of all 73,536 on validation, as 03 chooses:
    the best of many scores on the same items, so optimistic (descriptive). Both on test too (read, never
    used to choose)."""
    rows = []
    for row in runs[runs.family.str.startswith("03")].itertuples():
        head, metrics = cached_head(store, row.config), store.metrics(row.config)
        on_train, on_validation = best_pair(head, "train"), best_pair(head, "validation")
        fair, best = refit_scores(head, on_train), refit_scores(head, on_validation)
        rows.append({"family": row.family, "task": row.task, "pair": on_train,
                     "full_vector": 100 * metrics["validation"][metrics["main_metric"]],
                     "pair_refit": 100 * fair["validation"],
                     "full_vector_test": 100 * metrics["test"][metrics["main_metric"]],
                     "pair_refit_test": 100 * fair["test"],
                     "pair_best": on_validation, "pair_refit_best": 100 * best["validation"],
                     "pair_refit_best_test": 100 * best["test"]})
    return pd.DataFrame(rows)


def sanity_orderings(checked: pd.DataFrame, refits: pd.DataFrame) -> pd.DataFrame:
    """The orderings that must hold on validation (best checkpoints) with the chosen recipes, per task: no
    family degenerate; "frozen but the top layer" (d) at least the frozen linear head (b), which trains strictly
    fewer parameters; each 03 head on its full layer-k vector at least a 2-dimension refit on the same layer;
    07's Freeze above chance. ``holds`` is the strict ordering; ``within_noise`` allows one validation standard
    error of the family's run (``tolerance``: one run's score on 500 items moves by that much from checkpoint
    to checkpoint)."""
    rows = []

    def row(task: str, family: str | None, ordering: str, a: float, b: float, holds: bool) -> None:
        found = checked[(checked.family == family) & (checked.task == task)]
        tolerance = float(found.allowed_gain.iloc[0]) if len(found) and "allowed_gain" in found else 0.0
        rows.append({"task": task, "ordering": ordering, "a": a, "b": b, "holds": bool(holds), "tolerance": tolerance,
                     "within_noise": bool(holds or a >= b - tolerance)})

    for task, block in checked.groupby("task", sort=False):
        best = dict(zip(block.family, block.best))
        row(task, None, "no family degenerate", float("nan"), float("nan"), not block.degenerate.any())
        for family in (f for f in best if f.startswith("07")):
            chance = float(block[block.family == family].chance.iloc[0])
            row(task, family, f"{family} above chance (majority class; Pearson 0)", best[family], chance,
                best[family] > chance)
        frozen = {f[:6]: (f, v) for f, v in best.items() if f.startswith(("04 (b)", "04 (d)"))}
        if len(frozen) == 2:
            (family, d), (_, b) = frozen["04 (d)"], frozen["04 (b)"]
            row(task, family, "04 (d) frozen but the top layer >= (b) frozen linear head", d, b, d >= b)
        for refit in refits[refits.task == task].itertuples():
            row(task, refit.family, f"{refit.family}: full vector >= pair refit (pair chosen on train)",
                refit.full_vector, refit.pair_refit, refit.full_vector >= refit.pair_refit)
            row(task, refit.family, f"{refit.family}: full vector >= pair refit (pair chosen on train), on test",
                refit.full_vector_test, refit.pair_refit_test, refit.full_vector_test >= refit.pair_refit_test)
    return pd.DataFrame(rows)


def describe(recipe) -> str:
    """A training recipe in words (``TrainConfig``)."""
    head = f", head lr {recipe.head_learning_rate:g}" if recipe.head_learning_rate is not None else ""
    checks = f"validation every {recipe.eval_every} steps" if recipe.eval_every else "validation every epoch"
    stop = (f", stop after {recipe.patience} validations without a new best" if recipe.patience
            else ", no early stop")
    warmup = f", warm-up {recipe.warmup_ratio:g} of the cap" if recipe.warmup_ratio else ""
    return (f"AdamW, lr {recipe.learning_rate:g}{head}{warmup}, linear decay, batch {recipe.batch_size}, up to "
            f"{recipe.epochs} epochs; {checks}, best checkpoint kept{stop}")


# The README's generated recipe table (benchmarks/sizing.py writes it; a test checks it against the profile).
RECIPES_START = "<!-- recipes:start (generated by benchmarks/sizing.py from sizing.recipe_table) -->"
RECIPES_END = "<!-- recipes:end -->"


def recipe_table(profile) -> pd.DataFrame:
    """The recipe of every family the studies train, with its step cap and why: what the README shows."""
    examples = profile.max_train_examples or 0

    def cap(recipe) -> int | None:
        return -(-examples // recipe.batch_size) * recipe.epochs if examples else None

    fine, low, frozen = profile.train, profile.layer_head_train or profile.train, profile.frozen_head_train or profile.train
    trajectory = dataclasses.replace(fine, patience=0)
    rows = [
        ("fine-tuning: the baseline, 01's token selections, 02's subsets, 03's top layer at the baseline recipe "
         "(descriptive), 04 (d), 05's second fine-tuning, 07's Full and the zeroed-then-fine-tuned runs", describe(fine),
         cap(fine), "the sizing curves (figures/sizing_curves.png) plateau within the cap on the selection seed; the "
         "head's own rate lets a fresh head leave its random start; the reported runs pass the plateau rule "
         "(figures/sizing.md)"),
        ("03: heads on a layer below the top, and the top layer at their recipe (03's verdicts compare layers at it)",
         describe(low), cap(low),
         "in pilots on the selection seed, a head on layer 1 with the fine-tuning recipe's encoder rate stayed near "
         "chance on rt-polarity whatever its own rate; a higher encoder rate (with a higher head rate) trains it; at "
         "10 epochs the reported rt-valence heads on layers 1 and 3 still gained +1.15 and +1.68 points (median) in "
         "their last third (benchmarks/results/convergence_reference.md), so the cap is twice that"),
        ("04 (b), (c): heads on the frozen encoder (cached features)", describe(frozen), cap(frozen),
         "an epoch on cached features costs a fraction of a second; at 20 epochs every reported rt-valence linear "
         "head had its best checkpoint in the last tenth of the cap, at 60 their last third added +0.02 (median) "
         "and validation rose (benchmarks/results/convergence_candidates.md)"),
        ("07: trajectories (the intrinsic subspace's source)", describe(trajectory), cap(trajectory),
         "checkpoints are spread over the whole step cap"),
        ("07: Random and Intrinsic subspaces", "theta_t's learning rate chosen per task on validation (selection "
         "seed) from the notebook's grid; the rest as fine-tuning", cap(fine),
         "the paper's 0.01 is tuned for thousands of steps"),
        ("07: Freeze (encoder layers frozen)", "fine-tuning's recipe with its encoder-embedding and head rates times "
         "1, 3 or 10, chosen per task on validation (selection seed)", cap(fine),
         "only the embeddings and the head train, so the fine-tuning rates leave its curve climbing at the cap "
         "(bbc-news, figures/sizing.md before this sweep)"),
    ]
    return pd.DataFrame(rows, columns=["family", "recipe", "step cap", "why"]).astype({"step cap": "Int64"})


def plot(frame: pd.DataFrame, checked: pd.DataFrame, path) -> None:
    """One panel per task: every family's validation curve, its best point marked."""
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(frame.task))
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.2 * len(tasks), 4.2), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for family, curve in frame[frame.task == task].groupby("family", sort=False):
            curve = curve.sort_values("step")
            line, = ax.plot(curve.step, curve.score, marker=".", label=family)
            best = curve.loc[curve.score.idxmax()]
            ax.plot(best.step, best.score, marker="o", mfc="none", ms=9, color=line.get_color())
        ax.set(title=task, xlabel="optimizer step", ylabel=f"validation {get_task(task).main_metric} x 100")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7, loc="lower right")
    fig.suptitle("Sizing on the selection seed: validation curves to the step cap (circle: best checkpoint)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def summary_line(checked: pd.DataFrame) -> str:
    plateaued, runs = int(checked.plateaued.sum()), len(checked)
    return (f"{plateaued} of {runs} curves plateaued (gain in the last third within one validation standard "
            f"error, at least {PLATEAU_GAIN:g} point); "
            f"{int(checked.degenerate.sum())} degenerate; largest last-third gain "
            f"{np.nanmax(checked.gain_last_third):+.1f} ({checked.loc[checked.gain_last_third.idxmax(), 'family']}, "
            f"{checked.loc[checked.gain_last_third.idxmax(), 'task']})")
