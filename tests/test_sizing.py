"""The sizing study's checks: when a validation curve has plateaued, and the sanity orderings."""
import pandas as pd

from fewdims_helpers.studies.sizing import PLATEAU_GAIN, plateau, sanity_orderings


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

    from fewdims_helpers.studies.sizing import best_pair
    from fewdims_helpers.stats.subsets import CachedHead
    from fewdims_helpers.data.tasks import get_task

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

    from fewdims_helpers.setup import profiles
    from fewdims_helpers.options import RunOptions
    from fewdims_helpers.report.tables import section, to_markdown
    from fewdims_helpers.studies.sizing import RECIPES_END, RECIPES_START, recipe_table

    repo = Path(__file__).resolve().parent.parent
    table = to_markdown(recipe_table(profiles.get_profile("default").resolve(RunOptions().sources)))
    shown = section((repo / "README.md").read_text(), RECIPES_START, RECIPES_END)
    assert shown.strip() == table.strip(), "python benchmarks/sizing.py rewrites it"
    assert (repo / "figures" / "recipes.md").read_text().startswith(table)


def _history(scores, every=20, metric="accuracy"):
    return [{"step": every * (i + 1), "epoch": 1, "validation": {metric: s / 100}} for i, s in enumerate(scores)]


def test_the_last_third_gain_is_what_the_last_third_adds_to_the_best_score():
    from fewdims_helpers.studies.sizing import last_third_gain

    # 9 validations at steps 20..180: the first two thirds end at step 120 (best 70), the last third reaches 73
    assert abs(last_third_gain(_history([50, 60, 65, 68, 69, 70, 71, 73, 72]), "accuracy") - 3.0) < 1e-9
    assert last_third_gain(_history([50, 75, 70, 70, 71, 72, 74, 74, 73]), "accuracy") == 0.0  # best came early
    assert last_third_gain(_history([60] * 9), "accuracy") == 0.0
    # an early-stopped run: its last third is of the steps it trained (60 of 90), wherever its cap was
    assert abs(last_third_gain(_history([40, 50, 55]), "accuracy") - 5.0) < 1e-9
    pearson = [{"step": 20 * (i + 1), "validation": {"pearson": v}} for i, v in enumerate([0.1, 0.3, 0.35])]
    assert abs(last_third_gain(pearson, "pearson") - 5.0) < 1e-9


def test_convergence_takes_the_median_over_the_seeds_of_each_family_of_reported_runs(tmp_path):
    """Three seeds of a family that still climbs (gains 2, 3 and 0.5: median 2), three of one that does not (each
    starting from its seed's run of the first: one family), and a selection-seed run that is not reported."""
    import dataclasses
    import json

    from fewdims_helpers.studies.sizing import PLATEAU_GAIN, convergence, family_key, reported_by_notebook
    from fewdims_helpers.runs.store import RunStore

    from conftest import tiny_config

    def put(config, scores):
        folder = tmp_path / config.run_id
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"config": config.to_dict()}))
        history = _history(scores)
        best = max(range(len(scores)), key=lambda i: (scores[i], -i))
        (folder / "metrics.json").write_text(json.dumps({"history": history, "main_metric": "accuracy",
                                                         "best_step": history[best]["step"]}))

    climbing = {0: [50, 60, 65, 68, 69, 70, 71, 72, 70], 1: [50, 60, 65, 68, 69, 70, 71, 73, 72],
                2: [50, 60, 65, 68, 69, 70, 70.5, 70, 70], 1000: [10] * 8 + [90]}
    for seed, scores in climbing.items():
        put(tiny_config(seed=seed), scores)
    for seed in (0, 1, 2):
        put(dataclasses.replace(tiny_config(seed=seed, lr=3e-3), init_from=tiny_config(seed=seed).run_id),
            [50, 70, 70, 70, 70, 70, 70, 70, 70])
    store, ids = RunStore(tmp_path), [p.name for p in tmp_path.iterdir()]
    notebooks = reported_by_notebook({"notebooks": {"03": {"runs": ids}, "01": {"runs": ids[:1]}}})
    table = convergence(store, ids, seeds=(0, 1, 2), notebooks=notebooks).set_index("family")
    assert len(table) == 2 and (table.seeds == 3).all()
    first = table.loc[[f for f in table.index if not f.startswith("after")][0]]
    assert abs(first.median_gain - 2.0) < 1e-9 and abs(first.max_gain - 3.0) < 1e-9 and not first.converged
    assert first.median_gain > PLATEAU_GAIN and first.best_in_last_tenth == 0
    second = table.loc[[f for f in table.index if f.startswith("after rt-polarity")][0]]
    assert second.median_gain == 0.0 and second.converged and "lr 0.003" in second.name
    resolve = lambda run_id: store.stored_config(run_id)  # noqa: E731
    keys = {family_key(store.stored_config(i), resolve) for i in ids if store.stored_config(i).train.seed != 1000}
    assert len(keys) == 2


def test_figures_sizing_lists_the_plateau_rule_of_every_family_of_the_committed_reference():
    from pathlib import Path

    from fewdims_helpers.setup.profiles import get_profile
    from fewdims_helpers.report.tables import section
    from fewdims_helpers.studies.sizing import CONVERGENCE_END, CONVERGENCE_START, convergence_section, \
        reference_convergence

    repo = Path(__file__).resolve().parent.parent
    table = reference_convergence(repo / "reference", get_profile("default").seeds)
    assert len(table) and table.seeds.min() >= 1
    shown = section((repo / "figures" / "sizing.md").read_text(), CONVERGENCE_START, CONVERGENCE_END)
    assert shown.strip() == convergence_section(table).strip(), "python benchmarks/convergence.py rewrites it"


def test_runs_on_a_subset_drawn_afresh_per_seed_are_one_family_of_the_plateau_rule(tmp_path):
    """02's random controls (a different random k-subset for each seed) count as one family per recipe and k, the
    median over their seeds; a subset retrained with every seed stays its own family."""
    import dataclasses
    import json

    from fewdims_helpers.studies.sizing import convergence
    from fewdims_helpers.runs.store import RunStore

    from conftest import tiny_config

    def put(config, scores):
        folder = tmp_path / config.run_id
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"config": config.to_dict()}))
        (folder / "metrics.json").write_text(json.dumps({"history": _history(scores), "main_metric": "accuracy",
                                                         "best_step": _history(scores)[-1]["step"]}))

    def on(seed, dims):
        config = tiny_config(seed=seed)
        return dataclasses.replace(config, model=dataclasses.replace(config.model, selected_dims=dims))

    gains = {0: [50, 60, 60, 60, 60, 60, 60, 60, 64], 1: [50, 60, 60, 60, 60, 60, 60, 60, 62],
             2: [50, 60, 60, 60, 60, 60, 60, 60, 60]}  # last-third gains 4, 2, 0: median 2
    for seed, scores in gains.items():
        put(on(seed, (seed, seed + 5)), scores)  # drawn per seed
        put(on(seed, (1, 2)), [50, 60, 60, 60, 60, 60, 60, 60, 60])  # one subset, every seed
    store, ids = RunStore(tmp_path), [p.name for p in tmp_path.iterdir()]
    table = convergence(store, ids, seeds=(0, 1, 2)).set_index("family")
    assert len(table) == 2 and (table.seeds == 3).all()
    drawn = table.loc[[f for f in table.index if "drawn per seed" in f][0]]
    assert drawn.name.startswith("selected_dims: a random 2-subset drawn per seed; lr ")
    assert abs(drawn.median_gain - 2.0) < 1e-9 and not drawn.converged
    fixed = table.loc[[f for f in table.index if f.startswith("selected_dims (1, 2)")][0]]
    assert fixed.median_gain == 0.0 and fixed.converged
