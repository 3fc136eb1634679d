"""Study 03, layer-wise (Fukuhata & Kano 2025, Sec. 4.3): which layers carry the task?

For each layer k = 1..L the head reads layer k's [CLS] vector; the layers above k are not computed
(``ModelConfig.layer``), so a low-layer run costs proportionally less. Each layer's full vector is
fine-tuned with every reported seed (``profile.seeds``). Two 2-dimension variants per run, chosen as in
study 02's way 2 (every pair scored at inference on the layer-k run's head, best on validation within the
run) and reported on test as scored at inference (masked head) and with the head refit on the pair (way 3).

**One recipe per comparison.** A head on a layer below the top trains with the lower layers' recipe
(``Profile.layer_recipe``: a higher encoder and head rate, and its own step cap), the baseline with the
fine-tuning recipe. Comparing layer k with the baseline would mix the layer with the recipe, so the top
layer is trained at the lower layers' recipe as well (``LOWER``, its own runs, every seed), and every verdict
compares runs at one recipe: "layer k is as good as the top layer" (layer k's full vector against the top
layer's, both at the lower layers' recipe; equivalence at the margin), and each best-pair variant against
its own layer's full vector (one run, so one recipe; the top layer's at the lower layers' recipe). The top
layer's pair at the baseline's recipe is 02's "standard head" at k = 2 (the same runs, the same selection): it
is 02's verdict, not repeated here. The comparisons with the baseline (``BASELINE``) are kept, descriptive,
in ``recipe_comparisons``: the old design's layer k against the baseline, and the top layer at the two
recipes (what the recipe alone changes). Where the two recipes are one (``layer_head_train`` unset), the top
layer's run is the baseline and there is nothing to separate.

The paper's statement (lower layers contribute less; higher layers differ little) is read off the matched
verdicts by ``paper_statement``.
"""
from __future__ import annotations

import dataclasses

import matplotlib
import numpy as np
import pandas as pd

from ..config import RunConfig
from ..report.plotting import task_panels_by_variant
from ..report.tables import summarize
from ..runs.outcomes import cached_head, run_outcomes
from ..runs.runner import Runner
from ..setup.planning import PlannedRun, StudyPlan
from ..setup.profiles import BASELINE_FEATURES
from ..stats.subsets import masked_logits, pair_table, subset_predictions, refit_scores, scan_all_pairs, score_subsets
from ..stats.verdicts import DEFAULT_MARGIN, DOES_NOT_HOLD, HOLDS, Outcomes, compare, tally, verdict_lines, verdict_row

LOWER, BASELINE = "lower layers' recipe", "baseline recipe"  # the recipe a run trained with (column ``recipe``)


def separate_recipes(profile) -> bool:
    """Whether heads below the top train with a recipe of their own (then the top layer is trained at it too)."""
    return profile.num_layers > 1 and profile.layer_recipe() != profile.train


def recipe_text(profile, recipe: str) -> str:
    """A recipe in words, for the tables: its name and rates, e.g. "lower layers' recipe (encoder lr 0.0003,
    head lr 0.003, up to 20 epochs)"; the lower layers' recipe is the baseline's where the profile has one."""
    train = profile.layer_recipe() if recipe == LOWER else profile.train
    name = recipe if separate_recipes(profile) or recipe == BASELINE else f"{LOWER} (= the baseline's)"
    head = f", head lr {train.head_learning_rate:g}" if train.head_learning_rate is not None else ""
    return f"{name} (encoder lr {train.learning_rate:g}{head}, up to {train.epochs} epochs)"


def layer_config(profile, task: str, seed: int, layer: int, recipe: str = LOWER) -> RunConfig:
    """The run whose head reads ``layer``, at ``recipe``. Below the top, only the lower layers' recipe. The top
    layer at the baseline recipe is the profile's baseline (study 01 trained it); at the lower layers' recipe,
    a run of its own (the baseline itself where the recipes are one)."""
    top = profile.num_layers
    if layer < top:
        if recipe != LOWER:
            raise ValueError(f"layer {layer} below the top trains only with the {LOWER}, not the {recipe}")
        return dataclasses.replace(profile.run_config(task, seed, layer=layer), save_features=BASELINE_FEATURES)
    if recipe == BASELINE or not separate_recipes(profile):
        return profile.baseline(task, seed)
    return dataclasses.replace(profile.run_config(task, seed, recipe=profile.layer_recipe()),
                               save_features=BASELINE_FEATURES)


def layer_configs(profile) -> list[tuple[int, str, RunConfig]]:
    """(layer k, recipe, its run) for every task, seed and layer at the lower layers' recipe, and the top layer
    at the baseline recipe where that is another run."""
    top, rows = profile.num_layers, []
    for task in profile.tasks:
        for seed in profile.seeds:
            rows += [(layer, LOWER, layer_config(profile, task, seed, layer)) for layer in range(1, top + 1)]
            if separate_recipes(profile):
                rows.append((top, BASELINE, layer_config(profile, task, seed, top, BASELINE)))
    return rows


def matched_top_configs(profile) -> list[RunConfig]:
    """The top layer's runs at the lower layers' recipe, every task and seed (03's own runs, not the baseline's)."""
    return [c for layer, recipe, c in layer_configs(profile) if layer == profile.num_layers and recipe == LOWER]


def planned_runs(profile, runner: Runner) -> StudyPlan:
    """The runs the notebook executes (every layer-k run, the top layer at both recipes; the baselines among
    them), for ``run_all.py --plan``."""
    return StudyPlan([PlannedRun(c) for _, _, c in layer_configs(profile)] + [PlannedRun(c) for c in profile.baselines()])


def run(profile, runner: Runner) -> pd.DataFrame:
    """Every layer-k run with its recipe, plus the 2-dimension variants computed from its cached head and features."""
    layers, recipes, chosen = zip(*layer_configs(profile))
    frame = runner.execute_all(list(chosen)).assign(**{"model.layer": list(layers), "recipe": list(recipes)})
    pairs = []
    for config in chosen:
        head = cached_head(runner.store, config)
        subsets, scores = pair_table(scan_all_pairs(head, "validation"))
        best = subsets[int(np.nanargmax(scores))]
        pairs.append({"pair": tuple(int(d) for d in best),
                      "pair_inference_test": float(score_subsets(head, best[None, :], "test")[0]),
                      "pair_refit_test": refit_scores(head, tuple(best))["test"]})
    return pd.concat([frame, pd.DataFrame(pairs)], axis=1)


FULL = "full vector (fine-tuned)"
VARIANTS = {"test_score": FULL,
            "pair_refit_test": "2 dims: best pair at inference, head refit",
            "pair_inference_test": "2 dims: best pair at inference, masked head"}


def summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds of each variant, per task, layer and recipe (long format; descriptive)."""
    long = runs.melt(id_vars=["data.task", "model.layer", "recipe", "train.seed"], value_vars=list(VARIANTS),
                     var_name="variant", value_name="score")
    long["variant"] = long["variant"].map(VARIANTS)
    return summarize(long, ["data.task", "variant", "model.layer", "recipe"], value="score")


def outcomes(profile, runner: Runner, runs: pd.DataFrame, task: str, layer: int, recipe: str = LOWER
             ) -> dict[str, Outcomes]:
    """Test predictions of layer ``layer``'s runs of ``task`` at ``recipe``, one row per seed: the full vector
    (saved predictions) and each seed's validation-best pair, masked head and refit head (in process, same
    examples)."""
    configs = [layer_config(profile, task, seed, layer, recipe) for seed in profile.seeds]
    full = run_outcomes(runner.store, configs)
    chosen = runs[(runs["data.task"] == task) & (runs["model.layer"] == layer) & (runs["recipe"] == recipe)
                  ].set_index("train.seed")
    masked, refit = [], []
    for config in configs:
        head, pair = cached_head(runner.store, config), chosen.loc[config.train.seed, "pair"]
        if not np.array_equal(head.labels["test"], full.labels):
            raise ValueError(f"run {config.run_id}: cached test features and saved predictions differ in order")
        masked.append(masked_logits(head, pair, "test"))
        refit.append(subset_predictions(head, pair, "test"))
    return {FULL: full,
            VARIANTS["pair_inference_test"]: Outcomes.from_logits(masked, full.labels, full.idx, full.seeds, full.metric),
            VARIANTS["pair_refit_test"]: Outcomes(np.stack(refit), full.labels, full.idx, full.seeds, full.metric)}


def _ordered(rows: list[dict], profile) -> pd.DataFrame:
    order = {t: i for i, t in enumerate(profile.tasks)}
    return pd.DataFrame(rows).sort_values(["task", "variant", "layer"], key=lambda c: c.map(order) if c.name == "task"
                                          else c, kind="stable", ignore_index=True)


def verdicts(profile, runner: Runner, runs: pd.DataFrame, margin: float = DEFAULT_MARGIN) -> pd.DataFrame:
    """The verdicts the tally counts, every one between runs at one recipe (the lower layers'), paired by seed and
    example, equivalence at ``margin``: per task and layer k below the top, is layer k's full vector as good as
    the top layer's? And per layer (the top's at the lower layers' recipe too), is its best pair as good as its
    full vector? Columns ``a_recipe`` and ``b_recipe`` say which recipe each side trained with."""
    rows, top, lower = [], profile.num_layers, recipe_text(profile, LOWER)
    for task in profile.tasks:
        reference = outcomes(profile, runner, runs, task, top)[FULL]
        for layer in range(top, 0, -1):
            sides = outcomes(profile, runner, runs, task, layer)
            if layer != top:
                rows.append(verdict_row("03", f"layer {layer} is as good as the top layer", task,
                                        f"layer {layer}, {FULL}", f"layer {top}, {FULL}",
                                        compare(sides[FULL], reference, "equivalent", margin), layer=layer,
                                        variant=FULL, a_recipe=lower, b_recipe=lower))
            for variant in list(sides)[1:]:
                rows.append(verdict_row("03", f"2 dims of layer {layer} are as good as its full vector", task,
                                        f"layer {layer}, {variant}", f"layer {layer}, {FULL}",
                                        compare(sides[variant], sides[FULL], "equivalent", margin), layer=layer,
                                        variant=variant, a_recipe=lower, b_recipe=lower))
    return _ordered(rows, profile)


def recipe_comparisons(profile, runner: Runner, runs: pd.DataFrame, margin: float = DEFAULT_MARGIN) -> pd.DataFrame:
    """Descriptive, not counted (``figures/03_layer_wise_recipes``): the comparisons with the baseline recipe's
    top layer. Layer k at the lower layers' recipe against the baseline (the design before the matched one: the
    layer and the recipe both change), and the top layer at the lower layers' recipe against the baseline (what
    the recipe alone changes). Empty where the recipes are one."""
    if not separate_recipes(profile):
        return pd.DataFrame()
    rows, top = [], profile.num_layers
    lower, baseline = recipe_text(profile, LOWER), recipe_text(profile, BASELINE)
    for task in profile.tasks:
        reference = outcomes(profile, runner, runs, task, top, BASELINE)[FULL]
        for layer in range(top, 0, -1):
            full = outcomes(profile, runner, runs, task, layer)[FULL]
            claim = ("the top layer does not depend on the recipe" if layer == top
                     else f"layer {layer} is as good as the top layer (recipes differ)")
            rows.append(verdict_row("03", claim, task, f"layer {layer}, {FULL}", f"layer {top}, {FULL}",
                                    compare(full, reference, "equivalent", margin), layer=layer, variant=FULL,
                                    a_recipe=lower, b_recipe=baseline))
    return _ordered(rows, profile)


def paper_statement(table: pd.DataFrame, top: int) -> str:
    """The paper's statement decided from the layer verdicts, per task: "lower layers contribute less" holds
    when layer 1 is significantly beyond the margin below the top layer (does not hold as good); "higher
    layers differ little" holds when layer ``top - 1`` is equivalent to the top layer within the margin."""
    layers = table[table.variant == FULL]
    lines = []
    for task, block in layers.groupby("task", sort=False):
        by_layer = block.set_index("layer")
        low, high = by_layer.loc[1], by_layer.loc[top - 1] if top - 1 in by_layer.index else None
        lower = ("holds" if low.difference < 0 else "does not hold") if low.verdict == DOES_NOT_HOLD else \
            "does not hold" if low.verdict == HOLDS else "unresolved at this power"
        higher = "no layer below the top" if high is None else high.verdict
        equivalent = [int(l) for l in block.layer[block.verdict == HOLDS]]
        lines.append(f"- {task}: lower layers contribute less (layer 1 vs top, {low.difference:+.1f} "
                     f"[{low.ci_low:+.1f}, {low.ci_high:+.1f}]): {lower}; higher layers differ little (layer {top - 1} "
                     f"vs top" + ("" if high is None else f", {high.difference:+.1f} [{high.ci_low:+.1f}, {high.ci_high:+.1f}]")
                     + f"): {higher}; layers shown as good as the top: {equivalent or 'none'}")
    return "\n".join(lines)


def verdict(table: pd.DataFrame, top: int) -> str:
    """Every verdict, one line each, the recipes its sides trained with, the paper's statement per task, and the
    tally."""
    recipes = sorted(set(table["a_recipe"]) | set(table["b_recipe"])) if "a_recipe" in table else []
    said = (f"\nBoth sides of every verdict trained with the {recipes[0]}." if len(recipes) == 1 else
            "\nThe sides' recipes: " + "; ".join(recipes) + "." if recipes else "")
    return (verdict_lines(table) + said + "\n\nThe paper's statement, from these verdicts:\n" + paper_statement(table, top)
            + f"\n({tally(table)}; margin {table['margin'].iloc[0]:g} points.)")


# ----------------------------------------------------------------------------- figure

def metric_by_layer(summary: pd.DataFrame, baseline: pd.DataFrame, scale: float = 100.0) -> matplotlib.figure.Figure:
    """Per task: mean ± std of each variant against the layer read; dashed: the all-layers baseline (03: at the
    baseline recipe, beside the layers' points at theirs)."""
    tasks, fig, axes, variants, colors = task_panels_by_variant(summary, "data.task")
    for ax, task in zip(axes, tasks):
        for variant in variants:
            part = summary[(summary["data.task"] == task) & (summary.variant == variant)]
            ax.errorbar(part["model.layer"], part["mean"] * scale, yerr=part["std"] * scale, marker="o", capsize=3,
                        color=colors[variant], label=variant)
        base = baseline.loc[baseline["data.task"] == task, "test_score"]
        ax.axhline(base.mean() * scale, color="k", ls="--", lw=1, label="all layers, [CLS], baseline recipe (notebook 01)")
        ax.set_xlabel("layer read by the head")
    axes[0].set_ylabel("test metric × 100")
    axes[-1].legend(fontsize="x-small")
    fig.tight_layout()
    return fig
