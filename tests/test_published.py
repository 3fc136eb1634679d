"""The papers' published numbers (``fewdims_helpers/report/published.csv``) and ours beside them
(``fewdims_helpers.report.published``): the file loads with the right types and holds each table whole; the
tables agree with each other where the papers say they must (a typo in the transcription breaks one of
these); the beside frame names model and data on each side and computes what it shows; the sentence
prints no number the frame does not hold; docs/published.md is the page the data file generates."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fewdims_helpers.report import published

REPO = Path(__file__).resolve().parent.parent
GLUE = ["CoLA", "MRPC", "SST-2", "STS-B", "QQP", "MNLI", "QNLI", "RTE"]
OURS = ("rt-polarity", "rt-valence", "bbc-news")


# ----------------------------------------------------------------------------- the data file
def test_the_file_loads_with_its_types_and_every_table_whole():
    data = published.load()
    assert list(data.columns) == [*published.COLUMNS, "printed"]
    assert data["table"].dtype == np.int64 and data["value"].dtype == np.float64
    assert all(isinstance(p, str) and p for p in data["printed"])
    assert np.allclose(data["printed"].astype(float), data["value"])
    for column in ("paper", "row", "column", "model", "setting", "metric"):
        assert (data[column] != "").all(), column
    tables = data.groupby(["paper", "table"]).size().to_dict()
    # Zhang et al.: 8 rows x (8 tasks + Avg.), 8 x 9, 6 x 8, 45 outlier cells, 8 x 3 twice; Matton: 3 x 3, 3 x 8
    assert tables == {("matton", 2): 9, ("matton", 3): 24, ("zhang", 1): 72, ("zhang", 2): 72, ("zhang", 3): 48,
                      ("zhang", 4): 45, ("zhang", 5): 24, ("zhang", 6): 24}
    assert not data.duplicated(["paper", "table", "row", "column"]).any()
    assert set(published.TITLES) == set(tables) == set(published.COMPARISONS)
    assert published.models("zhang", 1) == ["BERT-base-cased", "RoBERTa-base"]
    # what a caller gets is a copy
    data.loc[0, "value"] = -1.0
    assert published.load().loc[0, "value"] != -1.0


def test_each_table_is_laid_out_as_the_paper_prints_it():
    table1 = published.wide("zhang", 1)
    assert list(table1.columns) == [*GLUE, "Avg."] and table1.index[0] == "BERT-Full"
    assert table1.loc["RoBERTa-Intrinsic", "RTE"] == "78.77"  # split by markup in the text
    assert table1.loc["RoBERTa-Freeze", "CoLA"] == "0.00"     # as printed, not 0.0
    table4 = published.wide("zhang", 4)
    assert list(table4.columns) == [f"layer {i}" for i in range(1, 13)]
    assert table4.loc["attention.self.key.bias", "layer 10"] == "2" and table4.loc["attention.self.key.bias", "layer 1"] == ""
    matton = published.wide("matton", 3)
    assert list(matton.index) == ["IMDB", "AG-news", "DBpedia"] and matton.loc["DBpedia", "Finetuned 1"] == "60.9"
    with pytest.raises(KeyError, match="no published table"):
        published.select("fukuhata", 1)
    with pytest.raises(KeyError, match="has no model"):
        published.select("zhang", 4, "RoBERTa-base")


def test_the_tables_agree_where_the_papers_say_they_must():
    zhang = {t: published.wide("zhang", t, printed=False) for t in (1, 2, 3, 4, 5, 6)}
    # the Avg. column is the mean of the eight tasks, to its printed rounding
    for t in (1, 2):
        assert (zhang[t][GLUE].mean(axis=1) - zhang[t]["Avg."]).abs().max() <= 0.005 + 1e-9
    # the Full rows are the same runs in Tables 1, 2 and 3
    for model in ("BERT", "RoBERTa"):
        for t in (2, 3):
            assert zhang[t].loc[f"{model}-Full", GLUE].equals(zhang[1].loc[f"{model}-Full", GLUE])
    # Table 4 counts each layer's top 10 outliers: every layer's column sums to 10
    assert zhang[4].fillna(0).sum().tolist() == [10.0] * 12
    # the ablation's dim=32 is Table 1's Intrinsic (d = 32) on every task but MNLI (d = 64 there)
    for t, model in ((5, "BERT"), (6, "RoBERTa")):
        tasks = [task for task in GLUE if task != "MNLI"]
        assert zhang[t].loc[tasks, "dim=32"].tolist() == zhang[1].loc[f"{model}-Intrinsic", tasks].tolist()
        assert zhang[t].loc["MNLI", "dim=32"] != zhang[1].loc[f"{model}-Intrinsic", "MNLI"]
    # Matton & de Oliveira: Table 3's All columns are Table 2's Pretrained and Finetuned
    two, three = published.wide("matton", 2), published.wide("matton", 3)
    assert two["Pretrained"].tolist() == three["Pretrained All"].tolist()
    assert two["Finetuned"].tolist() == three["Finetuned All"].tolist()


def test_study_07_reads_table_6_from_the_file():
    from fewdims_helpers.studies.intrinsic import ZHANG_ROBERTA_TABLE6
    from fewdims_helpers.studies.intrinsic.tables import zhang_ablation

    assert list(ZHANG_ROBERTA_TABLE6) == ["cola", "mrpc", "sst2", "stsb", "qqp", "mnli", "qnli", "rte"]
    assert ZHANG_ROBERTA_TABLE6["sst2"] == {8: 91.93, 16: 92.34, 32: 92.43}
    assert ZHANG_ROBERTA_TABLE6["rte"] == {8: 74.30, 16: 78.56, 32: 78.77}
    assert zhang_ablation(5)["stsb"] == {8: 87.95, 16: 89.02, 32: 89.51}
    assert published.task_code("STS-B") == "stsb" and published.task_code("SST-2") == "sst2"


# ----------------------------------------------------------------------------- beside ours
def our_table(rows: list[str], seed: int = 0, tasks=OURS) -> pd.DataFrame:
    """A notebook-like table: settings in rows, tasks in columns, "mean ± std" strings."""
    rng = np.random.default_rng(seed)
    cells = [[f"{rng.uniform(-5, 95):.1f} ± {rng.uniform(0, 5):.1f}" for _ in tasks] for _ in rows]
    return pd.DataFrame(cells, index=pd.Index(rows, name="setting"), columns=list(tasks))


def ours_for(paper: str, table: int, seed: int = 0) -> pd.DataFrame:
    comparison = published.COMPARISONS[(paper, table)]
    if comparison.kind == "shares":
        counts = pd.DataFrame(np.random.default_rng(seed).integers(0, 30, (4, 6)),
                              index=["intermediate.dense.weight", "output.dense.weight", "attention.self.query.weight",
                                     "attention.self.key.weight"], columns=[f"layer {i}" for i in range(1, 7)])
        counts.index.name = "component"
        return counts
    return our_table([label for _, label in comparison.rows] + ["a row the paper has not"], seed)


def test_table_1_beside_ours_names_each_side_and_computes_what_it_shows():
    ours = pd.DataFrame({"rt-polarity": ["80.0 ± 1.0", "50.0 ± 2.0", "52.0 ± 0.5", "78.0 ± 3.0"],
                         "rt-valence": ["60.0 ± 1.0", "-4.0 ± 0.6", "-2.0 ± 0.8", "40.0 ± 9.0"],
                         "bbc-news": [95.0, 30.0, 33.0, 80.0]},
                        index=pd.Index(["Full", "Freeze", "Random", "Intrinsic"], name="setting"))
    frame = published.beside("zhang", 1, ours, "minilm", OURS)
    paper, mine, rows = frame.columns
    assert "BERT-base-cased" in paper and "GLUE" in paper and "Table 1" in paper and "Avg." in paper
    assert mine.startswith("ours (minilm /") and all(task in mine for task in OURS)
    assert list(frame.index) == ["Full", "Freeze", "Random", "Intrinsic", "Intrinsic − Full", "Intrinsic − Random",
                                 "Random − Freeze"]
    assert frame[paper].tolist() == [82.13, 69.81, 72.54, 81.21, -0.92, 8.67, 2.73]
    assert frame.loc["Full", mine] == round((80 + 60 + 95) / 3, 2)
    assert frame.loc["Intrinsic − Full", mine] == round((78 + 40 + 80) / 3 - (80 + 60 + 95) / 3, 2)
    assert frame.loc["Intrinsic − Full", rows] == "Intrinsic − Full"
    text = published.sentence(frame)
    assert text.startswith("Zhang et al. report in Table 1, with BERT-base-cased on GLUE")
    assert "Intrinsic 0.92 points below Full" in text and "Intrinsic 12.33 points below Full" in text
    assert "here, with minilm on rt-polarity, rt-valence, bbc-news" in text
    roberta = published.beside("zhang", 1, ours, "minilm", OURS, "RoBERTa-base")
    assert "RoBERTa-base" in roberta.columns[0] and roberta.loc["Full", roberta.columns[0]] == 85.43
    with pytest.raises(KeyError, match="has no model"):
        published.beside("zhang", 1, ours, "minilm", OURS, "GPT-2")


def test_a_setting_or_task_we_did_not_run_is_not_measured_not_invented():
    ours = our_table(["Full", "Unified", "Zero-shot"])  # no Random row
    ours.loc["Unified", "bbc-news"] = "—"
    frame = published.beside("zhang", 2, ours, "minilm", OURS)
    mine = frame.columns[1]
    assert math.isnan(frame.loc["Random", mine]) and math.isnan(frame.loc["Unified", mine])
    assert not math.isnan(frame.loc["Full", mine])
    text = published.sentence(frame)
    assert "Unified against Full not measured" in text and "Zeroshot against Random not measured" in text
    assert "nan" not in text.lower()


def test_table_4_beside_ours_compares_shares_of_the_counted_outliers():
    counts = ours_for("zhang", 4)
    frame = published.beside("zhang", 4, counts, "minilm", OURS)
    paper, mine, _ = frame.columns
    assert "BERT-base-cased" in paper and "data not named" in paper and "minilm" in mine
    assert frame.loc["outliers counted", paper] == 120 and frame.loc["outliers counted", mine] == counts.values.sum()
    assert frame.loc["output.dense.weight", paper] == 32.5  # 39 of 120
    assert frame.drop(index="outliers counted")[mine].sum() == pytest.approx(100, abs=0.05)
    assert frame.loc["output.LayerNorm.weight", mine] == 0  # a component of the paper's we counted none in
    text = published.sentence(frame)
    assert "output.dense.weight (32.50% of 120)" in text
    # a run that counted no outliers (a smoke run's tiny model): shares are not invented
    empty = published.beside("zhang", 4, counts.iloc[:0], "tiny", ("rt-polarity",))
    assert empty.loc["outliers counted", empty.columns[1]] == 0 and empty[empty.columns[1]].iloc[:-1].isna().all()
    assert "are nowhere: none were counted" in published.sentence(empty)


@pytest.mark.parametrize("key", sorted(published.COMPARISONS), ids=lambda k: f"{k[0]}-{k[1]}")
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_sentence_prints_only_numbers_of_its_frame(key, seed):
    paper, table = key
    ours = ours_for(paper, table, seed)
    frame = published.beside(paper, table, ours, "minilm", OURS)
    text = published.sentence(frame)
    assert not unbacked(text, frame), (text, unbacked(text, frame))
    assert published.PAPERS[paper].short in text and "minilm" in text
    assert frame.attrs["beside"]["paper_model"] in text


def frame_numbers(frame: pd.DataFrame) -> set[float]:
    """The numbers a frame holds: its values (as rounded) and those its labels print."""
    found = {round(float(v), 2) for v in frame.select_dtypes("number").to_numpy().ravel() if not math.isnan(v)}
    found |= {abs(v) for v in found}
    labels = [*map(str, frame.columns), *map(str, frame.index), *map(str, frame.get("ours: row", []))]
    return found | {n for label in labels for n in published.numbers_in(label)}


def unbacked(text: str, frame: pd.DataFrame) -> list[float]:
    held = frame_numbers(frame)
    return [n for n in published.numbers_in(text) if round(n, 2) not in held]


def test_the_number_check_sees_a_planted_number():
    frame = published.beside("zhang", 1, our_table(["Full", "Freeze", "Random", "Intrinsic"]), "minilm", OURS)
    text = published.sentence(frame)
    assert unbacked(text, frame) == []
    assert unbacked(text + " About 3.14 points more.", frame) == [3.14]
    assert published.numbers_in("all-MiniLM-L6-v2 on sst2: 81.21, -0.92 and 120") == [81.21, -0.92, 120.0]


def test_matton_tables_beside_notebook_06s_table_3():
    # notebook 06's Table 3 has tasks in rows: the notebook passes it transposed
    table3 = pd.DataFrame({"natural": [2, 1, 5], "Random": ["50.4", "0.0", "24.2"], "pretrained All": ["64.3", "40.8", "91.0"],
                           "pretrained 1": ["57.2", "18.2", "32.4"], "pretrained 5": ["57.3", "22.5", "55.4"],
                           "fine-tuned All": ["74.7 ± 1.4", "65.9 ± 2.7", "93.6 ± 0.6"],
                           "fine-tuned 1": ["71.9 ± 1.0", "60.3 ± 2.6", "73.9 ± 4.1"],
                           "fine-tuned 5": ["73.1 ± 0.9", "64.5 ± 2.2", "92.0 ± 1.2"],
                           "fine-tuned natural": ["72.9 ± 0.8", "60.3 ± 2.6", "92.0 ± 1.2"]},
                          index=pd.Index(OURS, name="task"))
    frame = published.beside("matton", 3, table3.T, "minilm", OURS)
    paper, mine, _ = frame.columns
    assert "BERT-base" in paper and "IMDB, AG-news, DBpedia" in paper and "Table 3" in paper
    assert frame.loc["Finetuned 1 − Finetuned All", paper] == round((93.7 + 83.6 + 60.9) / 3 - (93.7 + 94.7 + 99.33) / 3, 2)
    assert frame.loc["Finetuned 1", mine] == round((71.9 + 60.3 + 73.9) / 3, 2)
    two = published.beside("matton", 2, table3.T, "minilm", OURS)
    assert two.loc["Finetuned − Pretrained", two.columns[0]] == round((93.7 + 94.7 + 99.33 - 88.0 - 90.4 - 99.02) / 3, 2)
    assert "SOTA" not in two.index  # no counterpart of ours
    assert not unbacked(published.sentence(frame), frame)


def test_a_frame_not_made_by_beside_has_no_sentence():
    with pytest.raises(ValueError, match="not a frame of published.beside"):
        published.sentence(pd.DataFrame({"a": [1.0]}))


# ----------------------------------------------------------------------------- the docs page
def test_the_docs_page_is_the_one_the_data_file_generates():
    committed = (REPO / "docs" / "published.md").read_text()
    assert committed == published.page(), "regenerate it: python -m fewdims_helpers.report.published > docs/published.md"


def test_the_page_prints_every_value_of_the_file_in_its_table():
    page = published.page()
    sections = page.split("\n### ")[1:]
    assert len(sections) == 8
    data = published.load()
    for section in sections:
        short, _, rest = section.partition(", Table ")
        table = int(rest.split("\n")[0])
        paper = next(key for key, p in published.PAPERS.items() if p.short == short)
        rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("|  |")]
        cells = {(r.split(" | ")[0].removeprefix("| "), i): c.strip(" |")
                 for r in rows for i, c in enumerate(r.split(" | ")[1:])}
        chosen = data[(data.paper == paper) & (data.table == table)]
        header = next(line for line in section.splitlines() if line.startswith("|  |")).split(" | ")[1:]
        header = [h.strip(" |") for h in header]
        for row, column, printed in zip(chosen["row"], chosen["column"], chosen["printed"]):
            assert cells[(row, header.index(column))] == printed, (paper, table, row, column)
