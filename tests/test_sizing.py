"""The sizing study's checks: when a validation curve has plateaued, and the sanity orderings."""
import pandas as pd

from fewdims_helpers.sizing import PLATEAU_GAIN, plateau, sanity_orderings


def _curve(scores):
    return pd.DataFrame({"step": range(15, 15 * len(scores) + 1, 15), "score": scores})


def test_a_curve_still_climbing_in_its_last_third_has_not_plateaued():
    assert plateau(_curve([50, 60, 70, 74, 75, 75.5, 75.2, 75.4, 75.6]))["plateaued"]
    assert plateau(_curve([50, 60, 70, 74, 75, 75.5, 75.2, 75.4, 77.0]), noise=1.8)["plateaued"]  # within noise
    rising = plateau(_curve([50, 52, 55, 58, 61, 64, 67, 70, 73]))
    assert not rising["plateaued"] and rising["gain_last_third"] > PLATEAU_GAIN
    assert rising["best_step"] == 135 and rising["cap"] == 135


def test_sanity_orderings_flag_a_partly_frozen_run_below_the_frozen_head_and_a_refit_above_its_head():
    checked = pd.DataFrame([
        {"family": "baseline: all layers", "task": "t", "best": 80.0, "degenerate": False, "chance": 50.0},
        {"family": "04 (b): frozen encoder, linear head", "task": "t", "best": 70.0, "degenerate": False, "chance": 50.0},
        {"family": "04 (d): frozen but the top layer", "task": "t", "best": 65.0, "degenerate": False, "chance": 50.0},
        {"family": "07: Freeze", "task": "t", "best": 50.0, "degenerate": True, "chance": 50.0}])
    refits = pd.DataFrame([{"family": "03: head on layer 1", "task": "t", "full_vector": 60.0, "pair_refit": 62.0,
                            "full_vector_test": 59.0, "pair_refit_test": 58.0}])
    table = sanity_orderings(checked, refits).set_index("ordering")["holds"]
    assert not table["no family degenerate"]
    assert not table["04 (d) frozen but the top layer >= (b) frozen linear head"]
    assert not table["03: head on layer 1: full vector >= pair refit (pair chosen on train)"]
    assert not table["07: Freeze above chance (majority class; Pearson 0)"]


def test_the_pair_of_the_fair_ordering_is_chosen_on_the_training_features_not_on_validation():
    """The ordering "full vector >= pair refit" is read on validation, so its pair must not be chosen there:
    dimensions 0 and 1 separate the classes on train, 2 and 3 on validation."""
    import numpy as np

    from fewdims_helpers.sizing import best_pair
    from fewdims_helpers.subsets import CachedHead
    from fewdims_helpers.tasks import get_task

    rng = np.random.default_rng(0)
    labels = {split: rng.integers(0, 2, 200) for split in ("train", "validation")}
    features = {}
    for split, informative in (("train", [0, 1]), ("validation", [2, 3])):
        x = rng.normal(size=(200, 6)).astype(np.float32)
        x[:, informative] += 3 * (2 * labels[split][:, None] - 1)
        features[split] = x
    weight = np.zeros((2, 6), dtype=np.float32)
    weight[1, :4], weight[0, :4] = 1.0, -1.0  # the trained head reads dimensions 0 to 3 alike
    head = CachedHead(weight, np.zeros(2, dtype=np.float32), features, labels, get_task("rt-polarity"))
    assert best_pair(head, "train") == (0, 1)
    assert best_pair(head, "validation") == (2, 3)


def test_the_readme_shows_the_default_profiles_recipe_table_and_the_committed_one():
    from pathlib import Path

    from fewdims_helpers import profiles
    from fewdims_helpers.options import RunOptions
    from fewdims_helpers.reporting import section, to_markdown
    from fewdims_helpers.sizing import RECIPES_END, RECIPES_START, recipe_table

    repo = Path(__file__).resolve().parent.parent
    table = to_markdown(recipe_table(profiles.get_profile("default").resolve(RunOptions().sources)))
    shown = section((repo / "README.md").read_text(), RECIPES_START, RECIPES_END)
    assert shown.strip() == table.strip(), "python benchmarks/sizing.py rewrites it"
    assert (repo / "figures" / "recipes.md").read_text().startswith(table)
