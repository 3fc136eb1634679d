#!/usr/bin/env python
"""Execute every study notebook headlessly, in order, each in a fresh kernel (papermill).

    python run_all.py                      # default profile: offline MiniLM study, in place
    python run_all.py --profile smoke      # seconds per notebook; writes under build/smoke/
    python run_all.py --profile paper      # bert-base-uncased on GLUE (GPU, hub or --glue-dir)

The profile's parameters are injected into each notebook's ``parameters`` cell. The first failure
stops the run with a non-zero exit naming the notebook and the cell. Finished training runs are
kept in the run store, so a rerun only redoes what is missing (``--force`` recomputes).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent
NOTEBOOKS = REPO_ROOT / "notebooks"
PROFILE_NAMES = ("smoke", "default", "paper")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="default", help=f"one of {PROFILE_NAMES} (default: default)")
    parser.add_argument("--only", nargs="+", default=None, metavar="NN",
                        help="run only the notebooks whose names start with these prefixes, e.g. --only 01 03")
    parser.add_argument("--force", action="store_true", help="recompute runs already in the store")
    parser.add_argument("--glue-dir", default=None, help="local GLUE copy in the original TSV layout")
    parser.add_argument("--model", default=None, help="model name on the hub or a local model folder")
    parser.add_argument("--tasks", nargs="+", default=None, help="override the profile's tasks")
    parser.add_argument("--device", default=None, help="torch device (default: CUDA when present, else CPU)")
    parser.add_argument("--output-dir", default=None,
                        help="where notebooks, figures and results go (default: the repository for the default "
                             "profile, build/<profile>/ otherwise)")
    args = parser.parse_args(argv)
    if args.profile not in PROFILE_NAMES:
        parser.error(f"unknown profile {args.profile!r}; choose one of {', '.join(PROFILE_NAMES)}")
    if args.glue_dir is not None and not Path(args.glue_dir).is_dir():
        parser.error(f"--glue-dir {args.glue_dir} is not a folder; point it at the folder holding CoLA/, SST-2/, ...")
    return args


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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import papermill

    output_root = (Path(args.output_dir) if args.output_dir is not None
                   else REPO_ROOT if args.profile == "default" else REPO_ROOT / "build" / args.profile).resolve()
    (output_root / "notebooks").mkdir(parents=True, exist_ok=True)
    parameters = {"profile": args.profile, "output_dir": str(output_root), "model": args.model,
                  "tasks": args.tasks, "glue_dir": args.glue_dir, "device": args.device,
                  "force": args.force, "progress": False}
    timings = []
    for notebook in select_notebooks(args.only):
        target = output_root / "notebooks" / notebook.name
        print(f"run_all: {notebook.name} ({args.profile}) -> {target}", flush=True)
        start = time.perf_counter()
        try:
            papermill.execute_notebook(str(notebook), str(target), parameters=parameters, cwd=str(NOTEBOOKS),
                                       kernel_name="python3", progress_bar=True, request_save_on_cell_execute=True)
        except papermill.PapermillExecutionError as error:
            print(f"run_all: {notebook.name} failed in cell {error.exec_count}: {error.ename}: {error.evalue} "
                  f"(executed notebook with the traceback: {target})", file=sys.stderr)
            return 1
        seconds = time.perf_counter() - start
        timings.append({"notebook": notebook.name, "seconds": round(seconds, 1), "force": args.force,
                        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "cpus": os.cpu_count()})
        record_timings(output_root / "results" / f"timings-{args.profile}.json", timings[-1:])  # kept if interrupted
        print(f"run_all: {notebook.name} done in {seconds:.0f} s", flush=True)
    print(f"run_all: {len(timings)} notebooks, {sum(t['seconds'] for t in timings):.0f} s in all", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
