"""Frozen-encoder heads on cached features equal training the frozen model; cross-fine-tuning
starts from the source run's encoder and measures what survives of the source task."""
import dataclasses

import pytest
import torch

from fewdims_helpers.runs import store
from fewdims_helpers.training.features import frozen_features
from fewdims_helpers.model.pretrained import pretrained_encoder
from fewdims_helpers.execution import resolve
from fewdims_helpers.options import ProfileOverrides, RunOptions
from fewdims_helpers.training.loop import relative_weight_change, train
from fewdims_helpers.runs import execute
from fewdims_helpers.runs.models import initial_model, kept_model
from fewdims_helpers.runs.runner import Runner

from conftest import tiny_config


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FEWDIMS_CACHE", str(tmp_path / "cache"))


@pytest.mark.parametrize("head_layers", [1, 2])
def test_frozen_feature_training_equals_training_the_frozen_model(synthetic_task, head_layers):
    config = tiny_config(epochs=3, freeze_pretrained=True, head_layers=head_layers)
    direct = train(config, synthetic_task, device="cpu", progress=False)
    cached = train(config, synthetic_task, device="cpu", progress=False,
                   cached_features=frozen_features(config, synthetic_task, resolve("cpu"), RunOptions().sources.cache))
    assert direct.best_epoch == cached.best_epoch
    for a, b in zip(direct.history, cached.history):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)
        assert a["validation"] == pytest.approx(b["validation"], abs=1e-6)
    for (name, p), q in zip(direct.model.head.named_parameters(), cached.model.head.parameters()):
        # features differ in the last bits (other padding widths); Adam scales such gradient noise up
        assert (p - q).abs().max() < 1e-2 * p.abs().max(), name


def test_cached_features_need_a_frozen_encoder(synthetic_task):
    with pytest.raises(ValueError, match="frozen encoder"):
        train(tiny_config(), synthetic_task, device="cpu", progress=False,
              cached_features={s: torch.zeros(len(t), 32) for s, t in synthetic_task.items()})


def test_weight_change_is_zero_for_frozen_blocks_only(synthetic_task):
    result = train(tiny_config(frozen_layers=1, lr=1e-2), synthetic_task, device="cpu", progress=False)
    change = relative_weight_change(result.model, pretrained_encoder("tiny"))
    assert change["embeddings"] == 0 and change["layer_1"] == 0 and change["layer_2"] > 0


@pytest.mark.slow  # two runs through the store
def test_cross_fine_tuning_starts_from_the_source_encoder(tmp_path, monkeypatch, synthetic_task):
    monkeypatch.setattr(execute, "tokenized_task", lambda *args, **kwargs: synthetic_task)
    runs = Runner(store.RunStore(tmp_path), RunOptions(progress=False))
    source = dataclasses.replace(tiny_config(seed=1, lr=1e-2), save_model=True)
    runs.execute(source)
    assert runs.store.is_complete(source)

    follow = dataclasses.replace(tiny_config(seed=2, lr=1e-2), init_from=source.run_id)
    model = initial_model(runs.store, follow)
    saved = kept_model(runs.store, source)
    assert torch.equal(model.encoder.embeddings.word_embeddings.weight, saved.encoder.embeddings.word_embeddings.weight)
    assert not torch.equal(model.head[0].weight, saved.head[0].weight)  # a fresh head

    metrics = runs.execute(follow)
    assert set(metrics["source_after"]) == {"accuracy"}
    assert follow.run_id != dataclasses.replace(follow, init_from=None).run_id
    saved = runs.store.source_predictions(follow)  # the source task's logits after B: they give source_after exactly
    assert (saved["logits"].argmax(1) == saved["labels"]).mean() == pytest.approx(metrics["source_after"]["accuracy"])


def test_new_optional_fields_leave_existing_run_ids_alone():
    config = tiny_config()
    assert dataclasses.replace(config, save_model=False, init_from=None).run_id == config.run_id
    assert dataclasses.replace(config, save_model=True).run_id != config.run_id


@pytest.mark.slow  # resolves the default profile on the packaged tasks
def test_each_family_trains_with_its_own_recipe():
    from fewdims_helpers.setup.profiles import get_profile

    profile = get_profile("default").resolve(RunOptions().sources)
    frozen = profile.run_config("rt-polarity", 0, freeze_pretrained=True)
    low, top = profile.run_config("rt-polarity", 0, layer=1), profile.run_config("rt-polarity", 0, layer=6)
    partly = profile.run_config("rt-polarity", 0, frozen_layers=5)
    assert frozen.train == dataclasses.replace(profile.frozen_head_train, seed=0)
    assert low.train == dataclasses.replace(profile.layer_head_train, seed=0)
    assert top.train == partly.train == profile.baseline("rt-polarity", 0).train
    capped = get_profile("default", ProfileOverrides(epochs=2))
    assert (capped.train.epochs, capped.frozen_head_train.epochs, capped.layer_head_train.epochs) == (2, 2, 2)


@pytest.mark.slow  # notebook 05 through run_all.py
def test_cross_fine_tuning_on_one_task_says_so_in_one_line_and_writes_no_table(tmp_path):
    from conftest import run_all
    from fewdims_helpers.setup.profiles import get_profile
    from fewdims_helpers.studies import cross

    one, two = (get_profile("smoke", ProfileOverrides(tasks=tasks)) for tasks in (["rt-polarity"], ["rt-polarity", "bbc-news"]))
    assert cross.missing_tasks(two) is None and len(cross.pairs(two)) == 2 * len(two.seeds)
    line = cross.missing_tasks(one)
    assert "needs at least 2 tasks" in line and "\n" not in line and cross.pairs(one) == []
    with pytest.raises(ValueError, match="needs at least 2 tasks"):
        cross.run(one, Runner(store.RunStore(tmp_path / "never")))
    # the notebook itself, through run_all.py (no run trains: nothing to pair)
    result = run_all("--profile", "smoke", "--tasks", "rt-polarity", "--only", "05", "--output-dir", str(tmp_path / "out"),
                     timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "needs at least 2 tasks" in result.stdout
    assert not list((tmp_path / "out" / "figures").glob("05_*"))
