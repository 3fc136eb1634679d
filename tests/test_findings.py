"""The README's findings come from the verdict tables, and a number not in figures/ fails the check."""
import pandas as pd

from fewdims_helpers.findings import END, START, unbacked_numbers, write_findings
from fewdims_helpers.verdicts import gather_verdicts


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
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\n{START}\nold text 99.9\n{END}\n\nafter\n")
    text = write_findings(figures, gather_verdicts(figures), readme)
    content = readme.read_text()
    assert "-4.3 [-6.0, -2.5]" in text and "does not hold" in content
    assert "old text" not in content and content.endswith("after\n")
    assert unbacked_numbers(content, figures) == []
    planted = content.replace("-4.3 [", "-3.9 [")
    assert unbacked_numbers(planted, figures) == ["-3.9"]


def test_the_readme_findings_are_the_committed_verdicts():
    from pathlib import Path

    from fewdims_helpers.findings import section

    repo = Path(__file__).resolve().parent.parent
    readme = (repo / "README.md").read_text()
    bullets = [line for line in section(readme).splitlines() if line.startswith("- ")]
    assert bullets, "README.md has no generated findings; run python run_all.py (default profile)"
    assert unbacked_numbers(readme, repo / "figures") == []


def test_the_findings_skip_a_verdict_whose_side_did_not_train(tmp_path):
    from fewdims_helpers.findings import findings_markdown

    figures = _figures(tmp_path)
    table = gather_verdicts(figures)
    invalid = table.iloc[0].to_dict() | {"a": "layer 1, full vector", "verdict": "invalid", "invalid_side": "a",
                                         "difference": -31.5}
    text = findings_markdown(pd.concat([table, pd.DataFrame([invalid])], ignore_index=True))
    assert "-4.3 [-6.0, -2.5]" in text and "1 invalid" in text
    assert "layer 1, full vector" not in text and "-31.5" not in text
