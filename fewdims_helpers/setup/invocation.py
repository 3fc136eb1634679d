"""One invocation of the study notebooks (``run_all.py``, the command line, calls these): the parameters every
notebook receives, the profile and runner its setup cell makes, its plan's progress line, the timings it records,
the reproduction report against the committed reference (and ``--update-reference``), ``--verify``, and the
verdicts gathered after the notebooks. Each function takes run_all's parsed arguments (``args``)."""
from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import os
import sys
from pathlib import Path

from ..paths import REPO_ROOT

NOTEBOOKS = REPO_ROOT / "notebooks"


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
    from . import parameters

    options = parameters.given(args)
    options.update({name: local_path(options[name]) for name in ("model", "glue_dir") if name in options})
    inside = root == REPO_ROOT or REPO_ROOT in root.parents
    output_dir = None if root == REPO_ROOT else str(root.relative_to(REPO_ROOT)) if inside else str(root)
    return {"profile": args.profile, "output_dir": output_dir, "options": options}


def overrides(args: argparse.Namespace) -> dict:
    """The options that change a profile's runs or its time (caps, epochs, seeds, workers), by name;
    None where not given. The model and tasks are recorded beside them (``reference_profile``)."""
    from ..options import ProfileOverrides

    names = [spec.name for spec in dataclasses.fields(ProfileOverrides) if spec.name not in ("model", "tasks")]
    return {name: getattr(args, name) for name in [*names, "workers"]}


def reference_profile(args: argparse.Namespace) -> dict:
    """What makes two invocations' tables comparable: profile, its overrides, tasks and model."""
    return {"profile": args.profile, "overrides": {k: v for k, v in overrides(args).items() if v is not None
                                                   and k != "workers"}, "tasks": args.tasks, "model": args.model}


def invocation_setup(args: argparse.Namespace, root: Path):
    """(profile, output paths, runner) exactly as each notebook's setup cell makes them, without its banner."""
    import contextlib
    import io

    from .profiles import notebook_setup

    parameters = {k: v for k, v in notebook_parameters(args, root).items() if k != "output_dir"}
    with contextlib.redirect_stdout(io.StringIO()):
        return notebook_setup(output_dir=root, **parameters)


def baseline_ids(args: argparse.Namespace, root: Path) -> list[str]:
    """The run ids of the profile's baseline runs, as the notebooks of this invocation build them."""
    return [c.run_id for c in invocation_setup(args, root)[0].baselines()]


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


def use_this_checkout() -> None:
    """Make the kernels (and their worker processes) import the package next to this script: with two
    checkouts on one machine, the editable install may point at the other one."""
    paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    if paths[0] != str(REPO_ROOT):
        os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *[p for p in paths if p]])


def record_timings(path: Path, timings: list[dict]) -> None:
    """Append this invocation's notebook times to the history in ``path`` (first runs and reruns both count)."""
    previous = json.loads(path.read_text()) if path.exists() else []
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(previous + timings, indent=2) + "\n")


class ProgressLine:
    """The whole invocation's progress line (``planning.Progress``) beside the notebooks' bars, redrawn every
    few seconds from a thread; on a terminal only (nothing in logs or executed notebooks)."""

    def __init__(self, plan, runs, invocation: str, every: float = 5.0):
        import shutil
        import threading

        from tqdm.auto import tqdm

        from .planning import Progress

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


def reproduce(args: argparse.Namespace, runs, invocation: str, root: Path, notebooks: list[Path],
              by_notebook: dict[str, list[str]]) -> int:
    """Print and write the reproduction report against the reference as it was, then update the reference if asked
    (``by_notebook``: the runs each notebook used), so that an update says what it changed; 3 under --strict when
    anything disagrees, 4 when --update-reference --only was refused, else 0."""
    from ..report import reference_update, reproduction

    runs.ledger.end_invocation()
    figures, reference = root / "figures", Path(args.reference_dir).expanduser().resolve()
    used = runs.ledger.invocation_runs(invocation)
    refused = None
    report = reproduction.build_report(runs, reference, figures, invocation, [nb.name[:2] for nb in notebooks],
                                       reference_profile(args))
    reproduction.write_report(report, figures)
    print("\n".join(f"run_all: reproduction: {line}" for line in report.text().splitlines()), flush=True)
    print(f"run_all: reproduction report: {figures / 'reproduction.md'}"
          + (" (against the reference before this update)" if args.update_reference else ""), flush=True)
    if args.update_reference:
        provenance = reference_provenance(args)
        if args.only is None:
            counts = reference_update.update_reference(runs, sorted(used["computed"] + used["reused"]), figures,
                                                   reference, reference_profile(args), notebooks=by_notebook,
                                                   provenance=provenance)
            print(f"run_all: reference {reference} replaced: {counts['runs']} runs ({counts['with_test_predictions']} "
                  f"with test predictions), {counts['tables']} tables", flush=True)
        else:
            counts, refused = reference_update.update_notebooks(runs, by_notebook, figures, reference,
                                                            reference_profile(args), baseline_ids(args, root),
                                                            provenance)
            if refused:
                print(f"run_all: reference not updated: {refused}", file=sys.stderr, flush=True)
            else:
                print(f"run_all: reference {reference}: notebook(s) {', '.join(sorted(by_notebook))} replaced; now "
                      f"{counts['runs']} runs ({counts['with_test_predictions']} with test predictions), "
                      f"{counts['tables']} tables", flush=True)
    return 4 if refused else 3 if args.strict and report.disagreements else 0


def reference_provenance(args: argparse.Namespace) -> dict:
    """Where a reference's notebooks came from: the code commit and the machine (CPU model and bf16 path,
    cores, GPU, package versions) and the device asked for."""
    from ..runs.provenance import environment

    return {**environment(), "device": args.device or "auto"}


def verify(args: argparse.Namespace, root: Path) -> int:
    """--verify: check every run of the store (--repair: quarantine the corrupt ones) and, read-only, the
    reference; one line per problem and a summary per store; 1 when anything is corrupt. Trains nothing."""
    from ..paths import output_paths
    from ..report.reproduction import reference_folders
    from ..runs.store import RunStore

    reference = reference_folders(Path(args.reference_dir).expanduser().resolve())["runs"]
    found = [RunStore(output_paths(root, create=False)["runs"]).verify(repair=args.repair),
             RunStore(reference).verify(read_only=True)]
    print("\n".join(f"run_all: verify: {line}" for report in found for line in report.lines()), flush=True)
    return 1 if any(report.corrupt for report in found) else 0


def report_verdicts(root: Path, args: argparse.Namespace) -> None:
    """Gather every notebook's verdicts into figures/verdicts.csv, write figures/findings.md and
    figures/verdicts.png from them and, for the default profile in place, the README's summary table
    and docs/findings.md."""
    from ..report.findings import write_findings
    from ..stats.verdicts import tally
    from ..report.tables import gather_verdicts

    table = gather_verdicts(root / "figures")
    if table.empty:
        return
    in_place = root == REPO_ROOT and args.profile == "default"
    reference, plateau = Path(args.reference_dir).expanduser(), None
    if in_place and (reference / "reference.json").exists():  # the plateau rule on the reported runs
        from ..report.convergence import convergence_line, reference_convergence
        from ..report.tables import write_table
        from .profiles import get_profile

        families = reference_convergence(reference, get_profile(args.profile).seeds)
        write_table(families, root / "figures" / "plateau", note=f"{convergence_line(families)}.")
        plateau = convergence_line(families)
    write_findings(root / "figures", table, REPO_ROOT / "README.md" if in_place else None,
                   REPO_ROOT / "docs" if in_place else None, reference=reference, plateau=plateau)
    print(f"run_all: verdicts: {tally(table)} (figures/verdicts.csv, figures/findings.md, figures/verdicts.png"
          f"{', README.md, docs/findings.md' if in_place else ''})", flush=True)
