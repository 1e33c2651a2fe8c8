"""The `approved:` template of a job: where its chosen take is exported, and its checks.

Kept apart from runner/plan/export.py, which does the copying: the manifest checks
need only this, and `runner validate` should not import the store for it.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import PureWindowsPath

from runner.errors import Problem
from runner.manifest.types import Job, Pipeline

DEFAULT_TEMPLATE = "approved/{id}.{ext}"
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def exportable(job: Job) -> bool:
    """Jobs a person reviews and exports: single assets and programmes, not their
    segments, verification transcripts or transcripts."""
    return job.segment is None and job.verifies is None and job.model.makes_audio


def approved_path(job: Job) -> str:
    """The chosen take's path relative to the export root: the template with {id}, {ext}."""
    template = job.approved or DEFAULT_TEMPLATE
    ext = job.output.rsplit(".", 1)[-1] if "." in posixpath.basename(job.output) else ""
    values = {"id": job.base_id, "ext": ext}
    return posixpath.normpath(_PLACEHOLDER.sub(
        lambda m: values.get(m.group(1), m.group(0)), template).replace("\\", "/"))


def check_templates(pipeline: Pipeline, jobs: list[Job]) -> list[Problem]:
    """Manifest checks of `approved:`: known placeholders, inside output_dir, one path
    per job, and never a path a job writes its output to."""
    doc = pipeline.document
    problems = []
    outputs = {posixpath.normpath(j.output) for j in jobs}
    owners: dict[str, str] = {}
    reported: set[int] = set()
    for job in jobs:
        if job.approved is None or not exportable(job) or job.template in reported:
            continue
        where = ("jobs", job.template, "approved")
        unknown = sorted(set(_PLACEHOLDER.findall(job.approved)) - {"id", "ext"})
        path = approved_path(job)
        message = None
        if unknown:
            names = ", ".join(f"{{{n}}}" for n in unknown)
            extra = " (the approved path holds the one chosen take of the job)" \
                if "variant" in unknown else ""
            message = f"unknown placeholder {names} in approved; available: {{id}}, {{ext}} " \
                      f"and the matrix variables{extra}"
        elif job.approved.startswith(("/", "\\")) or PureWindowsPath(job.approved).drive \
                or path == ".." or path.startswith("../"):
            message = f"approved path '{job.approved}' leaves output_dir"
        elif path in outputs:
            message = f"approved path '{path}' is a job's output; give the chosen take its " \
                      "own file"
        elif owners.setdefault(path, job.base_id) != job.base_id:
            message = f"approved path '{path}' is also used by job '{owners[path]}'"
        if message:
            problems.append(doc.problem(where, message, job_id=job.id))
            reported.add(job.template)
    return problems
