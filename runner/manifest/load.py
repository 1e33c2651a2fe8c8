"""Reading a manifest: from a file to the checked `Pipeline` of concrete `Job`s (types.py).

    load_pipeline(path)
      read (UTF-8, safe YAML, line numbers on demand)   manifest/yaml_source.py
      → check the shape against pipeline.schema.json     schemas/pipeline.py
      → resolve provider accounts                        catalog/accounts.py
      → expand templates into jobs                       manifest/expand.py
        (defaults, matrix, variants, narration segments, audio sources)
      → check jobs: inputs against model schemas, ids,   manifest/checks.py,
        outputs inside output_dir, dependencies          manifest/outputs.py
Every problem found anywhere is collected and raised at once as `ManifestInvalid`.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from runner.catalog.accounts import resolve_accounts
from runner.errors import ManifestInvalid, Problem
from runner.manifest.types import Pipeline
from runner.manifest.yaml_source import DocPath, load_yaml


@functools.cache
def _structure_validator() -> Any:
    from runner.schemas.pipeline import structure_schema
    from runner.schemas.validate import Checker

    return Checker(structure_schema())


def display_path(path: Path) -> str:
    """How a file is named in messages: relative to the working directory when inside it."""
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)


# Jobs one manifest may make (after matrix, variants and narration segments);
# RUNNER_MAX_JOBS changes it. Matrices are counted before they are expanded.
DEFAULT_MAX_JOBS = 100_000


def max_jobs(env: Mapping[str, str]) -> int:
    raw = env.get("RUNNER_MAX_JOBS", "").strip()
    if not raw:
        return DEFAULT_MAX_JOBS
    if not raw.isdigit() or int(raw) < 1:
        from runner.errors import UsageError

        raise UsageError(f"RUNNER_MAX_JOBS must be a positive whole number, not {raw[:40]!r}")
    return int(raw)


@contextlib.contextmanager
def without_cycle_collection() -> Iterator[None]:
    """Python's cycle collector runs after every few hundred new containers and, as they
    pile up, walks all of them again: on a 50 MB manifest (millions of dicts, lists and
    jobs, none in a cycle) that was a quarter of `runner validate`. Reading a manifest
    makes no cycles worth collecting, so the collector waits until it is done."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def load_pipeline(path: Path, env: Mapping[str, str] | None = None) -> Pipeline:
    """Read, expand and check a manifest; raises `ManifestInvalid` listing every problem."""
    with without_cycle_collection():
        return _load_pipeline(path, env)


def _load_pipeline(path: Path, env: Mapping[str, str] | None) -> Pipeline:
    from runner.manifest import checks, expand, outputs
    from runner.schemas.validate import check

    env = os.environ if env is None else env
    document = load_yaml(path, display_path(path), max_items=max_jobs(env))
    data = document.data
    if data is None:
        raise ManifestInvalid([Problem(
            document.display, 1, 1, "$",
            "the file is empty: expected a pipeline with version, name and jobs",
        )])
    problems: list[Problem] = []
    issues = check(_structure_validator(), data)
    for issue in issues:
        problems.append(document.problem(issue.path, issue.message, key=issue.at_key))
    if not isinstance(data, dict) or not isinstance(data.get("jobs"), list):
        raise ManifestInvalid(document.place(problems))
    # Later stages rely on the shape the schema describes: the parts that do not
    # have it (reported above) are left out, so that they cannot crash a stage.
    # An unknown key of a job is harmless to the stages (they never read it); any
    # other problem leaves its part out.
    usable = _usable(data, [i.path[:2] for i in issues
                            if not (i.at_key and len(i.path) == 3 and i.path[0] == "jobs")])

    manifest_dir = path.resolve().parent
    output_dir, where = outputs.output_dir_of(manifest_dir, usable)
    if where is not None:
        problems.append(document.problem(("output_dir",), where))
    providers: dict[str, Any] = usable["providers"]
    accounts = resolve_accounts(providers, env)
    pipeline = Pipeline(
        path=path.resolve(),
        name=str(usable.get("name", path.stem)),
        output_dir=output_dir,
        accounts=accounts,
        jobs={},
        prices=usable["prices"],
        document=document,
        description=str(data.get("description", "")),
    )
    problems += checks.check_accounts(pipeline, providers, env)
    jobs, expand_problems = expand.expand_jobs(pipeline, usable, max_jobs(env))
    problems += expand_problems
    problems += checks.check_jobs(pipeline, jobs, partial=len(usable["jobs"]) != sum(
        1 for t in usable["jobs"] if t is not None))
    if problems:
        raise ManifestInvalid(_dedupe(document.place(problems)))
    pipeline.jobs = checks.in_dependency_order(jobs)
    return pipeline


def _usable(data: dict[str, Any], broken: list[DocPath]) -> dict[str, Any]:
    """`data` without the parts the structure check found broken: a broken job is None
    (indices stay those of the file), a broken provider, price or default is absent."""
    bad: dict[str, set[Any]] = {}
    for path in broken:
        if len(path) >= 1:
            bad.setdefault(str(path[0]), set()).add(path[1] if len(path) > 1 else None)

    def section(name: str) -> dict[str, Any]:
        value = data.get(name)
        if not isinstance(value, dict) or None in bad.get(name, ()):
            return {}
        return {k: v for k, v in value.items() if k not in bad.get(name, ())}

    out = dict(data)
    out["providers"] = section("providers")
    out["prices"] = section("prices")
    out["defaults"] = section("defaults")
    out["jobs"] = [None if i in bad.get("jobs", ()) else t for i, t in enumerate(data["jobs"])]
    if "output_dir" in bad:
        out.pop("output_dir", None)
    if "name" in bad:
        out["name"] = "pipeline"
    return out


def _dedupe(problems: list[Problem]) -> list[Problem]:
    """One line per problem: a template's error repeated by every matrix expansion
    and variant is reported once, naming the first job and how many more."""
    grouped: dict[tuple[str, int, int, str, str], list[Problem]] = {}
    for p in problems:
        grouped.setdefault((p.file, p.line, p.column, p.path, p.message), []).append(p)
    out = []
    for group in grouped.values():
        first = group[0]
        ids = list(dict.fromkeys(p.job_id for p in group if p.job_id))
        job_id = ids[0] if ids else None
        if len(ids) > 1:
            job_id = f"{ids[0]} and {len(ids) - 1} more"
        out.append(Problem(first.file, first.line, first.column, first.path, first.message,
                           job_id))
    return out
