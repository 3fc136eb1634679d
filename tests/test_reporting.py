"""The one aggregation over seeds: mean, sample std (ddof 1; 0 for one value) and count, NaN skipped,
the same whether called on values or through ``summarize`` on a table of runs."""
import numpy as np
import pandas as pd
import pytest

from fewdims_helpers.reporting import mean_std, summarize


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
