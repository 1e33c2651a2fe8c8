"""`runner status` and `runner clean`: what the build holds, and tidying it. No network.

status: each job as the journal and the lockfile know it: done, cached, frozen,
in flight (with its task id), uncertain, failed (with the reason), or still to
do (new / changed).

clean: removes what no job of the manifest refers to any more: output files
the runner itself wrote (the journal lists them, so a user's own files in the
folder are never touched) and cache entries of superseded takes.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.errors import UsageError
from runner.manifest.load import load_pipeline
from runner.plan.plan import Plan, State, make_plan, takes_in
from runner.store.buildlock import BuildLock
from runner.store.cache import ContentCache
from runner.store.journal import Journal, TaskRowState
from runner.store.layout import BuildLayout, layout_to_read
from runner.store.reviews import read_review, review_path


@dataclass(frozen=True, slots=True)
class JobStatus:
    job_id: str
    # done | cached | frozen | modified | in flight | uncertain | failed | skipped | new |
    # changed | restore
    status: str
    detail: str = ""
    task_id: str | None = None


def _journal(layout: BuildLayout) -> Journal | None:
    return Journal(layout.journal, readonly=True) if layout.journal.exists() else None


def read_plan(manifest: Path, sandbox: bool, *, strict: bool = True,
              force: Collection[str] = (), recontext: bool = False) -> tuple[Plan, str | None]:
    """The plan of the build a reading command reads, without creating anything, as
    `runner run` would make it (takes in the cache are restored, not bought).

    Returns a sentence when the live build does not exist but a sandbox one does;
    with `strict` that is an error (a status of 43 "new" jobs would mislead)."""
    pipeline = load_pipeline(manifest)
    layout, note = layout_to_read(pipeline, sandbox)
    if note is not None and strict:
        raise UsageError(note)
    journal = _journal(layout)
    try:
        cache = ContentCache(layout.cache_dir(os.environ)) if journal else None
        plan = make_plan(pipeline, layout, force=force, recontext=recontext,
                         outputs=journal.outputs() if journal else {},
                         in_cache=takes_in(journal, cache))
    finally:
        if journal:
            journal.close()
    return plan, note


def _plan(manifest: Path, sandbox: bool) -> tuple[Plan, BuildLayout]:
    plan, _ = read_plan(manifest, sandbox)
    return plan, plan.layout


def build_status(manifest: Path, *, sandbox: bool = False
                 ) -> tuple[list[JobStatus], BuildLayout]:
    """Each job's status, and the build read."""
    plan, layout = _plan(manifest, sandbox)
    journal = _journal(layout)
    outcomes = journal.latest_outcomes() if journal else {}
    statuses = []
    for p in plan.jobs:
        job_id = p.job.id
        live = journal.live_task(p.key) if journal else None
        last = outcomes.get(job_id)
        if p.state is State.FROZEN:
            statuses.append(JobStatus(job_id, "frozen", "the locked take is kept (freeze: true, "
                                      "or approved in review)"))
        elif p.state is State.MODIFIED:
            statuses.append(JobStatus(job_id, "modified", f"{p.job.output} was edited by hand: "
                                      "a run keeps it (--restore ID puts the take back, --force "
                                      "ID makes a new one)"))
        elif p.state is State.UP_TO_DATE:
            cached = last is not None and last.key == p.key and last.outcome == "cached"
            statuses.append(JobStatus(job_id, "cached" if cached else "done", p.job.output,
                                      p.locked.task_id if p.locked else None))
        elif live is not None and live.state is TaskRowState.SUBMITTED:
            statuses.append(JobStatus(job_id, "in flight", "submitted; the next run collects it",
                                      live.task_id))
        elif live is not None and live.state in (TaskRowState.SUBMITTING,
                                                 TaskRowState.UNCERTAIN):
            statuses.append(JobStatus(job_id, "uncertain", "sent without a recorded answer: "
                                      "check the provider, then --resubmit-uncertain",
                                      live.task_id))
        elif last is not None and last.key == p.key and last.outcome in (
                "failed", "skipped", "interrupted", "uncertain"):
            statuses.append(JobStatus(job_id, last.outcome, last.message or "", last.task_id))
        elif p.state is State.RESTORE:
            earlier = p.locked is None or p.locked.key != p.key
            statuses.append(JobStatus(job_id, "restore", "an earlier take of this very request "
                                      "is in the cache: the next run restores it for nothing"
                                      if earlier else "output missing: restored from the cache "
                                      "on the next run"))
        else:
            statuses.append(JobStatus(job_id, p.state.value, "to be generated"
                                      if p.state.needs_work else ""))
    if journal:
        journal.close()
    return statuses, layout


def render_status(statuses: list[JobStatus]) -> str:
    counts: dict[str, int] = {}
    for s in statuses:
        counts[s.status] = counts.get(s.status, 0) + 1
    width = max((len(s.job_id) for s in statuses), default=2)
    task_width = max((len(s.task_id or "") for s in statuses), default=0)
    lines = [f"{s.job_id.ljust(width)}  {s.status.ljust(9)}  "
             f"{(s.task_id or '-').ljust(task_width)}  {s.detail}".rstrip()
             for s in statuses]
    lines.append(", ".join(f"{n} {status}" for status, n in sorted(counts.items())))
    return "\n".join(lines)


@dataclass
class CleanReport:
    outputs: list[Path] = field(default_factory=list)
    blobs: list[str] = field(default_factory=list)  # where each was (Blob.label)
    freed_bytes: int = 0
    # Takes kept because the cache is their only copy (without --prune-takes).
    kept_takes: int = 0
    kept_bytes: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"outputs": [str(p) for p in self.outputs], "cache": self.blobs,
                "freed_bytes": self.freed_bytes, "kept_takes": self.kept_takes,
                "kept_bytes": self.kept_bytes}


def clean(manifest: Path, *, sandbox: bool = False, dry_run: bool = False,
          prune_takes: bool = False) -> CleanReport:
    """Remove outputs the runner wrote for jobs no longer in the manifest, and cached
    files nothing needs (see `_clean`). It writes the build, so it takes the build's
    lock, refusing at once with BuildBusy while a run holds it; a dry run only reads."""
    layout, _ = layout_to_read(load_pipeline(manifest), sandbox)
    if dry_run or not layout.journal.exists():  # nothing is written
        return _clean(manifest, sandbox=sandbox, dry_run=dry_run, prune_takes=prune_takes)
    with BuildLock(layout.state_dir, "runner clean").hold(wait=False):
        return _clean(manifest, sandbox=sandbox, dry_run=False, prune_takes=prune_takes)


def _clean(manifest: Path, *, sandbox: bool, dry_run: bool, prune_takes: bool) -> CleanReport:
    """A paid take (a provider's answer) that only the cache still holds (superseded,
    or of a job removed) is kept unless `prune_takes`: it was paid for, and going back
    to its request restores it for nothing. So is any file the journal does not know
    (a shared RUNNER_CACHE_DIR holds other builds' takes)."""
    plan, layout = _plan(manifest, sandbox)
    report = CleanReport()
    if not layout.journal.exists():
        return report
    keep_outputs: set[str] = set()
    keep_blobs: set[str] = set()
    for p in plan.jobs:
        keep_outputs.add(p.job.output)
        if p.locked is not None:
            keep_blobs.add(p.locked.sha256)
            if p.locked.raw:
                keep_blobs.add(p.locked.raw["sha256"])
            keep_outputs.update(p.locked.companions.values())
    with Journal(layout.journal) as journal:
        assets = journal.all_assets()
        # Post-processed jobs keep the provider's result too (a changed step reprocesses
        # it instead of buying it again), and reviewed takes stay: a rejected one included.
        current_keys = {p.key for p in plan.jobs} | {p.raw_key for p in plan.jobs if p.raw_key}
        keep_blobs |= read_review(review_path(layout)).takes()
        keep_blobs |= {a.sha256 for k, a in assets.items() if k in current_keys}
        for output in sorted(journal.outputs()):
            if output in keep_outputs:
                continue
            path = layout.output_path(output)
            if path.exists():
                report.outputs.append(path)
                report.freed_bytes += path.stat().st_size
                if not dry_run:
                    path.unlink()
                    _remove_empty_parents(path.parent, layout.output_dir)
            if not dry_run:
                journal.forget_output(output)
        cache = ContentCache(layout.cache_dir(os.environ))
        unused = [blob for blob in cache.blobs() if blob.sha256 not in keep_blobs]
        if not prune_takes:
            # Only what the journal knows to be local work (a stitch) may go by default.
            local = {a.sha256 for a in assets.values() if a.task_id is None}
            paid = {a.sha256 for a in assets.values() if a.task_id is not None}
            kept = [b for b in unused if b.sha256 in paid or b.sha256 not in local]
            report.kept_takes = len({b.sha256 for b in kept})
            report.kept_bytes = sum(b.size for b in kept)
            keep_blobs |= {b.sha256 for b in kept}
            unused = [b for b in unused if b.sha256 not in keep_blobs]
        if not dry_run:
            unused = cache.remove(unused)
        report.blobs = [blob.label for blob in unused]
        report.freed_bytes += sum(blob.size for blob in unused)
        if not dry_run:
            for key, asset in assets.items():
                if asset.sha256 not in keep_blobs:
                    journal.forget_asset(key)
    return report


def _remove_empty_parents(folder: Path, root: Path) -> None:
    while folder != root and root in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent
