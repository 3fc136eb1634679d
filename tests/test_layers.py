"""The package's layers, checked on its source: core modules never import the studies, no study imports
another, no two modules import each other (directly or round a cycle, function-local imports included), no
module reaches into another module's private names (``from m import _x`` or ``m._x``), and only the run
store's modules know the names of the files in a run folder. The checks only read the package; their own
test plants violations in a temporary copy."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent  # the folder holding the package
PACKAGE = ROOT / "fewdims_helpers"
STUDIES = PACKAGE / "studies"
MODULES = sorted(PACKAGE.rglob("*.py"))
# the store layer: the only modules that know a run folder's file names (everyone else asks RunStore)
STORE = PACKAGE / "runs"
STORE_MODULES = {"store.py", "run_files.py", "artifacts.py", "runner.py", "reference_export.py"}
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


def type_checking_imports(tree: ast.Module) -> set[ast.AST]:
    """The import statements under ``if TYPE_CHECKING:`` (for annotations only: never run)."""
    return {inner for node in ast.walk(tree) if isinstance(node, ast.If)
            and (getattr(node.test, "id", None) == "TYPE_CHECKING" or getattr(node.test, "attr", None) == "TYPE_CHECKING")
            for statement in node.body for inner in ast.walk(statement) if isinstance(inner, (ast.Import, ast.ImportFrom))}


def imports(path: Path, root: Path = ROOT, at_run_time: bool = False) -> list[tuple[str, list[str]]]:
    """(absolute module imported, names taken from it) for every import statement of ``path``, function-local
    ones included (``at_run_time``: leaving out those under ``if TYPE_CHECKING:``, which never run)."""
    found = []
    tree = ast.parse(path.read_text())
    skipped = type_checking_imports(tree) if at_run_time else set()
    for node in ast.walk(tree):
        if node in skipped:
            continue
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = _from_module(node, path, root)
            names = [alias.name for alias in node.names]
            if (root / module.replace(".", "/")).is_dir():  # "from .studies import x": x is a module
                found += [(f"{module}.{name}", []) for name in names]
            else:
                found.append((module, names))
    return found


def package_modules(root: Path = ROOT) -> dict[str, Path]:
    return {module_name(path, root): path for path in sorted((root / PACKAGE.name).rglob("*.py"))}


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """module -> the package modules it imports anywhere in its text when it runs (a name taken from a package
    resolves to the package's ``__init__``; an import for annotations only, under ``if TYPE_CHECKING:``, is no
    edge)."""
    modules = package_modules(root)

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    return {name: {target for imported, _ in imports(path, root, at_run_time=True) if (target := resolve(imported))} - {None}
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


@pytest.mark.parametrize("path", [p for p in MODULES if STUDIES not in p.parents],
                         ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_core_modules_never_import_the_studies(path):
    assert not [m for m, _ in imports(path) if m.startswith("fewdims_helpers.studies")], path


STUDY_MODULES = sorted(p for p in STUDIES.rglob("*.py") if p != STUDIES / "__init__.py")


@pytest.mark.parametrize("path", STUDY_MODULES, ids=lambda p: p.relative_to(STUDIES).as_posix())
def test_no_study_imports_another(path):
    own = study_of(module_name(path))
    assert not [m for m, _ in imports(path) if is_study(m) and study_of(m) != own], path


def test_no_import_cycle_even_through_function_local_imports():
    assert import_cycles(import_graph()) == []


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_no_module_uses_another_modules_private_names(path):
    private = private_names_used(path)
    assert not private, f"{path.name} uses private names of other modules: {private}"


@pytest.mark.parametrize("path", [p for p in MODULES if p.name not in STORE_MODULES or p.parent != STORE],
                         ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_only_the_run_store_names_run_folder_files(path):
    assert not RUN_FOLDER_FILES.search(path.read_text()), f"{path.name} names a run-folder file; use RunStore's API"


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
        "studies/__init__.py": "",
        "studies/planted.py": "from ..studies import salient\nfrom .cross import run\nfrom ..store import _alive\n",
        "studies/salient/__init__.py": "from .tables import verdicts\n",
        "studies/salient/tables.py": "from ..cross import run\n",
    }
    for name, source in planted.items():
        (tmp_path / PACKAGE.name / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / PACKAGE.name / name).write_text(source)
    package = tmp_path / PACKAGE.name
    found = imports(package / "studies" / "planted.py", tmp_path)
    assert ("fewdims_helpers.studies.salient", []) in found and ("fewdims_helpers.studies.cross", ["run"]) in found
    assert ("fewdims_helpers.store", ["_alive"]) in found
    own, other = imports(package / "studies" / "salient" / "__init__.py", tmp_path), \
        imports(package / "studies" / "salient" / "tables.py", tmp_path)
    assert [study_of(m) for m, _ in own] == ["salient"] and [study_of(m) for m, _ in other] == ["cross"]
    assert import_cycles(import_graph(tmp_path)) == [["fewdims_helpers.alpha", "fewdims_helpers.beta",
                                                      "fewdims_helpers.gamma"], ["fewdims_helpers.loner"]]
    assert sorted(private_names_used(package / "reader.py", tmp_path)) == [
        "fewdims_helpers.beta._other", "fewdims_helpers.gamma._hidden", "fewdims_helpers.gamma._hidden",
        "fewdims_helpers.gamma._hidden"]
    assert private_names_used(package / "loner.py", tmp_path) == []  # its own private names are its own
    assert not list(PACKAGE.rglob("planted*")) and not list(PACKAGE.rglob("_planted*"))
