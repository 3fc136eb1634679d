"""Layer-wise invariants: the paper's statement is read off the verdicts, not typed in."""
import numpy as np
import pandas as pd

from fewdims_helpers.studies.layer_wise import FULL, paper_statement
from fewdims_helpers.verdicts import Outcomes, compare, verdict_row


def layer_table(gaps: dict[int, float], n: int = 2000, seeds: int = 5) -> pd.DataFrame:
    """Verdict rows of layers 1..3 against layer 4 whose accuracy is ``gaps[layer]`` points lower."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, n)

    draws = rng.random((seeds, n))  # the same draws on every layer: a gap of 0 is the top layer's predictions

    def outcomes(gap: float) -> Outcomes:
        wrong = draws < 0.2 + gap / 100
        return Outcomes(np.where(wrong, 1 - labels, labels), labels, np.arange(n), tuple(range(seeds)), "accuracy")
    top = outcomes(0.0)
    return pd.DataFrame([verdict_row("03", "as good", "t", f"layer {layer}", "layer 4",
                                     compare(outcomes(gap), top, "equivalent", 2.0), layer=layer,
                                     variant=FULL) for layer, gap in gaps.items()])


def test_lower_layers_contribute_less_and_higher_layers_differ_little_when_the_verdicts_say_so():
    line = paper_statement(layer_table({1: 15.0, 2: 8.0, 3: 0.0}), top=4)
    assert "contribute less (layer 1 vs top" in line and "]): holds; higher layers differ little" in line
    assert line.split("differ little")[1].split(":")[1].strip().startswith("holds")
    assert "layers shown as good as the top: [3]" in line


def test_the_statement_does_not_hold_when_layer_one_is_as_good_as_the_top():
    line = paper_statement(layer_table({1: 0.0, 2: 0.0, 3: 15.0}), top=4)
    assert "]): does not hold; higher layers differ little" in line
    assert line.split("differ little")[1].split(":")[1].strip().startswith("does not hold")
