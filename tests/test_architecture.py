"""The package layout holds: the library never imports the CLI, module-level imports form no
cycle, and no code switches behaviour on the tiny setting's name (data says what tiny is)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from repro import paths
from repro.config.validate import read_yaml

PACKAGE = paths.ROOT / "repro"


def module_name(path: Path) -> str:
    parts = path.relative_to(paths.ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, *, top_level_only: bool) -> set[str]:
    """repro modules imported by `path` (`from repro.x import y` counts repro.x and repro.x.y)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("repro")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("repro"):
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def test_library_never_imports_the_cli():
    offenders = [
        name
        for name, path in modules().items()
        if not name.startswith("repro.cli") and name != "repro.__main__"
        and any(m == "repro.cli" or m.startswith("repro.cli.") for m in imports(path, top_level_only=False))
    ]  # fmt: skip
    assert offenders == []


def test_no_import_cycle():
    known = modules()
    # An edge to one's own ancestor package is no cycle: importing a submodule runs its parent first.
    graph = {
        name: {m for m in imports(path, top_level_only=False) if m in known and not name.startswith(m)}
        for name, path in known.items()
    }
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                return [*stack, node, nxt]
            if nxt not in state and (cycle := visit(nxt, [*stack, node])):
                return cycle
        state[node] = 2
        return None

    for name in graph:
        if name not in state:
            assert (cycle := visit(name, [])) is None, " -> ".join(cycle)


def test_no_behaviour_switch_on_the_tiny_name():
    pattern = re.compile(r"""(==|!=|\bin\b)\s*\(?\s*["']tiny["']|["']tiny["']\s*(==|!=)""")
    hits = [
        f"{path.relative_to(paths.ROOT)}:{n}"
        for path in PACKAGE.rglob("*.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert hits == []


def test_no_behaviour_switch_on_a_method_name():
    """What sets a method apart is a trait in recipes/methods.yaml (`derived`, `mismatched_pairs`)."""
    names = "|".join(re.escape(n) for n in read_yaml(paths.METHODS_FILE))
    pattern = re.compile(rf"""(==|!=|\bin\b)\s*\(?\s*["']({names})["']|["']({names})["']\s*(==|!=)""")
    hits = [
        f"{path.relative_to(paths.ROOT)}:{n}"
        for path in PACKAGE.rglob("*.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert hits == []
