"""The papers' published numbers (``published.csv``, shipped with the package) and ours beside them.

``published.csv`` holds, one value a line, the tables of the two papers whose texts give tables: Zhang,
Liu & Shao's Tables 1 to 6 and Matton & de Oliveira's Tables 2 and 3 (Fukuhata & Kano's texts give
claims, not tables). Each line names the paper (``zhang`` or ``matton``), the table, the row and the
column as printed, the model, the data (``dataset``, ``task``), the setting, the value as printed
(``printed``; ``value`` is it as a number), its metric and a note where the printed text needs one. The
notebooks and ``docs/published.md`` (``page``) both read it.

``beside`` puts a paper's table beside the same table of ours (a notebook's table, passed in: settings
in rows, our tasks in columns, cells numbers or "mean ± std" strings): one row per setting the two
share and one per difference the paper's claims rest on, the paper's summary over its tasks (its Avg.
column where it prints one, else the mean of its columns) in one column and the mean over our tasks
in the other, each column naming its model and data. ``sentence`` says what that frame's numbers say,
in one sentence that prints no number the frame does not hold.

Regenerate the docs page with ``python -m fewdims_helpers.report.published > docs/published.md``.
"""
from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Sequence

import pandas as pd

FILE = "published.csv"
COLUMNS = ("paper", "table", "row", "column", "model", "dataset", "task", "setting", "value", "metric", "note")


@dataclass(frozen=True)
class Paper:
    short: str      # in a sentence: "Zhang et al. report ..."
    citation: str   # the docs page's heading
    text: str       # the text the tables were transcribed from (the project's shared/papers/)


PAPERS = {
    "zhang": Paper("Zhang et al.", "Zhang, Liu & Shao, *Fine-tuning Happens in Tiny Subspaces: Exploring Intrinsic "
                   "Task-specific Subspaces of Pre-trained Language Models* (ACL 2023)", "zhang-liu-shao-tiny-subspaces.md"),
    "matton": Paper("Matton & de Oliveira", "Matton & de Oliveira, *Emergent Properties of Finetuned Language "
                    "Representation Models*", "matton-deoliveira-emergent-properties.md"),
}

# each table's subject, from its caption (the docs page's heading) and the notebook that compares it
TITLES = {
    ("zhang", 1): ("Transductive intrinsic subspace fine-tuning: Full, Freeze, Random and Intrinsic (d = 32, "
                   "MNLI 64)", "07"),
    ("zhang", 2): ("Fine-tuning in the unified task subspace: Random (dim=8), Zeroshot (dim=7), Unified (dim=8)", "07"),
    ("zhang", 3): ("The GLUE benchmark when the outlier dimensions are zeroed (Outlier) or as many random ones "
                   "(Random)", "07"),
    ("zhang", 4): ("Sampled outlier dimensions in the BERT model: each layer's top 10, by model component", "07"),
    ("zhang", 5): ("Ablation over the subspace dimension, the BERT model (appendix A.2)", "07"),
    ("zhang", 6): ("Ablation over the subspace dimension, the RoBERTa model (appendix A.2)", "07"),
    ("matton", 2): ("Test-set performance of fine-tuned BERT (Pretrained: a linear classifier on the frozen "
                    "model's [CLS]; SOTA: the state of the art then)", "06"),
    ("matton", 3): ("A softmax classifier on the [CLS] embedding keeping all dimensions, the best one, the five "
                    "best or the natural number (the classes); Random: random guessing", "06"),
}


@dataclass(frozen=True)
class Comparison:
    """How a paper's table lines up with ours: ``rows`` pairs each setting of the paper with our table's row
    label, ``differences`` the (A, B) pairs whose A - B the paper's claims rest on; ``kind`` "levels"
    (settings x tasks, summarised over tasks) or "shares" (counts x layers, summed into each row's share)."""
    rows: tuple[tuple[str, str], ...]
    differences: tuple[tuple[str, str], ...] = ()
    kind: str = "levels"


COMPARISONS = {
    ("zhang", 1): Comparison((("Full", "Full"), ("Freeze", "Freeze"), ("Random", "Random"), ("Intrinsic", "Intrinsic")),
                             (("Intrinsic", "Full"), ("Intrinsic", "Random"), ("Random", "Freeze"))),
    ("zhang", 2): Comparison((("Full", "Full"), ("Unified", "Unified"), ("Zeroshot", "Zero-shot"), ("Random", "Random")),
                             (("Unified", "Full"), ("Zeroshot", "Random"))),
    ("zhang", 3): Comparison((("Full", "Full"), ("Outlier", "outliers zeroed, then fine-tuned"),
                              ("Random", "random zeroed, then fine-tuned")),
                             (("Outlier", "Full"), ("Random", "Full"))),
    ("zhang", 4): Comparison((), kind="shares"),
    ("zhang", 5): Comparison((("Intrinsic dim=8", "dim=8"), ("Intrinsic dim=16", "dim=16"), ("Intrinsic dim=32", "dim=32")),
                             (("Intrinsic dim=8", "Intrinsic dim=32"), ("Intrinsic dim=16", "Intrinsic dim=32"))),
    ("matton", 2): Comparison((("Pretrained", "pretrained All"), ("Finetuned", "fine-tuned All")),
                              (("Finetuned", "Pretrained"),)),
    ("matton", 3): Comparison((("Pretrained Random", "Random"), ("Pretrained All", "pretrained All"),
                               ("Pretrained 1", "pretrained 1"), ("Pretrained 5", "pretrained 5"),
                               ("Finetuned All", "fine-tuned All"), ("Finetuned 1", "fine-tuned 1"),
                               ("Finetuned 5", "fine-tuned 5"), ("Finetuned Natural", "fine-tuned natural")),
                              (("Finetuned 1", "Finetuned All"), ("Finetuned 5", "Finetuned All"),
                               ("Finetuned Natural", "Finetuned All"))),
}
COMPARISONS[("zhang", 6)] = COMPARISONS[("zhang", 5)]
STUDY_TABLES = {"06": (("matton", 2), ("matton", 3)),
                "07": (("zhang", 1), ("zhang", 2), ("zhang", 3), ("zhang", 4), ("zhang", 5), ("zhang", 6))}
AVERAGE = "Avg."  # the column a paper prints its own mean over tasks in


# ----------------------------------------------------------------------------- the data file
@lru_cache(maxsize=1)
def _read() -> pd.DataFrame:
    text = resources.files(__package__).joinpath(FILE).read_text(encoding="utf-8")
    frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    if tuple(frame.columns) != COLUMNS:
        raise ValueError(f"{FILE} has columns {list(frame.columns)}, expected {list(COLUMNS)}")
    return frame.assign(table=frame["table"].astype(int), printed=frame["value"],
                        value=frame["value"].astype(float))


def load() -> pd.DataFrame:
    """Every published value, one a row: ``COLUMNS`` with ``table`` an int, ``value`` a float and ``printed``
    the value as the paper prints it (a copy: changing it changes nothing here)."""
    return _read().copy()


def select(paper: str, table: int, model: str | None = None) -> pd.DataFrame:
    """The lines of one table (of one of its models), in the paper's order."""
    data = _read()
    chosen = data[(data["paper"] == paper) & (data["table"] == table)]
    if chosen.empty:
        known = sorted(set(zip(data["paper"], data["table"])))
        raise KeyError(f"no published table {paper!r} {table}; the file holds {known}")
    if model is not None:
        if model not in set(chosen["model"]):
            raise KeyError(f"{paper} Table {table} has no model {model!r}; it has {models(paper, table)}")
        chosen = chosen[chosen["model"] == model]
    return chosen.reset_index(drop=True)


def models(paper: str, table: int) -> list[str]:
    return list(dict.fromkeys(select(paper, table)["model"]))


def wide(paper: str, table: int, printed: bool = True) -> pd.DataFrame:
    """The table as the paper lays it out: its rows and columns in its order, the values as printed (or as
    numbers); a cell the paper leaves empty (Table 4's layers without outliers) is "" (or NaN)."""
    rows = select(paper, table)
    values = rows["printed" if printed else "value"]
    frame = pd.DataFrame({"row": rows["row"], "column": rows["column"], "cell": values})
    layout = frame.pivot(index="row", columns="column", values="cell")
    layout = layout.reindex(index=list(dict.fromkeys(rows["row"])), columns=_column_order(rows))
    layout.index.name, layout.columns.name = None, None
    return layout.fillna("") if printed else layout.astype(float)


def _column_order(rows: pd.DataFrame) -> list[str]:
    columns = list(dict.fromkeys(rows["column"]))
    if all(re.fullmatch(r"layer \d+", c) for c in columns):
        columns.sort(key=lambda c: int(c.split()[1]))
    return columns


def task_code(task: str) -> str:
    """The package's task name of a paper's GLUE task: ``SST-2`` -> ``sst2``, ``STS-B`` -> ``stsb``."""
    return task.lower().replace("-", "")


# ----------------------------------------------------------------------------- beside ours
def number(cell) -> float:
    """A number of one of our tables: a number, or the mean of a "mean ± std" string; NaN for "—" or ""."""
    if isinstance(cell, str):
        text = cell.split("±")[0].strip().replace("−", "-")
        try:
            return float(text)
        except ValueError:
            return math.nan
    try:
        return float(cell)
    except (TypeError, ValueError):
        return math.nan


def paper_label(paper: str, table: int, model: str, data: str, summary: str) -> str:
    return f"paper ({model} / {data}: {summary}; {PAPERS[paper].short}, Table {table})"


def ours_label(model: str, tasks: Sequence[str], summary: str) -> str:
    return f"ours ({model} / {', '.join(tasks)}: {summary})"


def beside(paper: str, table: int, ours: pd.DataFrame, model: str, tasks: Sequence[str],
           paper_model: str | None = None) -> pd.DataFrame:
    """The paper's ``table`` beside ``ours``, the same table of one of our studies (``STUDY_TABLES``).

    ``ours``: settings in rows (the labels of ``COMPARISONS``' pairs; other rows are left out), tasks in
    columns (those of ``tasks``), cells numbers or "mean ± std" strings in points (metric x 100); for the
    "shares" kind (Zhang et al.'s Table 4), outlier counts by component (rows) and layer (columns).
    ``model`` and ``tasks`` name our side; ``paper_model`` picks the paper's model where a table has two
    (default: its first). Returns the rows the two tables share and the differences A - B of
    ``COMPARISONS``, two columns of numbers rounded to 2 decimals: the paper's and ours, each labelled
    with its model and data and what the number summarises (``paper_label``, ``ours_label``), and a
    column ``ours: row`` with the row of ``ours`` each one reads. ``sentence`` reads the frame;
    its ``attrs["beside"]`` says what was compared."""
    comparison = COMPARISONS.get((paper, table))
    if comparison is None:
        raise KeyError(f"no comparison for {paper} Table {table}; there is one for {sorted(COMPARISONS)}")
    tasks = list(tasks)
    paper_model = paper_model or models(paper, table)[0]
    rows = select(paper, table, paper_model)
    if comparison.kind == "shares":
        return _beside_shares(paper, table, rows, ours, model, tasks, paper_model)
    paper_tasks = [t for t in dict.fromkeys(rows["task"]) if t != AVERAGE]
    tasks_of = "datasets" if paper == "matton" else "tasks"
    if AVERAGE in set(rows["column"]):
        chosen = rows[rows["column"] == AVERAGE]
        summary = f"the paper's {AVERAGE} over its {len(paper_tasks)} {tasks_of}"
        paper_values = dict(zip(chosen["setting"], chosen["value"]))
    else:
        summary = f"the mean of its {len(paper_tasks)} {tasks_of}, computed here"
        paper_values = rows.groupby("setting", sort=False)["value"].mean().to_dict()
    data = ", ".join(dict.fromkeys(rows["dataset"]))
    ours_summary = f"the mean of {len(tasks)} tasks" if len(tasks) > 1 else "its one task"
    ours_values = {}
    for setting, label in comparison.rows:
        if label in ours.index:
            cells = [number(ours.loc[label, task]) if task in ours.columns else math.nan for task in tasks]
            ours_values[setting] = sum(cells) / len(cells)  # NaN where a task is missing
        else:
            ours_values[setting] = math.nan
    paper_column = paper_label(paper, table, paper_model, data, summary)
    ours_column = ours_label(model, tasks, ours_summary)
    index, labels, left, right = [], [], [], []
    for setting, label in comparison.rows:
        index.append(setting), labels.append(label)
        left.append(paper_values[setting]), right.append(ours_values[setting])
    by_setting = dict(comparison.rows)
    for a, b in comparison.differences:
        index.append(f"{a} − {b}"), labels.append(f"{by_setting[a]} − {by_setting[b]}")
        left.append(paper_values[a] - paper_values[b]), right.append(ours_values[a] - ours_values[b])
    frame = pd.DataFrame({paper_column: [round(v, 2) for v in left], ours_column: [round(v, 2) for v in right],
                          "ours: row": labels}, index=pd.Index(index, name="setting"))
    frame.attrs["beside"] = {"paper": paper, "table": table, "kind": "levels", "paper_model": paper_model,
                             "paper_data": data, "paper_summary": summary, "model": model, "tasks": tasks,
                             "ours_summary": ours_summary, "differences": [f"{a} − {b}" for a, b in comparison.differences]}
    return frame


def _beside_shares(paper, table, rows, ours, model, tasks, paper_model) -> pd.DataFrame:
    """Zhang et al.'s Table 4 beside our outlier locations: each component's share (%) of the counted
    outliers, and how many were counted."""
    paper_counts = rows.groupby("row", sort=False)["value"].sum()
    ours_counts = ours.apply(lambda column: column.map(number)).sum(axis=1)
    components = list(dict.fromkeys([*paper_counts.index, *ours_counts.index]))
    paper_total, ours_total = float(paper_counts.sum()), float(ours_counts.sum())
    counted = "outliers counted"
    paper_column = paper_label(paper, table, paper_model, "data not named in the text",
                               "share (%) of each layer's top 10 outliers")
    ours_column = ours_label(model, tasks, "share (%) of each layer's top outliers, summed over runs")

    def share(counts, total, component):
        return round(100 * float(counts.get(component, 0.0)) / total, 2) if total else math.nan

    frame = pd.DataFrame({paper_column: [share(paper_counts, paper_total, c) for c in components] + [paper_total],
                          ours_column: [share(ours_counts, ours_total, c) for c in components] + [ours_total],
                          "ours: row": [c if c in ours_counts.index else "—" for c in components] + ["(all)"]},
                         index=pd.Index([*components, counted], name="component"))
    frame.attrs["beside"] = {"paper": paper, "table": table, "kind": "shares", "paper_model": paper_model,
                             "paper_data": "", "model": model, "tasks": list(tasks), "counted": counted}
    return frame


def _points(value: float, a: str, b: str) -> str:
    if math.isnan(value):
        return f"{a} against {b} not measured"
    if value == 0:
        return f"{a} level with {b}"
    return f"{a} {abs(value):.2f} points {'above' if value > 0 else 'below'} {b}"


def sentence(frame: pd.DataFrame) -> str:
    """One sentence from a ``beside`` frame: the paper's differences (or, for Table 4, its largest share)
    and ours, each side with its model and data. It prints only numbers of the frame (values, labels)."""
    about = frame.attrs.get("beside")
    if not about:
        raise ValueError("not a frame of published.beside (its attrs['beside'] is missing)")
    paper, ours = frame.columns[0], frame.columns[1]
    short, table = PAPERS[about["paper"]].short, about["table"]
    here = f"with {about['model']} on {', '.join(about['tasks'])}"
    if about["kind"] == "shares":
        parts = frame.drop(index=about["counted"])

        def largest(column):
            values = parts[column].dropna()
            if values.empty or not values.max() > 0:
                return "nowhere: none were counted"
            top = values.idxmax()
            return f"in {top} ({values[top]:.2f}% of {frame.loc[about['counted'], column]:.0f})"

        return (f"{short} find, in Table {table} with {about['paper_model']}, the most of each layer's top 10 "
                f"outlier dimensions {largest(paper)}; here, {here}, the most of each layer's top outliers are "
                f"{largest(ours)}.")
    differences = about["differences"]

    def said(column):
        return ", ".join(_points(frame.loc[d, column], *d.split(" − ")) for d in differences)

    return (f"{short} report in Table {table}, with {about['paper_model']} on {about['paper_data']} "
            f"({about['paper_summary']}): {said(paper)}; here, {here} ({about['ours_summary']}): {said(ours)}.")


NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?")


def numbers_in(text: str) -> list[float]:
    """The numbers a text prints (a digit run inside a word, like L6 in MiniLM-L6, is not one)."""
    return [float(n) for n in NUMBER.findall(text)]


# ----------------------------------------------------------------------------- the docs page
def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _where(rows: pd.DataFrame, marked: pd.Series) -> str:
    """The cells ``marked`` of a table's ``rows``, in words: every cell, whole columns, whole rows, or each cell."""
    if marked.all():
        return "every cell"
    for key in ("column", "row"):
        whole = [v for v in dict.fromkeys(rows.loc[marked, key]) if marked[rows[key] == v].all()]
        if set(rows.loc[marked, key]) == set(whole):
            return f"{key}{'s' if len(whole) > 1 else ''} " + ", ".join(whole)
    return "; ".join(f"{row}, {column}" for row, column in zip(rows.loc[marked, "row"], rows.loc[marked, "column"]))


def _describe(rows: pd.DataFrame) -> list[str]:
    """A table's models, data and metrics, one line each."""
    by_model = [f"{model} (rows {', '.join(dict.fromkeys(group['row']))})" if rows["model"].nunique() > 1 else model
                for model, group in rows.groupby("model", sort=False)]
    lines = ["- model: " + "; ".join(by_model)]
    datasets = [d for d in dict.fromkeys(rows["dataset"]) if d]
    if datasets:
        lines.append("- data: " + ", ".join(datasets))
    metrics = rows.drop_duplicates(["task", "metric"])
    if metrics["metric"].nunique() == 1:
        lines.append(f"- metric: {metrics['metric'].iloc[0]}")
    else:
        common = metrics["metric"].value_counts().index[0]
        special = [f"{task} {metric}" for task, metric in zip(metrics["task"], metrics["metric"]) if metric != common]
        lines.append(f"- metric: {'; '.join(special)}; the others {common}")
    return lines


def page() -> str:
    """docs/published.md: every table of ``published.csv`` as the paper prints it, with its model, data,
    metric and notes (``tests/test_published.py`` checks that the committed page is this text)."""
    data = _read()
    lines = ["# The papers' published numbers",
             "",
             "<!-- generated from fewdims_helpers/report/published.csv by `python -m fewdims_helpers.report.published > "
             "docs/published.md`; do not edit -->",
             "",
             "The tables of the two papers whose texts give tables, transcribed from the texts in the project's "
             "`shared/papers/` into `fewdims_helpers/report/published.csv` (one value a line: paper, table, row, "
             "column, model, data, setting, value as printed, metric, note). Fukuhata & Kano's texts give "
             "claims, not tables. Notebooks `06` and `07` put these numbers beside ours "
             "(`fewdims_helpers.report.published.beside`) and say in one sentence what the two sides show "
             "(`published.sentence`); each side names its model and data.",
             ""]
    for paper in PAPERS:
        lines += [f"## {PAPERS[paper].citation}", "", f"Transcribed from `{PAPERS[paper].text}`.", ""]
        for table in sorted(set(data.loc[data["paper"] == paper, "table"])):
            rows = select(paper, table)
            title, notebook = TITLES[(paper, table)]
            lines += [f"### {PAPERS[paper].short}, Table {table}", "", f"{title}. Compared in notebook `{notebook}`.", ""]
            lines += _describe(rows)
            layout = wide(paper, table)
            header = ["", *layout.columns]
            lines += ["", "| " + " | ".join(_cell(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
            for label, row in layout.iterrows():
                lines.append("| " + " | ".join(_cell(str(v)) for v in [label, *row]) + " |")
            notes = rows[rows["note"] != ""]
            if len(notes):
                lines.append("")
                for note in dict.fromkeys(notes["note"]):
                    lines.append(f"- {_where(rows, rows['note'] == note)}: {note}")
            lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(page(), end="")
