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
``figures/reproduction.{csv,md,png}`` (see fewdims_helpers/reproduction.py):
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
import ast
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent
NOTEBOOKS = REPO_ROOT / "notebooks"
PROFILE_NAMES = ("smoke", "default", "paper")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """run_all's own arguments, then one flag per option declared in fewdims_helpers/options.py
    (fewdims_helpers/parameters.py), checked by the dataclasses that declare them."""
    from fewdims_helpers import parameters
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
    if args.seeds is not None and len(set(args.seeds)) != len(args.seeds):
        parser.error(f"--seeds {' '.join(map(str, args.seeds))} repeats a seed; give distinct seeds")
    return args


def output_root(args: argparse.Namespace) -> Path:
    """Where the run writes: --output-dir, else the repository (default profile) or build/<profile>/."""
    if args.output_dir is not None:
        return Path(args.output_dir).expanduser().resolve()
    return REPO_ROOT if args.profile == "default" else REPO_ROOT / "build" / args.profile


def preflight(args: argparse.Namespace, root: Path) -> list[str]:
    """The problems with the arguments, found before any kernel starts (see fewdims_helpers.preflight)."""
    from fewdims_helpers.preflight import problems

    return problems(args.profile, args.tasks, args.model, args.device, root, args.glue_dir, backend=args.backend)


def local_path(name: str | None) -> str | None:
    """An existing local path as an absolute one, anything else (None, a hub name) unchanged.

    The kernels run in notebooks/, so a path relative to where run_all.py was started, or one with
    an unexpanded ~, would not be found there."""
    if name is None or name in ("minilm", "tiny") or not Path(name).expanduser().exists():
        return name
    return os.path.abspath(os.path.expanduser(name))


def notebook_parameters(args: argparse.Namespace, root: Path) -> dict:
    """What every notebook's ``parameters`` cell receives: the profile, the output folder relative to
    the repository (None: the repository itself; so no notebook records where its checkout lies) and
    the options given on the command line, by name (``options`` left out of it: the declared default)."""
    from fewdims_helpers import parameters

    options = parameters.given(args)
    options.update({name: local_path(options[name]) for name in ("model", "glue_dir") if name in options})
    inside = root == REPO_ROOT or REPO_ROOT in root.parents
    output_dir = None if root == REPO_ROOT else str(root.relative_to(REPO_ROOT)) if inside else str(root)
    return {"profile": args.profile, "output_dir": output_dir, "options": options}


def overrides(args: argparse.Namespace) -> dict:
    """The options that change a profile's runs or its time (caps, epochs, seeds, workers), by name;
    None where not given. The model and tasks are recorded beside them (``reference_profile``)."""
    from fewdims_helpers.options import ProfileOverrides

    names = [spec.name for spec in dataclasses.fields(ProfileOverrides) if spec.name not in ("model", "tasks")]
    return {name: getattr(args, name) for name in [*names, "workers"]}


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


def record_timings(path: Path, timings: list[dict]) -> None:
    """Append this invocation's notebook times to the history in ``path`` (first runs and reruns both count)."""
    previous = json.loads(path.read_text()) if path.exists() else []
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(previous + timings, indent=2) + "\n")


def use_this_checkout() -> None:
    """Make the kernels (and their worker processes) import the package next to this script: with two
    checkouts on one machine, the editable install may point at the other one."""
    paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    if paths[0] != str(REPO_ROOT):
        os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *[p for p in paths if p]])


def reference_profile(args: argparse.Namespace) -> dict:
    """What makes two invocations' tables comparable: profile, its overrides, tasks and model."""
    return {"profile": args.profile, "overrides": {k: v for k, v in overrides(args).items() if v is not None
                                                   and k != "workers"}, "tasks": args.tasks, "model": args.model}


def reproduce(args: argparse.Namespace, runs, invocation: str, root: Path, notebooks: list[Path],
              by_notebook: dict[str, list[str]]) -> int:
    """Update the reference if asked (``by_notebook``: the runs each notebook used), then print and write
    the reproduction report; 3 under --strict when anything disagrees, 4 when --update-reference --only
    was refused, else 0."""
    from fewdims_helpers import reproduction

    runs.end_invocation()
    figures, reference = root / "figures", Path(args.reference_dir).expanduser().resolve()
    used = runs.invocation_runs(invocation)
    refused = None
    if args.update_reference:
        provenance = reference_provenance(args)
        if args.only is None:
            counts = reproduction.update_reference(runs, sorted(used["computed"] + used["reused"]), figures,
                                                   reference, reference_profile(args), notebooks=by_notebook,
                                                   provenance=provenance)
            print(f"run_all: reference {reference} replaced: {counts['runs']} runs ({counts['with_test_predictions']} "
                  f"with test predictions), {counts['tables']} tables", flush=True)
        else:
            counts, refused = reproduction.update_notebooks(runs, by_notebook, figures, reference,
                                                            reference_profile(args), baseline_ids(args, root),
                                                            provenance)
            if refused:
                print(f"run_all: reference not updated: {refused}", file=sys.stderr, flush=True)
            else:
                print(f"run_all: reference {reference}: notebook(s) {', '.join(sorted(by_notebook))} replaced; now "
                      f"{counts['runs']} runs ({counts['with_test_predictions']} with test predictions), "
                      f"{counts['tables']} tables", flush=True)
    report = reproduction.build_report(runs, reference, figures, invocation, [nb.name[:2] for nb in notebooks],
                                       reference_profile(args))
    reproduction.write_report(report, figures)
    print("\n".join(f"run_all: reproduction: {line}" for line in report.text().splitlines()), flush=True)
    print(f"run_all: reproduction report: {figures / 'reproduction.md'}", flush=True)
    return 4 if refused else 3 if args.strict and report.disagreements else 0


def verify(args: argparse.Namespace, root: Path) -> int:
    """--verify: check every run of the store (--repair: quarantine the corrupt ones) and, read-only, the
    reference; one line per problem and a summary per store; 1 when anything is corrupt. Trains nothing."""
    from fewdims_helpers.paths import output_paths
    from fewdims_helpers.reproduction import reference_folders
    from fewdims_helpers.store import RunStore

    reference = reference_folders(Path(args.reference_dir).expanduser().resolve())["runs"]
    found = [RunStore(output_paths(root, create=False)["runs"]).verify(repair=args.repair),
             RunStore(reference).verify(read_only=True)]
    print("\n".join(f"run_all: verify: {line}" for report in found for line in report.lines()), flush=True)
    return 1 if any(report.corrupt for report in found) else 0


def reference_provenance(args: argparse.Namespace) -> dict:
    """Where a reference's notebooks came from: the code commit and the machine (CPU model and bf16 path,
    cores, GPU, package versions) and the device asked for."""
    from fewdims_helpers.provenance import environment

    return {**environment(), "device": args.device or "auto"}


def baseline_ids(args: argparse.Namespace, root: Path) -> list[str]:
    """The run ids of the profile's baseline runs, as the notebooks of this invocation build them."""
    return [c.run_id for c in invocation_setup(args, root)[0].baselines()]


def invocation_setup(args: argparse.Namespace, root: Path):
    """(profile, output paths, run store) exactly as each notebook's setup cell makes them, without its banner."""
    import contextlib
    import io

    from fewdims_helpers.profiles import notebook_setup

    parameters = {k: v for k, v in notebook_parameters(args, root).items() if k != "output_dir"}
    with contextlib.redirect_stdout(io.StringIO()):
        return notebook_setup(output_dir=root, **parameters)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    notebooks = select_notebooks(args.only)
    root = output_root(args)
    if args.verify:
        return verify(args, root)
    problems = preflight(args, root)
    for problem in problems:
        print(f"run_all: {problem}", file=sys.stderr)
    if problems:
        return 2
    if args.plan:
        print(make_plan(args, root, notebooks).text(), flush=True)
        return 0
    import papermill

    from fewdims_helpers.notebook_execution import execute_notebook, failed_copy
    from fewdims_helpers.paths import output_paths
    from fewdims_helpers.store import RunStore
    from fewdims_helpers.terminal import HEADLESS

    plan = invocation_plan(args, root, notebooks)  # before the invocation begins: planning notes no run
    runs = RunStore(output_paths(root)["runs"])
    invocation = runs.begin_invocation()  # the kernels inherit it: their stores note what they compute and use
    progress = show_progress(plan, runs, invocation)
    use_this_checkout()
    os.environ[HEADLESS] = "1"  # the kernels' progress bars and log lines go to this terminal, not the notebooks
    (root / "notebooks").mkdir(parents=True, exist_ok=True)
    parameters = notebook_parameters(args, root)
    pilot = {name: value for name, value in overrides(args).items() if value is not None}
    timings, notes, used = [], study_notes(args), {}
    for notebook in notebooks:
        target = root / "notebooks" / notebook.name
        print(f"run_all: {notebook.name} ({args.profile}) -> {target}", flush=True)
        if notebook.name[:2] in notes:
            print(f"run_all: {notebook.name}: {notes[notebook.name[:2]]}", flush=True)
        start, ledger = time.perf_counter(), len(runs.invocation_events(invocation))
        try:
            execute_notebook(notebook, target, root, parameters=parameters, cwd=str(NOTEBOOKS), kernel_name="python3",
                             progress_bar=True, request_save_on_cell_execute=True)
        except papermill.PapermillExecutionError as error:
            progress.close()
            runs.end_invocation()  # the finished notebooks' runs stay in the ledger and the store
            os.environ.pop(HEADLESS, None)
            print(f"run_all: {notebook.name} failed in cell {error.exec_count}: {error.ename}: "
                  f"{' '.join(str(error.evalue).split())} (executed notebook with the traceback: "
                  f"{failed_copy(root, notebook)}; {target} and figures/ left as they were)", file=sys.stderr)
            return 1
        seconds = time.perf_counter() - start
        events = runs.invocation_events(invocation)[ledger:]  # the runs this notebook computed and read
        used[notebook.name[:2]] = sorted({e["run_id"] for e in events})
        timings.append({"notebook": notebook.name, "seconds": round(seconds, 1), "force": args.force,
                        "invocation": invocation, "ledger_lines": [ledger, ledger + len(events)],
                        "runs_used": len(used[notebook.name[:2]]),
                        "runs_computed": len({e["run_id"] for e in events if e["event"] == "computed"}),
                        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "cpus": os.cpu_count(),
                        **({"overrides": pilot} if pilot else {})})  # a pilot's times are not the profile's
        record_timings(root / "results" / f"timings-{args.profile}.json", timings[-1:])  # kept if interrupted
        print(f"run_all: {notebook.name} done in {seconds:.0f} s", flush=True)
    progress.close()
    os.environ.pop(HEADLESS, None)
    print(f"run_all: {len(timings)} notebooks, {sum(t['seconds'] for t in timings):.0f} s in all", flush=True)
    code = reproduce(args, runs, invocation, root, notebooks, used)
    report_verdicts(root, args)  # after the reference: the README says which notebooks it holds on their own
    return code


STUDIES = {"01": "token_wise", "02": "dimension_wise", "03": "layer_wise", "04": "freezing", "05": "cross",
           "06": "salient", "07": "intrinsic"}  # notebook prefix -> its study module


def notebook_design(notebook: Path) -> dict:
    """The defaults of a notebook's ``parameters`` cell that are literals (its design: subsets_per_k, rates...),
    read from the notebook's JSON as papermill's ``inspect_notebook`` reads them, without papermill (a
    machine that plans, such as a GPU node, may not have it)."""
    cells = json.loads(notebook.read_text())["cells"]
    source = next(("".join(c["source"]) for c in cells
                   if c["cell_type"] == "code" and "parameters" in c.get("metadata", {}).get("tags", [])), "")
    design = {}
    for statement in ast.parse(source).body:
        if isinstance(statement, (ast.Assign, ast.AnnAssign)):
            targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
            if len(targets) != 1 or not isinstance(targets[0], ast.Name) or statement.value is None:
                continue
            try:
                design[targets[0].id] = ast.literal_eval(statement.value)
            except (ValueError, SyntaxError, TypeError):
                pass
    return design


def make_plan(args: argparse.Namespace, root: Path, notebooks: list[Path], calibrate: bool = True):
    """The plan of this invocation (fewdims_helpers.planning): each notebook's study lists its runs from
    the profile the notebooks get and the design in the notebook's parameters cell. Trains nothing."""
    import importlib
    import inspect

    from fewdims_helpers.planning import build_plan

    profile, _, store = invocation_setup(args, root)
    studies = []
    for notebook in notebooks:
        planner = importlib.import_module(f"fewdims_helpers.studies.{STUDIES[notebook.name[:2]]}").planned_runs
        accepted = set(inspect.signature(planner).parameters) - {"profile", "store"}
        design = {k: v for k, v in notebook_design(notebook).items() if k in accepted}
        studies.append((notebook.name, planner(profile, store, **design)))
    workers = store.options.workers if store.options.backend == "local" else 1  # "auto" on a GPU: gpu_sharing.py
    return build_plan(studies, store, workers, calibrate_rates=calibrate)


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


class show_progress:
    """The whole invocation's progress line (``planning.Progress``) beside the notebooks' bars, redrawn every
    few seconds from a thread; on a terminal only (nothing in logs or executed notebooks)."""

    def __init__(self, plan, runs, invocation: str, every: float = 5.0):
        import shutil
        import threading

        from tqdm.auto import tqdm

        from fewdims_helpers.planning import Progress

        self.progress, self.every, self.stop = Progress(plan, runs, invocation), every, threading.Event()
        size = shutil.get_terminal_size((120, 20))  # a terminal that reports no size (0 rows hide every bar)
        self.bar = tqdm(total=self.progress.total, position=0, leave=True, bar_format="{desc}", ncols=size.columns,
                        nrows=size.lines, disable=not sys.stderr.isatty())
        self.thread = threading.Thread(target=self._run, daemon=True)
        if not self.bar.disable:
            self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            self.bar.set_description_str(f"run_all: {self.progress.line()}")
            self.stop.wait(self.every)

    def close(self) -> None:
        self.stop.set()
        if not self.bar.disable:
            self.thread.join()
            self.bar.set_description_str(f"run_all: {self.progress.line()}")
        self.bar.close()


def study_notes(args: argparse.Namespace) -> dict[str, str]:
    """Per notebook prefix, the one line saying why it runs nothing with these arguments (05 on one task)."""
    from fewdims_helpers.profiles import get_profile
    from fewdims_helpers.studies import cross

    note = cross.missing_tasks(get_profile(args.profile, tasks=args.tasks))
    return {"05": note} if note else {}


def report_verdicts(root: Path, args: argparse.Namespace) -> None:
    """Gather every notebook's verdicts into figures/verdicts.csv, write figures/findings.md and
    figures/verdicts.png from them and, for the default profile in place, the README's summary table
    and docs/findings.md."""
    from fewdims_helpers.findings import write_findings
    from fewdims_helpers.verdicts import gather_verdicts, tally

    table = gather_verdicts(root / "figures")
    if table.empty:
        return
    in_place = root == REPO_ROOT and args.profile == "default"
    reference, plateau = Path(args.reference_dir).expanduser(), None
    if in_place and (reference / "reference.json").exists():  # the plateau rule on the reported runs
        from fewdims_helpers.profiles import get_profile
        from fewdims_helpers.reporting import write_table
        from fewdims_helpers.sizing import convergence_line, reference_convergence

        families = reference_convergence(reference, get_profile(args.profile).seeds)
        write_table(families, root / "figures" / "plateau", note=f"{convergence_line(families)}.")
        plateau = convergence_line(families)
    write_findings(root / "figures", table, REPO_ROOT / "README.md" if in_place else None,
                   REPO_ROOT / "docs" if in_place else None, reference=reference, plateau=plateau)
    print(f"run_all: verdicts: {tally(table)} (figures/verdicts.csv, figures/findings.md, figures/verdicts.png"
          f"{', README.md, docs/findings.md' if in_place else ''})", flush=True)


if __name__ == "__main__":
    sys.exit(main())
