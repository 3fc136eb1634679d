"""Layer-wise invariants: the paper's statement is read off the verdicts, not typed in."""
import numpy as np
import pandas as pd

from fewdims_helpers.studies.layer_wise import FULL, paper_statement
from fewdims_helpers.stats.verdicts import Outcomes, compare, verdict_row


def layer_table(gaps: dict[int, float], n: int = 2000, seeds: int = 5) -> pd.DataFrame:
    """Verdict rows of layers 1..3 against layer 4 whose accuracy is ``gaps[layer]`` points lower."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, n)

    draws = rng.random((seeds, n))  # the same draws on every layer: a gap of 0 is the top layer's predictions

    def outcomes(gap: float) -> Outcomes:
        wrong = draws < 0.2 + gap / 100
        return Outcomes(np.where(wrong, 1 - labels, labels), labels, np.arange(n), tuple(range(seeds)), "accuracy")
    top = outcomes(0.0)
    return pd.DataFrame([verdict_row("03", "as good", "t", f"layer {layer}", "layer 4",
                                     compare(outcomes(gap), top, "equivalent", 2.0), layer=layer,
                                     variant=FULL) for layer, gap in gaps.items()])


def test_lower_layers_contribute_less_and_higher_layers_differ_little_when_the_verdicts_say_so():
    line = paper_statement(layer_table({1: 15.0, 2: 8.0, 3: 0.0}), top=4)
    assert "contribute less (layer 1 vs top" in line and "]): holds; higher layers differ little" in line
    assert line.split("differ little")[1].split(":")[1].strip().startswith("holds")
    assert "layers shown as good as the top: [3]" in line


def test_the_statement_does_not_hold_when_layer_one_is_as_good_as_the_top():
    line = paper_statement(layer_table({1: 0.0, 2: 0.0, 3: 15.0}), top=4)
    assert "]): does not hold; higher layers differ little" in line
    assert line.split("differ little")[1].split(":")[1].strip().startswith("does not hold")


def _recipe(config):
    import dataclasses

    return dataclasses.replace(config.train, seed=0)


def test_every_lower_layer_recipe_has_top_layer_runs_at_it_and_the_verdicts_compare_at_one_recipe(tmp_path):
    """03's matched design on the default profile: for every task and seed, the top layer is also trained with the
    lower layers' recipe (its own runs, not the baseline's), and the planned runs hold them."""
    from fewdims_helpers.options import RunOptions
    from fewdims_helpers.setup.profiles import get_profile
    from fewdims_helpers.runs.runner import Runner
    from fewdims_helpers.runs.store import RunStore
    from fewdims_helpers.studies.layer_wise import BASELINE, LOWER, layer_configs, matched_top_configs, planned_runs, \
        recipe_text, separate_recipes

    profile = get_profile("default").resolve(RunOptions().sources)
    top = profile.num_layers
    rows = layer_configs(profile)
    assert separate_recipes(profile) and profile.layer_recipe() != profile.train
    lower = {(c.data.task, c.train.seed, _recipe(c)) for layer, _, c in rows if layer < top}
    matched = {(c.data.task, c.train.seed, _recipe(c)) for c in matched_top_configs(profile)}
    assert lower and lower <= matched, "a lower-layer recipe with no top-layer run at it"
    for layer, recipe, config in rows:
        assert recipe == (LOWER if layer < top or config not in profile.baselines() else BASELINE)
        if layer == top and recipe == LOWER:
            assert config.model.layer is None and _recipe(config) == profile.layer_recipe()
            assert config.run_id != profile.baseline(config.data.task, config.train.seed).run_id
    assert sum(recipe == BASELINE for _, recipe, _ in rows) == len(profile.tasks) * len(profile.seeds)
    planned = {run.config.run_id for run in planned_runs(profile, Runner(RunStore(tmp_path))).runs}
    assert {c.run_id for c in matched_top_configs(profile)} <= planned
    assert {c.run_id for c in profile.baselines()} <= planned
    assert "lr 0.0003" in recipe_text(profile, LOWER) and "lr 0.0001" in recipe_text(profile, BASELINE)


def test_where_the_recipes_are_one_the_top_layer_is_the_baseline_and_nothing_is_trained_twice():
    import dataclasses

    from fewdims_helpers.setup.profiles import get_profile
    from fewdims_helpers.studies.layer_wise import LOWER, layer_configs, matched_top_configs, separate_recipes

    profile = get_profile("smoke")  # no recipe of its own for lower layers
    profile = dataclasses.replace(profile, seq_lengths=tuple((t, 16) for t in profile.tasks))
    assert not separate_recipes(profile)
    assert [c.run_id for c in matched_top_configs(profile)] == [c.run_id for c in profile.baselines()]
    ids = [c.run_id for _, _, c in layer_configs(profile)]
    assert len(ids) == len(set(ids)) and {r for _, r, _ in layer_configs(profile)} == {LOWER}
