"""The prose tells the truth about the repository it is in.

Comments, docstrings, README.md, docs/ and the transcribed provider documents in
schemas/openapi/ name files, modules, options, environment variables, sections
and exit codes. Each check here reads that prose and asks the repository (its
files, its imports, its argument parser, its string constants) whether the thing
named exists, so that prose stays true as code moves.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import io
import re
import tokenize
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

from runner.cli.exitcodes import ExitCode
from runner.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[1]
TOP_DIRS = ("runner", "tests", "docs", "bench", "schemas", "pipelines")
# Modules that the reshape of issue 15 renamed or dissolved: a name of theirs in prose
# points at code that is no longer there (`narration`, also a manifest key, is left out).
GONE_MODULES = ("review_file", "audioformat", "audioparse", "audiodecode", "postprocess_run",
                "pipeline_schema", "fastschema", "schema_build", "yamlsource", "execute",
                "results", "progress_plain", "progress_state", "report_audio", "report_page",
                "report_static", "report_cli", "review_cli", "views", "cache_cli")


def _python_prose(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every comment and docstring of a Python file."""
    source = path.read_text(encoding="utf-8")
    found = [(tok.start[0], tok.string)
             for tok in tokenize.generate_tokens(io.StringIO(source).readline)
             if tok.type == tokenize.COMMENT]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=False)
            if doc is not None:
                found.append((node.body[0].lineno, doc))
    return found


def _python_files(*folders: str) -> list[Path]:
    return [p for folder in folders for p in sorted((ROOT / folder).rglob("*.py"))]


def _documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
            *sorted((ROOT / "schemas" / "openapi").rglob("*.yaml"))]


@cache
def prose() -> list[tuple[Path, int, str]]:
    """Every piece of prose: (file, first line, text), whole documents and the comments
    and docstrings of code. A comment continued over lines reads as one line."""
    pieces = [(p, 1, p.read_text(encoding="utf-8")) for p in _documents()]
    pieces += [(ROOT / name, 1, "\n".join(line for line in (ROOT / name).read_text().splitlines()
                                           if line.lstrip().startswith("#")))
               for name in ("pyproject.toml", ".ci/run")]
    for path in _python_files("runner", "tests", "bench", "pipelines"):
        pieces += [(path, line, text) for line, text in _python_prose(path)]
    return pieces


def _joined(text: str) -> str:
    """Line breaks (and a comment's `#` after one) read as a space."""
    return re.sub(r"\s*\n\s*(?:#\s*)?", " ", text)


def _where(path: Path, line: int, text: str, offset: int) -> str:
    return f"{path.relative_to(ROOT)}:{line + text.count(chr(10), 0, offset)}"


def _found(pattern: str) -> Iterator[tuple[str, re.Match[str]]]:
    """Where the prose (this file's own apart: it spells the patterns) matches."""
    for path, line, text in prose():
        if path == Path(__file__).resolve():
            continue
        for match in re.finditer(pattern, text):
            yield _where(path, line, text, match.start()), match


# --- files ------------------------------------------------------------------------------

def test_no_citation_of_files_outside_the_repository() -> None:
    """A clone has no ../shared/ folder: the provider facts live in docs/providers.md."""
    outside = r"FACTS(?:\.md| §)|provider-docs|\.\./shared/|/work/|\b(?:DESIGN|STYLE)\.md\b"
    cited = [f"{where}: {m.group(0)}" for where, m in _found(outside)]
    assert not cited, "\n".join(cited)


def _repo_file_names() -> set[str]:
    return {p.name for p in ROOT.rglob("*") if not {".git", ".venv"} & set(p.parts)}


def test_paths_named_in_prose_exist() -> None:
    """`runner/x.py`, `docs/y.md`, `engine/job.py` (under runner/ or tests/) and bare
    `name.py` exist. Paths of other repositories are written `owner/repo:path`."""
    names = _repo_file_names()
    subdirs = {p.name for top in ("runner", "tests") for p in (ROOT / top).iterdir()
               if p.is_dir()}
    missing = []
    for where, match in _found(r"(?<![\w./:~-])((?:[\w-]+/)*[\w-]+\.(?:py|md))\b"):
        ref = match.group(1)
        first = ref.split("/")[0]
        if "/" not in ref:
            ok = ref in names
        elif first in TOP_DIRS or first in subdirs:
            # `schemas/pipeline.py` in a table of runner/'s folders is runner/schemas/...
            ok = any((base / ref).exists() for base in (ROOT, ROOT / "runner", ROOT / "tests"))
        else:
            continue  # a path inside some other project (a provider's SDK, a URL's tail)
        if not ok:
            missing.append(f"{where}: {ref}")
    assert not missing, "\n".join(missing)


def test_no_module_names_from_before_the_reshape() -> None:
    pattern = r"(?<![\w./-])(?:" + "|".join(GONE_MODULES) + r")\.[a-z_]\w*"
    stale = [f"{where}: {m.group(0)}" for where, m in _found(pattern)]
    assert not stale, "\n".join(stale)


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[cut:]:
            if not hasattr(found, attribute):
                return False
            found = getattr(found, attribute)
        return True
    return False


def test_modules_named_in_prose_exist() -> None:
    """`runner.engine.job.prepare_audio`: the module imports and has the attribute."""
    wrong = [f"{where}: {m.group(0)}"
             for where, m in _found(r"(?<![\w./-])runner(?:\.[A-Za-z_]\w*)+(?![\w-])")
             if m.group(0) != "runner.invalid" and not _resolves(m.group(0))]
    assert not wrong, "\n".join(wrong)


def test_tests_named_in_prose_exist() -> None:
    """`test_result_urls_expire` and `test_limits` name a test function or file there is."""
    there = {p.stem for p in (ROOT / "tests").rglob("test_*.py")}
    for path in _python_files("tests"):
        there |= set(re.findall(r"def (test_\w+)", path.read_text(encoding="utf-8")))
    missing = [f"{where}: {m.group(1)}" for where, m in _found(r"(?<![\w/.])(test_\w*[a-z0-9])\b")
               if m.group(1) not in there]
    assert not missing, "\n".join(missing)


def test_every_package_lists_its_modules() -> None:
    """docs/architecture.md: each folder's __init__.py lists its modules."""
    unlisted = []
    for init in sorted((ROOT / "runner").rglob("__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
        if init.parent == ROOT / "runner":
            continue  # the package's own docstring; README's Code section lists the stages
        for member in sorted(init.parent.iterdir()):
            if member.suffix == ".py" and member.name != "__init__.py":
                listed = re.search(rf"\b{re.escape(member.name)}\b", doc)
            elif (member / "__init__.py").exists():
                listed = re.search(rf"\b{re.escape(member.name)}/", doc)
            else:
                continue
            if not listed:
                unlisted.append(f"{init.relative_to(ROOT)}: {member.name}")
    assert not unlisted, "\n".join(unlisted)


# --- links and sections -----------------------------------------------------------------

def _slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", "")).replace(" ", "-")


@cache
def _headings(path: Path) -> tuple[str, ...]:
    found, fenced = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (heading := re.match(r"#{1,6} (.+)", line)):
            found.append(heading.group(1).strip())
    return tuple(found)


def test_markdown_links_reach_their_file_and_section() -> None:
    broken = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = doc.read_text(encoding="utf-8")
        for match in re.finditer(r"\]\(([^)\s]+)\)", text):
            target = match.group(1)
            if re.match(r"[a-z]+:", target):
                continue  # https:, mailto:
            file_part, _, anchor = target.partition("#")
            linked = (doc.parent / file_part) if file_part else doc
            if not linked.exists():
                broken.append(f"{_where(doc, 1, text, match.start())}: {target}")
            elif anchor and linked.suffix == ".md" and \
                    anchor not in {_slug(h) for h in _headings(linked)}:
                broken.append(f"{_where(doc, 1, text, match.start())}: no section #{anchor}")
    assert not broken, "\n".join(broken)


def test_cited_sections_of_providers_md_exist() -> None:
    """`docs/providers.md, "Market API: file upload"` names a heading of that page (or
    the start of some: "Market API")."""
    headings = _headings(ROOT / "docs" / "providers.md")
    wrong = []
    for path, line, text in prose():
        joined = _joined(text)
        for match in re.finditer(r'providers\.md,?\s*\(?((?:"[^"]+"(?:,\s*|\s+and\s+)?)+)',
                                 joined):
            for section in re.findall(r'"([^"]+)"', match.group(1)):
                start = section.removesuffix("...").strip()
                if not any(h == section or h.startswith(start) for h in headings):
                    offset = max(text.find(f'"{section.split()[0]}'), 0)
                    wrong.append(f"{_where(path, line, text, offset)}: {section!r}")
    assert not wrong, "\n".join(wrong)


# --- options, variables, exit codes -----------------------------------------------------

def _option_strings(parser: argparse.ArgumentParser) -> set[str]:
    found: set[str] = set()
    for action in parser._actions:
        found.update(action.option_strings)
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found |= _option_strings(sub)
    return found


def test_options_named_in_prose_exist() -> None:
    """Every `--option` in README, docs/ and the comments of runner/ and bench/ is one
    the command (`runner ...`, `runner sandbox serve`) or a benchmark defines."""
    defined = _option_strings(build_parser(["sandbox"]))
    for bench in sorted((ROOT / "bench").glob("*.py")):
        defined |= set(re.findall(r"add_argument\(\s*\"(--[a-z0-9-]+)\"", bench.read_text()))
    unknown = []
    for path, line, text in prose():
        if path.suffix == ".py" and ROOT / "tests" in path.parents:
            continue  # tests mention pytest's options
        for match in re.finditer(r"(?<![\w-])--[a-z][a-z0-9-]*", text):
            if match.group(0) not in defined:
                unknown.append(f"{_where(path, line, text, match.start())}: {match.group(0)}")
    assert not unknown, "\n".join(unknown)


def _string_constants(*folders: str) -> set[str]:
    return {node.value for path in _python_files(*folders)
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)}


def test_environment_variables_named_in_prose_are_read() -> None:
    """Every `RUNNER_*` variable the prose names is a name the code uses, or one of an
    account's (`runner.catalog.accounts.env_name`: `RUNNER_<ACCOUNT>_BASE_URL`, ...)."""
    used = set().union(*(re.findall(r"\bRUNNER_[A-Z0-9_]+\b", constant)
                         for constant in _string_constants("runner", "tests", "bench")))
    per_account = re.compile(r"RUNNER_(?:<[A-Z]+>|[A-Z0-9_]+)_(?:UPLOAD_BASE_URL|BASE_URL|API_KEY)")
    unknown = [f"{where}: {m.group(0)}"
               for where, m in _found(r"\bRUNNER_(?:<[A-Z]+>|[A-Z0-9_])+\b")
               if m.group(0) not in used and not per_account.fullmatch(m.group(0))]
    assert not unknown, "\n".join(unknown)


def test_readme_exit_codes_are_the_mapping() -> None:
    """README's list of exit codes is runner.cli.exitcodes.ExitCode, no more, no less."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    paragraph = re.search(r"^Exit codes: (.*?)\n\n", readme, re.DOTALL | re.MULTILINE)
    assert paragraph, "README.md lists no exit codes"
    listed = {int(n) for n in re.findall(r"(?:^|, )(\d+) ", _joined(paragraph.group(1)))}
    assert listed == {int(code) for code in ExitCode}


@pytest.mark.parametrize("kind", ["prose", "messages"])
def test_exit_codes_named_anywhere_are_the_mapping(kind: str) -> None:
    """'exit 2', '(exit 4)' in prose, help and messages: codes the mapping has (a status
    after a signal's name, "SIGABRT, exit 134", is the OS's, not the runner's)."""
    if kind == "prose":
        texts = [(p, line, text) for p, line, text in prose()
                 if p.suffix != ".py" or ROOT / "runner" in p.parents]
    else:
        texts = [(ROOT / "runner", 1, text) for text in _string_constants("runner")]
    codes = {int(code) for code in ExitCode}
    wrong = [f"{_where(p, line, text, m.start())}: {m.group(0)}" for p, line, text in texts
             for m in re.finditer(r"(?<!SIG[A-Z]{4}, )\bexits?(?: with)?(?: code)? (\d+)\b",
                                  text)
             if int(m.group(1)) not in codes]
    assert not wrong, "\n".join(wrong)
