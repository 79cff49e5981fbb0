"""The import structure: one ``tunegate`` package whose layers import only downward, with no cycles.

Every import statement of the package's modules is read (module level, inside functions and under
``TYPE_CHECKING`` alike) and resolved to the package module it names. Layers, from the bottom:

    tunegate.organism                      data + model provider: imports nothing of tunegate
    tunegate.core                          plumbing (errors, files, registry, typed_config, progress, env)
    tunegate.evals.records < .stats < the rest of tunegate.evals
    tunegate.training, tunegate.reports    side by side: both on evals, neither on the other
    tunegate (cli, pipeline, pytest plugin) the app layer, free to import all of the above
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Import package -> repository folder, as pyproject.toml maps them.
PACKAGE_DIRS: dict[str, str] = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
#: Longest matching prefix -> level; a module may import its own prefix's modules or a lower level's.
LEVELS = {
    "tunegate.organism": 0,
    "tunegate.core": 1,
    "tunegate.evals.records": 2,
    "tunegate.evals.stats": 3,
    "tunegate.evals": 4,
    "tunegate.training": 5,
    "tunegate.reports": 5,
    "tunegate": 6,
}
BARE_NAMES = {folder for folder in PACKAGE_DIRS.values() if folder != "tunegate"}


def package_modules() -> dict[str, Path]:
    """Every module of the package, by its import name."""
    modules = {}
    for package, folder in PACKAGE_DIRS.items():
        for path in (ROOT / folder).rglob("*.py"):
            rel = path.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            modules[".".join([package, *parts])] = path
    return modules


MODULES = package_modules()


def imported_names(path: Path, module: str) -> list[str]:
    """The absolute module names that ``path`` imports (``from X import name`` gives X.name when that is a module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_package = path.name == "__init__.py"
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join(parts + ([node.module] if node.module else []))
            for alias in node.names:
                out.append(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
    return out


def target(name: str) -> str | None:
    """The package module an imported name resolves to (the longest known prefix), or None outside tunegate."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        candidate = ".".join(parts[:i])
        if candidate in MODULES:
            return candidate
    return None


def level_key(module: str) -> str:
    return max((k for k in LEVELS if module == k or module.startswith(k + ".")), key=len)


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        edges[module] = {t for name in imported_names(path, module) if (t := target(name)) and t != module}
    return edges


def upward_imports(edges: dict[str, set[str]]) -> list[str]:
    errors = []
    for module, targets in sorted(edges.items()):
        mine = level_key(module)
        for t in sorted(targets):
            theirs = level_key(t)
            if theirs != mine and LEVELS[theirs] >= LEVELS[mine]:
                errors.append(f"{module} imports {t}: {mine} (level {LEVELS[mine]}) may not import "
                              f"{theirs} (level {LEVELS[theirs]})")
    return errors


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_every_package_folder_has_modules() -> None:
    for package in PACKAGE_DIRS:
        assert package in MODULES, f"{package} ({PACKAGE_DIRS[package]}/__init__.py) is missing"


def test_layers_import_only_downward() -> None:
    errors = upward_imports(graph())
    assert not errors, "\n".join(errors)


def test_no_import_cycles() -> None:
    found = cycles(graph())
    assert not found, "\n".join(" <-> ".join(c) for c in found)


@pytest.mark.parametrize("folder", ["core", "evals", "training", "reports", "organism", "tunegate", "tests", "bench"])
def test_no_bare_top_level_imports(folder: str) -> None:
    """Nothing imports ``evals``/``training``/``reports``/``organism`` by their folder names."""
    bad = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        for name in imported_names(path, "x"):
            if name.split(".")[0] in BARE_NAMES:
                bad.append(f"{path.relative_to(ROOT)}: imports {name}")
    assert not bad, "\n".join(bad)


def test_the_checker_sees_an_upward_import_and_a_cycle() -> None:
    """The two checks above are not vacuous: a planted edge is reported by each."""
    edges = graph()
    edges["tunegate.evals.stats"] = edges["tunegate.evals.stats"] | {"tunegate.evals.compare"}
    assert any(e.startswith("tunegate.evals.stats imports tunegate.evals.compare") for e in upward_imports(edges))
    assert any("tunegate.evals.stats" in c and "tunegate.evals.compare" in c for c in cycles(edges))
