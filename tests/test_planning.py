"""run_all.py --plan: the work of a run as the training loop does it, and a plan of every notebook that
trains nothing and calibrates within its budget (smoke profile, tiny model)."""
import dataclasses
import importlib.util

import pytest

from fewdims_helpers.setup.calibration import CALIBRATION_SECONDS
from fewdims_helpers.setup.planning import run_work

from conftest import REPO, synthetic_split, tiny_config


@pytest.fixture
def tokens():
    return {"train": synthetic_split(40, 0), "validation": synthetic_split(12, 1), "test": synthetic_split(10, 2)}


def test_a_run_processes_its_epochs_validation_passes_and_test(tokens):
    config = tiny_config(epochs=3)
    work = run_work(config, tokens, num_layers=2)
    assert work.train_examples == 3 * 40 and work.eval_items == 3 * 12 + 10
    saving = dataclasses.replace(config, save_features=("train", "validation", "test"))
    assert run_work(saving, tokens, 2).eval_items == 3 * 12 + 10 + 40 + 12  # one more pass per other saved split


def test_fewer_layers_computed_or_trained_cost_less_and_a_frozen_encoder_runs_once(tokens):
    full = run_work(tiny_config(), tokens, 2)
    lower = run_work(tiny_config(layer=1), tokens, 2)
    assert lower.train_units == pytest.approx(full.train_units / 2) and lower.eval_units == pytest.approx(full.eval_units / 2)
    partly = run_work(tiny_config(frozen_layers=1), tokens, 2)
    assert full.train_units > partly.train_units > full.train_units / 3
    frozen = run_work(tiny_config(freeze_pretrained=True, epochs=20), tokens, 2)
    assert frozen.train_units == 0 and frozen.eval_units == 40 + 12 + 10 and frozen.frozen_key is not None
    assert frozen.frozen_key == run_work(tiny_config(freeze_pretrained=True, head_layers=2, seed=3), tokens, 2).frozen_key


def _run_all():
    spec = importlib.util.spec_from_file_location("run_all", REPO / "run_all.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow  # calibrates by training
def test_the_plan_lists_every_notebook_and_a_total_trains_nothing_and_calibrates_within_its_budget(
        tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FEWDIMS_CACHE", str(tmp_path / "cache"))
    run_all = _run_all()
    argv = ["--plan", "--profile", "smoke", "--tasks", "rt-polarity", "--output-dir", str(tmp_path / "out")]
    args = run_all.parse_args(argv)
    plan = run_all.make_plan(args, run_all.output_root(args), run_all.select_notebooks(None))
    assert plan.calibrated and plan.calibration_seconds <= CALIBRATION_SECONDS
    names = [n.notebook[:2] for n in plan.notebooks]
    assert names == ["01", "02", "03", "04", "05", "06", "07"]
    cross = plan.notebooks[4]
    assert cross.to_compute == [] and "needs at least 2 tasks" in cross.note
    assert plan.notebooks[1].unresolved == 9  # 02's best subsets: 3 seeds for each of 3 k, chosen after stage one
    assert plan.notebooks[0].to_compute and plan.notebooks[2].earlier == 3  # 03 reuses 01's baselines
    assert run_all.main(argv) == 0  # again, from the cached rates
    printed = capsys.readouterr().out.splitlines()
    assert [line[:2] for line in printed[1:8]] == names and printed[8].startswith("total")
    assert "cached" in printed[9]
    assert not [p for p in (tmp_path / "out" / "results" / "runs").iterdir() if not p.name.startswith(".")]


def test_the_progress_line_counts_the_ledger_against_the_plan(tmp_path, monkeypatch):
    from fewdims_helpers.setup.planning import NotebookPlan, Plan, PlannedRun, Progress
    from fewdims_helpers.runs.ledger import INVOCATION_ENV
    from fewdims_helpers.runs.store import RunStore

    monkeypatch.setenv(INVOCATION_ENV, "")  # restored after the test
    configs = [tiny_config(seed=s) for s in range(4)]
    plan = Plan([NotebookPlan("01_token_wise.ipynb", [PlannedRun(c) for c in configs], 0, 0, 0, 0,
                              {c.run_id: 10.0 for c in configs}, 40.0)], workers=1, threads=1, precision="fp32",
                calibrated=True)
    store = RunStore(tmp_path / "runs")
    invocation = store.ledger.begin_invocation()
    progress = Progress(plan, store, invocation, started=0.0)
    assert progress.line(now=5.0) == "all notebooks: 0 of 4 runs, 0:05 elapsed, about 0:35 left"  # the plan's minutes
    store.ledger.note("used", [configs[0].run_id])  # read from the store: not a run done now
    store.ledger.note("computed", [configs[0].run_id, configs[1].run_id])
    assert progress.line(now=30.0) == "all notebooks: 2 of 4 runs, 0:30 elapsed, about 0:30 left"
    assert Progress(None, store, invocation, started=0.0).line(now=61.0) == "all notebooks: 2 runs, 1:01 elapsed"
