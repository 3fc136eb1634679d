"""The README's results and docs/findings.md come from the verdict tables, and a number not in the
committed measurements (figures/, results/, benchmarks/results/) fails the check."""
import shutil
from pathlib import Path

import pandas as pd

from fewdims_helpers.report.convergence import convergence_line
from fewdims_helpers.report.findings import END, START, findings_markdown, plateau_paragraph, regeneration_status, \
    section, summary_markdown, unbacked_numbers, unbacked_prose_numbers, write_findings
from fewdims_helpers.report.tables import gather_verdicts

REPO = Path(__file__).resolve().parent.parent


def _figures(tmp_path):
    figures = tmp_path / "figures"
    figures.mkdir()
    rows = [{"study": "01", "claim": "max_norm_token matches [CLS]", "task": "rt-polarity", "a": "max_norm_token",
             "b": "cls", "difference": -4.2731, "ci_low": -6.0412, "ci_high": -2.5066, "ci90_low": -5.7,
             "ci90_high": -2.8, "margin": 2.0, "kind": "equivalent", "verdict": "does not hold", "seeds": 5,
             "examples": 2113, "paired_seeds": True}]
    pd.DataFrame(rows).to_csv(figures / "01_verdicts.csv", index=False)
    return figures


def test_generated_findings_are_backed_and_a_planted_mismatch_is_caught(tmp_path):
    figures = _figures(tmp_path)
    readme, docs = tmp_path / "README.md", tmp_path / "docs"
    docs.mkdir()
    for page in (readme, docs / "findings.md"):
        page.write_text(f"# title\n\n{START}\nold text 99.9\n{END}\n\nafter\n")
    text = write_findings(figures, gather_verdicts(figures), readme, docs)
    summary, full = readme.read_text(), (docs / "findings.md").read_text()
    assert "-4.3 [-6.0, -2.5]" in text and "-4.3 [-6.0, -2.5]" in full and (figures / "verdicts.png").exists()
    assert "| 0 hold, 1 do not hold, 0 unresolved at this power (of 1) |" in summary  # one row per study
    assert "02 Dimension-wise" in summary and "no verdicts" in summary  # a study without verdicts is listed
    for content in (summary, full):
        assert "old text" not in content and content.endswith("after\n")
    assert section(summary).strip() == summary_markdown(gather_verdicts(figures)).strip()
    assert unbacked_numbers(full, figures) == []
    planted = full.replace("-4.3 [", "-3.9 [")
    assert unbacked_numbers(planted, figures) == ["-3.9"]


def test_the_readme_and_docs_findings_are_the_committed_verdicts(tmp_path):
    for path in (REPO / "figures").glob("[0-9][0-9]_verdicts.csv"):  # gathered in a copy: the test writes nothing here
        shutil.copy(path, tmp_path / path.name)
    table = gather_verdicts(tmp_path)
    readme, full = (REPO / "README.md").read_text(), (REPO / "docs" / "findings.md").read_text()
    status = regeneration_status(REPO / "reference", REPO / "notebooks")
    plateau = plateau_paragraph(convergence_line(pd.read_csv(REPO / "figures" / "plateau.csv")))
    assert section(readme).strip() == f"{summary_markdown(table, status=status)}\n{plateau}".strip(), \
        "python run_all.py rewrites it"
    head, _, rest = findings_markdown(table).partition("\n")
    assert section(full).strip() == f"{head}\n\n{plateau}\n{rest}".strip()
    assert unbacked_numbers(readme, REPO / "figures") == [] and unbacked_numbers(full, REPO / "figures") == []


def test_the_readme_is_short_and_every_number_in_it_is_measured():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 300
    assert unbacked_prose_numbers(readme, REPO) == []
    planted = readme.replace("## How to read a verdict", "## How to read a verdict\n\nIt takes 1234.5 s.")
    assert unbacked_prose_numbers(planted, REPO) == ["1234.5"]


def test_the_findings_skip_a_verdict_whose_side_did_not_train(tmp_path):
    from fewdims_helpers.report.findings import findings_markdown

    figures = _figures(tmp_path)
    table = gather_verdicts(figures)
    invalid = table.iloc[0].to_dict() | {"a": "layer 1, full vector", "verdict": "invalid", "invalid_side": "a",
                                         "difference": -31.5}
    text = findings_markdown(pd.concat([table, pd.DataFrame([invalid])], ignore_index=True))
    assert "-4.3 [-6.0, -2.5]" in text and "1 invalid" in text
    assert "layer 1, full vector" not in text and "-31.5" not in text


def test_the_summary_says_which_studies_were_regenerated_on_their_own(tmp_path):
    """A notebook the reference records on its own (``update_notebooks``) is the current recipes'; the rest are
    marked as the earlier export's, row by row."""
    import json

    from fewdims_helpers.report.findings import CURRENT, EARLIER

    (tmp_path / "reference.json").write_text(json.dumps({"notebooks": {"03": {"runs": [], "commit": "abc"}}}))
    status = regeneration_status(tmp_path)
    assert status["03"] == CURRENT and status["01"] == EARLIER and status["07"] == EARLIER
    assert regeneration_status(tmp_path / "absent") == {code: EARLIER for code in status}
    rows = summary_markdown(pd.DataFrame(), status=status).splitlines()
    assert [row for row in rows if row.startswith("| [03")][0].endswith(f"| {CURRENT} |")
    assert [row for row in rows if row.startswith("| [01")][0].endswith(f"| {EARLIER} |")


def test_a_tally_is_backed_by_its_table_s_count_of_rows(tmp_path):
    """"All 188 verdicts" is a count of rows of verdicts.csv, not a cell of it: the checker knows each table's
    row count, and a count no table has is still caught."""
    from fewdims_helpers.report.findings import table_values

    pd.DataFrame({"x": [0.5, 0.25, 0.125]}).to_csv(tmp_path / "t.csv", index=False)
    (tmp_path / "empty.csv").write_text("")
    known = table_values(tmp_path)
    assert (0, 3.0) in known and (0, 4.0) not in known


def test_a_notebook_whose_code_changed_after_its_rendering_is_marked_in_the_summary(tmp_path):
    """A committed notebook with a code cell never executed holds the previous design's results, whatever the
    reference records: the summary says so."""
    import json

    from fewdims_helpers.report.findings import CURRENT, QUESTIONS, STALE

    (tmp_path / "reference.json").write_text(json.dumps({"notebooks": {code: {} for code in QUESTIONS}}))
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    names = {code: entry[0] for code, entry in QUESTIONS.items()}
    cell = {"cell_type": "code", "source": "x = 1", "outputs": [], "metadata": {}}
    (notebooks / f"{names['02']}.ipynb").write_text(json.dumps({"cells": [cell | {"execution_count": 1},
                                                                           cell | {"execution_count": None}]}))
    (notebooks / f"{names['03']}.ipynb").write_text(json.dumps({"cells": [cell | {"execution_count": 1}]}))
    status = regeneration_status(tmp_path, notebooks)
    assert status["02"] == STALE and status["03"] == CURRENT and status["01"] == CURRENT


def test_a_notebook_s_conclusion_says_what_its_verdicts_say_and_no_more(tmp_path):
    from fewdims_helpers.report.findings import conclusion

    table = gather_verdicts(_figures(tmp_path))
    holds = table.iloc[0].to_dict() | {"task": "bbc-news", "verdict": "holds", "loo_same": 4.0, "loo_runs": 5}
    both = pd.concat([table, pd.DataFrame([holds])], ignore_index=True)
    text = conclusion("01", both)
    assert text.startswith("**Is the [CLS] vector special?** The paper's claim: MaxPooling")
    assert "over 2 distinct comparisons (`figures/01_verdicts.csv`): 1 hold, 1 do not hold" in text
    assert "- **holds:** max_norm_token matches [CLS] (bbc-news)" in text
    assert "- **does not hold:** max_norm_token matches [CLS] (rt-polarity)" in text
    assert "- **fragile** (a leave-one-seed-out re-decision changes the verdict): max_norm_token matches [CLS] (bbc-news)" in text
    assert "unresolved" not in text.split("\n\n")[2]  # no bullet for a verdict no row has
    twice = pd.concat([both, both.iloc[:1].assign(claim="the same comparison under another name")], ignore_index=True)
    assert "over 2 distinct comparisons" in conclusion("01", twice)  # a repeated comparison counts once
    assert "No verdict was computed" in conclusion("05", None) and "No verdict" in conclusion("05", table.iloc[:0])
    assert "The claim (Zhang, Liu & Shao): fine-tuning" in conclusion("07", None)
