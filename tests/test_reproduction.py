"""The reference and the reproduction report: a reference is never read as a finished run, identical runs
are bitwise, a perturbed reference is a disagreement (and a non-zero exit under --strict), and two smoke
runs into two stores agree bitwise."""
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fewdims_helpers.runs import execute, ledger, store
from fewdims_helpers.runs.reference_export import export_summary
from fewdims_helpers.runs.runner import Runner
from fewdims_helpers.report import reference_update, reproduction
from fewdims_helpers.options import RunOptions

from conftest import run_all, tiny_config


@pytest.fixture
def synthetic_store(tmp_path, monkeypatch, synthetic_task):
    monkeypatch.setattr(execute, "tokenized_task", lambda *args, **kwargs: synthetic_task)
    return Runner(store.RunStore(tmp_path / "local"), RunOptions(progress=False, workers=1))


def exported(local: Runner, configs, root: Path) -> store.RunStore:
    for config in configs:
        export_summary(local.store, config.run_id, root)
    return store.RunStore(root)


def test_a_reference_is_never_a_finished_run(synthetic_store, tmp_path):
    config = tiny_config(seed=1)
    synthetic_store.execute(config)
    reference = exported(synthetic_store, [config], tmp_path / "reference")
    assert synthetic_store.store.is_complete(config) and reference.is_summary(config)
    assert not reference.is_complete(config)  # config and metrics are there, but it is a summary
    assert reference.has_predictions(config.run_id, "test")
    assert reference.metrics(config.run_id) == synthetic_store.store.metrics(config.run_id)
    with pytest.raises(RuntimeError, match="exported summary"):
        Runner(reference).execute(config)  # neither read as finished nor computed into


def test_the_ledger_counts_computed_and_reused_runs(synthetic_store, monkeypatch):
    monkeypatch.delenv(ledger.INVOCATION_ENV, raising=False)
    first, second = tiny_config(seed=1), tiny_config(seed=2)
    synthetic_store.execute(first)
    invocation = synthetic_store.store.ledger.begin_invocation()
    try:
        synthetic_store.execute_all([first, second])
    finally:
        synthetic_store.store.ledger.end_invocation()
    assert synthetic_store.store.ledger.invocation_runs(invocation) == {"computed": [second.run_id], "reused": [first.run_id],
                                                           "summaries": []}


def test_identical_runs_are_bitwise_and_a_perturbed_reference_disagrees(synthetic_store, tmp_path):
    configs, new = [tiny_config(seed=1), tiny_config(seed=2)], tiny_config(seed=3)
    synthetic_store.execute_all([*configs, new])
    reference = exported(synthetic_store, configs, tmp_path / "reference")
    rows = reproduction.compare_runs(synthetic_store.store, reference, [c.run_id for c in configs] + [new.run_id])
    assert list(rows["verdict"]) == [reproduction.BITWISE, reproduction.BITWISE, reproduction.NO_REFERENCE]

    logits_file = reference.folder(configs[0]) / "predictions-test.npz"
    saved = dict(np.load(logits_file))
    saved["logits"][0, 0] += 1e-3  # one logit of one example
    np.savez(logits_file, **saved)
    metrics_file = reference.folder(configs[1]) / "metrics.json"
    metrics = json.loads(metrics_file.read_text())
    metrics["test"]["accuracy"] += 0.01
    metrics_file.write_text(json.dumps(metrics))
    rows = reproduction.compare_runs(synthetic_store.store, reference, [c.run_id for c in configs])
    assert list(rows["verdict"]) == [reproduction.DISAGREEMENT, reproduction.DISAGREEMENT]  # same machine, threads
    assert rows["abs_delta"].iloc[1] == pytest.approx(1.0)

    record_file = reference.folder(configs[1]) / "config.json"
    record = json.loads(record_file.read_text())
    record["cpu"], record["gpu"] = "another CPU", "another GPU"  # another machine, on a CPU or a GPU
    record_file.write_text(json.dumps(record))
    row = reproduction.compare_run(synthetic_store.store, reference, configs[1].run_id)
    assert row["verdict"] == reproduction.WITHIN and row["interval_low"] < row["recomputed"] < row["interval_high"]


def test_tables_are_matched_on_their_text_columns(tmp_path):
    pd.DataFrame({"task": ["a", "b"], "score": ["74.7 ± 1.8", "60.0 ± 0.5"], "n": [3, 3],
                  "pair_scan_seconds": [0.1, 0.2]}).to_csv(tmp_path / "ref.csv", index=False)
    pd.DataFrame({"task": ["b", "a", "c"], "score": ["60.0 ± 0.5", "74.9 ± 1.8", "1.0 ± 0.0"], "n": [3, 3, 3],
                  "pair_scan_seconds": [0.3, 0.4, 0.5]}).to_csv(tmp_path / "new.csv", index=False)
    cells = reproduction.compare_table(tmp_path / "new.csv", tmp_path / "ref.csv")
    [summary] = reproduction.table_summary(cells).to_dict("records")
    assert summary["cells"] == 4 and summary["differing"] == 1 and summary["without_counterpart"] == 2
    assert summary["max_abs_delta"] == pytest.approx(0.2)  # seconds are not results: not compared


def smoke(*args: str):
    return run_all("--profile", "smoke", *args)


@pytest.mark.slow
@pytest.mark.xdist_group("smoke")  # shares the session's smoke run
def test_two_smoke_runs_into_two_stores_agree_bitwise_and_a_perturbed_reference_fails_strict(smoke_run, tmp_path):
    # the first store and its reference: every notebook (the session's shared smoke run); the second store
    # recomputes notebooks 01 (classification and regression runs, workers in parallel) and 04 (frozen encoders)
    made, reference, second = smoke_run.result, tmp_path / "reference", tmp_path / "second"
    shutil.copytree(smoke_run.reference, reference)  # perturbed below: the session's copy stays as made
    assert made.returncode == 0, made.stderr[-3000:]
    assert re.search(r"runs: [1-9]\d* computed now, 0 reused from the local store, 0 read from the reference",
                     made.stdout), made.stdout[-3000:]
    again = smoke("--only", "01", "04", "--output-dir", str(second), "--reference-dir", str(reference), "--strict")
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    report = pd.read_csv(second / "figures" / "reproduction.csv")
    runs = report[report["kind"] == "run"]
    computed = {p.parent.name for p in (second / "results" / "runs").glob("*/config.json")}
    referenced = {p.parent.name for p in (reference / "runs").glob("*/config.json")}
    assert len(runs) == len(computed) > 0 and computed < referenced  # a partial run reports what it ran
    assert (runs["verdict"] == reproduction.BITWISE).all()
    cells = report[report["kind"] == "cell"]
    assert len(cells) and not cells["differs"].any()
    assert "verdict: agrees with the reference" in again.stdout

    for logits_file in (reference / "runs").glob("*/predictions-test.npz"):
        saved = dict(np.load(logits_file))
        saved["logits"][0, 0] += 1e-3
        np.savez(logits_file, **saved)
    strict = smoke("--output-dir", str(second), "--reference-dir", str(reference), "--strict", "--only", "01")
    assert strict.returncode == 3, strict.stdout[-3000:] + strict.stderr[-3000:]
    assert "0 computed now" in strict.stdout and "verdict: DISAGREES with the reference" in strict.stdout
    report = pd.read_csv(second / "figures" / "reproduction.csv")
    runs = report[report["kind"] == "run"]
    assert len(runs) and (runs["verdict"] == reproduction.DISAGREEMENT).all()  # same machine: must be bitwise


def test_one_notebook_replaces_its_part_of_the_reference_only_on_the_reference_s_own_baselines(synthetic_store,
                                                                                               tmp_path):
    baseline, old, new, other, elsewhere = (tiny_config(seed=s) for s in range(1, 6))
    synthetic_store.execute_all([baseline, old, new, other, elsewhere])
    ids = {name: c.run_id for name, c in
           {"baseline": baseline, "old": old, "new": new, "other": other, "elsewhere": elsewhere}.items()}
    figures, reference, made_by = tmp_path / "figures", tmp_path / "reference", {"profile": "smoke"}
    figures.mkdir()
    (figures / "01_a.csv").write_text("x\n1\n")
    (figures / "02_b.csv").write_text("y\n2\n")
    reference_update.update_reference(synthetic_store.store, [ids["baseline"], ids["old"], ids["other"]], figures, reference,
                                  made_by, notebooks={"01": [ids["baseline"], ids["other"]],
                                                      "02": [ids["baseline"], ids["old"]]},
                                  provenance={"git_commit": "abc", "cpu": "first"})

    def about():
        return json.loads((reference / "reference.json").read_text())

    # accepted: 02 read the reference's own baseline; its old run goes, its new run and table come in
    (figures / "02_b.csv").write_text("y\n3\n")
    counts, refused = reference_update.update_notebooks(synthetic_store.store, {"02": [ids["baseline"], ids["new"]]}, figures,
                                                    reference, made_by, [ids["baseline"]],
                                                    {"git_commit": "def", "cpu": "second"})
    assert refused is None and counts["runs"] == 3
    assert about()["notebooks"]["02"]["runs"] == sorted([ids["baseline"], ids["new"]])
    assert (about()["notebooks"]["02"]["commit"], about()["notebooks"]["02"]["machine"]["cpu"]) == ("def", "second")
    assert (about()["notebooks"]["01"]["commit"], about()["notebooks"]["01"]["machine"]["cpu"]) == ("abc", "first")
    assert store.RunStore(reference / "runs").run_ids() == sorted([ids["baseline"], ids["new"], ids["other"]])
    assert (reference / "figures" / "02_b.csv").read_text() == "y\n3\n"
    assert (reference / "figures" / "01_a.csv").read_text() == "x\n1\n"

    # refused: a baseline the reference does not have (another recipe), then one whose metrics differ
    before = about()
    _, refused = reference_update.update_notebooks(synthetic_store.store, {"02": [ids["elsewhere"], ids["new"]]}, figures,
                                               reference, made_by, [ids["elsewhere"]])
    assert "baseline run(s) the reference does not have" in refused and about() == before
    metrics = reference / "runs" / ids["baseline"] / "metrics.json"
    changed = json.loads(metrics.read_text())
    changed["test"] = {k: v + 0.01 for k, v in changed["test"].items()}
    metrics.write_text(json.dumps(changed))
    _, refused = reference_update.update_notebooks(synthetic_store.store, {"02": [ids["baseline"], ids["new"]]}, figures,
                                               reference, made_by, [ids["baseline"]])
    assert "test metrics differ from the reference's" in refused and about() == before
    _, refused = reference_update.update_notebooks(synthetic_store.store, {"02": [ids["new"]]}, figures, reference,
                                               {"profile": "default"}, [ids["baseline"]])
    assert "the reference was made with" in refused

    # refused: a reference that records no notebooks (made whole, before per-notebook refreshes)
    reference_update.update_reference(synthetic_store.store, [ids["baseline"]], figures, reference, made_by)
    _, refused = reference_update.update_notebooks(synthetic_store.store, {"02": [ids["baseline"]]}, figures, reference,
                                               made_by, [ids["baseline"]])
    assert "records no notebooks" in refused


def test_a_notebook_starts_a_reference_where_there_is_none(synthetic_store, tmp_path):
    baseline = tiny_config(seed=1)
    synthetic_store.execute(baseline)
    figures, reference = tmp_path / "figures", tmp_path / "reference"
    figures.mkdir()
    (figures / "03_c.csv").write_text("z\n1\n")
    (figures / "04_d.csv").write_text("w\n1\n")  # another notebook's table: not this reference's
    counts, refused = reference_update.update_notebooks(synthetic_store.store, {"03": [baseline.run_id]}, figures, reference,
                                                    {"profile": "smoke"}, [baseline.run_id], {"git_commit": "abc"})
    assert refused is None and counts["runs"] == 1 and list(counts["notebooks"]) == ["03"]
    assert sorted(p.name for p in (reference / "figures").iterdir()) == ["03_c.csv"]
