"""Checks over expanded jobs: accounts, ids, inputs, outputs, dependencies.

Each check returns problems and never stops at the first one.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections import deque
from pathlib import PureWindowsPath
from typing import Any

from runner.accounts import BUILTIN
from runner.errors import Problem
from runner.manifest import AudioKind, Job, JobKind, Pipeline
from runner.models import MODELS, Kind
from runner.pipeline_schema import PROVIDER_TYPES
from runner.schemas import check, model_validator, partial_validator, suggest

_JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")


def check_accounts(pipeline: Pipeline, declared: dict[str, Any]) -> list[Problem]:
    doc = pipeline.document
    problems = []
    for name, spec in declared.items():
        if name in BUILTIN or not isinstance(spec, dict):
            continue
        if spec.get("type") not in PROVIDER_TYPES:
            hint = suggest(name, list(BUILTIN))
            problems.append(doc.problem(("providers", name), f"provider '{name}' is not built in"
                                        f"{hint}; an extra account needs `type:` (one of "
                                        f"{', '.join(PROVIDER_TYPES)})", key=True))
    return problems


def check_jobs(pipeline: Pipeline, jobs: list[Job]) -> list[Problem]:
    from runner.approved import check_templates

    return [
        *_check_providers(pipeline, jobs),
        *_check_ids(pipeline, jobs),
        *_check_defaults(pipeline),
        *_check_inputs(pipeline, jobs),
        *_check_outputs(pipeline, jobs),
        *_check_dependencies(pipeline, jobs),
        *check_templates(pipeline, jobs),  # `approved:` paths
    ]


def _check_providers(pipeline: Pipeline, jobs: list[Job]) -> list[Problem]:
    doc = pipeline.document
    problems = []
    reported: set[tuple[int, str]] = set()
    for job in jobs:
        if (job.template, job.provider) in reported:
            continue
        account = pipeline.accounts.get(job.provider)
        path = ("jobs", job.template, "provider")
        if account is None:
            hint = suggest(job.provider, list(pipeline.accounts))
            problems.append(doc.problem(path, f"unknown provider '{job.provider}'{hint}; "
                                        f"known: {', '.join(sorted(pipeline.accounts))}",
                                        job_id=job.id))
        elif account.family is not job.model.family:
            serving = sorted(a.name for a in pipeline.accounts.values()
                             if a.family is job.model.family)
            offered = sorted(m for m, info in MODELS.items() if info.family is account.family)
            problems.append(doc.problem(path, f"provider '{job.provider}' does not offer "
                                        f"{job.model.id} (served by {', '.join(serving)}); "
                                        f"'{job.provider}' offers {', '.join(offered)}",
                                        job_id=job.id))
        else:
            continue
        reported.add((job.template, job.provider))
    return problems


def _check_ids(pipeline: Pipeline, jobs: list[Job]) -> list[Problem]:
    doc = pipeline.document
    problems = []
    first: dict[str, Job] = {}
    for job in jobs:
        generated = job.segment is not None or job.verifies is not None  # ids made by us
        if not generated and not _JOB_ID.match(job.base_id):
            problems.append(doc.problem(("jobs", job.template, "id"), f"job id '{job.base_id}' "
                                        "may use only letters, digits, '_', '.' and '-', "
                                        "starting with a letter or digit", job_id=job.id))
            continue
        earlier = first.setdefault(job.id, job)
        if earlier is not job:
            line = doc.locate(("jobs", earlier.template, "id"))[0]
            how = " (made by matrix expansion)" if job.matrix or earlier.matrix else ""
            problems.append(doc.problem(("jobs", job.template, "id"),
                                        f"duplicate job id '{job.id}'{how}; first used by "
                                        f"jobs[{earlier.template}] at line {line}",
                                        job_id=job.id))
    return problems


def _check_defaults(pipeline: Pipeline) -> list[Problem]:
    doc = pipeline.document
    defaults = doc.data.get("defaults") or {}
    problems = []
    for model_id, values in defaults.items():
        if model_id in MODELS and isinstance(values, dict):
            for issue in check(partial_validator(MODELS[model_id]), values):
                problems.append(doc.problem(("defaults", model_id, *issue.path), issue.message,
                                            key=issue.at_key))
    return problems


_PLACEHOLDER_URL = "https://audio.invalid/placeholder"


def _check_inputs(pipeline: Pipeline, jobs: list[Job]) -> list[Problem]:
    doc = pipeline.document
    problems = []
    templates = doc.data["jobs"]
    for job in jobs:
        if job.kind is JobKind.STITCH:
            continue
        request = job.input
        if job.model.kind is Kind.TRANSCRIPT:
            # The runner fills the audio field at run time (URL, upload or file part);
            # a missing or broken audio source has been reported by the expansion.
            field = job.model.audio_url_field if job.audio is None \
                or job.audio.kind is AudioKind.URL or job.model.audio_file_field is None \
                else job.model.audio_file_field
            request = {**request, str(field): _PLACEHOLDER_URL}
        own_input = templates[job.template].get("input") or {}
        base = ("jobs", job.template, "narration") if job.segment else ("jobs", job.template,
                                                                        "input")
        for issue in check(model_validator(job.model), request):
            top = issue.path[0] if issue.path else None
            if top is not None and top not in own_input and job.segment is None:
                continue  # from `defaults:`, reported once by _check_defaults
            path = base if job.segment else (*base, *issue.path)
            message = issue.message if not job.segment else f"segment {job.segment.index + 1}: " \
                f"{'.'.join(map(str, issue.path))}: {issue.message}"
            problems.append(doc.problem(path, message, key=issue.at_key, job_id=job.id))
    return problems


def _check_outputs(pipeline: Pipeline, jobs: list[Job]) -> list[Problem]:
    doc = pipeline.document
    root = pipeline.output_dir
    root_real = os.path.realpath(root)
    real_dirs: dict[str, str] = {}  # many outputs share a folder: resolve each folder once
    problems = []
    owners: dict[str, Job] = {}
    for job in jobs:
        path = ("jobs", job.template, "output")
        out = job.output
        if out.startswith(("/", "\\")) or PureWindowsPath(out).drive:
            problems.append(doc.problem(path, f"output '{out}' is an absolute path; give a path "
                                        "relative to output_dir", job_id=job.id))
            continue
        normal = posixpath.normpath(out.replace("\\", "/"))
        if normal == ".." or normal.startswith("../") or normal in (".", ""):
            problems.append(doc.problem(path, f"output '{out}' leaves output_dir "
                                        f"({os.path.relpath(root)})", job_id=job.id))
            continue
        folder, name = posixpath.split(normal)
        real_dir = real_dirs.get(folder)
        if real_dir is None:
            real_dir = real_dirs[folder] = os.path.realpath(os.path.join(root, folder))
        real = os.path.join(real_dir, name)
        if os.path.islink(real):
            real = os.path.realpath(real)
        if real != root_real and not real.startswith(root_real + os.sep):
            problems.append(doc.problem(path, f"output '{out}' leaves output_dir through a "
                                        f"symbolic link (it resolves to {real})", job_id=job.id))
            continue
        owner = owners.setdefault(normal, job)
        if owner is not job:
            problems.append(doc.problem(path, f"output '{normal}' is also written by job "
                                        f"'{owner.id}'; give each job its own file",
                                        job_id=job.id))
        job.output = normal
    return problems


def _check_dependencies(pipeline: Pipeline, jobs: list[Job]) -> list[Problem]:
    doc = pipeline.document
    by_id = {job.id: job for job in jobs}
    variants_of: dict[str, list[str]] = {}
    for job in jobs:
        if job.variants > 1:
            variants_of.setdefault(job.base_id, []).append(job.id)
    problems = []
    for job in jobs:
        if job.audio is None or job.audio.kind is not AudioKind.FROM:
            continue
        path = ("jobs", job.template, "audio", "from")
        target = job.audio.value
        if target not in by_id:
            if target in variants_of:
                message = (f"job '{target}' has {len(variants_of[target])} variants; name one: "
                           f"{', '.join(variants_of[target][:3])}")
            else:
                message = f"from: no job '{target}'{suggest(target, list(by_id))}"
            problems.append(doc.problem(path, message, job_id=job.id))
        elif target != job.id and not by_id[target].model.makes_audio:
            problems.append(doc.problem(path, f"job '{target}' makes a transcript, not audio; "
                                        "transcribe a job that makes audio", job_id=job.id))
    for cycle in find_cycles(jobs):
        first = by_id[cycle[0]]
        problems.append(doc.problem(("jobs", first.template), "dependency cycle: "
                                    + " -> ".join([*cycle, cycle[0]]), job_id=first.id))
    return problems


def find_cycles(jobs: list[Job]) -> list[list[str]]:
    """Each cycle once, as a list of job ids (depth-first search, iterative)."""
    graph = {job.id: [d for d in job.depends_on] for job in jobs}
    state: dict[str, int] = {}  # 1 = on the current path, 2 = finished
    cycles = []
    for start in graph:
        if state.get(start):
            continue
        stack: list[tuple[str, int]] = [(start, 0)]
        path: list[str] = []
        while stack:
            node, i = stack.pop()
            if i == 0:
                state[node] = 1
                path.append(node)
            deps = graph.get(node, [])
            if i < len(deps):
                stack.append((node, i + 1))
                nxt = deps[i]
                if state.get(nxt) == 1:
                    cycles.append(path[path.index(nxt):])
                elif nxt in graph and not state.get(nxt):
                    stack.append((nxt, 0))
            else:
                state[node] = 2
                path.pop()
    return cycles


def in_dependency_order(jobs: list[Job]) -> dict[str, Job]:
    """Jobs keyed by id, each after everything it depends on, otherwise in manifest order."""
    by_id = {job.id: job for job in jobs}
    waiting = {job.id: sum(1 for d in job.depends_on if d in by_id) for job in jobs}
    dependents: dict[str, list[str]] = {}
    for job in jobs:
        for dep in job.depends_on:
            dependents.setdefault(dep, []).append(job.id)
    ready = deque(job.id for job in jobs if waiting[job.id] == 0)
    ordered: dict[str, Job] = {}
    while ready:
        job_id = ready.popleft()
        ordered[job_id] = by_id[job_id]
        for child in dependents.get(job_id, []):
            waiting[child] -= 1
            if waiting[child] == 0:
                ready.append(child)
    return ordered
