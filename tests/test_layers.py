"""The package's layers are its folders, checked on its source. Every import counts: at module level, inside a
function, and under ``if TYPE_CHECKING:`` (an import for annotations only still ties two modules together).

The floors, from the ground up, and what each may import (besides itself):

    root      config, execution, options, paths, task_specs, terminal: plain values, no floor
    stats/    the root
    model/    the root
    data/     the root, model/
    training/ the root, stats/, model/, data/
    runs/     the root, stats/, model/, data/, training/
    report/   the root, stats/, runs/
    setup/    every floor above, never studies/
    studies/  every floor; no study imports another

Besides the floors: no import cycle at all, no module reaches into another module's private names
(``from m import _x`` or ``m._x``), only the run store's modules name the files in a run folder, each folder's
``__init__`` says in two lines what it does and what it may import (the second line names exactly the floors
above). The checks only read the package; their own test plants violations in a temporary copy."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent  # the folder holding the package
PACKAGE = ROOT / "fewdims_helpers"
STUDIES = PACKAGE / "studies"
MODULES = sorted(PACKAGE.rglob("*.py"))
ROOT_FLOOR = "root"
MAY_IMPORT: dict[str, set[str]] = {
    ROOT_FLOOR: set(),
    "stats": {ROOT_FLOOR},
    "model": {ROOT_FLOOR},
    "data": {ROOT_FLOOR, "model"},
    "training": {ROOT_FLOOR, "stats", "model", "data"},
    "runs": {ROOT_FLOOR, "stats", "model", "data", "training"},
    "report": {ROOT_FLOOR, "stats", "runs"},
    "setup": {ROOT_FLOOR, "stats", "model", "data", "training", "runs", "report"},
    "studies": {ROOT_FLOOR, "stats", "model", "data", "training", "runs", "report", "setup"},
}
TOP_LEVEL_MODULES, MODULE_LINES, RUN_ALL_LINES = 12, 400, 250
# the store's modules: the only ones that know a run folder's file names (everyone else asks RunStore)
STORE = PACKAGE / "runs"
STORE_MODULES = {"store.py", "run_files.py", "artifacts.py", "execute.py", "reference_export.py"}
# config.json is left out: a Hugging Face model folder has one too (preflight checks model folders)
RUN_FOLDER_FILES = re.compile(r"""["'](metrics\.json|head\.npz|model\.pt|subspace\.npz|trajectory/|"""
                              r"""(features|labels|predictions)-)""")


def module_name(path: Path, root: Path = ROOT) -> str:
    """``fewdims_helpers.studies.salient`` for ``root/fewdims_helpers/studies/salient.py`` (a package: its folder)."""
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _from_module(node: ast.ImportFrom, path: Path, root: Path) -> str:
    """The absolute module of ``from <module> import ...`` written in ``path``."""
    package = ".".join(path.relative_to(root).with_suffix("").parts[:-1])
    base = package.split(".")[:len(package.split(".")) - (node.level - 1)] if node.level else []
    return ".".join([*base, *([node.module] if node.module else [])])


def imports(path: Path, root: Path = ROOT) -> list[tuple[str, list[str]]]:
    """(absolute module imported, names taken from it) for every import statement of ``path``: module-level,
    function-local and under ``if TYPE_CHECKING:`` alike."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = _from_module(node, path, root)
            names = [alias.name for alias in node.names]
            package_names = [n for n in names if (root / module.replace(".", "/") / n).is_dir()
                             or (root / module.replace(".", "/") / f"{n}.py").is_file()]
            found += [(f"{module}.{name}", []) for name in package_names]  # "from .runs import store": a module
            rest = [n for n in names if n not in package_names]
            if rest or not names:
                found.append((module, rest))
    return found


def package_modules(root: Path = ROOT) -> dict[str, Path]:
    return {module_name(path, root): path for path in sorted((root / PACKAGE.name).rglob("*.py"))}


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """module -> the package modules it imports anywhere in its text (a name taken from a package resolves to
    the package's ``__init__``; the ``__init__``s of the packages on the way are not counted)."""
    modules = package_modules(root)

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    return {name: {target for imported, _ in imports(path, root) if (target := resolve(imported))} - {None}
            for name, path in modules.items()}


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module, or a module that imports itself (Tarjan)."""
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def floor_of(module: str) -> str:
    """The floor of a package module: the folder right under the package (``runs`` for
    ``fewdims_helpers.runs.store``), or ``root`` for a module at the package's top (or the package itself)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in MAY_IMPORT) else ROOT_FLOOR


def floor_violations(path: Path, root: Path = ROOT) -> list[str]:
    """'module (floor) -> imported (floor)' for each import of ``path`` that its floor may not make."""
    own = module_name(path, root)
    return [f"{own} ({floor_of(own)}) -> {target} ({floor_of(target)})" for target in sorted(import_graph(root)[own])
            if floor_of(target) != floor_of(own) and floor_of(target) not in MAY_IMPORT[floor_of(own)]]


def private_names_used(path: Path, root: Path = ROOT) -> list[str]:
    """``module._name`` for every private name of another package module that ``path`` imports (``from m import
    _x``) or reads as an attribute (``m._x``, ``pkg.m._x``, ``import pkg.m as alias; alias._x``)."""
    own, package = module_name(path, root), PACKAGE.name
    modules = package_modules(root)
    used = [f"{m}.{n}" for m, names in imports(path, root) for n in names
            if m.startswith(package) and n.startswith("_") and not n.startswith("__")]
    tree = ast.parse(path.read_text())
    aliases: dict[str, str] = {}  # local name -> the package module it is bound to
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == package:  # "import pkg.m" binds pkg, "import pkg.m as a" binds m
                    aliases[alias.asname or package] = alias.name if alias.asname else package
        elif isinstance(node, ast.ImportFrom):
            module = _from_module(node, path, root)
            aliases.update({alias.asname or alias.name: f"{module}.{alias.name}" for alias in node.names
                            if f"{module}.{alias.name}" in modules})  # "from . import m" binds a module
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            dotted = _dotted(node.value)
            if dotted is None or dotted.split(".")[0] not in aliases:
                continue
            target = ".".join([aliases[dotted.split(".")[0]], *dotted.split(".")[1:]])
            if target in modules and target != own:
                used.append(f"{target}.{node.attr}")
    return used


def _dotted(node: ast.expr) -> str | None:
    """``a.b.c`` for a chain of attribute reads on a name, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    return ".".join([node.id, *reversed(parts)]) if isinstance(node, ast.Name) else None


def is_study(module: str) -> bool:
    return module.startswith("fewdims_helpers.studies.") and module != "fewdims_helpers.studies.__init__"


def study_of(module: str) -> str:
    """The study a module belongs to: ``salient`` for ``fewdims_helpers.studies.salient.analysis`` (a study is
    a module or a package of modules under ``studies/``)."""
    return module.removeprefix("fewdims_helpers.studies.").split(".")[0]


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_each_floor_imports_only_the_floors_its_folder_may(path):
    assert floor_violations(path) == []


STUDY_MODULES = sorted(p for p in STUDIES.rglob("*.py") if p != STUDIES / "__init__.py")


@pytest.mark.parametrize("path", STUDY_MODULES, ids=lambda p: p.relative_to(STUDIES).as_posix())
def test_no_study_imports_another(path):
    own = study_of(module_name(path))
    assert not [m for m, _ in imports(path) if is_study(m) and study_of(m) != own], path


def test_no_import_cycle_at_all_function_local_and_annotation_only_imports_included():
    assert import_cycles(import_graph()) == []


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_no_module_uses_another_modules_private_names(path):
    private = private_names_used(path)
    assert not private, f"{path.name} uses private names of other modules: {private}"


@pytest.mark.parametrize("path", [p for p in MODULES if p.name not in STORE_MODULES or p.parent != STORE],
                         ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_only_the_run_store_names_run_folder_files(path):
    assert not RUN_FOLDER_FILES.search(path.read_text()), f"{path.name} names a run-folder file; use RunStore's API"


def test_at_most_twelve_modules_at_the_top_of_the_package():
    top = sorted(p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py")
    assert len(top) <= TOP_LEVEL_MODULES, top


def test_no_module_over_400_lines_and_run_all_is_the_command_line_only():
    long = {p.relative_to(PACKAGE).as_posix(): n for p in MODULES if (n := len(p.read_text().splitlines())) > MODULE_LINES}
    assert long == {}
    assert len((ROOT / "run_all.py").read_text().splitlines()) <= RUN_ALL_LINES


def test_every_folder_of_modules_is_a_package_that_a_plain_install_carries():
    # pyproject.toml finds the packages by their __init__.py: a folder without one would be left out of a wheel
    folders = {p.parent for p in MODULES}
    assert [f for f in folders if not (f / "__init__.py").is_file()] == []
    assert 'include = ["fewdims_helpers*"]' in (ROOT / "pyproject.toml").read_text()


FOLDERS = sorted(name for name in MAY_IMPORT if name != ROOT_FLOOR)


@pytest.mark.parametrize("folder", FOLDERS)
def test_each_folder_says_in_two_lines_what_it_does_and_what_it_may_import(folder):
    docstring = ast.get_docstring(ast.parse((PACKAGE / folder / "__init__.py").read_text()), clean=False) or ""
    lines = docstring.strip().splitlines()
    assert len(lines) == 2 and lines[0].split(":")[0].lower() == folder and lines[1].startswith("May import:"), lines
    said = set(re.findall(r"\b([a-z]+)/", lines[1])) | ({ROOT_FLOOR} if "root" in lines[1] else set())
    assert said == MAY_IMPORT[folder], f"{folder}/__init__.py says {sorted(said)}; the rule is {sorted(MAY_IMPORT[folder])}"


def test_the_checks_see_planted_violations(tmp_path):
    # the parser finds the relative imports of a real study
    assert [m for m, _ in imports(STUDIES / "token_wise.py") if m.startswith("fewdims_helpers")]
    # a small package with one violation of each kind, in a temporary folder (nothing is written into ours)
    planted = {
        "__init__.py": "",
        "alpha.py": "def f():\n    from . import beta  # a function-local import closes the cycle\n",
        "beta.py": "from .gamma import g\n",
        "gamma.py": "from .alpha import f\n_hidden = 1\n",
        "reader.py": ("from . import gamma\nimport fewdims_helpers.beta as b\nimport fewdims_helpers.gamma\n"
                      "x = gamma._hidden + fewdims_helpers.gamma._hidden + b._other\n"
                      "from .gamma import _hidden\nself_ok = object()._private\n"),
        "loner.py": "_own = 1\nimport fewdims_helpers.loner as me\ny = me._own\n",
        "typed.py": "from typing import TYPE_CHECKING\nfrom .hinted import h\nif TYPE_CHECKING:\n    from .hinted import H\n",
        "hinted.py": "import typing\nif typing.TYPE_CHECKING:\n    from .typed import T\nh = 1\n",
        "stats/__init__.py": "",
        "stats/low.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..runs.store import RunStore\n",
        "runs/__init__.py": "",
        "runs/store.py": "from ..stats.low import x\nclass RunStore: ...\n",
        "studies/__init__.py": "",
        "studies/planted.py": "from ..studies import salient\nfrom .cross import run\nfrom ..runs.store import _alive\n",
        "studies/salient/__init__.py": "from .tables import verdicts\n",
        "studies/salient/tables.py": "from ..cross import run\n",
    }
    for name, source in planted.items():
        (tmp_path / PACKAGE.name / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / PACKAGE.name / name).write_text(source)
    package = tmp_path / PACKAGE.name
    found = imports(package / "studies" / "planted.py", tmp_path)
    assert ("fewdims_helpers.studies.salient", []) in found and ("fewdims_helpers.studies.cross", ["run"]) in found
    assert ("fewdims_helpers.runs.store", ["_alive"]) in found
    own, other = imports(package / "studies" / "salient" / "__init__.py", tmp_path), \
        imports(package / "studies" / "salient" / "tables.py", tmp_path)
    assert [study_of(m) for m, _ in own] == ["salient"] and [study_of(m) for m, _ in other] == ["cross"]
    # every cycle, the one only an annotation closes and the one only a function-local import closes included
    assert import_cycles(import_graph(tmp_path)) == [
        ["fewdims_helpers.alpha", "fewdims_helpers.beta", "fewdims_helpers.gamma"], ["fewdims_helpers.hinted",
         "fewdims_helpers.typed"], ["fewdims_helpers.loner"], ["fewdims_helpers.runs.store", "fewdims_helpers.stats.low"]]
    # an import for annotations only still runs up the floors
    assert floor_violations(package / "stats" / "low.py", tmp_path) == [
        "fewdims_helpers.stats.low (stats) -> fewdims_helpers.runs.store (runs)"]
    assert floor_violations(package / "runs" / "store.py", tmp_path) == []
    assert sorted(private_names_used(package / "reader.py", tmp_path)) == [
        "fewdims_helpers.beta._other", "fewdims_helpers.gamma._hidden", "fewdims_helpers.gamma._hidden",
        "fewdims_helpers.gamma._hidden"]
    assert private_names_used(package / "loner.py", tmp_path) == []  # its own private names are its own
    assert not list(PACKAGE.rglob("planted*")) and not list(PACKAGE.rglob("_planted*"))
