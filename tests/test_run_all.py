"""run_all.py: end to end on the smoke profile, the checks that refuse bad arguments before any notebook starts, a
failed notebook that leaves the rendered notebook and figures/ as they were, and --verify on planted faults."""
import importlib.util
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fewdims_helpers.setup import preflight
from fewdims_helpers.config import ConfigError
from fewdims_helpers.setup.profiles import get_profile
from fewdims_helpers.data.tasks import TASKS
from fewdims_helpers.runs.runner import Runner
from fewdims_helpers.runs.reference_export import export_summary
from fewdims_helpers.runs import execute

from conftest import REPO, run_all


@pytest.mark.slow
@pytest.mark.xdist_group("smoke")  # shares the session's smoke run
def test_smoke_profile_executes_every_notebook(smoke_run):
    assert smoke_run.result.returncode == 0, smoke_run.result.stderr[-3000:]
    notebooks = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert notebooks
    for notebook in notebooks:
        executed = json.loads((smoke_run.output / "notebooks" / notebook.name).read_text())
        errors = [o for c in executed["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors
        prefix = notebook.name[:2]
        written = {p.suffix for p in (smoke_run.output / "figures").glob(f"{prefix}_*")}
        assert {".csv", ".md", ".png"} <= written, f"{notebook.name} wrote {written}"
    timings = json.loads((smoke_run.output / "results" / "timings-smoke.json").read_text())
    assert [t["notebook"] for t in timings] == [nb.name for nb in notebooks]
    assert all(t["seconds"] > 0 for t in timings)


@pytest.mark.slow
@pytest.mark.xdist_group("smoke")  # shares the session's smoke run
def test_notebooks_run_through_run_all_render_clean(smoke_run):
    """Progress bars and log lines went to run_all's terminal, not into the saved notebooks, and no
    notebook records where the checkout lies: the output folder (outside the repository here) appears
    only in the parameters run_all injected."""
    assert smoke_run.result.returncode == 0, smoke_run.result.stderr[-3000:]
    assert "runs: 100%" in smoke_run.result.stderr  # the bars were shown, on the terminal
    for notebook in sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        executed = json.loads((smoke_run.output / "notebooks" / notebook.name).read_text())
        stderr = [(i, "".join(o["text"])[:200]) for i, c in enumerate(executed["cells"]) for o in c.get("outputs", [])
                  if o.get("name") == "stderr"]
        assert not stderr, f"{notebook.name}: {stderr}"
        injected = [c for c in executed["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
        text = json.dumps({**executed, "cells": [c for c in executed["cells"] if c not in injected],
                           "metadata": {**executed["metadata"], "papermill": {
                               k: v for k, v in executed["metadata"]["papermill"].items() if k != "parameters"}}})
        for absolute in (str(REPO), str(smoke_run.output), str(Path.home()), "PosixPath("):
            assert absolute not in text, f"{notebook.name} holds {absolute}"


def test_unknown_profile_is_rejected_in_one_line():
    result = run_all("--profile", "huge")
    assert result.returncode == 2
    assert "unknown profile 'huge'; choose one of smoke, default, paper" in result.stderr
    with pytest.raises(ConfigError, match="unknown profile 'huge'"):
        get_profile("huge")


def test_unknown_notebook_prefix_is_rejected():
    result = run_all("--profile", "smoke", "--only", "99")
    assert result.returncode != 0 and "no notebook starts with 99" in result.stderr


# ---------------------------------------------------------------------------- checks before any notebook starts
# These call run_all.main in-process (seconds, CPU only, no network): a bad argument must stop the run
# with exit code 2 and one "run_all: ..." line per problem before papermill starts a kernel.


def _load_run_all():
    spec = importlib.util.spec_from_file_location("run_all", REPO / "run_all.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RUN_ALL = _load_run_all()


@pytest.fixture
def no_kernel(monkeypatch):
    """Fails the test if a notebook is started: the checks must come first."""
    import papermill

    def execute_notebook(*args, **kwargs):
        raise AssertionError("a notebook was started despite a bad argument")

    monkeypatch.setattr(papermill, "execute_notebook", execute_notebook)


def refused(capsys, *argv: str) -> list[str]:
    """The stderr lines of a run that the checks refuse (exit code 2, nothing on stdout)."""
    assert RUN_ALL.main(list(argv)) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert lines and all(line.startswith("run_all: ") for line in lines), err
    return lines


@pytest.mark.slow  # run_all.py in a subprocess
def test_empty_model_folder_is_rejected_before_any_notebook_starts(tmp_path):
    empty, out = tmp_path / "empty-model", tmp_path / "out"
    empty.mkdir()
    result = run_all("--profile", "smoke", "--only", "01", "--model", str(empty), "--output-dir", str(out))
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith(f"run_all: --model {empty}: the folder lacks config.json, weights")
    assert "tokenizer files" in line
    assert not list(out.rglob("*.ipynb")) and not out.exists()  # no kernel ran, and the check left nothing


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_device_without_cuda_is_one_line(tmp_path, capsys, no_kernel):
    [line] = refused(capsys, "--profile", "smoke", "--device", "cuda", "--output-dir", str(tmp_path))
    assert line.startswith("run_all: --device cuda: CUDA is not available here")
    assert "leave --device out" in line


def test_output_dir_under_a_regular_file_is_one_line(tmp_path, capsys, no_kernel):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    [line] = refused(capsys, "--profile", "smoke", "--output-dir", str(blocker / "out"))
    assert line == (f"run_all: output folder {blocker / 'out'} cannot be created: {blocker} is a file, not a folder; "
                    f"pass --output-dir a folder you can write to")
    assert blocker.read_text() == "not a folder"


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs POSIX permissions that bind (not root)")
def test_read_only_output_dir_is_one_line(tmp_path, capsys, no_kernel):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        [line] = refused(capsys, "--profile", "smoke", "--output-dir", str(locked / "out"))
    finally:
        locked.chmod(0o700)
    assert line.startswith(f"run_all: output folder {locked / 'out'} cannot be created or written (Permission denied")


def test_unwritable_output_dir_is_one_line_and_the_probe_leaves_nothing(tmp_path, capsys, no_kernel, monkeypatch):
    def mkstemp(*args, **kwargs):
        raise PermissionError(13, "Permission denied")  # what a read-only folder or mount answers (root is exempt)

    monkeypatch.setattr(preflight.tempfile, "mkstemp", mkstemp)
    [line] = refused(capsys, "--profile", "smoke", "--output-dir", str(tmp_path / "new" / "out"))
    assert line.startswith(f"run_all: output folder {tmp_path / 'new' / 'out'} cannot be created or written "
                           f"(Permission denied)")
    assert list(tmp_path.iterdir()) == []  # the folders the probe made are gone again


def test_checks_leave_an_existing_store_untouched(tmp_path, capsys, no_kernel):
    run = tmp_path / "results" / "runs" / "rt-polarity-cls-s0-0123456789ab"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text('{"test": {"accuracy": 0.75}}')
    before = {p: (p.stat().st_mtime_ns, p.read_bytes() if p.is_file() else None) for p in tmp_path.rglob("*")}
    refused(capsys, "--profile", "smoke", "--device", "no-such-device", "--output-dir", str(tmp_path))
    after = {p: (p.stat().st_mtime_ns, p.read_bytes() if p.is_file() else None) for p in tmp_path.rglob("*")}
    assert after == before  # no probe file left, no run touched


def test_unknown_task_is_one_line_listing_the_known_tasks(tmp_path, capsys, no_kernel):
    [line] = refused(capsys, "--profile", "smoke", "--tasks", "rt-polarity", "sst-5", "--output-dir", str(tmp_path))
    assert line.startswith("run_all: unknown task 'sst-5' in --tasks; known tasks: ")
    assert all(name in line for name in TASKS)


def test_glue_folder_lacking_a_task_file_is_one_line_naming_it(tmp_path, capsys, no_kernel):
    glue = tmp_path / "glue"
    (glue / "CoLA").mkdir(parents=True)
    shutil.copy(REPO / "tests" / "fixtures" / "glue" / "CoLA" / "train.tsv", glue / "CoLA" / "train.tsv")
    [line] = refused(capsys, "--profile", "smoke", "--tasks", "cola", "rt-polarity", "--glue-dir", str(glue),
                     "--output-dir", str(tmp_path / "out"))
    assert str(glue / "CoLA" / "dev.tsv") in line and "not found" in line


def test_glue_dir_that_is_not_a_folder_is_one_line(tmp_path, capsys, no_kernel):
    [line] = refused(capsys, "--profile", "smoke", "--tasks", "cola", "--glue-dir", str(tmp_path / "nowhere"),
                     "--output-dir", str(tmp_path / "out"))
    assert line.startswith(f"run_all: --glue-dir {tmp_path / 'nowhere'} is not a folder")


def test_several_problems_are_all_listed(tmp_path, capsys, no_kernel):
    empty, blocker, glue = tmp_path / "empty-model", tmp_path / "a-file", tmp_path / "glue"
    empty.mkdir()
    glue.mkdir()
    blocker.write_text("")
    lines = refused(capsys, "--profile", "smoke", "--model", str(empty), "--device", "warp", "--tasks", "nope", "rte",
                    "--glue-dir", str(glue), "--output-dir", str(blocker / "out"))
    assert len(lines) == 5, lines
    expected = ["unknown task 'nope'", f"--model {empty}: the folder lacks", "--device 'warp' is not a torch device",
                f"output folder {blocker / 'out'} cannot be created", f"GLUE folder {glue / 'RTE'} not found"]
    for line, start in zip(lines, expected):
        assert start in line


def test_model_sources_that_need_no_folder_check(tmp_path):
    assert preflight.model_problems("bert-base-uncased") == []  # hub names: loaded later, need internet
    assert preflight.model_problems("google-bert/bert-base-uncased") == []  # namespace/name is a hub id too
    assert preflight.model_problems("minilm") == [] and preflight.model_problems("tiny") == []  # installed here
    for path in ("./models/bert", "~/no-such-model-folder", f"{tmp_path}/missing", "models/bert/v1"):
        [line] = preflight.model_problems(path)
        assert line.startswith(f"--model {path}: no such folder")


def test_complete_model_folder_is_accepted_and_passed_as_an_absolute_path(tmp_path, monkeypatch, capsys):
    import papermill

    folder = tmp_path / "models" / "mine"
    folder.mkdir(parents=True)
    for name in ("config.json", "model.safetensors", "vocab.txt"):
        (folder / name).write_text("")
    calls = []
    monkeypatch.setattr(papermill, "execute_notebook", lambda *a, **kw: calls.append(kw["parameters"]))
    monkeypatch.chdir(tmp_path)  # the kernels run in notebooks/: a relative path must reach them absolute
    assert RUN_ALL.main(["--profile", "smoke", "--only", "01", "--model", "models/mine",
                         "--output-dir", str(tmp_path / "out")]) == 0
    assert [c["options"]["model"] for c in calls] == [str(folder)]


def test_caps_seeds_and_workers_reach_the_notebooks_as_parameters(tmp_path, monkeypatch, capsys):
    import papermill

    calls = []
    monkeypatch.setattr(papermill, "execute_notebook",
                        lambda notebook, target, **kw: calls.append((Path(notebook).name, kw["parameters"])))
    assert RUN_ALL.main(["--profile", "smoke", "--only", "01", "--output-dir", str(tmp_path), "--max-train-examples",
                         "16", "--max-eval-examples", "8", "--epochs", "2", "--seeds", "3", "4", "--workers", "2"]) == 0
    [(name, parameters)] = calls
    assert name.startswith("01_")
    assert parameters == {"profile": "smoke", "output_dir": str(tmp_path.resolve()),  # outside the repository
                          "options": {"max_train_examples": 16, "max_eval_examples": 8, "epochs": 2, "seeds": [3, 4],
                                      "workers": 2}}  # only the options given
    timings = json.loads((tmp_path / "results" / "timings-smoke.json").read_text())
    assert timings[-1]["overrides"] == {"max_train_examples": 16, "max_eval_examples": 8, "epochs": 2,
                                        "seeds": [3, 4], "workers": 2}  # a pilot's time is marked as such

    calls.clear()
    assert RUN_ALL.main(["--profile", "smoke", "--only", "01", "--output-dir", str(tmp_path), "--workers", "auto"]) == 0
    assert calls[0][1]["options"] == {"workers": "auto"}


@pytest.mark.parametrize("argv, message", [
    (["--max-train-examples", "1"], "argument --max-train-examples: 1 is not an integer >= 2"),
    (["--max-eval-examples", "many"], "argument --max-eval-examples: 'many' is not an integer >= 2"),
    (["--epochs", "0"], "argument --epochs: 0 is not an integer >= 1"),
    (["--workers", "0"], 'argument --workers: 0 is not an integer >= 1 or "auto"'),
    (["--workers", "all"], "argument --workers: 'all' is not an integer >= 1 or \"auto\""),
    (["--seeds", "-1"], "argument --seeds: -1 is not an integer >= 0"),
    (["--seeds", "0", "1", "0"], "--seeds 0 1 0 repeats a seed; give distinct seeds"),
])
def test_bad_pilot_options_are_argparse_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        RUN_ALL.parse_args(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_the_ray_backend_reaches_every_notebook_as_parameters(tmp_path, monkeypatch):
    import papermill

    calls = []
    monkeypatch.setattr(papermill, "execute_notebook", lambda notebook, target, **kw: calls.append(kw["parameters"]))
    monkeypatch.setattr(preflight, "backend_problems", lambda backend: [])  # ray need not be installed here
    assert RUN_ALL.main(["--profile", "smoke", "--output-dir", str(tmp_path), "--backend", "ray",
                         "--ray-address", "auto", "--gpus-per-run", "0.25"]) == 0
    assert len(calls) == len(list((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb")))
    assert all(c["options"] == {"backend": "ray", "ray_address": "auto", "gpus_per_run": 0.25} for c in calls)


def test_the_ray_backend_without_ray_is_one_line(tmp_path, capsys, no_kernel, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    [line] = refused(capsys, "--profile", "smoke", "--backend", "ray", "--output-dir", str(tmp_path))
    assert line == "run_all: --backend ray: ray is not installed; pip install -r requirements-ray.txt (on every node)"


@pytest.mark.parametrize("argv, message", [
    (["--gpus-per-run", "0.5"], "--ray-address and --gpus-per-run need --backend ray"),
    (["--backend", "ray", "--gpus-per-run", "1.5"], "1.5 is not a fraction in (0, 1] or a whole number of GPUs"),
    (["--backend", "spark"], "argument --backend: invalid choice: 'spark'"),
])
def test_bad_backend_options_are_argparse_errors(argv, message, capsys):
    with pytest.raises(SystemExit):
        RUN_ALL.parse_args(argv)
    assert message in capsys.readouterr().err


# ---------------------------------------------------------------------------- each option declared once
@pytest.fixture
def threads_option(monkeypatch):
    """RunOptions with one more field, as a developer would add it in fewdims_helpers/options.py."""
    import dataclasses

    from fewdims_helpers import options

    extended = dataclasses.make_dataclass("RunOptions", [("threads_per_run", "int | None", dataclasses.field(
        default=None, metadata={"help": "torch threads of each run (a new option)", "type": options.positive_int,
                                "metavar": "T"}))], bases=(options.RunOptions,), frozen=True)
    monkeypatch.setattr(options, "RunOptions", extended)
    return extended


def test_a_new_option_reaches_the_command_line_and_every_notebook(threads_option, tmp_path, monkeypatch, capsys):
    import papermill

    from fewdims_helpers.setup import parameters

    with pytest.raises(SystemExit):
        RUN_ALL.parse_args(["--help"])
    assert "--threads-per-run T torch threads of each run (a new option)" in " ".join(capsys.readouterr().out.split())
    with pytest.raises(SystemExit):
        RUN_ALL.parse_args(["--threads-per-run", "0"])
    assert "argument --threads-per-run: 0 is not an integer >= 1" in capsys.readouterr().err

    calls = []
    monkeypatch.setattr(papermill, "execute_notebook", lambda notebook, target, **kw: calls.append(kw["parameters"]))
    assert RUN_ALL.main(["--profile", "smoke", "--output-dir", str(tmp_path), "--threads-per-run", "3"]) == 0
    assert len(calls) == len(list((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb")))
    assert all(c["options"] == {"threads_per_run": 3} for c in calls)
    _, run_options = parameters.build(calls[0]["options"])  # what notebook_setup builds from the injected options
    assert isinstance(run_options, threads_option) and run_options.threads_per_run == 3
    with pytest.raises(ConfigError, match="threads_per_run: 0 is not an integer >= 1"):
        parameters.build({"threads_per_run": 0})


def test_every_notebook_takes_its_options_as_one_dictionary():
    """The parameters cell holds the profile, the output folder and one options dictionary, and the
    setup call passes them on: no option is listed in a notebook."""
    from fewdims_helpers.setup import parameters

    names = {option.name for option in parameters.option_fields()}
    for notebook in sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        cells = json.loads(notebook.read_text())["cells"]
        [cell] = [c for c in cells if "parameters" in c["metadata"].get("tags", [])]
        assigned = {line.split("=")[0].strip() for line in "".join(cell["source"]).splitlines() if "=" in line}
        assert {"profile", "output_dir", "options"} <= assigned and not assigned & names, notebook.name
        assert any("profiles.notebook_setup(profile, output_dir, options)" in "".join(c["source"]) for c in cells)


def test_an_unknown_notebook_option_names_the_known_ones():
    from fewdims_helpers.setup import parameters

    with pytest.raises(ConfigError, match="unknown option 'epoch'; the options are model, tasks, seeds"):
        parameters.build({"epoch": 1})


# ---------------------------------------------------------------------------- a failed notebook replaces nothing
def files_in(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def fake_papermill(figures: Path, fail: bool):
    """papermill.execute_notebook as seen from outside: it saves the executed notebook (after each cell) and
    the notebook rewrites a table and adds a figure; with ``fail``, cell 8 then raises."""
    import nbformat
    import papermill

    def execute(notebook, output, **options):
        rendered = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(f"fail = {fail}")],
                                            metadata={"papermill": {"output_path": output}})
        nbformat.write(rendered, output)
        (figures / "01_token_wise.csv").write_text(f"task,score\nrt-polarity,{12.5 if fail else 80.0}\n")
        (figures / "01_token_wise.png").write_bytes(b"half a figure" if fail else b"a figure")
        if fail:
            raise papermill.PapermillExecutionError(8, 8, "store.predictions(config, 'test')", "CorruptRun",
                                                    "corrupt run rt-polarity-cls-s0-0123 in results/runs: ...", [])
    return execute


def test_a_notebook_that_succeeds_is_moved_into_place_with_its_figures(tmp_path, monkeypatch):
    import nbformat
    import papermill

    from fewdims_helpers.setup.notebook_execution import execute_notebook

    notebook = sorted((REPO / "notebooks").glob("01_*.ipynb"))[0]
    target, figures = tmp_path / "notebooks" / notebook.name, tmp_path / "figures"
    figures.mkdir()
    monkeypatch.setattr(papermill, "execute_notebook", fake_papermill(figures, fail=False))
    execute_notebook(notebook, target, tmp_path)
    rendered = nbformat.read(target, as_version=4)
    assert rendered.cells[0].source == "fail = False"
    assert rendered.metadata.papermill.output_path == f"notebooks/{notebook.name}"  # not the temporary's path
    assert files_in(figures) == {"01_token_wise.csv": b"task,score\nrt-polarity,80.0\n", "01_token_wise.png": b"a figure"}
    assert not list((tmp_path / "build").glob(".tmp-*")) and not (tmp_path / "build" / "failed").exists()


def test_an_interrupt_while_a_notebook_runs_is_handled_like_a_failure(tmp_path, monkeypatch):
    import papermill

    from fewdims_helpers.setup.notebook_execution import execute_notebook, failed_copy

    notebook = sorted((REPO / "notebooks").glob("01_*.ipynb"))[0]
    target, figures = tmp_path / "notebooks" / notebook.name, tmp_path / "figures"
    figures.mkdir()
    (figures / "01_token_wise.csv").write_text("task,score\nrt-polarity,80.0\n")
    before = files_in(figures)
    failing = fake_papermill(figures, fail=False)

    def interrupted(notebook, output, **options):
        failing(notebook, output, **options)
        raise KeyboardInterrupt  # Ctrl-C while the last cell runs
    monkeypatch.setattr(papermill, "execute_notebook", interrupted)
    with pytest.raises(KeyboardInterrupt):
        execute_notebook(notebook, target, tmp_path)
    assert files_in(figures) == before and not target.exists() and failed_copy(tmp_path, notebook).is_file()
    assert not list((tmp_path / "build").glob(".tmp-*"))


def test_a_notebook_failing_halfway_leaves_the_notebook_and_figures_byte_identical(tmp_path, monkeypatch, capsys):
    import papermill

    name = sorted((REPO / "notebooks").glob("01_*.ipynb"))[0].name
    notebooks, figures, failed = tmp_path / "notebooks", tmp_path / "figures", tmp_path / "build" / "failed" / name
    figures.mkdir()
    notebooks.mkdir()
    (notebooks / name).write_text('{"the last good rendering": true}')
    (figures / "01_token_wise.csv").write_text("task,score\nrt-polarity,80.0\n")
    (figures / "02_dimension_wise.png").write_bytes(b"another notebook's figure")
    before = {"notebooks": files_in(notebooks), "figures": files_in(figures)}
    monkeypatch.setattr(papermill, "execute_notebook", fake_papermill(figures, fail=True))
    assert RUN_ALL.main(["--profile", "smoke", "--only", "01", "--output-dir", str(tmp_path)]) == 1
    [line] = [line for line in capsys.readouterr().err.splitlines() if "failed" in line]
    assert line == (f"run_all: {name} failed in cell 8: CorruptRun: corrupt run rt-polarity-cls-s0-0123 in results/runs: "
                    f"... (executed notebook with the traceback: {failed}; {notebooks / name} and figures/ left as "
                    f"they were)")
    assert {"notebooks": files_in(notebooks), "figures": files_in(figures)} == before  # byte-identical
    assert "fail = True" in failed.read_text()
    assert not list((tmp_path / "build").glob(".tmp-*"))  # neither the temporary notebook nor the figures' copy


@pytest.mark.slow  # a kernel
def test_a_real_kernel_failing_halfway_replaces_nothing(tmp_path):
    """The same through papermill and a kernel: the first cell rewrites a table, the second raises."""
    import nbformat
    import papermill

    from fewdims_helpers.setup.notebook_execution import execute_notebook, failed_copy

    figures, target = tmp_path / "figures", tmp_path / "notebooks" / "01_planted.ipynb"
    figures.mkdir()
    target.parent.mkdir()
    (figures / "01_planted.csv").write_text("score\n80.0\n")
    target.write_text('{"the last good rendering": true}')
    before = {**files_in(figures), "notebook": target.read_bytes()}
    source = tmp_path / "01_planted.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell(f"open({str(figures / '01_planted.csv')!r}, 'w').write('score\\n12.5\\n')\n"
                                  f"open({str(figures / '01_new.png')!r}, 'wb').write(b'half')"),
        nbformat.v4.new_code_cell("raise ValueError('planted halfway')"),
        nbformat.v4.new_code_cell("print('never reached')")]), source)
    with pytest.raises(papermill.PapermillExecutionError, match="planted halfway"):
        execute_notebook(source, target, tmp_path, kernel_name="python3", progress_bar=False)
    assert {**files_in(figures), "notebook": target.read_bytes()} == before
    executed = nbformat.read(failed_copy(tmp_path, source), as_version=4)
    assert [o["ename"] for c in executed.cells for o in c.get("outputs", []) if o["output_type"] == "error"] == [
        "ValueError"]
    assert not list((tmp_path / "build").glob(".tmp-*"))


# ---------------------------------------------------------------------------- --verify
def test_verify_names_a_truncated_run_in_one_line_and_repair_sets_it_aside(tmp_path, monkeypatch, capsys,
                                                                            synthetic_task):
    from fewdims_helpers.runs import store
    from fewdims_helpers.options import RunOptions

    from conftest import tiny_config

    monkeypatch.setattr(execute, "tokenized_task", lambda *args, **kwargs: synthetic_task)
    runs = Runner(store.RunStore(tmp_path / "results" / "runs"), RunOptions(progress=False, workers=1))
    good, bad = tiny_config(seed=1), tiny_config(seed=2)
    runs.execute_all([good, bad])
    export_summary(runs.store, good.run_id, tmp_path / "reference" / "runs")
    logits = runs.store.predictions(bad, "test")["logits"]
    path = runs.store.folder(bad) / "predictions-test.npz"
    size = path.stat().st_size
    path.write_bytes(path.read_bytes()[:size // 2])
    reference = files_in(tmp_path / "reference")
    argv = ["--verify", "--output-dir", str(tmp_path), "--reference-dir", str(tmp_path / "reference")]

    assert RUN_ALL.main(argv) == 1
    lines = capsys.readouterr().out.splitlines()
    store_root, reference_runs = tmp_path / "results" / "runs", tmp_path / "reference" / "runs"
    assert lines == [
        f"run_all: verify: corrupt run {bad.run_id} in {store_root}: predictions-test.npz has {size // 2} bytes, its "
        f"manifest says {size} (truncated or overwritten)",
        f"run_all: verify: {store_root} (runs): 2 checked, 1 intact, 1 corrupt; python run_all.py --verify --repair "
        f"sets them aside so that the next invocation recomputes them",
        f"run_all: verify: {reference_runs} (summaries, read-only): 1 checked, 1 load whole, 0 corrupt"]
    assert not (tmp_path / "notebooks").exists() and runs.store.folder(bad).is_dir()  # trains nothing, writes no notebook

    assert RUN_ALL.main([*argv, "--repair"]) == 1
    [moved] = [p for p in (store_root / ".quarantine").iterdir() if p.is_dir()]
    assert f"run_all: verify: run {bad.run_id} moved to {moved} (nothing deleted); the next invocation recomputes it" \
        in capsys.readouterr().out.splitlines()
    assert RUN_ALL.main(argv) == 0
    assert files_in(tmp_path / "reference") == reference  # read only
    with pytest.raises(SystemExit):
        RUN_ALL.parse_args(["--repair"])
    assert "--repair needs --verify" in capsys.readouterr().err
    runs.execute_all([good, bad])  # what the next invocation does
    assert np.array_equal(runs.store.predictions(bad, "test")["logits"], logits)
