"""The reproduction report: how well this invocation's runs and tables agree with the committed reference.

The reference (``reference/`` at the repository root) holds, per run, the summary the run store
exports (config, metrics, test predictions) and a copy of the ``figures/*.csv`` tables of the
invocation that produced it. It is read through a ``RunStore`` opened on ``reference/runs``, whose
runs are summaries and so never count as finished: nothing is ever read from it in place of
computing. Each run is judged against a declared tolerance:

- ``bitwise``: identical test logits (and example ids) and identical test metrics;
- ``disagreement``: not bitwise although computed on the same CPU model (or GPU), the same thread
  count and the same precision, where the runs are deterministic and must agree bitwise;
- across machines, ``within 95% interval`` when the recomputed main test metric lies in
  the reference run's own 95% interval over its test examples (``verdicts.score_interval``
  on the reference predictions), else ``outside 95% interval``;
- without predictions on one side: ``metrics identical (no predictions)`` when the test metrics are
  equal, else ``unchecked (no reference predictions)`` across machines.

A disagreement is a ``disagreement`` or ``outside`` verdict, or, when every compared run is bitwise,
any table cell that differs (the tables are then expected to be identical). Columns that hold
wall-clock times (their name says ``seconds``) are not results and are left out. Writing the reference
(``--update-reference``) is ``reference_update``'s.
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..paths import write_atomically
from ..runs.store import RunStore
from ..stats.metrics import predictions_from_logits
from ..stats.scores import METRICS
from ..stats.verdicts import Outcomes, score_interval
from .tables import to_markdown

log = logging.getLogger(__name__)

BITWISE, DISAGREEMENT = "bitwise", "disagreement"
WITHIN, OUTSIDE = "within 95% interval", "outside 95% interval"
METRICS_IDENTICAL, UNCHECKED = "metrics identical (no predictions)", "unchecked (no reference predictions)"
NO_REFERENCE = "no reference"
FAILING = (DISAGREEMENT, OUTSIDE)
TABLE_NAME = re.compile(r"^\d\d_.*\.csv$")  # the studies' tables (not this report's own)
NUMBER = re.compile(r"^\s*(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*(?:±\s*-?\d+(?:\.\d+)?)?\s*$")
REFERENCE_FILE = "reference.json"  # what produced the reference: profile, overrides, commit, when


def reference_folders(reference_root: str | Path) -> dict[str, Path]:
    """``runs`` (run summaries) and ``figures`` (copied tables) of a reference folder."""
    root = Path(reference_root)
    return {"root": root, "runs": root / "runs", "figures": root / "figures", "about": root / REFERENCE_FILE}


# ----------------------------------------------------------------------------- runs
def _same_setup(local: dict, reference: dict) -> bool:
    """Same CPU model (or GPU name on a GPU), thread count and precision: where runs must agree bitwise."""
    if local.get("device", "").split(":")[0] != reference.get("device", "").split(":")[0]:
        return False
    hardware = "gpu" if str(local.get("device", "")).startswith("cuda") else "cpu"
    return all(local.get(key) == reference.get(key) for key in (hardware, "threads", "precision_used"))


def compare_run(local: RunStore, reference: RunStore, run_id: str) -> dict:
    """One row of the report: reference vs recomputed main test metric (x 100), per-example agreement
    and the verdict (see the module docstring)."""
    mine, theirs = local.metrics(run_id), reference.metrics(run_id)
    metric = mine["main_metric"]
    row: dict = {"kind": "run", "name": run_id, "task": mine.get("task"), "metric": metric,
                 "reference": 100 * theirs["test"][metric], "recomputed": 100 * mine["test"][metric]}
    row["abs_delta"] = abs(row["reference"] - row["recomputed"])
    same = _same_setup(local.record(run_id), reference.record(run_id))
    row["same_setup"] = same
    metrics_equal = mine["test"] == theirs["test"]
    identical = None
    ours_saved, theirs_saved = local.has_predictions(run_id, "test"), reference.has_predictions(run_id, "test")
    if theirs_saved:
        ref = reference.predictions(run_id, "test")
        if ours_saved:
            new = local.predictions(run_id, "test")
            if np.array_equal(new["idx"], ref["idx"]) and new["logits"].shape == ref["logits"].shape:
                identical = bool(np.array_equal(new["logits"], ref["logits"])) and metrics_equal
                width = ref["logits"].shape[1]
                a, b = predictions_from_logits(new["logits"], width), predictions_from_logits(ref["logits"], width)
                if width == 1:  # regression: how far apart the outputs are
                    row["max_abs_output_difference"] = float(np.abs(a - b).max()) if len(a) else 0.0
                    row["output_correlation"] = float(np.corrcoef(a, b)[0, 1]) if np.ptp(a) and np.ptp(b) else np.nan
                else:
                    row["same_predictions"] = float((a == b).mean())
            else:
                identical = False
                row["detail"] = "scored on other test examples than the reference"
        if metric in METRICS:
            outcomes = Outcomes.from_logits([ref["logits"]], ref["labels"], ref["idx"], [0], metric)
            _, row["interval_low"], row["interval_high"] = score_interval(outcomes)
    if identical:
        row["verdict"] = BITWISE
    elif identical is None and metrics_equal:
        row["verdict"] = METRICS_IDENTICAL
    elif same:
        row["verdict"] = DISAGREEMENT
    elif "interval_low" in row:
        row["verdict"] = WITHIN if row["interval_low"] <= row["recomputed"] <= row["interval_high"] else OUTSIDE
    else:
        row["verdict"] = UNCHECKED
    return row


def compare_runs(local: RunStore, reference: RunStore, run_ids: list[str]) -> pd.DataFrame:
    """``compare_run`` for every run of ``run_ids`` the reference has; a ``no reference`` row for the others."""
    known = set(reference.run_ids())
    rows = [compare_run(local, reference, r) if r in known else
            {"kind": "run", "name": r, "task": local.metrics(r).get("task"), "verdict": NO_REFERENCE}
            for r in run_ids]
    return pd.DataFrame(rows, columns=["kind", "name", "task", "metric", "reference", "recomputed", "abs_delta",
                                       "same_predictions", "max_abs_output_difference", "output_correlation",
                                       "interval_low", "interval_high", "same_setup", "verdict", "detail"]
                        ).astype({"same_setup": object})


# ----------------------------------------------------------------------------- tables
def _number(value) -> float | None:
    """The value of a cell: a number, or the mean of "mean ± std"; None for text."""
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return None if pd.isna(value) else float(value)
    match = NUMBER.match(str(value))
    return float(match.group(1)) if match else None


def _keyed(table: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """The table indexed by its text columns plus an occurrence count (position when there are none)."""
    frame = table.astype(str).copy()
    frame["#"] = frame.groupby(keys).cumcount() if keys else np.arange(len(frame))
    return frame.set_index([*keys, "#"])


def compare_table(recomputed: Path, reference: Path) -> pd.DataFrame:
    """One row per cell of ``reference`` and ``recomputed`` (CSV files): rows matched on the reference's
    text columns (all-text columns such as task, setting, subset), values compared as numbers when both
    parse (mean of "mean ± std"), else as text. Cells missing on one side have no counterpart."""
    theirs, mine = pd.read_csv(reference, dtype=str, keep_default_na=False), \
        pd.read_csv(recomputed, dtype=str, keep_default_na=False)
    keys = [c for c in theirs.columns if c in mine.columns and len(theirs) and
            all(_number(v) is None for v in theirs[c]) and all(_number(v) is None for v in mine[c])]
    a, b = _keyed(theirs, keys), _keyed(mine, keys)
    values = [c for c in dict.fromkeys([*theirs.columns, *mine.columns]) if c not in keys and "seconds" not in c]
    rows = []
    for index in dict.fromkeys([*a.index, *b.index]):
        label = index if isinstance(index, tuple) else (index,)
        for column in values:
            old = a.at[index, column] if index in a.index and column in a.columns else None
            new = b.at[index, column] if index in b.index and column in b.columns else None
            x, y = (_number(old), _number(new)) if old is not None and new is not None else (None, None)
            row = {"kind": "cell", "name": f"{recomputed.stem} | {' / '.join(map(str, label[:-1])) or label[-1]} | "
                                            f"{column}", "table": recomputed.stem,
                   "reference": old, "recomputed": new,
                   "differs": x != y if x is not None and y is not None else old != new,
                   "abs_delta": abs(x - y) if x is not None and y is not None else np.nan}
            if old is None or new is None:
                row["verdict"] = NO_REFERENCE if old is None else "not recomputed"
            rows.append(row)
    return pd.DataFrame(rows, columns=["kind", "name", "table", "reference", "recomputed", "abs_delta", "differs",
                                       "verdict"])


def table_summary(cells: pd.DataFrame) -> pd.DataFrame:
    """Per table: cells compared, cells differing, median and max |Δ| of the numeric cells, unmatched cells."""
    rows = []
    for name, group in cells.groupby("table", sort=False):
        matched = group[group["verdict"].isna()]
        deltas = matched["abs_delta"].dropna()
        rows.append({"table": name, "cells": len(matched), "differing": int(matched["differs"].sum()),
                     "median_abs_delta": float(deltas.median()) if len(deltas) else np.nan,
                     "max_abs_delta": float(deltas.max()) if len(deltas) else np.nan,
                     "without_counterpart": int(group["verdict"].notna().sum())})
    return pd.DataFrame(rows, columns=["table", "cells", "differing", "median_abs_delta", "max_abs_delta",
                                       "without_counterpart"])


# ----------------------------------------------------------------------------- the report
@dataclass
class Report:
    """What the report found: the run rows, the cell rows, per-table summaries and the accounting."""
    runs: pd.DataFrame
    cells: pd.DataFrame
    tables: pd.DataFrame
    accounting: dict[str, int]
    notes: list[str] = field(default_factory=list)

    @property
    def disagreements(self) -> list[str]:
        """Runs and cells that disagree with the reference beyond the declared tolerance."""
        bad = list(self.runs.loc[self.runs["verdict"].isin(FAILING), "name"])
        compared = self.runs[self.runs["verdict"] != NO_REFERENCE]
        if len(compared) and (compared["verdict"] == BITWISE).all() and len(self.cells):
            bad += list(self.cells.loc[self.cells["verdict"].isna() & self.cells["differs"].astype(bool), "name"])
        return bad

    def text(self, most: int = 8) -> str:
        """The printed report: accounting, verdict counts, per-table summaries, the first disagreements."""
        a = self.accounting
        lines = [f"runs: {a['computed']} computed now, {a['reused']} reused from the local store, "
                 f"{a['from_reference']} read from the reference"]
        counts = self.runs["verdict"].value_counts()
        lines.append(f"runs against the reference ({len(self.runs)}): "
                     + ", ".join(f"{n} {verdict}" for verdict, n in counts.items()) if len(self.runs) else
                     "runs against the reference: none")
        compared = self.runs.dropna(subset=["abs_delta"])
        if len(compared):
            lines.append(f"  main test metric |Δ| (points): median {compared['abs_delta'].median():.2f}, "
                         f"max {compared['abs_delta'].max():.2f}")
        for row in self.tables.itertuples():
            lines.append(f"table {row.table}: {row.cells} cells, {row.differing} differ"
                         + (f", |Δ| median {row.median_abs_delta:.3g} max {row.max_abs_delta:.3g}"
                            if row.differing and not np.isnan(row.max_abs_delta) else "")
                         + (f", {row.without_counterpart} without counterpart" if row.without_counterpart else ""))
        lines += self.notes
        bad = self.disagreements
        if not bad and (self.runs["verdict"] == NO_REFERENCE).all():
            lines.append("verdict: nothing to compare: the reference has none of these runs (a new design or "
                         "profile); python run_all.py --update-reference makes one")
        else:
            lines.append(f"verdict: {'DISAGREES' if bad else 'agrees'} with the reference"
                         + (f" ({len(bad)}: {', '.join(bad[:most])}{', ...' if len(bad) > most else ''})" if bad else ""))
        return "\n".join(lines)


def build_report(local: RunStore, reference_root: Path, figures: Path, invocation: str, prefixes: list[str],
                 profile: dict) -> Report:
    """Compare the runs this invocation used and the tables its notebooks (``prefixes``) wrote with the reference."""
    folders = reference_folders(reference_root)
    reference = RunStore(folders["runs"])
    runs = local.ledger.invocation_runs(invocation)
    used = sorted(runs["computed"] + runs["reused"])
    from_reference = len(runs["summaries"]) + sum(len(v) for k, v in reference.ledger.invocation_runs(invocation).items()
                                                   if k != "summaries")
    accounting = {"computed": len(runs["computed"]), "reused": len(runs["reused"]), "from_reference": from_reference}
    notes = []
    run_rows = compare_runs(local, reference, used)
    lacking = [r for r in used if r in set(reference.run_ids()) and not reference.has_predictions(r, "test")]
    if lacking:
        notes.append(f"{len(lacking)} reference runs have config and metrics only (no test predictions)")
    unused = len(set(reference.run_ids()) - set(used))
    if unused:
        notes.append(f"{unused} reference runs were not used by this invocation")
    about = json.loads(folders["about"].read_text()) if folders["about"].exists() else {}
    cell_frames = []
    if about.get("made_by") != profile:
        notes.append(f"tables not compared: the reference was made with {about.get('made_by') or 'unknown settings'}, "
                     f"this invocation with {profile}")
    else:
        ours = {p.name for p in figures.glob("*.csv") if TABLE_NAME.match(p.name) and p.name[:2] in prefixes}
        theirs = {p.name for p in folders["figures"].glob("*.csv") if p.name[:2] in prefixes}
        for name in sorted(ours & theirs):
            cell_frames.append(compare_table(figures / name, folders["figures"] / name))
        notes += [f"table {Path(n).stem}: no reference" for n in sorted(ours - theirs)]
        notes += [f"table {Path(n).stem}: in the reference, not written by this invocation"
                  for n in sorted(theirs - ours)]
    cells = pd.concat(cell_frames, ignore_index=True) if cell_frames else compare_table_empty()
    return Report(run_rows, cells, table_summary(cells), accounting, notes)


def compare_table_empty() -> pd.DataFrame:
    return pd.DataFrame(columns=["kind", "name", "table", "reference", "recomputed", "abs_delta", "differs", "verdict"])


def write_report(report: Report, figures: Path) -> list[Path]:
    """``reproduction.csv`` (one row per run and per cell), ``reproduction.md`` (the printed summary and
    the per-table table) and ``reproduction.png`` (|Δ| per run by verdict; max |Δ| per table)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .plotting import save

    figures.mkdir(parents=True, exist_ok=True)
    csv_path, md_path, png_path = (figures / f"reproduction.{suffix}" for suffix in ("csv", "md", "png"))
    rows = pd.concat([frame for frame in (report.runs, report.cells) if len(frame)], ignore_index=True) \
        if len(report.runs) or len(report.cells) else report.runs
    write_atomically(csv_path, lambda tmp: rows.to_csv(tmp, index=False))
    lines = report.text(most=50).splitlines()
    text = "# Reproduction against the reference\n\n" + "\n".join(f"- {line}" for line in lines)
    if len(report.tables):
        text += "\n\n" + to_markdown(report.tables)
    shown = report.runs[report.runs["verdict"] != BITWISE]
    if len(shown):
        text += "\n\nRuns that are not bitwise identical:\n\n" + to_markdown(
            shown[["name", "metric", "reference", "recomputed", "abs_delta", "same_predictions", "interval_low",
                   "interval_high", "verdict"]].head(50))
    write_atomically(md_path, lambda tmp: tmp.write_text(text + "\n"))

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    compared = report.runs.dropna(subset=["abs_delta"])
    for verdict, group in compared.groupby("verdict"):
        left.scatter(group["reference"], group["abs_delta"], label=f"{verdict} ({len(group)})", s=14)
    left.set(xlabel="reference main test metric (x 100)", ylabel="|Δ| recomputed (points)",
             title=f"runs ({len(compared)} compared)")
    if len(compared):
        left.legend(fontsize="small")
    tables = report.tables.dropna(subset=["max_abs_delta"])
    right.barh(tables["table"], tables["max_abs_delta"], label="max |Δ|", color="tab:orange")
    right.barh(tables["table"], tables["median_abs_delta"], label="median |Δ|", color="tab:blue")
    right.set(xlabel="|Δ| per table cell", title=f"tables ({len(tables)} compared)")
    right.invert_yaxis()
    if len(tables):
        right.legend(fontsize="small")
    fig.tight_layout()
    save(fig, png_path)
    plt.close(fig)
    return [csv_path, md_path, png_path]
