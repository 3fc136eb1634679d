#!/usr/bin/env python
"""Execute every study notebook headlessly, in order, each in a fresh kernel (papermill).

    python run_all.py                      # default profile: offline MiniLM study, in place
    python run_all.py --profile smoke      # seconds per notebook; writes under build/smoke/
    python run_all.py --profile paper      # bert-base-uncased on GLUE (GPU, hub or --glue-dir)
    python run_all.py --profile paper --max-train-examples 2000 --max-eval-examples 500 --epochs 1 --seeds 0
                                           # a pilot of the paper profile: small data, one epoch, one seed

The profile's parameters are injected into each notebook's ``parameters`` cell. The arguments are
checked before the first notebook starts (model folder, device, output folder, tasks, GLUE files):
every problem is printed as one ``run_all: ...`` line and the run stops with exit code 2. The first
failure inside a notebook stops the run with a non-zero exit naming the notebook and the cell; the
failed execution goes to build/failed/, and the notebook and figures/ stay as they were.
Finished training runs are kept in the local run store (``results/runs/`` under the output folder,
git-ignored), so a rerun only redoes what is missing (``--force`` recomputes). After the notebooks,
a reproduction report compares the runs this invocation used and the tables it wrote with the
committed reference (``reference/``; never read in place of computing), prints it and writes
``figures/reproduction.{csv,md,png}`` (see fewdims_helpers/report/reproduction.py):
    --strict             exit 3 when anything disagrees with the reference (after writing the report)
    --update-reference   replace the reference with this invocation's runs and tables; with --only NN,
                         replace notebook NN's runs and tables only, and only when the baseline runs it
                         read are the reference's own (same run ids and metrics); else it refuses (exit 4)
    --reference-dir DIR  another reference folder (default: reference/ in the repository)
    --verify [--repair]  check the store's runs and the reference's files, train nothing, exit 1 when anything
                         is corrupt (--repair: quarantine the corrupt runs; the next invocation recomputes them)

The options (``python run_all.py --help``) are the fields of fewdims_helpers/options.py, each with its
help text: overrides of the profile (for any profile; caps and epochs are part of each run's id, so a
pilot's runs are stored beside the full runs, never in their place), where data lives, and where and
how the runs execute (never part of a run id). Those given reach every notebook as its ``options``:
    --backend ray            the missing runs as Ray tasks (pip install -r requirements-ray.txt)
    python run_all.py --backend ray --ray-address auto     # after `ray start --head` (docs/scale-out.md)
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from fewdims_helpers.setup import invocation

REPO_ROOT = Path(__file__).resolve().parent
NOTEBOOKS = invocation.NOTEBOOKS
PROFILE_NAMES = ("smoke", "default", "paper")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """run_all's own arguments, then one flag per option declared in fewdims_helpers/options.py
    (fewdims_helpers/setup/parameters.py), checked by the dataclasses that declare them."""
    from fewdims_helpers.setup import parameters
    from fewdims_helpers.config import ConfigError

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    parser.add_argument("--profile", default="default", help=f"one of {PROFILE_NAMES} (default: default)")
    parser.add_argument("--only", nargs="+", default=None, metavar="NN",
                        help="run only the notebooks whose names start with these prefixes, e.g. --only 01 03")
    parser.add_argument("--plan", action="store_true",
                        help="print per notebook the runs to compute and in the store, the examples and evaluation "
                             "items, and the minutes on this machine (a calibration of at most 60 s); train nothing")
    parser.add_argument("--output-dir", default=None,
                        help="where notebooks, figures and results go (default: the repository for the default "
                             "profile, build/<profile>/ otherwise)")
    parser.add_argument("--strict", action="store_true",
                        help="exit with code 3 when a run or table disagrees with the reference")
    parser.add_argument("--update-reference", action="store_true",
                        help="after the notebooks, replace the reference with this invocation's runs and tables")
    parser.add_argument("--reference-dir", default=str(REPO_ROOT / "reference"),
                        help="the reference to compare with (default: reference/ in the repository)")
    parser.add_argument("--verify", action="store_true", help="check every run of the store (and the reference, "
                        "read-only) against its manifest; train nothing; exit 1 when anything is corrupt")
    parser.add_argument("--repair", action="store_true", help="with --verify: move each corrupt run into the "
                        "store's quarantine (nothing is deleted), so that the next invocation recomputes it")
    parameters.add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        parameters.build(parameters.given(args))
    except ConfigError as error:
        parser.error(parameters.as_flags(str(error)))
    if args.profile not in PROFILE_NAMES:
        parser.error(f"unknown profile {args.profile!r}; choose one of {', '.join(PROFILE_NAMES)}")
    if args.repair and not args.verify:
        parser.error("--repair needs --verify")
    return args


def output_root(args: argparse.Namespace) -> Path:
    """Where the run writes: --output-dir, else the repository (default profile) or build/<profile>/."""
    if args.output_dir is not None:
        return Path(args.output_dir).expanduser().resolve()
    return REPO_ROOT if args.profile == "default" else REPO_ROOT / "build" / args.profile


def preflight(args: argparse.Namespace, root: Path) -> list[str]:
    """The problems with the arguments, found before any kernel starts (see fewdims_helpers.setup.preflight)."""
    from fewdims_helpers.setup.preflight import problems

    return problems(args.profile, args.tasks, args.model, args.device, root, args.glue_dir, backend=args.backend)


def select_notebooks(only: list[str] | None) -> list[Path]:
    notebooks = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if only is None:
        return notebooks
    chosen = [nb for nb in notebooks if any(nb.name.startswith(prefix) for prefix in only)]
    unknown = [p for p in only if not any(nb.name.startswith(p) for nb in notebooks)]
    if unknown:
        names = ", ".join(nb.name for nb in notebooks)
        sys.exit(f"run_all: no notebook starts with {', '.join(unknown)}; notebooks are: {names}")
    return chosen


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    notebooks = select_notebooks(args.only)
    root = output_root(args)
    if args.verify:
        return invocation.verify(args, root)
    problems = preflight(args, root)
    for problem in problems:
        print(f"run_all: {problem}", file=sys.stderr)
    if problems:
        return 2
    if args.plan:
        print(make_plan(args, root, notebooks).text(), flush=True)
        return 0
    import papermill

    from fewdims_helpers.setup.notebook_execution import execute_notebook, failed_copy
    from fewdims_helpers.paths import output_paths, timings_file
    from fewdims_helpers.runs.store import RunStore
    from fewdims_helpers.terminal import HEADLESS

    plan = invocation_plan(args, root, notebooks)  # before the invocation begins: planning notes no run
    runs = RunStore(output_paths(root)["runs"])
    invocation_id = runs.ledger.begin_invocation()  # the kernels inherit it: their stores note what they compute and use
    progress = invocation.ProgressLine(plan, runs, invocation_id)
    invocation.use_this_checkout()
    os.environ[HEADLESS] = "1"  # the kernels' progress bars and log lines go to this terminal, not the notebooks
    (root / "notebooks").mkdir(parents=True, exist_ok=True)
    parameters = invocation.notebook_parameters(args, root)
    pilot = {name: value for name, value in invocation.overrides(args).items() if value is not None}
    timings, notes, used = [], study_notes(args), {}
    for notebook in notebooks:
        target = root / "notebooks" / notebook.name
        print(f"run_all: {notebook.name} ({args.profile}) -> {target}", flush=True)
        if notebook.name[:2] in notes:
            print(f"run_all: {notebook.name}: {notes[notebook.name[:2]]}", flush=True)
        start, ledger = time.perf_counter(), len(runs.ledger.invocation_events(invocation_id))
        try:
            execute_notebook(notebook, target, root, parameters=parameters, cwd=str(NOTEBOOKS), kernel_name="python3",
                             progress_bar=True, request_save_on_cell_execute=True)
        except papermill.PapermillExecutionError as error:
            progress.close()
            runs.ledger.end_invocation()  # the finished notebooks' runs stay in the ledger and the store
            os.environ.pop(HEADLESS, None)
            print(f"run_all: {notebook.name} failed in cell {error.exec_count}: {error.ename}: "
                  f"{' '.join(str(error.evalue).split())} (executed notebook with the traceback: "
                  f"{failed_copy(root, notebook)}; {target} and figures/ left as they were)", file=sys.stderr)
            return 1
        seconds = time.perf_counter() - start
        events = runs.ledger.invocation_events(invocation_id)[ledger:]  # the runs this notebook computed and read
        used[notebook.name[:2]] = sorted({e["run_id"] for e in events})
        timings.append({"notebook": notebook.name, "seconds": round(seconds, 1), "force": args.force,
                        "invocation": invocation_id, "ledger_lines": [ledger, ledger + len(events)],
                        "runs_used": len(used[notebook.name[:2]]),
                        "runs_computed": len({e["run_id"] for e in events if e["event"] == "computed"}),
                        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "cpus": os.cpu_count(),
                        **({"overrides": pilot} if pilot else {})})  # a pilot's times are not the profile's
        invocation.record_timings(timings_file(root, args.profile), timings[-1:])  # kept if interrupted
        print(f"run_all: {notebook.name} done in {seconds:.0f} s", flush=True)
    progress.close()
    os.environ.pop(HEADLESS, None)
    print(f"run_all: {len(timings)} notebooks, {sum(t['seconds'] for t in timings):.0f} s in all", flush=True)
    code = invocation.reproduce(args, runs, invocation_id, root, notebooks, used)
    invocation.report_verdicts(root, args)  # after the reference: the README says which notebooks it holds on their own
    return code


STUDIES = {"01": "token_wise", "02": "dimension_wise", "03": "layer_wise", "04": "freezing", "05": "cross",
           "06": "salient", "07": "intrinsic"}  # notebook prefix -> its study module


def make_plan(args: argparse.Namespace, root: Path, notebooks: list[Path], calibrate: bool = True):
    """The plan of this invocation (fewdims_helpers.setup.planning): each notebook's study lists its runs from
    the profile the notebooks get and the design in the notebook's parameters cell. Trains nothing."""
    import importlib
    import inspect

    from fewdims_helpers.setup.planning import build_plan

    profile, _, runner = invocation.invocation_setup(args, root)
    studies = []
    for notebook in notebooks:
        planner = importlib.import_module(f"fewdims_helpers.studies.{STUDIES[notebook.name[:2]]}").planned_runs
        accepted = set(inspect.signature(planner).parameters) - {"profile", "runner"}
        design = {k: v for k, v in invocation.notebook_design(notebook).items() if k in accepted}
        studies.append((notebook.name, planner(profile, runner, **design)))
    workers = runner.options.workers if runner.options.backend == "local" else 1  # "auto" on a GPU: gpu_sharing.py
    return build_plan(studies, runner, workers, calibrate_rates=calibrate)


def invocation_plan(args: argparse.Namespace, root: Path, notebooks: list[Path]):
    """The plan of this invocation from the cached rates only (no calibration), for the progress line; None
    when it cannot be made (the line then counts runs without a total)."""
    try:
        plan = make_plan(args, root, notebooks, calibrate=False)
    except Exception as error:  # the run goes on without a total: say why, in one line
        print(f"run_all: no plan for the progress line ({type(error).__name__}: {error})", file=sys.stderr)
        return None
    seconds = f", about {plan.seconds / 60:.0f} min" if plan.seconds else ""
    print(f"run_all: plan: {plan.to_compute} runs to compute{seconds} (python run_all.py --plan for the details)",
          flush=True)
    return plan


def study_notes(args: argparse.Namespace) -> dict[str, str]:
    """Per notebook prefix, the one line saying why it runs nothing with these arguments (05 on one task)."""
    from fewdims_helpers.options import ProfileOverrides
    from fewdims_helpers.setup.profiles import get_profile
    from fewdims_helpers.studies import cross

    note = cross.missing_tasks(get_profile(args.profile, ProfileOverrides(tasks=args.tasks)))
    return {"05": note} if note else {}


if __name__ == "__main__":
    sys.exit(main())
