"""The error tree is true: every class in runner/errors.py is raised somewhere (itself or
through a subclass), and the tree drawn in its docstring names exactly those classes."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import runner
from runner import errors

ROOT = Path(runner.__file__).parent


def _error_classes() -> dict[str, type[BaseException]]:
    return {name: cls for name, cls in vars(errors).items()
            if inspect.isclass(cls) and issubclass(cls, errors.RunnerError)}


def _constructed_names() -> set[str]:
    """Names called anywhere in the package outside errors.py (`Name(...)`, `x.Name(...)`)."""
    called: set[str] = set()
    for path in ROOT.rglob("*.py"):
        if path == ROOT / "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call):
                func = node.func
                if isinstance(func, ast.Name):
                    called.add(func.id)
                elif isinstance(func, ast.Attribute):
                    called.add(func.attr)
    return called


def _all_subclasses(cls: type) -> set[type]:
    found: set[type] = set()
    for sub in cls.__subclasses__():
        found |= {sub, *_all_subclasses(sub)}
    return found


def test_every_error_class_is_raised_itself_or_through_a_subclass() -> None:
    import runner.cli.main  # noqa: F401  (imports every stage: subclasses defined elsewhere)

    called = _constructed_names()
    never = sorted(name for name, cls in _error_classes().items()
                   if not any(c.__name__ in called for c in {cls, *_all_subclasses(cls)}))
    assert never == [], f"error classes never raised: {never}"


def test_the_drawn_tree_names_every_class() -> None:
    doc = errors.__doc__ or ""
    drawn = {line.split("── ")[1].split()[0] for line in doc.splitlines() if "── " in line}
    drawn.add("RunnerError")
    assert drawn == set(_error_classes())
