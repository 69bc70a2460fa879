"""The layers hold: the analysis is pure, the store has no import cycle, and no module
imports another module's private (underscored) names."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("app", "collectors", "demo_services", "bench", "tests")
ANALYSIS_MODULES = sorted(
    f"app.analysis.{p.stem}" for p in (ROOT / "app" / "analysis").glob("*.py") if p.stem != "__init__"
)
FORBIDDEN_IN_ANALYSIS = ("sqlalchemy", "flask", "werkzeug", "collectors.store")


def module_name(path: Path) -> str:
    """The dotted name of a source file under ROOT (a package's ``__init__`` is the package)."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules(*packages: str) -> dict[str, Path]:
    """Dotted name to path of every module under the given top-level packages."""
    out = {}
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            out[module_name(path)] = path
    return out


ALL_MODULES = project_modules(*PACKAGES)


def imports_of(name: str, path: Path) -> list[tuple[str, str | None, int]]:
    """(module imported, name imported from it or None, line) for every import in a file,
    resolved to project modules where they are ones; conditional and function-level
    imports included (an import under TYPE_CHECKING still ties two modules)."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, None, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                if submodule in ALL_MODULES:  # ``from package import module``
                    found.append((submodule, None, node.lineno))
                else:
                    found.append((base, alias.name, node.lineno))
    return found


def import_graph(*packages: str) -> nx.DiGraph:
    """Module -> module it imports, over the project modules of the given packages."""
    modules = project_modules(*packages)
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for name, path in modules.items():
        for target, _, _ in imports_of(name, path):
            if target in modules and target != name:
                graph.add_edge(name, target)
    return graph


@pytest.mark.parametrize("module", ANALYSIS_MODULES)
def test_analysis_module_loads_no_storage_or_web_code(module: str) -> None:
    probe = (
        "import importlib, sys\n"
        f"importlib.import_module({module!r})\n"
        f"print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in ('sqlalchemy', 'flask', 'werkzeug')"
        f" or m.startswith('collectors.store'))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    loaded = done.stdout.split()
    assert loaded == [], f"importing {module} loaded {', '.join(loaded[:10])}"


def test_every_analysis_module_is_probed() -> None:
    assert len(ANALYSIS_MODULES) >= 8
    assert "app.analysis.graph" in ANALYSIS_MODULES


def test_collectors_have_no_import_cycle() -> None:
    graph = import_graph("collectors")
    assert graph.has_edge("collectors.store.core", "collectors.store.writer")  # the graph sees the store
    cycles = list(nx.simple_cycles(graph))
    assert cycles == [], "import cycles: " + "; ".join(" -> ".join([*c, c[0]]) for c in cycles[:5])


def test_app_has_no_import_cycle_and_blueprints_do_not_import_each_other() -> None:
    graph = import_graph("app", "collectors")
    cycles = list(nx.simple_cycles(graph))
    assert cycles == [], "import cycles: " + "; ".join(" -> ".join([*c, c[0]]) for c in cycles[:5])
    blueprints = {
        name for name, path in project_modules("app").items() if "Blueprint(" in path.read_text(encoding="utf-8")
    }
    assert {"app.traces", "app.services", "app.api_v1"} <= blueprints
    crossing = [(a, b) for a, b in graph.edges if a in blueprints and b in blueprints]
    assert crossing == []


def test_no_module_imports_another_modules_private_names() -> None:
    offences = []
    for name, path in ALL_MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        module_aliases = {}
        for target, imported, line in imports_of(name, path):
            if target in ALL_MODULES and target != name and imported is not None and _private(imported):
                offences.append(f"{path.relative_to(ROOT)}:{line} imports {imported} from {target}")
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in ALL_MODULES:
                        module_aliases[alias.asname or alias.name] = alias.name
            elif isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    for target, imported, _ in imports_of(name, path):
                        if imported is None and target.rpartition(".")[2] == alias.name:
                            module_aliases[alias.asname or alias.name] = target
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in module_aliases
                and _private(node.attr)
            ):
                offences.append(
                    f"{path.relative_to(ROOT)}:{node.lineno} uses {node.attr} of {module_aliases[node.value.id]}"
                )
    assert offences == []


def test_the_private_name_check_sees_an_offence() -> None:
    sample = ROOT / "collectors" / "store" / "writer.py"
    names = {imported for _, imported, _ in imports_of("collectors.store.writer", sample)}
    assert "first_line" in names  # a public name it imports, resolved like any other
    assert _private("_write") and not _private("__version__") and not _private("write")


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))
