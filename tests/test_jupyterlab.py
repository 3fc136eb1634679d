"""A notebook opened in JupyterLab: executed by a kernel with no headless setting (``run_all.py`` sets
``FEWDIMS_HEADLESS=1``; JupyterLab does not), the package's progress bars are widgets (``ipywidgets``, pinned
in requirements.txt), no bar is drawn where there is nothing to count, and no warning or stderr reaches the
notebook. A notebook built here stands in for the studies, which would train runs in an empty store."""
from __future__ import annotations

import json
import os

import nbformat
import papermill
import pytest

from fewdims_helpers.terminal import HEADLESS

from conftest import REPO

WIDGET = "application/vnd.jupyter.widget-view+json"
WARNINGS = ("Warning", "IProgress not found", "ipywidgets", "Traceback")


@pytest.mark.slow  # a kernel that imports torch: about 10 s
def test_a_notebook_in_jupyterlab_draws_widget_bars_and_no_empty_bar_and_no_warning(tmp_path, monkeypatch):
    monkeypatch.delenv(HEADLESS, raising=False)  # as JupyterLab starts a kernel
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    source, target = tmp_path / "bars.ipynb", tmp_path / "bars-executed.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("from fewdims_helpers.options import RunOptions\n"
                                  "from fewdims_helpers.runs.runner import Runner\n"
                                  "from fewdims_helpers.runs.store import RunStore\n"
                                  f"runner = Runner(RunStore({str(tmp_path / 'runs')!r}), RunOptions(workers=1))"),
        nbformat.v4.new_code_cell("runner.execute_all([])  # every run in the store: no 'runs: 0it' bar"),
        nbformat.v4.new_code_cell("runner.map(abs, [], desc='nothing')  # nothing to count: no bar"),
        nbformat.v4.new_code_cell("runner.map(abs, [-1, -2, -3], desc='three')  # one widget bar")]), source)
    papermill.execute_notebook(str(source), str(target), kernel_name="python3", progress_bar=False, cwd=str(tmp_path))

    cells = nbformat.read(target, as_version=4).cells
    outputs = [[o for o in cell.get("outputs", [])] for cell in cells]
    stderr = [(i, "".join(o.get("text", ""))) for i, cell in enumerate(outputs) for o in cell if o.get("name") == "stderr"]
    assert not stderr, stderr
    text = json.dumps(outputs)
    assert not [w for w in WARNINGS if w in text], text[:2000]
    assert [sum(WIDGET in o.get("data", {}) for o in cell) for cell in outputs] == [0, 0, 0, 1]
    assert "0it" not in text
