#!/usr/bin/env python
"""Where the time of one ``run_all.py`` invocation goes, per notebook, from what it recorded (nothing reruns):

- kernel start-up: from papermill's start of the notebook to the start of its first cell;
- setup: the notebook's setup cell (imports, profile, sequence lengths, tokenised data);
- training and evaluation: the runs computed by the notebook, from their ``metrics.json`` (per epoch
  ``train_seconds`` and ``validation_seconds``), in worker-seconds;
- run overhead (model loading, the test pass, saving artifacts): each run's wall time in its worker
  (between its ledger line and the previous one of the same process, ``InvocationLedger.invocation_events``)
  minus its ``train_seconds``; the first run of each worker process is left out of it;
- process start: what the first run of each worker process took beyond the median run overhead (the
  process's spawn and imports);
- analysis: the rest of the notebook's cells (scans, probes, verdicts, plots);
- other: ``run_all.py``'s recorded seconds for the notebook beyond papermill's (reading and writing it).

Worker-seconds are divided by the number of worker processes that computed runs (1 when the kernel
computed them itself), so the columns add up to the notebook's wall time up to the overlap of
analysis with runs in the background (then "analysis" is smaller and can be negative).

    python benchmarks/where_time_goes.py --output-dir /tmp/smoke --profile smoke   # the latest invocation there
    python benchmarks/where_time_goes.py                                           # the default study in place

Writes ``benchmarks/results/where_time_goes_<profile>.{csv,md}`` and prints the table.
"""
from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from fewdims_helpers.paths import REPO_ROOT, output_paths
from fewdims_helpers.report.tables import to_markdown
from fewdims_helpers.runs.store import RunStore

RESULTS = Path(__file__).resolve().parent / "results"
COLUMNS = ["kernel start-up", "setup", "training", "evaluation", "run overhead", "process start", "analysis", "other"]


def _time(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


def notebook_cells(path: Path) -> dict:
    """Papermill's times of an executed notebook: its start and end, and each code cell's (start, seconds)."""
    notebook = json.loads(path.read_text())
    meta = notebook["metadata"]["papermill"]
    cells = [(c.get("metadata", {}).get("tags", []), c["metadata"]["papermill"]) for c in notebook["cells"]
             if c["cell_type"] == "code" and c.get("metadata", {}).get("papermill", {}).get("start_time")]
    code = [(tags, _time(p["start_time"]), float(p["duration"] or 0.0)) for tags, p in cells]
    setup = next(seconds for tags, _, seconds in code if not {"parameters", "injected-parameters"} & set(tags))
    return {"start": _time(meta["start_time"]), "end": _time(meta["end_time"]), "first_cell": code[0][1],
            "spans": [(start, start + seconds) for _, start, seconds in code], "setup": setup}


def cell_start(cells: dict, moment: float) -> float:
    """The start of the cell that was running at ``moment`` (the last one started before it)."""
    return max((start for start, _ in cells["spans"] if start <= moment), default=cells["first_cell"])


def run_times(store: RunStore, events: list[dict]) -> pd.DataFrame:
    """One row per run computed in ``events`` (a notebook's segment of the ledger): its worker process, its
    wall time there (from the previous line of that process; NaN for the process's first run), and its
    training and validation seconds."""
    rows, last = [], {}
    for event in events:
        pid, now = event["pid"], event.get("time")
        if event["event"] == "computed":
            history = store.metrics(event["run_id"])["history"]
            rows.append({"run_id": event["run_id"], "pid": pid, "first": pid not in last,
                         "wall": now - last[pid] if pid in last and now is not None else np.nan,
                         "fit": store.metrics(event["run_id"])["train_seconds"],
                         "training": sum(e.get("train_seconds", 0.0) for e in history),
                         "evaluation": sum(e.get("validation_seconds", 0.0) for e in history)})
        last[pid] = now
    return pd.DataFrame(rows, columns=["run_id", "pid", "first", "wall", "fit", "training", "evaluation"])


def breakdown(root: Path, profile: str, invocation: str | None = None) -> tuple[pd.DataFrame, str]:
    """The table (one row per notebook and a total) of ``invocation`` (default: the latest recorded in
    ``results/timings-<profile>.json``), and the invocation's id."""
    timings = json.loads((root / "results" / f"timings-{profile}.json").read_text())
    recorded = [t for t in timings if "invocation" in t]
    if not recorded:
        raise SystemExit(f"{root}: no invocation recorded its runs in timings-{profile}.json (run run_all.py again)")
    invocation = invocation or recorded[-1]["invocation"]
    store = RunStore(output_paths(root)["runs"])
    events = store.ledger.invocation_events(invocation)
    starts = [(t["notebook"], t) for t in recorded if t["invocation"] == invocation]
    rows, cursor = [], 0
    for name, timing in starts:
        cells = notebook_cells(root / "notebooks" / name)
        used = timing["runs_used"]
        if "ledger_lines" in timing:  # the notebook's segment of the ledger, as run_all.py recorded it
            segment = events[timing["ledger_lines"][0]:timing["ledger_lines"][1]]
        else:  # the lines after the previous notebook's, up to this one's end
            segment = [e for e in events[cursor:] if e.get("time") is None or e["time"] <= cells["end"] + 1]
            cursor += len(segment)
        runs = run_times(store, segment)
        workers = max(1, runs["pid"].nunique()) if len(runs) else 1
        overhead = (runs["wall"] - runs["fit"]).dropna()
        typical = float(overhead.median()) if len(overhead) else 0.0
        firsts = runs[runs["first"]]
        # a first run's wall time from the cell that started it is not recorded: its fit plus the typical
        # overhead is what it would have taken; the process start is the rest up to its ledger line
        process = 0.0
        for row in firsts.itertuples() if workers > 1 else ():  # one process: the kernel itself, no start
            finished = events_time(segment, row.run_id)
            process += max(finished - cell_start(cells, finished - row.fit) - row.fit - typical, 0.0)
        row = {"notebook": name, "wall": timing["seconds"], "runs computed": len(runs), "runs used": used,
               "workers": workers,
               "kernel start-up": cells["first_cell"] - cells["start"], "setup": cells["setup"],
               "training": runs["training"].sum() / workers, "evaluation": runs["evaluation"].sum() / workers,
               "run overhead": (overhead.sum() + typical * len(firsts)) / workers,
               "process start": process / workers if workers > 1 else 0.0,
               "other": timing["seconds"] - (cells["end"] - cells["start"])}
        accounted = sum(row[c] for c in COLUMNS if c not in ("analysis", "other"))
        row["analysis"] = cells["end"] - cells["start"] - accounted
        rows.append(row)
    table = pd.DataFrame(rows)
    total = {"notebook": "total", **{c: table[c].sum() for c in ["wall", "runs computed", "runs used", *COLUMNS]},
             "workers": int(table["workers"].max())}
    table = pd.concat([table, pd.DataFrame([total])], ignore_index=True)
    for column in COLUMNS:
        table[f"{column} %"] = 100 * table[column] / table["wall"]
    return table[["notebook", "wall", "runs computed", "runs used", "workers", *COLUMNS,
                  *[f"{c} %" for c in COLUMNS]]].round(1), invocation


def events_time(segment: list[dict], run_id: str) -> float:
    return next(e["time"] for e in segment if e["run_id"] == run_id and e["event"] == "computed")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", default=str(REPO_ROOT), help="the invocation's output folder (default: here)")
    parser.add_argument("--profile", default="default", help="the invocation's profile (its timings file)")
    parser.add_argument("--invocation", default=None, help="the invocation id (default: the latest recorded)")
    args = parser.parse_args(argv)
    table, invocation = breakdown(Path(args.output_dir).expanduser().resolve(), args.profile, args.invocation)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"where_time_goes_{args.profile}"
    table.to_csv(path.with_suffix(".csv"), index=False)
    shown = table[["notebook", "wall", "runs computed", "workers", *COLUMNS]]
    path.with_suffix(".md").write_text(
        f"# Where the time goes: invocation {invocation} ({args.profile} profile)\n\n"
        f"Seconds of wall time per notebook (worker-seconds divided by the workers); "
        f"benchmarks/where_time_goes.py from the runs' metrics, the ledger and papermill's cell times.\n\n"
        + to_markdown(shown) + "\n")
    print(f"invocation {invocation}")
    print(shown.to_string(index=False))
    print(f"written: {path.with_suffix('.csv')}, {path.with_suffix('.md')}")


if __name__ == "__main__":
    main()
