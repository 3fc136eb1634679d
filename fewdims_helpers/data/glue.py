"""GLUE from a local copy in the original TSV layout (``--glue-dir``), with the hub's label ids.

The real files have quirks the reader must absorb rather than fail or, worse, silently misread:

* MRPC's files begin with a UTF-8 byte-order mark (the official download script writes one), so the
  first header cell is ``\\ufeffQuality``. Every file is read as ``utf-8-sig``, which drops a leading
  BOM and reads files without one unchanged.
* Sentences contain unbalanced quote characters (MRPC rows start with ``"`` and never close it), and
  the csv module's default quoting would silently merge rows: quoting is disabled.
* The original QQP train.tsv has a few rows with the wrong number of fields (questions broken by a
  newline); they are skipped and counted in one warning. Elsewhere a malformed row is an error.
* MNLI's train.tsv has 12 columns and dev_matched.tsv 16 (five annotator labels); the label is
  ``gold_label``, never ``label1``. CoLA has no header: source, label, original mark, sentence.

Text columns are renamed to the hub's names (``nyu-mll/glue``) so both sources give identical datasets.
``missing_files`` is the cheap pre-flight check (first lines only) run before any notebook starts.
"""
from __future__ import annotations

import csv
import logging
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)
csv.field_size_limit(sys.maxsize)
ENCODING = "utf-8-sig"  # tolerates MRPC's byte-order mark; identical to utf-8 for files without one


class GlueFormatError(ValueError):
    """A GLUE TSV file is missing or malformed; the one-line message names the file and the fix."""


@dataclass(frozen=True)
class GlueLayout:
    folder: str
    has_header: bool
    text_columns: tuple[str | int, ...]  # header names, or indices when there is no header
    label_column: str | int  # header name, or index when there is no header
    label_map: dict[str, int] | None  # None: integer labels as they are; {} : float (regression)
    dev_file: str = "dev.tsv"
    skip_malformed: bool = False  # QQP's original train.tsv has a few broken rows; skipped with a warning
    width: int | None = None  # fields per row when there is no header (with one, the header's width)

    @property
    def files(self) -> tuple[str, str]:
        return "train.tsv", self.dev_file

    def fix_hint(self) -> str:
        """The one way to fix any problem with this task's files, phrased for the command line."""
        train, dev = self.files
        return (f"--glue-dir must hold {self.folder}/{train} and {self.folder}/{dev} "
                f"in the original GLUE layout")


NLI2 = {"entailment": 0, "not_entailment": 1}
GLUE_LAYOUTS: dict[str, GlueLayout] = {
    "cola": GlueLayout("CoLA", False, (3,), 1, None, width=4),  # source, label, original mark, sentence
    "sst2": GlueLayout("SST-2", True, ("sentence",), "label", None),
    "mrpc": GlueLayout("MRPC", True, ("#1 String", "#2 String"), "Quality", None),
    "stsb": GlueLayout("STS-B", True, ("sentence1", "sentence2"), "score", {}),
    "qqp": GlueLayout("QQP", True, ("question1", "question2"), "is_duplicate", None, skip_malformed=True),
    "mnli": GlueLayout("MNLI", True, ("sentence1", "sentence2"), "gold_label",  # last of 12 (train) or 16 (dev)
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


def _missing_file_error(path: Path, layout: GlueLayout) -> GlueFormatError:
    return GlueFormatError(f"GLUE file {path.absolute()} not found; {layout.fix_hint()}")


def _read_rows(path: Path, layout: GlueLayout) -> list[list[str]]:
    """All rows, split on tabs with quoting off (GLUE quotes are text, never field delimiters)."""
    if not path.is_file():
        raise _missing_file_error(path, layout)
    try:
        with open(path, encoding=ENCODING, newline="") as handle:
            return list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    except UnicodeDecodeError as error:
        raise GlueFormatError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start}); "
                              f"{layout.fix_hint()}") from None


def _header_problem(first_row: list[str], layout: GlueLayout) -> str | None:
    """What is wrong with a file's first row for ``layout`` (None: nothing), as half a message."""
    if not first_row or first_row == [""]:
        return "is empty"
    if not layout.has_header:
        if len(first_row) != layout.width:
            return (f"first line has {len(first_row)} tab-separated fields, expected {layout.width} "
                    f"(the original {layout.folder} file has no header)")
        return None
    wanted = [c for c in (*layout.text_columns, layout.label_column) if isinstance(c, str)]
    absent = [c for c in wanted if c not in first_row]
    if absent:
        return f"header lacks column(s) {absent} (header: {first_row})"
    return None


def _column_index(column: str | int, header: list[str] | None) -> int:
    return column if isinstance(column, int) else header.index(column)


def _check_row(row: list[str], width: int, label_idx: int, layout: GlueLayout) -> float | int:
    """The row's label; raises ValueError/KeyError when the row is malformed."""
    if len(row) != width:
        raise ValueError(f"expected {width} tab-separated fields, found {len(row)}")
    return _parse_label(row[label_idx].strip(), layout)


def read_glue_tsv(path: Path, task: str, text_fields: tuple[str, ...]) -> dict[str, list]:
    """Columns ``text_fields`` + ``label`` of one GLUE file, as lists."""
    layout = GLUE_LAYOUTS[task]
    path = Path(path)
    rows = _read_rows(path, layout)
    problem = _header_problem(rows[0] if rows else [], layout)
    if problem is not None:
        raise GlueFormatError(f"{path}: {problem}; {layout.fix_hint()}")
    header = rows[0] if layout.has_header else None
    body = rows[1:] if layout.has_header else rows
    text_idx = [_column_index(c, header) for c in layout.text_columns]
    label_idx = _column_index(layout.label_column, header)
    width = len(header) if header is not None else layout.width

    columns: dict[str, list] = {name: [] for name in (*text_fields, "label")}
    skipped = 0
    for line_no, row in enumerate(body, start=2 if header is not None else 1):
        if not row:
            continue
        try:
            label = _check_row(row, width, label_idx, layout)
        except (ValueError, KeyError) as error:
            if layout.skip_malformed:
                skipped += 1
                continue
            raise GlueFormatError(f"{path}, line {line_no}: malformed row ({error}); the file must be the "
                                  f"original tab-separated GLUE {layout.folder} file") from None
        for name, idx in zip(text_fields, text_idx):
            columns[name].append(row[idx])
        columns["label"].append(label)
    if skipped:
        log.warning("%s: skipped %d malformed rows (known in the original %s files)", path, skipped, layout.folder)
    if not columns["label"]:
        raise GlueFormatError(f"{path} holds no examples; {layout.fix_hint()}")
    return columns


def load_glue_dir(glue_dir: str | Path, task: str, text_fields: tuple[str, ...]) -> tuple[dict, dict]:
    """(train, dev) columns of ``task`` from a GLUE folder."""
    layout = GLUE_LAYOUTS[task]
    folder = Path(glue_dir) / layout.folder
    train, dev = layout.files
    return (read_glue_tsv(folder / train, task, text_fields),
            read_glue_tsv(folder / dev, task, text_fields))


# ---------------------------------------------------------------------------- pre-flight check
def _first_row(path: Path) -> list[str]:
    """The first line split on tabs, read alone so the check stays instant on MNLI's 400k rows."""
    with open(path, encoding=ENCODING, newline="") as handle:
        line = handle.readline().rstrip("\r\n")
    return line.split("\t") if line else []


def _file_problem(path: Path, layout: GlueLayout) -> str | None:
    if not path.is_file():
        return f"GLUE file {path} not found; {layout.fix_hint()}"
    try:
        problem = _header_problem(_first_row(path), layout)
    except UnicodeDecodeError as error:
        problem = f"not UTF-8 text ({error.reason} at byte {error.start})"
    return None if problem is None else f"{path}: {problem}; {layout.fix_hint()}"


def missing_files(glue_dir: str | Path, tasks: Iterable[str]) -> list[str]:
    """One line per problem for the GLUE ``tasks`` (non-GLUE task names are ignored): a missing folder
    or file (train.tsv and the task's dev file), or a file whose header lacks the expected columns
    (read only the first line; BOM tolerated). Empty when every file is there.

    Run before any notebook starts, so a bad ``--glue-dir`` fails in seconds, not an hour into a run.
    """
    root = Path(glue_dir).absolute()
    problems: list[str] = []
    for task in dict.fromkeys(tasks):  # each task once, in the order given
        layout = GLUE_LAYOUTS.get(task)
        if layout is None:
            continue
        folder = root / layout.folder
        if not folder.is_dir():
            problems.append(f"GLUE folder {folder} not found; {layout.fix_hint()}")
            continue
        problems.extend(p for p in (_file_problem(folder / name, layout) for name in layout.files) if p)
    return problems
