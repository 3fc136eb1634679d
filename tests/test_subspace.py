"""Subspace fine-tuning (Zhang et al.): re-parameterisation, trajectory bases, recorded runs."""
import copy
import dataclasses
import os

import numpy as np
import pytest
import torch

from fewdims_helpers.runs import run_files, store
from fewdims_helpers.model import subspace
from fewdims_helpers.config import ConfigError, RunConfig, SubspaceConfig
from fewdims_helpers.options import RunOptions
from fewdims_helpers.training.loop import build_model
from fewdims_helpers.runs.runner import Runner
from fewdims_helpers.runs.models import kept_model
from fewdims_helpers.runs.models import initial_model
from fewdims_helpers.runs.models import stored_deltas
from fewdims_helpers.runs import execute

from conftest import tiny_config


def _logits(model, ids):
    model.eval()
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=torch.ones_like(ids))


def _random_subspace_model(config, dim: int = 4, init_std: float = 0.5, seed: int = 1):
    """A tiny model with every encoder layer in a random subspace, theta_t drawn with ``init_std``."""
    return subspace.reparameterize(build_model(config), SubspaceConfig(basis="random", dim=dim, init_std=init_std),
                                   trajectories=None, seed=seed)


def test_zero_theta_reproduces_the_initial_model_exactly():
    config = tiny_config()
    plain = build_model(config)
    inside = subspace.reparameterize(build_model(config), SubspaceConfig(basis="random", dim=4, init_std=0.0),
                                     trajectories=None, seed=0)
    ids = torch.randint(1000, 2000, (3, 7))
    assert torch.equal(_logits(plain, ids), _logits(inside, ids))
    assert [p for p in inside.encoder.encoder.parameters() if p.requires_grad] == [
        layer.theta for layer in inside.encoder.encoder.layer]  # only theta_t trains in the encoder layers


def test_materialized_model_computes_what_the_subspace_model_computes():
    config = tiny_config()
    model = _random_subspace_model(config)
    ids = torch.randint(1000, 2000, (3, 7))
    before = _logits(model, ids)
    assert not torch.equal(before, _logits(build_model(config), ids))  # the random theta_t moved the layers
    torch.testing.assert_close(_logits(subspace.materialize(model), ids), before, rtol=1e-5, atol=1e-5)


def test_ensemble_moves_only_theta_along_the_basis():
    config = tiny_config()
    model = subspace.reparameterize(build_model(config), SubspaceConfig(basis="random", dim=3), trajectories=None, seed=0)
    layer = model.encoder.encoder.layer[0]
    ids = torch.randint(1000, 2000, (2, 5))
    loss = model(input_ids=ids, attention_mask=torch.ones_like(ids)).pow(2).sum()
    loss.backward()
    assert layer.theta.grad is not None and layer.theta.grad.shape == (16, 3)
    # every ensemble member gets the same gradient: d loss / d theta^(i) = (1/h) V^T g
    assert torch.allclose(layer.theta.grad, layer.theta.grad[:1].expand_as(layer.theta.grad))


def test_evaluation_reuses_the_update_only_while_theta_is_unchanged():
    config = tiny_config()
    model = _random_subspace_model(config)
    ids = torch.randint(1000, 2000, (3, 7))
    before = _logits(model, ids)
    assert torch.equal(_logits(model, ids), before)  # second pass: the update computed once is reused
    state = {k: v * 2 if k.endswith("theta") else v for k, v in model.state_dict().items()}
    model.load_state_dict(state)  # in place, in eval mode: the kept update must not survive
    fresh = _random_subspace_model(config, init_std=0.01)
    fresh.load_state_dict(state)
    torch.testing.assert_close(_logits(model, ids), _logits(fresh, ids), rtol=0, atol=0)
    assert not torch.equal(_logits(model, ids), before)


def test_bases_are_built_once_per_process_and_rebuilt_when_the_trajectory_changes(tmp_path):
    theta0 = torch.zeros(300)
    folder = tmp_path / "source" / run_files.TRAJECTORY_DIR
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    np.save(folder / "layer_0.npy", rng.normal(size=(4, 300)).astype(np.float16))
    config = SubspaceConfig(basis="intrinsic", dim=3, sources=("source",))
    first = subspace.layer_basis(config, store.RunStore(tmp_path), 0, theta0, seed=0)
    assert subspace.layer_basis(config, store.RunStore(tmp_path), 0, theta0, seed=0).data_ptr() == first.data_ptr()  # not rebuilt
    assert subspace.layer_basis(SubspaceConfig(basis="random", dim=3), store.RunStore(tmp_path), 0, theta0, seed=0).data_ptr() \
        != first.data_ptr()
    np.save(folder / "layer_0.npy", rng.normal(size=(4, 300)).astype(np.float16))  # the source was re-run
    os.utime(folder / "layer_0.npy", ns=(1, 1))  # a new mtime even on a coarse-grained file system
    rebuilt = subspace.layer_basis(config, store.RunStore(tmp_path), 0, theta0, seed=0)
    assert rebuilt.data_ptr() != first.data_ptr() and not torch.allclose(rebuilt.abs(), first.abs())


def test_intrinsic_bases_of_every_dimension_are_nested_and_built_once(tmp_path):
    theta0 = torch.zeros(300)
    folder = tmp_path / "source" / run_files.TRAJECTORY_DIR
    folder.mkdir(parents=True)
    np.save(folder / "layer_0.npy", np.random.default_rng(0).normal(size=(5, 300)).astype(np.float16))
    small, large = (subspace.layer_basis(SubspaceConfig(basis="intrinsic", dim=d, sources=("source",)), store.RunStore(tmp_path), 0,
                                         theta0, seed=0) for d in (2, 4))
    assert small.shape == (300, 2) and large.shape == (300, 4) and small.T.is_contiguous()
    assert small.data_ptr() == large.data_ptr()  # the leading directions of one build
    torch.testing.assert_close(large.T @ large, torch.eye(4), atol=1e-5, rtol=0)
    with pytest.raises(ConfigError, match="subspace dim 6 exceeds the 5 directions"):
        subspace.layer_basis(SubspaceConfig(basis="intrinsic", dim=6, sources=("source",)), store.RunStore(tmp_path), 0, theta0,
                            seed=0)


def test_basis_cache_keeps_the_most_recent_bases_within_its_byte_budget(tmp_path):
    theta0 = torch.zeros(1000)
    configs = [SubspaceConfig(basis="random", dim=4)] * 3
    one = 1000 * 4 * 4  # bytes of one (1000, 4) float32 basis
    subspace.set_basis_cache(2 * one)
    try:
        first, second, third = (subspace.layer_basis(c, store.RunStore(tmp_path), 0, theta0, seed=s) for c, s in zip(configs, (1, 2, 3)))
        assert subspace.layer_basis(configs[0], store.RunStore(tmp_path), 0, theta0, seed=3).data_ptr() == third.data_ptr()
        assert subspace.layer_basis(configs[0], store.RunStore(tmp_path), 0, theta0, seed=2).data_ptr() == second.data_ptr()
        rebuilt = subspace.layer_basis(configs[0], store.RunStore(tmp_path), 0, theta0, seed=1)  # the oldest was dropped
        assert rebuilt.data_ptr() != first.data_ptr() and torch.equal(rebuilt, first)
        assert rebuilt.T.is_contiguous()  # kept as (d, D) rows, the layout the layer streams
        torch.testing.assert_close(rebuilt.T @ rebuilt, torch.eye(4), atol=1e-5, rtol=0)
    finally:
        subspace.set_basis_cache(None)


def test_trajectory_basis_is_orthonormal_and_spans_the_checkpoints():
    rng = np.random.default_rng(0)
    rows = torch.from_numpy(rng.normal(size=(6, 5000)).astype(np.float32))
    basis = subspace.trajectory_basis(rows, dim=6, chunk=1024)
    torch.testing.assert_close(basis.T @ basis, torch.eye(6), atol=1e-5, rtol=0)
    residual = rows - (rows @ basis) @ basis.T
    assert float(residual.norm() / rows.norm()) < 1e-5
    # the top direction is the top right singular vector of the rows
    top = torch.linalg.svd(rows.double(), full_matrices=False).Vh[0].float()
    assert abs(float(top @ basis[:, 0])) == pytest.approx(1.0, abs=1e-5)
    # the stored float16 read as it is gives the basis of its float32 conversion, bit for bit
    half = rows.half()
    assert torch.equal(subspace.trajectory_basis(half, dim=6, chunk=1024), subspace.trajectory_basis(half.float(), dim=6))
    # singular values over five decades (MiniLM's trajectories span about four): still orthonormal
    u, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    v, _ = np.linalg.qr(rng.normal(size=(5000, 6)))
    basis = subspace.trajectory_basis(torch.from_numpy((u * np.geomspace(1, 1e-5, 6)) @ v.T).float(), dim=6)
    torch.testing.assert_close(basis.T @ basis, torch.eye(6), atol=1e-5, rtol=0)


def test_basis_larger_than_the_trajectory_is_refused():
    with pytest.raises(ConfigError, match="exceeds the 3 recorded checkpoints"):
        subspace.trajectory_basis(torch.ones(3, 10), dim=4)
    with pytest.raises(ConfigError, match="rank 1 < subspace dim 2"):
        subspace.trajectory_basis(torch.ones(3, 10), dim=2)
    with pytest.raises(ConfigError, match="does not move"):
        subspace.trajectory_basis(torch.zeros(3, 10), dim=None)


def test_recorded_trajectory_feeds_an_intrinsic_subspace_run(tmp_path, synthetic_task, monkeypatch):
    monkeypatch.setattr(execute, "tokenized_task", lambda *args, **kwargs: synthetic_task)
    runs = Runner(store.RunStore(tmp_path), RunOptions(progress=False))
    source = dataclasses.replace(tiny_config(epochs=1), record_trajectory=6)
    runs.execute(source)
    assert runs.store.is_complete(source)  # every layer's trajectory
    rows = runs.store.trajectory(source.run_id, 0).numpy()
    assert rows.shape[0] == 6 and rows.dtype == np.float16 and np.abs(rows[-1]).max() > 0
    # the last checkpoint is the trained layer: theta_0 + its displacement (float16 rounding only)
    target = dataclasses.replace(tiny_config(seed=1), subspace=SubspaceConfig(basis="intrinsic", dim=4,
                                                                             sources=(source.run_id,)),
                                 save_model=True)
    metrics = runs.execute(target)
    assert metrics["weight_change"]["layer_1"] > 0 and metrics["weight_change"]["embeddings"] > 0
    theta = runs.store.subspace(target)
    assert theta["layer_0"].shape == (16, 4)
    model = kept_model(runs.store, target)
    delta = subspace.deltas(model)[0]
    basis = model.encoder.encoder.layer[0].basis.numpy()
    # the learned update lies in the span of the trajectory
    assert np.abs(delta - basis @ (basis.T @ delta)).max() < 1e-5 * max(1.0, np.abs(delta).max())


def test_too_many_checkpoints_for_the_run_is_a_one_line_error(tmp_path, synthetic_task, monkeypatch):
    monkeypatch.setattr(execute, "tokenized_task", lambda *args, **kwargs: synthetic_task)
    config = dataclasses.replace(tiny_config(epochs=1), record_trajectory=50)  # 96 examples / 8 = 12 steps
    with pytest.raises(ConfigError, match="record_trajectory=50 needs at least that many training steps"):
        Runner(store.RunStore(tmp_path), RunOptions(progress=False)).execute(config)
    assert not any(tmp_path.iterdir())  # nothing half-written


def test_outlier_mask_marks_coordinates_beyond_three_sigma():
    from fewdims_helpers.studies.intrinsic import outlier_mask

    delta = np.zeros(10_000)
    delta[[7, 4242]] = [5.0, -5.0]
    assert np.flatnonzero(outlier_mask(delta)).tolist() == [7, 4242]


def test_disabling_sets_weights_to_zero_or_back_to_theta0():
    _disable = subspace.zero_coordinates
    model = subspace.materialize(subspace.reparameterize(build_model(tiny_config()),
                                                         SubspaceConfig(basis="random", dim=2, init_std=1.0),
                                                         trajectories=None, seed=0))
    original = [subspace.flatten(layer) for layer in build_model(tiny_config()).encoder.encoder.layer]
    masks = [np.zeros(len(o), dtype=bool) for o in original]
    masks[1][[0, 5, 100]] = True
    zeroed, reset = copy.deepcopy(model), copy.deepcopy(model)
    _disable(zeroed, masks, None)
    _disable(reset, masks, original)
    flat_zeroed, flat_reset = (subspace.flatten(m.encoder.encoder.layer[1]) for m in (zeroed, reset))
    assert flat_zeroed[[0, 5, 100]].abs().max() == 0
    assert torch.equal(flat_reset[[0, 5, 100]], original[1][[0, 5, 100]])
    untouched = subspace.flatten(model.encoder.encoder.layer[1])
    keep = torch.ones(len(untouched), dtype=torch.bool)
    keep[[0, 5, 100]] = False
    assert torch.equal(flat_zeroed[keep], untouched[keep]) and torch.equal(flat_reset[keep], untouched[keep])
    assert torch.equal(subspace.flatten(zeroed.encoder.encoder.layer[0]), subspace.flatten(model.encoder.encoder.layer[0]))


def _resolved_smoke_profile():
    from fewdims_helpers.setup.profiles import get_profile

    profile = get_profile("smoke")
    return dataclasses.replace(profile, seq_lengths=tuple((task, 16) for task in profile.tasks))


def test_rate_selection_runs_on_the_selection_seed_for_both_subspaces_and_no_reported_run_reuses_it():
    from fewdims_helpers.studies import intrinsic

    profile = _resolved_smoke_profile()
    design = intrinsic.Design(dim=4, checkpoints=4)
    plan = intrinsic.rate_sweep_configs(profile, design, (0.01, 0.1), freeze_scales=(1.0, 10.0))
    assert set(plan["subspace"]) == {"Intrinsic", "Random", "Freeze"}
    assert len(plan) == len(profile.tasks) * (2 * 2 + 2)
    assert {c.train.seed for c in plan["config"]} == {profile.selection_seed}
    subspaces = plan[plan.subspace != "Freeze"]
    assert {c.subspace.learning_rate for c in subspaces["config"]} == {0.01, 0.1}
    freezes = plan[plan.subspace == "Freeze"]
    recipe = profile.train.learning_rate
    assert {c.train.learning_rate for c in freezes["config"]} == {recipe, float(f"{recipe * 10:.6g}")}
    assert all(c.subspace.basis == "none" for c in freezes["config"])
    assert all(c.data.max_test_examples <= intrinsic.SELECTION_TEST_EXAMPLES for c in plan["config"])
    rates = {task: 0.1 for task in profile.tasks}
    random_rates = {task: 0.01 for task in profile.tasks}
    design = design.with_rates(rates, random_rates, {task: 10.0 for task in profile.tasks})
    configs, labels = intrinsic.table_configs(profile, design)
    assert profile.selection_seed not in {c.train.seed for c in configs}
    assert not set(c.run_id for c in configs) & set(c.run_id for c in plan["config"])
    by_setting = {s: {c.subspace.learning_rate for c, l in zip(configs, labels) if l == s} for s in ("Random", "Intrinsic")}
    assert by_setting == {"Random": {0.01}, "Intrinsic": {0.1}}  # each subspace its own tuned rate
    assert {c.train.learning_rate for c, l in zip(configs, labels) if l == "Freeze"} == {float(f"{recipe * 10:.6g}")}
    # Freeze at the recipe's own rates is the run it always was (its id does not move)
    assert intrinsic.freeze_config(profile, profile.tasks[0], 0) == dataclasses.replace(
        profile.run_config(profile.tasks[0], 0), subspace=SubspaceConfig(basis="none"))


def test_selection_runs_cut_only_the_test_split():
    from fewdims_helpers.studies import intrinsic

    profile = _resolved_smoke_profile()
    config = profile.run_config(profile.tasks[0], profile.selection_seed)
    cut = intrinsic.selection_config(config)
    assert dataclasses.replace(cut.data, max_test_examples=config.data.max_test_examples) == config.data
    assert cut.data.max_test_examples == min(intrinsic.SELECTION_TEST_EXAMPLES, config.data.max_test_examples)


def test_zeroed_run_starts_from_the_pretrained_model_with_the_source_outliers_at_zero(tmp_path, synthetic_task,
                                                                                      monkeypatch):
    """Zhang et al.'s protocol: the coordinates named by a subspace run's 3-sigma outliers (or as many
    random ones) are 0 in the model a zeroed run starts from, and nothing else differs from the
    pretrained model; the run then fine-tunes in the full space."""
    from fewdims_helpers.config import ZeroingConfig

    monkeypatch.setattr(execute, "tokenized_task", lambda *args, **kwargs: synthetic_task)
    runs = Runner(store.RunStore(tmp_path), RunOptions(progress=False))
    source = dataclasses.replace(tiny_config(epochs=1), subspace=SubspaceConfig(basis="random", dim=3, init_std=1.0))
    runs.execute(source)
    masks = [subspace.outlier_mask(d) for d in stored_deltas(runs.store, source.run_id)]
    assert all(m.any() for m in masks)
    pretrained = [subspace.flatten(layer) for layer in build_model(tiny_config()).encoder.encoder.layer]
    for coordinates in ("outliers", "random"):
        config = dataclasses.replace(tiny_config(seed=2), zeroed=ZeroingConfig(source.run_id, coordinates),
                                     save_model=True)
        start = [subspace.flatten(layer) for layer in initial_model(runs.store, config).encoder.encoder.layer]
        for layer, (before, after) in enumerate(zip(pretrained, start)):
            changed = (before != after).numpy()
            assert (after.numpy()[changed] == 0).all()
            if coordinates == "outliers":
                assert (after.numpy()[masks[layer]] == 0).all()
            assert changed.sum() <= masks[layer].sum()
        assert RunConfig.from_dict(config.to_dict()) == config
        runs.execute(config)
        trained = [subspace.flatten(layer) for layer in kept_model(runs.store, config).encoder.encoder.layer]
        assert all((a != b).float().mean() > 0.5 for a, b in zip(start, trained))  # then fine-tuned in the full space
    with pytest.raises(ConfigError, match="no subspace"):
        dataclasses.replace(tiny_config(), zeroed=ZeroingConfig(source.run_id), subspace=SubspaceConfig(basis="none"))


def test_a_rate_chosen_at_the_edge_of_its_grid_is_named():
    """07's sweep: a setting whose best validation score sits at the grid's lowest or highest rate is flagged
    (its best rate may lie outside the grid); one inside the grid is not."""
    import pandas as pd

    from fewdims_helpers.studies.intrinsic import rate_choices, rate_choices_note

    sweep = pd.DataFrame({"task": ["t"] * 6, "subspace": ["Intrinsic"] * 3 + ["Random"] * 3,
                          "learning_rate": [0.01, 0.03, 0.1] * 2,
                          "validation_score": [0.8, 0.7, 0.6, 0.5, 0.7, 0.6]})
    choices = rate_choices(sweep)
    assert choices.set_index("setting")["edge"].to_dict() == {"Intrinsic": "lowest", "Random": ""}
    assert choices.set_index("setting")["chosen"].to_dict() == {"Intrinsic": 0.01, "Random": 0.03}
    note = rate_choices_note(choices)
    assert note.startswith("1 of 2 chosen rates") and "Intrinsic on t (lowest, 0.01)" in note and "Random on" not in note


def test_a_longer_step_cap_reaches_every_run_that_trains_less_than_the_whole_model_and_no_other():
    """``Design.subspace_epochs`` (the plateau rule's remedy): Freeze, Random, Intrinsic, their sweep and the analysis
    runs of that task get the cap; Full, the trajectories, the zeroed-then-fine-tuned runs and other tasks keep the
    recipe's, so their run ids do not move."""
    from fewdims_helpers.studies import intrinsic

    profile = _resolved_smoke_profile()
    task, other = profile.tasks[0], profile.tasks[1]
    recipe = profile.run_config(task, 0).train.epochs
    rates = {t: 0.01 for t in profile.tasks}
    plain = intrinsic.Design(dim=4, checkpoints=4).with_rates(rates, rates)
    longer = dataclasses.replace(plain, subspace_epochs={task: recipe + 3})
    configs, labels = intrinsic.table_configs(profile, longer)
    for config, label in zip(configs, labels):
        expected = recipe + 3 if config.data.task == task and label != "Full" else recipe
        assert config.train.epochs == expected, (label, config.data.task)
    before, _ = intrinsic.table_configs(profile, plain)
    assert [a.run_id == b.run_id for a, b in zip(configs, before)] == [
        c.data.task != task or label == "Full" for c, label in zip(configs, labels)]
    analysis = intrinsic.analysis_configs(profile, longer)
    assert {c.train.epochs for c in analysis["config"] if c.data.task == task} == {recipe + 3}
    assert {c.train.epochs for c in analysis["config"] if c.data.task == other} == {recipe}
    sweep = intrinsic.rate_sweep_configs(profile, longer, (0.01,), freeze_scales=(1.0,))
    assert {c.train.epochs for c in sweep["config"] if c.data.task == task} == {recipe + 3}
    zeroed = intrinsic.zeroed_configs(profile, longer)
    assert {c.train.epochs for c in zeroed["config"]} == {recipe}
    assert intrinsic.trajectory_config(profile, task, 100, 4).train.epochs == recipe
