"""casstore's import layers: no module imports a layer above its own, and no modules import each other in a circle.

Every ``import`` and ``from … import`` in ``casstore/**.py`` is read with ``ast``
(imports inside functions count: they run; those under ``if TYPE_CHECKING:`` do
not).  A module's layer is that of the longest entry of :data:`LAYERS` that is
it or a package above it, so a new module slots in with one line there.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "casstore"

#: Bottom to top.  A module may import its own layer or lower ones.  ``casstore`` itself (the facade
#: ``__init__``) matches only exactly: a module under ``casstore`` that no other entry covers is an error.
LAYERS: dict[str, int] = {
    "casstore.errors": 0,
    "casstore.collector": 0,  # the cyclic collector paused for a write: imports nothing of casstore
    "casstore.codec": 1,
    "casstore.pack": 2,
    "casstore.store": 3,  # base, registry, backends, wrappers
    "casstore.prolly": 4,
    "casstore.model": 5,
    "casstore.sync": 6,
    "casstore.merge": 6,
    "casstore.gc": 6,
    "casstore.verify": 6,
    "casstore.archive": 6,
    "casstore.runtime": 6,
    "casstore.sqlview": 6,
    "casstore.layout": 6,
    "casstore.cli": 7,
    "casstore.server": 7,  # beside the CLI: `casstore serve` runs it
    "casstore.__main__": 7,
    "casstore": 8,  # the facade
    "casstore.testing": 8,
}

#: Upward imports tolerated, each with why; they are also left out of the circle check.
ALLOWED_UPWARD: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    line: int


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _run_time_nodes(node: ast.AST) -> Iterator[ast.AST]:
    """Every node below ``node``, except the bodies of ``if TYPE_CHECKING:`` (their ``else`` runs)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for other in child.orelse:
                yield other
                yield from _run_time_nodes(other)
            continue
        yield child
        yield from _run_time_nodes(child)


def imports_of(path: Path, root: Path, modules: set[str]) -> list[Import]:
    """The package's own modules that ``path`` imports at run time (``from pkg import mod`` names ``pkg.mod``)."""
    importer = module_name(path, root)
    is_package = path.name == "__init__.py"
    found: list[Import] = []

    def add(target: str, line: int) -> None:
        while target and target not in modules:  # ``import pkg.mod.Name``-like forms: the nearest module
            target = target.rpartition(".")[0]
        if target and target != importer:
            found.append(Import(importer, target, line))

    for node in _run_time_nodes(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = importer.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, node.module] if node.module else anchor)
            else:
                base = node.module or ""
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                add(candidate if candidate in modules else base, node.lineno)
    return found


def package_imports(root: Path, package: str) -> tuple[set[str], list[Import]]:
    files = sorted((root / package).rglob("*.py"))
    modules = {module_name(path, root) for path in files}
    return modules, [imp for path in files for imp in imports_of(path, root, modules)]


def layer_of(module: str, layers: Mapping[str, int], package: str) -> int:
    name = module
    while name:
        if name in layers and (name != package or module == package):
            return layers[name]
        name = name.rpartition(".")[0]
    raise LookupError(f"{module} has no layer: add it (or a package above it) to LAYERS in tests/test_layers.py")


def upward_imports(
    imports: list[Import], layers: Mapping[str, int], package: str, allowed: Mapping[tuple[str, str], str]
) -> list[str]:
    bad = []
    for imp in imports:
        if _allowed(imp, allowed):
            continue
        low, high = layer_of(imp.importer, layers, package), layer_of(imp.imported, layers, package)
        if high > low:
            bad.append(f"{imp.importer} (layer {low}, line {imp.line}) imports {imp.imported} (layer {high})")
    return bad


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _allowed(imp: Import, allowed: Mapping[tuple[str, str], str]) -> bool:
    return any(_within(imp.importer, a) and _within(imp.imported, b) for a, b in allowed)


def import_cycles(imports: list[Import], allowed: Mapping[tuple[str, str], str]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted; allowed edges left out."""
    graph: dict[str, set[str]] = {}
    for imp in imports:
        if not _allowed(imp, allowed):
            graph.setdefault(imp.importer, set()).add(imp.imported)
            graph.setdefault(imp.imported, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # recursion depth is bounded by the number of modules
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph[node]):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(cycles)


# ---------------------------------------------------------------- casstore itself


@functools.cache
def casstore_imports() -> tuple[set[str], list[Import]]:
    return package_imports(ROOT, PACKAGE)


def test_every_module_has_a_layer() -> None:
    modules, _ = casstore_imports()
    assert {"casstore", "casstore.errors", "casstore.model.network"} <= modules
    for module in modules:
        layer_of(module, LAYERS, PACKAGE)


def test_no_module_imports_a_higher_layer() -> None:
    _, imports = casstore_imports()
    assert upward_imports(imports, LAYERS, PACKAGE, ALLOWED_UPWARD) == []


def test_no_import_cycles_at_run_time() -> None:
    _, imports = casstore_imports()
    assert import_cycles(imports, ALLOWED_UPWARD) == []


def test_every_allowed_upward_import_still_exists() -> None:
    """An allow-list entry whose import is gone must be deleted, not left to excuse a new one."""
    _, imports = casstore_imports()
    for importer, imported in ALLOWED_UPWARD:
        assert any(_allowed(imp, {(importer, imported): ""}) for imp in imports), (importer, imported)


# ---------------------------------------------------------------- the checker, on a tiny synthetic package


def write_package(root: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


TOY_LAYERS = {"toy": 9, "toy.low": 0, "toy.mid": 1, "toy.top": 2}


@pytest.fixture
def toy(tmp_path: Path) -> Path:
    write_package(
        tmp_path,
        {
            "toy/__init__.py": "from toy import top\n",
            "toy/low.py": "import os\n",
            "toy/mid/__init__.py": "from toy.low import thing\nfrom . import helpers\n",
            "toy/mid/helpers.py": "from .. import low\n",
            "toy/top.py": (
                "from typing import TYPE_CHECKING\nfrom toy import mid\n"
                "if TYPE_CHECKING:\n    from toy.top import Never\n"
            ),
        },
    )
    return tmp_path


def test_checker_resolves_absolute_relative_and_package_imports(toy: Path) -> None:
    modules, imports = package_imports(toy, "toy")
    assert modules == {"toy", "toy.low", "toy.mid", "toy.mid.helpers", "toy.top"}
    assert {(i.importer, i.imported) for i in imports} == {
        ("toy", "toy.top"),
        ("toy.mid", "toy.low"),
        ("toy.mid", "toy.mid.helpers"),
        ("toy.mid.helpers", "toy.low"),
        ("toy.top", "toy.mid"),
    }
    assert upward_imports(imports, TOY_LAYERS, "toy", {}) == []
    assert import_cycles(imports, {}) == []


def test_checker_catches_a_planted_upward_import_inside_a_function(toy: Path) -> None:
    write_package(toy, {"toy/low.py": "def late():\n    from toy.mid import helpers\n    return helpers\n"})
    _, imports = package_imports(toy, "toy")
    assert upward_imports(imports, TOY_LAYERS, "toy", {}) == [
        "toy.low (layer 0, line 2) imports toy.mid.helpers (layer 1)"
    ]
    allowed = {("toy.low", "toy.mid"): "planted"}
    assert upward_imports(imports, TOY_LAYERS, "toy", allowed) == []


def test_checker_catches_a_planted_cycle_within_a_layer(toy: Path) -> None:
    write_package(toy, {"toy/low.py": "import toy.low2\n", "toy/low2.py": "from toy import low\n"})
    _, imports = package_imports(toy, "toy")
    assert import_cycles(imports, {}) == [["toy.low", "toy.low2"]]
    same_layer = {**TOY_LAYERS, "toy.low2": 0}
    assert upward_imports(imports, same_layer, "toy", {}) == []  # one layer: only the cycle is wrong


def test_checker_ignores_type_checking_imports_but_not_their_else(toy: Path) -> None:
    write_package(
        toy,
        {
            "toy/low.py": (
                "import typing\nif typing.TYPE_CHECKING:\n    from toy import top\nelse:\n    from toy import mid\n"
            )
        },
    )
    _, imports = package_imports(toy, "toy")
    assert upward_imports(imports, TOY_LAYERS, "toy", {}) == ["toy.low (layer 0, line 5) imports toy.mid (layer 1)"]


def test_a_module_without_a_layer_is_an_error(toy: Path) -> None:
    write_package(toy, {"toy/new.py": ""})
    modules, _ = package_imports(toy, "toy")
    with pytest.raises(LookupError, match=r"toy\.new has no layer"):
        for module in sorted(modules):
            layer_of(module, TOY_LAYERS, "toy")
