"""The project's imports run one way and form no cycle.

The graph is read from the source with `ast`, so an import hidden inside a function counts the
same as one at the top of a module: a cycle moved into a function body is still a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("strategies", "venues", "data", "backtests", "live")
# strategies/ at the bottom; venues/ and data/ above it; backtests/ and live/ above those.
# A module may import only from its own layer or a lower one.
LAYER = {"strategies": 0, "venues": 1, "data": 1, "backtests": 2, "live": 2}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _source_files() -> dict[str, Path]:
    files: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            files[_module_name(path)] = path
    return files


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    # A package's own __init__ is its level-1 anchor; a plain module's anchor is its parent.
    drop = node.level - 1 if is_package else node.level
    base = base[: len(base) - drop] if drop else base
    return ".".join(base + ([node.module] if node.module else []))


def _imported(module: str, path: Path, known: set[str]) -> set[str]:
    """Every first-party module `module` imports, at any depth of its body."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    found: set[str] = set()

    def add(name: str) -> None:
        # `import a.b.c` depends on the deepest known module of that dotted name.
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name and name != module:
            found.add(name)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, is_package, node)
            for alias in node.names:
                # `from pkg import mod` imports a submodule when one of that name exists.
                submodule = f"{target}.{alias.name}"
                add(submodule if submodule in known else target)
    return found


def _graph() -> dict[str, set[str]]:
    files = _source_files()
    known = set(files)
    return {name: _imported(name, path, known) for name, path in files.items()}


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a closed path of module names, or None."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_cycle_finder_reports_a_cycle_it_is_given():
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


def test_a_function_level_import_is_part_of_the_graph(tmp_path):
    path = tmp_path / "m.py"
    path.write_text("def f():\n    from .other import thing\n", encoding="utf-8")
    node = ast.parse(path.read_text()).body[0].body[0]
    assert _resolve("pkg.m", False, node) == "pkg.other"
    assert _imported("pkg.m", path, {"pkg.m", "pkg.other"}) == {"pkg.other"}


def test_the_first_party_modules_import_no_cycle():
    cycle = _find_cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_imports_run_from_the_cli_down_to_the_strategy():
    wrong = []
    for module, targets in _graph().items():
        layer = LAYER[module.split(".")[0]]
        for target in sorted(targets):
            top = target.split(".")[0]
            if LAYER[top] > layer:
                wrong.append(f"{module} imports {target}")
    assert not wrong, "imports against the layering:\n" + "\n".join(wrong)


def _test_files() -> list[Path]:
    return sorted((ROOT / "tests").glob("test_*.py"))


@pytest.mark.parametrize("path", _test_files(), ids=lambda p: p.name)
def test_no_test_file_imports_another(path):
    test_modules = {f"tests.{p.stem}" for p in _test_files()} | {p.stem for p in _test_files()}
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    wrong = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            package = node.module if node.level == 0 else ".".join(filter(None, ["tests", node.module]))
            # `from tests import test_x` names the test module as an alias, not as the module
            names = [package] + [f"{package}.{alias.name}" for alias in node.names]
        wrong += [f"line {node.lineno}: {n}" for n in names if n in test_modules]
    assert not wrong, f"{path.name} imports another test file: " + ", ".join(wrong)
