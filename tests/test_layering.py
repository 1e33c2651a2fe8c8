"""The package's layering, computed from the code's own imports.

Stages are ordered bottom to top (docs/architecture.md). A module may import
from its own stage and from stages below it, never from a stage above; no two
modules import each other, directly or round a longer loop; and the core (every
stage below `progress`) never writes to the terminal: the CLI owns all output.
Imports inside functions count too: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "runner"

# Bottom to top. `errors` is the one exception tree every stage may use.
STAGES = ["errors", "catalog", "store", "audio", "text", "schemas", "manifest", "plan",
          "providers", "engine", "team", "progress", "report", "sandbox", "cli"]
# Not part of the pipeline: `runner.testing` serves tests only, `__main__` is `python -m runner`.
OUTSIDE = {"testing", "__main__", "__init__"}
CORE = set(STAGES[:STAGES.index("progress")])


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, ast.Module]:
    return {module_name(p): ast.parse(p.read_text(encoding="utf-8"), str(p))
            for p in sorted(PACKAGE.rglob("*.py"))}


def imported(tree: ast.Module, known: set[str]) -> Iterator[tuple[str, int]]:
    """Every runner module this tree imports, with the line that imports it."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if name in known:
                yield name, node.lineno


def stage_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def dependency_graph() -> dict[str, set[str]]:
    trees = modules()
    graph: dict[str, set[str]] = defaultdict(set)
    for name, tree in trees.items():
        for target, _ in imported(tree, set(trees)):
            # Importing a submodule runs its package's __init__: that edge is implied,
            # not a dependency of the importer on its own ancestors.
            if target != name and not name.startswith(target + "."):
                graph[name].add(target)
    return graph


def test_every_stage_is_known() -> None:
    stages = {stage_of(name) for name in modules()} - OUTSIDE - {"errors"}
    assert stages <= set(STAGES), f"stages not in the order: {sorted(stages - set(STAGES))}"


def test_no_module_imports_from_a_stage_above_it() -> None:
    trees = modules()
    upward = []
    for name, tree in trees.items():
        own = stage_of(name)
        if own in OUTSIDE:
            continue
        for target, line in imported(tree, set(trees)):
            other = stage_of(target)
            if other in OUTSIDE or other == own:
                continue
            if STAGES.index(other) > STAGES.index(own):
                upward.append(f"{name}:{line} ({own}) imports {target} ({other})")
    assert not upward, "\n".join(upward)


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iteratively: the loops of the import graph."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    loops: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    loop = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        loop.append(member)
                        if member == node:
                            break
                    if len(loop) > 1:
                        loops.append(sorted(loop))
    return loops


def test_no_import_cycles() -> None:
    loops = strongly_connected(dependency_graph())
    assert not loops, "import cycles:\n" + "\n".join(" -> ".join(loop) for loop in loops)


def test_the_cycle_finder_finds_a_cycle() -> None:
    # The check above must be able to fail.
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def writes_to_terminal(tree: ast.Module) -> Iterator[int]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and node.func.id in {"print", "input"}:
            yield node.lineno
        if isinstance(node, ast.Attribute) and node.attr in {"stdout", "stderr"} \
                and isinstance(node.value, ast.Name) and node.value.id == "sys":
            yield node.lineno


@pytest.mark.parametrize("stage", sorted(CORE))
def test_the_core_never_prints(stage: str) -> None:
    found = [f"{name}:{line}" for name, tree in modules().items()
             if stage_of(name) == stage for line in writes_to_terminal(tree)]
    assert not found, f"terminal output outside the CLI: {found}"
