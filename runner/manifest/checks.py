"""Checks over expanded jobs: accounts, ids, inputs, outputs, dependencies.

Each check returns problems and never stops at the first one.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Mapping
from typing import Any

from runner.catalog.accounts import BUILTIN, env_name
from runner.catalog.models import MODELS, Kind
from runner.errors import Problem, shown
from runner.manifest.outputs import check_outputs
from runner.manifest.types import AudioKind, Job, JobKind, Pipeline
from runner.manifest.yaml_source import DocPath
from runner.schemas.pipeline import PROVIDER_TYPES
from runner.schemas.validate import check, model_validator, partial_validator, suggest

_JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")
# An id names files ({id}.mp3, {id}_v2.mp3, {id}.segments/, uploads): with room for
# what the runner adds, it stays under the 255 bytes a file name may have.
MAX_ID_CHARS = 200


def check_accounts(pipeline: Pipeline, declared: dict[str, Any],
                   env: Mapping[str, str] | None = None) -> list[Problem]:
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
    problems += _check_base_urls(pipeline, declared, env or {})
    return problems


def _check_base_urls(pipeline: Pipeline, declared: dict[str, Any],
                     env: Mapping[str, str]) -> list[Problem]:
    """Base URLs from the environment (they win over the manifest's, which the schema
    checks): an account's key is sent there, so only http(s) will do."""
    from runner.manifest.expand import url_problem

    problems = []
    doc = pipeline.document
    for name in pipeline.accounts:
        for suffix in ("BASE_URL", "UPLOAD_BASE_URL"):
            variable = env_name(name, suffix)
            value = env.get(variable)
            problem = url_problem(value, f"{variable} (from the environment)") if value else None
            if problem is not None:
                where = ("providers", name) if name in declared else ()
                problems.append(doc.problem(where, problem, key=bool(where)))
    return problems


def check_jobs(pipeline: Pipeline, jobs: list[Job], *, partial: bool = False) -> list[Problem]:
    """`partial`: some entries were left out for problems of their own, so a `from:`
    naming a job that does not exist may name one of them."""
    from runner.manifest.approved import check_templates

    id_problems = _check_ids(pipeline, jobs)
    refused = {p.job_id for p in id_problems}  # their outputs derive from the bad id
    return [
        *_check_providers(pipeline, jobs),
        *id_problems,
        *_check_defaults(pipeline),
        *_check_prices(pipeline),
        *_check_inputs(pipeline, jobs),
        *check_outputs(pipeline, [j for j in jobs if shown(j.id, 40) not in refused]
                       if refused else jobs),
        *_check_dependencies(pipeline, jobs, partial),
        # `approved:` paths (nothing to check where no job has one)
        *(check_templates(pipeline, jobs) if any(j.approved is not None for j in jobs)
          else ()),
    ]


_PRICE_FIELDS = ("per_request", "per_1k_chars", "per_second", "per_step", "minimum")


def _check_prices(pipeline: Pipeline) -> list[Problem]:
    """A price of nothing would estimate every job at 0 credits: --max-credits could
    never stop them. (Negative figures are refused by the schema.)"""
    problems = []
    for model_id, fields in pipeline.prices.items():
        if isinstance(fields, dict) and fields and all(
                isinstance(fields.get(k, 0), (int, float)) and not fields.get(k, 0)
                for k in _PRICE_FIELDS):
            problems.append(pipeline.document.problem(
                ("prices", model_id), f"every figure of this price is 0: {model_id} jobs would "
                "be estimated at 0 credits and no --max-credits budget could stop them; give "
                f"at least one of {', '.join(_PRICE_FIELDS)} above 0"))
    return problems


def _check_providers(pipeline: Pipeline, jobs: list[Job]) -> list[Problem]:
    doc = pipeline.document
    problems = []
    reported: set[tuple[int, str]] = set()
    accounts = pipeline.accounts
    for job in jobs:
        account = accounts.get(job.provider)
        if account is not None and account.family is job.model.family:
            continue  # the common case, first
        if (job.template, job.provider) in reported:
            continue
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
        # The id the manifest made (a matrix value may have brought any character in);
        # '#N' of a variant is the runner's.
        made = job.id if job.variants == 1 else job.id.rpartition("#")[0]
        if not generated and not _JOB_ID.match(made):
            problems.append(doc.problem(("jobs", job.template, "id"), f"job id '{shown(made)}' "
                                        "may use only letters, digits, '_', '.' and '-', "
                                        "starting with a letter or digit ('/' and '#' name "
                                        "segments and variants)", job_id=shown(job.id, 40)))
            continue
        if not generated and len(made) > MAX_ID_CHARS:
            problems.append(doc.problem(("jobs", job.template, "id"), f"job id of {len(made):,} "
                                        f"characters; at most {MAX_ID_CHARS} (it names files)",
                                        job_id=shown(job.id, 40)))
            continue
        earlier = first.setdefault(job.id, job)
        if earlier is not job:
            # The earlier entry's line costs a pass over the text: the first few only.
            at = f" at line {doc.locate(('jobs', earlier.template, 'id'))[0]}" \
                if len(problems) < 5 else ""
            how = " (made by matrix expansion)" if job.matrix or earlier.matrix else ""
            problems.append(doc.problem(("jobs", job.template, "id"),
                                        f"duplicate job id '{job.id}'{how}; first used by "
                                        f"jobs[{earlier.template}]{at}", job_id=job.id))
    return problems


def _check_defaults(pipeline: Pipeline) -> list[Problem]:
    doc = pipeline.document
    defaults = doc.data.get("defaults")
    problems = []
    for model_id, values in (defaults.items() if isinstance(defaults, dict) else ()):
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
    validators: dict[str, Any] = {}  # by model id: hashing a ModelInfo costs more than a str
    for job in jobs:
        if job.kind is JobKind.STITCH:
            continue
        validator = validators.get(job.model.id)
        if validator is None:
            validator = validators[job.model.id] = model_validator(job.model)
        request = job.input
        if job.model.kind is Kind.TRANSCRIPT:
            # The runner fills the audio field at run time (URL, upload or file part);
            # a missing or broken audio source has been reported by the expansion.
            field = job.model.audio_url_field if job.audio is None \
                or job.audio.kind is AudioKind.URL or job.model.audio_file_field is None \
                else job.model.audio_file_field
            request = {**request, str(field): _PLACEHOLDER_URL}
        if validator.fast is not None and validator.fast(request):
            continue  # the common case: certainly valid
        for issue in check(validator, request):
            located = _locate_input(job, templates[job.template], issue.path, issue.message)
            if located is not None:
                problems.append(doc.problem(located[0], located[1], key=issue.at_key,
                                            job_id=job.id))
    return problems


def _locate_input(job: Job, template: dict[str, Any], path: DocPath,
                  message: str) -> tuple[DocPath, str] | None:
    """Where in the manifest the value of `job`'s input at `path` was written, so that a
    problem points at it: the job's `input`, a dialogue line, a narration's text, or
    the matrix value a `{name}` brought in. None: it comes from `defaults:`, which
    are checked (and reported) once on their own."""
    base: DocPath = ("jobs", job.template)
    own = template.get("input")
    own_input = own if isinstance(own, dict) else {}
    top = path[0] if path else None
    if job.segment is None or job.verifies is not None:
        if top is not None and top not in own_input:
            return None
        where: DocPath = (*base, "input", *path)
        return _matrix_origin(job, template, where, path) or where, message
    key = "dialogue" if "dialogue" in template else "narration"
    if key == "dialogue":
        line_no = job.segment.index
        line = template[key]["lines"][line_no]
        line_input = line.get("input") if isinstance(line.get("input"), dict) else {}
        at_line: DocPath = (*base, key, "lines", line_no)
        if top == "text":
            return (*at_line, "text"), message
        if top is not None and top == job.model.voice_field and "voice" in line:
            return (*at_line, "voice"), message
        if top is not None and top in line_input:
            return (*at_line, "input", *path), message
        if top is not None and top in own_input:
            return (*base, "input", *path), message
        return (at_line, message) if top is None else None
    if top in ("text", "previous_text", "next_text"):
        source = "text_file" if "text_file" in template[key] else "text"
        return (*base, key, source), f"segment {job.segment.index + 1}: {top}: {message}"
    if top is not None and top in own_input:
        return (*base, "input", *path), message
    return ((*base, "input") if own_input else base, message) if top is None else None


def _matrix_origin(job: Job, template: dict[str, Any], where: DocPath,
                   path: DocPath) -> DocPath | None:
    """A value that is exactly `{name}` in the input came from the matrix: point there."""
    raw: Any = template.get("input")
    for part in path:
        found = (isinstance(raw, dict) and part in raw) or (
            isinstance(raw, list) and isinstance(part, int) and part < len(raw))
        if not found:
            return None
        raw = raw[part]
    if not isinstance(raw, str) or not (raw.startswith("{") and raw.endswith("}")):
        return None
    name = raw[1:-1]
    matrix = template.get("matrix")
    if name not in job.matrix:
        return None
    value = job.matrix[name]
    if isinstance(matrix, dict) and isinstance(matrix.get(name), list):
        for i, item in enumerate(matrix[name]):
            if item == value and type(item) is type(value):
                return ("jobs", job.template, "matrix", name, i)
    if isinstance(matrix, list):
        for i, row in enumerate(matrix):
            if row == job.matrix:
                return ("jobs", job.template, "matrix", i, name)
    return None


def _check_dependencies(pipeline: Pipeline, jobs: list[Job], partial: bool) -> list[Problem]:
    if not any(job.depends_on or job.audio is not None for job in jobs):
        return []  # nothing depends on anything: no reference to check, no cycle
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
            elif partial:
                continue  # it may be one of the entries left out for their own problems
            else:
                message = f"from: no job '{shown(target)}'{suggest(target, list(by_id))}"
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
    """Each cycle once, as a list of job ids (depth-first search, iterative). A job that
    depends on nothing ends every path through it: only the others are walked."""
    graph = {job.id: list(job.depends_on) for job in jobs if job.depends_on}
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
    if not any(job.depends_on for job in jobs):
        return {job.id: job for job in jobs}
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
