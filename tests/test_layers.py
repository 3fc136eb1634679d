"""The package's layers, checked on its source: core modules never import the studies, no study imports
another, no module reaches into another module's private names, and only the run store knows the
names of the files in a run folder."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "fewdims_helpers"
STUDIES = PACKAGE / "studies"
MODULES = sorted(PACKAGE.rglob("*.py"))
# config.json is left out: a Hugging Face model folder has one too (preflight checks model folders)
RUN_FOLDER_FILES = re.compile(r"""["'](metrics\.json|head\.npz|model\.pt|subspace\.npz|trajectory/|"""
                              r"""(features|labels|predictions)-)""")


def imports(path: Path) -> list[tuple[str, list[str]]]:
    """(absolute module imported, names taken from it) for every import statement of ``path``."""
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - (node.level - 1)] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            names = [alias.name for alias in node.names]
            if (PACKAGE.parent / module.replace(".", "/")).is_dir():  # "from .studies import x": x is a module
                found += [(f"{module}.{name}", []) for name in names]
            else:
                found.append((module, names))
    return found


def is_study(module: str) -> bool:
    return module.startswith("fewdims_helpers.studies.") and module != "fewdims_helpers.studies.__init__"


@pytest.mark.parametrize("path", [p for p in MODULES if STUDIES not in p.parents], ids=lambda p: p.name)
def test_core_modules_never_import_the_studies(path):
    assert not [m for m, _ in imports(path) if m.startswith("fewdims_helpers.studies")], path


@pytest.mark.parametrize("path", sorted(STUDIES.glob("[!_]*.py")), ids=lambda p: p.name)
def test_no_study_imports_another(path):
    assert not [m for m, _ in imports(path) if is_study(m)], path


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_no_module_imports_another_modules_private_names(path):
    private = [(m, n) for m, names in imports(path) for n in names if m.startswith("fewdims_helpers")
               and n.startswith("_") and not n.startswith("__")]
    assert not private, f"{path.name} imports private names {private}"


@pytest.mark.parametrize("path", [p for p in MODULES if p.name != "store.py"], ids=lambda p: p.name)
def test_only_the_run_store_names_run_folder_files(path):
    assert not RUN_FOLDER_FILES.search(path.read_text()), f"{path.name} names a run-folder file; use RunStore's API"


def test_the_check_sees_a_planted_violation(tmp_path):
    planted = PACKAGE / "studies" / "token_wise.py"
    assert [m for m, _ in imports(planted) if m.startswith("fewdims_helpers")]  # the parser finds relative imports
    source = "from ..studies import salient\nfrom .cross import run\nfrom ..store import _alive\n"
    fake = STUDIES / "_planted_check.py"
    try:
        fake.write_text(source)
        found = imports(fake)
    finally:
        fake.unlink()
    assert ("fewdims_helpers.studies.salient", []) in found and ("fewdims_helpers.studies.cross", ["run"]) in found
    assert ("fewdims_helpers.store", ["_alive"]) in found
