#!/usr/bin/env python
"""The whole default study's computing time, from ``results/timings-default.json``: per notebook, its first
entry on the day it was timed on the current recipes (that entry computed the runs it lacked; the rest of
the runs it used were computed by an earlier notebook that day), and the sum. 07 was timed later from an
empty store, so the sum counts the 15 baseline runs it shares with 01 to 06 twice: an upper bound.
Writes ``benchmarks/results/study_time.csv``; the README's one line on the study's time copies its total.

    python benchmarks/study_time.py
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
# the day each notebook was timed on the current recipes (docs/speed.md): 01 to 06 together, then 07, 04, 03 and 02 as each was regenerated on its new design
TIMED_ON = {"01": "2026-12-04", "02": "2026-12-07", "03": "2026-12-07", "04": "2026-12-07", "05": "2026-12-04",
            "06": "2026-12-04", "07": "2026-12-07"}


def first_computations(timings: Path = REPO / "results" / "timings-default.json") -> pd.DataFrame:
    """One row per notebook: the first entry of ``timings`` on its day in ``TIMED_ON``."""
    entries = sorted((e for e in json.loads(timings.read_text())
                      if e["finished"].startswith(TIMED_ON.get(e["notebook"][:2], "never"))),
                     key=lambda e: e["finished"])
    first: dict[str, dict] = {}
    for entry in entries:
        first.setdefault(entry["notebook"][:2], entry)
    return pd.DataFrame([{"notebook": name, "finished": e["finished"], "runs_computed": e["runs_computed"],
                          "runs_used": e["runs_used"], "seconds": e["seconds"]} for name, e in sorted(first.items())])


def main() -> None:
    table = first_computations()
    total = table.seconds.sum()
    table = pd.concat([table, pd.DataFrame([{"notebook": "total", "runs_computed": table.runs_computed.sum(),
                                             "seconds": round(total, 1)}])], ignore_index=True)
    table["hours"] = (table.seconds / 3600).round(2)
    table["runs_used"] = table.runs_used.astype("Int64")
    RESULTS.mkdir(exist_ok=True)
    table.to_csv(RESULTS / "study_time.csv", index=False)
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
