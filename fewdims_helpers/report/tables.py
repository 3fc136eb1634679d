"""Tables from runs: mean ± std over seeds, written as CSV and Markdown next to the figures."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from ..stats.intervals import OUTLIER_LEVEL
from ..stats.verdicts import BORDERLINE, distinct, tally


def setup_logging(level: int = logging.INFO) -> None:
    """Send the package's log lines (run banners, results) to stderr once."""
    logger = logging.getLogger("fewdims_helpers")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
    logger.setLevel(level)


def mean_std(values) -> tuple[float, float, int]:
    """Mean, std (ddof 1; 0 for a single value) and count of the values that are not NaN: the package's
    one aggregation over seeds (NaN for the mean when there are none)."""
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return float("nan"), 0.0, 0
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0, len(values)


def summarize(runs: pd.DataFrame, by: list[str], value: str = "test_score") -> pd.DataFrame:
    """``mean_std`` of ``value`` over seeds for each group of ``by``: columns mean, std and n."""
    rows = [(*(key if isinstance(key, tuple) else (key,)), *mean_std(group))
            for key, group in runs.groupby(by, sort=False)[value]]
    return pd.DataFrame(rows, columns=[*by, "mean", "std", "n"])


def format_mean_std(mean: float, std: float, scale: float = 100.0) -> str:
    return f"{mean * scale:.1f} ± {std * scale:.1f}"


def pivot_mean_std(summary: pd.DataFrame, index: str, columns: str, scale: float = 100.0) -> pd.DataFrame:
    """A readable table of "mean ± std" strings (metrics × ``scale``), ``index`` by ``columns``."""
    cells = summary.assign(cell=[format_mean_std(m, s, scale) for m, s in zip(summary["mean"], summary["std"])])
    table = cells.pivot(index=index, columns=columns, values="cell")
    return table.reindex(index=list(dict.fromkeys(summary[index])), columns=list(dict.fromkeys(summary[columns])))


def _has_named_index(table: pd.DataFrame) -> bool:
    """Whether the index carries data (a named index or MultiIndex level) rather than row numbers."""
    return any(name is not None for name in table.index.names)


def to_markdown(table: pd.DataFrame) -> str:
    frame = table.reset_index() if _has_named_index(table) else table
    header = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def _cell(value) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{value:.4f}"
    return str(value)


def replace_section(path: Path, text: str, start: str, end: str) -> None:
    """Put ``text`` between the marker lines ``start`` and ``end`` of the file ``path`` (a README's
    generated section), leaving the rest of the file as it is."""
    content = Path(path).read_text()
    if start not in content or end not in content:
        raise ValueError(f"{path} has no generated section; put the lines {start!r} and {end!r} where it belongs")
    head, rest = content.split(start, 1)
    Path(path).write_text(head + start + "\n" + text + end + rest.split(end, 1)[1])


def section(text: str, start: str, end: str) -> str:
    """The generated section of a file's ``text`` between ``start`` and ``end`` ('' where it has none)."""
    if start not in text:
        return ""
    return text.split(start, 1)[1].split(end, 1)[0]


def write_table(table: pd.DataFrame, stem: Path, note: str | None = None) -> list[Path]:
    """``stem``.csv (machine-readable) and ``stem``.md (with an optional note under the table)."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = stem.with_suffix(".csv"), stem.with_suffix(".md")
    table.to_csv(csv_path, index=_has_named_index(table))
    md_path.write_text(to_markdown(table) + (f"\n{note}\n" if note else ""))
    return [csv_path, md_path]


# ----------------------------------------------------------------------------- verdict tables
VERDICT_FILE = "verdicts"  # figures/<NN>_verdicts.csv per notebook; figures/verdicts.csv gathers them all


def write_verdicts(rows: list[dict] | pd.DataFrame, figures: Path, study: str) -> pd.DataFrame:
    """``figures/<study>_verdicts.{csv,md}`` from ``verdict_row``s; returns the table."""
    table = distinct(pd.DataFrame(rows).reset_index(drop=True))
    note = (f"A - B in points (metric x 100) with its 95% and 90% intervals over seeds (t, paired by seed) and "
            f"test examples (jackknife), Welch-Satterthwaite degrees of freedom; verdict by two one-sided tests at "
            f"5% against the margin (equivalence: the 90% interval), or a one-sided 5% test (better / worse); "
            f"invalid where a side's run did not train. loo_same of loo_runs: leave-one-seed-out re-decisions that "
            f"agree (fewer: fragile); outlier_seeds: seeds beyond 3 SDs of the rest of their side (their "
            f"{100 * OUTLIER_LEVEL:.2f}% prediction interval; kept); borderline: a deciding bound within {BORDERLINE:g} points of its threshold; same_as: rows dropped "
            f"as the same comparison (same task, estimate and interval). {tally(table)}.")
    write_table(table, Path(figures) / f"{study}_{VERDICT_FILE}", note=note)
    return table


def gather_verdicts(figures: Path) -> pd.DataFrame:
    """Every notebook's verdict table in one: ``figures/verdicts.{csv,md}`` (run_all.py writes it)."""
    parts = [pd.read_csv(path, dtype={"study": str}) for path in sorted(Path(figures).glob(f"[0-9][0-9]_{VERDICT_FILE}.csv"))]
    if not parts:
        return pd.DataFrame()
    table = distinct(pd.concat(parts, ignore_index=True))
    write_table(table, Path(figures) / VERDICT_FILE, note=f"All verdicts of the notebooks, each comparison once: "
                                                           f"{tally(table)}.")
    return table
