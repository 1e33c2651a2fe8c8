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
import re
import stat
import unicodedata
from collections import Counter
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from pathlib import Path
from types import MappingProxyType
from typing import Any

from runner.catalog.models import Kind
from runner.errors import Problem, shown
from runner.manifest.filenames import (
    MAX_NAME_BYTES,
    collision_key,
    is_absolute,
    name_problem,
)
from runner.manifest.types import Job, JobKind, Pipeline
from runner.store.layout import STATE_DIR

# An output that may not be in normal form already (normpath costs more than this).
_UNNORMAL = re.compile(r"\\|//|/$|(?:^|/)\.\.?(?:/|$)")


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
    # A reserved file is only a candidate when the last name matches (the key of a path
    # ends with the key of its last name): most outputs skip the whole-path key.
    reserved_names = {key.rpartition("/")[2] for key in reserved}
    folders: dict[str, _Folder] = {}  # many outputs share a folder: look at each once
    problems = []
    owners: dict[str, tuple[Job, str, str]] = {}  # key -> (job, file, what it is)
    spoilt: set[int] = set()  # templates whose output is reported: not again per segment
    root_inside = root_real.rstrip(os.sep) + os.sep  # what a path inside it starts with
    # Before a first build output_dir is not there: no output can meet a file, a folder
    # or a link, and each one's real path is output_dir's and its own.
    first_build = not os.path.lexists(root)

    def refuse(job: Job, message: str) -> None:
        problems.append(doc.problem(("jobs", job.template, "output"), message, job_id=job.id))
        spoilt.add(job.template)

    # The manifest's own outputs first: a segment's file derives from its programme's.
    ordered = sorted(jobs, key=lambda j: j.segment is not None or j.verifies is not None)
    # Plain outputs (most are) need no normalising, hold no name starting with '.' (so
    # none in the state folder), and their keys are their lower case (ASCII).
    plain = _all_plain([job.output for job in ordered])
    # Outputs per folder (as written): a folder of a few is asked about each output
    # (one lstat) rather than listed (three calls, and an entry per file in it).
    per_folder = Counter(job.output.rpartition("/")[0] for job in ordered) \
        if not first_build else Counter()
    for job in ordered:
        generated = job.segment is not None or job.verifies is not None
        if generated and job.template in spoilt:
            continue
        out = job.output
        if plain:
            normal = out
            key = out.lower()
            folder, _, name = normal.rpartition("/")
            name_key = key[len(key) - len(name):]
        else:
            normal, problem = _normal_output(out, root)
            if problem is not None:
                refuse(job, problem)
                continue
            key = collision_key(normal)
            folder, _, name = normal.rpartition("/")
            name_key = collision_key(name)
            first = folder.partition("/")[0] if folder else name
            # STATE_DIR starts with '.', which no other character becomes under NFC and
            # casefolding: other names need no key.
            if first[:1] == STATE_DIR[:1] == "." and collision_key(first) == STATE_DIR:
                refuse(job, f"output '{shown(normal)}' is inside the build's state folder "
                       f"({STATE_DIR}/), where the runner keeps its journal and cache")
                continue
        if first_build:
            real, inside, mode = root_inside + normal.replace("/", os.sep), True, 0
        else:
            place = folders.get(folder)
            if place is None:
                place = _folder(folders, folder, root, root_real, root_inside,
                                per_folder[folder] > FEW_OUTPUTS)
            real = place.prefix + name
            inside = place.inside  # the output's real path is inside when its folder's is
            mode = place.mode(name, real) if place.entries or not place.listed else 0
        if stat.S_ISLNK(mode):
            real = os.path.realpath(real)
            mode = stat.S_IFDIR if os.path.isdir(real) else 0
            inside = real == root_real or real.startswith(root_inside)
        if not inside:
            refuse(job, f"output '{shown(out)}' leaves output_dir through a symbolic link (it "
                   f"resolves to {os.path.relpath(real)})")
            continue
        what = reserved.get(collision_key(real)) if name_key in reserved_names else None
        if what is not None:
            refuse(job, f"output '{shown(normal)}' would replace {what}; choose another name")
            continue
        if stat.S_ISDIR(mode):
            refuse(job, f"output '{shown(normal)}' is an existing folder")
            continue
        job.output = normal
        claim = (job, normal, "")
        if owners.setdefault(key, claim) is not claim:
            message = _claim(owners, job, normal, "")  # whose it is, in words
            if message is not None:
                refuse(job, message)
                continue
        if job.kind is JobKind.STITCH or job.model.kind is Kind.TRANSCRIPT:
            for file, role in companions(job, normal):
                message = _claim(owners, job, file, role)
                if message is not None:
                    refuse(job, message)
                    break
    problems += _file_in_place_of_folder(doc, owners)
    return problems


def _normal_output(out: str, root: Path) -> tuple[str, str | None]:
    """`out` in normal form, or why it cannot be an output: a name no file system
    takes, an absolute path, a path out of output_dir."""
    problem = name_problem(out, "output")
    if problem is not None:
        return out, problem
    if is_absolute(out):
        return out, (f"output '{shown(out)}' is an absolute path; give a path relative to "
                     "output_dir")
    normal = posixpath.normpath(out.replace("\\", "/")) if _UNNORMAL.search(out) else out
    if normal == ".." or normal.startswith("../") or normal in (".", ""):
        return normal, f"output '{shown(out)}' leaves output_dir ({os.path.relpath(root)})"
    return normal, None


# In outputs joined by line breaks, what makes one of them need `_normal_output`
# (a control character, a colon, a backslash, an empty name, '//', a trailing '/',
# a leading '/' or '.', any name starting with '.'): plain `in` tests run at the
# speed of memchr, where one regular expression for all of it steps through every
# character. Names starting with '.' ('.', '..', hidden files) take the slow way.
_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f]")
_ODD_PARTS = (":", "\\", "//", "/\n", "\n\n", "\n/", "/.", "\n.")


def _all_plain(outputs: list[str]) -> bool:
    """Whether `_normal_output` certainly returns every output as it is, without a
    problem: ASCII (so no name is over 255 bytes when none is over 255 characters), no
    control character, not empty, not absolute, nothing normpath would change. Most
    manifests' outputs are, and then they are checked at once; one by one, that was a
    third of check_outputs on 100,000 jobs. One odd output, and all are checked one
    by one."""
    joined = "\n".join(outputs)
    return (bool(joined) and joined.isascii() and joined.count("\n") == len(outputs) - 1
            and _CONTROL.search(joined) is None
            and not any(part in joined for part in _ODD_PARTS)
            and not joined.startswith(("/", ".", "\n")) and not joined.endswith(("/", "\n"))
            and max(map(len, outputs)) <= MAX_NAME_BYTES)


_NOTHING: Mapping[str, os.DirEntry[str]] = MappingProxyType({})  # a folder that is not there
FEW_OUTPUTS = 4  # a folder of this many outputs or fewer is not listed (see check_outputs)


class _Folder:
    """An output's folder: its real path, and what is in it, listed once (a folder of
    thousands of outputs costs one listing, not one lstat each; a folder that does not
    exist yet, the common case before a first run, costs nothing more)."""

    __slots__ = ("_keys", "entries", "inside", "listed", "prefix", "real")

    def __init__(self, real: str, root_real: str, root_inside: str, exists: bool = True,
                 listed: bool = True) -> None:
        self.real = real
        self.prefix = real if real.endswith(os.sep) else real + os.sep  # + a name: a file in it
        # Whether it is output_dir or inside it (then so is any file in it but a link).
        self.inside = real == root_real or real.startswith(root_inside)
        self.entries: Mapping[str, os.DirEntry[str]] = _NOTHING
        self._keys: AbstractSet[str] | None = None  # see holds_key
        self.listed = listed  # False: each file is asked about (see mode)
        if not exists or not listed:
            return
        try:
            with os.scandir(real) as listing:
                self.entries = {entry.name: entry for entry in listing}
        except (FileNotFoundError, NotADirectoryError):
            return  # nothing in it exists
        except OSError:  # not listable (a folder without read permission): ask per file
            self.listed = False
            return

    def holds_key(self, name: str) -> bool:
        """Whether a name in the listing has `name`'s key (the same name where case or
        Unicode form is ignored). The keys are made the first time they are asked for:
        a folder that holds every output named in it never needs them."""
        if not self.entries:
            return False
        if self._keys is None:
            self._keys = {collision_key(entry) for entry in self.entries}
        return collision_key(name) in self._keys

    def mode(self, name: str, real: str) -> int:
        """What `os.lstat(real).st_mode` says of a link or a folder (any other file is
        S_IFREG here), or 0 where nothing is."""
        entry = self.entries.get(name)
        if entry is None:
            if self.listed and not self.holds_key(name):
                return 0
            # Another name with this key: the same file where case or Unicode form
            # is ignored (macOS, Windows). The file system says.
            try:
                return os.lstat(real).st_mode
            except OSError:
                return 0
        try:  # the listing's file types: no call per file on most file systems
            if entry.is_symlink():
                return stat.S_IFLNK
            return stat.S_IFDIR if entry.is_dir(follow_symlinks=False) else stat.S_IFREG
        except OSError:
            return 0


def _folder(folders: dict[str, _Folder], folder: str, root: Path, root_real: str,
            root_inside: str, many: bool) -> _Folder:
    """The `_Folder` of `folder` (relative to output_dir), and of each folder above it,
    kept in `folders`. A folder's real path is its parent's and its name wherever the
    parent's listing says the name is no link: where it is nothing (most, before a first
    run) it is not looked at at all. os.path.realpath walks the whole path, a call per
    part, and a manifest may give every output a folder of its own. `many`: `folder`
    holds enough outputs to be listed; otherwise each output in it is asked about."""
    chain = []  # (path, name) of it and of the folders above it not yet known, innermost first
    path, place = folder, None
    while True:
        parent, _, name = path.rpartition("/")
        chain.append((path, name))
        if not path:
            break  # output_dir itself
        place = folders.get(parent)
        if place is not None:
            break
        path = parent
    for path, name in reversed(chain):
        known = None
        if place is not None and place.listed:
            entry = place.entries.get(name)
            if entry is None and not place.holds_key(name):
                known = _Folder(place.prefix + name, root_real, root_inside, exists=False)
            elif entry is not None and _plain_folder(entry):
                # (a folder above the output's is listed: its listing finds the next one)
                known = _Folder(place.prefix + name, root_real, root_inside,
                                listed=many or path != folder)
        place = folders[path] = known or _Folder(
            os.path.realpath(os.path.join(root, path)), root_real, root_inside)
    assert place is not None
    return place


def _plain_folder(entry: os.DirEntry[str]) -> bool:
    """A folder, not a link to one."""
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False


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
    # Every folder any file needs, found a level at a time over sets: most manifests
    # have no file among them, and then nothing is looked at file by file.
    level = {key.rpartition("/")[0] for key in owners} - {""}
    folders = set(level)
    while level:
        level = {folder.rpartition("/")[0] for folder in level} - folders - {""}
        folders |= level
    if folders.isdisjoint(owners):
        return []
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
