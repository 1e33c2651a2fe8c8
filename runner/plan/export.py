"""`runner export`: the chosen take of every job, copied to a fixed path for the game engine.

The chosen take of a job: the take picked in review (a job with variants), else its
one approved take; a job with no such take is listed, not exported. Where it goes:
the job's `approved:` template (`{id}` the job's id, `{ext}` its output extension,
matrix variables filled), inside output_dir, or `approved/{id}.{ext}` when it
declares none; `--to DIR` puts the same paths under DIR instead.

Files are copied from the build's outputs, checked against the lockfile's digest,
and written atomically. What was exported is recorded in
`<output_dir>/.runner/exports.json`, so a path no job chooses any more is removed
again, but only while it still holds the bytes written; a file someone changed
(or one export did not write) is never overwritten or removed, only reported.
`runner review` exports a job's take as soon as it is picked or approved when the
job declares `approved:`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from runner.errors import StoreError
from runner.manifest.approved import approved_path, exportable
from runner.manifest.load import load_pipeline
from runner.manifest.types import Job, Pipeline
from runner.store import atomic
from runner.store.cache import file_digest
from runner.store.layout import BuildLayout, Target, layout_for
from runner.store.lockfile import LockEntry, read_lockfile
from runner.store.reviews import Review, read_review, review_path


@dataclass(frozen=True, slots=True)
class Choice:
    """A job's chosen take (`job` is the variant), or why there is none."""

    base_id: str
    job: Job | None
    reason: str = ""


@dataclass
class ExportReport:
    written: list[tuple[str, Path]] = field(default_factory=list)  # (job id, path)
    unchanged: list[tuple[str, Path]] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)  # changed since export wrote it: left alone
    without: list[Choice] = field(default_factory=list)  # jobs with no chosen take


def chosen_takes(pipeline: Pipeline, review: Review,
                 entries: dict[str, LockEntry]) -> list[Choice]:
    """Every exportable job's chosen take, in manifest order."""
    groups: dict[str, list[Job]] = {}
    for job in pipeline.jobs.values():
        if exportable(job):
            groups.setdefault(job.base_id, []).append(job)
    choices = []
    for base_id, jobs in groups.items():
        built = [j for j in jobs if j.id in entries]
        picked = review.pick(base_id)
        chosen = None
        if picked is not None:
            chosen = next((j for j in built if j.variant == picked.pick
                           and picked.take.is_locked(entries[j.id])), None)
        approved = [j for j in built if review.approved(j.id, entries[j.id])]
        if chosen is None and len(approved) == 1:
            chosen = approved[0]
        if chosen is not None:
            choices.append(Choice(base_id, chosen))
        elif not built:
            choices.append(Choice(base_id, None, "not built"))
        elif len(approved) > 1:
            choices.append(Choice(base_id, None, f"{len(approved)} takes approved: pick one"))
        elif picked is not None:
            choices.append(Choice(base_id, None, f"take {picked.pick} was picked, but the job "
                                                 "holds another take now"))
        else:
            choices.append(Choice(base_id, None, "no take approved"))
    return choices


def _record_path(layout: BuildLayout) -> Path:
    return layout.state_dir / "exports.json"


def _read_record(layout: BuildLayout) -> dict[str, str]:
    try:
        data = json.loads(_record_path(layout).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise StoreError(f"{_record_path(layout)}: cannot read the export record ({exc})") \
            from exc
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def export_build(pipeline: Pipeline, layout: BuildLayout, *, to: Path | None = None,
                 only: Collection[str] | None = None, dry_run: bool = False,
                 declared_only: bool = False) -> ExportReport:
    """Copy every chosen take to its path (see the module docstring).

    `only`: these base ids only (others are neither written nor removed);
    `declared_only`: only jobs that declare `approved:` (what review does on a decision).
    """
    root = (to or layout.output_dir).resolve()
    entries = read_lockfile(layout.lockfile)
    review = read_review(review_path(layout))
    record = _read_record(layout)
    declared = {j.base_id for j in pipeline.jobs.values() if j.approved is not None}
    scope = {j.base_id for j in pipeline.jobs.values() if exportable(j)
             and (only is None or j.base_id in only)
             and (not declared_only or j.base_id in declared)}
    report = ExportReport()
    wanted: dict[str, str] = {}
    held: set[str] = set()
    for choice in chosen_takes(pipeline, review, entries):
        if choice.base_id not in scope:
            continue
        if choice.job is None:
            report.without.append(choice)
            continue
        job, entry = choice.job, entries[choice.job.id]
        dest = root / approved_path(job)
        current = file_digest(dest) if dest.is_file() else None
        if current is not None and current != record.get(str(dest)) \
                and current != entry.sha256:
            report.kept.append(dest)  # not what export wrote there: never overwritten
            held.add(str(dest))
            continue
        wanted[str(dest)] = entry.sha256
        if current == entry.sha256:
            report.unchanged.append((job.id, dest))
            continue
        if not dry_run:
            _copy(layout.output_path(entry.output), dest, entry.sha256, job.id)
        report.written.append((job.id, dest))
    # Paths this call answers for: those of the jobs in scope (all paths, without `only`).
    mine = None if only is None and not declared_only else \
        {str(root / approved_path(j)) for j in pipeline.jobs.values()
         if j.base_id in scope and exportable(j)}
    vanished = set()
    for path, sha in sorted(record.items()):
        target = Path(path)
        if path in wanted or path in held or (mine is not None and path not in mine) \
                or root not in target.parents:
            continue
        if not target.is_file():
            vanished.add(path)
            continue
        if file_digest(target) != sha:
            report.kept.append(target)  # changed by hand since: not ours to delete
            continue
        report.removed.append(target)
        if not dry_run:
            target.unlink()
    if not dry_run and (report.written or report.removed or vanished
                        or set(wanted) - set(record)):
        gone = {str(r) for r in report.removed} | vanished
        kept = {p: s for p, s in record.items() if p not in gone}
        atomic.write_text(_record_path(layout), json.dumps({**kept, **wanted}, indent=2,
                                                           sort_keys=True) + "\n")
    return report


def _copy(source: Path, dest: Path, sha256: str, job_id: str) -> None:
    try:
        data = source.read_bytes()
    except OSError as exc:
        raise StoreError(f"{job_id}: cannot read its output {source} ({exc.strerror}); run "
                         "`runner run` to restore it") from exc
    if hashlib.sha256(data).hexdigest() != sha256:
        raise StoreError(f"{job_id}: {source} is not the locked take (its digest differs); run "
                         "`runner run` to restore it, then export")
    atomic.write_bytes(dest, data)


def export(manifest: Path, *, sandbox: bool = False, to: Path | None = None,
           dry_run: bool = False) -> ExportReport:
    pipeline = load_pipeline(manifest)
    layout = layout_for(pipeline, Target.SANDBOX if sandbox else Target.LIVE)
    return export_build(pipeline, layout, to=to, dry_run=dry_run)


def relative(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)

