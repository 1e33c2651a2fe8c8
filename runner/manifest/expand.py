"""Templates to jobs: defaults, matrix values, variants, narration segments, audio sources.

Expansion never validates model inputs (checks.py does, per expanded job); it
reports only what makes a template impossible to expand: unknown matrix
variables, a narration text file that cannot be read, a malformed audio source.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Iterator
from typing import Any

from runner.audio.steps import PostProcess
from runner.catalog.accounts import DEFAULT_FOR_FAMILY
from runner.catalog.models import MODELS, Kind, ModelInfo
from runner.errors import Problem, shown
from runner.manifest.expansion import ExpansionContext, extension_for, merged
from runner.manifest.filenames import local_file
from runner.manifest.postprocess import declared
from runner.manifest.programmes import programme_jobs
from runner.manifest.types import AudioKind, AudioSource, Job, Pipeline, generate_job
from runner.schemas.validate import suggest

DocPath = tuple[str | int, ...]
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")
# Fields of a TTS request that carry the neighbours' text: sent, but (by default)
# not part of the cache key, so editing one paragraph regenerates that paragraph only.
CONTEXT_FIELDS = ("previous_text", "next_text")
REQUEST_ID_FIELDS = ("previous_request_ids", "next_request_ids")
OUTPUT_VARS = ("id", "variant", "ext")




def expand_jobs(pipeline: Pipeline, data: dict[str, Any],
                max_jobs: int = 100_000) -> tuple[list[Job], list[Problem]]:
    """Every template's jobs, in order. No template is expanded past `max_jobs`: a
    matrix's size is computed from its lists' lengths before anything is built."""
    ctx = ExpansionContext(pipeline, data, [])
    jobs: list[Job] = []
    defaults = data.get("defaults") or {}
    # Entries of one job with nothing to expand (no matrix, variants, programme, audio
    # or post-processing): most of a large manifest. They take a short way.
    simple = "variants" not in defaults and "postprocess" not in defaults
    for index, template in enumerate(data["jobs"]):
        if not isinstance(template, dict) or not isinstance(template.get("model"), str) \
                or template["model"] not in MODELS or not isinstance(template.get("id"), str):
            continue  # the structure check has reported it
        if simple and template.keys() <= _SINGLE_KEYS and len(jobs) < max_jobs:
            model = MODELS[template["model"]]
            if model.kind is not Kind.TRANSCRIPT:
                job = _single_job(ctx, index, template, model)
                if job is not None:
                    jobs.append(job)
                continue
        would_make = 1 if "matrix" not in template and "variants" not in template \
            and "variants" not in defaults else job_count(template, defaults)[0]
        if len(jobs) + would_make > max_jobs:
            how = job_count(template, defaults)[1]
            where = ("jobs", index, "matrix") if "matrix" in template else ("jobs", index)
            before = f" after the {len(jobs):,} of the entries above" if jobs else ""
            what = f"this entry would make {would_make:,} jobs ({how}){before}" \
                if would_make > 1 else f"this entry is job {len(jobs) + 1:,}"
            ctx.problem(where, f"{what}; a manifest may make at most {max_jobs:,} "
                        "(RUNNER_MAX_JOBS)")
            return jobs, ctx.problems  # nothing after it is expanded either
        jobs.extend(_expand_template(ctx, index, template))
        if len(jobs) > max_jobs:  # a narration's segments are counted once split
            ctx.problem(("jobs", index), f"the jobs up to this entry are {len(jobs):,} with its "
                        f"narration's segments; a manifest may make at most {max_jobs:,} "
                        "(RUNNER_MAX_JOBS)")
            return jobs, ctx.problems
    return jobs, ctx.problems


def job_count(template: dict[str, Any], defaults: dict[str, Any]) -> tuple[int, str]:
    """How many jobs a template makes before narration segments, and how, without
    expanding it: matrix rows x variants."""
    matrix = template.get("matrix")
    variants = template.get("variants", defaults.get("variants", 1))
    variants = variants if isinstance(variants, int) and variants >= 1 else 1
    if isinstance(matrix, list):
        rows, how = len(matrix), f"{len(matrix):,} matrix rows"
    elif isinstance(matrix, dict) and matrix:
        sizes = [len(v) if isinstance(v, list) else 1 for v in matrix.values()]
        rows = 1
        for size in sizes:
            rows *= size
        how = " x ".join(f"{size:,}" for size in sizes) + " matrix values"
    else:
        rows, how = 1, "1 job"
    if variants > 1:
        how += f" x {variants} variants"
    return rows * variants, how


def _default_provider(ctx: ExpansionContext, model: ModelInfo) -> str:
    known = ctx.providers.get(model.id)
    if known is None:
        known = ctx.providers[model.id] = _preferred_provider(ctx, model)
    return known


def _preferred_provider(ctx: ExpansionContext, model: ModelInfo) -> str:
    defaults = ctx.data.get("defaults") or {}
    preferred = defaults.get("provider")
    account = ctx.pipeline.accounts.get(str(preferred)) if preferred else None
    if account is not None and account.family is model.family:
        return account.name
    return DEFAULT_FOR_FAMILY[model.family]


def _identity(value: Any) -> Any:
    return value


def matrix_rows(matrix: Any) -> list[dict[str, Any]]:
    """Every combination of a mapping of lists (in order), or the rows of a list."""
    if isinstance(matrix, list):
        return [dict(row) for row in matrix if isinstance(row, dict)]
    if isinstance(matrix, dict) and matrix:
        names = list(matrix)
        lists = [v if isinstance(v, list) else [v] for v in matrix.values()]
        return [dict(zip(names, combo)) for combo in itertools.product(*lists)]
    return [{}]


@functools.lru_cache(maxsize=4096)
def _segments(text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """`text` cut at its placeholders: the literal pieces (with `{{` and `}}` made single
    braces), and the names between them (one fewer). Outputs and ids repeat: cached."""
    pieces: list[str] = []
    names: list[str] = []
    literal: list[str] = []
    last = 0
    for match in _PLACEHOLDER.finditer(text):
        literal.append(text[last:match.start()])
        last = match.end()
        name = match.group(1)
        if name is None:
            literal.append(match.group(0)[0])
            continue
        pieces.append("".join(literal))
        literal = []
        names.append(name)
    literal.append(text[last:])
    pieces.append("".join(literal))
    return tuple(pieces), tuple(names)


def substitute(value: Any, row: dict[str, Any], unknown: set[str]) -> Any:
    """Matrix values into strings; a string that is exactly `{name}` takes the value's type."""
    if isinstance(value, str):
        if "{" not in value and "}" not in value:
            return value
        pieces, names = _segments(value)
        if len(names) == 1 and pieces == ("", "") and names[0] in row:
            return row[names[0]]  # exactly `{name}`
        out = [pieces[0]]
        for name, piece in zip(names, pieces[1:], strict=True):
            if name in row:
                out.append(str(row[name]))
            else:
                unknown.add(name)
                out.append(f"{{{name}}}")
            out.append(piece)
        return "".join(out)
    if isinstance(value, dict):
        return {k: substitute(v, row, unknown) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, row, unknown) for v in value]
    return value


# The keys of an entry that makes one job with nothing to expand (see _single_job).
_SINGLE_KEYS = frozenset({"id", "model", "input", "output", "provider", "notes", "freeze"})


def _single_job(ctx: ExpansionContext, index: int, t: dict[str, Any], model: ModelInfo) -> Job | None:
    """The one job of an entry with nothing to expand: what `_expand_template` makes of
    it (no matrix: every value as written; one variant; no audio; no post-processing),
    in the fewest steps."""
    own_input = t.get("input") or {}
    if not isinstance(own_input, dict):
        return None
    model_defaults = ctx.model_defaults.get(model.id)
    if model_defaults is None:
        defaults = ctx.data.get("defaults") or {}
        found = defaults.get(model.id)
        model_defaults = ctx.model_defaults[model.id] = found if isinstance(found, dict) else {}
    job_id: str = t["id"]
    provider = t.get("provider")
    request = merged(model_defaults, own_input) if model_defaults else own_input
    fmt = _format(model, request)
    if "output" not in t:
        path = f"{job_id}.{extension_for(fmt)}"
    else:
        path = str(_output(ctx, t, _identity, ("jobs", index), job_id, 1, 1, fmt))
    return generate_job(job_id, index, model,
                        str(provider) if provider else _default_provider(ctx, model),
                        request, path, fmt, 1, 1, bool(t.get("freeze")), None, (), {},
                        str(t.get("notes", "")), None, None)


def _expand_template(ctx: ExpansionContext, index: int, t: dict[str, Any]) -> Iterator[Job]:
    model = MODELS[t["model"]]
    base: DocPath = ("jobs", index)
    defaults = ctx.data.get("defaults") or {}
    model_defaults = defaults.get(model.id) if isinstance(defaults.get(model.id), dict) else {}
    variants = t.get("variants", defaults.get("variants", 1))
    variants = variants if isinstance(variants, int) and variants >= 1 else 1
    has_matrix = "matrix" in t
    rows = matrix_rows(t.get("matrix")) if has_matrix else [{}]
    if has_matrix and "{" not in str(t["id"]) and len(rows) > 1:
        ctx.problem((*base, "id"), "a matrix job's id must use a matrix variable, e.g. "
                    f"'{t['id']}_{{{next(iter(rows[0]), 'name')}}}', or every job gets the same id")
        return
    programme = "narration" in t or "dialogue" in t
    post, post_problem = declared(t, defaults, model, programme) \
        if "postprocess" in t or "postprocess" in defaults else (None, None)
    # The request is built in place of the template's input only where something may
    # change it (a transcript's audio field is taken out, programmes split it).
    shared_input = not model_defaults and not programme and model.kind is not Kind.TRANSCRIPT
    for row in rows:
        unknown: set[str] = set()
        sub: Any = functools.partial(substitute, row=row, unknown=unknown) if has_matrix \
            else _identity
        job_id = str(sub(t["id"]))
        provider = str(sub(t.get("provider")) or _default_provider(ctx, model))
        own_input = sub(t.get("input") or {})
        if not isinstance(own_input, dict):
            continue
        request = own_input if shared_input else merged(model_defaults, own_input)
        for name in sorted(unknown):
            hint = suggest(name, list(row))
            ctx.problem(base, f"unknown matrix variable {{{name}}}{hint}; matrix variables: "
                        f"{', '.join(row) or 'none'} (write {{{{ and }}}} for literal braces)",
                        job_id)
        audio = _audio_source(ctx, model, t, sub, request, base, job_id) \
            if model.kind is Kind.TRANSCRIPT or "audio" in t else None
        if post_problem:
            ctx.problem((*base, "postprocess"), post_problem, job_id, key=True)
        freeze = bool(t.get("freeze"))
        notes = str(t.get("notes", ""))
        approved = str(sub(t["approved"])) if isinstance(t.get("approved"), str) else None
        if programme:
            common = {"template": index, "model": model, "provider": provider,
                      "freeze": freeze, "matrix": row, "notes": notes, "post": post,
                      "approved": approved}
            yield from programme_jobs(
                ctx, t, sub, request, job_id, base, common, variants,
                output_for=functools.partial(_output, ctx, t, sub, base, job_id, 1, 1),
                format_of=functools.partial(_format, model))
            continue
        fmt = _format(model, request)
        depends_on = (audio.value,) if audio and audio.kind is AudioKind.FROM else ()
        for variant in range(1, variants + 1):
            vid = job_id if variants == 1 else f"{job_id}#{variant}"
            output = _output(ctx, t, sub, base, job_id, variant, variants, fmt, post)
            if output is None:
                continue
            yield generate_job(vid, index, model, provider, request, output, fmt,
                               variant, variants, freeze, audio, depends_on, row, notes, post,
                               approved)


def _format(model: ModelInfo, request: dict[str, Any]) -> str:
    """The provider format the request asks for, or the model's default. One the runner
    cannot name a file for is the input check's to report (every model lists its
    formats); until then the output is named as if by the default."""
    given = request.get(model.format_field) if model.format_field else None
    if not isinstance(given, str):
        return model.default_format
    try:
        extension_for(given)
    except ValueError:
        return model.default_format
    return given


def _output(ctx: ExpansionContext, t: dict[str, Any], sub: Any, base: DocPath, job_id: str,
            variant: int, variants: int, fmt: str,
            post: PostProcess | None = None) -> str | None:
    default = "{id}.{ext}" if variants == 1 else "{id}_v{variant}.{ext}"
    template = str(sub(t.get("output", default)))
    if variants > 1 and "output" in t and "{variant}" not in template:
        if variant == 1:
            ctx.problem((*base, "output"), f"the job has {variants} variants but its output has "
                        "no {variant} placeholder: every take would overwrite the others", job_id)
        return None
    if "{" not in template and "}" not in template:
        return template  # a path as it is (substitute would return it unchanged)
    ext = post.extension(extension_for(fmt)) if post else extension_for(fmt)
    if template == "{id}.{ext}":  # the default: what substitute makes of it, made directly
        return f"{job_id}.{ext}"
    values = {"id": job_id, "variant": str(variant), "ext": ext}
    unknown: set[str] = set()
    path = substitute(template, values, unknown)
    if unknown and variant == 1:
        names = ", ".join(f"{{{n}}}" for n in sorted(unknown))
        ctx.problem((*base, "output"), f"unknown placeholder {names} in output; available: "
                    "{id}, {variant}, {ext} and the matrix variables", job_id)
    return str(path)


def _audio_source(ctx: ExpansionContext, model: ModelInfo, t: dict[str, Any], sub: Any,
                  request: dict[str, Any], base: DocPath, job_id: str) -> AudioSource | None:
    if model.kind is not Kind.TRANSCRIPT:
        if "audio" in t:
            ctx.problem((*base, "audio"), f"'audio' is only for transcription models; "
                        f"{model.id} makes {model.kind.value.replace('_', ' ')}", job_id, key=True)
        return None
    field = model.audio_url_field
    given = sub(t.get("audio")) if "audio" in t else None
    from_input = False
    if field and field in request:
        if given is not None:
            ctx.problem((*base, "input", field), f"the audio is given twice: by 'audio' and by "
                        f"input.{field}; keep one", job_id)
            return None
        given = {"url": request.pop(field)}
        from_input = True
    if given is None:
        ctx.problem(base, "missing audio to transcribe: add `audio:` with a URL, a file, or "
                    "{from: <job id>}", job_id)
        return None
    where = (*base, "input", str(field)) if from_input else (*base, "audio")
    if isinstance(given, str):
        given = {"url": given} if _URL.match(given) else {"file": given}
    if not isinstance(given, dict) or len(given) != 1:
        return None  # the structure check has reported it
    kind, value = next(iter(given.items()))
    if isinstance(t.get("audio"), dict):
        where = (*where, kind)
    if not isinstance(value, str):
        if from_input:  # the model schema is not asked about the field the runner fills
            ctx.problem(where, f"expected an http(s) URL, got {value!r:.40}", job_id)
        return None  # otherwise the structure check has reported it
    if kind == "url":
        problem = url_problem(value, "audio URL")
        if problem:
            ctx.problem(where, problem, job_id)
            return None
        return AudioSource(AudioKind.URL, value)
    if kind == "from":
        return AudioSource(AudioKind.FROM, value)
    path, problem = local_file(ctx.pipeline.path.parent, value, "audio file")
    if path is None:
        ctx.problem(where, str(problem), job_id)
        return None
    return AudioSource(AudioKind.FILE, str(path))


_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


def url_problem(url: str, what: str) -> str | None:
    """Why `url` is not an http(s) URL the runner may fetch from or send to, or None."""
    from urllib.parse import urlsplit

    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in ("http", "https"):
        got = f"scheme '{shown(scheme, 20)}'" if scheme else f"'{shown(url)}'"
        return f"{what}: expected an http(s) URL, got {got}"
    if any(c.isspace() or not c.isprintable() for c in url):
        return f"{what} '{shown(url)}' holds a space or a control character"
    try:
        host = urlsplit(url).hostname
    except ValueError as exc:
        return f"{what} '{shown(url)}' is not a valid URL ({exc})"
    if not host:
        return f"{what} '{shown(url)}' names no host"
    return None
