"""GLUE from a local copy in the original TSV layout (``--glue-dir``), with the hub's label ids.

Files are read with quoting disabled: GLUE sentences contain unbalanced quote characters, and the
csv module's default quoting would silently merge rows. Text columns are renamed to the hub's
names (``nyu-mll/glue``) so both sources give identical datasets.
"""
from __future__ import annotations

import csv
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)
csv.field_size_limit(sys.maxsize)


class GlueFormatError(ValueError):
    """A GLUE TSV file is missing or malformed; the message names the file and line."""


@dataclass(frozen=True)
class GlueLayout:
    folder: str
    has_header: bool
    text_columns: tuple[str | int, ...]  # header names, or indices when there is no header
    label_column: str | int  # header name or index (-1: last column, MNLI)
    label_map: dict[str, int] | None  # None: integer labels as they are; {} : float (regression)
    dev_file: str = "dev.tsv"
    skip_malformed: bool = False  # QQP's original train.tsv has a few broken rows; skipped with a warning


NLI2 = {"entailment": 0, "not_entailment": 1}
GLUE_LAYOUTS: dict[str, GlueLayout] = {
    "cola": GlueLayout("CoLA", False, (3,), 1, None),
    "sst2": GlueLayout("SST-2", True, ("sentence",), "label", None),
    "mrpc": GlueLayout("MRPC", True, ("#1 String", "#2 String"), "Quality", None),
    "stsb": GlueLayout("STS-B", True, ("sentence1", "sentence2"), "score", {}),
    "qqp": GlueLayout("QQP", True, ("question1", "question2"), "is_duplicate", None, skip_malformed=True),
    "mnli": GlueLayout("MNLI", True, ("sentence1", "sentence2"), -1,
                       {"entailment": 0, "neutral": 1, "contradiction": 2}, dev_file="dev_matched.tsv"),
    "qnli": GlueLayout("QNLI", True, ("question", "sentence"), "label", NLI2),
    "rte": GlueLayout("RTE", True, ("sentence1", "sentence2"), "label", NLI2),
}


def _parse_label(raw: str, layout: GlueLayout) -> float | int:
    if layout.label_map is None:
        return int(raw)
    if layout.label_map == {}:
        return float(raw)
    return layout.label_map[raw]


def read_glue_tsv(path: Path, task: str, text_fields: tuple[str, ...]) -> dict[str, list]:
    """Columns ``text_fields`` + ``label`` of one GLUE file, as lists."""
    layout = GLUE_LAYOUTS[task]
    if not path.exists():
        raise GlueFormatError(f"GLUE file {path} not found; --glue-dir must hold {layout.folder}/train.tsv "
                              f"and {layout.folder}/{layout.dev_file} in the original GLUE layout")
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    header = rows[0] if layout.has_header else None
    body = rows[1:] if layout.has_header else rows

    def index_of(column: str | int) -> int:
        if isinstance(column, int):
            return column
        if column not in header:
            raise GlueFormatError(f"{path}: header has no column {column!r} (header: {header}); is this "
                                  f"the original GLUE {layout.folder} file?")
        return header.index(column)

    text_idx = [index_of(c) for c in layout.text_columns]
    label_idx = index_of(layout.label_column)
    width = len(header) if header is not None else 4
    columns: dict[str, list] = {name: [] for name in (*text_fields, "label")}
    skipped = 0
    for line_no, row in enumerate(body, start=2 if header is not None else 1):
        if not row:
            continue
        try:
            if len(row) != width:
                raise ValueError(f"expected {width} tab-separated fields, found {len(row)}")
            label = _parse_label(row[label_idx].strip(), layout)
        except (ValueError, KeyError, IndexError) as error:
            if layout.skip_malformed:
                skipped += 1
                continue
            raise GlueFormatError(f"{path}, line {line_no}: malformed row ({error}); the file must be the "
                                  f"original tab-separated GLUE {layout.folder} file") from None
        for name, idx in zip(text_fields, text_idx):
            columns[name].append(row[idx])
        columns["label"].append(label)
    if skipped:
        log.warning("%s: skipped %d malformed rows (known in the original QQP files)", path, skipped)
    if not columns["label"]:
        raise GlueFormatError(f"{path} holds no examples")
    return columns


def load_glue_dir(glue_dir: Path, task: str, text_fields: tuple[str, ...]) -> tuple[dict, dict]:
    """(train, dev) columns of ``task`` from a GLUE folder."""
    layout = GLUE_LAYOUTS[task]
    folder = Path(glue_dir) / layout.folder
    return (read_glue_tsv(folder / "train.tsv", task, text_fields),
            read_glue_tsv(folder / layout.dev_file, task, text_fields))
