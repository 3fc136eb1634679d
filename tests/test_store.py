"""Run store invariants: runs are named by config, skipped when done, atomic, and resumable."""
import json

import pytest

from fewdims_helpers import store
from fewdims_helpers.config import RunConfig
from fewdims_helpers.training import train as real_train

from conftest import tiny_config


@pytest.fixture
def counted_training(monkeypatch, synthetic_task):
    """store.execute on synthetic data; counts trainings; raises KeyboardInterrupt for seed 13."""
    calls = []

    def fake_train(config, tokens, **options):
        calls.append(config.run_id)
        if config.train.seed == 13:
            raise KeyboardInterrupt  # the process is killed while this run trains
        return real_train(config, tokens, **options)

    monkeypatch.setattr(store, "tokenized_task", lambda *args, **kwargs: synthetic_task)
    monkeypatch.setattr(store, "train", fake_train)
    return calls


def test_config_round_trips_and_names_its_run():
    config = tiny_config(selected_dims=(5, 2))
    again = RunConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config and again.run_id == config.run_id
    assert config.model.selected_dims == (2, 5)
    assert tiny_config(seed=1).run_id != config.run_id


def test_killed_run_resumes_without_redoing_finished_runs(tmp_path, counted_training):
    done, killed = tiny_config(seed=1), tiny_config(seed=13)
    with pytest.raises(KeyboardInterrupt):
        store.execute_all([done, killed], tmp_path, progress=False, workers=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == [done.run_id]  # no partial or hidden folder left
    assert store.is_complete(done, tmp_path) and not store.is_complete(killed, tmp_path)

    counted_training.clear()
    resumed = tiny_config(seed=13)
    store.execute_all([done, tiny_config(seed=2)], tmp_path, progress=False, workers=1)
    assert counted_training == [tiny_config(seed=2).run_id]  # the finished run was not redone
    assert resumed.run_id not in counted_training


def test_stale_temporary_folder_of_a_killed_process_is_replaced(tmp_path, counted_training):
    config = tiny_config(seed=1)
    stale = tmp_path / f".tmp-{config.run_id}-99999"
    stale.mkdir(parents=True)
    (stale / "config.json").write_text("{half written")
    store.execute(config, tmp_path, progress=False)
    assert not stale.exists() and store.is_complete(config, tmp_path)


def test_force_recomputes_and_collect_gives_one_row_per_run(tmp_path, counted_training):
    configs = [tiny_config(seed=1), tiny_config(seed=2, token_selection="mean")]
    store.execute_all(configs, tmp_path, progress=False, workers=1)
    store.execute_all(configs, tmp_path, progress=False, workers=1, force=True)
    assert len(counted_training) == 4
    frame = store.collect(tmp_path)
    assert len(frame) == 2
    assert set(frame["model.token_selection"]) == {"cls", "mean"}
    assert {"test_score", "test.accuracy", "validation.accuracy", "train.seed", "best_epoch"} <= set(frame.columns)
    stored = json.loads((tmp_path / configs[0].run_id / "config.json").read_text())
    assert RunConfig.from_dict(stored["config"]) == configs[0]
    assert stored["versions"]["torch"] and "git_commit" in stored and stored["split"]["test"]["size"] == 48


def test_requested_features_are_saved_with_labels(tmp_path, counted_training):
    import dataclasses
    import numpy as np

    config = dataclasses.replace(tiny_config(seed=1), save_features=("test",))
    store.execute(config, tmp_path, progress=False)
    features = np.load(tmp_path / config.run_id / "features-test.npy")
    assert features.shape == (48, 32)
    assert np.load(tmp_path / config.run_id / "labels-test.npy").shape == (48,)


def test_saved_test_features_are_those_that_scored_test(tmp_path, counted_training):
    import dataclasses
    import numpy as np

    config = dataclasses.replace(tiny_config(seed=1, epochs=2), save_features=("train", "test"))
    metrics = store.execute(config, tmp_path, progress=False)
    folder = tmp_path / config.run_id
    head = np.load(folder / "head.npz")
    logits = np.load(folder / "features-test.npy") @ head["weight"].T + head["bias"]
    accuracy = float(np.mean(logits.argmax(1) == np.load(folder / "labels-test.npy")))
    assert accuracy == pytest.approx(metrics["test"]["accuracy"])


def test_schedule_hands_out_longest_runs_first_and_keeps_subspaces_together(monkeypatch, synthetic_task):
    import dataclasses

    from fewdims_helpers.config import SubspaceConfig

    long_task = {name: dataclasses.replace(split, lengths=split.lengths * 4) for name, split in synthetic_task.items()}
    monkeypatch.setattr(store, "tokenized_task", lambda data, *args: long_task if data.task == "bbc-news" else synthetic_task)
    short, long, frozen = tiny_config(), tiny_config("bbc-news"), tiny_config("bbc-news", freeze_pretrained=True)
    lower = tiny_config("bbc-news", layer=1)  # 1 of the tiny model's 2 layers
    assert store.schedule([frozen, short, lower, long]) == [long, lower, short, frozen]

    random = [dataclasses.replace(tiny_config(seed=s), subspace=SubspaceConfig(basis="random", dim=2)) for s in (0, 1)]
    order = [store._basis_affinity(c) for c in store.schedule([random[0], long, random[1],
                                                                dataclasses.replace(random[0], save_model=True)])]
    assert order == sorted(order, key=order.index)  # each subspace's runs adjacent


def test_parallel_runs_reuse_one_worker_pool(tmp_path):
    import dataclasses

    from fewdims_helpers.config import DataConfig

    data = DataConfig("rt-polarity", max_seq_length=16, max_train_examples=32, max_eval_examples=16)
    configs = [dataclasses.replace(tiny_config(seed=s), data=data) for s in (1, 2, 3, 4)]
    first = store.execute_all(configs[:2], tmp_path, progress=False, workers=2)
    (pool,) = store._POOL.values()
    second = store.execute_all(configs, tmp_path, progress=False, workers=2)
    assert list(store._POOL.values()) == [pool]  # the second call found the workers of the first
    assert list(first.run_id) == [c.run_id for c in configs[:2]] and list(second.run_id) == [c.run_id for c in configs]
    assert all(store.is_complete(c, tmp_path) for c in configs)
    pool.shutdown()


def test_background_runs_are_queued_and_waited_for_not_started_twice(tmp_path):
    import dataclasses

    from fewdims_helpers.config import DataConfig

    data = DataConfig("rt-polarity", max_seq_length=16, max_train_examples=32, max_eval_examples=16)
    first, *later = [dataclasses.replace(tiny_config(seed=s), data=data) for s in (5, 6, 7)]
    store.execute_all([first, later[0]], tmp_path, progress=False, workers=2, background=later)
    keys = {(str(tmp_path), c.run_id) for c in later[1:]}
    assert keys <= set(store._PENDING)  # queued behind the call's own runs, not waited for
    frame = store.execute_all(later, tmp_path, progress=False, workers=2)
    assert not keys & set(store._PENDING) and list(frame.run_id) == [c.run_id for c in later]
    assert all(store.is_complete(c, tmp_path) for c in [first, *later])


def test_analyses_run_in_the_worker_pool_in_the_order_given():
    import functools
    import operator

    assert store.map_in_workers(functools.partial(operator.mul, 3), [4, 1, 2], workers=2, progress=False) == [12, 3, 6]
    assert store._POOL  # the kept pool ran them
    with pytest.raises(ZeroDivisionError):  # a worker's error reaches the caller
        store.map_in_workers(functools.partial(operator.truediv, 1), [1, 0], workers=2, progress=False)
    assert store.map_in_workers(functools.partial(operator.mul, 3), [5], workers=1, progress=False) == [15]
