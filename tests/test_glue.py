"""The local GLUE reader absorbs the real files' quirks, and the pre-flight check names what is missing.

Fixtures: ``fixtures/glue`` (every task, synthetic rows; MRPC with the real byte-order mark) and
``fixtures/glue/quirks`` (real MRPC and RTE rows, QQP's broken rows, MNLI's two layouts; see its README).
"""
from __future__ import annotations

import csv
import io
import logging
import shutil

import pytest

from fewdims_helpers.data.glue import GLUE_LAYOUTS, GlueFormatError, load_glue_dir, missing_files, read_glue_tsv

from conftest import FIXTURES

GLUE = FIXTURES / "glue"
QUIRKS = GLUE / "quirks"
BOM = b"\xef\xbb\xbf"
PAIR = ("sentence1", "sentence2")


def _data_lines(path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8-sig").splitlines() if line]


# ---------------------------------------------------------------------------- 1. byte-order mark
def test_a_byte_order_mark_changes_nothing(tmp_path):
    """MRPC with its BOM reads exactly like the same bytes without it, and a BOM on RTE is harmless."""
    mrpc = QUIRKS / "MRPC" / "train.tsv"
    assert mrpc.read_bytes().startswith(BOM)  # the fixture keeps the official file's quirk
    (tmp_path / "mrpc.tsv").write_bytes(mrpc.read_bytes()[len(BOM):])
    assert read_glue_tsv(mrpc, "mrpc", PAIR) == read_glue_tsv(tmp_path / "mrpc.tsv", "mrpc", PAIR)

    rte = QUIRKS / "RTE" / "train.tsv"
    (tmp_path / "rte.tsv").write_bytes(BOM + rte.read_bytes())
    assert read_glue_tsv(rte, "rte", PAIR) == read_glue_tsv(tmp_path / "rte.tsv", "rte", PAIR)


def test_real_mrpc_and_rte_rows_load_with_hub_labels():
    """Rows copied from the official files load whole, labels mapped to the hub's ids."""
    mrpc_train, mrpc_dev = load_glue_dir(QUIRKS, "mrpc", PAIR)
    assert mrpc_train["label"] == [1, 0, 0, 1, 1, 1, 1]
    assert mrpc_dev["label"] == [1, 1, 0, 1]
    assert mrpc_train["sentence2"][3] == "Howard said there was always a risk of casualties."
    rte_train, rte_dev = load_glue_dir(QUIRKS, "rte", PAIR)
    assert rte_train["label"] == [1, 0, 1, 0]  # not_entailment, entailment, ...
    assert rte_dev["label"] == [1, 0, 1, 1]
    assert rte_dev["sentence2"][1] == "President Laurent Gbagbo lives in Cote d'Ivoire."


# ---------------------------------------------------------------------------- 2. QQP's broken rows
def test_qqp_broken_rows_are_skipped_and_counted_in_one_warning(caplog):
    """4 malformed rows (a question split by a newline, 5 and 7 fields) go; the 4 good rows stay."""
    path = QUIRKS / "QQP" / "train.tsv"
    with caplog.at_level(logging.WARNING, logger="fewdims_helpers.data.glue"):
        columns = read_glue_tsv(path, "qqp", ("question1", "question2"))
    assert columns["question1"] == ["How do I learn Python quickly?", 'Why do people say "break a leg?',
                                    "Is the Earth flat?", "Can cats swim?"]
    assert columns["label"] == [1, 1, 0, 0]
    warnings = [r for r in caplog.records if r.name == "fewdims_helpers.data.glue" and r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert str(path) in warnings[0].getMessage() and "skipped 4 malformed rows" in warnings[0].getMessage()


# ---------------------------------------------------------------------------- 3. MNLI's two layouts
def test_mnli_label_is_gold_label_in_12_and_16_column_files():
    """The label is ``gold_label`` (last column), not ``label1``, whose votes differ on dev rows 0 and 2."""
    train_header = _data_lines(QUIRKS / "MNLI" / "train.tsv")[0].split("\t")
    dev_header = _data_lines(QUIRKS / "MNLI" / "dev_matched.tsv")[0].split("\t")
    assert (len(train_header), len(dev_header)) == (12, 16)
    assert train_header[-1] == dev_header[-1] == "gold_label"
    train, dev = load_glue_dir(QUIRKS, "mnli", ("premise", "hypothesis"))
    assert train["label"] == [0, 2, 1]  # entailment, contradiction, neutral
    assert dev["label"] == [2, 0, 1]  # gold; label1 says neutral, entailment, entailment
    assert dev["premise"][1] == 'She wrote "yes on the form.'
    assert dev["hypothesis"][0] == "The museum is open in the evening."


# ---------------------------------------------------------------------------- 4. CoLA without header
def test_cola_first_line_is_data_not_a_header():
    """CoLA has no header: every line is an example, label from column 1, sentence from column 3."""
    path = GLUE / "CoLA" / "train.tsv"
    lines = [line.split("\t") for line in _data_lines(path)]
    columns = read_glue_tsv(path, "cola", ("sentence",))
    assert columns["sentence"] == [fields[3] for fields in lines]
    assert columns["label"] == [int(fields[1]) for fields in lines]
    assert len(columns["label"]) == 10


# ---------------------------------------------------------------------------- 5. quote characters
def test_unbalanced_quotes_neither_merge_rows_nor_lose_characters():
    """The real MRPC rows that csv's default quoting merges are read one per line, quotes kept verbatim."""
    path = QUIRKS / "MRPC" / "train.tsv"
    text = path.read_text(encoding="utf-8-sig")
    assert len(list(csv.reader(io.StringIO(text), delimiter="\t"))) < len(_data_lines(path))  # a real trap
    columns = read_glue_tsv(path, "mrpc", PAIR)
    assert len(columns["label"]) == len(_data_lines(path)) - 1
    assert columns["sentence1"][1] == '"And about eight to 10 seconds down, I hit.'
    assert columns["sentence2"][2] == "\"I've played Brazilian music, but I'm not Brazilian."
    rte = read_glue_tsv(QUIRKS / "RTE" / "train.tsv", "rte", PAIR)
    assert rte["sentence1"][0].startswith("\"That film wasn't too successful, but then 'WarGames,'")
    assert rte["sentence2"][0] == 'The film "WarGames" was shot in 1983.'


# ---------------------------------------------------------------------------- 6. a task's files missing
def test_missing_task_fails_in_one_line_with_full_path_and_fix(tmp_path, monkeypatch):
    """A --glue-dir without MRPC names the absolute missing path and says what the folder must hold."""
    shutil.copytree(QUIRKS / "RTE", tmp_path / "RTE")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(GlueFormatError) as error:
        load_glue_dir(".", "mrpc", PAIR)
    message = str(error.value)
    assert "\n" not in message
    assert str(tmp_path / "MRPC" / "train.tsv") in message
    assert "--glue-dir must hold MRPC/train.tsv and MRPC/dev.tsv in the original GLUE layout" in message


def test_a_bad_header_fails_the_reader_naming_the_column(tmp_path):
    """A file that is not the original layout fails at once, in one line, not on row 2's label."""
    (tmp_path / "train.tsv").write_text("sentence\tlabel_id\nfine\t1\n", encoding="utf-8")
    with pytest.raises(GlueFormatError, match=r"train.tsv: header lacks column\(s\) \['label'\].*--glue-dir must "
                                              r"hold SST-2/train.tsv and SST-2/dev.tsv") as error:
        read_glue_tsv(tmp_path / "train.tsv", "sst2", ("sentence",))
    assert "\n" not in str(error.value)


# ---------------------------------------------------------------------------- pre-flight check
def test_missing_files_is_empty_for_complete_folders():
    """Every fixture folder passes, BOM included; non-GLUE task names are ignored."""
    assert missing_files(GLUE, [*GLUE_LAYOUTS, "rt-polarity", "imdb"]) == []
    assert missing_files(QUIRKS, ["mrpc", "rte", "qqp", "mnli", "bbc-news"]) == []


def test_missing_files_reports_one_line_per_problem(tmp_path):
    """Missing folder, missing dev file, header without a column, headerless file of the wrong width."""
    shutil.copytree(GLUE / "SST-2", tmp_path / "SST-2")
    (tmp_path / "SST-2" / "train.tsv").write_text("sentence\tgold\nfine\t1\n", encoding="utf-8")
    (tmp_path / "RTE").mkdir()
    shutil.copy(GLUE / "RTE" / "train.tsv", tmp_path / "RTE" / "train.tsv")
    shutil.copytree(GLUE / "CoLA", tmp_path / "CoLA")
    (tmp_path / "CoLA" / "dev.tsv").write_text("index\tsentence\n0\tA test-set header.\n", encoding="utf-8")

    problems = missing_files(tmp_path, ["mrpc", "rte", "sst2", "cola", "rte", "imdb"])
    expected = [(tmp_path / "MRPC", "not found; --glue-dir must hold MRPC/train.tsv and MRPC/dev.tsv"),
                (tmp_path / "RTE" / "dev.tsv", "not found; --glue-dir must hold RTE/train.tsv and RTE/dev.tsv"),
                (tmp_path / "SST-2" / "train.tsv", "header lacks column(s) ['label']"),
                (tmp_path / "CoLA" / "dev.tsv", "first line has 2 tab-separated fields, expected 4")]
    assert len(problems) == len(expected)
    for problem, (path, what) in zip(problems, expected):
        assert "\n" not in problem and str(path) in problem and what in problem
        assert "in the original GLUE layout" in problem


def test_missing_files_reads_only_the_header(tmp_path):
    """The pre-flight check looks at first lines only: a broken body is left for the reader to report."""
    shutil.copytree(GLUE / "RTE", tmp_path / "RTE")
    with open(tmp_path / "RTE" / "train.tsv", "a", encoding="utf-8") as handle:
        handle.write("99\tonly two fields\n")
    assert missing_files(tmp_path, ["rte"]) == []
    with pytest.raises(GlueFormatError, match="malformed row"):
        load_glue_dir(tmp_path, "rte", PAIR)
