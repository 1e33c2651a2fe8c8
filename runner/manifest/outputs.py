"""Every file a job writes, checked before anything is paid for.

An output (and each companion the runner writes beside it: a transcript's
`.txt/.srt/.vtt`, a programme's `.json` sidecar and subtitles) must be a name a
file system accepts, inside output_dir, outside the runner's own files (the
state folder, the manifest, its lockfile, `.env`), and written by one job only,
even where letter case and Unicode form are ignored (macOS, Windows).
"""

from __future__ import annotations

import os
import posixpath
import stat
import unicodedata
from pathlib import Path
from typing import Any

from runner.catalog.models import Kind
from runner.errors import Problem, shown
from runner.manifest.filenames import collision_key, is_absolute, name_problem
from runner.manifest.types import Job, JobKind, Pipeline
from runner.manifest.yaml_source import DocPath
from runner.store.layout import STATE_DIR


def output_dir_of(manifest_dir: Path, data: dict[str, Any]) -> tuple[Path, str | None]:
    """The build's output folder, and why the manifest's `output_dir` cannot be used
    (then the default, `build/<name>`, stands in so that the outputs can be checked)."""
    default = Path(os.path.normpath(manifest_dir / f"build/{data.get('name')}"))
    given = data.get("output_dir")
    if not isinstance(given, str) or not given:
        return default, None
    problem = name_problem(given, "output_dir")
    if problem is not None:
        return default, problem
    return Path(os.path.normpath(manifest_dir / given)), None


def companions(job: Job, output: str) -> list[tuple[str, str]]:
    """The files a job writes beside its output (runner.engine.materialize), with what
    each one is; the engine's own check before paying (output_conflicts there) uses it
    too."""
    if job.kind is not JobKind.STITCH and job.model.kind is not Kind.TRANSCRIPT:
        return []
    stem = posixpath.splitext(output)[0]
    if job.kind is JobKind.STITCH:
        files = [(f"{stem}.json", "its programme's sidecar")]
        if job.narration is None or job.narration.subtitles:
            files += [(f"{stem}.srt", "its programme's subtitles"),
                      (f"{stem}.vtt", "its programme's subtitles")]
        return files
    if job.model.kind is Kind.TRANSCRIPT:
        return [(f"{stem}.txt", "its transcript's text"),
                (f"{stem}.srt", "its transcript's subtitles"),
                (f"{stem}.vtt", "its transcript's subtitles")]
    return []


def _reserved(pipeline: Pipeline) -> dict[str, str]:
    """Files of the build itself that no output may replace, by their real path's key."""
    stem = pipeline.path.name.removesuffix(".yaml").removesuffix(".yml")
    beside = pipeline.path.parent
    sandbox_dir = pipeline.output_dir.with_name(pipeline.output_dir.name + ".sandbox")
    named = {  # the later entry wins where two are one file (output_dir: .)
        pipeline.output_dir / f"{stem}.lock.json": "the name of the sandbox build's lockfile",
        sandbox_dir / f"{stem}.lock.json": "the sandbox build's lockfile",
        pipeline.path: "the manifest itself",
        beside / f"{stem}.lock.json": "the lockfile",
        beside / ".env": "the .env file that holds the keys",
    }
    return {collision_key(os.path.realpath(p)): what for p, what in named.items()}


def check_outputs(pipeline: Pipeline, jobs: list[Job]) -> list[Problem]:
    """Every file a job writes (its output and the companions beside it) is a usable
    name inside output_dir, outside the runner's own files, and written by one job
    only, even where letter case is ignored."""
    doc = pipeline.document
    root = pipeline.output_dir
    root_real = os.path.realpath(root)
    reserved = _reserved(pipeline)
    real_dirs: dict[str, str] = {}  # many outputs share a folder: resolve each folder once
    problems = []
    owners: dict[str, tuple[Job, str, str]] = {}  # key -> (job, file, what it is)
    spoilt: set[int] = set()  # templates whose output is reported: not again per segment
    # The manifest's own outputs first: a segment's file derives from its programme's.
    ordered = sorted(jobs, key=lambda j: j.segment is not None or j.verifies is not None)
    for job in ordered:
        path = ("jobs", job.template, "output")
        generated = job.segment is not None or job.verifies is not None
        if generated and job.template in spoilt:
            continue

        def refuse(message: str, job: Job = job, path: DocPath = path) -> None:
            problems.append(doc.problem(path, message, job_id=job.id))
            spoilt.add(job.template)

        out = job.output
        problem = name_problem(out, "output")
        if problem is not None:
            refuse(problem)
            continue
        if is_absolute(out):
            refuse(f"output '{shown(out)}' is an absolute path; give a path relative to "
                   "output_dir")
            continue
        normal = posixpath.normpath(out.replace("\\", "/"))
        if normal == ".." or normal.startswith("../") or normal in (".", ""):
            refuse(f"output '{shown(out)}' leaves output_dir ({os.path.relpath(root)})")
            continue
        if collision_key(normal.split("/", 1)[0]) == STATE_DIR:
            refuse(f"output '{shown(normal)}' is inside the build's state folder "
                   f"({STATE_DIR}/), where the runner keeps its journal and cache")
            continue
        folder, name = posixpath.split(normal)
        real_dir = real_dirs.get(folder)
        if real_dir is None:
            real_dir = real_dirs[folder] = os.path.realpath(os.path.join(root, folder))
        real = os.path.join(real_dir, name)
        try:
            mode = os.lstat(real).st_mode  # one call: most outputs do not exist yet
        except OSError:
            mode = 0
        if stat.S_ISLNK(mode):
            real = os.path.realpath(real)
            mode = stat.S_IFDIR if os.path.isdir(real) else 0
        if real != root_real and not real.startswith(root_real + os.sep):
            refuse(f"output '{shown(out)}' leaves output_dir through a symbolic link (it "
                   f"resolves to {os.path.relpath(real)})")
            continue
        what = reserved.get(collision_key(real))
        if what is not None:
            refuse(f"output '{shown(normal)}' would replace {what}; choose another name")
            continue
        if stat.S_ISDIR(mode):
            refuse(f"output '{shown(normal)}' is an existing folder")
            continue
        job.output = normal
        for file, role in [(normal, ""), *companions(job, normal)]:
            message = _claim(owners, job, file, role)
            if message is not None:
                refuse(message)
                break
    problems += _file_in_place_of_folder(doc, owners)
    return problems


def _claim(owners: dict[str, tuple[Job, str, str]], job: Job, file: str,
           role: str) -> str | None:
    """Record that `job` writes `file`; why it cannot when another file already has its key."""
    problem = name_problem(file, "a file it writes") if role else None
    if problem is not None:
        return f"{problem} ({shown(file)}, {role})"
    key = collision_key(file)
    earlier = owners.setdefault(key, (job, file, role))
    if earlier[0] is job and earlier[1:] == (file, role):
        return None
    owner, owner_file, owner_role = earlier
    theirs = f"job '{owner.id}'" if owner is not job else "the job itself"
    if owner_role:
        theirs += f" ({owner_role})"
    if owner_file != file:
        mine = f"'{shown(file)}'" + (f" ({role})" if role else "")
        if unicodedata.normalize("NFC", owner_file) == unicodedata.normalize("NFC", file):
            return (f"{mine} is '{shown(owner_file)}' written by {theirs} with its accents "
                    "composed differently (Unicode NFC/NFD): one file on macOS")
        return (f"{mine} differs only in letter case from '{shown(owner_file)}' written by "
                f"{theirs}: one file on macOS and Windows")
    if not role:
        return f"output '{shown(file)}' is also written by {theirs}; give each job its own file"
    return (f"it writes '{shown(file)}' ({role}), which is also written by {theirs}; give the "
            "outputs different names")


def _file_in_place_of_folder(doc: Any, owners: dict[str, tuple[Job, str, str]]) -> list[Problem]:
    """One job's file where another needs a folder (`a.mp3` and `a.mp3/b.mp3`)."""
    problems = []
    reported: set[str] = set()
    for key, (job, file, _role) in owners.items():
        parent = key.rpartition("/")[0]
        while parent and parent not in reported:
            holder = owners.get(parent)
            if holder is not None:
                reported.add(parent)
                problems.append(doc.problem(("jobs", job.template, "output"), f"'{shown(file)}' "
                                f"needs a folder '{shown(holder[1])}', which is the file of job "
                                f"'{holder[0].id}'", job_id=job.id))
                break
            parent = parent.rpartition("/")[0]
    return problems
