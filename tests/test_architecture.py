"""The invariants ARCHITECTURE.md states about the code itself: no import cycle (imports inside functions
count), no module over about 450 lines, and the stages' nouns free of the heavy libraries."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "bncheck"
GENERATED = {"bncheck.readers.proto.tf_subset_pb2"}
MAX_LINES = 450


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The bncheck modules ``name`` imports anywhere in its code (a package's own parents excepted)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            module = f"{base}.{node.module}" if node.level and node.module else (node.module or base)
            targets.add(module)
            targets |= {f"{module}.{alias.name}" for alias in node.names}
    return {t for t in targets if t in known and t != name and not name.startswith(f"{t}.")}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, set(modules)) for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph``, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (found := visit(target)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycle() -> None:
    assert _cycle(_graph()) is None, " -> ".join(_cycle(_graph()) or [])


def test_the_cycle_finder_finds_cycles() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_the_import_graph_sees_function_level_imports() -> None:
    graph = _graph()
    assert "bncheck.readers.metagraph" in graph["bncheck.readers"]  # imported inside _with_graph
    assert "bncheck.rules" in graph["bncheck.config"]  # inside Settings.runnable


def test_no_module_is_over_450_lines() -> None:
    long = {
        name: lines
        for name, path in _modules().items()
        if name not in GENERATED and (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not long


def test_help_and_the_nouns_import_no_numpy() -> None:
    probe = (
        "import runpy, sys\n"
        "sys.argv = ['bncheck', '--help']\n"
        "try:\n    runpy.run_module('bncheck', run_name='__main__')\nexcept SystemExit:\n    pass\n"
        "import bncheck.facts, bncheck.layers, bncheck.findings, bncheck.report, bncheck.deltas, bncheck.outcome\n"
        "import bncheck.config, bncheck.render\n"
        "print('HEAVY', sorted(m for m in sys.modules if m.split('.')[0] in ('numpy', 'rich', 'google', 'h5py')))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert "Usage: bncheck" in out and "HEAVY []" in out, out
