"""A plain install is complete: ``pip install .`` without ``-e`` puts every module of the package (its
subpackages included) where Python finds it, and every module a notebook imports loads from there. The
editable install the developers use hides a missing subpackage, so the check installs into a fresh folder."""
from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "fewdims_helpers"
DATA_FILES = ("fewdims_helpers/report/published.csv",)  # package data (pyproject.toml's [tool.setuptools.package-data])


def notebook_imports() -> set[str]:
    """Every ``fewdims_helpers`` module the committed notebooks and run_all.py import."""
    sources = [REPO / "run_all.py"]
    found = set()
    for path in sorted((REPO / "notebooks").glob("*.ipynb")) + sources:
        if path.suffix == ".ipynb":
            cells = json.loads(path.read_text())["cells"]
            code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
        else:
            code = [path.read_text()]
        for text in code:
            text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith(("%", "!")))
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, ast.Import):
                    found |= {a.name for a in node.names if a.name.startswith("fewdims_helpers")}
                elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("fewdims_helpers"):
                    for alias in node.names:
                        submodule = PACKAGE.parent / f"{node.module}.{alias.name}".replace(".", "/")
                        is_module = submodule.with_suffix(".py").is_file() or submodule.is_dir()
                        found.add(f"{node.module}.{alias.name}" if is_module else node.module)
    return found


@pytest.mark.slow  # pip install into a folder, then imports from it
def test_a_plain_install_holds_every_module_and_the_notebooks_import_from_it(tmp_path):
    # build from a copy, so that no build/ or egg-info folder is written into the checkout (nor a stale
    # build/lib from an earlier build hides a missing subpackage)
    source = tmp_path / "source"
    source.mkdir()
    shutil.copy(REPO / "pyproject.toml", source)
    shutil.copytree(PACKAGE, source / PACKAGE.name, ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--no-cache-dir", "--target", str(target), str(source)],
                   check=True, capture_output=True, text=True, timeout=300)

    expected = {p.relative_to(REPO).as_posix() for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts}
    installed = {p.relative_to(target).as_posix() for p in (target / PACKAGE.name).rglob("*.py")}
    assert expected - installed == set(), f"missing from a plain install: {sorted(expected - installed)}"
    # the data the package reads (importlib.resources) is installed beside its modules, byte for byte
    for data in DATA_FILES:
        assert (target / data).is_file(), f"{data} is missing from a plain install (pyproject.toml's package-data)"
        assert (target / data).read_bytes() == (REPO / data).read_bytes()

    modules = sorted(notebook_imports())
    assert "fewdims_helpers.studies.token_wise" in modules  # the parser sees the notebooks' study imports
    assert "fewdims_helpers.report.published" in modules  # notebook 07 reads the published numbers
    probe = ("import importlib, json, sys\n"
             f"loaded = {{m: importlib.import_module(m).__file__ for m in {modules!r}}}\n"
             "from fewdims_helpers.report import published\n"  # the installed data file is the one it reads
             "loaded['published.csv rows'] = str(len(published.load()))\n"
             "print(json.dumps(loaded))\n")
    # the target first on the path: it wins over the editable install's finder, which comes after it
    environment = {**os.environ, "PYTHONPATH": str(target)}
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=environment,
                            cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    rows = int(loaded.pop("published.csv rows"))
    assert rows == len((REPO / "fewdims_helpers" / "report" / "published.csv").read_text().splitlines()) - 1
    assert all(Path(file).is_relative_to(target) for file in loaded.values()), loaded
