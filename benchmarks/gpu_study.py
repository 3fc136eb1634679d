#!/usr/bin/env python
"""The whole default study on one GPU from an empty store, timed per notebook (issue 29, part b of
``benchmarks/gpu_check.sh``), on a machine with or without papermill.

    python benchmarks/gpu_study.py --device cuda --weights "$(python benchmarks/gpu_weights.py fill build/gpu_carry)" \\
        --budget 280 --out benchmarks/results
    python benchmarks/gpu_study.py --device cpu --profile smoke --options '{"seeds": [0], "tasks": ["rt-polarity"]}' \\
        --only 01 04 --budget 300 --out /tmp/study           # the script itself, on a CPU

1. The plan of the whole study from the empty store (``run_all.make_plan``; on a GPU with the runs that share
   it and rates calibrated with that many at once), in a process of its own: ``gpu_study_plan.csv`` (planned
   minutes per notebook, the workers, what the GPU sharing says) and ``gpu_study_plan.txt``.
2. Each notebook in order, in a fresh process (``plain_notebook.py``: no papermill or kernel needed), into an
   empty store under ``--output-dir``, with ``device`` and ``workers`` "auto" as options (so each notebook's
   store chooses how many runs share the GPU). After each: ``gpu_study.csv`` rewritten, one row per notebook:
   ``notebook, seconds, device, weights`` and ``status`` (done, failed, stopped at the budget, not started),
   ``runs_computed`` (from the invocation's ledger) and ``planned_seconds``. A failed notebook's last log lines
   go to ``gpu_study_<NN>.log``; the next notebook still runs (a later one may need its runs: it then fails too).
3. When ``--budget`` seconds are spent, the notebook running is stopped (its process group) and the rest are
   not started: their rows keep the planned seconds, which are the plan for the rest. Stopped from outside
   (SIGTERM, the device script's ``timeout``), it stops the notebook running likewise and saves its row.
4. With the real weights (``--weights real``) and every notebook done, the reproduction report against the
   committed reference (``invocation.reproduce``): ``gpu_study_reproduction.{md,csv}``. With random weights no
   report: the results mean nothing, only the times do.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

import pandas as pd  # noqa: E402

import run_all  # noqa: E402
from fewdims_helpers.setup.invocation import reproduce  # noqa: E402

COLUMNS = ["notebook", "seconds", "device", "weights", "status", "runs_computed", "planned_seconds"]


def run_all_args(args, plan: bool = False) -> argparse.Namespace:
    argv = ["--profile", args.profile, "--output-dir", str(args.output_dir), "--device", args.device]
    for name, value in json.loads(args.options).items():
        flag = "--" + name.replace("_", "-")
        argv += [flag, *map(str, value)] if isinstance(value, list) else [flag, str(value)]
    return run_all.parse_args(argv + (["--plan"] if plan else []))


def device_name(device: str) -> str:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name()
    from fewdims_helpers.runs.provenance import cpu_model

    return cpu_model() or platform.machine()


def make_plan(args) -> int:
    """Step 1, in its own process: the plan of every notebook from the (empty) store."""
    from plan import plan_frame  # a sibling script

    options = run_all_args(args, plan=True)
    plan = run_all.make_plan(options, run_all.output_root(options), run_all.select_notebooks(None))
    text = plan.text()
    print(text, flush=True)
    frame = plan_frame(plan).assign(device=device_name(args.device), sharing=plan.sharing)
    args.out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.out / "gpu_study_plan.csv", index=False)
    (args.out / "gpu_study_plan.txt").write_text(text + "\n")
    return 0


def planned_seconds(out: Path) -> dict[str, float]:
    path = out / "gpu_study_plan.csv"
    if not path.exists():
        return {}
    frame = pd.read_csv(path)
    return {row.notebook: row.minutes * 60 for row in frame.itertuples() if pd.notna(row.minutes)}


class Stopped(Exception):
    """This script was told to stop (SIGTERM: the device script's ``timeout``)."""


def _stop(signum, frame) -> None:
    raise Stopped()


def run_group(command: list[str], timeout: float, log: Path, env: dict) -> tuple[int | None, float]:
    """Run ``command`` in a process group of its own (its worker processes with it), output to ``log``;
    (exit code, or None when stopped at ``timeout``; seconds). If this script is stopped meanwhile, the group
    is stopped too before ``Stopped`` goes on (a session of its own escapes the caller's ``timeout``)."""
    start = time.perf_counter()
    with open(log, "w") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=REPO,
                                   start_new_session=True)
        try:
            code = process.wait(timeout=max(timeout, 1.0))
        except (subprocess.TimeoutExpired, Stopped) as reason:
            os.killpg(process.pid, signal.SIGKILL)  # the notebook's process group: it and its workers
            process.wait()
            if isinstance(reason, Stopped):
                raise
            code = None
    return code, time.perf_counter() - start


def tail(path: Path, lines: int = 60) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) + "\n"


def study(args) -> int:
    from fewdims_helpers.paths import output_paths
    from fewdims_helpers.runs.store import RunStore

    began = time.perf_counter()
    signal.signal(signal.SIGTERM, _stop)
    out, root = args.out, Path(args.output_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    if root.exists():
        shutil.rmtree(root)  # from an empty store
    (root / "logs").mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]),
           "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1"}
    plan_command = [sys.executable, str(Path(__file__).resolve()), "plan", "--device", args.device, "--profile",
                    args.profile, "--options", args.options, "--output-dir", str(root), "--out", str(out)]
    code, seconds = run_group(plan_command, min(args.plan_budget, args.budget), root / "logs" / "plan.log", env)
    print(f"gpu_study: plan {'done' if code == 0 else 'stopped' if code is None else f'failed ({code})'} in "
          f"{seconds:.0f} s", flush=True)
    if code != 0:
        (out / "gpu_study_plan.log").write_text(tail(root / "logs" / "plan.log"))
    planned = planned_seconds(out)
    device, notebooks = device_name(args.device), run_all.select_notebooks(args.only)
    rows = [dict.fromkeys(COLUMNS) | {"notebook": nb.name, "device": device, "weights": args.weights,
                                      "status": "not started", "planned_seconds": planned.get(nb.name)}
            for nb in notebooks]

    def save() -> None:
        pd.DataFrame(rows, columns=COLUMNS).to_csv(out / "gpu_study.csv", index=False)
    save()
    runs = RunStore(output_paths(root)["runs"])
    invocation = runs.ledger.begin_invocation()  # the notebooks' stores note their runs under it (the environment)
    env = {**env, **{k: v for k, v in os.environ.items() if k.startswith("FEWDIMS_")}}
    options = {**json.loads(args.options), "device": args.device, "progress": False}
    used: dict[str, list[str]] = {}
    for row, notebook in zip(rows, notebooks):
        remaining = args.budget - (time.perf_counter() - began)
        if remaining < 5:
            break
        parameters = {"profile": args.profile, "output_dir": str(root), "options": options}
        ledger = len(runs.ledger.invocation_events(invocation))
        log = root / "logs" / f"{notebook.stem}.log"
        print(f"gpu_study: {notebook.name} ({remaining:.0f} s of the budget left)", flush=True)
        row["status"], started = "running", time.perf_counter()
        save()
        try:
            code, seconds = run_group([sys.executable, str(HERE / "plain_notebook.py"), str(notebook),
                                       "--parameters", json.dumps(parameters)], remaining, log, env)
        except Stopped:
            row.update(seconds=round(time.perf_counter() - started, 1), status="stopped by the call's time limit")
            save()
            (out / f"gpu_study_{notebook.name[:2]}.log").write_text(tail(log))
            print(f"gpu_study: stopped during {notebook.name}", flush=True)
            return 124
        events = runs.ledger.invocation_events(invocation)[ledger:]
        used[notebook.name[:2]] = sorted({e["run_id"] for e in events})
        row.update(seconds=round(seconds, 1), runs_computed=len({e["run_id"] for e in events
                                                                 if e["event"] == "computed"}),
                   status="done" if code == 0 else "stopped at the budget" if code is None else f"failed ({code})")
        save()
        if code != 0:
            (out / f"gpu_study_{notebook.name[:2]}.log").write_text(tail(log))
        print(f"gpu_study: {notebook.name} {row['status']} in {seconds:.0f} s, {row['runs_computed']} runs computed",
              flush=True)
    runs.ledger.end_invocation()
    done = [r for r in rows if r["status"] == "done"]
    print(f"gpu_study: {len(done)} of {len(rows)} notebooks done in {sum(r['seconds'] for r in done):.0f} s; "
          f"wrote {out / 'gpu_study.csv'}", flush=True)
    if args.weights == "real" and len(done) == len(rows) and args.only is None:
        options = run_all_args(args)
        reproduce(options, runs, invocation, root, notebooks, used)
        for suffix in ("md", "csv"):
            if (root / "figures" / f"reproduction.{suffix}").exists():
                shutil.copyfile(root / "figures" / f"reproduction.{suffix}", out / f"gpu_study_reproduction.{suffix}")
    elif args.weights != "real":
        print("gpu_study: random weights: no reproduction report (the times are the study's, the results are not)",
              flush=True)
    return 0 if len(done) == len(rows) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", nargs="?", default="study", choices=("study", "plan"))
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--profile", default="default")
    parser.add_argument("--weights", default="real", help="what the model's weights are (the csv's weights column)")
    parser.add_argument("--options", default="{}", help="JSON object: more options for every notebook, by name")
    parser.add_argument("--only", nargs="+", default=None, metavar="NN", help="these notebooks only")
    parser.add_argument("--budget", type=float, default=280.0, help="seconds for the whole of it, plan included")
    parser.add_argument("--plan-budget", type=float, default=100.0, help="seconds for the plan at most")
    parser.add_argument("--output-dir", default=str(REPO / "build" / "gpu_study"))
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    return make_plan(args) if args.action == "plan" else study(args)


if __name__ == "__main__":
    sys.exit(main())
