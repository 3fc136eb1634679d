"""Run store invariants: runs are named by config, skipped when done, atomic, resumable, and complete
only when every artifact their config declares exists, each the size its manifest records; planted
faults in a run's files are found, named in one line, set aside and recomputed."""
import dataclasses
import functools
import hashlib
import json
import logging
import operator
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from fewdims_helpers import paths
from fewdims_helpers.runs import execute, store
from fewdims_helpers.runs.models import kept_model
from fewdims_helpers.runs.reference_export import export_summary
from fewdims_helpers.runs.scheduling import schedule
from fewdims_helpers.runs.runner import Runner
from fewdims_helpers.config import DataConfig, RunConfig, SubspaceConfig
from fewdims_helpers.runs.integrity import CorruptRun
from fewdims_helpers.stats.metrics import compute_metrics, predictions_from_logits
from fewdims_helpers.options import RunOptions
from fewdims_helpers.paths import HOST, write_atomically
from fewdims_helpers.model.subspace import basis_affinity
from fewdims_helpers.training.loop import train as real_train

from conftest import tiny_config


def run_store(root, **options) -> Runner:
    return Runner(store.RunStore(root), RunOptions(progress=False, **options))


@pytest.fixture
def counted_training(monkeypatch, synthetic_task):
    """Runner.execute on synthetic data; counts trainings; raises KeyboardInterrupt for seed 13."""
    calls = []

    def fake_train(config, tokens, **options):
        calls.append(config.run_id)
        if config.train.seed == 13:
            raise KeyboardInterrupt  # the process is killed while this run trains
        return real_train(config, tokens, **options)

    monkeypatch.setattr(execute, "tokenized_task", lambda *args, **kwargs: synthetic_task)
    monkeypatch.setattr(execute, "train", fake_train)
    return calls


def test_config_round_trips_and_names_its_run():
    config = tiny_config(selected_dims=(5, 2))
    again = RunConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config and again.run_id == config.run_id
    assert config.model.selected_dims == (2, 5)
    assert tiny_config(seed=1).run_id != config.run_id


def test_killed_run_resumes_without_redoing_finished_runs(tmp_path, counted_training):
    runs = run_store(tmp_path, workers=1)
    done, killed = tiny_config(seed=1), tiny_config(seed=13)
    with pytest.raises(KeyboardInterrupt):
        runs.execute_all([done, killed])
    assert sorted(p.name for p in tmp_path.iterdir()) == [done.run_id]  # no partial or hidden folder left
    assert runs.store.is_complete(done) and not runs.store.is_complete(killed)

    counted_training.clear()
    runs.execute_all([done, tiny_config(seed=2)])
    assert counted_training == [tiny_config(seed=2).run_id]  # the finished run was not redone


def test_stale_temporary_folder_of_this_hosts_dead_process_is_removed_and_others_kept(tmp_path, counted_training):
    config = tiny_config(seed=1)
    dead = tmp_path / f".tmp-{config.run_id}-{HOST}-999999999-0badc0de"  # no such process
    other_host = tmp_path / f".tmp-{config.run_id}-another_host-999999999-0badc0de"
    for stale in (dead, other_host):
        stale.mkdir(parents=True)
        (stale / "config.json").write_text("{half written")
    run_store(tmp_path).execute(config)
    assert not dead.exists() and other_host.exists()  # another machine's run may still be writing
    assert run_store(tmp_path).store.is_complete(config)


def test_the_sweep_removes_temporaries_whose_writer_is_gone_on_any_host_and_keeps_live_ones(tmp_path):
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])  # exits, and stays a zombie until reaped
    while paths.process_alive(zombie.pid):
        time.sleep(0.01)
    assert Path(f"/proc/{zombie.pid}").exists() or not Path("/proc").exists()  # the pid is still taken
    fresh_elsewhere, lost_node, live, this_process, other = (
        tmp_path / ".tmp-rt-polarity-cls-s1-0123456789-another_host-12-0badc0de",
        tmp_path / ".tmp-rt-polarity-cls-s2-0123456789-another_host-12-0badc0de",
        tmp_path / f".tmp-rt-polarity-cls-s3-0123456789-{HOST}-{os.getppid()}-0badc0de",
        tmp_path / f".tmp-metrics.json-{HOST}-{os.getpid()}-0badc0de",
        tmp_path / ".tmp-not-a-temporary-of-ours")
    killed = tmp_path / f".tmp-rt-polarity-cls-s4-0123456789-{HOST}-{zombie.pid}-0badc0de"
    for folder in (fresh_elsewhere, lost_node, live, killed, other):
        folder.mkdir()
        (folder / "config.json").write_text("{half written")
    this_process.write_text("half")
    long_ago = time.time() - paths.STALE_SECONDS - 60
    os.utime(lost_node, (long_ago, long_ago))  # its node stopped touching it
    assert paths.temporary_owner(killed) == ("rt-polarity-cls-s4-0123456789", HOST, zombie.pid)
    assert sorted(run_store(tmp_path).store.sweep()) == sorted([lost_node, killed])
    assert all(p.exists() for p in (fresh_elsewhere, live, this_process, other))
    zombie.wait()


def test_a_writer_touches_its_temporary_while_it_writes(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "HEARTBEAT_SECONDS", 0.05)
    seen = []

    def slow(tmp):
        tmp.mkdir()
        os.utime(tmp, (0, 0))
        time.sleep(0.5)
        seen.append(tmp.stat().st_mtime)
    write_atomically(tmp_path / "run", slow)
    assert seen[0] > time.time() - 60  # touched after it was set back to 1970


def test_force_recomputes_and_collect_gives_one_row_per_run(tmp_path, counted_training):
    configs = [tiny_config(seed=1), tiny_config(seed=2, token_selection="mean")]
    run_store(tmp_path, workers=1).execute_all(configs)
    run_store(tmp_path, workers=1, force=True).execute_all(configs)
    assert len(counted_training) == 4
    runs = run_store(tmp_path)
    frame = runs.store.collect()
    assert len(frame) == 2
    assert set(frame["model.token_selection"]) == {"cls", "mean"}
    assert {"test_score", "test.accuracy", "validation.accuracy", "train.seed", "best_epoch"} <= set(frame.columns)
    record = runs.store.record(configs[0])
    assert runs.store.stored_config(configs[0].run_id) == configs[0]
    assert record["versions"]["torch"] and "git_commit" in record and record["split"]["test"]["size"] == 48
    assert record["cpu"] and record["threads"] >= 1  # provenance: where and how it ran


def test_requested_features_are_saved_with_labels(tmp_path, counted_training):
    runs = run_store(tmp_path)
    config = dataclasses.replace(tiny_config(seed=1), save_features=("test",))
    runs.execute(config)
    features, labels = runs.store.features(config, "test")
    assert features.shape == (48, 32) and labels.shape == (48,)


def test_saved_test_features_are_those_that_scored_test(tmp_path, counted_training):
    runs = run_store(tmp_path)
    config = dataclasses.replace(tiny_config(seed=1, epochs=2), save_features=("train", "test"))
    metrics = runs.execute(config)
    weight, bias = runs.store.head(config)
    features, labels = runs.store.features(config, "test")
    accuracy = float(np.mean((features @ weight.T + bias).argmax(1) == labels))
    assert accuracy == pytest.approx(metrics["test"]["accuracy"])


def test_saved_predictions_reproduce_the_stored_metrics(tmp_path, counted_training):
    runs = run_store(tmp_path)
    config = dataclasses.replace(tiny_config(seed=1, epochs=2), save_predictions=("validation", "test"))
    metrics = runs.execute(config)
    for split, stored in (("test", metrics["test"]), ("validation", metrics["validation"])):
        saved = runs.store.predictions(config, split)
        assert saved["logits"].shape == (48, 2) and len(saved["idx"]) == 48
        again = compute_metrics("accuracy", predictions_from_logits(saved["logits"], 2), saved["labels"])
        assert again["accuracy"] == pytest.approx(stored["accuracy"])


def test_a_run_missing_a_declared_artifact_is_not_complete(tmp_path, counted_training):
    runs = run_store(tmp_path)
    config = dataclasses.replace(tiny_config(seed=1), save_features=("train", "test"), save_model=True)
    assert set(config.artifacts) == {"features:train", "features:test", "head", "model"}
    runs.execute(config)
    assert runs.store.is_complete(config)
    (runs.store.folder(config) / store.HEAD_FILE).unlink()  # e.g. a folder copied without its large files
    assert not runs.store.is_complete(config)
    counted_training.clear()
    runs.execute(config)
    assert counted_training == [config.run_id] and runs.store.is_complete(config)  # recomputed, not read


def test_a_missing_artifact_is_a_one_line_error_naming_the_fix(tmp_path, counted_training):
    runs = run_store(tmp_path)
    config = tiny_config(seed=1)
    runs.execute(config)
    with pytest.raises(FileNotFoundError, match="has no model.pt; run it with save_model=True"):
        kept_model(runs.store, config)


def test_schedule_hands_out_longest_runs_first_and_keeps_subspaces_together(tmp_path, monkeypatch, synthetic_task):
    long_task = {name: dataclasses.replace(split, lengths=split.lengths * 4) for name, split in synthetic_task.items()}
    monkeypatch.setattr(execute, "tokenized_task", lambda data, *args: long_task if data.task == "bbc-news" else synthetic_task)
    runs = run_store(tmp_path)
    short, long, frozen = tiny_config(), tiny_config("bbc-news"), tiny_config("bbc-news", freeze_pretrained=True)
    lower = tiny_config("bbc-news", layer=1)  # 1 of the tiny model's 2 layers
    assert schedule_of(runs, [frozen, short, lower, long]) == [long, lower, short, frozen]

    random = [dataclasses.replace(tiny_config(seed=s), subspace=SubspaceConfig(basis="random", dim=2)) for s in (0, 1)]
    order = [basis_affinity(c) for c in schedule_of(runs, [random[0], long, random[1],
                                                       dataclasses.replace(random[0], save_model=True)])]
    assert order == sorted(order, key=order.index)  # each subspace's runs adjacent


def small_configs(*seeds):
    data = DataConfig("rt-polarity", max_seq_length=16, max_train_examples=32, max_eval_examples=16)
    return [dataclasses.replace(tiny_config(seed=s), data=data) for s in seeds]


@pytest.mark.slow  # spawns worker processes
def test_parallel_runs_reuse_the_stores_worker_pool(tmp_path):
    runs = run_store(tmp_path, workers=2)
    configs = small_configs(1, 2, 3, 4)
    first = runs.execute_all(configs[:2])
    pool = runs._pool
    second = runs.execute_all(configs)
    assert runs._pool is pool  # the second call found the workers of the first
    assert list(first.run_id) == [c.run_id for c in configs[:2]] and list(second.run_id) == [c.run_id for c in configs]
    assert all(runs.store.is_complete(c) for c in configs)
    pool.shutdown()


@pytest.mark.slow  # spawns worker processes
def test_background_runs_are_queued_and_waited_for_not_started_twice(tmp_path):
    runs = run_store(tmp_path, workers=2)
    first, *later = small_configs(5, 6, 7)
    runs.execute_all([first, later[0]], background=later)
    queued = {c.run_id for c in later[1:]}
    assert queued <= set(runs._pool.pending)  # queued behind the call's own runs, not waited for
    frame = runs.execute_all(later)
    assert not queued & set(runs._pool.pending) and list(frame.run_id) == [c.run_id for c in later]
    assert all(runs.store.is_complete(c) for c in [first, *later])
    runs._pool.shutdown()


def test_analyses_run_in_the_worker_pool_in_the_order_given(tmp_path):
    runs = run_store(tmp_path, workers=2)
    assert runs.map(functools.partial(operator.mul, 3), [4, 1, 2]) == [12, 3, 6]
    assert runs._pool is not None  # the kept pool ran them
    with pytest.raises(ZeroDivisionError):  # a worker's error reaches the caller
        runs.map(functools.partial(operator.truediv, 1), [1, 0])
    runs._pool.shutdown()
    assert run_store(tmp_path, workers=1).map(functools.partial(operator.mul, 3), [5]) == [15]


def test_two_writers_of_one_run_folder_leave_one_complete_folder_and_no_temporary(tmp_path):
    target = tmp_path / "run"

    def write(name: str, inner=None):
        def fill(folder):
            folder.mkdir()
            (folder / "a").write_text(name)
            if inner is not None:
                inner()  # the other writer finishes while this one is still writing
            (folder / "b").write_text(name)
        return fill
    write_atomically(target, write("first", inner=lambda: write_atomically(target, write("second"))))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert {(target / "a").read_text(), (target / "b").read_text()} in ({"first"}, {"second"})  # one whole writer


# ---------------------------------------------------------------------------- manifests and planted faults
def manifest_store(tmp_path, counted_training):
    """A store with one run that keeps test features, labels, a head and test predictions."""
    runs = run_store(tmp_path, workers=1)
    config = dataclasses.replace(tiny_config(seed=1), save_features=("test",))
    runs.execute(config)
    counted_training.clear()
    return runs, config


def schedule_of(runs: Runner, configs: list) -> list:
    return schedule(configs, runs.tokens)


def files_in(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def results_of(runs: Runner, config: RunConfig) -> dict:
    """What studies read of a run; equal bitwise when the run is recomputed on the same machine."""
    features, labels = runs.store.features(config, "test")
    return {"test": runs.store.metrics(config)["test"], "predictions": runs.store.predictions(config, "test"),
            "head": runs.store.head(config), "features": features, "labels": labels, "config": runs.store.record(config)["config"]}


def assert_same_results(a: dict, b: dict) -> None:
    assert a["test"] == b["test"] and a["config"] == b["config"]
    assert all(np.array_equal(a["predictions"][k], b["predictions"][k]) for k in ("idx", "logits", "labels"))
    assert all(np.array_equal(x, y) for x, y in zip(a["head"], b["head"]))
    assert np.array_equal(a["features"], b["features"]) and np.array_equal(a["labels"], b["labels"])


def quarantined(runs: Runner, config: RunConfig) -> list[Path]:
    return sorted(p for p in (runs.store.root / ".quarantine").glob(f"{config.run_id}.*") if p.is_dir())


def test_every_run_carries_a_manifest_of_its_files(tmp_path, counted_training):
    runs, config = manifest_store(tmp_path, counted_training)
    files = files_in(runs.store.folder(config))
    manifest = json.loads(files.pop("manifest.json"))
    assert set(files) == {"config.json", "metrics.json", "features-test.npy", "labels-test.npy", "head.npz",
                          "predictions-test.npz"}
    assert manifest["files"] == {name: {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                                 for name, data in files.items()}
    assert runs.store.is_complete(config) and runs.store.verify().lines() == [f"{tmp_path} (runs): 1 checked, 1 intact, 0 corrupt"]
    assert config.run_id == runs.store.stored_config(config.run_id).run_id  # the manifest is beside the run, not in its id


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])  # a full disk, an interrupted copy


def first_line_only(path: Path) -> None:
    path.write_text(path.read_text().splitlines()[0] + "\n")


FAULTS = {  # fault -> (plant it in the run folder, the one problem it is named by)
    "truncated npz": (lambda folder: truncate(folder / "predictions-test.npz"),
                      r"predictions-test\.npz has \d+ bytes, its manifest says \d+ \(truncated or overwritten\)"),
    "broken json": (lambda folder: first_line_only(folder / "config.json"),
                    r"config\.json has 2 bytes, its manifest says \d+ \(truncated or overwritten\)"),
    "missing artifact": (lambda folder: (folder / "head.npz").unlink(), r"head\.npz is missing \(its manifest lists it\)"),
    # every run keeps its test predictions, though this config declares none: only the manifest knows it
    "manifest lists a file that is gone": (lambda folder: (folder / "predictions-test.npz").unlink(),
                                           r"predictions-test\.npz is missing \(its manifest lists it\)"),
}


@pytest.mark.parametrize("fault", FAULTS)
def test_a_planted_fault_is_named_in_one_line_set_aside_and_recomputed(fault, tmp_path, counted_training, caplog):
    runs, config = manifest_store(tmp_path, counted_training)
    before = results_of(runs, config)
    plant, problem = FAULTS[fault]
    plant(runs.store.folder(config))
    planted = files_in(runs.store.folder(config))
    assert not runs.store.is_complete(config)  # the sizes, checked on every call
    with caplog.at_level(logging.WARNING, logger="fewdims_helpers"):
        run_store(tmp_path, workers=1).execute_all([config])
    [moved] = quarantined(runs, config)
    [line] = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert re.fullmatch(rf"corrupt run {config.run_id} in {re.escape(str(tmp_path))}: {problem}; its files were moved "
                        rf"to {re.escape(str(moved))} \(nothing deleted\); computing it again", line), line
    assert files_in(moved) == planted  # nothing deleted: the damaged files are kept as they were found
    assert counted_training == [config.run_id] and runs.store.is_complete(config)
    assert_same_results(results_of(runs, config), before)
    assert config.run_id in set(runs.store.collect()["run_id"]) and len(runs.store.collect()) == 1  # the store never reads it


def test_a_flipped_byte_is_caught_by_its_hash_when_read_then_set_aside_and_recomputed(tmp_path, counted_training):
    runs, config = manifest_store(tmp_path, counted_training)
    before = results_of(runs, config)
    path = runs.store.folder(config) / "predictions-test.npz"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # same size: a bad disk sector, a bit flipped in a copy
    path.write_bytes(bytes(data))
    assert run_store(tmp_path).store.is_complete(config)  # sizes match: only the hash can tell
    with pytest.raises(CorruptRun) as caught:
        run_store(tmp_path).store.predictions(config, "test")
    [moved] = quarantined(runs, config)
    assert str(caught.value) == (
        f"corrupt run {config.run_id} in {tmp_path}: predictions-test.npz has the size its manifest records but "
        f"another sha256 (its bytes changed); its files were moved to {moved} (nothing deleted); run the notebook "
        f"again to recompute it")
    assert (moved / "predictions-test.npz").read_bytes() == bytes(data)
    run_store(tmp_path, workers=1).execute_all([config])
    assert counted_training == [config.run_id]
    assert_same_results(results_of(runs, config), before)


def test_a_run_from_before_manifests_gets_one_from_verify_once_its_files_load(tmp_path, counted_training):
    runs, config = manifest_store(tmp_path, counted_training)
    manifest = runs.store.folder(config) / "manifest.json"
    written = manifest.read_bytes()
    manifest.unlink()
    assert runs.store.is_complete(config)  # as before manifests: every declared file exists
    report = runs.store.verify()
    assert report.adopted == [config.run_id] and not report.problems
    assert json.loads(manifest.read_bytes()) == json.loads(written)  # what the run would have written itself
    assert runs.store.verify().adopted == [] and counted_training == []


def test_reading_a_broken_file_of_a_run_without_manifest_names_the_run_the_file_and_the_fix(tmp_path, counted_training):
    runs, config = manifest_store(tmp_path, counted_training)
    before = results_of(runs, config)
    folder = runs.store.folder(config)
    (folder / "manifest.json").unlink()
    first_line_only(folder / "metrics.json")
    truncate(folder / "predictions-test.npz")
    fix = ("python run_all.py --verify --repair sets the run aside so that the next invocation recomputes it, or "
           "rerun its notebook with --force")
    with pytest.raises(CorruptRun) as caught:
        runs.store.metrics(config)
    assert str(caught.value) == (f"metrics.json of run {config.run_id} in {tmp_path} does not load (JSONDecodeError: "
                                 f"Expecting property name enclosed in double quotes: line 2 column 1 (char 2)); {fix}")
    with pytest.raises(CorruptRun, match=rf"^predictions-test\.npz of run {config.run_id} in .* does not load "
                                         rf"\(BadZipFile: .*\); python run_all\.py --verify --repair"):
        runs.store.predictions(config, "test")
    assert runs.store.folder(config).is_dir()  # a reading error of a run without manifest moves nothing by itself

    report = runs.store.verify(repair=True)
    assert [p for _, p in report.problems][0].startswith("metrics.json does not load (JSONDecodeError")
    assert {r for r, _ in report.problems} == {config.run_id} and len(report.problems) == 2 and not report.adopted
    assert not runs.store.folder(config).exists() and len(quarantined(runs, config)) == 1
    runs.execute_all([config])
    assert counted_training == [config.run_id]
    assert_same_results(results_of(runs, config), before)


def test_verify_only_reads_a_reference_of_summaries(tmp_path, counted_training):
    runs, config = manifest_store(tmp_path / "local", counted_training)
    export_summary(runs.store, config.run_id, tmp_path / "reference")
    reference = store.RunStore(tmp_path / "reference")
    assert reference.verify(read_only=True).lines() == [
        f"{tmp_path / 'reference'} (summaries, read-only): 1 checked, 1 load whole, 0 corrupt"]
    truncate(reference.folder(config) / "predictions-test.npz")
    files = files_in(tmp_path / "reference")
    report = reference.verify(repair=True, read_only=True)
    assert [p for _, p in report.problems][0].startswith("predictions-test.npz does not load (BadZipFile")
    assert report.lines()[-1].endswith(f"0 load whole, 1 corrupt; restore them from git: git checkout -- "
                                       f"{tmp_path / 'reference'}")
    assert files_in(tmp_path / "reference") == files  # no manifest written, nothing moved
