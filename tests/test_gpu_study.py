"""The pieces of the device script (``benchmarks/gpu_check.sh``) that a GPU machine without papermill, the
MiniLM weights or datasets needs, checked on a CPU: the plan reads each notebook's design without
papermill, the plain executor runs a notebook's cells as papermill would order them, and the stand-in
MiniLM gets the real weights from their pieces or random ones."""
from __future__ import annotations

import ast
import importlib.util
import json
import shutil
from pathlib import Path

import pytest

from fewdims_helpers.setup.invocation import notebook_design

REPO = Path(__file__).resolve().parent.parent


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("notebook", sorted(p.name for p in (REPO / "notebooks").glob("0*.ipynb")))
def test_the_plan_reads_each_notebooks_design_as_papermill_does(notebook):
    papermill = pytest.importorskip("papermill")
    path = REPO / "notebooks" / notebook
    expected = {}
    for name, parameter in papermill.inspect_notebook(str(path)).items():
        try:
            expected[name] = ast.literal_eval(parameter["default"])
        except (ValueError, SyntaxError):
            pass
    design = notebook_design(path)
    assert design == expected and "profile" in design


def test_the_plain_executor_injects_the_parameters_after_the_parameters_cell():
    plain = _script("plain_notebook")
    notebook = json.loads((REPO / "notebooks" / "01_token_wise.ipynb").read_text())
    cells = plain.code_cells(notebook, {"profile": "smoke", "output_dir": "/tmp/x", "options": {"device": "cpu"}})
    code = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    tags = [c.get("metadata", {}).get("tags", []) for c in code]
    first = tags.index(["parameters"])
    assert cells[first] == "".join(code[first]["source"])
    assert cells[first + 1] == "profile = 'smoke'\noutput_dir = '/tmp/x'\noptions = {'device': 'cpu'}\n"
    namespace: dict = {}
    exec(cells[first], namespace)
    exec(cells[first + 1], namespace)
    assert namespace["profile"] == "smoke" and namespace["options"] == {"device": "cpu"} and "margin" in namespace
    kept = [c for c, t in zip(code, tags) if "injected-parameters" not in t]
    assert len(cells) == len(kept) + 1  # an earlier run's injected cell is skipped
    assert cells[first + 2:] == ["".join(c["source"]) for c in kept[first + 1:]]


def test_the_stand_in_minilm_gets_its_real_weights_from_the_pieces_or_random_ones(tmp_path):
    weights = _script("gpu_weights")
    from fewdims_helpers.model.pretrained import minilm_path

    source = tmp_path / "source"
    source.mkdir()
    for name in weights.SMALL_FILES:
        shutil.copyfile(minilm_path() / name, source / name)
    config = json.loads((source / "config.json").read_text())  # a small model of the same kind, for speed
    config.update(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37)
    (source / "config.json").write_text(json.dumps(config))
    (source / weights.WEIGHTS).write_bytes(bytes(range(256)) * 41)  # stands for the real file
    root = tmp_path / "carry"
    model = weights.prepare(root, parts=3, source=source)
    assert sorted(p.name for p in (root / "weights").iterdir()) == ["part-1", "part-2", "part-3"]
    assert not (model / weights.WEIGHTS).exists()  # never carried with the package
    assert weights.fill(root) == "real"
    assert (model / weights.WEIGHTS).read_bytes() == (source / weights.WEIGHTS).read_bytes()
    (root / "weights" / "part-2").unlink()  # a piece that never arrived
    assert weights.fill(root) == weights.RANDOM_LABEL
    from transformers import AutoModel

    loaded = AutoModel.from_pretrained(model)
    assert loaded.config.num_hidden_layers == 2 and loaded.config.vocab_size == config["vocab_size"]
