"""The one aggregation over seeds: mean, sample std (ddof 1; 0 for one value) and count, NaN skipped,
the same whether called on values or through ``summarize`` on a table of runs."""
import numpy as np
import pandas as pd
import pytest

from fewdims_helpers.report.tables import mean_std, summarize, write_table


def test_mean_std_is_the_sample_statistics_of_the_values_that_exist():
    assert mean_std([0.5, 0.7, np.nan]) == pytest.approx((0.6, np.std([0.5, 0.7], ddof=1), 2))
    assert mean_std([0.3]) == (0.3, 0.0, 1)
    mean, std, count = mean_std([np.nan])
    assert np.isnan(mean) and std == 0.0 and count == 0


def test_summarize_applies_mean_std_per_group_in_order_of_appearance():
    runs = pd.DataFrame({"task": ["b", "a", "b", "a"], "seed": [0, 0, 1, 1], "test_score": [0.9, 0.5, 0.7, np.nan]})
    table = summarize(runs, ["task"])
    assert list(table["task"]) == ["b", "a"]
    assert table.iloc[0][["mean", "std", "n"]].tolist() == pytest.approx([*mean_std([0.9, 0.7])])
    assert table.iloc[1][["mean", "std", "n"]].tolist() == [0.5, 0.0, 1]


@pytest.mark.parametrize("index", [["task"], ["task", "setting"]])
def test_a_tables_named_index_levels_are_written_as_columns(tmp_path, index):
    table = pd.DataFrame({"task": ["a", "b"], "setting": ["x", "y"], "score": [0.5, 0.25]}).set_index(index)
    csv, md = write_table(table, tmp_path / "table")
    assert list(pd.read_csv(csv).columns) == ["task", "setting", "score"]
    assert md.read_text().splitlines()[0] == "| task | setting | score |"
    unnamed = write_table(pd.DataFrame({"score": [0.5]}), tmp_path / "plain")[0]
    assert list(pd.read_csv(unnamed).columns) == ["score"]
